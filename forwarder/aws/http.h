/* http: HTTPS requests to AWS on a libuv loop, through libcurl's multi-socket interface
 * (uv_poll_t per socket + one uv_timer_t, as in curl's docs/examples/multi-uv.c). One client per
 * loop; every callback runs on that loop's thread. curl_easy_perform is never used.
 *
 * A request is built (method, URL, query, headers, a body of memory and file-range segments),
 * optionally marked for SigV4 signing with a credentials provider, then sent. The client signs
 * each attempt afresh, retries with exponential backoff and full jitter on network errors, 5xx,
 * 429 and AWS throttling / request-timeout / expired-token errors, and fails at once, without
 * retrying, on any other 4xx. Every attempt is bounded by a connect timeout, a total timeout and
 * a low-speed limit; every response body by a cap. File segments are streamed from disk with
 * pread, never loaded whole. */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"

struct http_client;
struct http_req;
struct creds_provider;

/* Error codes of this library (below the common ones; http_err_str() names them and defers to
 * err_str() for the rest). */
enum http_err {
    HTTP_ERR_BASE = -21000,
    HTTP_ERR_NETWORK = -21001,   /* connect/send/receive failed or timed out (after retries) */
    HTTP_ERR_STATUS = -21002,    /* the service answered non-2xx: see status and error_code */
    HTTP_ERR_THROTTLED = -21003, /* still throttled (or 5xx) when the attempts ran out */
    HTTP_ERR_CREDS = -21004,     /* no credentials could be obtained */
    HTTP_ERR_CONDITION = -21005, /* DynamoDB ConditionalCheckFailedException (or S3 412) */
    HTTP_ERR_TOO_BIG = -21006,   /* response body over the request's cap */
    HTTP_ERR_CANCELED = -21007,  /* client closing: request abandoned */
    HTTP_ERR_PARSE = -21008,     /* 2xx but the body is not what the API documents */
    HTTP_ERR_LAST = -21009,
};
const char *http_err_str(int code);

struct http_opts {
    long connect_timeout_ms;  /* default 5000 */
    long request_timeout_ms;  /* per attempt, default 300000, plus 1 s per 256 KiB of body;
                                 0 keeps the default */
    long low_speed_bytes;     /* abort an attempt below this many bytes/s ... (default 1024) */
    long low_speed_time_s;    /* ... for this long (default 30) */
    unsigned max_attempts;    /* default 8 (1 = never retry) */
    unsigned base_delay_ms;   /* default 100: attempt n waits random(0, min(max, base*2^n)) */
    unsigned max_delay_ms;    /* default 20000 */
    size_t max_response;      /* default response body cap, default 1 MiB */
    long max_connections;     /* per client, default 32 */
    const char *ca_file;      /* NULL = system trust store */
};
/* Fill o with the defaults above. */
void http_opts_default(struct http_opts *o);

/* The outcome of a request after all attempts. */
struct http_result {
    int err;              /* 0 when the last attempt got 2xx; else HTTP_ERR_* (or ERR_NOMEM...) */
    long status;          /* last HTTP status, 0 when none was received */
    int curl_code;        /* last CURLcode, 0 when none */
    unsigned attempts;
    char error_code[96];  /* AWS error type ("NoSuchKey", "ConditionalCheckFailedException");
                             from x-amzn-ErrorType (part before ':'), JSON "__type" (part after
                             '#'), JSON "code"/"Code", or S3 XML <Code>; "" if none */
    char message[512];    /* AWS error message or a curl error string; "" if none */
    char request_id[80];  /* x-amzn-RequestId / x-amz-request-id when present */
};

/* What the done callback sees; everything is borrowed and dies when the callback returns. */
struct http_resp {
    struct http_result res;
    const uint8_t *body;
    size_t body_len;
    const struct http_req *req; /* the request, for http_req_user() */
};
typedef void (*http_done_cb)(void *arg, const struct http_resp *resp);

/* A response header of resp by case-insensitive name (first occurrence, value trimmed), or NULL.
 * Up to 64 headers of at most 8 KiB in all are kept per response. */
const char *http_resp_header(const struct http_resp *resp, const char *name);

/* Create a client on loop (caller's loop, caller's thread). opts NULL = defaults. 0, ERR_NOMEM
 * or ERR_UNSUPPORTED (libcurl init failed). curl_global_init is the caller's (main's) job;
 * http_global_init() does it once, thread-safely. */
MUST_CHECK int http_global_init(void);
MUST_CHECK int http_client_new(uv_loop_t *loop, const struct http_opts *opts,
                               struct http_client **out);
/* Abort every request in flight or waiting to retry (each done callback runs with
 * HTTP_ERR_CANCELED), close every handle, then call done(arg) and free the client. After this
 * call nothing more may be sent. Close the credentials provider first (creds_provider_close). */
