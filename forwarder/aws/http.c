#include "http.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/hex.h"
#include "common/log.h"
#include "common/wbuf.h"
#include "creds_provider.h"
#include "sigv4.h"
#include "xml.h"

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
    int live_handles;     /* initialised uv handles (timers + socket polls) */
    struct http_req *reqs;
    size_t pending;
    bool closing, multi_gone;
    void (*closed)(void *);
    void *closed_arg;
    uint64_t rng;
    int64_t skew_s; /* server clock minus ours, learnt from a skew error's Date header */
};

/* ---- errors ---------------------------------------------------------------------------- */

const char *http_err_str(int code)
{
    switch (code) {
    case HTTP_ERR_NETWORK: return "network error";
    case HTTP_ERR_STATUS: return "service error";
    case HTTP_ERR_THROTTLED: return "throttled or unavailable";
    case HTTP_ERR_CREDS: return "no credentials";
    case HTTP_ERR_CONDITION: return "condition failed";
    case HTTP_ERR_TOO_BIG: return "response too big";
    case HTTP_ERR_CANCELED: return "canceled";
    case HTTP_ERR_PARSE: return "unexpected response";
    default: return err_str(code);
    }
}

static void copy_str(char *dst, size_t sz, const char *src, size_t n)
{
    if (sz == 0)
        return;
    if (n >= sz)
        n = sz - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void http_parse_aws_error(const char *errtype_header, const uint8_t *body, size_t len,
                          char *code, size_t code_sz, char *msg, size_t msg_sz)
{
    code[0] = '\0';
    msg[0] = '\0';
    if (errtype_header && *errtype_header) {
        const char *colon = strchr(errtype_header, ':');
        size_t n = colon ? (size_t)(colon - errtype_header) : strlen(errtype_header);
        copy_str(code, code_sz, errtype_header, n);
    }
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
        i++;
    if (i < len && body[i] == '{') {
        cJSON *j = cJSON_ParseWithLength((const char *)body, len);
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            return;
        }
        if (!code[0]) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "__type");
            if (!cJSON_IsString(t))
                t = cJSON_GetObjectItemCaseSensitive(j, "code");
            if (!cJSON_IsString(t))
                t = cJSON_GetObjectItemCaseSensitive(j, "Code");
            if (cJSON_IsString(t)) {
                const char *s = t->valuestring, *hash = strrchr(s, '#');
                if (hash)
                    s = hash + 1;
                const char *colon = strchr(s, ':');
                copy_str(code, code_sz, s, colon ? (size_t)(colon - s) : strlen(s));
            }
        }
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
        if (!cJSON_IsString(m))
            m = cJSON_GetObjectItemCaseSensitive(j, "Message");
        if (cJSON_IsString(m))
            copy_str(msg, msg_sz, m->valuestring, strlen(m->valuestring));
        cJSON_Delete(j);
    } else if (i < len && body[i] == '<') {
        if (!code[0] && xml_text(body, len, "Code", code, code_sz) < 0)
            code[0] = '\0';
        if (xml_text(body, len, "Message", msg, msg_sz) < 0)
            msg[0] = '\0';
    }
}

static bool code_in(const char *code, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(code, list[i]) == 0)
            return true;
    }
    return false;
}

/* botocore's standard retry mode lists, plus the expired-token codes (we refresh and retry). */
static const char *const g_throttle_codes[] = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
    "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException"};
static const char *const g_transient_codes[] = {"RequestTimeout", "RequestTimeoutException",
                                                "InternalError", "InternalFailure",
                                                "InternalServerError", "ServiceUnavailable"};
static const char *const g_expired_codes[] = {"ExpiredToken", "ExpiredTokenException",
                                              "RequestExpired"};

bool http_is_retryable(int curl_code, long status, const char *error_code)
{
    if (curl_code != CURLE_OK) {
        switch (curl_code) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_WEIRD_SERVER_REPLY:
            return true;
        default:
            return false;
        }
    }
    if (status >= 500 || status == 429)
        return true;
    if (error_code && *error_code &&
        (code_in(error_code, g_throttle_codes, ARRAY_LEN(g_throttle_codes)) ||
         code_in(error_code, g_transient_codes, ARRAY_LEN(g_transient_codes)) ||
         code_in(error_code, g_expired_codes, ARRAY_LEN(g_expired_codes))))
        return true;
    return false;
}

