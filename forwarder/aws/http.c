/* http: the transport: libcurl's multi-socket interface on a libuv loop (curl's
 * docs/examples/multi-uv.c), the client that owns it, and the easy handle of one attempt. */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_int.h"

/* ---- options --------------------------------------------------------------------------- */

void http_opts_default(struct http_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->connect_timeout_ms = 5000;
    o->request_timeout_ms = 300000;
    o->low_speed_bytes = 1024;
    o->low_speed_time_s = 30;
    o->max_attempts = 8;
    o->base_delay_ms = 100;
    o->max_delay_ms = 20000;
    o->max_response = 1u << 20;
    o->max_connections = 32;
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static CURLcode g_init_rc = CURLE_FAILED_INIT;
static void global_init_once(void)
{
    g_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int http_global_init(void)
{
    if (pthread_once(&g_once, global_init_once) != 0)
        return ERR_UNSUPPORTED;
    return g_init_rc == CURLE_OK ? 0 : ERR_UNSUPPORTED;
}

/* ---- curl callbacks ---------------------------------------------------------------------- */

void http_close_fds(struct http_req *r)
{
    for (size_t i = 0; i < r->nseg; i++) {
        if (r->segs[i].fd >= 0) {
            close(r->segs[i].fd);
            r->segs[i].fd = -1;
        }
    }
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
    struct http_req *r = ud;
    size_t want = size * nitems, got = 0;
    while (got < want && r->rseg < r->nseg) {
        struct seg *s = &r->segs[r->rseg];
        uint64_t left = s->len - r->rpos;
        if (left == 0) {
            r->rseg++;
            r->rpos = 0;
            continue;
        }
        size_t n = want - got;
        if ((uint64_t)n > left)
            n = (size_t)left;
        if (s->mem) {
            memcpy(buf + got, s->mem + r->rpos, n);
        } else {
            if (s->fd < 0) {
                s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
                if (s->fd < 0) {
                    r->body_err = -errno;
                    return CURL_READFUNC_ABORT;
                }
            }
            ssize_t k;
            do {
                k = pread(s->fd, buf + got, n, (off_t)(s->off + r->rpos));
            } while (k < 0 && errno == EINTR);
            if (k <= 0) { /* the file shrank under us, or an I/O error: not retryable */
                r->body_err = k < 0 ? -errno : ERR_TRUNCATED;
                return CURL_READFUNC_ABORT;
            }
            n = (size_t)k;
        }
        r->rpos += n;
        got += n;
    }
    return got;
}

static int on_seek(void *ud, curl_off_t offset, int origin)
{
    struct http_req *r = ud;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > r->body_len)
        return CURL_SEEKFUNC_CANTSEEK;
    uint64_t o = (uint64_t)offset;
    r->rseg = 0;
    while (r->rseg < r->nseg && o >= r->segs[r->rseg].len && r->segs[r->rseg].len > 0) {
        o -= r->segs[r->rseg].len;
        r->rseg++;
    }
    r->rpos = o;
    return CURL_SEEKFUNC_OK;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    struct http_req *r = ud;
    size_t n = size * nmemb;
    if (r->has_stream)
        return http_stream_write(r, p, n);
    if (n > r->resp.max - r->resp.len) {
        r->too_big = true;
        return 0; /* CURLE_WRITE_ERROR ends the attempt */
    }
    wbuf_put(&r->resp, p, n);
    return r->resp.err ? 0 : n;
}

static size_t on_header(char *p, size_t size, size_t nitems, void *ud)
{
    struct http_req *r = ud;
    size_t n = size * nitems;
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a new response (after 100 or a redirect) */
        r->nrh = 0;
        r->rhlen = 0;
        return n;
    }
    const char *colon = memchr(p, ':', n);
    if (!colon || r->nrh == HTTP_RESP_HDRS)
        return n;
    size_t nl = (size_t)(colon - p);
    const char *v = colon + 1;
    size_t vl = n - nl - 1;
    while (vl && (*v == ' ' || *v == '\t')) {
        v++;
        vl--;
    }
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        vl--;
    if (nl == 0 || nl + vl + 2 > sizeof(r->rh) - r->rhlen)
        return n;
    if (memchr(p, '\0', nl) || memchr(v, '\0', vl))
        return n;
    r->rhoff[r->nrh++] = (uint16_t)r->rhlen;
    memcpy(r->rh + r->rhlen, p, nl);
    r->rhlen += nl;
    r->rh[r->rhlen++] = '\0';
    memcpy(r->rh + r->rhlen, v, vl);
    r->rhlen += vl;
    r->rh[r->rhlen++] = '\0';
    return n;
}

