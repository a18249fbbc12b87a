/* The file backend's read side (spool/backend_read.h): search over the read index
 * (file_backend_index.c) in pages, each page built on the threadpool under the index's read
 * lock and delivered on the loop; resume and cancel for both searches and fetches
 * (file_backend_fetch.c). The studies a client may read are file_backend_scope.c's. */
#include "file_backend_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dcm_match.h"

#define TAG_CHARSET DCM_TAG(0x0008, 0x0005)
#define TAG_SOP_CLASS DCM_TAG(0x0008, 0x0016)
#define TAG_SOP DCM_TAG(0x0008, 0x0018)
#define TAG_MODS DCM_TAG(0x0008, 0x0061)
#define TAG_CLASSES DCM_TAG(0x0008, 0x0062)
#define TAG_AVAIL_TS DCM_TAG(0x0008, 0x3002)
#define TAG_STUDY DCM_TAG(0x0020, 0x000D)
#define TAG_SERIES DCM_TAG(0x0020, 0x000E)

struct fb_patient { /* PATIENT level: one per Patient ID among the studies in scope */
    size_t study; /* the first study of the patient: its patient attributes stand for all */
    size_t studies, series, instances;
};

struct fb_search {
    struct backend_read_op base;
    struct file_backend *b;
    const struct dcm_query *q; /* borrowed until done or cancel */
    struct backend_search_cbs cbs;
    struct strmap scope; /* studies in scope; unused for ALL */
    bool all;
    enum dcm_qr_level level;
    size_t st, se, in; /* the cursor: next study / series / instance (or patient) to look at */
    struct fb_patient *patients;
    size_t n_patients;
    bool patients_done;
    struct dcm_ds **page;
    size_t n_page, next;
    uint32_t matched; /* matches built so far (the cap counts these) */
    bool more, limit;
    int err;
    uv_work_t work;
    uv_timer_t timer;
    bool in_work, cancelled, paused, finished, closing;
};

/* ---- candidates --------------------------------------------------------------------------- */

/* Copy the elements of blob into root; PATIENT: only the patient's attributes. */
static int merge(struct dcm_ds *ds, const uint8_t *blob, uint32_t len, bool patient_only)
{
    if (len == 0)
        return 0;
    struct dcm_ds *in;
    TRY(dcm_ds_parse(blob, len, DCM_TS_EXPLICIT_LE, NULL, &in));
    int rc = 0;
    for (const struct dcm_elem *e = dcm_item_first(dcm_ds_root(in)); e && rc == 0;
         e = dcm_elem_next(e)) {
        const struct dcm_dict_entry *d = dcm_dict_find(dcm_elem_tag(e));
        if (patient_only && (!d || d->level != DCM_DL_PATIENT))
            continue;
        rc = dcm_ds_copy_elem(ds, dcm_ds_root_mut(ds), e);
        if (rc == ERR_MALFORMED)
            rc = 0; /* present already */
    }
    dcm_ds_free(in);
    return rc;
}

/* Add a value unless the candidate has one (the index's UIDs stand in for missing ones). */
static int put(struct dcm_ds *ds, uint32_t tag, uint16_t vr, const char *v)
{
    if (dcm_item_find(dcm_ds_root(ds), tag))
        return 0;
    return dcm_ds_add_cstr(ds, dcm_ds_root_mut(ds), tag, vr, v);
}

static int put_count(struct dcm_ds *ds, uint32_t tag, size_t n)
{
    char v[24];
    snprintf(v, sizeof v, "%zu", n);
    return put(ds, tag, DCM_VR_IS, v);
}

/* "a\b\c" of the distinct values into out; false when it does not fit. */
static bool add_distinct(char *out, size_t cap, const char *v)
{
    size_t vl = strlen(v), ol = strlen(out);
    if (vl == 0)
        return true;
    for (const char *p = out; *p;) {
        const char *end = strchr(p, '\\');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == vl && memcmp(p, v, n) == 0)
            return true;
        p = end ? end + 1 : p + n;
    }
    if (ol + vl + 2 > cap)
        return false;
    snprintf(out + ol, cap - ol, "%s%s", ol ? "\\" : "", v);
    return true;
}

