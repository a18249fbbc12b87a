/* aws_read: fetch one instance with WADO-RS, streamed to the core. Transfer syntax: when the
 * receiver accepted any syntax beyond the two uncompressed little endian ones, the instance is
 * asked for as stored (transfer-syntax=*) and used when its syntax is among those accepted;
 * otherwise, or when the stored one is not accepted, in Explicit VR Little Endian (HealthImaging's
 * default); a 406 for Explicit VR Little Endian (an instance HealthImaging cannot transcode) is
 * asked again as stored. HealthImaging never returns Implicit VR Little Endian unless stored so. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_read_int.h"
#include "common/dcm_vr.h"
#include "common/log.h"

#define TS_ELE "1.2.840.10008.1.2.1"
#define TS_ILE "1.2.840.10008.1.2"
#define RETRY_ELE ERR_MISMATCH /* our begin's refusal: ask again in Explicit VR LE */

struct fetch_op {
    struct aws_read_op head; /* first: the op the core holds */
    struct aws_read *r;
    struct backend_fetch_cbs cbs;
    struct read_scope scope;
    char study[AWS_READ_UID_MAX], series[AWS_READ_UID_MAX], sop[AWS_READ_UID_MAX];
    char (*ts)[AWS_READ_UID_MAX];
    size_t n_ts;
    struct rcreds_lease *lease;
    struct creds_provider *p;
    struct dw_op *dw;
    const char *asked;       /* "*" or TS_ELE */
    bool tried_star, tried_ele;
    bool cancelled, in_cb, begun, scoped;
    uint64_t bytes;
    char why[300];
};

static void fetch_free(struct fetch_op *op)
{
    struct aws_read *r = op->r;
    aws_read_creds_release(op->lease);
    read_scope_free(&op->scope);
    free(op->ts);
    free(op);
    r->live--;
}

static void fetch_end(struct fetch_op *op, int err, const char *why)
{
    struct logb b;
    if (log_begin(&b, err ? LOG_WARN : LOG_DEBUG, err ? "aws_read_fetch_failed"
                                                      : "aws_read_fetch")) {
        log_str(&b, "client_id", op->scope.client_id);
        log_str(&b, "study", op->study);
        log_str(&b, "sop", op->sop);
        log_u64(&b, "bytes", op->bytes);
        log_bool(&b, "scoped_credentials", op->scoped);
        if (err)
            log_str(&b, "why", why);
        log_end(&b);
    }
    op->cbs.done(op->cbs.arg, err, why);
    fetch_free(op);
}

static bool accepts(const struct fetch_op *op, const char *ts)
{
    for (size_t i = 0; i < op->n_ts; i++) {
        if (strcmp(op->ts[i], ts) == 0)
            return true;
    }
    return false;
}

/* After a callback of the core: a cancel inside it frees op here (dw ends itself). */
static int after_core(struct fetch_op *op, int rc)
{
    op->in_cb = false;
    if (op->cancelled) {
        fetch_free(op);
        return -1;
    }
    return rc;
}

static int on_begin(void *arg, const struct dw_instance *inst)
{
    struct fetch_op *op = arg;
    if (!accepts(op, inst->ts)) {
        if (strcmp(op->asked, "*") == 0 && !op->tried_ele && accepts(op, TS_ELE))
            return RETRY_ELE;
        snprintf(op->why, sizeof op->why, "HealthImaging returns this instance in %s, which the "
                                          "receiver did not accept", inst->ts);
        return ERR_UNSUPPORTED;
    }
    struct backend_instance bi;
    memset(&bi, 0, sizeof bi);
    memcpy(bi.study, op->study, sizeof bi.study);
    memcpy(bi.series, op->series, sizeof bi.series);
    memcpy(bi.sop, op->sop, sizeof bi.sop);
    memcpy(bi.sop_class, inst->sop_class, sizeof bi.sop_class);
    memcpy(bi.ts, inst->ts, sizeof bi.ts);
    bi.bytes = inst->bytes;
    op->begun = true;
    op->in_cb = true;
    return after_core(op, op->cbs.begin(op->cbs.arg, &bi));
}

static int on_data(void *arg, const uint8_t *p, size_t n)
{
    struct fetch_op *op = arg;
    op->bytes += n;
    op->in_cb = true;
    return after_core(op, op->cbs.data(op->cbs.arg, p, n));
}

static int start(struct fetch_op *op, const char *ts);