/* ---- one attempt's easy handle ------------------------------------------------------------ */

int http_easy_start(struct http_req *r, struct curl_slist *l)
{
    struct http_client *c = r->c;
    char *url = NULL;
    size_t ulen = strlen(r->url) + strlen(r->query) + 2;
    url = malloc(ulen);
    CURL *e = curl_easy_init();
    if (!url || !e) {
        free(url);
        if (e)
            curl_easy_cleanup(e);
        curl_slist_free_all(l);
        return ERR_NOMEM;
    }
    snprintf(url, ulen, "%s%s%s", r->url, r->query[0] ? "?" : "", r->query);
    r->errbuf[0] = '\0';
    r->rseg = 0;
    r->rpos = 0;
    r->body_err = 0;
    r->too_big = false;
    r->stream_decided = false;
    r->stream_on = false;
    r->paused = false;
    r->resume_pending = false;
    r->skip = 0;
    r->nrh = 0;
    r->rhlen = 0;
    if (r->sensitive && r->resp.p)
        OPENSSL_cleanse(r->resp.p, r->resp.cap);
    wbuf_cleanup(&r->resp);
    wbuf_init(&r->resp, r->resp_cap ? r->resp_cap : c->o.max_response);
    if (r->sensitive && wbuf_reserve(&r->resp, r->resp.max) < 0) /* no realloc copies left */
        r->resp.err = 0;
    curl_easy_setopt(e, CURLOPT_URL, url);
    free(url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    /* an HTTPS_PROXY from the environment applies to AWS, never to the metadata endpoints */
    curl_easy_setopt(e, CURLOPT_NOPROXY,
                     "169.254.169.254,169.254.170.2,169.254.170.23,localhost,127.0.0.1,::1");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L); /* pooled connections idle between bursts */
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L); /* an S3 key "a/./b" is signed and sent as is */
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, r->connect_ms ? r->connect_ms
                                                                 : c->o.connect_timeout_ms);
    long total = r->total_ms < 0 ? 0 : r->total_ms; /* CURLOPT_TIMEOUT_MS 0: none */
    if (!r->total_ms) { /* big bodies get time for at least 256 KiB/s; stalls still end by low-speed */
        uint64_t extra = r->body_len / 262144u * 1000u;
        total = c->o.request_timeout_ms + (extra > 86400000u ? 86400000L : (long)extra);
    }
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, total);
    if (c->o.low_speed_bytes > 0 && c->o.low_speed_time_s > 0) {
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, c->o.low_speed_bytes);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, c->o.low_speed_time_s);
    }
    if (c->o.ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, c->o.ca_file);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
    bool has_body = r->nseg > 0 || strcmp(r->method, "PUT") == 0 ||
                    strcmp(r->method, "POST") == 0;
    if (has_body) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, r);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, r);
        if (strcmp(r->method, "PUT") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    } else if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    }
    r->easy = e;
    r->slist = l;
    r->state = RQ_RUNNING;
    r->attempts++;
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        r->easy = NULL;
        curl_slist_free_all(l);
        r->slist = NULL;
        r->attempts--;
        return ERR_NOMEM;
    }
    return 0;
}

/* ---- the multi-socket glue (curl docs/examples/multi-uv.c) ------------------------------- */

void http_check_multi_info(struct http_client *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *e = msg->easy_handle;
        CURLcode cc = msg->data.result;
        struct http_req *r = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
        curl_multi_remove_handle(c->multi, e);
        http_finish_attempt(r, cc);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct http_client *c;
    if (h->type == UV_POLL) {
        struct sock_ctx *s = h->data;
        c = s->c;
        free(s);
    } else {
        c = h->data;
    }
    c->live_handles--;
    http_client_maybe_closed(c);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct sock_ctx *s = h->data;
    struct http_client *c = s->c;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (!status && (events & UV_READABLE))
        flags |= CURL_CSELECT_IN;
    if (!status && (events & UV_WRITABLE))
        flags |= CURL_CSELECT_OUT;
    int running;
    c->in_curl++;
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    c->in_curl--;
    http_check_multi_info(c);
}

static void on_curl_timeout(uv_timer_t *t)
{
    struct http_client *c = t->data;
    int running;
    c->in_curl++;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    c->in_curl--;
    http_check_multi_info(c);
}

