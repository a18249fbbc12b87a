#include "creds.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/log.h"
#include "http.h"

#define CREDS_REFRESH_BEFORE_S 300 /* CONTRACTS.md: refresh 5 minutes before Expiration */
#define CREDS_MIN_LEFT_S 60        /* creds_peek hands out nothing closer to expiry */
#define CREDS_RESP_CAP 16384
#define CREDS_TOKEN_FILE_MAX 8192
#define IMDS_TOKEN_TTL "21600"

struct waiter {
    creds_cb cb;
    void *arg;
    struct waiter *next;
};

struct creds_provider {
    struct http_client *http;
    uv_loop_t *loop;
    enum creds_source src;
    struct aws_creds cur;
    bool have;
    char *ecs_url, *ecs_token, *ecs_token_file, *imds_base;
    bool fetching, closing;
    int inflight;      /* http requests of ours not yet called back */
    int live_handles;  /* timers not yet closed */
    struct waiter *waiters;
    uv_timer_t refresh; /* scheduled refresh / retry after failure */
    uv_timer_t kick;    /* delivers callbacks on the next loop turn */
    unsigned failures;
    uint64_t fetches;
    char imds_token[256];
    char imds_role[256];
};

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

/* ---- pure parsers ------------------------------------------------------------------------ */

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return ERR_MALFORMED;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int creds_parse_iso8601(const char *s, int64_t *out)
{
    /* YYYY-MM-DDTHH:MM:SS then optional .fraction, then Z or +00:00 */
    if (strnlen(s, 21) < 20)
        return ERR_MALFORMED;
    int y, mo, d, h, mi, sec;
    if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        return ERR_MALFORMED;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        int nd = 0;
        while (*p >= '0' && *p <= '9' && nd < 12) {
            p++;
            nd++;
        }
        if (nd == 0)
            return ERR_MALFORMED;
    }
    if (!((p[0] == 'Z' && p[1] == '\0') || strcmp(p, "+00:00") == 0))
        return ERR_MALFORMED;
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
        sec > 60)
        return ERR_MALFORMED;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return ERR_MALFORMED;
    *out = (int64_t)t;
    return 0;
}

static int take_str(const cJSON *j, const char *key, char *dst, size_t sz, bool required)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) {
        if (required)
            return ERR_MALFORMED;
        dst[0] = '\0';
        return 0;
    }
    if (!cJSON_IsString(v) || !v->valuestring)
        return ERR_MALFORMED;
    size_t n = strlen(v->valuestring);
    if (n >= sz)
        return ERR_LIMIT;
    if (required && n == 0)
        return ERR_MALFORMED;
    memcpy(dst, v->valuestring, n + 1);
    return 0;
}

/* Wipe every string in the tree before it is freed (it holds a secret). */
static void json_wipe(cJSON *j)
{
    for (; j; j = j->next) {
        if (j->valuestring)
            OPENSSL_cleanse(j->valuestring, strlen(j->valuestring));
        json_wipe(j->child);
    }
}

int creds_parse_json(const uint8_t *p, size_t len, struct aws_creds *c)
{
    memset(c, 0, sizeof(*c));
    cJSON *j = cJSON_ParseWithLength((const char *)p, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ERR_MALFORMED;
    }
    int rc = 0;
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "Code"); /* IMDS: "Success" */
    if (code && (!cJSON_IsString(code) || strcmp(code->valuestring, "Success") != 0))
        rc = ERR_MALFORMED;
    if (rc == 0)
        rc = take_str(j, "AccessKeyId", c->access_key_id, sizeof(c->access_key_id), true);
    if (rc == 0)
        rc = take_str(j, "SecretAccessKey", c->secret_access_key, sizeof(c->secret_access_key),
                      true);
    if (rc == 0)
        rc = take_str(j, "Token", c->session_token, sizeof(c->session_token), false);
    if (rc == 0) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "Expiration");
        if (!e)
            rc = c->session_token[0] ? ERR_MALFORMED : 0; /* temporary keys always expire */
        else if (!cJSON_IsString(e))
            rc = ERR_MALFORMED;
        else
            rc = creds_parse_iso8601(e->valuestring, &c->expires_at);
    }
    json_wipe(j);
    cJSON_Delete(j);
    if (rc < 0)
        aws_creds_wipe(c);
    return rc;
}

