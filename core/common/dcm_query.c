/* dcm_query: PS3.4 C.2.2 (key types, matching types), C.4.1.2 / C.4.2.2 / C.4.3.2 (hierarchical
 * requests), C.6.1.1 / C.6.2.1 (levels and keys). The rules are listed in dcm_query.h. */
#include "dcm_query.h"

#include <stdlib.h>
#include <string.h>

#include "dcm_arena.h"
#include "wbuf.h"

#define TAG_CHARSET DCM_TAG(0x0008, 0x0005)
#define TAG_LEVEL DCM_TAG(0x0008, 0x0052)
#define TAG_VIEW DCM_TAG(0x0008, 0x0053)
#define TAG_TZ DCM_TAG(0x0008, 0x0201)

struct dcm_query {
    struct dcm_arena *arena; /* the top query's; items share it */
    enum dcm_qr_model model;
    enum dcm_qr_op op;
    enum dcm_qr_level level; /* 0 for the keys of a sequence item */
    enum dcm_charset cs;
    bool has_cs;
    bool combined;
    bool has_tz;
    struct slice tz;
    size_t nkeys;
    struct dcm_qkey *keys;
};

/* The top query with its arena: one free releases everything. */
struct query_top {
    struct dcm_query q;
    struct dcm_arena arena;
};

struct qparse {
    struct dcm_arena *arena;
    const struct dcm_query_opts *opts;
    struct dcm_query_error *err;
    enum dcm_charset cs;
    size_t nkeys; /* all keys so far, for max_keys */
};

static int fail(struct qparse *qp, int rc, enum dcm_qerr reason, uint32_t tag, const char *comment)
{
    qp->err->reason = reason;
    qp->err->tag = tag;
    qp->err->comment = comment;
    return rc;
}

static int nomem(struct qparse *qp)
{
    int rc = qp->arena->err ? qp->arena->err : ERR_NOMEM;
    if (rc == ERR_LIMIT)
        return fail(qp, rc, DCM_QERR_LIMIT, 0, "query too large");
    return fail(qp, rc, DCM_QERR_NONE, 0, "out of memory");
}

const char *dcm_query_level_name(enum dcm_qr_level level)
{
    switch (level) {
    case DCM_QL_PATIENT:
        return "PATIENT";
    case DCM_QL_STUDY:
        return "STUDY";
    case DCM_QL_SERIES:
        return "SERIES";
    case DCM_QL_IMAGE:
        return "IMAGE";
    default:
        return "";
    }
}

uint32_t dcm_query_unique_tag(enum dcm_qr_level level)
{
    switch (level) {
    case DCM_QL_PATIENT:
        return DCM_TAG(0x0010, 0x0020);
    case DCM_QL_STUDY:
        return DCM_TAG(0x0020, 0x000D);
    case DCM_QL_SERIES:
        return DCM_TAG(0x0020, 0x000E);
    case DCM_QL_IMAGE:
        return DCM_TAG(0x0008, 0x0018);
    default:
        return 0;
    }
}

/* Level and key type of tag in the model; unknown attributes are optional keys of the level. */
static void classify(enum dcm_qr_model model, enum dcm_qr_level qlevel, uint32_t tag,
                     uint8_t *level, uint8_t *role)
{
    const struct dcm_dict_entry *d = dcm_dict_find(tag);
    *level = (uint8_t)qlevel;
    *role = DCM_DK_OPTIONAL;
    if (!d || d->key == DCM_DK_NONE)
        return;
    if (d->key == DCM_DK_RETURN) {
        *role = DCM_DK_RETURN;
        return;
    }
    *level = d->level;
    *role = d->key;
    if (model == DCM_QR_STUDY_ROOT && d->level == DCM_DL_PATIENT) {
        *level = DCM_QL_STUDY; /* C.3.2: patient attributes are study attributes */
        if (*role == DCM_DK_UNIQUE)
            *role = DCM_DK_REQUIRED; /* Patient ID is R in Table C.6-5 */
    }
}

