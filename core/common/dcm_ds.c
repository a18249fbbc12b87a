/* dcm_ds: the tree, its accessors and the builder. Parse and write are in dcm_ds_codec.c. */
#include "dcm_ds.h"

#include <stdlib.h>
#include <string.h>

#include "dcm_ds_int.h"

struct dcm_ds *dcm_ds_new(const struct dcm_limits *lim)
{
    static const struct dcm_limits def = DCM_LIMITS_DEFAULT;
    struct dcm_ds *ds = calloc(1, sizeof(*ds));
    if (!ds)
        return NULL;
    ds->lim = lim ? *lim : def;
    if (ds->lim.max_depth > DCM_MAX_DEPTH_HARD)
        ds->lim.max_depth = DCM_MAX_DEPTH_HARD;
    dcm_arena_init(&ds->arena, ds->lim.max_bytes);
    return ds;
}

void dcm_ds_free(struct dcm_ds *ds)
{
    if (!ds)
        return;
    dcm_arena_cleanup(&ds->arena);
    free(ds);
}

struct dcm_elem *dcm_ds_new_elem(struct dcm_ds *ds, uint32_t tag, uint16_t vr, int *err)
{
    if (ds->nelems >= ds->lim.max_elems) {
        *err = ERR_LIMIT;
        return NULL;
    }
    struct dcm_elem *e = dcm_arena_alloc(&ds->arena, sizeof(*e));
    if (!e) {
        *err = ds->arena.err;
        return NULL;
    }
    ds->nelems++;
    e->tag = tag;
    e->vr = vr;
    e->seq = vr == DCM_VR_SQ;
    return e;
}

int dcm_ds_link(struct dcm_item *it, struct dcm_elem *e)
{
    e->depth = it->depth;
    if (!it->last || it->last->tag < e->tag) { /* the parser's case: append */
        if (it->last)
            it->last->next = e;
        else
            it->first = e;
        it->last = e;
        it->n++;
        return 0;
    }
    struct dcm_elem **pp = &it->first;
    while ((*pp)->tag < e->tag)
        pp = &(*pp)->next;
    if ((*pp)->tag == e->tag)
        return ERR_MALFORMED;
    e->next = *pp;
    *pp = e;
    it->n++;
    return 0;
}

struct dcm_item *dcm_ds_new_item(struct dcm_ds *ds, struct dcm_elem *seq, int *err)
{
    /* items of a sequence in an item at depth d sit at depth d + 1 */
    if (seq->depth + 1 > ds->lim.max_depth) {
        *err = ERR_LIMIT;
        return NULL;
    }
    if (ds->nelems >= ds->lim.max_elems) {
        *err = ERR_LIMIT;
        return NULL;
    }
    struct dcm_item *it = dcm_arena_alloc(&ds->arena, sizeof(*it));
    if (!it) {
        *err = ds->arena.err;
        return NULL;
    }
    it->depth = seq->depth + 1;
    ds->nelems++;
    if (seq->items_tail)
        seq->items_tail->next = it;
    else
        seq->items = it;
    seq->items_tail = it;
    seq->nitems++;
    return it;
}

/* ---- reading ---- */

const struct dcm_item *dcm_ds_root(const struct dcm_ds *ds)
{
    return &ds->root;
}

struct dcm_item *dcm_ds_root_mut(struct dcm_ds *ds)
{
    return &ds->root;
}

const struct dcm_elem *dcm_item_first(const struct dcm_item *it)
{
    return it->first;
}

const struct dcm_elem *dcm_elem_next(const struct dcm_elem *e)
{
    return e->next;
}

size_t dcm_item_count(const struct dcm_item *it)
{
    return it->n;
}

const struct dcm_elem *dcm_item_find(const struct dcm_item *it, uint32_t tag)
{
    for (const struct dcm_elem *e = it->first; e && e->tag <= tag; e = e->next) {
        if (e->tag == tag)
            return e;
    }
    return NULL;
}

uint32_t dcm_elem_tag(const struct dcm_elem *e)
{
    return e->tag;
}

uint16_t dcm_elem_vr(const struct dcm_elem *e)
{
    return e->vr;
}

struct slice dcm_elem_raw(const struct dcm_elem *e)
{
    return e->val;
}

bool dcm_elem_is_seq(const struct dcm_elem *e)
{
    return e->seq;
}

size_t dcm_elem_nitems(const struct dcm_elem *e)
{
    return e->nitems;
}

const struct dcm_item *dcm_elem_first_item(const struct dcm_elem *e)
{
    return e->items;
}

const struct dcm_item *dcm_item_next(const struct dcm_item *it)
{
    return it->next;
}

static bool is_text(const struct dcm_vr_info *vi)
{
    return vi && (vi->kind == DCM_VK_TEXT || vi->kind == DCM_VK_TEXT1);
}

