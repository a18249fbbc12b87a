/* http: streamed answers. The body of an accepted answer is handed to the request's stream
 * callbacks as libcurl receives it; a callback that asks to pause makes the write callback
 * answer CURL_WRITEFUNC_PAUSE, so that libcurl keeps the bytes of that delivery and stops
 * reading the socket (the server's window fills and it slows down: backpressure, nothing
 * buffered here). libcurl hands the kept bytes again when the transfer is unpaused; the part the
 * reader already took is dropped then (skip). Unpausing and cancelling run from a timer of the
 * loop, never inside libcurl's callbacks nor inside the caller's call. */
#include "http.h"

#include <string.h>

#include "http_int.h"

/* The first body byte of an attempt: is the answer accepted (then it is streamed) or an error
 * (then it is buffered and parsed as any other)? */
static int decide(struct http_req *r)
{
    r->stream_decided = true;
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (!http_status_accepted(r, status))
        return 0;
    r->stream_on = true;
    struct http_resp resp = {.req = r};
    resp.res.status = status;
    return r->stream.head ? r->stream.head(r->stream.arg, &resp) : 0;
}

size_t http_stream_write(struct http_req *r, const char *p, size_t n)
{
    if (!r->stream_decided) {
        int rc = decide(r);
        if (rc < 0) {
            r->stream_err = rc;
            return 0;
        }
    }
    if (!r->stream_on) { /* an error answer: buffered like any other (capped) */
        if (n > r->resp.max - r->resp.len) {
            r->too_big = true;
            return 0;
        }
        wbuf_put(&r->resp, p, n);
        return r->resp.err ? 0 : n;
    }
    if (r->cancel_pending)
        return CURL_WRITEFUNC_PAUSE; /* taken by nobody: the kick timer ends the request */
    size_t off = 0;
    if (r->skip) { /* a redelivery after a pause: its head was taken already */
        off = r->skip < n ? r->skip : n;
        r->skip -= off;
        if (off == n)
            return n;
    }
    size_t used = n - off;
    int rc = r->stream.data(r->stream.arg, (const uint8_t *)p + off, n - off, &used);
    if (rc < 0) {
        r->stream_err = rc;
        return 0;
    }
    if (rc == 0) {
        r->streamed = true;
        return n;
    }
    if (used > n - off)
        used = n - off;
    if (used > 0)
        r->streamed = true;
    /* libcurl keeps p[0..n) and offers it again on unpause: what was taken is skipped then */
    r->skip = off + used;
    r->paused = true;
    return CURL_WRITEFUNC_PAUSE;
}

static void arm_kick(struct http_client *c)
{
    if (!c->closing)
        uv_timer_start(&c->kick, http_stream_kick, 0, 0);
}

void http_req_resume(struct http_req *r)
{
    if (r->state != RQ_RUNNING || !r->paused || r->resume_pending)
        return;
    r->resume_pending = true;
    arm_kick(r->c);
}

static void cancel_now(struct http_req *r)
{
    struct http_client *c = r->c;
    r->cancel = true;
    if (r->state == RQ_RUNNING) {
        curl_multi_remove_handle(c->multi, r->easy);
        http_finish(r, HTTP_ERR_CANCELED);
    } else if (r->state == RQ_WAIT_RETRY || r->state == RQ_NEW) {
        http_finish(r, HTTP_ERR_CANCELED);
    } /* HASHING and WAIT_CREDS finish from their callbacks, which look at r->cancel */
}

void http_req_cancel(struct http_req *r)
{
    if (r->state == RQ_DONE || r->cancel)
        return;
    if (r->c->in_curl > 0) { /* inside libcurl: not now */
        r->cancel_pending = true;
        arm_kick(r->c);
        return;
    }
    cancel_now(r);
}

void http_client_defer(struct http_client *c, struct http_defer *d)
{
    if (d->queued || c->closing)
        return;
    d->queued = true;
    d->next = NULL;
    d->seq = ++c->defer_seq;
    struct http_defer **pp = &c->deferred;
    while (*pp)
        pp = &(*pp)->next;
    *pp = d;
    arm_kick(c);
}

void http_client_undefer(struct http_client *c, struct http_defer *d)
{
    if (!d->queued)
        return;
    for (struct http_defer **pp = &c->deferred; *pp; pp = &(*pp)->next) {
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    }
    d->queued = false;
    d->next = NULL;
}

/* The calls queued before this pass (those they queue run in the next one). Each is taken off
 * the queue itself before it runs, so a call may take any other off safely. */
static void run_deferred(struct http_client *c)
{
    uint64_t upto = c->defer_seq;
    while (c->deferred && c->deferred->seq <= upto && !c->closing) {
        struct http_defer *d = c->deferred;
        c->deferred = d->next;
        d->next = NULL;
        d->queued = false;
        d->cb(d->arg);
    }
    if (c->closing) {
        while (c->deferred) {
            struct http_defer *d = c->deferred;
            c->deferred = d->next;
            d->next = NULL;
            d->queued = false;
        }
    } else if (c->deferred) {
        arm_kick(c);
    }
}

void http_stream_kick(uv_timer_t *t)
{
    struct http_client *c = t->data;
    bool again = true;
    /* each pass handles one request and starts over: a callback may end any request */
    while (again && !c->closing) {
        again = false;
        for (struct http_req *r = c->reqs; r; r = r->next) {
            if (r->cancel_pending && !r->cancel) {
                r->cancel_pending = false;
                cancel_now(r);
                again = true;
                break;
            }
            if (r->resume_pending && r->state == RQ_RUNNING) {
                r->resume_pending = false;
                r->paused = false;
                c->in_curl++;
                curl_easy_pause(r->easy, CURLPAUSE_CONT); /* may hand the kept bytes now */
                c->in_curl--;
                again = true;
                break;
            }
        }
    }
    if (!c->closing)
        http_check_multi_info(c);
    run_deferred(c);
}
