#include "state.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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
static bool uid_valid(const char *s)
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

static bool hex64_valid(const char *s)
{
    if (strnlen(s, 65) != 64)
        return false;
    for (size_t i = 0; i < 64; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

static void copy_str(const cJSON *obj, const char *key, char *dst, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    dst[0] = '\0';
    if (cJSON_IsString(v) && v->valuestring && strlen(v->valuestring) < cap)
        memcpy(dst, v->valuestring, strlen(v->valuestring) + 1);
}

int state_obj_from_sidecar(const char *json, size_t len, struct state_obj *o)
{
    memset(o, 0, sizeof *o);
    cJSON *j = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ERR_MALFORMED;
    }
    copy_str(j, "sop_instance_uid", o->sop, sizeof o->sop);
    copy_str(j, "sha256", o->sha, sizeof o->sha);
    copy_str(j, "study_instance_uid", o->study, sizeof o->study);
    copy_str(j, "series_instance_uid", o->series, sizeof o->series);
    copy_str(j, "sop_class_uid", o->sop_class, sizeof o->sop_class);
    copy_str(j, "transfer_syntax_uid", o->ts, sizeof o->ts);
    copy_str(j, "calling_ae", o->calling, sizeof o->calling);
    copy_str(j, "called_ae", o->called, sizeof o->called);
    copy_str(j, "peer", o->peer, sizeof o->peer);
    copy_str(j, "received_end", o->received_at, sizeof o->received_at);
    const cJSON *cert = cJSON_GetObjectItemCaseSensitive(j, "cert");
    if (cJSON_IsObject(cert)) {
        copy_str(cert, "subject_cn", o->cert_cn, sizeof o->cert_cn);
        copy_str(cert, "fingerprint_sha256", o->cert_fp, sizeof o->cert_fp);
        copy_str(cert, "client_id", o->client_id, sizeof o->client_id);
    }
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(j, "bytes");
    bool ok = cJSON_IsNumber(bytes) && bytes->valuedouble >= 0 &&
              bytes->valuedouble < 9.0e15 &&
              bytes->valuedouble == (double)(uint64_t)bytes->valuedouble;
    if (ok)
        o->bytes = (uint64_t)bytes->valuedouble;
    cJSON_Delete(j);
    if (!ok || !uid_valid(o->sop) || !uid_valid(o->study) || !uid_valid(o->series) ||
        !hex64_valid(o->sha))
        return ERR_MALFORMED;
    return 0;
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
cJSON *state_req_received(const char *table, const struct state_obj *o, bool redrive,
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
    put_s(item, "client_id", o->client_id, &err);
    put_n(item, "bytes", o->bytes, &err);
    put_s(item, "sha256", o->sha, &err);
    put_s(item, "s3_key", o->s3_key, &err);
    put_s(item, "batch_id", o->batch, &err);
    put_s(item, "received_at", o->received_at[0] ? o->received_at : now, &err);
    put_s(item, "updated_at", now, &err);
    /* new; or this batch's own item still at RECEIVED (a replay writes the same item); a
     * re-drive may also take a FAILED item over */
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
    char cond[160] = "attribute_not_exists(pk) OR ((#b = :b OR #b = :torn) AND #r = :one)";
    if (redrive) {
        if (names && !cJSON_AddStringToObject(names, "#s", "state"))
            err = true;
        if (values)
            put_s(values, ":failed", state_inst_name(STATE_FAILED), &err);
        size_t l = strlen(cond);
        snprintf(cond + l, sizeof cond - l, " OR #s = :failed");
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
    char et[16], em[16], fv[16], buf[128];
    upd_name(&u, "error_type", et);
    u.n++;
    upd_name(&u, "error_message", em);
    u.n++;
    snprintf(buf, sizeof buf, " REMOVE %s, %s", et, em);
    upd_raw(&u, buf);
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

/* ---- answer parsers ---------------------------------------------------------------------- */

static const char *ddb_s(const cJSON *item, const char *attr)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(item, attr);
    const cJSON *s = cJSON_IsObject(a) ? cJSON_GetObjectItemCaseSensitive(a, "S") : NULL;
    return cJSON_IsString(s) && s->valuestring ? s->valuestring : "";
}

int state_parse_get(const char *body, size_t len, struct state_got *out)
{
    memset(out, 0, sizeof *out);
    cJSON *j = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ERR_MALFORMED;
    }
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(j, "Item");
    if (cJSON_IsObject(item)) {
        out->found = true;
        const char *st = ddb_s(item, "state");
        for (int s = STATE_RECEIVED; s <= STATE_FAILED; s++) {
            if (strcmp(st, state_inst_name((enum state_inst)s)) == 0)
                out->state = (enum state_inst)s;
        }
        snprintf(out->batch, sizeof out->batch, "%s", ddb_s(item, "batch_id"));
        snprintf(out->s3_key, sizeof out->s3_key, "%s", ddb_s(item, "s3_key"));
    }
    cJSON_Delete(j);
    return 0;
}

static bool job_id_valid(const char *s)
{
    size_t n = strnlen(s, 33);
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')))
            return false;
    }
    return true;
}

int state_parse_start_job(const char *body, size_t len, char *job_id, size_t cap)
{
    cJSON *j = cJSON_ParseWithLength(body, len);
    const cJSON *id = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "jobId") : NULL;
    int rc = ERR_MALFORMED;
    if (cJSON_IsString(id) && id->valuestring && job_id_valid(id->valuestring) &&
        strlen(id->valuestring) < cap) {
        memcpy(job_id, id->valuestring, strlen(id->valuestring) + 1);
        rc = 0;
    }
    cJSON_Delete(j);
    return rc;
}

