#include "state.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "spool/backend_read.h"
#include "state_int.h"

static const char *const g_inst_names[] = {"", "RECEIVED", "STORED", "IMPORTING", "IMPORTED",
                                           "FAILED"};
static const char *const g_job_names[] = {"",          "OPEN",        "STARTING", "SUBMITTED",
                                          "IN_PROGRESS", "COMPLETED", "FAILED"};

const char *state_inst_name(enum state_inst s)
{
    return (unsigned)s < ARRAY_LEN(g_inst_names) ? g_inst_names[s] : "";
}

const char *state_job_name(enum state_job s)
{
    return (unsigned)s < ARRAY_LEN(g_job_names) ? g_job_names[s] : "";
}

enum state_job state_job_parse(const char *s)
{
    for (unsigned i = 1; i < ARRAY_LEN(g_job_names); i++) {
        if (strcmp(s, g_job_names[i]) == 0)
            return (enum state_job)i;
    }
    return 0;
}

void state_now_iso(char out[40])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char buf[96];
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L);
    memcpy(out, buf, 39);
    out[39] = '\0';
}

/* PS3.5 9.1: 1-64 characters of digits and dots. */
bool state_uid_valid(const char *s)
{
    size_t n = strnlen(s, 65);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.'))
            return false;
    }
    return true;
}

