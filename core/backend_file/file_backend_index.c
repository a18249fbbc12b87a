/* The file backend's read index: what the store holds, as studies, series and instances with the
 * attributes C-FIND returns at each level (file_backend_extract.c) and who sent each study. It
 * lives in memory, is persisted as JSON lines in <dir>/qr_index.jsonl (one record per indexed
 * instance, appended as objects are stored; a later record of the same SOP Instance UID wins),
 * and is reconciled at start with the job journal, the store's own record of what it holds:
 * whatever the journal knows and the index file lacks (a crash between the two, a lost or
 * deleted index file) is read again from the stored files. Patient data stays in the store
 * directory: nothing of it is logged. */
#include "file_backend_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/log.h"

#define INDEX_FILE "qr_index.jsonl"

static const char *jstr(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static uint64_t jnum(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(v) && v->valuedouble >= 0 ? (uint64_t)v->valuedouble : 0;
}

static void copy_uid(char out[65], const char *s)
{
    snprintf(out, 65, "%s", s ? s : "");
}

/* ---- the tree ----------------------------------------------------------------------------- */

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, nc * elem);
    if (!p)
        return ERR_NOMEM;
    *arr = p;
    *cap = nc;
    return 0;
}

static int dup_blob(const struct wbuf *w, uint8_t **out, uint32_t *len)
{
    *out = NULL;
    *len = 0;
    if (!w || w->len == 0)
        return 0;
    *out = malloc(w->len);
    if (!*out)
        return ERR_NOMEM;
    memcpy(*out, w->p, w->len);
    *len = (uint32_t)w->len;
    return 0;
}

/* A position in the tree as the map's value: "a" or "a/b/c". */
static int put_pos(struct strmap *m, const char *k, size_t a, const size_t *bc)
{
    char v[64];
    if (bc)
        snprintf(v, sizeof v, "%zu/%zu/%zu", a, bc[0], bc[1]);
    else
        snprintf(v, sizeof v, "%zu", a);
    return strmap_put(m, k, v);
}

static size_t pos_of(const char *v)
{
    return v ? (size_t)strtoull(v, NULL, 10) : SIZE_MAX;
}

struct fx_study *fx_index_study(struct fx_index *x, const char *study)
{
    char k[80];
    snprintf(k, sizeof k, "s|%s", study);
    size_t i = pos_of(strmap_get(&x->where, k));
    return i < x->n ? x->studies[i] : NULL;
}

struct fx_series *fx_index_series(struct fx_index *x, const char *study, const char *series)
{
    struct fx_study *st = fx_index_study(x, study);
    char k[160];
    snprintf(k, sizeof k, "e|%s|%s", study, series);
    size_t i = pos_of(strmap_get(&x->where, k));
    return st && i < st->n ? st->series[i] : NULL;
}

struct fx_inst *fx_index_inst(struct fx_index *x, const char *sop, struct fx_study **st,
                              struct fx_series **se)
{
    char k[80];
    snprintf(k, sizeof k, "i|%s", sop);
    const char *v = strmap_get(&x->where, k);
    size_t a, b, c;
    char *end;
    if (!v)
        return NULL;
    a = (size_t)strtoull(v, &end, 10);
    b = (size_t)strtoull(end + 1, &end, 10);
    c = (size_t)strtoull(end + 1, NULL, 10);
    if (a >= x->n || b >= x->studies[a]->n || c >= x->studies[a]->series[b]->n)
        return NULL;
    *st = x->studies[a];
    *se = (*st)->series[b];
    return (*se)->inst[c];
}

bool fx_study_owned_by(const struct fx_study *s, const char *owner)
{
    for (size_t i = 0; i < s->n_owners; i++) {
        if (strcmp(s->owners[i], owner) == 0)
            return true;
    }
    return false;
}

static int add_owner(struct fx_study *s, const char *owner)
{
    if (!owner[0] || fx_study_owned_by(s, owner))
        return 0;
    size_t cap = s->n_owners; /* owners are few: grown one by one */
    char **o = realloc(s->owners, (cap + 1) * sizeof *o);
    if (!o)
        return ERR_NOMEM;
    s->owners = o;
    o[s->n_owners] = strdup(owner);
    if (!o[s->n_owners])
        return ERR_NOMEM;
    s->n_owners++;
    return 0;
}

