/* libFuzzer target for the PS3.8 PDU codecs (core/common/ul) and the DIMSE command set parser.
 * Input: a byte stream as a peer would send it. It is framed with ul_frame (64 KiB cap, as before
 * association acceptance); each whole PDU's body is copied to an exact-size heap buffer (ASan
 * catches any over-read) and handed to the parser of its type: A-ASSOCIATE-RQ/AC/RJ, P-DATA-TF
 * (every PDV, and each PDV's bytes also as a command set), A-RELEASE-RQ/RP, A-ABORT.
 * Invariants: cursors never pass their end; an A-ASSOCIATE-RQ that parses re-encodes and parses
 * back to the same contexts and user information; an A-ASSOCIATE-AC likewise; a failed
 * A-ASSOCIATE-RQ names a PS3.8 abort reason. */
#include <stdlib.h>
#include <string.h>

#include "common/ul.h"
#include "dimse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static bool slice_same(struct slice a, struct slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static struct ul_assoc_rq rq1, rq2; /* large: keep off the stack */
static struct ul_assoc_ac ac1, ac2;

static void fuzz_assoc_rq(const uint8_t *body, size_t n)
{
    struct rd r = rd_make(body, n);
    uint8_t reason = 0xff;
    int rc = ul_parse_assoc_rq(&r, &rq1, &reason);
    CHECK(r.pos <= r.len);
    if (rc < 0) {
        CHECK(rc == ERR_TRUNCATED || rc == ERR_MALFORMED || rc == ERR_LIMIT);
        CHECK(reason == UL_ABORT_INVALID_PARAM || reason == UL_ABORT_UNEXPECTED_PARAM ||
              reason == UL_ABORT_UNRECOGNIZED_PARAM);
        return;
    }
    CHECK(rq1.n_pctx >= 1 && rq1.n_pctx <= UL_MAX_PCTX);
    struct wbuf w;
    wbuf_init(&w, 1u << 20);
    CHECK(ul_encode_assoc_rq(&w, &rq1) == 0);
    uint8_t type;
    uint32_t blen;
    CHECK(ul_frame(w.p, w.len, UINT32_MAX, &type, &blen) == (int64_t)w.len);
    CHECK(type == UL_ASSOC_RQ);
    uint8_t *copy = malloc(blen);
    CHECK(copy != NULL || blen == 0);
    if (blen)
        memcpy(copy, w.p + UL_HDR_LEN, blen);
    struct rd r2 = rd_make(copy, blen);
    CHECK(ul_parse_assoc_rq(&r2, &rq2, NULL) == 0);
    CHECK(rq2.protocol_version == rq1.protocol_version);
    CHECK(rq2.called_bad == rq1.called_bad && strcmp(rq2.called, rq1.called) == 0);
    CHECK(rq2.calling_bad == rq1.calling_bad && strcmp(rq2.calling, rq1.calling) == 0);
    CHECK(slice_same(rq2.app_context, rq1.app_context));
    CHECK(rq2.n_pctx == rq1.n_pctx);
    for (uint16_t i = 0; i < rq1.n_pctx; i++) {
        CHECK(rq2.pctx[i].id == rq1.pctx[i].id);
        CHECK(slice_same(rq2.pctx[i].abstract, rq1.pctx[i].abstract));
        CHECK(rq2.pctx[i].n_ts == rq1.pctx[i].n_ts);
        for (uint8_t t = 0; t < rq1.pctx[i].n_ts; t++)
            CHECK(slice_same(rq2.pctx[i].ts[t], rq1.pctx[i].ts[t]));
    }
    CHECK(rq2.ui.max_len == rq1.ui.max_len);
    CHECK(slice_same(rq2.ui.impl_uid, rq1.ui.impl_uid));
    CHECK(slice_same(rq2.ui.impl_version, rq1.ui.impl_version));
    CHECK(rq2.ui.has_async == rq1.ui.has_async);
    CHECK(rq2.ui.n_roles == rq1.ui.n_roles);
    for (uint16_t i = 0; i < rq1.ui.n_roles; i++) {
        CHECK(slice_same(rq2.ui.roles[i].sop, rq1.ui.roles[i].sop));
        CHECK(rq2.ui.roles[i].scu == rq1.ui.roles[i].scu);
        CHECK(rq2.ui.roles[i].scp == rq1.ui.roles[i].scp);
    }
    free(copy);
    wbuf_cleanup(&w);
}

