/* dcm_match: PS3.4 C.2.2.2 matching and C.4.1.1.3.2 response identifiers (see dcm_match.h). */
#include "dcm_match.h"

#include <string.h>

#include "wbuf.h"

#define TAG_CHARSET DCM_TAG(0x0008, 0x0005)
#define TAG_LEVEL DCM_TAG(0x0008, 0x0052)
#define TAG_RETRIEVE_AE DCM_TAG(0x0008, 0x0054)
#define TAG_TZ DCM_TAG(0x0008, 0x0201)
#define VALUE_MAX (64u << 20) /* scratch cap for one converted value */

static bool match_keys(const struct dcm_query *q, const struct dcm_item *cand,
                       const struct dcm_match_opts *o);

static bool is_text(uint16_t vr)
{
    const struct dcm_vr_info *vi = dcm_vr_info(vr);
    return vi && (vi->kind == DCM_VK_TEXT || vi->kind == DCM_VK_TEXT1);
}

static bool uses_charset(uint16_t vr)
{
    const struct dcm_vr_info *vi = dcm_vr_info(vr);
    return vi && vi->charset;
}

static uint32_t fold(uint32_t c, bool icase)
{
    return icase && c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Key text (UTF-8) against candidate text (in cs), character by character. */
static bool text_eq(struct slice k, struct slice c, enum dcm_charset cs, bool icase)
{
    size_t i = 0, j = 0;
    while (i < k.len && j < c.len) {
        uint32_t a, b;
        if (dcm_charset_next(DCM_CS_UTF8, k.p, k.len, &i, &a) < 0 ||
            dcm_charset_next(cs, c.p, c.len, &j, &b) < 0)
            return false;
        if (fold(a, icase) != fold(b, icase))
            return false;
    }
    return i == k.len && j == c.len;
}

/* Wild card match (C.2.2.2.4) of pattern k (UTF-8) against c (in cs): the usual greedy scan
 * that backtracks to the last '*', on characters. */
static bool wild_eq(struct slice k, struct slice c, enum dcm_charset cs, bool icase)
{
    if (k.len > DCM_MATCH_PATTERN_MAX)
        return false;
    size_t pi = 0, ti = 0, star_p = SIZE_MAX, star_t = 0;
    while (ti < c.len) {
        if (pi < k.len && k.p[pi] == '*') {
            star_p = ++pi;
            star_t = ti;
            continue;
        }
        if (pi < k.len) {
            size_t np = pi, nt = ti;
            uint32_t a, b;
            if (dcm_charset_next(DCM_CS_UTF8, k.p, k.len, &np, &a) < 0 ||
                dcm_charset_next(cs, c.p, c.len, &nt, &b) < 0)
                return false;
            if (a == '?' || fold(a, icase) == fold(b, icase)) {
                pi = np;
                ti = nt;
                continue;
            }
        }
        if (star_p == SIZE_MAX)
            return false;
        uint32_t skip;
        if (dcm_charset_next(cs, c.p, c.len, &star_t, &skip) < 0)
            return false;
        pi = star_p;
        ti = star_t;
    }
    while (pi < k.len && k.p[pi] == '*')
        pi++;
    return pi == k.len;
}

static bool overlap(struct dcm_span a, struct dcm_span b)
{
    return a.lo <= b.hi && b.lo <= a.hi;
}

/* One key value against one candidate value (text stripped, or raw bytes for other VRs). */
static bool value_eq(const struct dcm_qkey *k, const struct dcm_qvalue *v, struct slice c,
                     const struct dcm_match_opts *o)
{
    enum dcm_charset cs = uses_charset(k->vr) ? o->cand_cs : DCM_CS_DEFAULT;
    bool icase = k->vr == DCM_VR_PN && (o->flags & DCM_MATCH_PN_ICASE);
    if (k->vr == DCM_VR_DA || k->vr == DCM_VR_TM || k->vr == DCM_VR_DT) {
        struct dcm_span cspan;
        return dcm_dt_span(k->vr, c.p, c.len, &cspan) == 0 && overlap(cspan, v->span);
    }
    switch (v->type) {
    case DCM_MT_WILDCARD:
        return wild_eq(v->text, c, cs, icase);
    case DCM_MT_SINGLE:
        if (!is_text(k->vr))
            return v->text.len == c.len && memcmp(v->text.p, c.p, c.len) == 0;
        return text_eq(v->text, c, cs, icase);
    default:
        return false;
    }
}

/* Value idx of a candidate's raw text read as VR vr (the key's: the candidate may say UN),
 * padding stripped; false past the last value. */
static bool cand_text(uint16_t vr, struct slice raw, size_t idx, struct slice *out)
{
    const struct dcm_vr_info *vi = dcm_vr_info(vr);
    size_t start = 0, k = 0;
    for (size_t i = 0; i <= raw.len; i++) {
        if (i < raw.len && (vi->kind != DCM_VK_TEXT || raw.p[i] != '\\'))
            continue;
        if (k++ == idx) {
            const uint8_t *p = raw.p + start;
            size_t n = i - start;
            dcm_vr_strip(vr, &p, &n);
            *out = (struct slice){p, n};
            return true;
        }
        start = i + 1;
    }
    return false;
}

/* The candidate's values of e one by one (C.2.2.3: any may match): text values as the key's VR
 * reads them, else the whole raw value. */
static bool any_value(const struct dcm_qkey *k, const struct dcm_elem *e,
                      const struct dcm_match_opts *o)
{
    struct slice raw = dcm_elem_raw(e), c;
    for (size_t j = 0;; j++) {
        if (!is_text(k->vr)) {
            if (j > 0)
                return false;
            c = raw;
        } else if (!cand_text(k->vr, raw, j, &c)) {
            return false;
        }
        for (size_t i = 0; i < k->nvalues; i++) {
            if (value_eq(k, &k->values[i], c, o))
                return true;
        }
    }
}

static bool combined_eq(const struct dcm_qkey *k, const struct dcm_elem *da,
                        const struct dcm_item *cand)
{
    struct dcm_span day, tm;
    struct slice s;
    const struct dcm_elem *t = dcm_item_find(cand, k->partner);
    for (size_t j = 0; cand_text(DCM_VR_DA, dcm_elem_raw(da), j, &s); j++) {
        if (dcm_da_parse(s.p, s.len, &day) < 0)
            continue;
        struct dcm_span c = day;
        if (t && !dcm_elem_is_seq(t) && cand_text(DCM_VR_TM, dcm_elem_raw(t), 0, &s) &&
            dcm_tm_parse(s.p, s.len, &tm) == 0) {
            c.lo = day.lo + tm.lo;
            c.hi = day.lo + tm.hi;
        }
        if (overlap(c, k->combined))
            return true;
    }
    return false;
}

/* True when no key of q (recursively) asks for matching: only return keys. */
static bool only_return_keys(const struct dcm_query *q)
{
    for (size_t i = 0; i < dcm_query_nkeys(q); i++) {
        const struct dcm_qkey *k = dcm_query_key(q, i);
        if (k->type == DCM_MT_SEQUENCE ? !only_return_keys(k->item)
                                       : k->type != DCM_MT_UNIVERSAL)
            return false;
    }
    return true;
}

static bool key_matches(const struct dcm_qkey *k, const struct dcm_item *cand,
                        const struct dcm_match_opts *o)
{
    if (k->type == DCM_MT_UNIVERSAL || k->role == DCM_DK_RETURN)
        return true;
    if (k->partner && k->vr == DCM_VR_TM)
        return true; /* matched through its DA key */
    bool unknown = (o->flags & DCM_MATCH_UNKNOWN_MATCHES) != 0;
    const struct dcm_elem *e = dcm_item_find(cand, k->tag);
    if (k->type == DCM_MT_SEQUENCE) {
        if (only_return_keys(k->item))
            return true; /* item keys that only ask to be returned filter nothing */
        if (!e || !dcm_elem_is_seq(e) || dcm_elem_nitems(e) == 0)
            return unknown;
        for (const struct dcm_item *it = dcm_elem_first_item(e); it; it = dcm_item_next(it)) {
            if (match_keys(k->item, it, o))
                return true;
        }
        return false;
    }
    if (!e || dcm_elem_is_seq(e) || dcm_elem_vm(e) == 0)
        return unknown;
    if (k->partner)
        return combined_eq(k, e, cand);
    return any_value(k, e, o);
}

static bool match_keys(const struct dcm_query *q, const struct dcm_item *cand,
                       const struct dcm_match_opts *o)
{
    for (size_t i = 0; i < dcm_query_nkeys(q); i++) {
        if (!key_matches(dcm_query_key(q, i), cand, o))
            return false;
    }
    return true;
}

bool dcm_match(const struct dcm_query *q, const struct dcm_item *cand,
               const struct dcm_match_opts *o)
{
    return match_keys(q, cand, o);
}

/* ---- the response identifier ---- */

struct rbuild {
    const struct dcm_query *top;
    const struct dcm_match_opts *o;
    enum dcm_charset out_cs;
    struct dcm_ds *ds;
};

/* Add text (in cs) re-encoded in the response's set; other VRs as they are. */
static int put_value(struct rbuild *rb, struct dcm_item *it, uint32_t tag, uint16_t vr,
                     struct slice v, enum dcm_charset cs)
{
    if (!uses_charset(vr) || cs == rb->out_cs)
        return dcm_ds_add_raw(rb->ds, it, tag, vr, v.p, v.len);
    const uint8_t *p = v.p;
    size_t n = v.len;
    dcm_vr_strip(vr, &p, &n);
    struct wbuf u, w;
    wbuf_init(&u, VALUE_MAX);
    wbuf_init(&w, VALUE_MAX);
    int rc = dcm_charset_to_utf8(cs, p, n, &u);
    if (rc == ERR_UNSUPPORTED)
        rc = ERR_MALFORMED; /* an escape in the candidate: not text we can carry */
    if (rc == 0)
        rc = dcm_charset_from_utf8(rb->out_cs, u.p, u.len, &w); /* ERR_UNSUPPORTED: retry */
    if (rc == 0)
        rc = dcm_ds_add_raw(rb->ds, it, tag, vr, w.p, w.len);
    wbuf_cleanup(&u);
    wbuf_cleanup(&w);
    return rc;
}

/* Copy a candidate element, as vr (0: its own). Inside a copied sequence, an element that
 * Implicit VR could not carry (dcm_dict_seq_conflict) is left out, so that the response always
 * encodes in both syntaxes; its own vr is kept. */
static int copy_elem(struct rbuild *rb, struct dcm_item *it, const struct dcm_elem *e,
                     uint16_t vr)
{
    if (!dcm_elem_is_seq(e))
        return put_value(rb, it, dcm_elem_tag(e), vr ? vr : dcm_elem_vr(e), dcm_elem_raw(e),
                         rb->o->cand_cs);
    struct dcm_elem *seq = NULL;
    TRY(dcm_ds_add_seq(rb->ds, it, dcm_elem_tag(e), &seq));
    for (const struct dcm_item *si = dcm_elem_first_item(e); si; si = dcm_item_next(si)) {
        struct dcm_item *di = NULL;
        TRY(dcm_ds_add_item(rb->ds, seq, &di));
        for (const struct dcm_elem *x = dcm_item_first(si); x; x = dcm_elem_next(x)) {
            if (!dcm_dict_seq_conflict(dcm_elem_tag(x), dcm_elem_is_seq(x)))
                TRY(copy_elem(rb, di, x, 0));
        }
    }
    return 0;
}

static int put_keys(struct rbuild *rb, const struct dcm_query *q, struct dcm_item *it,
                    const struct dcm_item *cand);

static int put_key(struct rbuild *rb, const struct dcm_query *q, const struct dcm_qkey *k,
                   struct dcm_item *it, const struct dcm_item *cand)
{
    const struct dcm_elem *e = cand ? dcm_item_find(cand, k->tag) : NULL;
    if (k->type == DCM_MT_SEQUENCE) {
        struct dcm_elem *seq = NULL;
        TRY(dcm_ds_add_seq(rb->ds, it, k->tag, &seq));
        if (!e || !dcm_elem_is_seq(e))
            return 0;
        for (const struct dcm_item *ci = dcm_elem_first_item(e); ci; ci = dcm_item_next(ci)) {
            if (!match_keys(k->item, ci, rb->o))
                continue;
            struct dcm_item *di = NULL;
            TRY(dcm_ds_add_item(rb->ds, seq, &di));
            TRY(put_keys(rb, k->item, di, ci)); /* only the requested item keys */
        }
        return 0;
    }
    if (e && dcm_elem_is_seq(e) != (k->vr == DCM_VR_SQ))
        e = NULL; /* not the shape the request asked for: as if absent */
    if (e) /* an UN value (an intermediary did not know it) goes out with the key's VR */
        return copy_elem(rb, it, e, dcm_elem_vr(e) == DCM_VR_UN ? k->vr : 0);
    if (q == rb->top && k->role == DCM_DK_UNIQUE && k->level < dcm_query_level(q) &&
        k->type == DCM_MT_SINGLE)
        return put_value(rb, it, k->tag, k->vr, k->values[0].text, DCM_CS_UTF8);
    if (k->vr == DCM_VR_SQ) {
        struct dcm_elem *seq = NULL;
        return dcm_ds_add_seq(rb->ds, it, k->tag, &seq);
    }
    return dcm_ds_add_raw(rb->ds, it, k->tag, k->vr, "", 0); /* C.4.1.1.3.2 note 2 */
}

static int put_keys(struct rbuild *rb, const struct dcm_query *q, struct dcm_item *it,
                    const struct dcm_item *cand)
{
    for (size_t i = 0; i < dcm_query_nkeys(q); i++) {
        const struct dcm_qkey *k = dcm_query_key(q, i);
        if (q == rb->top && k->tag == TAG_RETRIEVE_AE && rb->o->retrieve_ae)
            continue; /* ours replaces it */
        TRY(put_key(rb, q, k, it, cand));
    }
    return 0;
}

static int build(const struct dcm_query *q, const struct dcm_item *cand,
                 const struct dcm_match_opts *o, const struct dcm_limits *lim,
                 enum dcm_charset out_cs, struct dcm_ds **out)
{
    struct rbuild rb = {q, o, out_cs, dcm_ds_new(lim)};
    if (!rb.ds)
        return ERR_NOMEM;
    struct dcm_item *root = dcm_ds_root_mut(rb.ds);
    int rc = 0;
    if (out_cs != DCM_CS_DEFAULT)
        rc = dcm_ds_add_cstr(rb.ds, root, TAG_CHARSET, DCM_VR_CS, dcm_charset_term(out_cs));
    if (rc == 0)
        rc = dcm_ds_add_cstr(rb.ds, root, TAG_LEVEL, DCM_VR_CS,
                             dcm_query_level_name(dcm_query_level(q)));
    if (rc == 0 && o->retrieve_ae)
        rc = dcm_ds_add_cstr(rb.ds, root, TAG_RETRIEVE_AE, DCM_VR_AE, o->retrieve_ae);
    struct slice tz;
    const struct dcm_elem *ctz = dcm_item_find(cand, TAG_TZ);
    if (rc == 0 && dcm_query_timezone(q, &tz) && ctz && !dcm_elem_is_seq(ctz) &&
        dcm_elem_vm(ctz) > 0)
        rc = copy_elem(&rb, root, ctz, 0); /* never zero length (C.4.1.1.3.2) */
    if (rc == 0)
        rc = put_keys(&rb, q, root, cand);
    if (rc < 0) {
        dcm_ds_free(rb.ds);
        return rc;
    }
    *out = rb.ds;
    return 0;
}

int dcm_match_response(const struct dcm_query *q, const struct dcm_item *cand,
                       const struct dcm_match_opts *o, const struct dcm_limits *lim,
                       struct dcm_ds **out)
{
    *out = NULL;
    enum dcm_charset cs = dcm_query_charset(q);
    int rc = build(q, cand, o, lim, cs, out);
    if (rc == ERR_UNSUPPORTED && cs != DCM_CS_UTF8)
        rc = build(q, cand, o, lim, DCM_CS_UTF8, out); /* a value the request's set lacks */
    return rc;
}