void http_client_close(struct http_client *c, void (*done)(void *arg), void *arg);
uv_loop_t *http_client_loop(const struct http_client *c);
/* Number of requests in flight or waiting to retry. */
size_t http_client_pending(const struct http_client *c);

/* A new request. url is "scheme://host[:port]/path" with the path already percent-encoded as it
 * must go on the wire (build S3 keys with sigv4_uri_encode); no query in it. 0, ERR_NOMEM,
 * ERR_MALFORMED (url has no scheme/host, or has '?'/'#'). */
MUST_CHECK int http_req_new(const char *method, const char *url, struct http_req **out);
/* http_req_free: only for a request that was never sent. NULL is fine. */
void http_req_free(struct http_req *r);
/* The query (raw, without '?'); it is sent in canonical form (sigv4_canonical_query): sorted,
 * strictly encoded, "uploads" as "uploads=". 0, ERR_MALFORMED or ERR_NOMEM. */
MUST_CHECK int http_req_set_query(struct http_req *r, const char *raw);
/* Add a header (copied). Host, X-Amz-Date, X-Amz-Security-Token, X-Amz-Content-Sha256 and
 * Authorization are added by the signer. All added headers are signed. 0, ERR_LIMIT (over 32
 * headers or 8 KiB), ERR_MALFORMED (CR/LF or ':' in the name, CR/LF in the value), ERR_NOMEM. */
MUST_CHECK int http_req_add_header(struct http_req *r, const char *name, const char *value);
/* Append a body segment: bytes copied from memory, or len bytes of file path from offset off,
 * read with pread while sending (re-read on every retry). The file must stay unchanged until the
 * done callback. 0, ERR_LIMIT (over 8 segments), ERR_NOMEM. */
MUST_CHECK int http_req_body_mem(struct http_req *r, const void *p, size_t n);
MUST_CHECK int http_req_body_file(struct http_req *r, const char *path, uint64_t off,
                                  uint64_t len);
enum http_payload {
    HTTP_PAYLOAD_SIGNED,   /* the signer hashes the body (file segments on the threadpool) */
    HTTP_PAYLOAD_UNSIGNED, /* "UNSIGNED-PAYLOAD" (S3 only) */
    HTTP_PAYLOAD_KNOWN,    /* the hash given with http_req_payload_sha256() */
};
/* Sign every attempt with SigV4 using creds (borrowed; must outlive the request). s3 = S3 rules
 * (X-Amz-Content-Sha256 sent, path not normalised). */
void http_req_sign(struct http_req *r, struct creds_provider *creds, const char *region,
                   const char *service, bool s3, enum http_payload payload);
/* The body's SHA-256 as 64 hex chars (any case); implies HTTP_PAYLOAD_KNOWN. 0/ERR_MALFORMED. */
MUST_CHECK int http_req_payload_sha256(struct http_req *r, const char *hex);
/* Cap on the response body (default: the client's max_response). */
void http_req_set_response_cap(struct http_req *r, size_t cap);
/* Attempts for this request (1 = no retry); 0 keeps the client's. */
void http_req_set_max_attempts(struct http_req *r, unsigned n);
/* Per-attempt timeouts for this request (0 keeps the client's; total_ms < 0: no total limit,
 * for a streamed answer whose reader may pause it; the low-speed limit still ends a stall). */
void http_req_set_timeouts(struct http_req *r, long connect_ms, long total_ms);
/* Retry only within ms of http_send: a retry whose backoff would end later is not made and the
 * request ends with its last failure (HTTP_ERR_THROTTLED for throttling and 5xx answers,
 * HTTP_ERR_NETWORK for transport failures). 0: no deadline (only the attempt count). */
void http_req_set_deadline(struct http_req *r, uint64_t ms);
/* The response holds secrets (credentials): its buffer is wiped with OPENSSL_cleanse on free. */
void http_req_set_sensitive(struct http_req *r);
/* Treat these statuses as success too (e.g. 404 for a probe); at most 4. */
void http_req_accept_status(struct http_req *r, long status);
/* An opaque pointer kept with the request (readable in the callback via resp->req). */
void http_req_set_user(struct http_req *r, void *user);
void *http_req_user(const struct http_req *r);

/* Streaming an accepted answer's body instead of buffering it (WADO-RS retrievals of any
 * size). The body of any other answer (an error) is still buffered, capped and parsed as usual.
 * Every callback runs on the loop, from inside libcurl: never call http_req_cancel or free the
 * request there; return < 0 instead. */