/* ---- provider -------------------------------------------------------------------------- */

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static void provider_free(struct creds_provider *p)
{
    aws_creds_wipe(&p->cur);
    OPENSSL_cleanse(p->imds_token, sizeof(p->imds_token));
    if (p->ecs_token) {
        OPENSSL_cleanse(p->ecs_token, strlen(p->ecs_token));
        free(p->ecs_token);
    }
    free(p->ecs_url);
    free(p->ecs_token_file);
    free(p->imds_base);
    free(p);
}

static void maybe_free(struct creds_provider *p)
{
    if (p->closing && p->inflight == 0 && p->live_handles == 0)
        provider_free(p);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct creds_provider *p = h->data;
    p->live_handles--;
    maybe_free(p);
}

static bool valid_for(const struct creds_provider *p, int64_t secs)
{
    return p->have && (p->cur.expires_at == 0 || p->cur.expires_at - now_s() >= secs);
}

const struct aws_creds *creds_peek(struct creds_provider *p)
{
    return valid_for(p, CREDS_MIN_LEFT_S) ? &p->cur : NULL;
}

static void flush_waiters(struct creds_provider *p, int err)
{
    struct waiter *w = p->waiters;
    p->waiters = NULL;
    while (w) {
        struct waiter *next = w->next;
        if (err == 0)
            w->cb(w->arg, 0, &p->cur);
        else
            w->cb(w->arg, err, NULL);
        free(w);
        w = next;
    }
}

static void on_kick(uv_timer_t *t)
{
    struct creds_provider *p = t->data;
    if (p->fetching)
        return; /* the fetch's end delivers */
    flush_waiters(p, valid_for(p, 1) ? 0 : HTTP_ERR_CREDS);
}

static void start_fetch(struct creds_provider *p);

static void on_refresh(uv_timer_t *t)
{
    struct creds_provider *p = t->data;
    if (!p->fetching && !p->closing)
        start_fetch(p);
}

static void schedule_refresh(struct creds_provider *p)
{
    if (p->closing || p->src == CREDS_ENV)
        return;
    uint64_t delay_ms;
    if (p->failures) {
        unsigned f = p->failures > 6 ? 6 : p->failures; /* 2, 4 ... 64 s */
        delay_ms = 1000ull << f;
        if (valid_for(p, 1) && p->cur.expires_at - now_s() < 120)
            delay_ms = 1000; /* nearly expired: keep trying hard */
    } else {
        int64_t left = p->cur.expires_at - now_s();
        int64_t at = left - CREDS_REFRESH_BEFORE_S;
        if (at <= 0) /* short-lived credentials: refresh halfway, never in a tight loop */
            at = left / 2 > 5 ? left / 2 : 5;
        delay_ms = (uint64_t)at * 1000;
    }
    uv_timer_start(&p->refresh, on_refresh, delay_ms, 0);
}

static void fetch_done(struct creds_provider *p, int err, struct aws_creds *nc)
{
    p->fetching = false;
    if (err == 0) {
        aws_creds_wipe(&p->cur);
        p->cur = *nc;
        p->have = true;
        p->failures = 0;
        p->fetches++;
        struct logb b;
        if (log_begin(&b, LOG_INFO, "aws_credentials")) {
            log_str(&b, "source", p->src == CREDS_ECS ? "ecs" : "imds");
            log_i64(&b, "expires_in_s", p->cur.expires_at ? p->cur.expires_at - now_s() : -1);
            log_end(&b);
        }
    } else if (err != HTTP_ERR_CANCELED) {
        p->failures++;
        struct logb b;
        if (log_begin(&b, LOG_WARN, "aws_credentials_failed")) {
            log_str(&b, "source", p->src == CREDS_ECS ? "ecs" : "imds");
            log_str(&b, "error", http_err_str(err));
            log_u64(&b, "failures", p->failures);
            log_end(&b);
        }
    }
    if (nc)
        aws_creds_wipe(nc);
    if (p->closing) {
        flush_waiters(p, HTTP_ERR_CANCELED);
        return;
    }
    schedule_refresh(p);
    flush_waiters(p, valid_for(p, 1) ? 0 : HTTP_ERR_CREDS);
}