static int study_extras(struct dcm_ds *ds, const struct fx_study *st)
{
    char mods[512] = "", classes[4096] = "";
    for (size_t i = 0; i < st->n; i++) {
        add_distinct(mods, sizeof mods, st->series[i]->modality);
        for (size_t k = 0; k < st->series[i]->n; k++)
            add_distinct(classes, sizeof classes, st->series[i]->inst[k]->sop_class);
    }
    TRY(put_count(ds, DCM_TAG(0x0020, 0x1206), st->n));
    TRY(put_count(ds, DCM_TAG(0x0020, 0x1208), st->n_inst));
    if (mods[0])
        TRY(put(ds, TAG_MODS, DCM_VR_CS, mods));
    if (classes[0])
        TRY(put(ds, TAG_CLASSES, DCM_VR_UI, classes));
    return 0;
}

/* The candidate for one entity at level (PS3.4 C.6.1.1, C.6.2.1), with the counts and lists
 * C.3.4 computes (Number of ... Related ..., Modalities / SOP Classes in Study). */
static int candidate(struct fb_search *s, const struct fx_study *st, const struct fx_series *se,
                     const struct fx_inst *in, const struct fb_patient *pt, struct dcm_ds **out)
{
    struct dcm_ds *ds = dcm_ds_new(NULL);
    if (!ds)
        return ERR_NOMEM;
    int rc = dcm_ds_add_cstr(ds, dcm_ds_root_mut(ds), TAG_CHARSET, DCM_VR_CS, "ISO_IR 192");
    if (rc == 0)
        rc = merge(ds, st->attrs, st->attrs_len, s->level == DCM_QL_PATIENT);
    if (rc == 0 && pt) {
        if ((rc = put_count(ds, DCM_TAG(0x0020, 0x1200), pt->studies)) == 0 &&
            (rc = put_count(ds, DCM_TAG(0x0020, 0x1202), pt->series)) == 0)
            rc = put_count(ds, DCM_TAG(0x0020, 0x1204), pt->instances);
        goto out;
    }
    if (rc == 0)
        rc = put(ds, TAG_STUDY, DCM_VR_UI, st->uid);
    if (rc == 0 && !se)
        rc = study_extras(ds, st);
    if (rc == 0 && se) {
        if ((rc = merge(ds, se->attrs, se->attrs_len, false)) == 0 &&
            (rc = put(ds, TAG_SERIES, DCM_VR_UI, se->uid)) == 0 && !in)
            rc = put_count(ds, DCM_TAG(0x0020, 0x1209), se->n);
    }
    if (rc == 0 && in) {
        if ((rc = merge(ds, in->attrs, in->attrs_len, false)) == 0 &&
            (rc = put(ds, TAG_SOP, DCM_VR_UI, in->sop)) == 0 &&
            (rc = put(ds, TAG_SOP_CLASS, DCM_VR_UI, in->sop_class)) == 0)
            rc = put(ds, TAG_AVAIL_TS, DCM_VR_UI, in->ts);
    }
out:
    if (rc < 0) {
        dcm_ds_free(ds);
        return rc;
    }
    *out = ds;
    return 0;
}

/* ---- a page (threadpool, read lock held) --------------------------------------------------- */

static bool in_scope(const struct fb_search *s, const struct fx_study *st)
{
    return s->all || strmap_get(&s->scope, st->uid) != NULL;
}

/* Take cand into the page if it matches. false: the page is full or the cap is reached. */
static bool offer(struct fb_search *s, struct dcm_ds *cand)
{
    /* a permissive pre-filter (the SCP matches again, exactly): any case in PN, and empty
     * values as unknown (PS3.4 C.2.2.1.2) */
    struct dcm_match_opts mo = {.flags = DCM_MATCH_PN_ICASE | DCM_MATCH_UNKNOWN_MATCHES,
                                .cand_cs = DCM_CS_UTF8};
    if (!dcm_match(s->q, dcm_ds_root(cand), &mo)) {
        dcm_ds_free(cand);
        return true;
    }
    if (s->matched >= s->b->cfg.read.max_results) { /* one more than the cap: tell */
        dcm_ds_free(cand);
        s->limit = true;
        return false;
    }
    s->page[s->n_page++] = cand;
    s->matched++;
    return s->n_page < s->b->cfg.read.page_size;
}

