/* http: a request's life on the client: credentials, then attempts, each signed afresh; retries
 * with backoff and full jitter; clock skew correction; the done callback, exactly once. */
#include "http.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "creds_provider.h"
#include "http_int.h"

static double rnd01(struct http_client *c)
{
    /* xorshift64*: jitter only, no secrecy needed */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    uint64_t v = c->rng * 2685821657736338717ULL;
    return (double)(v >> 11) / 9007199254740992.0;
}

/* Take r off its client's list of live requests. */
static void unlink_req(struct http_req *r)
{
    struct http_client *c = r->c;
    if (r->prev)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
}

void http_finish(struct http_req *r, int err)
{
    struct http_client *c = r->c;
    http_close_fds(r);
    r->state = RQ_DONE;
    r->res.err = err;
    unlink_req(r);
    struct http_resp resp = {.res = r->res, .req = r};
    if (err == 0 || err == HTTP_ERR_STATUS || err == HTTP_ERR_CONDITION) {
        resp.body = r->resp.p;
        resp.body_len = r->resp.len;
    }
    r->done(r->arg, &resp);
    http_req_free(r);
    c->pending--;
    http_client_maybe_closed(c);
}

static void arm_retry_timer(struct http_client *c);

static void on_retry_timer(uv_timer_t *t)
{
    struct http_client *c = t->data;
    uint64_t now = uv_now(c->loop);
    struct http_req *r = c->reqs;
    while (r) {
        struct http_req *next = r->next;
        if (r->state == RQ_WAIT_RETRY && r->due_ms <= now) {
            http_start_attempt(r); /* may finish (and free) r; next dies only by a close */
            if (c->closing)
                return;
        }
        r = next;
    }
    arm_retry_timer(c);
}

static void arm_retry_timer(struct http_client *c)
{
    if (c->closing)
        return;
    uint64_t best = UINT64_MAX;
    for (struct http_req *r = c->reqs; r; r = r->next) {
        if (r->state == RQ_WAIT_RETRY && r->due_ms < best)
            best = r->due_ms;
    }
    if (best == UINT64_MAX) {
        uv_timer_stop(&c->retry);
        return;
    }
    uint64_t now = uv_now(c->loop);
    uv_timer_start(&c->retry, on_retry_timer, best > now ? best - now : 0, 0);
}

/* Schedule the next attempt after a backoff; false (nothing scheduled) when the request's
 * deadline would pass first. */
static bool schedule_retry(struct http_req *r)
{
    struct http_client *c = r->c;
    unsigned n = r->attempts > r->creds_failures ? r->attempts : r->creds_failures;
    uint64_t delay = http_backoff_ms(n, c->o.base_delay_ms, c->o.max_delay_ms, rnd01(c));
    uint64_t now = uv_now(c->loop);
    if (r->deadline_ms && now + delay > r->sent_ms + r->deadline_ms)
        return false;
    r->state = RQ_WAIT_RETRY;
    r->due_ms = now + delay;
    arm_retry_timer(c);
    return true;
}

bool http_status_accepted(const struct http_req *r, long status)
{
    if (status >= 200 && status < 300)
        return true;
    for (int i = 0; i < r->naccept; i++) {
        if (r->accept[i] == status)
            return true;
    }
    return false;
}

/* A signature refused because of our clock (RequestTimeTooSkewed, Signature expired): AWS's
 * Date header says how far off we are. True when the stored skew changed by over a minute. */
static bool fix_skew(struct http_client *c, const char *date)
{
    int64_t server;
    if (!date || http_parse_http_date(date, &server) < 0)
        return false;
    int64_t skew = server - (int64_t)time(NULL);
    int64_t d = skew - c->skew_s;
    if (d > -240 && d < 240) /* SigV4 allows 5 minutes: within 4 it is not our clock */
        return false;
    c->skew_s = skew;
    struct logb b;
    if (log_begin(&b, LOG_WARN, "aws_clock_skew")) {
        log_i64(&b, "skew_s", skew);
        log_end(&b);
    }
    return true;
}