static bool wildcard_vr(uint16_t vr)
{
    switch (vr) {
    case DCM_VR_AE:
    case DCM_VR_CS:
    case DCM_VR_LO:
    case DCM_VR_LT:
    case DCM_VR_PN:
    case DCM_VR_SH:
    case DCM_VR_ST:
    case DCM_VR_UC:
    case DCM_VR_UR:
    case DCM_VR_UT:
        return true;
    default:
        return false;
    }
}

static bool date_vr(uint16_t vr)
{
    return vr == DCM_VR_DA || vr == DCM_VR_TM || vr == DCM_VR_DT;
}

/* Classify and check one value of a text key. */
static int text_value(uint16_t vr, struct dcm_qvalue *v)
{
    struct slice s = v->text;
    v->type = DCM_MT_SINGLE;
    if (date_vr(vr)) {
        const uint8_t *dash = memchr(s.p, '-', s.len);
        if (!dash)
            return dcm_dt_span(vr, s.p, s.len, &v->span);
        size_t at = (size_t)(dash - s.p);
        if (memchr(dash + 1, '-', s.len - at - 1))
            return ERR_MALFORMED; /* one '-' only (C.2.2.2.1.3 note 3) */
        v->type = DCM_MT_RANGE;
        v->lo = (struct slice){s.p, at};
        v->hi = (struct slice){dash + 1, s.len - at - 1};
        if (v->lo.len == 0 && v->hi.len == 0)
            return ERR_MALFORMED;
        struct dcm_span a = {INT64_MIN, INT64_MIN}, b = {INT64_MAX, INT64_MAX};
        if (v->lo.len > 0)
            TRY(dcm_dt_span(vr, v->lo.p, v->lo.len, &a));
        if (v->hi.len > 0)
            TRY(dcm_dt_span(vr, v->hi.p, v->hi.len, &b));
        v->span.lo = a.lo;
        v->span.hi = b.hi;
        /* "<date1> - <date2>, where <date1> is less or equal to <date2>" (C.2.2.2.5); for TM
         * this also refuses a range across midnight (C.2.2.2.5.2) */
        return v->span.lo <= v->span.hi ? 0 : ERR_MALFORMED;
    }
    if (wildcard_vr(vr)) {
        if (memchr(s.p, '*', s.len) || memchr(s.p, '?', s.len))
            v->type = DCM_MT_WILDCARD;
        return 0;
    }
    switch (vr) {
    case DCM_VR_UI:
        return dcm_uid_valid(s.p, s.len) ? 0 : ERR_MALFORMED;
    case DCM_VR_AS:
    case DCM_VR_DS:
    case DCM_VR_IS:
        return dcm_vr_check(vr, s.p, s.len, false);
    default:
        return 0;
    }
}

