/* The plan of a retrieve: its identifier's unique keys (PS3.4 C.4.2.2.1, C.4.3.2.1,
 * hierarchical only) expanded into instances by searches of the backend, one at a time: a
 * PATIENT retrieve searches the patient's studies, a STUDY retrieve each study's series, a
 * SERIES retrieve each series' instances, an IMAGE retrieve the instances named. Every
 * candidate is matched here again (exactly) and held against the client's scope. */
#include "retrieve.h"

#include <stdlib.h>
#include <string.h>

#include "common/dcm_match.h"

#define TAG_LEVEL DCM_TAG(0x0008, 0x0052)
#define TAG_SOP_CLASS DCM_TAG(0x0008, 0x0016)
#define TAG_SOP DCM_TAG(0x0008, 0x0018)
#define TAG_PATIENT_ID DCM_TAG(0x0010, 0x0020)
#define TAG_STUDY DCM_TAG(0x0020, 0x000D)
#define TAG_SERIES DCM_TAG(0x0020, 0x000E)

/* One search to run: at level, under study (and series), for the values of its unique key. */
struct task {
    enum dcm_qr_level level;
    char study[65], series[65];
    char *key; /* PATIENT: the Patient ID; IMAGE: the SOP Instance UIDs ("" for all) */
};

struct retrieve_plan {
    const struct backend_read_ops *ops;
    void *impl;
    const struct qr_scope *scope;
    struct retrieve_list *out;
    retrieve_plan_cb cb;
    void *arg;
    struct task *tasks; /* a FIFO: [head, n) still to run */
    size_t head, n, cap;
    struct task cur;
    struct dcm_query *q; /* the current search's */
    struct backend_read_op *search;
    int err;
    const char *why;
};

void retrieve_list_free(struct retrieve_list *l)
{
    FREE_NULL(l->v);
    l->n = l->cap = 0;
}

static const char *level_name(enum dcm_qr_level l)
{
    return dcm_query_level_name(l);
}

bool retrieve_in_scope(const struct dcm_query *q, const struct qr_scope *scope)
{
    if (scope->s.scope == GRANT_SCOPE_ALL)
        return true;
    const struct dcm_qkey *k = dcm_query_find(q, TAG_STUDY);
    if (dcm_query_level(q) == DCM_QL_PATIENT || !k)
        return true; /* nothing named: what is found is filtered */
    char uid[65];
    for (size_t i = 0; i < k->nvalues; i++) {
        struct slice v = k->values[i].text;
        if (v.len >= sizeof uid)
            return false;
        memcpy(uid, v.p, v.len);
        uid[v.len] = '\0';
        if (!qr_scope_has(scope, uid))
            return false;
    }
    return true;
}

static void task_free(struct task *t)
{
    FREE_NULL(t->key);
}

static int push(struct retrieve_plan *p, enum dcm_qr_level level, const char *study,
                const char *series, const char *key, size_t key_len)
{
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 16;
        struct task *t = realloc(p->tasks, nc * sizeof *t);
        if (!t)
            return ERR_NOMEM;
        p->tasks = t;
        p->cap = nc;
    }
    struct task *t = &p->tasks[p->n];
    memset(t, 0, sizeof *t);
    t->level = level;
    snprintf(t->study, sizeof t->study, "%s", study ? study : "");
    snprintf(t->series, sizeof t->series, "%s", series ? series : "");
    if (!(t->key = malloc(key_len + 1)))
        return ERR_NOMEM;
    memcpy(t->key, key, key_len);
    t->key[key_len] = '\0';
    p->n++;
    return 0;
}

static void plan_free(struct retrieve_plan *p)
{
    for (size_t i = p->head; i < p->n; i++)
        task_free(&p->tasks[i]);
    task_free(&p->cur);
    free(p->tasks);
    dcm_query_free(p->q);
    free(p);
}

