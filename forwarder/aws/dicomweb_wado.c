/* dicomweb: WADO-RS instance retrieval, streamed. The answer's bytes go, as libcurl hands them
 * over, through the multipart reader (when the answer is multipart/related) and the File Meta
 * Information reader, and the dataset bytes to the reader's data callback. When that callback
 * pauses, the rest of the piece in hand is either left to libcurl (which offers it again on
 * resume, http_stream.c) or, for the few bytes the multipart reader held back as a possible
 * delimiter, kept in op->carry; nothing else is ever buffered. */
#include "dicomweb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dicomweb_int.h"

static void finish(struct dw_op *op, int err, const struct http_result *res, const char *why)
{
    op->finished = true;
    op->wcbs.done(op->wcbs.arg, err, res, why ? why : "");
    dw_op_free(op);
}

static int fail(struct dw_op *op, int err, const char *why)
{
    snprintf(op->why, sizeof op->why, "HealthImaging retrieve: %s", why);
    return err;
}

/* A user callback's outcome: a dw_cancel inside it ends the transfer. */
static int after_cb(struct dw_op *op, int rc)
{
    op->in_cb = false;
    if (op->cancelled)
        return HTTP_ERR_CANCELED;
    if (rc < 0 && !op->why[0])
        snprintf(op->why, sizeof op->why, "the retrieval was stopped by its reader");
    return rc;
}

/* Bytes of the body (of the part) through the meta reader to the reader. Returns 0 when all
 * len were taken, 1 when the reader paused after *taken of them, < 0 on failure. */
static int feed(struct dw_op *op, const uint8_t *d, size_t len, size_t *taken)
{
    size_t t = 0;
    for (;;) {
        struct p10meta_ev ev;
        int k = p10meta_next(op->p10, d ? d + t : NULL, len - t, &ev);
        if (k < 0)
            return fail(op, k, k == ERR_LIMIT ? "the File Meta Information is over 64 KiB"
                                              : "the answer is not a DICOM Part-10 file");
        t += (size_t)k;
        if (ev.type == P10META_EV_META) {
            if (strcmp(op->p10->info.sop, op->want_sop) != 0)
                return fail(op, ERR_MALFORMED, "the answer holds another instance than asked");
            struct dw_instance inst;
            memcpy(inst.ts, op->p10->info.ts, sizeof inst.ts);
            memcpy(inst.sop_class, op->p10->info.sop_class, sizeof inst.sop_class);
            memcpy(inst.sop, op->p10->info.sop, sizeof inst.sop);
            inst.bytes = !op->multipart && op->content_length > op->p10->meta_len
                             ? op->content_length - op->p10->meta_len
                             : 0;
            op->told_begin = true;
            op->in_cb = true;
            int rc = after_cb(op, op->wcbs.begin(op->wcbs.arg, &inst));
            if (rc < 0)
                return rc;
        } else if (ev.type == P10META_EV_DATA) {
            op->in_cb = true;
            int rc = after_cb(op, op->wcbs.data(op->wcbs.arg, ev.data, ev.len));
            if (rc < 0)
                return rc;
            if (rc == 1) {
                op->paused = true;
                *taken = t;
                return 1;
            }
        } else if (t >= len) {
            *taken = len;
            return 0;
        }
    }
}

/* What a pause left behind (the meta reader's dataset bytes, op->carry), first. */
static int deliver_pending(struct dw_op *op)
{
    bool p10_left = p10meta_done(op->p10) && op->p10->given < op->p10->len;
    if (!p10_left && op->ncarry == 0)
        return 0;
    size_t taken = 0;
    int rc = feed(op, op->carry, op->ncarry, &taken);
    if (rc < 0)
        return rc;
    memmove(op->carry, op->carry + taken, op->ncarry - taken);
    op->ncarry -= taken;
    return rc;
}

