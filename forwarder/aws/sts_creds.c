/* sts: a credentials provider whose fetch is an AssumeRole (one role, one session policy). */
#include "sts.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sts_int.h"

#define REFRESH_BEFORE_S 300 /* hand out nothing that expires within 5 minutes: fetch anew */

struct waiter {
    struct waiter *next;
    creds_cb cb;
    void *arg;
};

struct sts_provider {
    struct creds_provider base; /* first: the provider's head */
    struct sts_client *s;
    char *role_arn, *policy;
    char session[65];
    unsigned duration_s;
    struct aws_creds cur;
    bool have, fetching, closing;
    struct waiter *waiters;
    struct http_defer defer; /* answers a get while fresh credentials are at hand */
    struct http_result last_err;
};

static const struct creds_provider_ops g_ops;

static bool fresh(const struct sts_provider *p)
{
    return p->have && p->cur.expires_at - (int64_t)time(NULL) > REFRESH_BEFORE_S;
}

static void provider_free(struct sts_provider *p)
{
    aws_creds_wipe(&p->cur);
    free(p->role_arn);
    free(p->policy);
    free(p);
}

/* Every waiter, with the outcome (on the loop, never inside a get). */
static void flush(struct sts_provider *p, int err)
{
    struct waiter *w = p->waiters;
    p->waiters = NULL;
    while (w) {
        struct waiter *next = w->next;
        w->cb(w->arg, err, err == 0 ? &p->cur : NULL);
        free(w);
        w = next;
    }
}

static void on_assumed(void *arg, const struct http_result *res, const struct aws_creds *c,
                       int packed_pct, const char *arn)
{
    (void)packed_pct;
    (void)arn;
    struct sts_provider *p = arg;
    p->fetching = false;
    if (p->closing) {
        flush(p, HTTP_ERR_CANCELED);
        provider_free(p);
        return;
    }
    if (c) {
        aws_creds_wipe(&p->cur);
        p->cur = *c;
        p->have = true;
        p->base.fetches++;
        memset(&p->last_err, 0, sizeof p->last_err);
        flush(p, 0);
        return;
    }
    p->last_err = *res;
    flush(p, HTTP_ERR_CREDS);
}

static int start_fetch(struct sts_provider *p);

static void on_defer(void *arg)
{
    struct sts_provider *p = arg;
    if (fresh(p)) {
        flush(p, 0);
        return;
    }
    if (!p->fetching && start_fetch(p) < 0) /* expired meanwhile */
        flush(p, HTTP_ERR_CREDS);
}

static int start_fetch(struct sts_provider *p)
{
    struct sts_assume a = {.role_arn = p->role_arn, .session_name = p->session,
                           .duration_s = p->duration_s, .policy = p->policy};
    TRY(sts_assume_role(p->s, &a, on_assumed, p));
    p->fetching = true;
    return 0;
}

static const struct aws_creds *op_peek(struct creds_provider *bp)
{
    struct sts_provider *p = (struct sts_provider *)bp;
    return fresh(p) ? &p->cur : NULL;
}

static int op_get(struct creds_provider *bp, creds_cb cb, void *arg)
{
    struct sts_provider *p = (struct sts_provider *)bp;
    if (p->closing)
        return ERR_WRONG_STATE;
    struct waiter *w = calloc(1, sizeof *w);
    if (!w)
        return ERR_NOMEM;
    w->cb = cb;
    w->arg = arg;
    w->next = p->waiters;
    p->waiters = w;
    if (p->fetching)
        return 0;
    if (fresh(p)) {
        p->defer.cb = on_defer;
        p->defer.arg = p;
        http_client_defer(p->s->ac.http, &p->defer);
        return 0;
    }
    int rc = start_fetch(p);
    if (rc < 0) {
        p->waiters = w->next;
        free(w);
    }
    return rc;
}

static void op_invalidate(struct creds_provider *bp)
{
    struct sts_provider *p = (struct sts_provider *)bp;
    aws_creds_wipe(&p->cur);
    p->have = false;
}

static void op_close(struct creds_provider *bp)
{
    struct sts_provider *p = (struct sts_provider *)bp;
    p->closing = true;
    http_client_undefer(p->s->ac.http, &p->defer);
    if (p->fetching)
        return; /* on_assumed frees it */
    flush(p, HTTP_ERR_CANCELED);
    provider_free(p);
}

static const struct creds_provider_ops g_ops = {
    .peek = op_peek,
    .get = op_get,
    .invalidate = op_invalidate,
    .close = op_close,
};

int sts_provider_new(struct sts_client *s, const struct sts_assume *a,
                     struct creds_provider **out)
{
    *out = NULL;
    if (!a->role_arn || strncmp(a->role_arn, "arn:", 4) != 0 || !a->session_name ||
        strlen(a->session_name) < 2 || strlen(a->session_name) > 64)
        return ERR_MALFORMED;
    struct sts_provider *p = calloc(1, sizeof *p);
    if (!p)
        return ERR_NOMEM;
    p->base.ops = &g_ops;
    p->base.source = CREDS_NONE;
    p->s = s;
    p->role_arn = strdup(a->role_arn);
    p->policy = a->policy ? strdup(a->policy) : NULL;
    memcpy(p->session, a->session_name, strlen(a->session_name) + 1);
    p->duration_s = a->duration_s;
    if (!p->role_arn || (a->policy && !p->policy)) {
        provider_free(p);
        return ERR_NOMEM;
    }
    *out = &p->base;
    return 0;
}

const struct http_result *sts_provider_last_error(const struct creds_provider *bp)
{
    return &((const struct sts_provider *)bp)->last_err;
}

bool sts_provider_is(const struct creds_provider *bp)
{
    return bp && bp->ops == &g_ops;
}