/* The identifier of a search (C-FIND rules: the upper levels' unique keys, single values). */
static int build_query(const struct task *t, struct dcm_query **q)
{
    struct dcm_ds *ds = dcm_ds_new(NULL);
    if (!ds)
        return ERR_NOMEM;
    struct dcm_item *r = dcm_ds_root_mut(ds);
    enum dcm_qr_model model = DCM_QR_STUDY_ROOT;
    int rc = dcm_ds_add_cstr(ds, r, TAG_LEVEL, DCM_VR_CS, level_name(t->level));
    if (rc == 0 && t->level == DCM_QL_STUDY) { /* under a patient: Patient Root */
        model = DCM_QR_PATIENT_ROOT;
        rc = dcm_ds_add_cstr(ds, r, TAG_PATIENT_ID, DCM_VR_LO, t->key);
    }
    if (rc == 0)
        rc = dcm_ds_add_cstr(ds, r, TAG_STUDY, DCM_VR_UI, t->study);
    if (rc == 0 && t->level >= DCM_QL_SERIES)
        rc = dcm_ds_add_cstr(ds, r, TAG_SERIES, DCM_VR_UI, t->series);
    if (rc == 0 && t->level == DCM_QL_IMAGE) {
        if ((rc = dcm_ds_add_cstr(ds, r, TAG_SOP_CLASS, DCM_VR_UI, "")) == 0)
            rc = dcm_ds_add_cstr(ds, r, TAG_SOP, DCM_VR_UI, t->key);
        if (rc == 0) /* returned only: the audit trail names the patient */
            rc = dcm_ds_add_cstr(ds, r, TAG_PATIENT_ID, DCM_VR_LO, "");
    }
    struct dcm_query_opts o = {.model = model, .op = DCM_QOP_FIND};
    struct dcm_query_error qe;
    if (rc == 0)
        rc = dcm_query_parse(ds, &o, q, &qe);
    dcm_ds_free(ds);
    return rc;
}

static void cstr(const struct dcm_item *it, uint32_t tag, char out[65])
{
    const struct dcm_elem *e = dcm_item_find(it, tag);
    if (!e || dcm_elem_cstr(e, 0, out, 65) < 0)
        out[0] = '\0';
}

static int on_result(void *arg, const struct dcm_ds *cand)
{
    struct retrieve_plan *p = arg;
    const struct dcm_item *root = dcm_ds_root(cand);
    struct dcm_match_opts mo = {0};
    if (p->err || dcm_charset_of(root, &mo.cand_cs) < 0 || !dcm_match(p->q, root, &mo))
        return 0;
    char study[65], series[65], sop[65], cls[65];
    cstr(root, TAG_STUDY, study);
    if (!study[0] || !qr_scope_has(p->scope, study) ||
        (p->cur.level != DCM_QL_STUDY && strcmp(study, p->cur.study) != 0))
        return 0;
    cstr(root, TAG_SERIES, series);
    if (p->cur.level == DCM_QL_STUDY)
        p->err = push(p, DCM_QL_SERIES, study, NULL, "", 0);
    else if (p->cur.level == DCM_QL_SERIES && series[0])
        p->err = push(p, DCM_QL_IMAGE, study, series, "", 0);
    else if (p->cur.level == DCM_QL_IMAGE && strcmp(series, p->cur.series) == 0) {
        cstr(root, TAG_SOP, sop);
        cstr(root, TAG_SOP_CLASS, cls);
        if (!sop[0] || !cls[0])
            return 0;
        struct retrieve_list *l = p->out;
        if (l->n >= RETRIEVE_MAX) {
            p->err = ERR_LIMIT;
            p->why = "more instances than one retrieve can count (65535)";
            return -1;
        }
        if (l->n == l->cap) {
            size_t nc = l->cap ? l->cap * 2 : 64;
            struct retrieve_item *v = realloc(l->v, nc * sizeof *v);
            if (!v) {
                p->err = ERR_NOMEM;
                return -1;
            }
            l->v = v;
            l->cap = nc;
        }
        struct retrieve_item *it = &l->v[l->n++];
        memcpy(it->study, study, 65);
        memcpy(it->series, series, 65);
        memcpy(it->sop, sop, 65);
        memcpy(it->sop_class, cls, 65);
        cstr(root, DCM_TAG(0x0008, 0x3002), it->ts); /* Available Transfer Syntax UID */
        cstr(root, TAG_PATIENT_ID, it->patient);
    }
    return p->err ? -1 : 0;
}

static void next(struct retrieve_plan *p);

static void on_done(void *arg, int err, const char *why)
{
    struct retrieve_plan *p = arg;
    p->search = NULL;
    if (err < 0 && p->err == 0) {
        p->err = err;
        p->why = err == ERR_LIMIT ? "a search hit the archive's cap: the instances cannot be counted"
                                  : why;
    }
    next(p);
}