/* The single study (or series) a lower-level search is under (hierarchical: one value). */
static const char *upper_uid(const struct fb_search *s, uint32_t tag, char *buf)
{
    const struct dcm_qkey *k = dcm_query_find(s->q, tag);
    if (!k || k->type != DCM_MT_SINGLE || k->nvalues != 1 || k->values[0].text.len > 64)
        return NULL;
    memcpy(buf, k->values[0].text.p, k->values[0].text.len);
    buf[k->values[0].text.len] = '\0';
    return buf;
}

static void collect_patients(struct fb_search *s, struct fx_index *x)
{
    struct strmap seen = {0};
    s->patients = calloc(x->n ? x->n : 1, sizeof *s->patients);
    if (!s->patients) {
        s->err = ERR_NOMEM;
        return;
    }
    for (size_t i = 0; i < x->n; i++) {
        const struct fx_study *st = x->studies[i];
        if (!in_scope(s, st) || !st->patient_id[0])
            continue;
        const char *v = strmap_get(&seen, st->patient_id);
        size_t p = v ? (size_t)strtoull(v, NULL, 10) : s->n_patients;
        if (!v) {
            char num[24];
            snprintf(num, sizeof num, "%zu", p);
            if (strmap_put(&seen, st->patient_id, num) < 0) {
                s->err = ERR_NOMEM;
                break;
            }
            s->patients[s->n_patients++].study = i;
        }
        s->patients[p].studies++;
        s->patients[p].series += st->n;
        s->patients[p].instances += st->n_inst;
    }
    strmap_free(&seen);
    s->patients_done = true;
}

static void build_page(struct fb_search *s)
{
    struct fx_index *x = &s->b->index;
    char su[65], eu[65];
    struct dcm_ds *c = NULL;
    bool go = true;
    if (s->level == DCM_QL_PATIENT) {
        if (!s->patients_done)
            collect_patients(s, x);
        for (; go && s->err == 0 && s->st < s->n_patients; s->st++) {
            const struct fb_patient *pt = &s->patients[s->st];
            if ((s->err = candidate(s, x->studies[pt->study], NULL, NULL, pt, &c)) == 0)
                go = offer(s, c);
        }
    } else if (s->level == DCM_QL_STUDY) {
        for (; go && s->err == 0 && s->st < x->n; s->st++) {
            const struct fx_study *st = x->studies[s->st];
            if (in_scope(s, st) && (s->err = candidate(s, st, NULL, NULL, NULL, &c)) == 0)
                go = offer(s, c);
        }
    } else {
        const char *study = upper_uid(s, TAG_STUDY, su);
        struct fx_study *st = study ? fx_index_study(x, study) : NULL;
        if (!st || !in_scope(s, st)) {
            s->more = false;
            return;
        }
        if (s->level == DCM_QL_SERIES) {
            for (; go && s->err == 0 && s->se < st->n; s->se++) {
                if ((s->err = candidate(s, st, st->series[s->se], NULL, NULL, &c)) == 0)
                    go = offer(s, c);
            }
        } else {
            const char *series = upper_uid(s, TAG_SERIES, eu);
            struct fx_series *se = series ? fx_index_series(x, study, series) : NULL;
            for (; se && go && s->err == 0 && s->in < se->n; s->in++) {
                if ((s->err = candidate(s, st, se, se->inst[s->in], NULL, &c)) == 0)
                    go = offer(s, c);
            }
        }
    }
    s->more = !go && !s->limit && s->err == 0;
}

static void work_cb(uv_work_t *w)
{
    struct fb_search *s = w->data;
    pthread_rwlock_rdlock(&s->b->index.lock);
    build_page(s);
    pthread_rwlock_unlock(&s->b->index.lock);
}

/* ---- delivery (loop) ---------------------------------------------------------------------- */

static void search_free(struct fb_search *s)
{
    for (size_t i = s->next; i < s->n_page; i++)
        dcm_ds_free(s->page[i]);
    free(s->page);
    free(s->patients);
    strmap_free(&s->scope);
    free(s);
}

static void on_timer_closed(uv_handle_t *h)
{
    search_free(h->data);
}