static void fuzz_assoc_ac(const uint8_t *body, size_t n)
{
    struct rd r = rd_make(body, n);
    int rc = ul_parse_assoc_ac(&r, &ac1);
    CHECK(r.pos <= r.len);
    if (rc < 0)
        return;
    CHECK(ac1.n_pctx <= UL_MAX_PCTX);
    struct wbuf w;
    wbuf_init(&w, 1u << 20);
    if (ul_encode_assoc_ac(&w, &ac1) == 0) { /* may exceed an item's 64 KiB: then refused */
        struct rd r2 = rd_make(w.p + UL_HDR_LEN, w.len - UL_HDR_LEN);
        CHECK(ul_parse_assoc_ac(&r2, &ac2) == 0);
        CHECK(ac2.n_pctx == ac1.n_pctx);
        for (uint16_t i = 0; i < ac1.n_pctx; i++) {
            CHECK(ac2.pctx[i].id == ac1.pctx[i].id);
            CHECK(ac2.pctx[i].result == ac1.pctx[i].result);
            CHECK(slice_same(ac2.pctx[i].ts, ac1.pctx[i].ts));
        }
        CHECK(ac2.ui.max_len == ac1.ui.max_len);
    }
    wbuf_cleanup(&w);
}

static void fuzz_pdata(const uint8_t *body, size_t n)
{
    struct rd r = rd_make(body, n);
    struct ul_pdv pdv;
    int rc;
    while ((rc = ul_next_pdv(&r, &pdv)) == 1) {
        CHECK(r.pos <= r.len);
        CHECK(pdv.data.p >= body && pdv.data.p + pdv.data.len <= body + n);
        /* a command PDV's bytes as a command set, in an exact-size copy */
        uint8_t *c = malloc(pdv.data.len ? pdv.data.len : 1);
        CHECK(c != NULL);
        memcpy(c, pdv.data.p, pdv.data.len);
        struct rd cr = rd_make(c, pdv.data.len);
        struct dimse_cmd cmd;
        int drc = dimse_parse_cmd(&cr, &cmd);
        CHECK(cr.pos <= cr.len);
        if (drc == 0) {
            CHECK(strlen(cmd.affected_sop_class) <= 64);
            CHECK(strlen(cmd.affected_sop_instance) <= 64);
            CHECK(strlen(cmd.move_originator_ae) <= 16);
        }
        free(c);
    }
    CHECK(rc == 0 || rc == ERR_MALFORMED);
    CHECK(r.pos <= r.len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        uint8_t type;
        uint32_t blen;
        int64_t got = ul_frame(data + off, size - off, UL_PRE_ASSOC_MAX, &type, &blen);
        if (got <= 0)
            break;
        CHECK((uint64_t)got == (uint64_t)blen + UL_HDR_LEN && (size_t)got <= size - off);
        uint8_t *body = malloc(blen ? blen : 1);
        CHECK(body != NULL);
        memcpy(body, data + off + UL_HDR_LEN, blen);
        struct rd r = rd_make(body, blen);
        switch (type) {
        case UL_ASSOC_RQ:
            fuzz_assoc_rq(body, blen);
            break;
        case UL_ASSOC_AC:
            fuzz_assoc_ac(body, blen);
            break;
        case UL_ASSOC_RJ: {
            struct ul_rj rj;
            (void)!ul_parse_assoc_rj(&r, &rj);
            break;
        }
        case UL_P_DATA_TF:
            fuzz_pdata(body, blen);
            break;
        case UL_RELEASE_RQ:
        case UL_RELEASE_RP:
            (void)!ul_parse_release(&r);
            break;
        case UL_ABORT: {
            uint8_t s, q;
            (void)!ul_parse_abort(&r, &s, &q);
            break;
        }
        default:
            break;
        }
        CHECK(r.pos <= r.len);
        free(body);
        off += (size_t)got;
    }
    return 0;
}