size_t dcm_elem_vm(const struct dcm_elem *e)
{
    if (e->seq)
        return e->nitems;
    const struct dcm_vr_info *vi = dcm_vr_info(e->vr);
    if (!vi)
        return 0;
    if (vi->kind == DCM_VK_BIN)
        return e->val.len / vi->unit;
    const uint8_t *p = e->val.p;
    size_t n = e->val.len;
    if (is_text(vi)) {
        /* an element holding only padding has no value */
        dcm_vr_strip(e->vr, &p, &n);
        if (n == 0)
            return 0;
        if (vi->kind == DCM_VK_TEXT1)
            return 1;
        size_t vm = 1;
        for (size_t i = 0; i < e->val.len; i++)
            vm += e->val.p[i] == '\\';
        return vm;
    }
    return n > 0;
}

int dcm_elem_str(const struct dcm_elem *e, size_t idx, struct slice *out)
{
    const struct dcm_vr_info *vi = dcm_vr_info(e->vr);
    if (e->seq || !is_text(vi))
        return ERR_MISMATCH;
    if (idx >= dcm_elem_vm(e))
        return ERR_NOTFOUND;
    const uint8_t *p = e->val.p;
    size_t n = e->val.len, start = 0, k = 0;
    if (vi->kind == DCM_VK_TEXT) {
        for (size_t i = 0; i <= e->val.len; i++) {
            if (i == e->val.len || e->val.p[i] == '\\') {
                if (k++ == idx) {
                    p = e->val.p + start;
                    n = i - start;
                    break;
                }
                start = i + 1;
            }
        }
    }
    dcm_vr_strip(e->vr, &p, &n);
    out->p = p;
    out->len = n;
    return 0;
}

int dcm_elem_cstr(const struct dcm_elem *e, size_t idx, char *buf, size_t cap)
{
    struct slice s;
    TRY(dcm_elem_str(e, idx, &s));
    if (s.len >= cap)
        return ERR_LIMIT;
    if (s.len > 0 && memchr(s.p, '\0', s.len))
        return ERR_MALFORMED;
    if (s.len > 0)
        memcpy(buf, s.p, s.len);
    buf[s.len] = '\0';
    return 0;
}

static int int_value(const struct dcm_elem *e, size_t idx, int64_t *sv, uint64_t *uv, bool *neg)
{
    if (e->seq)
        return ERR_MISMATCH;
    if (idx >= dcm_elem_vm(e))
        return ERR_NOTFOUND;
    *neg = false;
    if (e->vr == DCM_VR_IS) {
        struct slice s;
        TRY(dcm_elem_str(e, idx, &s));
        size_t i = 0;
        if (i < s.len && (s.p[i] == '+' || s.p[i] == '-'))
            *neg = s.p[i++] == '-';
        uint64_t v = 0;
        if (i == s.len || s.len - i > 10)
            return ERR_MALFORMED;
        for (; i < s.len; i++) {
            if (s.p[i] < '0' || s.p[i] > '9')
                return ERR_MALFORMED;
            v = v * 10 + (uint64_t)(s.p[i] - '0');
        }
        if (v > (*neg ? 2147483648u : 2147483647u))
            return ERR_MALFORMED;
        *uv = v;
        *sv = *neg ? -(int64_t)v : (int64_t)v;
        return 0;
    }
    const struct dcm_vr_info *vi = dcm_vr_info(e->vr);
    bool is_signed = e->vr == DCM_VR_SS || e->vr == DCM_VR_SL || e->vr == DCM_VR_SV;
    if (!is_signed && e->vr != DCM_VR_US && e->vr != DCM_VR_UL && e->vr != DCM_VR_UV)
        return ERR_MISMATCH;
    const uint8_t *b = e->val.p + idx * vi->unit;
    uint64_t v = 0;
    for (size_t i = vi->unit; i > 0; i--)
        v = v << 8 | b[i - 1];
    if (is_signed) {
        unsigned bits = 8u * vi->unit;
        if (bits < 64 && (v >> (bits - 1)) & 1)
            v |= ~(uint64_t)0 << bits; /* sign-extend */
        int64_t s;
        memcpy(&s, &v, sizeof(s));
        *sv = s;
        *neg = s < 0;
        *uv = v;
        return 0;
    }
    *uv = v;
    *sv = v > INT64_MAX ? INT64_MAX : (int64_t)v;
    return 0;
}

int dcm_elem_uint(const struct dcm_elem *e, size_t idx, uint64_t *out)
{
    int64_t s;
    uint64_t u;
    bool neg;
    TRY(int_value(e, idx, &s, &u, &neg));
    if (neg)
        return ERR_MISMATCH;
    *out = u;
    return 0;
}

int dcm_elem_int(const struct dcm_elem *e, size_t idx, int64_t *out)
{
    int64_t s;
    uint64_t u;
    bool neg;
    TRY(int_value(e, idx, &s, &u, &neg));
    if (!neg && u > INT64_MAX)
        return ERR_MISMATCH;
    *out = s;
    return 0;
}

int dcm_item_str(const struct dcm_item *it, uint32_t tag, struct slice *out)
{
    const struct dcm_elem *e = dcm_item_find(it, tag);
    if (!e)
        return ERR_NOTFOUND;
    if (!e->seq && dcm_elem_vm(e) == 0 && is_text(dcm_vr_info(e->vr))) {
        out->p = e->val.p;
        out->len = 0;
        return 0;
    }
    return dcm_elem_str(e, 0, out);
}