static int cb_timer(CURLM *m, long timeout_ms, void *ud)
{
    (void)m;
    struct http_client *c = ud;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timeout);
    else
        uv_timer_start(&c->timeout, on_curl_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

static int cb_socket(CURL *e, curl_socket_t fd, int action, void *ud, void *sockp)
{
    (void)e;
    struct http_client *c = ud;
    struct sock_ctx *s = sockp;
    if (action == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, on_handle_closed);
            curl_multi_assign(c->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        s->fd = fd;
        s->c = c;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        c->live_handles++;
        curl_multi_assign(c->multi, fd, s);
    }
    int ev = 0;
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
        ev |= UV_READABLE;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
        ev |= UV_WRITABLE;
    return uv_poll_start(&s->poll, ev, on_poll) == 0 ? 0 : -1;
}

/* ---- client -------------------------------------------------------------------------------- */

int http_client_new(uv_loop_t *loop, const struct http_opts *opts, struct http_client **out)
{
    *out = NULL;
    TRY(http_global_init());
    struct http_client *c = calloc(1, sizeof(*c));
    if (!c)
        return ERR_NOMEM;
    c->loop = loop;
    struct http_opts d;
    http_opts_default(&d);
    c->o = opts ? *opts : d;
    if (c->o.connect_timeout_ms <= 0)
        c->o.connect_timeout_ms = d.connect_timeout_ms;
    if (c->o.request_timeout_ms <= 0)
        c->o.request_timeout_ms = d.request_timeout_ms;
    if (c->o.max_attempts == 0)
        c->o.max_attempts = d.max_attempts;
    if (c->o.max_response == 0)
        c->o.max_response = d.max_response;
    if (c->o.max_delay_ms == 0)
        c->o.max_delay_ms = d.max_delay_ms;
    if (c->o.max_connections <= 0)
        c->o.max_connections = d.max_connections;
    if (opts && opts->ca_file) {
        c->ca_file = strdup(opts->ca_file);
        if (!c->ca_file) {
            free(c);
            return ERR_NOMEM;
        }
    }
    c->o.ca_file = c->ca_file;
    c->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)c ^ ((uint64_t)getpid() << 32);
    c->multi = curl_multi_init();
    if (!c->multi) {
        free(c->ca_file);
        free(c);
        return ERR_UNSUPPORTED;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, cb_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, cb_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, c->o.max_connections);
    uv_timer_init(loop, &c->timeout); /* cannot fail on a live loop */
    uv_timer_init(loop, &c->retry);
    uv_timer_init(loop, &c->kick);
    c->timeout.data = c;
    c->retry.data = c;
    c->kick.data = c;
    c->live_handles = 3;
    *out = c;
    return 0;
}

uv_loop_t *http_client_loop(const struct http_client *c)
{
    return c->loop;
}

size_t http_client_pending(const struct http_client *c)
{
    return c->pending;
}

void http_client_maybe_closed(struct http_client *c)
{
    if (!c->closing || c->pending > 0)
        return;
    if (!c->multi_gone) {
        c->multi_gone = true;
        curl_multi_cleanup(c->multi); /* may call cb_socket(REMOVE) for cached connections */
        c->multi = NULL;
        uv_timer_stop(&c->timeout);
        uv_timer_stop(&c->retry);
        uv_timer_stop(&c->kick);
        uv_close((uv_handle_t *)&c->timeout, on_handle_closed);
        uv_close((uv_handle_t *)&c->retry, on_handle_closed);
        uv_close((uv_handle_t *)&c->kick, on_handle_closed);
        return;
    }
    if (c->live_handles == 0) {
        void (*done)(void *) = c->closed;
        void *arg = c->closed_arg;
        free(c->ca_file);
        free(c);
        if (done)
            done(arg);
    }
}

void http_client_close(struct http_client *c, void (*done)(void *arg), void *arg)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    c->closed = done;
    c->closed_arg = arg;
    while (c->deferred) { /* deferred calls never run once closing */
        struct http_defer *d = c->deferred;
        c->deferred = d->next;
        d->next = NULL;
        d->queued = false;
    }
    struct http_req *r = c->reqs;
    while (r) {
        struct http_req *next = r->next;
        r->cancel = true;
        if (r->state == RQ_RUNNING) {
            curl_multi_remove_handle(c->multi, r->easy);
            http_finish(r, HTTP_ERR_CANCELED);
        } else if (r->state == RQ_WAIT_RETRY || r->state == RQ_NEW) {
            http_finish(r, HTTP_ERR_CANCELED);
        } /* HASHING and WAIT_CREDS finish from their callbacks */
        r = next;
    }
    http_client_maybe_closed(c);
}