static void on_done(void *arg, int err, const struct http_result *res, const char *why)
{
    struct fetch_op *op = arg;
    op->dw = NULL;
    const char *next = NULL;
    if (err == RETRY_ELE)
        next = TS_ELE;
    else if (err == HTTP_ERR_STATUS && res && res->status == 406 && !op->begun &&
             strcmp(op->asked, TS_ELE) == 0 && !op->tried_star)
        next = "*"; /* HealthImaging: "retry the call with transfer-syntax=*" */
    if (next) {
        int rc = start(op, next);
        if (rc < 0)
            fetch_end(op, aws_read_map_err(rc, NULL), "the WADO-RS request could not be made");
        return;
    }
    if (err == 0) {
        fetch_end(op, 0, "");
        return;
    }
    if (err == ERR_UNSUPPORTED && op->why[0])
        why = op->why;
    else if (err == HTTP_ERR_STATUS && res && res->status == 406)
        why = "HealthImaging cannot return this instance in a transfer syntax the receiver "
              "accepted (406)";
    fetch_end(op, aws_read_map_err(err, res), why);
}

static int start(struct fetch_op *op, const char *ts)
{
    op->asked = ts;
    if (strcmp(ts, "*") == 0)
        op->tried_star = true;
    else
        op->tried_ele = true;
    struct dw_wado w = {.study = op->study, .series = op->series, .sop = op->sop,
                        .transfer_syntax = ts, .multipart = op->r->cfg.multipart};
    struct dw_wado_cbs cbs = {.begin = on_begin, .data = on_data, .done = on_done, .arg = op};
    return dw_retrieve(op->r->dw, op->p, &w, &cbs, &op->dw);
}

static void on_creds(void *arg, int err, struct creds_provider *p, bool scoped, const char *why)
{
    struct fetch_op *op = arg;
    if (err < 0) {
        fetch_end(op, aws_read_map_err(err, NULL), why);
        return;
    }
    op->p = p;
    op->scoped = scoped;
    bool beyond = false; /* a syntax beyond the uncompressed ones: the stored one may do */
    for (size_t i = 0; i < op->n_ts; i++)
        beyond |= strcmp(op->ts[i], TS_ELE) != 0 && strcmp(op->ts[i], TS_ILE) != 0;
    int rc = start(op, beyond || !accepts(op, TS_ELE) ? "*" : TS_ELE);
    if (rc < 0)
        fetch_end(op, aws_read_map_err(rc, NULL), "the WADO-RS request could not be made");
}

static bool uid_ok(const char *s)
{
    return s && dcm_uid_valid((const uint8_t *)s, strlen(s));
}

int aws_read_fetch(void *impl, const char *study, const char *series, const char *sop,
                   const char *const *ts, size_t n_ts, const struct backend_read_scope *scope,
                   const struct backend_fetch_cbs *cbs, struct backend_read_op **out)
{
    struct aws_read *r = impl;
    *out = NULL;
    if (r->closing)
        return ERR_WRONG_STATE;
    if (!uid_ok(study) || !uid_ok(series) || !uid_ok(sop) || n_ts == 0)
        return ERR_MALFORMED;
    if (!scope || scope->scope == GRANT_SCOPE_NONE)
        return -EACCES;
    struct fetch_op *op = calloc(1, sizeof *op);
    if (!op)
        return ERR_NOMEM;
    op->head.kind = READ_FETCH;
    op->r = r;
    op->cbs = *cbs;
    r->live++;
    memcpy(op->study, study, strlen(study) + 1);
    memcpy(op->series, series, strlen(series) + 1);
    memcpy(op->sop, sop, strlen(sop) + 1);
    int rc = read_scope_copy(scope, &op->scope);
    if (rc == 0 && !read_scope_has(&op->scope, study))
        rc = -EACCES; /* outside the client's studies: never asked for */
    op->ts = rc == 0 ? calloc(n_ts, sizeof *op->ts) : NULL;
    if (rc == 0 && !op->ts)
        rc = ERR_NOMEM;
    for (size_t i = 0; rc == 0 && i < n_ts; i++) {
        if (!uid_ok(ts[i]) || strlen(ts[i]) >= AWS_READ_UID_MAX)
            continue; /* not a syntax anyone could send */
        memcpy(op->ts[op->n_ts++], ts[i], strlen(ts[i]) + 1);
    }
    if (rc == 0 && op->n_ts == 0)
        rc = ERR_MALFORMED;
    if (rc == 0)
        rc = aws_read_creds_acquire(r, &op->scope, false, on_creds, op, &op->lease);
    if (rc < 0) {
        fetch_free(op);
        return rc;
    }
    *out = (struct backend_read_op *)op;
    return 0;
}

void aws_read_fetch_resume(struct aws_read_op *h)
{
    struct fetch_op *op = (struct fetch_op *)h;
    if (op->dw)
        dw_resume(op->dw);
}

void aws_read_fetch_cancel(struct aws_read_op *h)
{
    struct fetch_op *op = (struct fetch_op *)h;
    if (op->cancelled)
        return;
    op->cancelled = true;
    if (op->dw)
        dw_cancel(op->dw); /* no callback of it follows */
    if (op->in_cb)
        return; /* after_core frees op when the core's callback returns */
    fetch_free(op);
}