static int send_req(struct creds_provider *p, struct http_req *r, http_done_cb cb)
{
    http_req_set_max_attempts(r, 2);
    http_req_set_timeouts(r, 1000, 3000);
    http_req_set_response_cap(r, CREDS_RESP_CAP);
    http_req_set_sensitive(r);
    int rc = http_send(p->http, r, cb, p);
    if (rc == 0)
        p->inflight++;
    return rc;
}

static void creds_from_body(struct creds_provider *p, const struct http_resp *resp)
{
    struct aws_creds nc;
    int rc = creds_parse_json(resp->body, resp->body_len, &nc);
    fetch_done(p, rc < 0 ? HTTP_ERR_CREDS : 0, rc < 0 ? NULL : &nc);
}

/* ECS */
static void on_ecs(void *arg, const struct http_resp *resp)
{
    struct creds_provider *p = arg;
    p->inflight--;
    if (resp->res.err < 0)
        fetch_done(p, resp->res.err == HTTP_ERR_CANCELED ? HTTP_ERR_CANCELED : HTTP_ERR_CREDS,
                   NULL);
    else
        creds_from_body(p, resp);
    maybe_free(p);
}

static char *read_token_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = malloc(CREDS_TOKEN_FILE_MAX + 1);
    size_t n = 0;
    while (buf && n < CREDS_TOKEN_FILE_MAX) {
        ssize_t k = read(fd, buf + n, CREDS_TOKEN_FILE_MAX - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    if (!buf)
        return NULL;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    if (n == 0 || memchr(buf, '\n', n) || memchr(buf, '\r', n) || strlen(buf) != n) {
        OPENSSL_cleanse(buf, CREDS_TOKEN_FILE_MAX + 1);
        free(buf);
        return NULL;
    }
    return buf;
}

static int fetch_ecs(struct creds_provider *p)
{
    struct http_req *r;
    TRY(http_req_new("GET", p->ecs_url, &r));
    int rc = 0;
    if (p->ecs_token_file) {
        char *tok = read_token_file(p->ecs_token_file);
        if (!tok) {
            http_req_free(r);
            return ERR_IO;
        }
        rc = http_req_add_header(r, "Authorization", tok);
        OPENSSL_cleanse(tok, strlen(tok));
        free(tok);
    } else if (p->ecs_token) {
        rc = http_req_add_header(r, "Authorization", p->ecs_token);
    }
    if (rc < 0) {
        http_req_free(r);
        return rc;
    }
    return send_req(p, r, on_ecs);
}

/* IMDSv2: token, role name, role credentials */
static int imds_get(struct creds_provider *p, const char *suffix, http_done_cb cb)
{
    char url[1024];
    int n = snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%s",
                     p->imds_base, suffix);
    if (n < 0 || (size_t)n >= sizeof(url))
        return ERR_LIMIT;
    struct http_req *r;
    TRY(http_req_new("GET", url, &r));
    int rc = http_req_add_header(r, "X-aws-ec2-metadata-token", p->imds_token);
    if (rc < 0) {
        http_req_free(r);
        return rc;
    }
    return send_req(p, r, cb);
}

static void imds_fail(struct creds_provider *p, const struct http_resp *resp)
{
    fetch_done(p, resp && resp->res.err == HTTP_ERR_CANCELED ? HTTP_ERR_CANCELED : HTTP_ERR_CREDS,
               NULL);
}

static void on_imds_creds(void *arg, const struct http_resp *resp)
{
    struct creds_provider *p = arg;
    p->inflight--;
    if (resp->res.err < 0)
        imds_fail(p, resp);
    else
        creds_from_body(p, resp);
    maybe_free(p);
}

static bool role_name_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  strchr("+=,.@_-", c);
        if (!ok || c == '\0')
            return false;
    }
    return true;
}

static void on_imds_role(void *arg, const struct http_resp *resp)
{
    struct creds_provider *p = arg;
    p->inflight--;
    if (resp->res.err < 0 || p->closing) {
        imds_fail(p, resp);
        maybe_free(p);
        return;
    }
    /* first line of the body is the role name */
    size_t n = 0;
    while (n < resp->body_len && resp->body[n] != '\n' && resp->body[n] != '\r')
        n++;
    if (n >= sizeof(p->imds_role) || !role_name_ok((const char *)resp->body, n)) {
        imds_fail(p, NULL);
        return;
    }
    memcpy(p->imds_role, resp->body, n);
    p->imds_role[n] = '\0';
    if (imds_get(p, p->imds_role, on_imds_creds) < 0)
        imds_fail(p, NULL);
}

