/* dicomweb: the client, the QIDO-RS path and query builder, and what both operations share. */
#include "dicomweb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dcm_vr.h"
#include "dicomweb_int.h"
#include "sigv4.h"

#define INCLUDEFIELD_MAX 50 /* AWS: "up to 50" */
#define DEFAULT_DEADLINE_MS 30000u
#define DEFAULT_PAGE_BYTES (32u << 20)
#define MAX_ATTEMPTS 1000u /* the deadline is what ends the retries */

/* 1..max ASCII letters and digits. */
static bool alnum_upto(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

static bool id_valid(const char *s)
{
    return alnum_upto(s, 63);
}

int dw_client_new(struct http_client *http, const struct dw_opts *o, struct dw_client **out)
{
    *out = NULL;
    if (!o || !o->datastore_id || !id_valid(o->datastore_id) || o->page_size > 1000 ||
        !aws_endpoint_valid(o->endpoint))
        return ERR_CONFIG;
    struct dw_client *d = calloc(1, sizeof *d);
    if (!d)
        return ERR_NOMEM;
    int rc = aws_client_init(&d->ac, http, NULL, o->region, "medical-imaging", false);
    if (rc < 0) {
        free(d);
        return rc;
    }
    char suffix[80];
    snprintf(suffix, sizeof suffix, "/datastore/%s", o->datastore_id);
    d->base = aws_endpoint_dup(o->endpoint, "dicom-medical-imaging", o->region, suffix);
    if (!d->base) {
        free(d);
        return ERR_NOMEM;
    }
    snprintf(d->datastore_id, sizeof d->datastore_id, "%s", o->datastore_id);
    d->page_size = o->page_size ? o->page_size : 1000;
    d->max_results = o->max_results ? o->max_results : 10000;
    d->deadline_ms = o->deadline_ms ? o->deadline_ms : DEFAULT_DEADLINE_MS;
    d->max_page_bytes = o->max_page_bytes ? o->max_page_bytes : DEFAULT_PAGE_BYTES;
    *out = d;
    return 0;
}

void dw_client_free(struct dw_client *d)
{
    if (!d)
        return;
    free(d->base);
    free(d);
}

const char *dw_client_datastore_id(const struct dw_client *d)
{
    return d->datastore_id;
}

/* ---- the query ------------------------------------------------------------------------------ */

static bool uid_ok(const char *s)
{
    return s && dcm_uid_valid((const uint8_t *)s, strlen(s));
}

/* A keyword (letters and digits, as PS3.6 spells them) or a tag of 8 hex digits; dotted
 * sequence paths are not sent by us. */
static bool key_name_ok(const char *s)
{
    return alnum_upto(s, 64);
}

static void param(struct wbuf *raw, const char *name, const char *value)
{
    if (raw->len)
        wbuf_u8(raw, '&');
    sigv4_uri_encode(raw, name, strlen(name), false);
    wbuf_u8(raw, '=');
    sigv4_uri_encode(raw, value, strlen(value), false);
}

int dw_qido_build(const struct dw_qido *q, unsigned limit, unsigned offset, struct wbuf *path,
                  struct wbuf *query)
{
    if ((q->study && !uid_ok(q->study)) || (q->series && !uid_ok(q->series)))
        return ERR_MALFORMED;
    if (q->series && (!q->study || q->level != DW_INSTANCES))
        return ERR_MALFORMED;
    if (q->study && q->level == DW_STUDIES)
        return ERR_MALFORMED; /* a study is a query key at this level, not a path */
    if (q->n_include > INCLUDEFIELD_MAX)
        return ERR_LIMIT;
    if (q->study) {
        wbuf_str(path, "/studies/");
        wbuf_str(path, q->study);
    }
    if (q->series) {
        wbuf_str(path, "/series/");
        wbuf_str(path, q->series);
    }
    wbuf_str(path, q->level == DW_STUDIES ? "/studies" : q->level == DW_SERIES && !q->series
                                                            ? "/series"
                                                            : "/instances");
    struct wbuf raw;
    wbuf_init(&raw, 64u * 1024u);
    int rc = 0;
    for (size_t i = 0; i < q->n_keys && rc == 0; i++) {
        if (!key_name_ok(q->keys[i].name))
            rc = ERR_MALFORMED;
        else
            param(&raw, q->keys[i].name, q->keys[i].value);
    }
    for (size_t i = 0; i < q->n_include && rc == 0; i++) {
        if (!key_name_ok(q->includefield[i]))
            rc = ERR_MALFORMED;
        else
            param(&raw, "includefield", q->includefield[i]);
    }
    if (rc == 0) {
        char num[24];
        if (q->fuzzy)
            param(&raw, "fuzzymatching", "true");
        snprintf(num, sizeof num, "%u", limit);
        param(&raw, "limit", num);
        snprintf(num, sizeof num, "%u", offset);
        param(&raw, "offset", num);
        wbuf_u8(&raw, 0);
        rc = raw.err;
    }
    if (rc == 0) /* sorted and strictly encoded: exactly what SigV4 signs and what is sent */
        rc = sigv4_canonical_query((const char *)raw.p, query);
    wbuf_cleanup(&raw);
    if (rc == 0)
        rc = path->err ? path->err : query->err;
    return rc;
}

int dw_qido_page_outcome(size_t n, unsigned limit, unsigned offset, unsigned max_results)
{
    /* the service stops at max_results without a word: reaching it may mean it cut (exactly
     * max_results matches look the same, and are reported the same way) */
    if ((uint64_t)offset + n >= max_results)
        return ERR_LIMIT;
    return n < limit ? 0 : 1;
}

/* ---- requests ------------------------------------------------------------------------------- */

int dw_request(struct dw_client *d, struct creds_provider *creds, const char *path,
               const char *query, struct http_req **out)
{
    *out = NULL;
    struct wbuf url;
    wbuf_init(&url, 8192);
    wbuf_str(&url, d->base);
    wbuf_str(&url, path);
    struct http_req *r;
    TRY(aws_client_req("GET", &url, &r));
    int rc = query && *query ? http_req_set_query(r, query) : 0;
    if (rc < 0) {
        http_req_free(r);
        return rc;
    }
    http_req_sign(r, creds, d->ac.region, d->ac.service, false, HTTP_PAYLOAD_SIGNED);
    http_req_set_max_attempts(r, MAX_ATTEMPTS);
    http_req_set_deadline(r, d->deadline_ms);
    *out = r;
    return 0;
}

void dw_why_http(const struct http_result *res, const char *what, char *out, size_t cap)
{
    if (res->err == HTTP_ERR_THROTTLED)
        snprintf(out, cap, "HealthImaging %s: still throttled or unavailable (HTTP %ld %s) after "
                           "%u attempts within the deadline",
                 what, res->status, res->error_code[0] ? res->error_code : "-", res->attempts);
    else if (res->status)
        snprintf(out, cap, "HealthImaging %s: HTTP %ld %s: %.160s", what, res->status,
                 res->error_code[0] ? res->error_code : "-", res->message);
    else
        snprintf(out, cap, "HealthImaging %s: %s (%.160s) after %u attempts", what,
                 http_err_str(res->err), res->message, res->attempts);
}

void dw_op_free(struct dw_op *op)
{
    if (!op)
        return;
    http_client_undefer(op->d->ac.http, &op->defer);
    dicom_json_list_free(&op->page);
    free(op->keys);
    free(op->incl);
    free(op->qbuf);
    free(op->mp);
    free(op->p10);
    free(op);
}

static void on_defer(void *arg)
{
    struct dw_op *op = arg;
    if (op->kind == DW_OP_SEARCH)
        dw_search_resume(op);
    else
        dw_wado_resume(op);
}

void dw_resume(struct dw_op *op)
{
    if (!op || op->cancelled || op->finished || !op->paused)
        return;
    op->paused = false;
    op->defer.cb = on_defer;
    op->defer.arg = op;
    http_client_defer(op->d->ac.http, &op->defer);
}

void dw_cancel(struct dw_op *op)
{
    if (!op || op->cancelled)
        return;
    op->cancelled = true;
    http_client_undefer(op->d->ac.http, &op->defer);
    if (op->in_cb)
        return; /* the code that called the callback sees the mark and ends the op */
    if (op->req) {
        http_req_cancel(op->req); /* its done callback frees op, now or later */
        return;
    }
    dw_op_free(op);
}