static struct fx_study *get_study(struct fx_index *x, const char *uid, const struct fx_attrs *a,
                                  int *rc)
{
    struct fx_study *st = fx_index_study(x, uid);
    if (st || (*rc = grow((void **)&x->studies, &x->cap, x->n, sizeof *x->studies)) < 0)
        return st;
    st = calloc(1, sizeof *st);
    if (!st || !(st->patient_id = strdup(a ? a->patient_id : ""))) {
        free(st);
        *rc = ERR_NOMEM;
        return NULL;
    }
    copy_uid(st->uid, uid);
    char k[80];
    snprintf(k, sizeof k, "s|%s", uid);
    if ((*rc = dup_blob(a ? &a->blob[FX_STUDY] : NULL, &st->attrs, &st->attrs_len)) < 0 ||
        (*rc = put_pos(&x->where, k, x->n, NULL)) < 0) {
        free(st->attrs);
        free(st->patient_id);
        free(st);
        return NULL;
    }
    x->studies[x->n++] = st;
    return st;
}

static struct fx_series *get_series(struct fx_index *x, size_t si, const char *uid,
                                    const struct fx_attrs *a, int *rc)
{
    struct fx_study *st = x->studies[si];
    struct fx_series *se = fx_index_series(x, st->uid, uid);
    if (se || (*rc = grow((void **)&st->series, &st->cap, st->n, sizeof *st->series)) < 0)
        return se;
    se = calloc(1, sizeof *se);
    if (!se) {
        *rc = ERR_NOMEM;
        return NULL;
    }
    copy_uid(se->uid, uid);
    snprintf(se->modality, sizeof se->modality, "%s", a ? a->modality : "");
    char k[160];
    snprintf(k, sizeof k, "e|%s|%s", st->uid, uid);
    if ((*rc = dup_blob(a ? &a->blob[FX_SERIES] : NULL, &se->attrs, &se->attrs_len)) < 0 ||
        (*rc = put_pos(&x->where, k, st->n, NULL)) < 0) {
        free(se->attrs);
        free(se);
        return NULL;
    }
    st->series[st->n++] = se;
    return se;
}

/* Add (or replace: the same SOP Instance UID stored again) one instance. Lock held. */
static int add_inst(struct fx_index *x, const struct fx_known *k, const struct fx_attrs *a)
{
    int rc = 0;
    struct fx_study *st0;
    struct fx_series *se0;
    struct fx_inst *in = fx_index_inst(x, k->sop, &st0, &se0);
    uint8_t *attrs;
    uint32_t alen;
    char *key = strdup(k->key);
    if (!key || dup_blob(&a->blob[FX_IMAGE], &attrs, &alen) < 0) {
        free(key);
        return ERR_NOMEM;
    }
    if (in) { /* the newer content wins; its place in the tree stays */
        free(in->key);
        free(in->attrs);
    } else {
        char sk[80], ek[160], ik[80];
        snprintf(sk, sizeof sk, "s|%s", k->study);
        snprintf(ek, sizeof ek, "e|%s|%s", k->study, k->series);
        snprintf(ik, sizeof ik, "i|%s", k->sop);
        struct fx_study *st = get_study(x, k->study, a, &rc);
        size_t si = pos_of(strmap_get(&x->where, sk));
        struct fx_series *se = st ? get_series(x, si, k->series, a, &rc) : NULL;
        if (!st || !se || grow((void **)&se->inst, &se->cap, se->n, sizeof *se->inst) < 0 ||
            !(in = calloc(1, sizeof *in)) ||
            put_pos(&x->where, ik, si,
                    (const size_t[2]){pos_of(strmap_get(&x->where, ek)), se->n}) < 0) {
            free(in);
            free(key);
            free(attrs);
            return rc < 0 ? rc : ERR_NOMEM;
        }
        se->inst[se->n++] = in;
        st->n_inst++;
        x->instances++;
        copy_uid(in->sop, k->sop);
    }
    copy_uid(in->sop_class, k->sop_class);
    copy_uid(in->ts, a->ts);
    in->key = key;
    in->bytes = k->bytes;
    in->offset = a->dataset_offset;
    in->attrs = attrs;
    in->attrs_len = alen;
    return 0;
}

/* ---- persistence -------------------------------------------------------------------------- */

static int hex_blob(cJSON *j, const char *name, const struct wbuf *w)
{
    char *h = malloc(w->len * 2 + 1);
    if (!h)
        return ERR_NOMEM;
    hex_lower(w->p ? w->p : (const uint8_t *)"", w->len, h);
    cJSON *s = cJSON_AddStringToObject(j, name, h);
    free(h);
    return s ? 0 : ERR_NOMEM;
}