/* The value(s) of e into k: decode text to UTF-8, split, strip, classify. */
static int key_values(struct qparse *qp, const struct dcm_elem *e, struct dcm_qkey *k)
{
    const struct dcm_vr_info *vi = dcm_vr_info(k->vr);
    struct slice raw = dcm_elem_raw(e);
    const uint8_t *p = raw.p;
    size_t n = raw.len;
    bool text = vi->kind == DCM_VK_TEXT || vi->kind == DCM_VK_TEXT1;
    if (!text) {
        p = dcm_arena_dup(qp->arena, raw.p, n); /* the query outlives the identifier */
        if (!p)
            return nomem(qp);
    } else {
        dcm_vr_strip(k->vr, &p, &n);
        struct wbuf w;
        wbuf_init(&w, n * 2 + 16); /* Latin-1 grows to at most 2 bytes a character */
        int rc = dcm_charset_to_utf8(vi->charset ? qp->cs : DCM_CS_DEFAULT, p, n, &w);
        if (rc == 0) {
            uint8_t *copy = dcm_arena_dup(qp->arena, w.p, w.len);
            n = w.len;
            p = copy;
            if (!copy)
                rc = ERR_NOMEM;
        }
        wbuf_cleanup(&w);
        if (rc == ERR_NOMEM)
            return nomem(qp);
        if (rc == ERR_UNSUPPORTED)
            return fail(qp, rc, DCM_QERR_CHARSET, k->tag, "code extension in a value");
        if (rc < 0)
            return fail(qp, ERR_MALFORMED, DCM_QERR_BAD_VALUE, k->tag,
                        "value not valid in its character set");
    }
    if (vi->kind == DCM_VK_BIN && n % vi->unit != 0)
        return fail(qp, ERR_MALFORMED, DCM_QERR_BAD_VALUE, k->tag, "binary value length");
    size_t nv = 0;
    if (n > 0)
        nv = vi->kind == DCM_VK_TEXT ? 1 : vi->kind == DCM_VK_BIN ? n / vi->unit : 1;
    if (vi->kind == DCM_VK_TEXT) {
        for (size_t i = 0; i < n; i++)
            nv += p[i] == '\\';
    }
    struct dcm_qvalue *vals = dcm_arena_alloc(qp->arena, nv * sizeof(*vals));
    if (!vals)
        return nomem(qp);
    size_t start = 0, j = 0, nonempty = 0;
    bool star = false;
    for (size_t i = 0; j < nv; i++) {
        bool end = vi->kind == DCM_VK_BIN ? (i + 1 - start == vi->unit)
                   : vi->kind == DCM_VK_TEXT ? (i == n || p[i] == '\\')
                                             : i == n;
        if (!end)
            continue;
        size_t stop = vi->kind == DCM_VK_BIN ? i + 1 : i;
        const uint8_t *vp = p + start;
        size_t vn = stop - start;
        if (text)
            dcm_vr_strip(k->vr, &vp, &vn);
        vals[j].text = (struct slice){vp, vn};
        if (vn > 0) {
            if (text && text_value(k->vr, &vals[j]) < 0)
                return fail(qp, ERR_MALFORMED, DCM_QERR_BAD_VALUE, k->tag,
                            "key value not valid for its VR");
            if (!text)
                vals[j].type = DCM_MT_SINGLE;
            star |= vals[j].type == DCM_MT_WILDCARD && vn == 1 && vp[0] == '*';
            nonempty++;
        }
        j++;
        start = i + 1;
    }
    k->values = vals;
    k->nvalues = nv;
    if (nonempty == 0 || star) {
        k->type = DCM_MT_UNIVERSAL; /* empty, or "*" (C.2.2.2.4 note 1) */
        k->nvalues = 0;
    } else if (nv == 1) {
        k->type = vals[0].type;
    } else {
        k->type = k->vr == DCM_VR_UI ? DCM_MT_UID_LIST : DCM_MT_MULTI;
    }
    if (k->type == DCM_MT_UID_LIST || k->type == DCM_MT_MULTI) {
        /* an empty value in a list matches nothing; drop it */
        size_t w = 0;
        for (size_t i = 0; i < nv; i++) {
            if (vals[i].text.len > 0)
                vals[w++] = vals[i];
        }
        k->nvalues = w;
        if (w == 1)
            k->type = vals[0].type;
    }
    return 0;
}

static int parse_keys(struct qparse *qp, const struct dcm_item *it, struct dcm_query *q);

static int key_of(struct qparse *qp, const struct dcm_elem *e, struct dcm_query *q,
                  struct dcm_qkey *k)
{
    k->tag = dcm_elem_tag(e);
    k->vr = dcm_elem_vr(e);
    const struct dcm_dict_entry *d = dcm_dict_find(k->tag);
    if (d && k->vr != d->vr) {
        /* PS3.5 6.2: a standard attribute has its dictionary VR; UN (an intermediary that did
         * not know it) carries the same bytes, so read it as the dictionary says */
        if (k->vr != DCM_VR_UN || d->vr == DCM_VR_SQ)
            return fail(qp, ERR_MALFORMED, DCM_QERR_BAD_VALUE, k->tag,
                        "VR does not match the data dictionary");
        k->vr = d->vr;
    } else if (dcm_dict_seq_conflict(k->tag, dcm_elem_is_seq(e))) {
        return fail(qp, ERR_MALFORMED, DCM_QERR_BAD_VALUE, k->tag,
                    "sequence where the dictionary has a value");
    }
    if (q->level)
        classify(q->model, q->level, k->tag, &k->level, &k->role);
    else
        k->role = DCM_DK_OPTIONAL;
    if (++qp->nkeys > qp->opts->max_keys)
        return fail(qp, ERR_LIMIT, DCM_QERR_LIMIT, k->tag, "too many keys");
    if (!dcm_elem_is_seq(e)) {
        TRY(key_values(qp, e, k));
    } else if (dcm_elem_nitems(e) > 1) {
        return fail(qp, ERR_MALFORMED, DCM_QERR_SEQ, k->tag, "sequence key with several items");
    } else if (dcm_elem_nitems(e) == 0 || dcm_item_count(dcm_elem_first_item(e)) == 0) {
        k->type = DCM_MT_UNIVERSAL; /* C.2.2.2.6: no item key: the whole sequence is returned */
    } else {
        struct dcm_query *sub = dcm_arena_alloc(qp->arena, sizeof(*sub));
        if (!sub)
            return nomem(qp);
        sub->arena = qp->arena;
        sub->model = q->model;
        sub->op = q->op;
        sub->cs = q->cs;
        TRY(parse_keys(qp, dcm_elem_first_item(e), sub));
        k->type = sub->nkeys > 0 ? DCM_MT_SEQUENCE : DCM_MT_UNIVERSAL;
        k->item = sub;
    }
    if (k->role == DCM_DK_RETURN) {
        k->type = DCM_MT_UNIVERSAL; /* returned, never matched */
        k->nvalues = 0;
    }
    return 0;
}

