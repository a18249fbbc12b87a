#include "spool/commit_rec.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/uid.h"

void commit_txn_cleanup(struct commit_txn *t)
{
    if (!t)
        return;
    FREE_NULL(t->refs);
    t->n_refs = 0;
}

int commit_txn_copy(struct commit_txn *dst, const struct commit_txn *src)
{
    *dst = *src;
    dst->refs = NULL;
    if (src->n_refs) {
        dst->refs = malloc(src->n_refs * sizeof *dst->refs);
        if (!dst->refs) {
            dst->n_refs = 0;
            return ERR_NOMEM;
        }
        memcpy(dst->refs, src->refs, src->n_refs * sizeof *dst->refs);
    }
    return 0;
}

static const char *const g_states[] = {"", "open", "decided", "reported"};

const char *commit_state_name(enum commit_state s)
{
    return (unsigned)s < ARRAY_LEN(g_states) ? g_states[s] : "";
}

const char *commit_point_name(enum backend_copy_state p)
{
    switch (p) {
    case COPY_SPOOL:
        return "spool";
    case COPY_STORED:
        return "stored";
    case COPY_IMPORTED:
        return "healthimaging";
    default:
        return "";
    }
}

static bool add_num(cJSON *o, const char *k, double v)
{
    return cJSON_AddNumberToObject(o, k, v) != NULL;
}

/* The index of cls in classes (added when new), or -1 when out of memory. */
static int class_index(cJSON *classes, const char *cls)
{
    int i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, classes)
    {
        if (cJSON_IsString(c) && strcmp(c->valuestring, cls) == 0)
            return i;
        i++;
    }
    cJSON *s = cJSON_CreateString(cls);
    if (!s || !cJSON_AddItemToArray(classes, s)) {
        cJSON_Delete(s);
        return -1;
    }
    return i;
}

static bool encode_refs(cJSON *o, const struct commit_txn *t)
{
    cJSON *classes = cJSON_AddArrayToObject(o, "classes");
    cJSON *refs = cJSON_AddArrayToObject(o, "refs");
    if (!classes || !refs)
        return false;
    for (size_t i = 0; i < t->n_refs; i++) {
        const struct commit_ref *r = &t->refs[i];
        int ci = class_index(classes, r->sop_class);
        cJSON *row = cJSON_CreateArray();
        if (ci < 0 || !row || !cJSON_AddItemToArray(refs, row)) {
            cJSON_Delete(row);
            return false;
        }
        cJSON *a = cJSON_CreateNumber(ci), *b = cJSON_CreateString(r->sop_instance),
              *c = cJSON_CreateNumber(r->result);
        bool ok = a && b && c;
        if (a && !cJSON_AddItemToArray(row, a))
            ok = false, cJSON_Delete(a), a = NULL;
        if (b && !cJSON_AddItemToArray(row, b))
            ok = false, cJSON_Delete(b), b = NULL;
        if (c && !cJSON_AddItemToArray(row, c))
            ok = false, cJSON_Delete(c);
        if (!ok)
            return false;
    }
    return true;
}

int commit_rec_encode(const struct commit_txn *t, bool refs, char **out, size_t *len)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && add_num(o, "v", 1) && cJSON_AddStringToObject(o, "uid", t->uid) &&
              cJSON_AddStringToObject(o, "calling_ae", t->calling) &&
              cJSON_AddStringToObject(o, "called_ae", t->called) &&
              add_num(o, "created_ms", (double)t->created_ms) &&
              add_num(o, "deadline_ms", (double)t->deadline_ms) &&
              cJSON_AddStringToObject(o, "point", commit_point_name(t->point)) &&
              cJSON_AddStringToObject(o, "state", commit_state_name(t->state)) &&
              add_num(o, "event", t->event) && add_num(o, "n_refs", (double)t->n_refs);
    if (ok && refs)
        ok = encode_refs(o, t);
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s)
        return ERR_NOMEM;
    *out = s;
    *len = strlen(s);
    return 0;
}

static const char *get_str(const cJSON *o, const char *k, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(v) || !v->valuestring || strnlen(v->valuestring, cap) >= cap)
        return NULL;
    return v->valuestring;
}

static bool get_i64(const cJSON *o, const char *k, int64_t lo, int64_t hi, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return false;
    *out = (int64_t)v->valuedouble;
    return (double)*out == v->valuedouble;
}

static bool ae_ok(const char *s)
{
    size_t n = strnlen(s, 17);
    if (n == 0 || n > 16)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '\\')
            return false;
    }
    return true;
}

