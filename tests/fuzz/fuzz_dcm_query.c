/* libFuzzer target for common/dcm_query and common/dcm_match: identifier -> query -> match ->
 * response identifier.
 * Input: byte 0 flags (bit 0 identifier Explicit VR, bit 1 Study Root, bit 2 retrieve, bit 3
 * combined date-time, bit 4 PN case-insensitive, bit 5 unknown values match, bit 6 candidate
 * Explicit VR, bit 7 a Retrieve AE Title); byte 1 the candidate's character set (mod 3); bytes
 * 2-3 the identifier's length L (little endian); then L bytes of identifier; the rest is the
 * candidate dataset. Checked: a failed parse says why; keys are ascending with coherent values;
 * matching is deterministic; a response holds exactly the request's keys plus the attributes
 * PS3.4 C.4.1.1.3.2 adds, and it encodes and reads back. */
#include <stdlib.h>
#include <string.h>

#include "common/dcm_match.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_keys(const struct dcm_query *q, unsigned depth)
{
    uint32_t prev = 0;
    if (depth > DCM_MAX_DEPTH_HARD)
        __builtin_trap();
    for (size_t i = 0; i < dcm_query_nkeys(q); i++) {
        const struct dcm_qkey *k = dcm_query_key(q, i);
        if (i > 0 && k->tag <= prev)
            __builtin_trap();
        prev = k->tag;
        if (dcm_query_find(q, k->tag) != k)
            __builtin_trap();
        if ((k->type == DCM_MT_SEQUENCE) != (k->item != NULL && k->type == DCM_MT_SEQUENCE))
            __builtin_trap();
        if (k->type == DCM_MT_UNIVERSAL && k->nvalues != 0)
            __builtin_trap();
        if ((k->type == DCM_MT_UID_LIST || k->type == DCM_MT_MULTI) && k->nvalues < 2)
            __builtin_trap();
        for (size_t j = 0; j < k->nvalues; j++) {
            const struct dcm_qvalue *v = &k->values[j];
            if (v->text.len == 0)
                __builtin_trap();
            if (v->type == DCM_MT_RANGE && v->span.lo > v->span.hi)
                __builtin_trap();
            if (k->vr == DCM_VR_UI && !dcm_uid_valid(v->text.p, v->text.len))
                __builtin_trap();
        }
        if (k->type == DCM_MT_SEQUENCE)
            check_keys(k->item, depth + 1);
    }
}

static bool allowed_extra(uint32_t tag)
{
    return tag == DCM_TAG(0x0008, 0x0005) || tag == DCM_TAG(0x0008, 0x0052) ||
           tag == DCM_TAG(0x0008, 0x0054) || tag == DCM_TAG(0x0008, 0x0201);
}

static void check_response(const struct dcm_query *q, const struct dcm_ds *rsp)
{
    const struct dcm_item *r = dcm_ds_root(rsp);
    for (const struct dcm_elem *e = dcm_item_first(r); e; e = dcm_elem_next(e)) {
        if (!dcm_query_find(q, dcm_elem_tag(e)) && !allowed_extra(dcm_elem_tag(e)))
            __builtin_trap(); /* nothing the request did not ask for */
    }
    for (size_t i = 0; i < dcm_query_nkeys(q); i++) {
        if (!dcm_item_find(r, dcm_query_key(q, i)->tag))
            __builtin_trap(); /* every requested key */
    }
    if (!dcm_item_find(r, DCM_TAG(0x0008, 0x0052)))
        __builtin_trap();
    for (int ts = 0; ts < 2; ts++) {
        struct wbuf w;
        wbuf_init(&w, 64u << 20);
        int rc = dcm_ds_write(rsp, (enum dcm_ts)ts, &w);
        if (rc == 0) {
            struct dcm_ds *back = NULL;
            struct dcm_limits lim = {64u << 20, 1u << 20, DCM_MAX_DEPTH_HARD};
            if (dcm_ds_parse(w.p, w.len, (enum dcm_ts)ts, &lim, &back) != 0)
                __builtin_trap();
            dcm_ds_free(back);
        } else if (rc != ERR_LIMIT) {
            __builtin_trap(); /* only a value grown past a 2-byte length may fail */
        }
        wbuf_cleanup(&w);
    }
}

static struct dcm_ds *parse_copy(const uint8_t *p, size_t n, enum dcm_ts ts)
{
    struct dcm_limits lim = {8u << 20, 1u << 15, 16};
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy)
        abort();
    memcpy(copy, p, n);
    struct dcm_ds *ds = NULL;
    if (dcm_ds_parse(copy, n, ts, &lim, &ds) < 0)
        ds = NULL;
    free(copy);
    return ds;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    uint8_t f = data[0];
    size_t ilen = (size_t)data[2] | (size_t)data[3] << 8;
    if (ilen > size - 4)
        ilen = size - 4;
    const uint8_t *ip = data + 4, *cp = data + 4 + ilen;
    size_t clen = size - 4 - ilen;
    struct dcm_ds *ident = parse_copy(ip, ilen, (f & 1) ? DCM_TS_EXPLICIT_LE : DCM_TS_IMPLICIT_LE);
    if (!ident)
        return 0;
    struct dcm_query_opts o = {(f & 2) ? DCM_QR_STUDY_ROOT : DCM_QR_PATIENT_ROOT,
                               (f & 4) ? DCM_QOP_RETRIEVE : DCM_QOP_FIND, (f & 8) != 0, 256, 0};
    struct dcm_query *q = NULL;
    struct dcm_query_error err;
    int rc = dcm_query_parse(ident, &o, &q, &err);
    if (rc < 0) {
        if (q || !err.comment || (rc != ERR_NOMEM && err.reason == DCM_QERR_NONE))
            __builtin_trap();
        dcm_ds_free(ident);
        return 0;
    }
    if (err.reason != DCM_QERR_NONE)
        __builtin_trap();
    check_keys(q, 0);
    struct dcm_match_opts mo = {(unsigned)((f >> 4) & 3), (enum dcm_charset)(data[1] % 3),
                                (f & 0x80) ? "DICOM_CORE" : NULL};
    (void)dcm_match(q, dcm_ds_root(ident), &mo); /* the identifier as its own candidate */
    struct dcm_ds *cand =
        parse_copy(cp, clen, (f & 0x40) ? DCM_TS_EXPLICIT_LE : DCM_TS_IMPLICIT_LE);
    if (cand) {
        bool m = dcm_match(q, dcm_ds_root(cand), &mo);
        if (m != dcm_match(q, dcm_ds_root(cand), &mo))
            __builtin_trap();
        struct dcm_ds *rsp = NULL;
        rc = dcm_match_response(q, dcm_ds_root(cand), &mo, NULL, &rsp);
        if (rc == 0)
            check_response(q, rsp);
        else if ((rc != ERR_MALFORMED && rc != ERR_LIMIT && rc != ERR_NOMEM) || rsp)
            __builtin_trap();
        dcm_ds_free(rsp);
        dcm_ds_free(cand);
    }
    dcm_query_free(q);
    dcm_ds_free(ident);
    return 0;
}