void http_finish_attempt(struct http_req *r, CURLcode cc)
{
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    curl_slist_free_all(r->slist);
    r->slist = NULL;
    http_close_fds(r);
    r->res.status = status;
    r->res.curl_code = (int)cc;
    r->res.attempts = r->attempts;
    r->res.error_code[0] = '\0';
    r->res.message[0] = '\0';
    const char *rid = http_req_resp_header(r, "x-amzn-RequestId");
    if (!rid)
        rid = http_req_resp_header(r, "x-amz-request-id");
    if (rid)
        http_copy(r->res.request_id, sizeof(r->res.request_id), rid, strlen(rid));
    if (r->cancel) {
        http_finish(r, HTTP_ERR_CANCELED);
        return;
    }
    if (r->stream_err) { /* a stream callback ended it */
        http_finish(r, r->stream_err);
        return;
    }
    if (cc != CURLE_OK) {
        if (r->too_big) {
            http_finish(r, HTTP_ERR_TOO_BIG);
            return;
        }
        if (r->body_err) {
            http_copy(r->res.message, sizeof(r->res.message), "request body unreadable", 23);
            http_finish(r, r->body_err);
            return;
        }
        const char *m = r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc);
        http_copy(r->res.message, sizeof(r->res.message), m, strlen(m));
        /* a body taken in part cannot be taken again: no retry once a stream began */
        if (!r->streamed && http_is_retryable((int)cc, 0, NULL) &&
            r->attempts < r->max_attempts && schedule_retry(r))
            return;
        http_finish(r, HTTP_ERR_NETWORK);
        return;
    }
    if (http_status_accepted(r, status)) {
        http_finish(r, 0);
        return;
    }
    http_parse_aws_error(http_req_resp_header(r, "x-amzn-ErrorType"), r->resp.p, r->resp.len,
                         r->res.error_code, sizeof(r->res.error_code), r->res.message,
                         sizeof(r->res.message));
    if (r->creds && !r->skew_retried && (status == 403 || status == 400) &&
        fix_skew(r->c, http_req_resp_header(r, "Date"))) {
        r->skew_retried = true; /* once per request: the next attempt signs with server time */
        if (schedule_retry(r))
            return;
    }
    if (http_is_expired_code(r->res.error_code) && r->creds)
        creds_invalidate(r->creds);
    if (http_is_retryable(0, status, r->res.error_code)) {
        if (r->attempts < r->max_attempts && schedule_retry(r))
            return;
        http_finish(r, HTTP_ERR_THROTTLED);
        return;
    }
    if (strcmp(r->res.error_code, "ConditionalCheckFailedException") == 0 || status == 412) {
        http_finish(r, HTTP_ERR_CONDITION);
        return;
    }
    http_finish(r, HTTP_ERR_STATUS);
}

/* Sign and start one attempt with creds (NULL = unsigned). */
static int launch(struct http_req *r, const struct aws_creds *cr)
{
    struct curl_slist *l = NULL;
    TRY(http_sign_headers(r, cr, r->c->skew_s, &l));
    return http_easy_start(r, l);
}

static void on_creds(void *arg, int err, const struct aws_creds *cr)
{
    struct http_req *r = arg;
    if (r->cancel || r->c->closing) {
        http_finish(r, HTTP_ERR_CANCELED);
        return;
    }
    if (err < 0 || !cr) {
        http_copy(r->res.message, sizeof(r->res.message), "no AWS credentials", 18);
        /* a metadata endpoint hiccup: back off like any transient failure */
        if (++r->creds_failures < r->max_attempts && schedule_retry(r))
            return;
        http_finish(r, HTTP_ERR_CREDS);
        return;
    }
    int rc = launch(r, cr);
    if (rc < 0)
        http_finish(r, rc);
}

void http_start_attempt(struct http_req *r)
{
    if (r->creds) {
        const struct aws_creds *cr = creds_peek(r->creds);
        if (!cr) {
            r->state = RQ_WAIT_CREDS;
            int rc = creds_get(r->creds, on_creds, r);
            if (rc < 0)
                http_finish(r, HTTP_ERR_CREDS);
            return;
        }
        int rc = launch(r, cr);
        if (rc < 0)
            http_finish(r, rc);
        return;
    }
    int rc = launch(r, NULL);
    if (rc < 0)
        http_finish(r, rc);
}

int http_send(struct http_client *c, struct http_req *r, http_done_cb done, void *arg)
{
    if (c->closing) {
        http_req_free(r);
        return ERR_WRONG_STATE;
    }
    r->c = c;
    r->done = done;
    r->arg = arg;
    r->sent_ms = uv_now(c->loop);
    if (!r->max_attempts)
        r->max_attempts = c->o.max_attempts;
    r->next = c->reqs;
    r->prev = NULL;
    if (c->reqs)
        c->reqs->prev = r;
    c->reqs = r;
    c->pending++;
    r->state = RQ_NEW;
    bool need_hash = r->creds && r->payload == HTTP_PAYLOAD_SIGNED && !r->hash_ready;
    if (need_hash) {
        int rc = http_hash_body(r);
        if (rc < 0) { /* the callback will never run: undo the registration */
            unlink_req(r);
            c->pending--;
            http_req_free(r);
            return rc;
        }
        if (rc > 0)
            return 0; /* hash_done starts the first attempt */
    }
    /* First attempt from the retry timer at once, so done() never runs inside http_send. */
    r->state = RQ_WAIT_RETRY;
    r->due_ms = 0;
    arm_retry_timer(c);
    return 0;
}