/* Every key of it into q->keys (ascending, as it is). Control and private attributes skipped. */
static int parse_keys(struct qparse *qp, const struct dcm_item *it, struct dcm_query *q)
{
    q->keys = dcm_arena_alloc(qp->arena, dcm_item_count(it) * sizeof(*q->keys));
    if (!q->keys)
        return nomem(qp);
    for (const struct dcm_elem *e = dcm_item_first(it); e; e = dcm_elem_next(e)) {
        uint32_t tag = dcm_elem_tag(e);
        const struct dcm_dict_entry *d = dcm_dict_find(tag);
        if (DCM_TAG_GROUP(tag) & 1)
            continue; /* private (C.4.1.1.3.2 note 4) */
        if (DCM_TAG_ELEM(tag) == 0)
            continue; /* group length: not an attribute */
        if (d && d->key == DCM_DK_CONTROL)
            continue; /* read by the caller at the top; meaningless inside an item */
        TRY(key_of(qp, e, q, &q->keys[q->nkeys]));
        q->nkeys++;
    }
    return 0;
}

static struct dcm_qkey *find_key(const struct dcm_query *q, uint32_t tag)
{
    for (size_t i = 0; i < q->nkeys; i++) {
        if (q->keys[i].tag == tag)
            return &q->keys[i];
    }
    return NULL;
}

static int read_level(struct qparse *qp, const struct dcm_item *root, enum dcm_qr_level *out)
{
    struct slice s;
    const struct dcm_elem *e = dcm_item_find(root, TAG_LEVEL);
    if (!e || dcm_elem_vm(e) == 0 || dcm_elem_str(e, 0, &s) < 0)
        return fail(qp, ERR_MALFORMED, DCM_QERR_NO_LEVEL, TAG_LEVEL, "no Query/Retrieve Level");
    static const enum dcm_qr_level levels[] = {DCM_QL_PATIENT, DCM_QL_STUDY, DCM_QL_SERIES,
                                               DCM_QL_IMAGE};
    for (size_t i = 0; i < ARRAY_LEN(levels); i++) {
        if (dcm_elem_vm(e) == 1 && slice_eq_str(s, dcm_query_level_name(levels[i])) &&
            !(levels[i] == DCM_QL_PATIENT && qp->opts->model == DCM_QR_STUDY_ROOT)) {
            *out = levels[i];
            return 0;
        }
    }
    return fail(qp, ERR_MALFORMED, DCM_QERR_BAD_LEVEL, TAG_LEVEL,
                "Query/Retrieve Level not valid for this information model");
}

