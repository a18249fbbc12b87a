/* http_int: what the files of the http module share (http.h is the public side).
 *   http.c        the transport: libcurl's multi-socket interface on libuv, the client, and
 *                 the easy handle of one attempt (body reader, response writer, headers)
 *   http_req.c    building a request
 *   http_sign.c   the headers of one attempt, SigV4-signed with a provider's credentials
 *   http_send.c   a request's life: credentials, attempts, retries with backoff, the answer
 *   http_hash.c   SHA-256 of bodies and files on the threadpool
 *   http_error.c  AWS error answers, what is retryable, backoff, HTTP dates (pure)
 *   http_stream.c streamed answers: the body handed on as it arrives, pause and resume, cancel */
#ifndef GW_HTTP_INT_H
#define GW_HTTP_INT_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/wbuf.h"
#include "http.h"
#include "sigv4.h"

#define HTTP_MAX_HEADERS 32
#define HTTP_MAX_HEADER_BYTES 8192
#define HTTP_MAX_SEGS 8
#define HTTP_RESP_HDRS 64
#define HTTP_RESP_HDR_BYTES 8192
#define HTTP_HASH_CHUNK (1u << 20)

enum req_state { RQ_NEW, RQ_HASHING, RQ_WAIT_CREDS, RQ_RUNNING, RQ_WAIT_RETRY, RQ_DONE };

struct seg {
    uint8_t *mem; /* NULL for a file segment */
    char *path;
    uint64_t off, len;
    int fd; /* open during an attempt, else -1 */
};

struct http_req {
    char *method, *url, *host, *path, *query; /* query: canonical, "" when none */
    char *hname[HTTP_MAX_HEADERS], *hval[HTTP_MAX_HEADERS];
    size_t nh, hbytes;
    struct seg segs[HTTP_MAX_SEGS];
    size_t nseg;
    uint64_t body_len;
    /* signing */
    struct creds_provider *creds;
    char region[40], service[40];
    bool s3;
    enum http_payload payload;
    char payload_hex[65];
    bool hash_ready;
    /* limits */
    size_t resp_cap;
    unsigned max_attempts;
    long connect_ms, total_ms;
    long accept[4];
    int naccept;
    bool sensitive;
    void *user;
    /* runtime */
    struct http_client *c;
    struct http_req *next, *prev; /* client's list of live requests */
    enum req_state state;
    bool cancel;
    http_done_cb done;
    void *arg;
    CURL *easy;
    struct curl_slist *slist;
    char errbuf[CURL_ERROR_SIZE];
    unsigned attempts;
    unsigned creds_failures;
    bool skew_retried;
    uint64_t due_ms; /* WAIT_RETRY: loop time to start the next attempt */
    /* body reader */
    size_t rseg;
    uint64_t rpos;
    int body_err;
    /* response */
    struct wbuf resp;
    bool too_big;
    char rh[HTTP_RESP_HDR_BYTES]; /* "name\0value\0" pairs */
    size_t rhlen;
    uint16_t rhoff[HTTP_RESP_HDRS];
    size_t nrh;
    /* hashing on the threadpool */
    uv_work_t work;
    int work_rc;
    char work_hex[65];
    struct http_result res;
    /* streaming (http_stream.c) */
    struct http_stream stream;
    bool has_stream;
    bool stream_decided; /* this attempt's status was looked at (at its first body byte) */
    bool stream_on;      /* this attempt's answer is accepted: its body goes to stream.data */
    bool streamed;       /* a body byte was taken: no retry from here on */
    bool paused, resume_pending, cancel_pending;
    size_t skip;         /* bytes of a paused delivery already taken: dropped when redelivered */
    int stream_err;      /* a stream callback's error, ends the request */
    /* deadline of the retries */
    uint64_t deadline_ms, sent_ms;
};

struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    struct http_client *c;
};

struct http_client {
    uv_loop_t *loop;
    struct http_opts o;
    char *ca_file;
    CURLM *multi;
    uv_timer_t timeout;   /* curl's timer */
    uv_timer_t retry;     /* earliest WAIT_RETRY request */
    uv_timer_t kick;      /* deferred resumes and cancels of streamed requests, deferred calls */
    struct http_defer *deferred; /* http_client_defer's queue, oldest first */
    uint64_t defer_seq;
    int in_curl;          /* inside a libcurl call that may run our callbacks */
    int live_handles;     /* initialised uv handles (timers + socket polls) */
    struct http_req *reqs;
    size_t pending;
    bool closing, multi_gone;
    void (*closed)(void *);
    void *closed_arg;
    uint64_t rng;
    int64_t skew_s; /* server clock minus ours, learnt from a skew error's Date header */
};

/* http_error.c: copy n bytes of src into dst[sz] as a NUL-terminated string, truncating. */
void http_copy(char *dst, size_t sz, const char *src, size_t n);
/* http_error.c: an AWS error code that says our credentials expired (refresh and retry). */
bool http_is_expired_code(const char *code);

/* http_req.c: a header of the response r received last (as http_resp_header), or NULL. */
const char *http_req_resp_header(const struct http_req *r, const char *name);

/* http.c: close the file segments' descriptors an attempt opened. */
void http_close_fds(struct http_req *r);
/* http.c: set up r's easy handle for one attempt with headers (taken, also on failure) and add
 * it to the multi handle; r->state becomes RQ_RUNNING. 0 or ERR_NOMEM. */
MUST_CHECK int http_easy_start(struct http_req *r, struct curl_slist *headers);
/* http.c: free the client once it is closing and nothing of it is pending or open. */
void http_client_maybe_closed(struct http_client *c);

/* http_sign.c: the header list of one attempt: Host, the request's own headers and, with
 * credentials (NULL = unsigned), X-Amz-Date, X-Amz-Security-Token, X-Amz-Content-Sha256 (S3)
 * and Authorization, signed at our clock plus skew_s. 0, ERR_NOMEM or sigv4_sign's error. */
MUST_CHECK int http_sign_headers(const struct http_req *r, const struct aws_creds *cr,
                                 int64_t skew_s, struct curl_slist **out);

/* http_send.c: whether status counts as success for r (2xx or accepted). */
bool http_status_accepted(const struct http_req *r, long status);
/* http.c: handle the transfers libcurl finished. */
void http_check_multi_info(struct http_client *c);
/* http_stream.c: curl's write callback for a request with a stream: 0 to take nothing (an
 * error ends the transfer), n, or CURL_WRITEFUNC_PAUSE. */
size_t http_stream_write(struct http_req *r, const char *p, size_t n);
/* http_stream.c: the kick timer: deferred resumes and cancels. */
void http_stream_kick(uv_timer_t *t);
/* http_send.c: the request's end: its done callback runs with err, then r is freed. */
void http_finish(struct http_req *r, int err);
/* http_send.c: an attempt's transfer ended with cc (r's easy handle is out of the multi). */
void http_finish_attempt(struct http_req *r, CURLcode cc);
/* http_send.c: begin an attempt: credentials first when signing, then the transfer. */
void http_start_attempt(struct http_req *r);

/* http_hash.c: make r's payload hash ready for signing. 0 when it is (a body in memory is hashed
 * at once), 1 when file segments are being hashed on the threadpool (the attempt then starts
 * from there), < 0 on failure (nothing is pending). */
MUST_CHECK int http_hash_body(struct http_req *r);

#endif