uint64_t http_backoff_ms(unsigned n, unsigned base_ms, unsigned max_ms, double rnd)
{
    uint64_t cap = base_ms;
    for (unsigned i = 0; i < n && cap < max_ms; i++)
        cap *= 2;
    if (cap > max_ms)
        cap = max_ms;
    if (rnd < 0 || rnd >= 1)
        rnd = 0;
    return (uint64_t)(rnd * (double)cap);
}

int http_parse_http_date(const char *s, int64_t *out)
{
    /* IMF-fixdate (RFC 9110 5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT" */
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    if (strnlen(s, 30) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
        s[16] != ' ' || s[19] != ':' || s[22] != ':' || strcmp(s + 25, " GMT") != 0)
        return ERR_MALFORMED;
    int v[5];
    static const int at[5][2] = {{5, 2}, {12, 4}, {17, 2}, {20, 2}, {23, 2}};
    for (int k = 0; k < 5; k++) {
        v[k] = 0;
        for (int i = 0; i < at[k][1]; i++) {
            char ch = s[at[k][0] + i];
            if (ch < '0' || ch > '9')
                return ERR_MALFORMED;
            v[k] = v[k] * 10 + (ch - '0');
        }
    }
    int mon = -1;
    for (int m = 0; m < 12; m++) {
        if (memcmp(s + 8, months + 3 * m, 3) == 0)
            mon = m;
    }
    if (mon < 0 || v[0] < 1 || v[0] > 31 || v[1] < 1970 || v[2] > 23 || v[3] > 59 || v[4] > 60)
        return ERR_MALFORMED;
    struct tm tm = {.tm_year = v[1] - 1900, .tm_mon = mon, .tm_mday = v[0], .tm_hour = v[2],
                    .tm_min = v[3], .tm_sec = v[4]};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return ERR_MALFORMED;
    *out = (int64_t)t;
    return 0;
}

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

/* ---- requests -------------------------------------------------------------------------- */

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

int http_req_new(const char *method, const char *url, struct http_req **out)
{
    *out = NULL;
    const char *sep = strstr(url, "://");
    if (!sep || sep == url || strpbrk(url, "?# \r\n"))
        return ERR_MALFORMED;
    const char *host = sep + 3;
    const char *slash = strchr(host, '/');
    size_t hlen = slash ? (size_t)(slash - host) : strlen(host);
    if (hlen == 0 || memchr(host, '@', hlen))
        return ERR_MALFORMED;
    struct http_req *r = calloc(1, sizeof(*r));
    if (!r)
        return ERR_NOMEM;
    r->method = strdup(method);
    r->url = strdup(url);
    r->host = dupn(host, hlen);
    r->path = strdup(slash ? slash : "/");
    r->query = strdup("");
    r->payload = HTTP_PAYLOAD_SIGNED;
    for (size_t i = 0; i < HTTP_MAX_SEGS; i++)
        r->segs[i].fd = -1;
    wbuf_init(&r->resp, 0);
    if (!r->method || !r->url || !r->host || !r->path || !r->query) {
        http_req_free(r);
        return ERR_NOMEM;
    }
    /* strip a default port from the Host we sign: curl sends none for it */
    size_t ul = strlen(r->host);
    if ((strncmp(url, "https://", 8) == 0 && ul > 4 && strcmp(r->host + ul - 4, ":443") == 0) ||
        (strncmp(url, "http://", 7) == 0 && ul > 3 && strcmp(r->host + ul - 3, ":80") == 0))
        *strrchr(r->host, ':') = '\0';
    *out = r;
    return 0;
}