/* The hierarchical rules of C.4.1.2.1 (C-FIND) and C.4.2.2.1 / C.4.3.2.1 (retrieve). */
static int check_hierarchy(struct qparse *qp, struct dcm_query *q)
{
    enum dcm_qr_level top = q->model == DCM_QR_STUDY_ROOT ? DCM_QL_STUDY : DCM_QL_PATIENT;
    for (unsigned l = top; l < q->level; l++) {
        uint32_t ut = dcm_query_unique_tag((enum dcm_qr_level)l);
        const struct dcm_qkey *u = find_key(q, ut);
        if (!u || u->type != DCM_MT_SINGLE)
            return fail(qp, ERR_UNSUPPORTED, DCM_QERR_RELATIONAL, ut,
                        "relational request: an upper level needs a single unique key value");
    }
    uint32_t own = dcm_query_unique_tag(q->level);
    if (q->op == DCM_QOP_RETRIEVE) {
        const struct dcm_qkey *u = find_key(q, own);
        if (!u || u->type == DCM_MT_UNIVERSAL)
            return fail(qp, ERR_MALFORMED, DCM_QERR_MISSING_UNIQUE, own,
                        "no unique key value at the retrieve level");
        bool ok = u->type == DCM_MT_SINGLE ||
                  (u->type == DCM_MT_UID_LIST && q->level != DCM_QL_PATIENT);
        if (!ok)
            return fail(qp, ERR_MALFORMED, DCM_QERR_BAD_VALUE, own,
                        "retrieve needs one unique key value or a list of UIDs");
        /* keep the unique keys only (C.4.2.1.4.1): others are ignored */
        size_t w = 0;
        for (size_t i = 0; i < q->nkeys; i++) {
            if (q->keys[i].role == DCM_DK_UNIQUE && q->keys[i].level <= q->level)
                q->keys[w++] = q->keys[i];
        }
        q->nkeys = w;
        return 0;
    }
    for (size_t i = 0; i < q->nkeys; i++) {
        const struct dcm_qkey *k = &q->keys[i];
        if (k->type == DCM_MT_UNIVERSAL || k->role == DCM_DK_RETURN)
            continue;
        if (k->level < q->level && k->role != DCM_DK_UNIQUE)
            return fail(qp, ERR_UNSUPPORTED, DCM_QERR_RELATIONAL, k->tag,
                        "relational query: matching on an upper-level key");
        if (k->level > q->level)
            return fail(qp, ERR_MALFORMED, DCM_QERR_KEY_LEVEL, k->tag,
                        "matching key below the Query/Retrieve Level");
    }
    return 0;
}

/* C.2.2.2.5.4: a DA range and its TM range of the same form become one DT range on the DA key. */
static void combine_datetime(struct dcm_query *q)
{
    static const uint16_t pairs[][2] = {
        {0x0008, 0x0020}, {0x0008, 0x0030}, /* Study */
        {0x0008, 0x0021}, {0x0008, 0x0031}, /* Series */
        {0x0008, 0x0022}, {0x0008, 0x0032}, /* Acquisition */
        {0x0008, 0x0023}, {0x0008, 0x0033}, /* Content */
        {0x0008, 0x0012}, {0x0008, 0x0013}, /* Instance Creation */
        {0x0010, 0x0030}, {0x0010, 0x0032}, /* Patient's Birth */
        {0x0040, 0x0244}, {0x0040, 0x0245}, /* Performed Procedure Step Start */
    };
    for (size_t i = 0; i + 1 < ARRAY_LEN(pairs); i += 2) {
        struct dcm_qkey *da = find_key(q, DCM_TAG(pairs[i][0], pairs[i][1]));
        struct dcm_qkey *tm = find_key(q, DCM_TAG(pairs[i + 1][0], pairs[i + 1][1]));
        if (!da || !tm || da->type != DCM_MT_RANGE || tm->type != DCM_MT_RANGE ||
            da->vr != DCM_VR_DA || tm->vr != DCM_VR_TM)
            continue;
        const struct dcm_qvalue *dv = da->values;
        const struct dcm_qvalue *tv = tm->values;
        if ((dv->lo.len == 0) != (tv->lo.len == 0) || (dv->hi.len == 0) != (tv->hi.len == 0))
            continue; /* not the same form */
        struct dcm_span d1, d2, t1, t2;
        da->combined = dv->span;
        if (dv->lo.len > 0) {
            if (dcm_da_parse(dv->lo.p, dv->lo.len, &d1) < 0 ||
                dcm_tm_parse(tv->lo.p, tv->lo.len, &t1) < 0)
                continue; /* cannot happen: both were parsed */
            da->combined.lo = d1.lo + t1.lo;
        }
        if (dv->hi.len > 0) {
            if (dcm_da_parse(dv->hi.p, dv->hi.len, &d2) < 0 ||
                dcm_tm_parse(tv->hi.p, tv->hi.len, &t2) < 0)
                continue;
            da->combined.hi = d2.lo + t2.hi;
        }
        da->partner = tm->tag;
        tm->partner = da->tag;
    }
}