int state_parse_get_job(const char *body, size_t len, struct state_job_info *out)
{
    memset(out, 0, sizeof *out);
    cJSON *j = cJSON_ParseWithLength(body, len);
    const cJSON *p = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "jobProperties")
                                       : NULL;
    const cJSON *st = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, "jobStatus") : NULL;
    int rc = ERR_MALFORMED;
    if (cJSON_IsString(st) && st->valuestring) {
        out->status = state_job_parse(st->valuestring);
        if (out->status >= STATE_JOB_SUBMITTED)
            rc = 0;
        copy_str(p, "message", out->message, sizeof out->message);
        copy_str(p, "outputS3Uri", out->output_uri, sizeof out->output_uri);
    }
    cJSON_Delete(j);
    return rc;
}

/* The SOP Instance UID a file is named after: the last path element without ".dcm". */
static int sop_of_path(const char *path, char out[65])
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t n = strlen(base);
    if (n < 5 || strcmp(base + n - 4, ".dcm") != 0 || n - 4 > 64)
        return ERR_MALFORMED;
    memcpy(out, base, n - 4);
    out[n - 4] = '\0';
    return uid_valid(out) ? 0 : ERR_MALFORMED;
}

int state_parse_result_line(const char *line, size_t len, bool success,
                            struct state_result *out)
{
    memset(out, 0, sizeof *out);
    out->is_primary = -1;
    out->ok = success;
    cJSON *j = cJSON_ParseWithLength(line, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ERR_MALFORMED;
    }
    char input[1024];
    copy_str(j, "inputFile", input, sizeof input);
    int rc = sop_of_path(input, out->sop);
    const cJSON *resp = cJSON_GetObjectItemCaseSensitive(j, "importResponse");
    const cJSON *src = cJSON_IsObject(resp) ? resp : j;
    copy_str(src, "imageSetId", out->image_set_id, sizeof out->image_set_id);
    const cJSON *prim = cJSON_GetObjectItemCaseSensitive(src, "isPrimary");
    if (cJSON_IsBool(prim))
        out->is_primary = cJSON_IsTrue(prim) ? 1 : 0;
    const cJSON *exc = cJSON_GetObjectItemCaseSensitive(j, "exception");
    const cJSON *esrc = cJSON_IsObject(exc) ? exc : j;
    copy_str(esrc, "exceptionType", out->error_type, sizeof out->error_type);
    if (!out->error_type[0])
        copy_str(esrc, "type", out->error_type, sizeof out->error_type);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(esrc, "message");
    if (cJSON_IsString(msg) && msg->valuestring)
        snprintf(out->error_message, sizeof out->error_message, "%s", msg->valuestring);
    if (!success && !out->error_type[0])
        snprintf(out->error_type, sizeof out->error_type, "ImportFailure");
    cJSON_Delete(j);
    return rc;
}

/* DICOM JSON (PS3.18 F.2): the first string Value of attribute tag in item. */
static const char *dj_str(const cJSON *item, const char *tag)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(item, tag);
    const cJSON *v = cJSON_IsObject(a) ? cJSON_GetObjectItemCaseSensitive(a, "Value") : NULL;
    const cJSON *s = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, 0) : NULL;
    return cJSON_IsString(s) ? s->valuestring : NULL;
}

static const cJSON *dj_seq(const cJSON *root, const char *tag)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, tag);
    const cJSON *v = cJSON_IsObject(a) ? cJSON_GetObjectItemCaseSensitive(a, "Value") : NULL;
    return cJSON_IsArray(v) ? v : NULL;
}

int state_parse_stow(const char *body, size_t len, const char *sop, uint16_t *failure)
{
    cJSON *j = cJSON_ParseWithLength(body, len);
    if (cJSON_IsArray(j) && cJSON_GetArraySize(j) == 1) { /* some servers wrap it */
        cJSON *inner = cJSON_DetachItemFromArray(j, 0);
        cJSON_Delete(j);
        j = inner;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ERR_MALFORMED;
    }
    int rc = ERR_NOTFOUND;
    const cJSON *it;
    const cJSON *ref = dj_seq(j, "00081199"); /* ReferencedSOPSequence */
    cJSON_ArrayForEach(it, ref)
    {
        const char *s = dj_str(it, "00081155");
        if (s && strcmp(s, sop) == 0)
            rc = 1;
    }
    const cJSON *failed = dj_seq(j, "00081198"); /* FailedSOPSequence */
    cJSON_ArrayForEach(it, failed)
    {
        const char *s = dj_str(it, "00081155");
        if (!s || strcmp(s, sop) != 0)
            continue;
        const cJSON *fr = cJSON_GetObjectItemCaseSensitive(it, "00081197"); /* FailureReason */
        const cJSON *v = cJSON_IsObject(fr) ? cJSON_GetObjectItemCaseSensitive(fr, "Value") : NULL;
        const cJSON *n = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, 0) : NULL;
        *failure = cJSON_IsNumber(n) && n->valuedouble >= 0 && n->valuedouble <= 65535
                       ? (uint16_t)n->valuedouble
                       : 0x0110;
        rc = 0;
    }
    cJSON_Delete(j);
    return rc;
}