static int pump_multipart(struct dw_op *op, const uint8_t *p, size_t n, size_t *used)
{
    size_t off = 0;
    for (;;) {
        struct mpart_ev ev;
        int k = mpart_next(op->mp, p + off, n - off, &ev);
        if (k < 0)
            return fail(op, ERR_MALFORMED, "the multipart/related body is broken");
        off += (size_t)k;
        switch (ev.type) {
        case MPART_EV_NONE:
            if (off >= n) {
                *used = n;
                return 0;
            }
            break;
        case MPART_EV_HEAD:
            if (strncasecmp(op->mp->part_type, "application/dicom", 17) != 0 ||
                op->mp->part_type[17] == '+')
                return fail(op, ERR_MALFORMED, "a part is not application/dicom");
            op->part_seen = true;
            break;
        case MPART_EV_DATA: {
            size_t taken = 0;
            int rc = feed(op, ev.data, ev.len, &taken);
            if (rc < 0)
                return rc;
            if (rc == 1) {
                if (taken < ev.len) {
                    if (ev.data >= p && ev.data < p + n) {
                        /* a slice of the input: the reader is where it was before it, so the
                         * rest is simply not used (libcurl offers it again) */
                        off = (size_t)(ev.data - p) + taken;
                    } else { /* a held-back slice: at most a delimiter's length */
                        size_t rest = ev.len - taken;
                        if (rest > sizeof op->carry - op->ncarry)
                            return fail(op, ERR_LIMIT, "internal: carry overflow");
                        memcpy(op->carry + op->ncarry, ev.data + taken, rest);
                        op->ncarry += rest;
                    }
                }
                *used = off;
                return 1;
            }
            break;
        }
        default: /* END, CLOSE: checked when the answer ends */
            break;
        }
    }
}

static int on_data(void *arg, const uint8_t *p, size_t n, size_t *used)
{
    struct dw_op *op = arg;
    *used = 0;
    if (op->cancelled)
        return HTTP_ERR_CANCELED;
    int rc = deliver_pending(op);
    if (rc != 0)
        return rc;
    if (op->multipart)
        return pump_multipart(op, p, n, used);
    size_t taken = 0;
    rc = feed(op, p, n, &taken);
    *used = rc == 1 ? taken : n;
    return rc;
}

static bool header_is(const char *v, const char *type)
{
    size_t n = strlen(type);
    return v && strncasecmp(v, type, n) == 0 && (v[n] == '\0' || v[n] == ';' || v[n] == ' ');
}

static int on_head(void *arg, const struct http_resp *resp)
{
    struct dw_op *op = arg;
    if (op->cancelled)
        return HTTP_ERR_CANCELED;
    const char *ct = http_resp_header(resp, "Content-Type");
    p10meta_init(op->p10);
    op->ncarry = 0;
    op->part_seen = false;
    op->content_length = 0;
    if (header_is(ct, "multipart/related")) {
        char b[MPART_BOUNDARY_MAX + 1];
        if (mpart_boundary(ct, b, sizeof b) < 0 || mpart_init(op->mp, b, 1) < 0)
            return fail(op, ERR_MALFORMED, "a multipart/related answer without a usable "
                                           "boundary");
        op->multipart = true;
        return 0;
    }
    if (!header_is(ct, "application/dicom"))
        return fail(op, ERR_MALFORMED, "the answer's Content-Type is neither application/dicom "
                                       "nor multipart/related");
    op->multipart = false;
    const char *cl = http_resp_header(resp, "Content-Length");
    uint64_t v = 0;
    for (size_t i = 0; cl && cl[i] && i < 20; i++) {
        if (cl[i] < '0' || cl[i] > '9') {
            v = 0;
            break;
        }
        v = v * 10 + (uint64_t)(cl[i] - '0');
    }
    op->content_length = v;
    return 0;
}

/* Everything arrived; the reader still has pending bytes to take or is paused. */
static void end_when_taken(struct dw_op *op)
{
    int rc = deliver_pending(op);
    if (op->cancelled) {
        dw_op_free(op);
        return;
    }
    if (rc == 1)
        return; /* dw_resume comes back here */
    if (rc < 0) {
        finish(op, rc, NULL, op->why);
        return;
    }
    finish(op, 0, &op->end_res, "");
}

static void on_done(void *arg, const struct http_resp *resp)
{
    struct dw_op *op = arg;
    op->req = NULL;
    if (op->cancelled) {
        dw_op_free(op);
        return;
    }
    char why[512];
    int err = resp->res.err;
    if (err < 0) {
        if (op->why[0]) /* ours or the reader's */
            finish(op, err, &resp->res, op->why);
        else {
            dw_why_http(&resp->res, "retrieve", why, sizeof why);
            finish(op, err, &resp->res, why);
        }
        return;
    }
    if (!p10meta_done(op->p10))
        err = fail(op, ERR_TRUNCATED, "the answer ended inside its File Meta Information");
    else if (op->multipart && !op->part_seen)
        err = fail(op, ERR_MALFORMED, "the multipart/related answer has no part");
    else if (op->multipart && !mpart_closed(op->mp))
        err = fail(op, ERR_TRUNCATED, "the multipart/related body ended before its closing "
                                      "delimiter");
    if (err < 0) {
        finish(op, err, &resp->res, op->why);
        return;
    }
    op->http_done = true;
    op->end_res = resp->res;
    if (op->paused)
        return; /* dw_resume takes the rest, then ends */
    end_when_taken(op);
}