void http_req_free(struct http_req *r)
{
    if (!r)
        return;
    free(r->method);
    free(r->url);
    free(r->host);
    free(r->path);
    free(r->query);
    for (size_t i = 0; i < r->nh; i++) {
        free(r->hname[i]);
        free(r->hval[i]);
    }
    for (size_t i = 0; i < r->nseg; i++) {
        free(r->segs[i].mem);
        free(r->segs[i].path);
        if (r->segs[i].fd >= 0)
            close(r->segs[i].fd);
    }
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->slist);
    if (r->sensitive && r->resp.p)
        OPENSSL_cleanse(r->resp.p, r->resp.cap);
    wbuf_cleanup(&r->resp);
    OPENSSL_cleanse(r->errbuf, sizeof(r->errbuf));
    free(r);
}

int http_req_set_query(struct http_req *r, const char *raw)
{
    struct wbuf w;
    wbuf_init(&w, 16384);
    int rc = sigv4_canonical_query(raw, &w);
    wbuf_u8(&w, 0);
    if (rc == 0 && w.err)
        rc = w.err;
    if (rc < 0) {
        wbuf_cleanup(&w);
        return rc;
    }
    free(r->query);
    r->query = (char *)w.p;
    return 0;
}

int http_req_add_header(struct http_req *r, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    if (nl == 0 || strpbrk(name, ":\r\n \t") || strpbrk(value, "\r\n"))
        return ERR_MALFORMED;
    if (r->nh == HTTP_MAX_HEADERS || r->hbytes + nl + vl > HTTP_MAX_HEADER_BYTES)
        return ERR_LIMIT;
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return ERR_NOMEM;
    }
    r->hname[r->nh] = n;
    r->hval[r->nh] = v;
    r->nh++;
    r->hbytes += nl + vl;
    return 0;
}

int http_req_body_mem(struct http_req *r, const void *p, size_t n)
{
    if (r->nseg == HTTP_MAX_SEGS)
        return ERR_LIMIT;
    struct seg *s = &r->segs[r->nseg];
    s->mem = malloc(n ? n : 1);
    if (!s->mem)
        return ERR_NOMEM;
    if (n)
        memcpy(s->mem, p, n);
    s->len = n;
    s->fd = -1;
    r->nseg++;
    r->body_len += n;
    return 0;
}

int http_req_body_file(struct http_req *r, const char *path, uint64_t off, uint64_t len)
{
    if (r->nseg == HTTP_MAX_SEGS)
        return ERR_LIMIT;
    struct seg *s = &r->segs[r->nseg];
    s->path = strdup(path);
    if (!s->path)
        return ERR_NOMEM;
    s->off = off;
    s->len = len;
    s->fd = -1;
    r->nseg++;
    r->body_len += len;
    return 0;
}

void http_req_sign(struct http_req *r, struct creds_provider *creds, const char *region,
                   const char *service, bool s3, enum http_payload payload)
{
    r->creds = creds;
    copy_str(r->region, sizeof(r->region), region, strlen(region));
    copy_str(r->service, sizeof(r->service), service, strlen(service));
    r->s3 = s3;
    if (!(payload == HTTP_PAYLOAD_KNOWN && !r->hash_ready))
        r->payload = payload;
}

int http_req_payload_sha256(struct http_req *r, const char *hex)
{
    uint8_t bin[32];
    TRY(sigv4_hex_to_bin32(hex, bin));
    hex_lower(bin, 32, r->payload_hex);
    r->hash_ready = true;
    r->payload = HTTP_PAYLOAD_KNOWN;
    return 0;
}

void http_req_set_response_cap(struct http_req *r, size_t cap)
{
    r->resp_cap = cap;
}

void http_req_set_max_attempts(struct http_req *r, unsigned n)
{
    r->max_attempts = n;
}

void http_req_set_timeouts(struct http_req *r, long connect_ms, long total_ms)
{
    r->connect_ms = connect_ms;
    r->total_ms = total_ms;
}

void http_req_set_sensitive(struct http_req *r)
{
    r->sensitive = true;
}

void http_req_accept_status(struct http_req *r, long status)
{
    if (r->naccept < 4)
        r->accept[r->naccept++] = status;
}

void http_req_set_user(struct http_req *r, void *user)
{
    r->user = user;
}

void *http_req_user(const struct http_req *r)
{
    return r->user;
}

const char *http_resp_header(const struct http_resp *resp, const char *name)
{
    const struct http_req *r = resp->req;
    for (size_t i = 0; i < r->nrh; i++) {
        const char *n = r->rh + r->rhoff[i];
        if (strcasecmp(n, name) == 0)
            return n + strlen(n) + 1;
    }
    return NULL;
}