static void on_imds_token(void *arg, const struct http_resp *resp)
{
    struct creds_provider *p = arg;
    p->inflight--;
    if (resp->res.err < 0 || p->closing || resp->body_len == 0 ||
        resp->body_len >= sizeof(p->imds_token) ||
        memchr(resp->body, '\0', resp->body_len) || memchr(resp->body, '\n', resp->body_len) ||
        memchr(resp->body, '\r', resp->body_len)) {
        imds_fail(p, resp->res.err < 0 ? resp : NULL);
        maybe_free(p);
        return;
    }
    memcpy(p->imds_token, resp->body, resp->body_len);
    p->imds_token[resp->body_len] = '\0';
    if (imds_get(p, "", on_imds_role) < 0)
        imds_fail(p, NULL);
}

static int fetch_imds(struct creds_provider *p)
{
    char url[1024];
    int n = snprintf(url, sizeof(url), "%s/latest/api/token", p->imds_base);
    if (n < 0 || (size_t)n >= sizeof(url))
        return ERR_LIMIT;
    struct http_req *r;
    TRY(http_req_new("PUT", url, &r));
    int rc = http_req_add_header(r, "X-aws-ec2-metadata-token-ttl-seconds", IMDS_TOKEN_TTL);
    if (rc < 0) {
        http_req_free(r);
        return rc;
    }
    return send_req(p, r, on_imds_token);
}

static void start_fetch(struct creds_provider *p)
{
    p->fetching = true;
    int rc = p->src == CREDS_ECS ? fetch_ecs(p) : fetch_imds(p);
    if (rc < 0) {
        /* deliver from the loop, never inside the caller */
        p->fetching = false;
        p->failures++;
        schedule_refresh(p);
        uv_timer_start(&p->kick, on_kick, 0, 0);
    }
}

int creds_get(struct creds_provider *p, creds_cb cb, void *arg)
{
    if (p->closing)
        return ERR_WRONG_STATE;
    struct waiter *w = malloc(sizeof(*w));
    if (!w)
        return ERR_NOMEM;
    w->cb = cb;
    w->arg = arg;
    w->next = p->waiters;
    p->waiters = w;
    if (p->fetching)
        return 0;
    if (valid_for(p, CREDS_MIN_LEFT_S) || p->src == CREDS_ENV) {
        uv_timer_start(&p->kick, on_kick, 0, 0);
        return 0;
    }
    start_fetch(p);
    return 0;
}

void creds_invalidate(struct creds_provider *p)
{
    if (p->src == CREDS_ENV)
        return; /* nothing else to fetch: the service will keep saying no */
    p->have = false;
    aws_creds_wipe(&p->cur);
}

enum creds_source creds_provider_source(const struct creds_provider *p)
{
    return p->src;
}

uint64_t creds_fetch_count(const struct creds_provider *p)
{
    return p->fetches;
}

/* As the AWS SDKs: https anywhere; plain http only to loopback or the container endpoints, so the
 * authorization token never crosses a network in clear. */
static bool full_uri_allowed(const char *u)
{
    if (strncmp(u, "https://", 8) == 0)
        return true;
    if (strncmp(u, "http://", 7) != 0)
        return false;
    const char *h = u + 7;
    size_t n = strcspn(h, "/");
    const char *colon = NULL;
    if (h[0] == '[') {
        const char *rb = memchr(h, ']', n);
        if (!rb)
            return false;
        n = (size_t)(rb - h) + 1;
    } else if ((colon = memchr(h, ':', n)) != NULL) {
        n = (size_t)(colon - h);
    }
    static const char *const ok[] = {"localhost", "169.254.170.2", "169.254.170.23", "[::1]",
                                     "[fd00:ec2::23]"};
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        if (strlen(ok[i]) == n && strncasecmp(h, ok[i], n) == 0)
            return true;
    }
    if (n >= 4 && strncmp(h, "127.", 4) == 0) { /* 127.0.0.0/8, digits and dots only */
        for (size_t i = 4; i < n; i++) {
            if (!((h[i] >= '0' && h[i] <= '9') || h[i] == '.'))
                return false;
        }
        return true;
    }
    return false;
}