static int persist(struct fx_index *x, const struct fx_known *k, const struct fx_attrs *a)
{
    if (!x->file)
        return 0;
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return ERR_NOMEM;
    int rc = 0;
    if (!cJSON_AddStringToObject(j, "key", k->key) || !cJSON_AddStringToObject(j, "sop", k->sop) ||
        !cJSON_AddStringToObject(j, "class", k->sop_class) ||
        !cJSON_AddStringToObject(j, "study", k->study) ||
        !cJSON_AddStringToObject(j, "series", k->series) ||
        !cJSON_AddStringToObject(j, "ts", a->ts) ||
        !cJSON_AddNumberToObject(j, "bytes", (double)k->bytes) ||
        !cJSON_AddNumberToObject(j, "offset", (double)a->dataset_offset))
        rc = ERR_NOMEM;
    static const char *const names[FX_LEVELS] = {"study_attrs", "series_attrs", "image_attrs"};
    for (size_t i = 0; rc == 0 && i < FX_LEVELS; i++)
        rc = hex_blob(j, names[i], &a->blob[i]);
    if (rc == 0)
        rc = spool_journal_append(x->file, j);
    cJSON_Delete(j);
    return rc;
}

static int unhex_blob(const cJSON *j, const char *name, struct wbuf *w)
{
    const char *h = jstr(j, name);
    size_t n = h ? strlen(h) : 0;
    wbuf_reset(w);
    if (n == 0)
        return 0;
    if (n / 2 > FX_BLOB_MAX || wbuf_reserve(w, n / 2) < 0)
        return ERR_MALFORMED;
    int got = hex_decode(h, n, w->p, n / 2);
    if (got < 0)
        return ERR_MALFORMED;
    w->len = (size_t)got;
    return 0;
}

/* Pick Modality and Patient ID out of the level blobs read back (kept out of the record). */
static void names_from_blobs(struct fx_attrs *a);

static int on_index_record(void *arg, const cJSON *rec)
{
    struct fx_index *x = arg;
    struct fx_known k = {0};
    const char *key = jstr(rec, "key"), *ts = jstr(rec, "ts");
    if (!key || !ts || strlen(key) >= sizeof k.key || strlen(ts) > 64)
        return 0; /* not ours: ignored, the reconciliation reads that file again */
    snprintf(k.key, sizeof k.key, "%s", key);
    copy_uid(k.sop, jstr(rec, "sop"));
    copy_uid(k.sop_class, jstr(rec, "class"));
    copy_uid(k.study, jstr(rec, "study"));
    copy_uid(k.series, jstr(rec, "series"));
    k.bytes = jnum(rec, "bytes");
    if (!k.sop[0] || !k.study[0] || !k.series[0])
        return 0;
    struct fx_attrs a;
    fx_attrs_init(&a);
    copy_uid(a.ts, ts);
    a.dataset_offset = jnum(rec, "offset");
    if (unhex_blob(rec, "study_attrs", &a.blob[FX_STUDY]) < 0 ||
        unhex_blob(rec, "series_attrs", &a.blob[FX_SERIES]) < 0 ||
        unhex_blob(rec, "image_attrs", &a.blob[FX_IMAGE]) < 0) {
        fx_attrs_cleanup(&a);
        return 0;
    }
    names_from_blobs(&a);
    int rc = add_inst(x, &k, &a);
    fx_attrs_cleanup(&a);
    return rc;
}

static void names_from_blobs(struct fx_attrs *a)
{
    struct dcm_ds *ds = NULL;
    struct slice s;
    if (a->blob[FX_SERIES].len &&
        dcm_ds_parse(a->blob[FX_SERIES].p, a->blob[FX_SERIES].len, DCM_TS_EXPLICIT_LE, NULL,
                     &ds) == 0 &&
        dcm_item_str(dcm_ds_root(ds), DCM_TAG(0x0008, 0x0060), &s) == 0 &&
        s.len < sizeof a->modality)
        snprintf(a->modality, sizeof a->modality, "%.*s", (int)s.len, (const char *)s.p);
    dcm_ds_free(ds);
    ds = NULL;
    if (a->blob[FX_STUDY].len &&
        dcm_ds_parse(a->blob[FX_STUDY].p, a->blob[FX_STUDY].len, DCM_TS_EXPLICIT_LE, NULL,
                     &ds) == 0 &&
        dcm_item_str(dcm_ds_root(ds), DCM_TAG(0x0010, 0x0020), &s) == 0 &&
        s.len < sizeof a->patient_id)
        snprintf(a->patient_id, sizeof a->patient_id, "%.*s", (int)s.len, (const char *)s.p);
    dcm_ds_free(ds);
}