bool state_sha_valid(const char *s)
{
    if (strnlen(s, 65) != 64)
        return false;
    for (size_t i = 0; i < 64; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

void state_copy_str(const cJSON *obj, const char *key, char *dst, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    dst[0] = '\0';
    if (cJSON_IsString(v) && v->valuestring && strlen(v->valuestring) < cap)
        memcpy(dst, v->valuestring, strlen(v->valuestring) + 1);
}

cJSON *state_parse_object(const char *json, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* ---- request builders ------------------------------------------------------------------ */

/* An update under construction: SET clauses with #n / :v placeholders for every attribute. */
struct upd {
    cJSON *root, *names, *values;
    char expr[2048];
    size_t len;
    int n;
    bool err;
};

static void upd_init(struct upd *u, const char *table, const char *pk, const char *sk)
{
    memset(u, 0, sizeof *u);
    u->root = cJSON_CreateObject();
    if (!u->root) {
        u->err = true;
        return;
    }
    cJSON_AddStringToObject(u->root, "TableName", table);
    cJSON *key = cJSON_AddObjectToObject(u->root, "Key");
    cJSON *p = cJSON_AddObjectToObject(key, "pk");
    cJSON_AddStringToObject(p, "S", pk);
    cJSON *s = cJSON_AddObjectToObject(key, "sk");
    cJSON_AddStringToObject(s, "S", sk);
    u->names = cJSON_AddObjectToObject(u->root, "ExpressionAttributeNames");
    u->values = cJSON_AddObjectToObject(u->root, "ExpressionAttributeValues");
    if (!u->names || !u->values)
        u->err = true;
}

static void upd_raw(struct upd *u, const char *a)
{
    size_t n = strlen(a);
    if (n >= sizeof u->expr - u->len) {
        u->err = true;
        return;
    }
    memcpy(u->expr + u->len, a, n + 1);
    u->len += n;
}

/* Bind a name and return its placeholder in ph ("#aN"). */
static void upd_name(struct upd *u, const char *attr, char ph[16])
{
    snprintf(ph, 16, "#a%d", u->n);
    if (!cJSON_AddStringToObject(u->names, ph, attr))
        u->err = true;
}

/* Bind a value of DynamoDB type (S, N, BOOL) and return its placeholder (":vN"). */
static void upd_value(struct upd *u, const char *type, const char *val, char ph[16])
{
    snprintf(ph, 16, ":v%d", u->n++);
    cJSON *v = cJSON_AddObjectToObject(u->values, ph);
    if (!v) {
        u->err = true;
        return;
    }
    cJSON *x = strcmp(type, "BOOL") == 0 ? cJSON_AddBoolToObject(v, "BOOL", strcmp(val, "1") == 0)
                                         : cJSON_AddStringToObject(v, type, val);
    if (!x)
        u->err = true;
}

/* "SET" list item: #a = :v, or #a = if_not_exists(#a, :v) when keep. Returns the placeholder
 * number N of #aN / :vN, or -1 when val is empty and left out. */
static int upd_set(struct upd *u, const char *attr, const char *type, const char *val, bool keep)
{
    if (!val || (strcmp(type, "S") == 0 && !val[0]))
        return -1; /* an empty string says nothing: leave the attribute out */
    int idx = u->n;
    char n[16], v[16];
    upd_name(u, attr, n);
    upd_value(u, type, val, v);
    char buf[96];
    if (keep)
        snprintf(buf, sizeof buf, "%s%s = if_not_exists(%s, %s)", u->len ? ", " : "SET ", n, n,
                 v);
    else
        snprintf(buf, sizeof buf, "%s%s = %s", u->len ? ", " : "SET ", n, v);
    upd_raw(u, buf);
    return idx;
}

static int upd_set_u64(struct upd *u, const char *attr, uint64_t v, bool keep)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return upd_set(u, attr, "N", buf, keep);
}

/* " REMOVE error_type, error_message" (after the SET list): a FAILED item's reason goes. */
static void upd_remove_errors(struct upd *u)
{
    char et[16], em[16], buf[64];
    upd_name(u, "error_type", et);
    u->n++;
    upd_name(u, "error_message", em);
    u->n++;
    snprintf(buf, sizeof buf, " REMOVE %s, %s", et, em);
    upd_raw(u, buf);
}

/* Finish with a condition (placeholders already bound) and hand over the request tree. */
static cJSON *upd_finish(struct upd *u, const char *cond)
{
    cJSON *out = NULL;
    if (!u->err && u->root && cJSON_AddStringToObject(u->root, "UpdateExpression", u->expr) &&
        (!cond || !cond[0] || cJSON_AddStringToObject(u->root, "ConditionExpression", cond))) {
        out = u->root;
        u->root = NULL;
    }
    cJSON_Delete(u->root);
    u->root = NULL;
    return out;
}

static int inst_keys(const char *sop, const char *sha, char *pk, size_t pcap, char *sk,
                     size_t scap)
{
    int a = snprintf(pk, pcap, "INSTANCE#%s", sop);
    int b = snprintf(sk, scap, "SHA256#%s", sha);
    return a < 0 || (size_t)a >= pcap || b < 0 || (size_t)b >= scap ? ERR_LIMIT : 0;
}

static void put_s(cJSON *item, const char *name, const char *v, bool *err)
{
    if (!v || !v[0])
        return; /* an empty string says nothing: leave the attribute out */
    cJSON *a = cJSON_AddObjectToObject(item, name);
    if (!a || !cJSON_AddStringToObject(a, "S", v))
        *err = true;
}

static void put_n(cJSON *item, const char *name, uint64_t v, bool *err)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    cJSON *a = cJSON_AddObjectToObject(item, name);
    if (!a || !cJSON_AddStringToObject(a, "N", buf))
        *err = true;
}

/* A PutItem, not an UpdateItem: the whole item is known here, and a put is several times
 * cheaper to evaluate than an update expression of twenty clauses (measured against moto). */
cJSON *state_req_received(const char *table, const struct state_obj *o, enum state_claim how,
                          const char *now)
{
    char pk[96], sk[96];
    if (!o->batch[0] || inst_keys(o->sop, o->sha, pk, sizeof pk, sk, sizeof sk) < 0)
        return NULL; /* an instance always belongs to a batch */
    bool err = false;
    cJSON *r = cJSON_CreateObject();
    cJSON *item = r ? cJSON_AddObjectToObject(r, "Item") : NULL;
    if (!item || !cJSON_AddStringToObject(r, "TableName", table)) {
        cJSON_Delete(r);
        return NULL;
    }
    put_s(item, "pk", pk, &err);
    put_s(item, "sk", sk, &err);
    put_s(item, "state", state_inst_name(STATE_RECEIVED), &err);
    put_n(item, "state_rank", STATE_RECEIVED, &err);
    put_s(item, "study_uid", o->study, &err);
    put_s(item, "series_uid", o->series, &err);
    put_s(item, "sop_uid", o->sop, &err);
    put_s(item, "sop_class_uid", o->sop_class, &err);
    put_s(item, "transfer_syntax", o->ts, &err);
    put_s(item, "calling_ae", o->calling, &err);
    put_s(item, "called_ae", o->called, &err);
    put_s(item, "peer", o->peer, &err);
    put_s(item, "cert_cn", o->cert_cn, &err);
    put_s(item, "cert_fp", o->cert_fp, &err);
    /* the read side's owner (scope "own"): the edge's client id, else "ae:" + calling AE */
    char owner[BACKEND_OWNER_MAX];
    backend_read_owner(o->client_id, o->calling, owner, sizeof owner);
    put_s(item, "client_id", owner, &err);
    put_n(item, "bytes", o->bytes, &err);
    put_s(item, "sha256", o->sha, &err);
    put_s(item, "s3_key", o->s3_key, &err);
    put_s(item, "batch_id", o->batch, &err);
    put_s(item, "received_at", o->received_at[0] ? o->received_at : now, &err);
    put_s(item, "updated_at", now, &err);
    /* new; or this batch's own item still at RECEIVED (a replay writes the same item), or one
     * a torn copy gave up; a re-drive may also take a FAILED item over. The first claim asks
     * only for a new item: the cheapest condition to evaluate (moto: about 2 ms less per
     * write), and whatever it lets in the full one would too */
    char cond[160] = "attribute_not_exists(pk)";
    if (how != STATE_CLAIM_NEW) {
        cJSON *names = cJSON_AddObjectToObject(r, "ExpressionAttributeNames");
        cJSON *values = cJSON_AddObjectToObject(r, "ExpressionAttributeValues");
        if (!names || !values || !cJSON_AddStringToObject(names, "#b", "batch_id") ||
            !cJSON_AddStringToObject(names, "#r", "state_rank"))
            err = true;
        if (values) {
            put_s(values, ":b", o->batch, &err);
            put_s(values, ":torn", STATE_TORN_BATCH, &err);
            put_n(values, ":one", STATE_RECEIVED, &err);
        }
        snprintf(cond, sizeof cond,
                 "attribute_not_exists(pk) OR ((#b = :b OR #b = :torn) AND #r = :one)");
        if (how == STATE_CLAIM_REDRIVE) {
            if (names && !cJSON_AddStringToObject(names, "#s", "state"))
                err = true;
            if (values)
                put_s(values, ":failed", state_inst_name(STATE_FAILED), &err);
            size_t l = strlen(cond);
            snprintf(cond + l, sizeof cond - l, " OR #s = :failed");
        }
    }
    if (!cJSON_AddStringToObject(r, "ConditionExpression", cond))
        err = true;
    if (err) {
        cJSON_Delete(r);
        return NULL;
    }
    return r;
}

cJSON *state_req_torn(const char *table, const struct state_obj *o, const char *now)
{
    char pk[96], sk[96];
    if (!o->batch[0] || inst_keys(o->sop, o->sha, pk, sizeof pk, sk, sizeof sk) < 0)
        return NULL;
    struct upd u;
    upd_init(&u, table, pk, sk);
    int b_v = upd_set(&u, "batch_id", "S", STATE_TORN_BATCH, false);
    upd_set(&u, "updated_at", "S", now, false);
    char ov[16], rv[16], rn[16], cond[128];
    upd_value(&u, "S", o->batch, ov);
    upd_name(&u, "state_rank", rn);
    u.n++;
    upd_value(&u, "N", "1", rv);
    snprintf(cond, sizeof cond, "#a%d = %s AND %s = %s", b_v, ov, rn, rv);
    return upd_finish(&u, cond);
}

cJSON *state_req_advance(const char *table, const char *sop, const char *sha, enum state_inst st,
                        const struct state_extra *x, const char *now)
{
    char pk[96], sk[96];
    if (inst_keys(sop, sha, pk, sizeof pk, sk, sizeof sk) < 0)
        return NULL;
    struct upd u;
    upd_init(&u, table, pk, sk);
    upd_set(&u, "state", "S", state_inst_name(st), false);
    char rank[8];
    snprintf(rank, sizeof rank, "%d", (int)st);
    int rank_v = upd_set(&u, "state_rank", "N", rank, false);
    upd_set(&u, "updated_at", "S", now, false);
    if (x) {
        upd_set(&u, "job_id", "S", x->job_id, false);
        upd_set(&u, "image_set_id", "S", x->image_set_id, false);
        if (x->is_primary >= 0)
            upd_set(&u, "is_primary", "BOOL", x->is_primary ? "1" : "0", false);
        upd_set(&u, "error_type", "S", x->error_type, false);
        upd_set(&u, "error_message", "S", x->error_message, false);
    }
    char cond[128];
    snprintf(cond, sizeof cond, "attribute_exists(pk) AND #a%d < :v%d", rank_v, rank_v);
    if (st == STATE_FAILED) {
        /* FAILED outranks IMPORTED, but an imported object never fails afterwards (a replayed
         * mark whose job outputs are gone would say "not in the manifest") */
        char iv[16], r[8];
        snprintf(r, sizeof r, "%d", (int)STATE_IMPORTED);
        upd_value(&u, "N", r, iv);
        snprintf(cond, sizeof cond, "attribute_exists(pk) AND #a%d < %s", rank_v, iv);
    }
    return upd_finish(&u, cond);
}

cJSON *state_req_reattempt(const char *table, const char *sop, const char *sha, bool ok,
                           const struct state_extra *x, const char *now)
{
    char pk[96], sk[96];
    if (inst_keys(sop, sha, pk, sizeof pk, sk, sizeof sk) < 0)
        return NULL;
    enum state_inst st = ok ? STATE_IMPORTED : STATE_FAILED;
    struct upd u;
    upd_init(&u, table, pk, sk);
    int st_v = upd_set(&u, "state", "S", state_inst_name(st), false);
    char rank[8];
    snprintf(rank, sizeof rank, "%d", (int)st);
    upd_set(&u, "state_rank", "N", rank, false);
    upd_set(&u, "updated_at", "S", now, false);
    if (x) {
        upd_set(&u, "image_set_id", "S", x->image_set_id, false);
        if (x->is_primary >= 0)
            upd_set(&u, "is_primary", "BOOL", x->is_primary ? "1" : "0", false);
        if (!ok) {
            upd_set(&u, "error_type", "S", x->error_type, false);
            upd_set(&u, "error_message", "S", x->error_message, false);
        }
    }
    if (ok)
        upd_remove_errors(&u);
    /* only a FAILED item: the first attempt to finish wins, a replay changes nothing */
    char fv[16], cond[64];
    upd_value(&u, "S", state_inst_name(STATE_FAILED), fv);
    snprintf(cond, sizeof cond, "#a%d = %s", st_v, fv);
    return upd_finish(&u, cond);
}

cJSON *state_req_redrive(const char *table, const char *sop, const char *sha,
                         const char *redrive_batch, const char *now)
{
    char pk[96], sk[96];
    if (inst_keys(sop, sha, pk, sizeof pk, sk, sizeof sk) < 0)
        return NULL;
    struct upd u;
    upd_init(&u, table, pk, sk);
    int st_v = upd_set(&u, "state", "S", state_inst_name(STATE_STORED), false);
    upd_set(&u, "state_rank", "N", "2", false);
    upd_set(&u, "updated_at", "S", now, false);
    int rb_v = upd_set(&u, "redrive_batch", "S", redrive_batch, false);
    char fv[16];
    upd_remove_errors(&u);
    upd_value(&u, "S", state_inst_name(STATE_FAILED), fv);
    /* FAILED; or this same re-drive's own update replayed after a crash (an item another
     * re-drive took, or one that went on, is left alone: no second job for one object) */
    char sv[16], cond[128];
    upd_value(&u, "S", state_inst_name(STATE_STORED), sv);
    if (rb_v < 0)
        u.err = true; /* a re-drive always has its batch */
    snprintf(cond, sizeof cond, "#a%d = %s OR (#a%d = %s AND #a%d = :v%d)", st_v, fv, st_v, sv,
             rb_v, rb_v);
    return upd_finish(&u, cond);
}

cJSON *state_req_get(const char *table, const char *sop, const char *sha)
{
    char pk[96], sk[96];
    if (inst_keys(sop, sha, pk, sizeof pk, sk, sizeof sk) < 0)
        return NULL;
    cJSON *r = cJSON_CreateObject();
    if (!r)
        return NULL;
    cJSON_AddStringToObject(r, "TableName", table);
    cJSON *key = cJSON_AddObjectToObject(r, "Key");
    cJSON *p = cJSON_AddObjectToObject(key, "pk");
    cJSON_AddStringToObject(p, "S", pk);
    cJSON *s = cJSON_AddObjectToObject(key, "sk");
    cJSON_AddStringToObject(s, "S", sk);
    if (!cJSON_AddBoolToObject(r, "ConsistentRead", 1)) {
        cJSON_Delete(r);
        return NULL;
    }
    return r;
}

cJSON *state_req_job(const char *table, const struct state_job_rec *j, enum state_job st,
                    const char *now)
{
    char pk[96];
    int n = snprintf(pk, sizeof pk, "JOB#%s", j->batch);
    if (n < 0 || (size_t)n >= sizeof pk)
        return NULL;
    struct upd u;
    upd_init(&u, table, pk, "JOB");
    upd_set(&u, "state", "S", state_job_name(st), false);
    char rank[8];
    snprintf(rank, sizeof rank, "%d", (int)st);
    int rank_v = upd_set(&u, "state_rank", "N", rank, false);
    upd_set(&u, "updated_at", "S", now, false);
    upd_set(&u, "created_at", "S", now, true);
    upd_set(&u, "job_id", "S", j->job_id, false);
    upd_set(&u, "datastore_id", "S", j->datastore_id, false);
    upd_set(&u, "input_s3_uri", "S", j->input_uri, false);
    upd_set(&u, "output_s3_uri", "S", j->output_uri, false);
    upd_set_u64(&u, "objects", j->objects, false);
    upd_set_u64(&u, "bytes", j->bytes, false);
    if (st == STATE_JOB_COMPLETED || st == STATE_JOB_FAILED) {
        upd_set_u64(&u, "imported", j->imported, false);
        upd_set_u64(&u, "failed", j->failed, false);
    }
    /* COMPLETED and FAILED share the last rank: a job never leaves either */
    char cond[160];
    snprintf(cond, sizeof cond, "attribute_not_exists(pk) OR #a%d <= :v%d", rank_v, rank_v);
    if (st == STATE_JOB_FAILED || st == STATE_JOB_COMPLETED)
        snprintf(cond, sizeof cond, "attribute_not_exists(pk) OR #a%d < :v%d", rank_v, rank_v);
    return upd_finish(&u, cond);
}
