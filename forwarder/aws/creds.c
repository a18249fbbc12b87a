/* creds: the standard chain's provider: chosen from the environment at creation, a cache of one
 * set of credentials, refreshed by a timer before they expire; the fetches are creds_fetch.c's. */
#include "creds.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/log.h"
#include "creds_int.h"

#define CREDS_REFRESH_BEFORE_S 300 /* CONTRACTS.md: refresh 5 minutes before Expiration */
#define CREDS_MIN_LEFT_S 60        /* creds_peek hands out nothing closer to expiry */

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static void provider_free(struct creds_chain *p)
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

void creds_maybe_free(struct creds_chain *p)
{
    if (p->closing && p->inflight == 0 && p->live_handles == 0)
        provider_free(p);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct creds_chain *p = h->data;
    p->live_handles--;
    creds_maybe_free(p);
}

static bool valid_for(const struct creds_chain *p, int64_t secs)
{
    return p->have && (p->cur.expires_at == 0 || p->cur.expires_at - now_s() >= secs);
}

static const struct aws_creds *chain_peek(struct creds_provider *bp)
{
    struct creds_chain *p = (struct creds_chain *)bp;
    return valid_for(p, CREDS_MIN_LEFT_S) ? &p->cur : NULL;
}

static void flush_waiters(struct creds_chain *p, int err)
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
    struct creds_chain *p = t->data;
    if (p->fetching)
        return; /* the fetch's end delivers */
    flush_waiters(p, valid_for(p, 1) ? 0 : HTTP_ERR_CREDS);
}

static void start_fetch(struct creds_chain *p);

static void on_refresh(uv_timer_t *t)
{
    struct creds_chain *p = t->data;
    if (!p->fetching && !p->closing)
        start_fetch(p);
}

static void schedule_refresh(struct creds_chain *p)
{
    if (p->closing || p->base.source == CREDS_ENV)
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

void creds_fetch_done(struct creds_chain *p, int err, struct aws_creds *nc)
{
    p->fetching = false;
    if (err == 0) {
        aws_creds_wipe(&p->cur);
        p->cur = *nc;
        p->have = true;
        p->failures = 0;
        p->base.fetches++;
        struct logb b;
        if (log_begin(&b, LOG_INFO, "aws_credentials")) {
            log_str(&b, "source", p->base.source == CREDS_ECS ? "ecs" : "imds");
            log_i64(&b, "expires_in_s", p->cur.expires_at ? p->cur.expires_at - now_s() : -1);
            log_end(&b);
        }
    } else if (err != HTTP_ERR_CANCELED) {
        p->failures++;
        struct logb b;
        if (log_begin(&b, LOG_WARN, "aws_credentials_failed")) {
            log_str(&b, "source", p->base.source == CREDS_ECS ? "ecs" : "imds");
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


static void start_fetch(struct creds_chain *p)
{
    p->fetching = true;
    int rc = p->base.source == CREDS_ECS ? creds_fetch_ecs(p) : creds_fetch_imds(p);
    if (rc < 0) {
        /* deliver from the loop, never inside the caller */
        p->fetching = false;
        p->failures++;
        schedule_refresh(p);
        uv_timer_start(&p->kick, on_kick, 0, 0);
    }
}

static int chain_get(struct creds_provider *bp, creds_cb cb, void *arg)
{
    struct creds_chain *p = (struct creds_chain *)bp;
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
    if (valid_for(p, CREDS_MIN_LEFT_S) || p->base.source == CREDS_ENV) {
        uv_timer_start(&p->kick, on_kick, 0, 0);
        return 0;
    }
    start_fetch(p);
    return 0;
}

static void chain_invalidate(struct creds_provider *bp)
{
    struct creds_chain *p = (struct creds_chain *)bp;
    if (p->base.source == CREDS_ENV)
        return; /* nothing else to fetch: the service will keep saying no */
    p->have = false;
    aws_creds_wipe(&p->cur);
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

static void chain_close(struct creds_provider *bp)
{
    struct creds_chain *p = (struct creds_chain *)bp;
    if (p->closing)
        return;
    p->closing = true;
    uv_timer_stop(&p->refresh);
    uv_timer_stop(&p->kick);
    uv_close((uv_handle_t *)&p->refresh, on_timer_closed);
    uv_close((uv_handle_t *)&p->kick, on_timer_closed);
    flush_waiters(p, HTTP_ERR_CANCELED);
}

static const struct creds_provider_ops g_chain_ops = {
    .peek = chain_peek,
    .get = chain_get,
    .invalidate = chain_invalidate,
    .close = chain_close,
};

int creds_provider_new(struct http_client *http, struct creds_provider **out)
{
    *out = NULL;
    struct creds_chain *p = calloc(1, sizeof(*p));
    if (!p)
        return ERR_NOMEM;
    p->base.ops = &g_chain_ops;
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
        p->base.fetches = 1;
        p->base.source = CREDS_ENV;
    } else if (rel || full) {
        p->base.source = CREDS_ECS;
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
        p->base.source = CREDS_IMDS;
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
    *out = &p->base;
    return 0;
fail:
    provider_free(p);
    return rc;
}