int fx_index_open(struct file_backend *b)
{
    struct fx_index *x = &b->index;
    if (pthread_rwlock_init(&x->lock, NULL) != 0)
        return ERR_NOMEM;
    x->opened = true;
    char path[1100];
    if (snprintf(path, sizeof path, "%s/%s", b->cfg.dir, INDEX_FILE) >= (int)sizeof path)
        return ERR_LIMIT;
    return spool_journal_open(path, b->fsync, on_index_record, x, &x->file);
}

void fx_index_close(struct fx_index *x)
{
    if (!x->opened)
        return;
    spool_journal_close(x->file);
    x->file = NULL;
    for (size_t i = 0; i < x->n; i++) {
        struct fx_study *st = x->studies[i];
        for (size_t j = 0; j < st->n; j++) {
            struct fx_series *se = st->series[j];
            for (size_t k = 0; k < se->n; k++) {
                free(se->inst[k]->key);
                free(se->inst[k]->attrs);
                free(se->inst[k]);
            }
            free(se->inst);
            free(se->attrs);
            free(se);
        }
        for (size_t j = 0; j < st->n_owners; j++)
            free(st->owners[j]);
        free(st->owners);
        free(st->series);
        free(st->attrs);
        free(st->patient_id);
        free(st);
    }
    free(x->studies);
    free(x->known);
    strmap_free(&x->where);
    pthread_rwlock_destroy(&x->lock);
    memset(x, 0, sizeof *x);
}

int fx_index_know(struct fx_index *x, const struct fx_known *k)
{
    TRY(grow((void **)&x->known, &x->cap_known, x->n_known, sizeof *x->known));
    x->known[x->n_known++] = *k;
    return 0;
}

/* ---- as objects are stored ---------------------------------------------------------------- */

static void log_index_error(const char *what, const struct fx_known *k, int rc)
{
    struct logb lb;
    if (log_begin(&lb, LOG_WARN, "backend_file_index_error")) {
        log_str(&lb, "step", what);
        log_str(&lb, "sop_instance_uid", k->sop);
        log_str(&lb, "err", err_str(rc));
        log_end(&lb);
    }
}

/* Index k (reading its file) unless the index has it under the same key; add its sender. */
static void take(struct file_backend *b, const struct fx_known *k, bool persisted)
{
    struct fx_index *x = &b->index;
    struct fx_study *st;
    struct fx_series *se;
    pthread_rwlock_rdlock(&x->lock);
    struct fx_inst *in = fx_index_inst(x, k->sop, &st, &se);
    bool have = in && (k->duplicate || strcmp(in->key, k->key) == 0);
    pthread_rwlock_unlock(&x->lock);
    int rc = 0;
    if (!have && !k->duplicate) {
        struct fx_attrs a;
        fx_attrs_init(&a);
        char path[1600];
        snprintf(path, sizeof path, "%s/%s", b->cfg.dir, k->key);
        rc = fx_extract_file(path, &a);
        if (rc == 0) {
            pthread_rwlock_wrlock(&x->lock);
            rc = add_inst(x, k, &a);
            pthread_rwlock_unlock(&x->lock);
        }
        if (rc == 0 && !persisted)
            rc = persist(x, k, &a);
        fx_attrs_cleanup(&a);
        if (rc < 0)
            log_index_error("index", k, rc);
    }
    pthread_rwlock_wrlock(&x->lock);
    st = fx_index_study(x, k->study);
    rc = st ? add_owner(st, k->owner) : 0;
    pthread_rwlock_unlock(&x->lock);
    if (rc < 0)
        log_index_error("owner", k, rc);
}

void fx_index_stored(struct file_backend *b, const struct fx_known *k)
{
    take(b, k, false);
}

void fx_index_sync(struct file_backend *b)
{
    if (b->index.file && spool_journal_sync(b->index.file) < 0) {
        struct logb lb;
        if (log_begin(&lb, LOG_WARN, "backend_file_index_error")) {
            log_str(&lb, "step", "sync");
            log_end(&lb);
        }
    }
}

void fx_index_reconcile(struct file_backend *b)
{
    struct fx_index *x = &b->index;
    uint64_t before = x->instances;
    for (size_t i = 0; i < x->n_known; i++)
        take(b, &x->known[i], false);
    fx_index_sync(b);
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "backend_file_index_ready")) {
        log_u64(&lb, "instances", x->instances);
        log_u64(&lb, "studies", x->n);
        log_u64(&lb, "read_from_store", x->instances - before);
        log_end(&lb);
    }
    FREE_NULL(x->known);
    x->n_known = x->cap_known = 0;
    x->ready = true;
}