int dcm_query_parse(const struct dcm_ds *ident, const struct dcm_query_opts *opts,
                    struct dcm_query **out, struct dcm_query_error *err)
{
    *out = NULL;
    err->reason = DCM_QERR_NONE;
    err->tag = 0;
    err->comment = "";
    struct dcm_query_opts o = *opts;
    if (o.max_keys == 0)
        o.max_keys = 1024;
    if (o.max_bytes == 0)
        o.max_bytes = 4u << 20;
    struct query_top *top = calloc(1, sizeof(*top));
    if (!top)
        return ERR_NOMEM;
    dcm_arena_init(&top->arena, o.max_bytes);
    struct dcm_query *q = &top->q;
    q->arena = &top->arena;
    q->model = o.model;
    q->op = o.op;
    q->combined = o.combined_datetime;
    struct qparse qp = {q->arena, &o, err, DCM_CS_DEFAULT, 0};
    const struct dcm_item *root = dcm_ds_root(ident);
    int rc = read_level(&qp, root, &q->level);
    if (rc == 0 && dcm_item_find(root, TAG_VIEW))
        rc = fail(&qp, ERR_MALFORMED, DCM_QERR_VIEW, TAG_VIEW,
                  "Query/Retrieve View not negotiated");
    if (rc == 0) {
        q->has_cs = dcm_item_find(root, TAG_CHARSET) != NULL;
        if (dcm_charset_of(root, &q->cs) < 0)
            rc = fail(&qp, ERR_UNSUPPORTED, DCM_QERR_CHARSET, TAG_CHARSET,
                      "Specific Character Set not supported");
        qp.cs = q->cs;
    }
    if (rc == 0 && dcm_item_str(root, TAG_TZ, &q->tz) == 0) {
        q->has_tz = true;
        q->tz.p = dcm_arena_dup(q->arena, q->tz.p, q->tz.len);
        if (!q->tz.p)
            rc = nomem(&qp);
    }
    if (rc == 0)
        rc = parse_keys(&qp, root, q);
    if (rc == 0)
        rc = check_hierarchy(&qp, q);
    if (rc < 0) {
        dcm_query_free(q);
        return rc;
    }
    if (q->combined && q->op == DCM_QOP_FIND)
        combine_datetime(q);
    *out = q;
    return 0;
}

void dcm_query_free(struct dcm_query *q)
{
    if (!q)
        return;
    struct query_top *top = (struct query_top *)q; /* only the top query is ever handed out */
    dcm_arena_cleanup(&top->arena);
    free(top);
}

enum dcm_qr_level dcm_query_level(const struct dcm_query *q)
{
    return q->level;
}

enum dcm_qr_model dcm_query_model(const struct dcm_query *q)
{
    return q->model;
}

bool dcm_query_combined_datetime(const struct dcm_query *q)
{
    return q->combined;
}

enum dcm_charset dcm_query_charset(const struct dcm_query *q)
{
    return q->cs;
}

bool dcm_query_has_charset(const struct dcm_query *q)
{
    return q->has_cs;
}

bool dcm_query_timezone(const struct dcm_query *q, struct slice *out)
{
    if (q->has_tz)
        *out = q->tz;
    return q->has_tz;
}

size_t dcm_query_nkeys(const struct dcm_query *q)
{
    return q->nkeys;
}

const struct dcm_qkey *dcm_query_key(const struct dcm_query *q, size_t i)
{
    return i < q->nkeys ? &q->keys[i] : NULL;
}

const struct dcm_qkey *dcm_query_find(const struct dcm_query *q, uint32_t tag)
{
    return find_key(q, tag);
}
