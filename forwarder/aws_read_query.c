/* aws_read: a C-FIND query (common/dcm_query.h) as one QIDO-RS search. Only what QIDO-RS can
 * express exactly as PS3.4 C.2.2.2 means it, and what AWS lists as a query key of that API, is
 * sent (so that HealthImaging's answer is a superset of the matches); everything else is
 * matched by the core on the candidates. Every key of the query is asked for with
 * includefield so that the candidates carry it. */
#include <stdio.h>
#include <string.h>

#include "aws_read_int.h"
#include "common/dcm_vr.h"

#define PLAN_TEXT_MAX (64u * 1024u)
#define SCOPE_IN_QUERY_MAX 64 /* studies of a scope sent as a UID list (URL length) */

enum {
    M_SINGLE = 1u << DCM_MT_SINGLE,
    M_LIST = 1u << DCM_MT_UID_LIST,
    M_WILD = 1u << DCM_MT_WILDCARD,
    M_RANGE = 1u << DCM_MT_RANGE,
};

struct qmap {
    uint32_t tag;
    enum dw_level level;
    unsigned kinds;
};

/* AWS's query keys per API (docs/testing-aws.md): the study search's, and the hierarchical
 * series and instance searches' own. TM keys are left out: a server may compare times as text,
 * where PS3.4 compares what they cover. */
static const struct qmap g_map[] = {
    {0x00080020u, DW_STUDIES, M_SINGLE | M_RANGE},  /* StudyDate */
    {0x00080050u, DW_STUDIES, M_SINGLE | M_WILD},   /* AccessionNumber */
    {0x00080061u, DW_STUDIES, M_SINGLE | M_WILD},   /* ModalitiesInStudy */
    {0x00080090u, DW_STUDIES, M_SINGLE | M_WILD},   /* ReferringPhysicianName */
    {0x00081030u, DW_STUDIES, M_SINGLE | M_WILD},   /* StudyDescription */
    {0x00100010u, DW_STUDIES, M_SINGLE | M_WILD},   /* PatientName */
    {0x00100020u, DW_STUDIES, M_SINGLE | M_WILD},   /* PatientID */
    {0x00100030u, DW_STUDIES, M_SINGLE | M_RANGE},  /* PatientBirthDate */
    {0x0020000Du, DW_STUDIES, M_SINGLE | M_LIST},   /* StudyInstanceUID */
    {0x00200010u, DW_STUDIES, M_SINGLE | M_WILD},   /* StudyID */
    {0x00080060u, DW_SERIES, M_SINGLE | M_WILD},    /* Modality */
    {0x0020000Eu, DW_SERIES, M_SINGLE | M_LIST},    /* SeriesInstanceUID */
    {0x00080016u, DW_INSTANCES, M_SINGLE | M_LIST}, /* SOPClassUID */
    {0x00080018u, DW_INSTANCES, M_SINGLE | M_LIST}, /* SOPInstanceUID */
};

#define TAG_STUDY 0x0020000Du
#define TAG_SERIES 0x0020000Eu
#define TAG_PATIENT_ID 0x00100020u

static const struct qmap *mapped(uint32_t tag, enum dw_level level)
{
    for (size_t i = 0; i < ARRAY_LEN(g_map); i++) {
        if (g_map[i].tag == tag && g_map[i].level == level)
            return &g_map[i];
    }
    return NULL;
}

static bool is_control(uint32_t tag)
{
    return tag == 0x00080005u || tag == 0x00080052u || tag == 0x00080053u ||
           tag == 0x00080201u;
}

/* A string kept in p->text (reserved whole at make: pointers into it stay valid). */
static const char *keep(struct read_plan *p, const uint8_t *s, size_t n)
{
    if (n + 1 > p->text.max - p->text.len) {
        p->text.err = ERR_LIMIT;
        return NULL;
    }
    const char *at = (const char *)p->text.p + p->text.len;
    wbuf_put(&p->text, s, n);
    wbuf_u8(&p->text, 0);
    return p->text.err ? NULL : at;
}

static const char *keep_str(struct read_plan *p, const char *s)
{
    return keep(p, (const uint8_t *)s, strlen(s));
}

static void add_key(struct read_plan *p, uint32_t tag, const char *value)
{
    if (!value || p->qido.n_keys == READ_PLAN_KEYS)
        return; /* not sent: the core still matches it */
    char name[9];
    snprintf(name, sizeof name, "%08X", (unsigned)tag);
    const char *n = keep_str(p, name);
    if (!n)
        return;
    p->keys[p->qido.n_keys].name = n;
    p->keys[p->qido.n_keys].value = value;
    p->qido.n_keys++;
}

/* The value of a key as QIDO text, or NULL when it cannot go (several non-UID values...). */
static const char *key_text(struct read_plan *p, const struct dcm_qkey *k)
{
    if (k->type == DCM_MT_UID_LIST) {
        size_t at = p->text.len;
        for (size_t i = 0; i < k->nvalues; i++) {
            if (i)
                wbuf_u8(&p->text, ',');
            wbuf_put(&p->text, k->values[i].text.p, k->values[i].text.len);
        }
        wbuf_u8(&p->text, 0);
        return p->text.err ? NULL : (const char *)p->text.p + at;
    }
    if (k->nvalues != 1)
        return NULL;
    struct slice t = k->values[0].text;
    if (t.len == 0 || memchr(t.p, ',', t.len) || memchr(t.p, '\0', t.len))
        return NULL; /* a comma could read as a list: leave it to the core */
    return keep(p, t.p, t.len);
}

