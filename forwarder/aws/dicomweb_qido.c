/* dicomweb: QIDO-RS. One page at a time: the page is fetched, converted to datasets, handed on
 * one result after the other (a reader that pauses stops the handing on; nothing more is
 * fetched meanwhile), and the next page is fetched only when this one is done. */
#include "dicomweb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dicomweb_int.h"

static void fetch_page(struct dw_op *op);

static void finish(struct dw_op *op, int err, const struct http_result *res, const char *why)
{
    op->finished = true;
    op->scbs.done(op->scbs.arg, err, res, why ? why : "");
    dw_op_free(op);
}

/* Hand on the page's results from op->next; then the next page or the end. */
static void emit(struct dw_op *op)
{
    while (op->next < op->page.n) {
        struct dcm_ds *ds = op->page.ds[op->next++];
        op->in_cb = true;
        int rc = op->scbs.result(op->scbs.arg, ds);
        op->in_cb = false;
        if (op->cancelled) {
            dw_op_free(op);
            return;
        }
        if (rc < 0) {
            finish(op, rc, NULL, "the search was stopped by its reader");
            return;
        }
        if (rc == 1) {
            op->paused = true;
            return;
        }
    }
    size_t n = op->page.n;
    dicom_json_list_free(&op->page);
    op->next = 0;
    if (op->page_outcome == 0) {
        finish(op, 0, NULL, "");
    } else if (op->page_outcome == ERR_LIMIT) {
        char why[256];
        snprintf(why, sizeof why,
                 "HealthImaging returns at most %u results per search (QIDO-RS) and this one "
                 "reached that cap: the results may be incomplete; narrow the query",
                 op->d->max_results);
        finish(op, ERR_LIMIT, NULL, why);
    } else {
        op->offset += (unsigned)n;
        fetch_page(op);
    }
}

static bool warns_of_cap(const struct http_resp *resp)
{
    /* PS3.18 8.3.4.3 (and 10.6.1.3.1): a server that cuts the results may say so with
     * "Warning: 299 <service>: The number of results exceeded the maximum supported by the
     * server. Additional results can be requested." (HealthImaging does not, as far as we read) */
    const char *w = http_resp_header(resp, "Warning");
    return w && strncmp(w, "299", 3) == 0 && strstr(w, "exceeded") != NULL;
}

static void on_page(void *arg, const struct http_resp *resp)
{
    struct dw_op *op = arg;
    op->req = NULL;
    if (op->cancelled) {
        dw_op_free(op);
        return;
    }
    char why[512];
    if (resp->res.err < 0) {
        dw_why_http(&resp->res, "search", why, sizeof why);
        finish(op, resp->res.err, &resp->res, why);
        return;
    }
    struct dicom_json_opts jo = {.max_objects = op->d->page_size > 1000 ? op->d->page_size : 1000};
    int rc = dicom_json_parse_array(resp->body, resp->body_len, &jo, &op->page);
    if (rc < 0) {
        snprintf(why, sizeof why, "HealthImaging search: the answer is not the DICOM JSON "
                                  "PS3.18 F.2 documents (%s)", err_str(rc));
        finish(op, rc == ERR_NOMEM ? rc : ERR_MALFORMED, &resp->res, why);
        return;
    }
    op->page_outcome = dw_qido_page_outcome(op->page.n, op->d->page_size, op->offset,
                                            op->d->max_results);
    if (warns_of_cap(resp))
        op->page_outcome = ERR_LIMIT;
    op->next = 0;
    emit(op);
}

static void fetch_page(struct dw_op *op)
{
    struct wbuf path, query;
    wbuf_init(&path, 1024);
    wbuf_init(&query, 64u * 1024u);
    int rc = dw_qido_build(&op->q, op->d->page_size, op->offset, &path, &query);
    wbuf_u8(&path, 0);
    wbuf_u8(&query, 0);
    if (rc == 0 && (path.err || query.err))
        rc = ERR_NOMEM;
    struct http_req *r = NULL;
    if (rc == 0)
        rc = dw_request(op->d, op->creds, (const char *)path.p, (const char *)query.p, &r);
    wbuf_cleanup(&path);
    wbuf_cleanup(&query);
    if (rc == 0)
        rc = http_req_add_header(r, "Accept", "application/dicom+json");
    if (rc == 0) {
        http_req_set_response_cap(r, op->d->max_page_bytes);
        op->req = r;
        rc = http_send(op->d->ac.http, r, on_page, op); /* takes r */
        r = NULL;
        if (rc < 0)
            op->req = NULL;
    }
    http_req_free(r);
    if (rc < 0) {
        char why[128];
        snprintf(why, sizeof why, "HealthImaging search: the request could not be made (%s)",
                 err_str(rc));
        finish(op, rc, NULL, why);
    }
}

void dw_search_resume(struct dw_op *op)
{
    emit(op);
}

/* A deep copy of q's strings in one buffer. */
static int copy_query(struct dw_op *op, const struct dw_qido *q)
{
    size_t total = 0;
    const char *fixed[2] = {q->study, q->series};
    for (size_t i = 0; i < 2; i++)
        total += fixed[i] ? strlen(fixed[i]) + 1 : 0;
    for (size_t i = 0; i < q->n_keys; i++)
        total += strlen(q->keys[i].name) + strlen(q->keys[i].value) + 2;
    for (size_t i = 0; i < q->n_include; i++)
        total += strlen(q->includefield[i]) + 1;
    op->qbuf = malloc(total + 1);
    op->keys = calloc(q->n_keys + 1, sizeof *op->keys);
    op->incl = calloc(q->n_include + 1, sizeof *op->incl);
    if (!op->qbuf || !op->keys || !op->incl)
        return ERR_NOMEM;
    char *w = op->qbuf;
#define DUP(dst, s)                                                                                \
    do {                                                                                           \
        size_t l_ = strlen(s) + 1;                                                                 \
        memcpy(w, (s), l_);                                                                        \
        (dst) = w;                                                                                 \
        w += l_;                                                                                   \
    } while (0)
    op->q = *q;
    if (q->study)
        DUP(op->q.study, q->study);
    if (q->series)
        DUP(op->q.series, q->series);
    for (size_t i = 0; i < q->n_keys; i++) {
        DUP(op->keys[i].name, q->keys[i].name);
        DUP(op->keys[i].value, q->keys[i].value);
    }
    for (size_t i = 0; i < q->n_include; i++)
        DUP(op->incl[i], q->includefield[i]);
#undef DUP
    op->q.keys = op->keys;
    op->q.includefield = op->incl;
    return 0;
}

int dw_search(struct dw_client *d, struct creds_provider *creds, const struct dw_qido *q,
              const struct dw_search_cbs *cbs, struct dw_op **out)
{
    *out = NULL;
    struct wbuf path, query; /* refuse a bad query now, not in a callback */
    wbuf_init(&path, 1024);
    wbuf_init(&query, 64u * 1024u);
    int rc = dw_qido_build(q, d->page_size, 0, &path, &query);
    wbuf_cleanup(&path);
    wbuf_cleanup(&query);
    TRY(rc);
    struct dw_op *op = calloc(1, sizeof *op);
    if (!op)
        return ERR_NOMEM;
    op->kind = DW_OP_SEARCH;
    op->d = d;
    op->creds = creds;
    op->scbs = *cbs;
    rc = copy_query(op, q);
    if (rc < 0) {
        dw_op_free(op);
        return rc;
    }
    /* the first page from the loop, so that no callback runs inside this call: emit() on the
     * empty page there fetches page 0 */
    op->page_outcome = 1;
    op->paused = true;
    dw_resume(op);
    *out = op;
    return 0;
}