/* ---- building ---- */

static bool data_tag(uint32_t tag)
{
    uint16_t g = DCM_TAG_GROUP(tag);
    return g >= 0x0008 && g != 0xFFFE && g != 0xFFFF;
}

static int add_value(struct dcm_ds *ds, struct dcm_item *it, uint32_t tag, uint16_t vr,
                     const void *p, size_t n)
{
    int err = 0;
    if (!data_tag(tag))
        return ERR_MALFORMED;
    if (dcm_item_find(it, tag))
        return ERR_MALFORMED;
    const struct dcm_vr_info *vi = dcm_vr_info(vr);
    if (!vi || vi->kind == DCM_VK_SQ)
        return ERR_UNSUPPORTED;
    if (n % vi->unit != 0 || n > 0xFFFFFFFEu)
        return ERR_MALFORMED;
    uint8_t *copy = dcm_arena_dup(&ds->arena, p, n);
    if (!copy)
        return ds->arena.err;
    struct dcm_elem *e = dcm_ds_new_elem(ds, tag, vr, &err);
    if (!e)
        return err;
    e->val.p = copy;
    e->val.len = n;
    return dcm_ds_link(it, e);
}

int dcm_ds_add_raw(struct dcm_ds *ds, struct dcm_item *it, uint32_t tag, uint16_t vr,
                   const void *p, size_t n)
{
    return add_value(ds, it, tag, vr, p, n);
}

int dcm_ds_add_str(struct dcm_ds *ds, struct dcm_item *it, uint32_t tag, uint16_t vr,
                   const char *s, size_t n)
{
    const struct dcm_vr_info *vi = dcm_vr_info(vr);
    if (!vi || vi->kind == DCM_VK_SQ)
        return ERR_UNSUPPORTED;
    if (vi->kind != DCM_VK_TEXT && vi->kind != DCM_VK_TEXT1)
        return ERR_UNSUPPORTED;
    TRY(dcm_vr_check(vr, (const uint8_t *)s, n, ds->utf8));
    TRY(add_value(ds, it, tag, vr, s, n));
    if (it == &ds->root && tag == DCM_TAG(0x0008, 0x0005)) {
        /* PS3.5 6.1.2.5.3: ISO_IR 192 is used alone, so any mention means UTF-8 */
        static const char utf8[] = "ISO_IR 192";
        for (size_t i = 0; n >= sizeof(utf8) - 1 && i <= n - (sizeof(utf8) - 1); i++) {
            if (memcmp(s + i, utf8, sizeof(utf8) - 1) == 0)
                ds->utf8 = true;
        }
    }
    return 0;
}

int dcm_ds_add_cstr(struct dcm_ds *ds, struct dcm_item *it, uint32_t tag, uint16_t vr,
                    const char *s)
{
    return dcm_ds_add_str(ds, it, tag, vr, s, strlen(s)); /* our own strings only */
}

int dcm_ds_add_u16(struct dcm_ds *ds, struct dcm_item *it, uint32_t tag, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    return add_value(ds, it, tag, DCM_VR_US, b, 2);
}

int dcm_ds_add_u32(struct dcm_ds *ds, struct dcm_item *it, uint32_t tag, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return add_value(ds, it, tag, DCM_VR_UL, b, 4);
}

int dcm_ds_add_seq(struct dcm_ds *ds, struct dcm_item *it, uint32_t tag, struct dcm_elem **seq)
{
    int err = 0;
    if (!data_tag(tag) || dcm_item_find(it, tag))
        return ERR_MALFORMED;
    if (it->depth >= ds->lim.max_depth)
        return ERR_LIMIT;
    struct dcm_elem *e = dcm_ds_new_elem(ds, tag, DCM_VR_SQ, &err);
    if (!e)
        return err;
    TRY(dcm_ds_link(it, e));
    *seq = e;
    return 0;
}

int dcm_ds_add_item(struct dcm_ds *ds, struct dcm_elem *seq, struct dcm_item **item)
{
    int err = 0;
    if (!seq->seq)
        return ERR_MISMATCH;
    struct dcm_item *it = dcm_ds_new_item(ds, seq, &err);
    if (!it)
        return err;
    *item = it;
    return 0;
}

static int copy_into(struct dcm_ds *ds, struct dcm_item *it, const struct dcm_elem *src)
{
    if (!src->seq)
        return add_value(ds, it, src->tag, src->vr, src->val.p, src->val.len);
    struct dcm_elem *seq = NULL;
    TRY(dcm_ds_add_seq(ds, it, src->tag, &seq));
    for (const struct dcm_item *si = src->items; si; si = si->next) {
        struct dcm_item *di = NULL;
        TRY(dcm_ds_add_item(ds, seq, &di));
        for (const struct dcm_elem *se = si->first; se; se = se->next)
            TRY(copy_into(ds, di, se)); /* depth bounded by dcm_ds_add_item's check */
    }
    return 0;
}

int dcm_ds_copy_elem(struct dcm_ds *ds, struct dcm_item *it, const struct dcm_elem *src)
{
    return copy_into(ds, it, src);
}