/* The single value of an upper level's unique key, into out. */
static bool upper_uid(const struct dcm_query *q, uint32_t tag, char *out, size_t cap)
{
    const struct dcm_qkey *k = dcm_query_find(q, tag);
    if (!k || k->type != DCM_MT_SINGLE || k->nvalues != 1 || k->values[0].text.len + 1 > cap)
        return false;
    memcpy(out, k->values[0].text.p, k->values[0].text.len);
    out[k->values[0].text.len] = '\0';
    return true;
}

/* At the study search: keep it inside the scope with a StudyInstanceUID list. */
static void scope_studies(struct read_plan *p, const struct dcm_query *q,
                          const struct read_scope *s)
{
    if (s->scope == GRANT_SCOPE_ALL)
        return;
    const struct dcm_qkey *k = dcm_query_find(q, TAG_STUDY);
    size_t at = p->text.len, n = 0;
    if (k && (k->type == DCM_MT_SINGLE || k->type == DCM_MT_UID_LIST)) {
        for (size_t i = 0; i < k->nvalues; i++) { /* the query's UIDs that are in scope */
            char uid[AWS_READ_UID_MAX];
            struct slice t = k->values[i].text;
            if (t.len + 1 > sizeof uid)
                continue;
            memcpy(uid, t.p, t.len);
            uid[t.len] = '\0';
            if (!read_scope_has(s, uid))
                continue;
            if (n++)
                wbuf_u8(&p->text, ',');
            wbuf_str(&p->text, uid);
        }
    } else if (s->n <= SCOPE_IN_QUERY_MAX) {
        for (size_t i = 0; i < s->n; i++) {
            if (n++)
                wbuf_u8(&p->text, ',');
            wbuf_str(&p->text, s->studies[i]);
        }
    } else {
        return; /* too many for a URL: the filters alone hold */
    }
    wbuf_u8(&p->text, 0);
    if (n == 0) {
        p->empty = true;
        return;
    }
    for (size_t i = 0; i < p->qido.n_keys; i++) { /* replaces the query's own */
        if (strcmp(p->keys[i].name, "0020000D") == 0) {
            p->keys[i].value = (const char *)p->text.p + at;
            return;
        }
    }
    add_key(p, TAG_STUDY, p->text.err ? NULL : (const char *)p->text.p + at);
}

int read_plan_make(const struct dcm_query *q, const struct read_scope *scope,
                   struct read_plan *p)
{
    memset(p, 0, sizeof *p);
    wbuf_init(&p->text, PLAN_TEXT_MAX);
    TRY(wbuf_reserve(&p->text, PLAN_TEXT_MAX)); /* no realloc: the plan points into it */
    p->level = dcm_query_level(q);
    p->patient_root = dcm_query_model(q) == DCM_QR_PATIENT_ROOT;
    p->qido.keys = p->keys;
    p->qido.includefield = p->include;
    enum dw_level dl = p->level == DCM_QL_SERIES  ? DW_SERIES
                       : p->level == DCM_QL_IMAGE ? DW_INSTANCES
                                                  : DW_STUDIES; /* PATIENT: studies, deduped */
    p->qido.level = dl;
    if (p->patient_root && p->level != DCM_QL_PATIENT &&
        !upper_uid(q, TAG_PATIENT_ID, p->patient_id, sizeof p->patient_id))
        p->patient_id[0] = '\0'; /* hierarchical: present; the core checks it anyway */
    if (p->level == DCM_QL_SERIES || p->level == DCM_QL_IMAGE) {
        if (!upper_uid(q, TAG_STUDY, p->study, sizeof p->study))
            return ERR_UNSUPPORTED;
        p->qido.study = p->study;
        if (!read_scope_has(scope, p->study))
            p->empty = true;
    }
    if (p->level == DCM_QL_IMAGE) {
        if (!upper_uid(q, TAG_SERIES, p->series, sizeof p->series))
            return ERR_UNSUPPORTED;
        p->qido.series = p->series;
    }
    size_t n_incl = 0;
    bool incl_all = false;
    for (size_t i = 0; i < dcm_query_nkeys(q); i++) {
        const struct dcm_qkey *k = dcm_query_key(q, i);
        if (is_control(k->tag))
            continue;
        if (n_incl < READ_PLAN_INCLUDE) {
            char name[9];
            snprintf(name, sizeof name, "%08X", (unsigned)k->tag);
            p->include[n_incl++] = keep_str(p, name);
        } else {
            incl_all = true;
        }
        if (k->level != (uint8_t)p->level)
            continue; /* upper levels: in the path, or checked by the core */
        const struct qmap *m = mapped(k->tag, dl);
        if (!m || !(m->kinds & (1u << k->type)))
            continue;
        add_key(p, k->tag, key_text(p, k));
    }
    if (p->patient_root && p->level == DCM_QL_STUDY && p->patient_id[0] &&
        !memchr(p->patient_id, ',', strlen(p->patient_id)))
        add_key(p, TAG_PATIENT_ID, keep_str(p, p->patient_id));
    if (incl_all) {
        p->include[0] = "all";
        n_incl = 1;
    }
    p->qido.n_include = n_incl;
    if (dl == DW_STUDIES)
        scope_studies(p, q, scope);
    if (p->text.err)
        return p->text.err == ERR_LIMIT ? ERR_UNSUPPORTED : p->text.err;
    return 0;
}

void read_plan_cleanup(struct read_plan *p)
{
    wbuf_cleanup(&p->text);
    memset(p, 0, sizeof *p);
}