static int decode_refs(const cJSON *o, struct commit_txn *t, int64_t declared)
{
    const cJSON *classes = cJSON_GetObjectItemCaseSensitive(o, "classes");
    const cJSON *refs = cJSON_GetObjectItemCaseSensitive(o, "refs");
    if (!refs)
        return declared == 0 || t->state == COMMIT_REPORTED ? 0 : ERR_MALFORMED;
    if (!cJSON_IsArray(classes) || !cJSON_IsArray(refs))
        return ERR_MALFORMED;
    int n = cJSON_GetArraySize(refs), nc = cJSON_GetArraySize(classes);
    if (n < 0 || (unsigned)n > COMMIT_REFS_HARD_MAX)
        return ERR_LIMIT;
    if (n != declared)
        return ERR_MALFORMED;
    if (n == 0)
        return 0;
    t->refs = calloc((size_t)n, sizeof *t->refs);
    if (!t->refs)
        return ERR_NOMEM;
    const cJSON *row;
    size_t i = 0;
    cJSON_ArrayForEach(row, refs)
    {
        int64_t ci, res;
        const cJSON *inst = cJSON_GetArrayItem(row, 1);
        const cJSON *a = cJSON_GetArrayItem(row, 0), *c = cJSON_GetArrayItem(row, 2);
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != 3 || !cJSON_IsNumber(a) ||
            !cJSON_IsString(inst) || !cJSON_IsNumber(c))
            return ERR_MALFORMED;
        ci = (int64_t)a->valuedouble;
        res = (int64_t)c->valuedouble;
        if (ci < 0 || ci >= nc || res < 0 || res > 0xFFFF || !uid_valid(inst->valuestring))
            return ERR_MALFORMED;
        const cJSON *cls = cJSON_GetArrayItem(classes, (int)ci);
        if (!cJSON_IsString(cls) || !uid_valid(cls->valuestring))
            return ERR_MALFORMED;
        struct commit_ref *r = &t->refs[i++];
        snprintf(r->sop_class, sizeof r->sop_class, "%s", cls->valuestring);
        snprintf(r->sop_instance, sizeof r->sop_instance, "%s", inst->valuestring);
        r->result = (uint16_t)res;
    }
    t->n_refs = i;
    return 0;
}

static int decode(const cJSON *o, struct commit_txn *t)
{
    const char *uid = get_str(o, "uid", 65), *calling = get_str(o, "calling_ae", 17),
               *called = get_str(o, "called_ae", 17), *point = get_str(o, "point", 16),
               *state = get_str(o, "state", 16);
    int64_t v, created, deadline, event, n;
    if (!cJSON_IsObject(o) || !get_i64(o, "v", 1, 1, &v) || !uid || !uid_valid(uid) ||
        !calling || !ae_ok(calling) || !called || !ae_ok(called) || !point || !state ||
        !get_i64(o, "created_ms", 0, INT64_C(1) << 52, &created) ||
        !get_i64(o, "deadline_ms", 0, INT64_C(1) << 52, &deadline) ||
        !get_i64(o, "event", 0, 2, &event) || !get_i64(o, "n_refs", 0, COMMIT_REFS_HARD_MAX, &n))
        return ERR_MALFORMED;
    snprintf(t->uid, sizeof t->uid, "%s", uid);
    snprintf(t->calling, sizeof t->calling, "%s", calling);
    snprintf(t->called, sizeof t->called, "%s", called);
    t->created_ms = created;
    t->deadline_ms = deadline;
    t->event = (uint16_t)event;
    t->point = COPY_UNKNOWN;
    for (int p = COPY_SPOOL; p <= COPY_IMPORTED; p++) {
        if (strcmp(point, commit_point_name((enum backend_copy_state)p)) == 0)
            t->point = (enum backend_copy_state)p;
    }
    t->state = 0;
    for (int s = COMMIT_OPEN; s <= COMMIT_REPORTED; s++) {
        if (strcmp(state, g_states[s]) == 0)
            t->state = (enum commit_state)s;
    }
    if (t->point == COPY_UNKNOWN || t->state == 0)
        return ERR_MALFORMED;
    return decode_refs(o, t, n);
}

int commit_rec_decode(const char *json, size_t len, struct commit_txn *t)
{
    memset(t, 0, sizeof *t);
    cJSON *o = cJSON_ParseWithLength(json, len);
    if (!o)
        return ERR_MALFORMED;
    int rc = decode(o, t);
    cJSON_Delete(o);
    if (rc < 0)
        commit_txn_cleanup(t);
    return rc;
}

int64_t commit_iso_to_ms(const char *iso)
{
    /* fixed shape: YYYY-MM-DDTHH:MM:SS.mmmZ */
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (!iso || strnlen(iso, sizeof shape) != sizeof shape - 1)
        return 0;
    int f[7] = {0};
    size_t k = 0;
    int cur = 0;
    for (size_t i = 0; i < sizeof shape - 1; i++) {
        if (shape[i] == 'd') {
            if (iso[i] < '0' || iso[i] > '9')
                return 0;
            cur = cur * 10 + (iso[i] - '0');
            if (shape[i + 1] != 'd') {
                f[k++] = cur;
                cur = 0;
            }
        } else if (iso[i] != shape[i]) {
            return 0;
        }
    }
    struct tm tm = {.tm_year = f[0] - 1900, .tm_mon = f[1] - 1, .tm_mday = f[2],
                    .tm_hour = f[3], .tm_min = f[4], .tm_sec = f[5]};
    time_t s = timegm(&tm);
    if (s == (time_t)-1)
        return 0;
    return (int64_t)s * 1000 + f[6];
}