void dw_wado_resume(struct dw_op *op)
{
    if (op->http_done) {
        end_when_taken(op);
        return;
    }
    int rc = deliver_pending(op);
    if (op->cancelled) { /* cancelled in a callback: the request is being cancelled too */
        if (!op->req)
            dw_op_free(op);
        return;
    }
    if (rc < 0) {
        /* end the transfer; its done callback reports op->why */
        if (op->req) {
            http_req_cancel(op->req);
            return;
        }
        finish(op, rc, NULL, op->why);
        return;
    }
    if (rc == 0 && op->req)
        http_req_resume(op->req);
}

int dw_retrieve(struct dw_client *d, struct creds_provider *creds, const struct dw_wado *w,
                const struct dw_wado_cbs *cbs, struct dw_op **out)
{
    *out = NULL;
    size_t ls = w->study ? strlen(w->study) : 0, le = w->series ? strlen(w->series) : 0,
           lo = w->sop ? strlen(w->sop) : 0;
    if (!ls || !le || !lo || !dcm_uid_valid((const uint8_t *)w->study, ls) ||
        !dcm_uid_valid((const uint8_t *)w->series, le) ||
        !dcm_uid_valid((const uint8_t *)w->sop, lo))
        return ERR_MALFORMED;
    const char *ts = w->transfer_syntax;
    if (ts && strcmp(ts, "*") != 0 && !dcm_uid_valid((const uint8_t *)ts, strlen(ts)))
        return ERR_MALFORMED;
    struct dw_op *op = calloc(1, sizeof *op);
    if (!op)
        return ERR_NOMEM;
    op->kind = DW_OP_WADO;
    op->d = d;
    op->creds = creds;
    op->wcbs = *cbs;
    op->mp = calloc(1, sizeof *op->mp);
    op->p10 = calloc(1, sizeof *op->p10);
    snprintf(op->want_sop, sizeof op->want_sop, "%s", w->sop);
    char path[256], query[64] = "", accept[160];
    int rc = op->mp && op->p10 ? 0 : ERR_NOMEM;
    if (rc == 0) {
        p10meta_init(op->p10);
        snprintf(path, sizeof path, "/studies/%s/series/%s/instances/%s", w->study, w->series,
                 w->sop);
        if (w->image_set_id) {
            size_t n = strlen(w->image_set_id);
            bool ok = n > 0 && n <= 32;
            for (size_t i = 0; i < n; i++)
                ok = ok && ((w->image_set_id[i] >= '0' && w->image_set_id[i] <= '9') ||
                            (w->image_set_id[i] >= 'a' && w->image_set_id[i] <= 'z'));
            if (!ok)
                rc = ERR_MALFORMED;
            else
                snprintf(query, sizeof query, "imageSetId=%s", w->image_set_id);
        }
        if (w->multipart)
            snprintf(accept, sizeof accept, "multipart/related; type=\"application/dicom\"%s%s",
                     ts ? "; transfer-syntax=" : "", ts ? ts : "");
        else
            snprintf(accept, sizeof accept, "application/dicom%s%s",
                     ts ? "; transfer-syntax=" : "", ts ? ts : "");
    }
    struct http_req *r = NULL;
    if (rc == 0)
        rc = dw_request(d, creds, path, query, &r);
    if (rc == 0)
        rc = http_req_add_header(r, "Accept", accept);
    if (rc == 0) {
        struct http_stream st = {.head = on_head, .data = on_data, .arg = op};
        http_req_set_stream(r, &st);
        http_req_set_timeouts(r, 0, -1); /* a paused reader may take its time; stalls still end */
        op->req = r;
        rc = http_send(d->ac.http, r, on_done, op); /* takes r */
        r = NULL;
        if (rc < 0)
            op->req = NULL;
    }
    http_req_free(r);
    if (rc < 0) {
        dw_op_free(op);
        return rc;
    }
    *out = op;
    return 0;
}