static const char *req_header(const struct http_req *r, const char *name)
{
    struct http_resp tmp = {.req = r};
    return http_resp_header(&tmp, name);
}

/* ---- curl callbacks ---------------------------------------------------------------------- */

static void close_fds(struct http_req *r)
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

/* ---- the multi-socket glue (curl docs/examples/multi-uv.c) ------------------------------- */

static void check_multi_info(struct http_client *c);
static void finish_attempt(struct http_req *r, CURLcode cc);
static void start_attempt(struct http_req *r);
static void finish(struct http_req *r, int err);
static void maybe_closed(struct http_client *c);

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
    maybe_closed(c);
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
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    check_multi_info(c);
}

static void on_curl_timeout(uv_timer_t *t)
{
    struct http_client *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(c);
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

static void check_multi_info(struct http_client *c)
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
        finish_attempt(r, cc);
    }
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
    c->timeout.data = c;
    c->retry.data = c;
    c->live_handles = 2;
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

static double rnd01(struct http_client *c)
{
    /* xorshift64*: jitter only, no secrecy needed */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    uint64_t v = c->rng * 2685821657736338717ULL;
    return (double)(v >> 11) / 9007199254740992.0;
}

static void maybe_closed(struct http_client *c)
{
    if (!c->closing || c->pending > 0)
        return;
    if (!c->multi_gone) {
        c->multi_gone = true;
        curl_multi_cleanup(c->multi); /* may call cb_socket(REMOVE) for cached connections */
        c->multi = NULL;
        uv_timer_stop(&c->timeout);
        uv_timer_stop(&c->retry);
        uv_close((uv_handle_t *)&c->timeout, on_handle_closed);
        uv_close((uv_handle_t *)&c->retry, on_handle_closed);
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
    struct http_req *r = c->reqs;
    while (r) {
        struct http_req *next = r->next;
        r->cancel = true;
        if (r->state == RQ_RUNNING) {
            curl_multi_remove_handle(c->multi, r->easy);
            finish(r, HTTP_ERR_CANCELED);
        } else if (r->state == RQ_WAIT_RETRY || r->state == RQ_NEW) {
            finish(r, HTTP_ERR_CANCELED);
        } /* HASHING and WAIT_CREDS finish from their callbacks */
        r = next;
    }
    maybe_closed(c);
}

/* ---- request lifecycle ------------------------------------------------------------------- */

static void finish(struct http_req *r, int err)
{
    struct http_client *c = r->c;
    close_fds(r);
    r->state = RQ_DONE;
    r->res.err = err;
    if (r->prev)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    struct http_resp resp = {.res = r->res, .req = r};
    if (err == 0 || err == HTTP_ERR_STATUS || err == HTTP_ERR_CONDITION) {
        resp.body = r->resp.p;
        resp.body_len = r->resp.len;
    }
    r->done(r->arg, &resp);
    http_req_free(r);
    c->pending--;
    maybe_closed(c);
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
            start_attempt(r); /* may finish (and free) r; next dies only by a close */
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

static void schedule_retry(struct http_req *r)
{
    struct http_client *c = r->c;
    unsigned n = r->attempts > r->creds_failures ? r->attempts : r->creds_failures;
    uint64_t delay = http_backoff_ms(n, c->o.base_delay_ms, c->o.max_delay_ms, rnd01(c));
    r->state = RQ_WAIT_RETRY;
    r->due_ms = uv_now(c->loop) + delay;
    arm_retry_timer(c);
}

static bool accepted(const struct http_req *r, long status)
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

static void finish_attempt(struct http_req *r, CURLcode cc)
{
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    curl_slist_free_all(r->slist);
    r->slist = NULL;
    close_fds(r);
    r->res.status = status;
    r->res.curl_code = (int)cc;
    r->res.attempts = r->attempts;
    r->res.error_code[0] = '\0';
    r->res.message[0] = '\0';
    const char *rid = req_header(r, "x-amzn-RequestId");
    if (!rid)
        rid = req_header(r, "x-amz-request-id");
    if (rid)
        copy_str(r->res.request_id, sizeof(r->res.request_id), rid, strlen(rid));
    if (r->cancel) {
        finish(r, HTTP_ERR_CANCELED);
        return;
    }
    if (cc != CURLE_OK) {
        if (r->too_big) {
            finish(r, HTTP_ERR_TOO_BIG);
            return;
        }
        if (r->body_err) {
            copy_str(r->res.message, sizeof(r->res.message), "request body unreadable", 23);
            finish(r, r->body_err);
            return;
        }
        const char *m = r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc);
        copy_str(r->res.message, sizeof(r->res.message), m, strlen(m));
        if (http_is_retryable((int)cc, 0, NULL) && r->attempts < r->max_attempts) {
            schedule_retry(r);
            return;
        }
        finish(r, HTTP_ERR_NETWORK);
        return;
    }
    if (accepted(r, status)) {
        finish(r, 0);
        return;
    }
    http_parse_aws_error(req_header(r, "x-amzn-ErrorType"), r->resp.p, r->resp.len,
                         r->res.error_code, sizeof(r->res.error_code), r->res.message,
                         sizeof(r->res.message));
    if (r->creds && !r->skew_retried && (status == 403 || status == 400) &&
        fix_skew(r->c, req_header(r, "Date"))) {
        r->skew_retried = true; /* once per request: the next attempt signs with server time */
        schedule_retry(r);
        return;
    }
    if (code_in(r->res.error_code, g_expired_codes, ARRAY_LEN(g_expired_codes)) && r->creds)
        creds_invalidate(r->creds);
    if (http_is_retryable(0, status, r->res.error_code)) {
        if (r->attempts < r->max_attempts) {
            schedule_retry(r);
            return;
        }
        finish(r, HTTP_ERR_THROTTLED);
        return;
    }
    if (strcmp(r->res.error_code, "ConditionalCheckFailedException") == 0 || status == 412) {
        finish(r, HTTP_ERR_CONDITION);
        return;
    }
    finish(r, HTTP_ERR_STATUS);
}

static struct curl_slist *slist_add(struct curl_slist *l, const char *name, const char *value,
                                    bool *ok)
{
    char line[HTTP_MAX_HEADER_BYTES + 256];
    int n = snprintf(line, sizeof(line), "%s: %s", name, value);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        *ok = false;
        return l;
    }
    struct curl_slist *nl = curl_slist_append(l, line);
    OPENSSL_cleanse(line, (size_t)n); /* may hold a session token */
    if (!nl) {
        *ok = false;
        return l;
    }
    return nl;
}

