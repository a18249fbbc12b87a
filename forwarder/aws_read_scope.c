/* aws_read: the studies of a read scope. OWN: the studies of the instance items whose client_id
 * is the client's, through the sparse GSI client_index (client_id, study_uid; keys only), so
 * one Query per page, sorted by study; SHARED: those plus the studies of the grant items made
 * for the client (pk "GRANT", sk "<client_id>#<study>", written by `dicom-core share`) that have
 * not expired or been revoked, read with a consistent Query. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws_read_int.h"
#include "common/dcm_vr.h"
#include "common/log.h"

#define SCOPE_PAGES_MAX 100000u

/* ---- sorted scopes ---------------------------------------------------------------------------- */

static int uid_cmp(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static bool uid_ok(const char *s)
{
    size_t n = strnlen(s, AWS_READ_UID_MAX);
    return n < AWS_READ_UID_MAX && dcm_uid_valid((const uint8_t *)s, n);
}

/* Sort and drop duplicates; the new count. */
static size_t sort_unique(char (*u)[AWS_READ_UID_MAX], size_t n)
{
    if (n == 0)
        return 0;
    qsort(u, n, sizeof *u, uid_cmp);
    size_t w = 1;
    for (size_t i = 1; i < n; i++) {
        if (strcmp(u[i], u[w - 1]) != 0)
            memcpy(u[w++], u[i], sizeof *u);
    }
    return w;
}

int read_scope_copy(const struct backend_read_scope *s, struct read_scope *out)
{
    memset(out, 0, sizeof *out);
    out->scope = s->scope;
    snprintf(out->client_id, sizeof out->client_id, "%s", s->client_id ? s->client_id : "");
    if (s->scope != GRANT_SCOPE_OWN && s->scope != GRANT_SCOPE_SHARED)
        return 0;
    if (!s->studies && s->n_studies)
        return ERR_MALFORMED;
    if (s->n_studies == 0)
        return 0;
    out->studies = calloc(s->n_studies, sizeof *out->studies);
    if (!out->studies)
        return ERR_NOMEM;
    for (size_t i = 0; i < s->n_studies; i++) {
        if (!s->studies[i] || !uid_ok(s->studies[i])) {
            read_scope_free(out);
            return ERR_MALFORMED;
        }
        memcpy(out->studies[i], s->studies[i], strlen(s->studies[i]) + 1);
    }
    out->n = sort_unique(out->studies, s->n_studies);
    return 0;
}

void read_scope_free(struct read_scope *s)
{
    free(s->studies);
    s->studies = NULL;
    s->n = 0;
}

bool read_scope_has(const struct read_scope *s, const char *study)
{
    if (s->scope == GRANT_SCOPE_ALL)
        return true;
    if (s->scope == GRANT_SCOPE_NONE || s->n == 0 || !study)
        return false;
    char key[AWS_READ_UID_MAX];
    size_t n = strnlen(study, sizeof key);
    if (n == sizeof key)
        return false;
    memcpy(key, study, n + 1);
    return bsearch(key, s->studies, s->n, sizeof *s->studies, uid_cmp) != NULL;
}

/* ---- the studies of a client, from DynamoDB --------------------------------------------------- */

struct scope_op {
    struct aws_read *r;
    char client_id[129];
    enum grant_scope scope;
    backend_studies_cb cb;
    void *arg;
    bool grants;      /* the grants' phase (after the client's own) */
    cJSON *start_key; /* LastEvaluatedKey of the last page */
    unsigned pages;
    char (*uids)[AWS_READ_UID_MAX];
    size_t n, cap;
    struct http_defer defer;
};

static void scope_end(struct scope_op *op, int err, const char *why)
{
    struct aws_read *r = op->r;
    const char **ptrs = NULL;
    size_t n = 0;
    if (err == 0 && op->n > 0) {
        n = sort_unique(op->uids, op->n);
        ptrs = calloc(n, sizeof *ptrs);
        if (!ptrs)
            err = ERR_NOMEM;
        for (size_t i = 0; ptrs && i < n; i++)
            ptrs[i] = op->uids[i];
    }
    struct logb b;
    if (log_begin(&b, err ? LOG_WARN : LOG_DEBUG, err ? "aws_read_scope_failed" :
                                                          "aws_read_scope")) {
        log_str(&b, "client_id", op->client_id);
        log_str(&b, "scope", grants_scope_name(op->scope));
        log_u64(&b, "studies", err ? 0 : n);
        if (err)
            log_str(&b, "why", why);
        log_end(&b);
    }
    op->cb(op->arg, err, err ? NULL : (const char *const *)ptrs, err ? 0 : n);
    free(ptrs);
    cJSON_Delete(op->start_key);
    free(op->uids);
    free(op);
    r->live--;
}

static int add_uid(struct scope_op *op, const char *uid)
{
    if (!uid || !uid_ok(uid))
        return 0; /* an item we did not write: ignored */
    if (op->n > 0 && strcmp(op->uids[op->n - 1], uid) == 0)
        return 0; /* a study's instances come together (the index is sorted by study) */
    if (op->n == op->r->cfg.max_scope_studies * 2u)
        return ERR_LIMIT;
    if (op->n == op->cap) {
        size_t cap = op->cap ? op->cap * 2 : 64;
        void *p = realloc(op->uids, cap * sizeof *op->uids);
        if (!p)
            return ERR_NOMEM;
        op->uids = p;
        op->cap = cap;
    }
    memcpy(op->uids[op->n++], uid, strlen(uid) + 1);
    return 0;
}

static int query_page(struct scope_op *op);

static void on_page(void *arg, const struct http_result *res, const cJSON *out)
{
    struct scope_op *op = arg;
    if (res->err < 0 || !out) {
        char why[400];
        snprintf(why, sizeof why, "DynamoDB Query of %s: %s %s %.200s",
                 op->grants ? "the grants" : "the client's instances", http_err_str(res->err),
                 res->error_code, res->message);
        scope_end(op, aws_read_map_err(res->err, res), why);
        return;
    }
    int64_t now = (int64_t)time(NULL);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(out, "Items");
    int rc = cJSON_IsArray(items) ? 0 : ERR_MALFORMED;
    const cJSON *it, *list = rc == 0 ? items : NULL;
    cJSON_ArrayForEach(it, list) {
        if (!cJSON_IsObject(it))
            continue;
        if (!op->grants) {
            rc = add_uid(op, ddb_get_s(it, "study_uid"));
        } else {
            const char *who = ddb_get_s(it, "grantee");
            int64_t exp = 0;
            if (!who || strcmp(who, op->client_id) != 0 || ddb_get_n(it, "expires_at", &exp) < 0 ||
                exp <= now || ddb_get_s(it, "revoked_at"))
                continue;
            rc = add_uid(op, ddb_get_s(it, "grant_study"));
        }
        if (rc < 0)
            break;
    }
    if (rc == 0 && op->n > op->r->cfg.max_scope_studies &&
        sort_unique(op->uids, op->n) > op->r->cfg.max_scope_studies)
        rc = ERR_LIMIT;
    if (rc < 0) {
        scope_end(op, rc, rc == ERR_LIMIT ? "more studies than read.max_scope_studies"
                                          : "DynamoDB answered an unexpected shape");
        return;
    }
    if (rc == 0 && op->n > 0) /* keep the sorted, unique prefix small for the next pages */
        op->n = op->n > 4096 ? sort_unique(op->uids, op->n) : op->n;
    cJSON_Delete(op->start_key);
    op->start_key = NULL;
    const cJSON *lek = cJSON_GetObjectItemCaseSensitive(out, "LastEvaluatedKey");
    if (cJSON_IsObject(lek)) {
        op->start_key = cJSON_Duplicate(lek, true);
        if (!op->start_key) {
            scope_end(op, ERR_NOMEM, "out of memory");
            return;
        }
    } else if (!op->grants && op->scope == GRANT_SCOPE_SHARED) {
        op->grants = true;
        op->pages = 0;
    } else {
        scope_end(op, 0, "");
        return;
    }
    rc = query_page(op);
    if (rc < 0)
        scope_end(op, aws_read_map_err(rc, NULL), "the DynamoDB request could not be made");
}

static int query_page(struct scope_op *op)
{
    if (++op->pages > SCOPE_PAGES_MAX)
        return ERR_LIMIT;
    cJSON *req = cJSON_CreateObject(), *vals = cJSON_CreateObject();
    int rc = req && vals ? 0 : ERR_NOMEM;
    char prefix[160];
    snprintf(prefix, sizeof prefix, "%s#", op->client_id);
    if (rc == 0 && !cJSON_AddStringToObject(req, "TableName", op->r->table))
        rc = ERR_NOMEM;
    if (rc == 0 && !op->grants) {
        if (!cJSON_AddStringToObject(req, "IndexName", "client_index") ||
            !cJSON_AddStringToObject(req, "KeyConditionExpression", "client_id = :c") ||
            !cJSON_AddStringToObject(req, "ProjectionExpression", "study_uid"))
            rc = ERR_NOMEM;
        if (rc == 0)
            rc = ddb_add_s(vals, ":c", op->client_id);
    } else if (rc == 0) {
        if (!cJSON_AddStringToObject(req, "KeyConditionExpression",
                                     "pk = :p AND begins_with(sk, :s)") ||
            !cJSON_AddTrueToObject(req, "ConsistentRead"))
            rc = ERR_NOMEM;
        if (rc == 0)
            rc = ddb_add_s(vals, ":p", "GRANT");
        if (rc == 0)
            rc = ddb_add_s(vals, ":s", prefix);
    }
    if (rc == 0) {
        cJSON_AddItemToObject(req, "ExpressionAttributeValues", vals);
        vals = NULL;
        if (op->start_key) {
            cJSON *sk = cJSON_Duplicate(op->start_key, true);
            if (!sk)
                rc = ERR_NOMEM;
            else
                cJSON_AddItemToObject(req, "ExclusiveStartKey", sk);
        }
    }
    if (rc == 0)
        rc = ddb_call(op->r->ddb, "Query", req, on_page, op);
    cJSON_Delete(vals);
    cJSON_Delete(req);
    return rc;
}

static void on_defer(void *arg)
{
    struct scope_op *op = arg;
    if (op->scope == GRANT_SCOPE_OWN || op->scope == GRANT_SCOPE_SHARED) {
        int rc = query_page(op);
        if (rc < 0)
            scope_end(op, aws_read_map_err(rc, NULL), "the DynamoDB request could not be made");
        return;
    }
    scope_end(op, 0, ""); /* ALL needs no list, NONE has none */
}

int aws_read_scope_studies(void *impl, const char *client_id, enum grant_scope scope,
                           backend_studies_cb cb, void *arg)
{
    struct aws_read *r = impl;
    if (r->closing)
        return ERR_WRONG_STATE;
    struct scope_op *op = calloc(1, sizeof *op);
    if (!op)
        return ERR_NOMEM;
    op->r = r;
    snprintf(op->client_id, sizeof op->client_id, "%s", client_id ? client_id : "");
    op->scope = client_id && client_id[0] ? scope : GRANT_SCOPE_NONE; /* no identity: no own */
    if (scope == GRANT_SCOPE_ALL)
        op->scope = GRANT_SCOPE_ALL;
    op->cb = cb;
    op->arg = arg;
    op->defer.cb = on_defer;
    op->defer.arg = op;
    r->live++;
    http_client_defer(r->http, &op->defer); /* the first request from the loop: cb never runs
                                               inside this call */
    return 0;
}