struct http_stream {
    /* An attempt's answer was accepted (2xx or an accepted status), before its first body byte:
     * resp has the status and headers (http_resp_header), no body. Return 0 to take the body,
     * < 0 to end the request with that error. It runs again for a retried attempt only when no
     * body byte was taken yet (a request whose body was taken in part is never retried: it
     * ends with HTTP_ERR_NETWORK when its transfer fails). */
    int (*head)(void *arg, const struct http_resp *resp);
    /* Body bytes in order. Return 0 when all n were taken; 1 to pause after the first *used
     * (<= n) of them: the rest is offered again after http_req_resume; < 0 to end the request
     * with that error. While paused nothing arrives and no timeout runs but the server's. */
    int (*data)(void *arg, const uint8_t *p, size_t n, size_t *used);
    void *arg;
};
/* Stream r's accepted answer into s (copied). The done callback then has no body. */
void http_req_set_stream(struct http_req *r, const struct http_stream *s);

/* Send r (takes r, also on failure). done(arg, resp) runs exactly once, later, on the loop
 * thread, unless this returns an error (then it never runs). 0, ERR_WRONG_STATE (closing). */
MUST_CHECK int http_send(struct http_client *c, struct http_req *r, http_done_cb done, void *arg);

/* A request in flight, between http_send and its done callback (keep the pointer until then):
 * resume a stream paused by its data callback; later, from the loop, never inside this call.
 * Nothing happens when it is not paused. */
void http_req_resume(struct http_req *r);
/* Abandon a request in flight: its done callback runs with HTTP_ERR_CANCELED, inside this call
 * when an attempt is running or waiting for its retry, else as soon as the credentials or the
 * body hash it waits for arrive. Called from inside a stream callback it is deferred until
 * libcurl returns. Nothing happens after the done callback ran (the pointer is then invalid:
 * the caller must not call this at all). */
void http_req_cancel(struct http_req *r);

/* A call to run soon on the client's loop, never inside the call that queues it (for clients
 * of this module that must not call back into their caller). Caller's storage, valid until it
 * ran or was taken off the queue. */
struct http_defer {
    struct http_defer *next;
    void (*cb)(void *arg);
    void *arg;
    bool queued;
    uint64_t seq;
};
/* Queue d (nothing when it is queued already). */
void http_client_defer(struct http_client *c, struct http_defer *d);
/* Take d off the queue (nothing when it is not on it). */
void http_client_undefer(struct http_client *c, struct http_defer *d);

/* SHA-256 of len bytes of path from off, computed on the libuv threadpool (the client counts it
 * as pending, so close waits for it). cb(arg, 0, hash) or cb(arg, <0, NULL) (-errno,
 * ERR_TRUNCATED when the file is shorter, HTTP_ERR_CANCELED when closing) runs later on the
 * loop. 0, or < 0 and cb never runs. */
typedef void (*http_hash_cb)(void *arg, int err, const uint8_t hash[32]);
MUST_CHECK int http_hash_file(struct http_client *c, const char *path, uint64_t off,
                              uint64_t len, http_hash_cb cb, void *arg);
/* The same for the CRC-64/NVME (common/crc64nvme.h) of the range: cb(arg, 0, crc) or
 * cb(arg, <0, 0). */
typedef void (*http_crc_cb)(void *arg, int err, uint64_t crc);
MUST_CHECK int http_crc64nvme_file(struct http_client *c, const char *path, uint64_t off,
                                   uint64_t len, http_crc_cb cb, void *arg);

/* Pure helpers, exposed for tests and fuzzers. */
/* Extract an AWS error type and message from a response: x-amzn-ErrorType value (may be NULL),
 * then the body as JSON ({"__type","message"/"Message","code"/"Code"}) or S3 XML
 * (<Error><Code>..</Code><Message>..</Message>). Never fails: fields stay "" when absent. */
void http_parse_aws_error(const char *errtype_header, const uint8_t *body, size_t len,
                          char *code, size_t code_sz, char *msg, size_t msg_sz);
/* Whether an attempt that ended with (curl_code, status, error_code) should be retried. */
bool http_is_retryable(int curl_code, long status, const char *error_code);
/* An HTTP Date (IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT") to unix seconds. 0/ERR_MALFORMED.
 * When AWS refuses a signature with 400/403 and its Date header is 4+ minutes from our clock,
 * the client keeps that offset for all later signatures and retries the request once (clock
 * skew correction, as the SDKs do). */
MUST_CHECK int http_parse_http_date(const char *s, int64_t *out);
/* The ceiling of the n-th backoff: base_ms doubled n times, at most max_ms. */
uint64_t http_backoff_ceiling_ms(unsigned n, uint64_t base_ms, uint64_t max_ms);
/* The full-jitter delay before attempt n (n >= 1 is the first retry) for rnd in [0, 1). */
uint64_t http_backoff_ms(unsigned n, unsigned base_ms, unsigned max_ms, double rnd);

#endif