/* Build, sign and add the easy handle for one attempt with creds (NULL = unsigned). */
static int launch(struct http_req *r, const struct aws_creds *cr)
{
    struct http_client *c = r->c;
    bool ok = true;
    struct curl_slist *l = NULL;
    char amz_date[17] = "";
    struct sigv4_out so;
    const char *payload = r->payload == HTTP_PAYLOAD_UNSIGNED ? SIGV4_UNSIGNED_PAYLOAD
                                                               : r->payload_hex;
    l = slist_add(l, "Host", r->host, &ok);
    for (size_t i = 0; i < r->nh; i++)
        l = slist_add(l, r->hname[i], r->hval[i], &ok);
    if (cr) {
        struct sigv4_header sh[HTTP_MAX_HEADERS + 4];
        size_t n = 0;
        time_t now = time(NULL) + (time_t)c->skew_s;
        sigv4_amz_date(now, amz_date); /* the header and the signature use the same second */
        sh[n++] = (struct sigv4_header){"host", r->host};
        for (size_t i = 0; i < r->nh; i++)
            sh[n++] = (struct sigv4_header){r->hname[i], r->hval[i]};
        sh[n++] = (struct sigv4_header){"x-amz-date", amz_date};
        if (cr->session_token[0])
            sh[n++] = (struct sigv4_header){"x-amz-security-token", cr->session_token};
        if (r->s3)
            sh[n++] = (struct sigv4_header){"x-amz-content-sha256", payload};
        struct sigv4_request sr = {
            .method = r->method,
            .path = r->path,
            .query = r->query,
            .headers = sh,
            .n_headers = n,
            .payload_hash = payload,
            .region = r->region,
            .service = r->service,
            .s3_path = r->s3,
            .now = now,
        };
        int rc = sigv4_sign(&sr, cr, &so, NULL, NULL);
        if (rc < 0) {
            curl_slist_free_all(l);
            return rc;
        }
        l = slist_add(l, "X-Amz-Date", so.amz_date, &ok);
        if (cr->session_token[0])
            l = slist_add(l, "X-Amz-Security-Token", cr->session_token, &ok);
        if (r->s3)
            l = slist_add(l, "X-Amz-Content-Sha256", payload, &ok);
        l = slist_add(l, "Authorization", so.authorization, &ok);
        OPENSSL_cleanse(&so, sizeof(so));
    }
    l = slist_add(l, "Expect", "", &ok); /* no 100-continue round trip */
    if (!ok) {
        curl_slist_free_all(l);
        return ERR_NOMEM;
    }
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
    long total = r->total_ms;
    if (!total) { /* big bodies get time for at least 256 KiB/s; stalls still end by low-speed */
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

static void on_creds(void *arg, int err, const struct aws_creds *cr)
{
    struct http_req *r = arg;
    if (r->cancel || r->c->closing) {
        finish(r, HTTP_ERR_CANCELED);
        return;
    }
    if (err < 0 || !cr) {
        copy_str(r->res.message, sizeof(r->res.message), "no AWS credentials", 18);
        /* a metadata endpoint hiccup: back off like any transient failure */
        if (++r->creds_failures < r->max_attempts) {
            schedule_retry(r);
            return;
        }
        finish(r, HTTP_ERR_CREDS);
        return;
    }
    int rc = launch(r, cr);
    if (rc < 0)
        finish(r, rc);
}

static void start_attempt(struct http_req *r)
{
    if (r->creds) {
        const struct aws_creds *cr = creds_peek(r->creds);
        if (!cr) {
            r->state = RQ_WAIT_CREDS;
            int rc = creds_get(r->creds, on_creds, r);
            if (rc < 0)
                finish(r, HTTP_ERR_CREDS);
            return;
        }
        int rc = launch(r, cr);
        if (rc < 0)
            finish(r, rc);
        return;
    }
    int rc = launch(r, NULL);
    if (rc < 0)
        finish(r, rc);
}

/* Blocking: feed len bytes of path from off into md (threadpool only). 0 or < 0. */
static int digest_file(EVP_MD_CTX *md, uint8_t *buf, const char *path, uint64_t off,
                       uint64_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    uint64_t done = 0;
    while (done < len) {
        size_t want = len - done > HTTP_HASH_CHUNK ? HTTP_HASH_CHUNK : (size_t)(len - done);
        ssize_t k = pread(fd, buf, want, (off_t)(off + done));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            rc = k < 0 ? -errno : ERR_TRUNCATED;
            break;
        }
        if (EVP_DigestUpdate(md, buf, (size_t)k) != 1) {
            rc = ERR_UNSUPPORTED;
            break;
        }
        done += (uint64_t)k;
    }
    close(fd);
    return rc;
}

/* Threadpool: SHA-256 of the whole body (memory and file segments). */
static void hash_work(uv_work_t *w)
{
    struct http_req *r = w->data;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t *buf = malloc(HTTP_HASH_CHUNK);
    r->work_rc = 0;
    if (!md || !buf || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        r->work_rc = ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < r->nseg && r->work_rc == 0; i++) {
        struct seg *s = &r->segs[i];
        if (s->mem) {
            if (EVP_DigestUpdate(md, s->mem, s->len) != 1)
                r->work_rc = ERR_UNSUPPORTED;
        } else {
            r->work_rc = digest_file(md, buf, s->path, s->off, s->len);
        }
    }
    if (r->work_rc == 0) {
        uint8_t d[32];
        unsigned int dl = 0;
        if (EVP_DigestFinal_ex(md, d, &dl) != 1 || dl != 32)
            r->work_rc = ERR_UNSUPPORTED;
        else
            hex_lower(d, 32, r->work_hex);
    }
out:
    EVP_MD_CTX_free(md);
    free(buf);
}

static void hash_done(uv_work_t *w, int status)
{
    struct http_req *r = w->data;
    if (status < 0 || r->cancel || r->c->closing) {
        finish(r, HTTP_ERR_CANCELED);
        return;
    }
    if (r->work_rc < 0) {
        copy_str(r->res.message, sizeof(r->res.message), "request body unreadable", 23);
        finish(r, r->work_rc);
        return;
    }
    memcpy(r->payload_hex, r->work_hex, 65);
    r->hash_ready = true;
    start_attempt(r);
}

/* Undo http_send's registration for a request whose callback will never run. */
static void unlink_req(struct http_req *r)
{
    struct http_client *c = r->c;
    if (r->prev)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    c->pending--;
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
        bool files = false;
        for (size_t i = 0; i < r->nseg; i++)
            files |= r->segs[i].mem == NULL;
        if (!files) {
            EVP_MD_CTX *md = EVP_MD_CTX_new();
            uint8_t d[32];
            unsigned int dl = 0;
            bool okh = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
            for (size_t i = 0; okh && i < r->nseg; i++)
                okh = EVP_DigestUpdate(md, r->segs[i].mem, r->segs[i].len) == 1;
            okh = okh && EVP_DigestFinal_ex(md, d, &dl) == 1 && dl == 32;
            EVP_MD_CTX_free(md);
            if (!okh) {
                unlink_req(r);
                http_req_free(r);
                return ERR_UNSUPPORTED;
            }
            hex_lower(d, 32, r->payload_hex);
            r->hash_ready = true;
        } else {
            r->state = RQ_HASHING;
            r->work.data = r;
            int rc = uv_queue_work(c->loop, &r->work, hash_work, hash_done);
            if (rc < 0) {
                unlink_req(r);
                http_req_free(r);
                return rc;
            }
            return 0;
        }
    }
    /* First attempt from the retry timer at once, so done() never runs inside http_send. */
    r->state = RQ_WAIT_RETRY;
    r->due_ms = 0;
    arm_retry_timer(c);
    return 0;
}

