/* aws_read: which credentials read a scope. A scope of chosen studies gets an STS session of
 * the reader role whose session policy allows the core's DICOMweb reads for those studies only
 * (sts_policy.h); sessions are cached by their policy (its SHA-256), most recently used first,
 * at most read.creds_cache of them, each refreshed by its provider five minutes before it
 * expires. The reader role's unscoped session reads everything else: the scope ALL, a
 * study-level search (SearchDICOMStudies takes no study key), and a scope too large for a
 * session policy, in characters or in AWS's packed size (then logged, and the filters hold). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/sigv4.h"
#include "aws/sts_policy.h"
#include "aws_read_int.h"
#include "common/log.h"

struct rcreds {
    struct rcreds *next; /* most recently used first */
    char key[65];        /* SHA-256 of the session policy */
    struct creds_provider *p;
    size_t refs;
    bool unscopable;     /* STS refused the policy as too large: the unscoped session reads */
};

struct rcreds_lease {
    struct aws_read *r;
    struct rcreds *entry; /* NULL: the unscoped session */
    struct creds_provider *p;
    bool scoped, waiting, released;
    size_t n_studies;
    char client_id[129];
    rcreds_cb cb;
    void *arg;
};

static void evict(struct aws_read *r)
{
    while (r->n_cache > r->cfg.creds_cache) {
        struct rcreds **victim = NULL;
        for (struct rcreds **pp = &r->cache; *pp; pp = &(*pp)->next) {
            if ((*pp)->refs == 0)
                victim = pp; /* the last idle one: least recently used */
        }
        if (!victim)
            return; /* all in use: the cache stays over its size until they end */
        struct rcreds *e = *victim;
        *victim = e->next;
        creds_provider_close(e->p);
        free(e);
        r->n_cache--;
    }
}

void aws_read_creds_close_all(struct aws_read *r)
{
    while (r->cache) {
        struct rcreds *e = r->cache;
        r->cache = e->next;
        creds_provider_close(e->p);
        free(e);
    }
    r->n_cache = 0;
}

static struct rcreds *find_or_add(struct aws_read *r, const char *key, const char *policy,
                                  const char *client_id, int *rc)
{
    *rc = 0;
    for (struct rcreds **pp = &r->cache; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) == 0) {
            struct rcreds *e = *pp;
            *pp = e->next; /* to the front */
            e->next = r->cache;
            r->cache = e;
            return e;
        }
    }
    struct rcreds *e = calloc(1, sizeof *e);
    if (!e) {
        *rc = ERR_NOMEM;
        return NULL;
    }
    char session[65];
    sts_session_name("dicom-core-", client_id, session);
    struct sts_assume a = {.role_arn = r->cfg.reader_role_arn, .session_name = session,
                           .duration_s = r->cfg.session_duration_s, .policy = policy};
    *rc = sts_provider_new(r->sts, &a, &e->p);
    if (*rc < 0) {
        free(e);
        return NULL;
    }
    memcpy(e->key, key, sizeof e->key);
    e->next = r->cache;
    r->cache = e;
    r->n_cache++;
    evict(r);
    return e;
}

/* Give up the lease's session (the cache evicts idle ones only when it adds one: never inside
 * a provider's own callback). */
static void lease_drop_entry(struct rcreds_lease *l)
{
    if (l->entry) {
        l->entry->refs--;
        l->entry = NULL;
    }
}

/* STS's refusals that mean "this policy cannot be a session policy", not "you may not". */
static bool policy_too_large(const struct http_result *e)
{
    return strcmp(e->error_code, "PackedPolicyTooLarge") == 0 ||
           (strcmp(e->error_code, "ValidationError") == 0 && strstr(e->message, "olicy"));
}

static void on_creds(void *arg, int err, const struct aws_creds *c)
{
    (void)c;
    struct rcreds_lease *l = arg;
    l->waiting = false;
    if (l->released) {
        free(l);
        return;
    }
    if (err == 0) {
        l->cb(l->arg, 0, l->p, l->scoped, "");
        return;
    }
    char why[400];
    const struct http_result *e = sts_provider_is(l->p) ? sts_provider_last_error(l->p) : NULL;
    if (l->scoped && e && policy_too_large(e)) {
        l->entry->unscopable = true;
        aws_read_log_unscoped(l->client_id, "sts_packed_policy_too_large", l->n_studies);
        lease_drop_entry(l);
        l->scoped = false;
        l->p = l->r->unscoped;
        l->waiting = true;
        if (creds_get(l->p, on_creds, l) == 0)
            return;
        l->waiting = false;
        e = NULL;
    }
    if (e && e->error_code[0])
        snprintf(why, sizeof why, "no credentials for the reader role: STS AssumeRole answered "
                                  "%s: %.200s", e->error_code, e->message);
    else
        snprintf(why, sizeof why, "no credentials for HealthImaging reads (%s)",
                 http_err_str(err));
    l->cb(l->arg, HTTP_ERR_CREDS, NULL, false, why);
}

int aws_read_creds_acquire(struct aws_read *r, const struct read_scope *scope, bool study_search,
                           rcreds_cb cb, void *arg, struct rcreds_lease **out)
{
    *out = NULL;
    struct rcreds_lease *l = calloc(1, sizeof *l);
    if (!l)
        return ERR_NOMEM;
    l->r = r;
    l->cb = cb;
    l->arg = arg;
    l->p = r->unscoped;
    l->n_studies = scope->n;
    snprintf(l->client_id, sizeof l->client_id, "%s", scope->client_id);
    bool narrow = r->sts && !study_search &&
                  (scope->scope == GRANT_SCOPE_OWN || scope->scope == GRANT_SCOPE_SHARED);
    if (narrow && scope->n > 0) {
        char policy[STS_POLICY_MAX_CHARS + 1];
        size_t len;
        const char **uids = calloc(scope->n, sizeof *uids);
        int rc = uids ? 0 : ERR_NOMEM;
        for (size_t i = 0; rc == 0 && i < scope->n; i++)
            uids[i] = scope->studies[i];
        if (rc == 0)
            rc = sts_policy_build(r->datastore_arn, uids, scope->n, STS_POLICY_CORE, policy,
                                  sizeof policy, &len);
        free(uids);
        if (rc == ERR_LIMIT) {
            aws_read_log_unscoped(scope->client_id, "session_policy_over_2048_characters",
                                  scope->n);
        } else if (rc < 0) {
            free(l);
            return rc;
        } else {
            char key[65];
            sigv4_sha256_hex(policy, len, key);
            struct rcreds *e = find_or_add(r, key, policy, scope->client_id, &rc);
            if (!e) {
                free(l);
                return rc;
            }
            if (e->unscopable) {
                aws_read_log_unscoped(scope->client_id, "sts_packed_policy_too_large",
                                      scope->n);
            } else {
                e->refs++;
                l->entry = e;
                l->p = e->p;
                l->scoped = true;
            }
        }
    }
    l->waiting = true;
    int rc = creds_get(l->p, on_creds, l);
    if (rc < 0) {
        lease_drop_entry(l);
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

void aws_read_creds_release(struct rcreds_lease *l)
{
    if (!l)
        return;
    lease_drop_entry(l);
    if (l->waiting) {
        l->released = true; /* on_creds frees it */
        return;
    }
    free(l);
}