/* Start the next task's search. 0: started; 1: no task left; < 0: failed (p->err set). */
static int launch(struct retrieve_plan *p)
{
    while (p->err == 0 && p->head < p->n) {
        task_free(&p->cur);
        p->cur = p->tasks[p->head++];
        dcm_query_free(p->q);
        p->q = NULL;
        int rc = build_query(&p->cur, &p->q);
        if (rc == ERR_MALFORMED)
            continue; /* a value from the index that is no UID: nothing to find under it */
        if (rc == 0) {
            struct backend_search_cbs cbs = {.result = on_result, .done = on_done, .arg = p};
            rc = p->ops->search(p->impl, p->q, &p->scope->s, &cbs, &p->search);
            if (rc == 0)
                return 0;
        }
        p->err = rc;
        p->why = rc == ERR_WRONG_STATE ? "the archive index is being rebuilt: try again"
                                       : "the archive could not be searched";
    }
    return p->err < 0 ? p->err : 1;
}

/* After a search: the next one, or the end (from the backend's callback). */
static void next(struct retrieve_plan *p)
{
    if (launch(p) == 0)
        return;
    retrieve_plan_cb cb = p->cb;
    void *arg = p->arg;
    int err = p->err;
    const char *why = p->why;
    plan_free(p);
    cb(arg, err, why);
}

void retrieve_plan_cancel(struct retrieve_plan *p)
{
    if (!p)
        return;
    if (p->search)
        p->ops->cancel(p->search);
    plan_free(p);
}

int retrieve_plan_start(const struct backend_read_ops *ops, void *impl, const struct dcm_query *q,
                        const struct qr_scope *scope, struct retrieve_list *out,
                        retrieve_plan_cb cb, void *arg, struct retrieve_plan **pp)
{
    struct retrieve_plan *p = calloc(1, sizeof *p);
    if (!p)
        return ERR_NOMEM;
    *p = (struct retrieve_plan){.ops = ops, .impl = impl, .scope = scope, .out = out,
                                .cb = cb, .arg = arg};
    enum dcm_qr_level level = dcm_query_level(q);
    const struct dcm_qkey *k = dcm_query_find(q, dcm_query_unique_tag(level));
    const struct dcm_qkey *ks = dcm_query_find(q, TAG_STUDY), *ke = dcm_query_find(q, TAG_SERIES);
    char study[65] = "", series[65] = "";
    if (ks && level > DCM_QL_STUDY && ks->nvalues == 1 && ks->values[0].text.len < 65)
        memcpy(study, ks->values[0].text.p, ks->values[0].text.len);
    if (ke && level > DCM_QL_SERIES && ke->nvalues == 1 && ke->values[0].text.len < 65)
        memcpy(series, ke->values[0].text.p, ke->values[0].text.len);
    int rc = k && k->nvalues ? 0 : ERR_MALFORMED;
    struct wbuf list; /* IMAGE: one search for every SOP Instance UID named */
    wbuf_init(&list, (size_t)(k ? k->nvalues : 0) * 65 + 1);
    for (size_t i = 0; rc == 0 && i < k->nvalues; i++) {
        struct slice v = k->values[i].text;
        char uid[65];
        if (v.len >= sizeof uid && level != DCM_QL_PATIENT) {
            rc = ERR_MALFORMED;
            break;
        }
        if (level == DCM_QL_PATIENT) {
            rc = push(p, DCM_QL_STUDY, "", NULL, (const char *)v.p, v.len);
            continue;
        }
        memcpy(uid, v.p, v.len);
        uid[v.len] = '\0';
        if (level == DCM_QL_STUDY)
            rc = push(p, DCM_QL_SERIES, uid, NULL, "", 0);
        else if (level == DCM_QL_SERIES)
            rc = push(p, DCM_QL_IMAGE, study, uid, "", 0);
        else
            wbuf_printf(&list, "%s%s", i ? "\\" : "", uid);
    }
    if (rc == 0 && level == DCM_QL_IMAGE)
        rc = list.err ? list.err : push(p, DCM_QL_IMAGE, study, series, (const char *)list.p,
                                        list.len);
    wbuf_cleanup(&list);
    if (rc == 0)
        rc = launch(p);
    if (rc != 0) { /* 1: nothing to search; < 0: failed. No callback either way. */
        if (rc < 0 && p->err == 0)
            p->err = rc;
        plan_free(p);
        return rc;
    }
    *pp = p;
    return 0;
}