/* ---- standalone file hashing on the threadpool ------------------------------------------ */

struct hash_job {
    uv_work_t work;
    struct http_client *c;
    char *path;
    uint64_t off, len;
    int rc;
    uint8_t hash[32];
    http_hash_cb cb;
    void *arg;
};

static void hash_job_work(uv_work_t *w)
{
    struct hash_job *j = w->data;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t *buf = malloc(HTTP_HASH_CHUNK);
    unsigned int dl = 0;
    if (!md || !buf || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        j->rc = ERR_NOMEM;
    else
        j->rc = digest_file(md, buf, j->path, j->off, j->len);
    if (j->rc == 0 && (EVP_DigestFinal_ex(md, j->hash, &dl) != 1 || dl != 32))
        j->rc = ERR_UNSUPPORTED;
    EVP_MD_CTX_free(md);
    free(buf);
}

static void hash_job_done(uv_work_t *w, int status)
{
    struct hash_job *j = w->data;
    struct http_client *c = j->c;
    int rc = status < 0 || c->closing ? HTTP_ERR_CANCELED : j->rc;
    j->cb(j->arg, rc, rc == 0 ? j->hash : NULL);
    free(j->path);
    free(j);
    c->pending--;
    maybe_closed(c);
}

int http_hash_file(struct http_client *c, const char *path, uint64_t off, uint64_t len,
                   http_hash_cb cb, void *arg)
{
    if (c->closing)
        return ERR_WRONG_STATE;
    struct hash_job *j = calloc(1, sizeof(*j));
    if (!j)
        return ERR_NOMEM;
    j->path = strdup(path);
    if (!j->path) {
        free(j);
        return ERR_NOMEM;
    }
    j->c = c;
    j->off = off;
    j->len = len;
    j->cb = cb;
    j->arg = arg;
    j->work.data = j;
    int rc = uv_queue_work(c->loop, &j->work, hash_job_work, hash_job_done);
    if (rc < 0) {
        free(j->path);
        free(j);
        return rc;
    }
    c->pending++;
    return 0;
}