int creds_provider_new(struct http_client *http, struct creds_provider **out)
{
    *out = NULL;
    struct creds_provider *p = calloc(1, sizeof(*p));
    if (!p)
        return ERR_NOMEM;
    p->http = http;
    p->loop = http_client_loop(http);
    int rc = 0;
    const char *ak = env_nonempty("AWS_ACCESS_KEY_ID"), *sk = env_nonempty("AWS_SECRET_ACCESS_KEY");
    const char *rel = env_nonempty("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = env_nonempty("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    const char *dis = getenv("AWS_EC2_METADATA_DISABLED");
    if (ak && sk) {
        const char *tok = env_nonempty("AWS_SESSION_TOKEN");
        if (strlen(ak) >= sizeof(p->cur.access_key_id) ||
            strlen(sk) >= sizeof(p->cur.secret_access_key) ||
            (tok && strlen(tok) >= sizeof(p->cur.session_token))) {
            rc = ERR_CONFIG;
            goto fail;
        }
        memcpy(p->cur.access_key_id, ak, strlen(ak) + 1);
        memcpy(p->cur.secret_access_key, sk, strlen(sk) + 1);
        if (tok)
            memcpy(p->cur.session_token, tok, strlen(tok) + 1);
        p->have = true;
        p->fetches = 1;
        p->src = CREDS_ENV;
    } else if (rel || full) {
        p->src = CREDS_ECS;
        char url[2048];
        int n;
        if (rel) {
            const char *host = env_nonempty("DICOM_CORE_ECS_CREDENTIALS_HOST");
            n = snprintf(url, sizeof(url), "http://%s%s%s", host ? host : "169.254.170.2",
                         rel[0] == '/' ? "" : "/", rel);
        } else {
            if (!full_uri_allowed(full)) {
                rc = ERR_CONFIG;
                goto fail;
            }
            n = snprintf(url, sizeof(url), "%s", full);
        }
        if (n < 0 || (size_t)n >= sizeof(url)) {
            rc = ERR_CONFIG;
            goto fail;
        }
        p->ecs_url = strdup(url);
        const char *tf = env_nonempty("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
        const char *tk = env_nonempty("AWS_CONTAINER_AUTHORIZATION_TOKEN");
        if (tf)
            p->ecs_token_file = strdup(tf);
        else if (tk)
            p->ecs_token = strdup(tk);
        if (!p->ecs_url || (tf && !p->ecs_token_file) || (!tf && tk && !p->ecs_token)) {
            rc = ERR_NOMEM;
            goto fail;
        }
    } else if (dis && strcasecmp(dis, "true") == 0) {
        rc = ERR_CONFIG;
        goto fail;
    } else {
        p->src = CREDS_IMDS;
        const char *ep = env_nonempty("AWS_EC2_METADATA_SERVICE_ENDPOINT");
        p->imds_base = strdup(ep ? ep : "http://169.254.169.254");
        if (!p->imds_base) {
            rc = ERR_NOMEM;
            goto fail;
        }
        size_t l = strlen(p->imds_base);
        while (l && p->imds_base[l - 1] == '/')
            p->imds_base[--l] = '\0';
    }
    uv_timer_init(p->loop, &p->refresh);
    uv_timer_init(p->loop, &p->kick);
    uv_unref((uv_handle_t *)&p->refresh); /* a pending refresh alone does not keep a loop alive */
    p->refresh.data = p;
    p->kick.data = p;
    p->live_handles = 2;
    *out = p;
    return 0;
fail:
    provider_free(p);
    return rc;
}

void creds_provider_close(struct creds_provider *p)
{
    if (!p || p->closing)
        return;
    p->closing = true;
    uv_timer_stop(&p->refresh);
    uv_timer_stop(&p->kick);
    uv_close((uv_handle_t *)&p->refresh, on_timer_closed);
    uv_close((uv_handle_t *)&p->kick, on_timer_closed);
    flush_waiters(p, HTTP_ERR_CANCELED);
}