/* Free once no threadpool job and no timer callback can come. */
static void search_release(struct fb_search *s)
{
    if (s->in_work || s->closing)
        return;
    s->closing = true;
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

static void after_work_cb(uv_work_t *w, int status);
static void on_timer(uv_timer_t *t);

static void next_page(struct fb_search *s)
{
    for (size_t i = s->next; i < s->n_page; i++)
        dcm_ds_free(s->page[i]);
    s->n_page = s->next = 0;
    s->in_work = true;
    int rc = uv_queue_work(s->b->loop, &s->work, work_cb, after_work_cb);
    if (rc < 0) { /* the end, told from the timer: never inside the caller's call */
        s->in_work = false;
        s->err = rc;
        s->more = false;
        uv_timer_start(&s->timer, on_timer, 0, 0);
    }
}

static void finish(struct fb_search *s)
{
    s->finished = true;
    int err = s->err ? s->err : s->limit ? ERR_LIMIT : 0;
    const char *why = s->err ? "the archive index could not be searched"
                      : s->limit ? "more matches than the archive returns for one query"
                                 : NULL;
    s->cbs.done(s->cbs.arg, err, why);
    search_release(s);
}

/* Hand out the page; then the next page, or the end. */
static void deliver(struct fb_search *s)
{
    while (!s->cancelled && !s->paused && s->next < s->n_page) {
        struct dcm_ds *c = s->page[s->next];
        int r = s->cbs.result(s->cbs.arg, c);
        s->page[s->next++] = NULL;
        dcm_ds_free(c);
        if (s->cancelled) {
            search_release(s);
            return;
        }
        if (r == 1)
            s->paused = true;
        if (r < 0) {
            s->err = r;
            s->more = false;
            s->next = s->n_page;
        }
    }
    if (s->paused || s->cancelled)
        return;
    if (s->more && s->b->cfg.read.page_delay_ms) {
        for (size_t i = s->next; i < s->n_page; i++)
            dcm_ds_free(s->page[i]);
        s->n_page = s->next = 0;
        uv_timer_start(&s->timer, on_timer, s->b->cfg.read.page_delay_ms, 0);
    } else if (s->more) {
        next_page(s);
    } else {
        finish(s);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct fb_search *s = t->data;
    if (s->n_page == 0 && s->more && !s->in_work) /* a delayed page */
        next_page(s);
    else
        deliver(s);
}

static void after_work_cb(uv_work_t *w, int status)
{
    struct fb_search *s = w->data;
    s->in_work = false;
    if (s->cancelled) {
        search_release(s);
        return;
    }
    if (status < 0 && s->err == 0)
        s->err = status;
    deliver(s);
}

static int fb_search(void *impl, const struct dcm_query *q, const struct backend_read_scope *scope,
                     const struct backend_search_cbs *cbs, struct backend_read_op **op)
{
    struct file_backend *b = impl;
    if (!b->index.ready)
        return ERR_WRONG_STATE;
    if (scope->scope == GRANT_SCOPE_NONE)
        return ERR_UNSUPPORTED;
    struct fb_search *s = calloc(1, sizeof *s);
    if (!s || !(s->page = calloc(b->cfg.read.page_size, sizeof *s->page))) {
        free(s);
        return ERR_NOMEM;
    }
    s->base.kind = FB_OP_SEARCH;
    s->b = b;
    s->q = q;
    s->cbs = *cbs;
    s->level = dcm_query_level(q);
    s->all = scope->scope == GRANT_SCOPE_ALL;
    for (size_t i = 0; !s->all && i < scope->n_studies; i++) {
        if (strmap_put(&s->scope, scope->studies[i], NULL) < 0) {
            search_free(s);
            return ERR_NOMEM;
        }
    }
    uv_timer_init(b->loop, &s->timer);
    s->timer.data = s;
    s->work.data = s;
    next_page(s);
    *op = &s->base;
    return 0;
}

static void fb_resume(struct backend_read_op *op)
{
    if (op->kind == FB_OP_FETCH) {
        fb_fetch_resume(op);
        return;
    }
    struct fb_search *s = (struct fb_search *)op;
    if (!s->paused || s->cancelled)
        return;
    s->paused = false;
    uv_timer_start(&s->timer, on_timer, 0, 0); /* never inside the caller's call */
}

static void fb_cancel(struct backend_read_op *op)
{
    if (op->kind == FB_OP_FETCH) {
        fb_fetch_cancel(op);
        return;
    }
    struct fb_search *s = (struct fb_search *)op;
    s->cancelled = true;
    uv_timer_stop(&s->timer);
    if (!s->finished)
        search_release(s);
}

const struct backend_read_ops file_backend_read_ops = {
    .search = fb_search,
    .fetch = fb_fetch,
    .resume = fb_resume,
    .cancel = fb_cancel,
    .scope_studies = fb_scope_studies,
};
