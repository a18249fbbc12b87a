/* ul: PS3.8 9.3 PDU codecs. Parsers: the valid case of every PDU type, a cut at every byte
 * offset, every length field at 0 / max / max+1 / all-ones, oversized counts and trailing
 * garbage; inputs sit against a PROT_NONE page (guard_copy) so that any read past the end
 * crashes. Encoders: byte for byte against PDUs assembled here by hand from the standard's
 * tables, not by the code under test.
 * "max" of a length field is the largest value the PDU body still holds (everything from the
 * value's start to the body's end); max+1 runs one byte past the body. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/ul.h"
#include "guard.h"

#define APP "1.2.840.10008.3.1.1.1"
#define VERIF "1.2.840.10008.1.1"
#define CT "1.2.840.10008.5.1.4.1.1.2"
#define MR "1.2.840.10008.5.1.4.1.1.4"
#define IMPL "1.2.840.10008.1.2"
#define EXPL "1.2.840.10008.1.2.1"

/* ---- an independent PDU builder (big-endian, PS3.8 9.3 item framing) ---- */

#define BLD_MAX 70000
#define MAX_LENS 64

struct lenfield {
    size_t off;
    int width; /* 2 or 4 */
};

struct bld {
    uint8_t b[BLD_MAX];
    size_t n;
    struct lenfield lens[MAX_LENS];
    size_t n_lens;
    size_t ok_cuts[300]; /* body lengths at which a truncated A-ASSOCIATE-RQ is still valid */
    size_t n_ok_cuts;
};

static struct bld *bld_new(void)
{
    struct bld *x = calloc(1, sizeof *x);
    cr_assert_not_null(x);
    return x;
}

static void put(struct bld *x, const void *p, size_t n)
{
    cr_assert_leq(x->n + n, sizeof x->b);
    memcpy(x->b + x->n, p, n);
    x->n += n;
}

static void u8(struct bld *x, uint8_t v)
{
    put(x, &v, 1);
}

static void u16(struct bld *x, uint16_t v)
{
    uint8_t t[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(x, t, 2);
}

static void u32(struct bld *x, uint32_t v)
{
    uint8_t t[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(x, t, 4);
}

static void str(struct bld *x, const char *s)
{
    put(x, s, strlen(s));
}

static void fill(struct bld *x, uint8_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        u8(x, v);
}

static void note_len(struct bld *x, size_t off, int width)
{
    if (x->n_lens < MAX_LENS)
        x->lens[x->n_lens++] = (struct lenfield){off, width};
}

/* a bare 16-bit length prefix, patched by close16 */
static size_t open_len16(struct bld *x)
{
    size_t at = x->n;
    u16(x, 0);
    note_len(x, at, 2);
    return at;
}

static size_t open16(struct bld *x, uint8_t type)
{
    u8(x, type);
    u8(x, 0);
    return open_len16(x);
}

static void close16(struct bld *x, size_t at)
{
    size_t len = x->n - at - 2;
    cr_assert_leq(len, 0xffff);
    x->b[at] = (uint8_t)(len >> 8);
    x->b[at + 1] = (uint8_t)len;
}

static void item_str(struct bld *x, uint8_t type, const char *s)
{
    size_t at = open16(x, type);
    str(x, s);
    close16(x, at);
}

static void ae16(struct bld *x, const char *ae)
{
    size_t n = strlen(ae);
    put(x, ae, n);
    fill(x, ' ', 16 - n);
}

static void pctx_rq(struct bld *x, uint8_t id, const char *abstract, const char *ts1,
                    const char *ts2)
{
    size_t at = open16(x, 0x20);
    u8(x, id);
    fill(x, 0, 3);
    item_str(x, 0x30, abstract);
    item_str(x, 0x40, ts1);
    if (ts2)
        item_str(x, 0x40, ts2);
    close16(x, at);
}

static void rq_head(struct bld *x, const char *called, const char *calling)
{
    u16(x, 1);
    u16(x, 0);
    ae16(x, called);
    ae16(x, calling);
    fill(x, 0, 32);
}

static void ok_cut(struct bld *x)
{
    x->ok_cuts[x->n_ok_cuts++] = x->n;
}

/* A-ASSOCIATE-RQ body using every item and sub-item a Store SCP reads (PS3.8 9.3.2, PS3.7
 * Annex D): application context, two presentation contexts, user information with maximum
 * length, implementation class UID, asynchronous operations window, role selection,
 * implementation version name, SOP class extended negotiation, common extended negotiation and
 * user identity (username and passcode). */
static struct bld *full_rq(void)
{
    struct bld *x = bld_new();
    rq_head(x, "DICOM_CORE", "MODALITY1");
    item_str(x, 0x10, APP);
    pctx_rq(x, 1, VERIF, IMPL, NULL);
    ok_cut(x);
    pctx_rq(x, 3, CT, EXPL, IMPL);
    ok_cut(x);
    size_t ui = open16(x, 0x50);
    size_t m = open16(x, 0x51);
    u32(x, 16384);
    close16(x, m);
    item_str(x, 0x52, "1.2.826.0.1.3680043.2.1143.107.104.103.115");
    size_t a = open16(x, 0x53);
    u16(x, 3);
    u16(x, 1);
    close16(x, a);
    size_t r = open16(x, 0x54);
    size_t rl = open_len16(x);
    str(x, CT);
    close16(x, rl);
    u8(x, 1);
    u8(x, 0);
    close16(x, r);
    item_str(x, 0x55, "TESTS_1.0");
    size_t e = open16(x, 0x56);
    size_t el = open_len16(x);
    str(x, CT);
    close16(x, el);
    fill(x, 1, 3); /* service-class application information (opaque here) */
    close16(x, e);
    size_t c = open16(x, 0x57);
    size_t c1 = open_len16(x);
    str(x, MR);
    close16(x, c1);
    size_t c2 = open_len16(x);
    str(x, "1.2.840.10008.4.2");
    close16(x, c2);
    size_t c3 = open_len16(x);
    /* one related general SOP class: its own 16-bit length + UID. The parser keeps the related
     * list opaque (it only counts common extended negotiation), so this inner length is not
     * among the fields whose corruption must be detected. */
    u16(x, 27);
    str(x, "1.2.840.10008.5.1.4.1.1.4.1");
    close16(x, c3);
    close16(x, c);
    size_t u = open16(x, 0x58);
    u8(x, 2);
    u8(x, 1);
    size_t u1 = open_len16(x);
    str(x, "user");
    close16(x, u1);
    size_t u2 = open_len16(x);
    str(x, "secret");
    close16(x, u2);
    close16(x, u);
    close16(x, ui);
    ok_cut(x);
    return x;
}

static void set_len(uint8_t *b, struct lenfield f, uint64_t v)
{
    if (f.width == 2) {
        b[f.off] = (uint8_t)(v >> 8);
        b[f.off + 1] = (uint8_t)v;
    } else {
        b[f.off] = (uint8_t)(v >> 24);
        b[f.off + 1] = (uint8_t)(v >> 16);
        b[f.off + 2] = (uint8_t)(v >> 8);
        b[f.off + 3] = (uint8_t)v;
    }
}

static uint64_t get_len(const uint8_t *b, struct lenfield f)
{
    if (f.width == 2)
        return (uint64_t)b[f.off] << 8 | b[f.off + 1];
    return (uint64_t)b[f.off] << 24 | (uint64_t)b[f.off + 1] << 16 | (uint64_t)b[f.off + 2] << 8 |
           b[f.off + 3];
}

static struct ul_assoc_rq *rq_alloc(void)
{
    struct ul_assoc_rq *rq = malloc(sizeof *rq);
    cr_assert_not_null(rq);
    memset(rq, 0xA5, sizeof *rq); /* the parser must initialise what it reports */
    return rq;
}

/* The guarded copy lives until the next call, so that the slices in *rq stay readable. */
static const uint8_t *last_guard;
static size_t last_guard_len;

static int parse_rq_guarded(const uint8_t *body, size_t n, struct ul_assoc_rq *rq,
                            uint8_t *reason, size_t *pos)
{
    guard_free(last_guard, last_guard_len);
    const uint8_t *g = guard_copy(body, n);
    last_guard = g;
    last_guard_len = n;
    struct rd r = rd_make(g, n);
    int rc = ul_parse_assoc_rq(&r, rq, reason);
    cr_assert_leq(r.pos, r.len);
    if (pos)
        *pos = r.pos;
    return rc;
}

/* ---- A-ASSOCIATE-RQ ---- */

Test(ul, assoc_rq_valid_case_reads_every_item)
{
    struct bld *x = full_rq();
    struct ul_assoc_rq *rq = rq_alloc();
    uint8_t reason = 0xff;
    size_t pos;
    cr_assert_eq(parse_rq_guarded(x->b, x->n, rq, &reason, &pos), 0);
    cr_assert_eq(pos, x->n, "the whole body is consumed");
    cr_assert_eq(rq->protocol_version, 1);
    cr_assert_str_eq(rq->called, "DICOM_CORE");
    cr_assert_str_eq(rq->calling, "MODALITY1");
    cr_assert_not(rq->called_bad);
    cr_assert_not(rq->calling_bad);
    cr_assert(slice_eq_str(rq->app_context, APP));
    cr_assert_eq(rq->n_pctx, 2);
    cr_assert_eq(rq->pctx[0].id, 1);
    cr_assert(slice_eq_str(rq->pctx[0].abstract, VERIF));
    cr_assert_eq(rq->pctx[0].n_ts, 1);
    cr_assert(slice_eq_str(rq->pctx[0].ts[0], IMPL));
    cr_assert_eq(rq->pctx[1].id, 3);
    cr_assert(slice_eq_str(rq->pctx[1].abstract, CT));
    cr_assert_eq(rq->pctx[1].n_ts, 2);
    cr_assert(slice_eq_str(rq->pctx[1].ts[0], EXPL));
    cr_assert(slice_eq_str(rq->pctx[1].ts[1], IMPL));
    const struct ul_user_info *ui = &rq->ui;
    cr_assert(ui->present);
    cr_assert(ui->has_max_len);
    cr_assert_eq(ui->max_len, 16384);
    cr_assert(slice_eq_str(ui->impl_uid, "1.2.826.0.1.3680043.2.1143.107.104.103.115"));
    cr_assert(slice_eq_str(ui->impl_version, "TESTS_1.0"));
    cr_assert(ui->has_async);
    cr_assert_eq(ui->ops_invoked, 3);
    cr_assert_eq(ui->ops_performed, 1);
    cr_assert_eq(ui->n_roles, 1);
    cr_assert(slice_eq_str(ui->roles[0].sop, CT));
    cr_assert_eq(ui->roles[0].scu, 1);
    cr_assert_eq(ui->roles[0].scp, 0);
    cr_assert_eq(ui->n_ext_neg, 1);
    cr_assert(slice_eq_str(ui->ext_neg_sop[0], CT));
    cr_assert_eq(ui->n_common_ext_neg, 1);
    cr_assert(ui->has_user_identity);
    cr_assert_eq(ui->user_identity_type, 2);
    cr_assert(ui->user_identity_rsp_requested);
    cr_assert_eq(rq->glitches, 0);
    free(rq);
    free(x);
}

Test(ul, assoc_rq_cut_at_every_offset_is_an_error_or_a_complete_item_boundary)
{
    struct bld *x = full_rq();
    struct ul_assoc_rq *rq = rq_alloc();
    for (size_t cut = 0; cut < x->n; cut++) {
        uint8_t reason = 0xff;
        int rc = parse_rq_guarded(x->b, cut, rq, &reason, NULL);
        bool boundary = false;
        for (size_t i = 0; i < x->n_ok_cuts; i++)
            boundary |= x->ok_cuts[i] == cut;
        if (boundary) {
            /* everything up to here is whole PDU items; user information is optional to the
             * parser (PS3.7 D.3.3.1 makes it mandatory: counted as a glitch) */
            cr_assert_eq(rc, 0, "cut at %zu: rc %d", cut, rc);
            cr_assert_gt(rq->glitches, 0);
        } else {
            cr_assert_lt(rc, 0, "cut at %zu of %zu parsed as valid", cut, x->n);
            cr_assert(rc == ERR_TRUNCATED || rc == ERR_MALFORMED, "cut %zu: rc %d", cut, rc);
        }
    }
    free(rq);
    free(x);
}

Test(ul, assoc_rq_every_length_field_at_0_max_max1_and_all_ones)
{
    struct bld *x = full_rq();
    struct ul_assoc_rq *rq = rq_alloc();
    cr_assert_geq(x->n_lens, 20, "the builder recorded the length fields");
    uint8_t *b = malloc(x->n);
    for (size_t i = 0; i < x->n_lens; i++) {
        struct lenfield f = x->lens[i];
        uint64_t orig = get_len(x->b, f);
        uint64_t max = x->n - f.off - (size_t)f.width;
        uint64_t vals[] = {0, max, max + 1, 0xffff};
        for (size_t k = 0; k < 4; k++) {
            memcpy(b, x->b, x->n);
            set_len(b, f, vals[k]);
            uint8_t reason = 0xff;
            int rc = parse_rq_guarded(b, x->n, rq, &reason, NULL);
            if (vals[k] == orig) {
                cr_assert_eq(rc, 0, "field at %zu = %llu (its own value)", f.off,
                             (unsigned long long)vals[k]);
            } else if (k != 1) {
                cr_assert_lt(rc, 0, "field at %zu set to %llu parsed as valid", f.off,
                             (unsigned long long)vals[k]);
            }
            if (rc < 0) {
                cr_assert(reason == UL_ABORT_INVALID_PARAM || reason == UL_ABORT_UNEXPECTED_PARAM ||
                              reason == UL_ABORT_UNRECOGNIZED_PARAM,
                          "field at %zu = %llu: abort reason %u", f.off,
                          (unsigned long long)vals[k], reason);
            }
        }
    }
    free(b);
    free(rq);
    free(x);
}

static struct bld *minimal_rq(void)
{
    struct bld *x = bld_new();
    rq_head(x, "DICOM_CORE", "MODALITY1");
    item_str(x, 0x10, APP);
    return x;
}

static void minimal_ui(struct bld *x)
{
    size_t ui = open16(x, 0x50);
    size_t m = open16(x, 0x51);
    u32(x, 0);
    close16(x, m);
    close16(x, ui);
}

Test(ul, assoc_rq_exactly_128_contexts_with_ids_1_to_255_is_accepted)
{
    struct bld *x = minimal_rq();
    for (int i = 0; i < 128; i++)
        pctx_rq(x, (uint8_t)(2 * i + 1), VERIF, IMPL, NULL);
    minimal_ui(x);
    struct ul_assoc_rq *rq = rq_alloc();
    uint8_t reason;
    cr_assert_eq(parse_rq_guarded(x->b, x->n, rq, &reason, NULL), 0);
    cr_assert_eq(rq->n_pctx, 128);
    cr_assert_eq(rq->pctx[127].id, 255);
    cr_assert_eq(rq->ui.max_len, 0);
    free(rq);
    free(x);
}

Test(ul, assoc_rq_129_contexts_is_refused_as_a_limit)
{
    struct bld *x = minimal_rq();
    /* 129 distinct odd IDs do not exist (1..255 is 128 of them), so the 129th repeats: the
     * count limit must fire first and nothing may be written past pctx[127] */
    for (int i = 0; i < 129; i++)
        pctx_rq(x, (uint8_t)((2 * i + 1) & 0xff), VERIF, IMPL, NULL);
    minimal_ui(x);
    struct ul_assoc_rq *rq = rq_alloc();
    uint8_t reason = 0xff;
    cr_assert_eq(parse_rq_guarded(x->b, x->n, rq, &reason, NULL), ERR_LIMIT);
    cr_assert_eq(reason, UL_ABORT_INVALID_PARAM);
    cr_assert_leq(rq->n_pctx, UL_MAX_PCTX);
    free(rq);
    free(x);
}

Test(ul, assoc_rq_even_zero_or_duplicate_context_ids_are_invalid_parameters)
{
    const uint8_t ids[][2] = {{2, 0}, {0, 0}, {254, 0}, {1, 1}, {3, 3}};
    for (size_t i = 0; i < ARRAY_LEN(ids); i++) {
        struct bld *x = minimal_rq();
        pctx_rq(x, ids[i][0], VERIF, IMPL, NULL);
        if (ids[i][1])
            pctx_rq(x, ids[i][1], CT, IMPL, NULL);
        minimal_ui(x);
        struct ul_assoc_rq *rq = rq_alloc();
        uint8_t reason = 0xff;
        cr_assert_eq(parse_rq_guarded(x->b, x->n, rq, &reason, NULL), ERR_MALFORMED,
                     "ids %u,%u", ids[i][0], ids[i][1]);
        cr_assert_eq(reason, UL_ABORT_INVALID_PARAM);
        free(rq);
        free(x);
    }
}

Test(ul, assoc_rq_more_than_64_transfer_syntaxes_are_kept_to_64_and_counted)
{
    struct bld *x = minimal_rq();
    size_t at = open16(x, 0x20);
    u8(x, 1);
    fill(x, 0, 3);
    item_str(x, 0x30, CT);
    for (int i = 0; i < 70; i++)
        item_str(x, 0x40, i % 2 ? EXPL : IMPL);
    close16(x, at);
    minimal_ui(x);
    struct ul_assoc_rq *rq = rq_alloc();
    uint8_t reason;
    cr_assert_eq(parse_rq_guarded(x->b, x->n, rq, &reason, NULL), 0);
    cr_assert_eq(rq->pctx[0].n_ts, UL_MAX_TS);
    cr_assert_eq(rq->glitches, 70 - UL_MAX_TS);
    free(rq);
    free(x);
}

Test(ul, assoc_rq_more_than_128_roles_or_ext_neg_are_kept_to_128_and_counted)
{
    struct bld *x = minimal_rq();
    pctx_rq(x, 1, CT, IMPL, NULL);
    size_t ui = open16(x, 0x50);
    size_t m = open16(x, 0x51);
    u32(x, 65536);
    close16(x, m);
    for (int i = 0; i < 130; i++) {
        size_t r = open16(x, 0x54);
        size_t rl = open_len16(x);
        str(x, CT);
        close16(x, rl);
        u8(x, 1);
        u8(x, 1);
        close16(x, r);
        size_t e = open16(x, 0x56);
        size_t el = open_len16(x);
        str(x, CT);
        close16(x, el);
        close16(x, e);
    }
    close16(x, ui);
    struct ul_assoc_rq *rq = rq_alloc();
    uint8_t reason;
    cr_assert_eq(parse_rq_guarded(x->b, x->n, rq, &reason, NULL), 0);
    cr_assert_eq(rq->ui.n_roles, UL_MAX_ROLES);
    cr_assert_eq(rq->ui.n_ext_neg, UL_MAX_EXT_NEG);
    cr_assert_eq(rq->glitches, 2 * (130 - 128));
    free(rq);
    free(x);
}

Test(ul, assoc_rq_trailing_garbage_is_an_error)
{
    /* {n, bytes...}: a lone byte, a half item header, a whole header of an unknown item, a
     * second user information item, a second application context item */
    const uint8_t tails[][5] = {{1, 0}, {2, 0, 0}, {3, 0, 0, 0}, {4, 0x60, 0, 0, 0},
                                {4, 0x50, 0, 0, 0}, {4, 0x10, 0, 0, 0}};
    struct ul_assoc_rq *rq = rq_alloc();
    for (size_t i = 0; i < ARRAY_LEN(tails); i++) {
        struct bld *x = full_rq();
        put(x, tails[i] + 1, tails[i][0]);
        uint8_t reason = 0xff;
        cr_assert_lt(parse_rq_guarded(x->b, x->n, rq, &reason, NULL), 0, "tail %zu", i);
        free(x);
    }
    free(rq);
}

static int parse_variant(struct bld *x, uint8_t *reason)
{
    struct ul_assoc_rq *rq = rq_alloc();
    int rc = parse_rq_guarded(x->b, x->n, rq, reason, NULL);
    free(rq);
    free(x);
    return rc;
}

Test(ul, assoc_rq_abort_reasons_follow_ps3_8_table_9_26)
{
    uint8_t reason;
    struct bld *x;

    x = minimal_rq(); /* an unknown top-level item */
    pctx_rq(x, 1, VERIF, IMPL, NULL);
    item_str(x, 0x22, "x");
    cr_assert_eq(parse_variant(x, &reason), ERR_MALFORMED);
    cr_assert_eq(reason, UL_ABORT_UNRECOGNIZED_PARAM);

    x = minimal_rq(); /* user information twice */
    pctx_rq(x, 1, VERIF, IMPL, NULL);
    minimal_ui(x);
    minimal_ui(x);
    cr_assert_eq(parse_variant(x, &reason), ERR_MALFORMED);
    cr_assert_eq(reason, UL_ABORT_UNEXPECTED_PARAM);

    x = minimal_rq(); /* two abstract syntaxes in one context */
    size_t at = open16(x, 0x20);
    u8(x, 1);
    fill(x, 0, 3);
    item_str(x, 0x30, CT);
    item_str(x, 0x30, MR);
    item_str(x, 0x40, IMPL);
    close16(x, at);
    cr_assert_eq(parse_variant(x, &reason), ERR_MALFORMED);
    cr_assert_eq(reason, UL_ABORT_UNEXPECTED_PARAM);

    x = minimal_rq(); /* an unknown sub-item in a presentation context */
    at = open16(x, 0x20);
    u8(x, 1);
    fill(x, 0, 3);
    item_str(x, 0x30, CT);
    item_str(x, 0x40, IMPL);
    item_str(x, 0x41, IMPL);
    close16(x, at);
    cr_assert_eq(parse_variant(x, &reason), ERR_MALFORMED);
    cr_assert_eq(reason, UL_ABORT_UNRECOGNIZED_PARAM);

    x = minimal_rq(); /* a context without transfer syntax */
    at = open16(x, 0x20);
    u8(x, 1);
    fill(x, 0, 3);
    item_str(x, 0x30, CT);
    close16(x, at);
    cr_assert_eq(parse_variant(x, &reason), ERR_MALFORMED);
    cr_assert_eq(reason, UL_ABORT_INVALID_PARAM);

    x = minimal_rq(); /* a context without abstract syntax */
    at = open16(x, 0x20);
    u8(x, 1);
    fill(x, 0, 3);
    item_str(x, 0x40, IMPL);
    close16(x, at);
    cr_assert_eq(parse_variant(x, &reason), ERR_MALFORMED);
    cr_assert_eq(reason, UL_ABORT_INVALID_PARAM);

    x = minimal_rq(); /* no presentation context at all */
    minimal_ui(x);
    cr_assert_eq(parse_variant(x, &reason), ERR_MALFORMED);
    cr_assert_eq(reason, UL_ABORT_INVALID_PARAM);

    x = bld_new(); /* no application context */
    rq_head(x, "A", "B");
    pctx_rq(x, 1, VERIF, IMPL, NULL);
    cr_assert_eq(parse_variant(x, &reason), ERR_MALFORMED);
    cr_assert_eq(reason, UL_ABORT_INVALID_PARAM);

    x = minimal_rq(); /* a UID of 65 characters */
    char uid65[66];
    memset(uid65, '1', 65);
    uid65[65] = '\0';
    pctx_rq(x, 1, uid65, IMPL, NULL);
    cr_assert_eq(parse_variant(x, &reason), ERR_MALFORMED);
    cr_assert_eq(reason, UL_ABORT_INVALID_PARAM);

    x = minimal_rq(); /* role selection values other than 0/1 */
    pctx_rq(x, 1, CT, IMPL, NULL);
    size_t ui = open16(x, 0x50);
    size_t r = open16(x, 0x54);
    size_t rl = open_len16(x);
    str(x, CT);
    close16(x, rl);
    u8(x, 2);
    u8(x, 0);
    close16(x, r);
    close16(x, ui);
    cr_assert_eq(parse_variant(x, &reason), ERR_MALFORMED);
    cr_assert_eq(reason, UL_ABORT_INVALID_PARAM);

    x = minimal_rq(); /* user identity type 6 */
    pctx_rq(x, 1, CT, IMPL, NULL);
    ui = open16(x, 0x50);
    size_t u = open16(x, 0x58);
    u8(x, 6);
    u8(x, 0);
    u16(x, 1);
    u8(x, 'x');
    u16(x, 0);
    close16(x, u);
    close16(x, ui);
    cr_assert_eq(parse_variant(x, &reason), ERR_MALFORMED);
    cr_assert_eq(reason, UL_ABORT_INVALID_PARAM);

    x = minimal_rq(); /* implementation version name of 17 bytes */
    pctx_rq(x, 1, CT, IMPL, NULL);
    ui = open16(x, 0x50);
    item_str(x, 0x55, "ABCDEFGHIJKLMNOPQ");
    close16(x, ui);
    cr_assert_eq(parse_variant(x, &reason), ERR_MALFORMED);
    cr_assert_eq(reason, UL_ABORT_INVALID_PARAM);
}

Test(ul, assoc_rq_unknown_user_info_sub_items_are_glitches_not_errors)
{
    struct bld *x = minimal_rq();
    pctx_rq(x, 1, CT, IMPL, NULL);
    size_t ui = open16(x, 0x50);
    size_t m = open16(x, 0x51);
    u32(x, 32768);
    close16(x, m);
    item_str(x, 0x5F, "whatever");
    item_str(x, 0x59, "");
    close16(x, ui);
    struct ul_assoc_rq *rq = rq_alloc();
    uint8_t reason;
    cr_assert_eq(parse_rq_guarded(x->b, x->n, rq, &reason, NULL), 0);
    cr_assert_eq(rq->glitches, 2);
    cr_assert_eq(rq->ui.max_len, 32768);
    free(rq);
    free(x);
}

Test(ul, assoc_rq_uids_padded_with_nul_or_space_are_trimmed)
{
    struct bld *x = minimal_rq();
    size_t at = open16(x, 0x20);
    u8(x, 1);
    fill(x, 0, 3);
    size_t a = open16(x, 0x30);
    str(x, VERIF);
    u8(x, 0);
    close16(x, a);
    size_t t = open16(x, 0x40);
    str(x, IMPL);
    u8(x, ' ');
    close16(x, t);
    close16(x, at);
    struct ul_assoc_rq *rq = rq_alloc();
    uint8_t reason;
    cr_assert_eq(parse_rq_guarded(x->b, x->n, rq, &reason, NULL), 0);
    cr_assert(slice_eq_str(rq->pctx[0].abstract, VERIF));
    cr_assert(slice_eq_str(rq->pctx[0].ts[0], IMPL));
    free(rq);
    free(x);
}

Test(ul, assoc_rq_bad_ae_titles_are_flagged_not_parse_errors)
{
    struct bld *x = bld_new();
    u16(x, 1);
    u16(x, 0);
    put(x, "BAD\\TITLE       ", 16);
    fill(x, ' ', 16); /* all spaces: empty calling AE */
    fill(x, 0, 32);
    item_str(x, 0x10, APP);
    pctx_rq(x, 1, VERIF, IMPL, NULL);
    struct ul_assoc_rq *rq = rq_alloc();
    uint8_t reason;
    cr_assert_eq(parse_rq_guarded(x->b, x->n, rq, &reason, NULL), 0);
    cr_assert(rq->called_bad);
    cr_assert(rq->calling_bad);
    cr_assert_str_eq(rq->called, "");
    free(rq);
    free(x);
}

Test(ul, assoc_rq_with_null_abort_reason_pointer_still_reports)
{
    struct bld *x = minimal_rq();
    struct ul_assoc_rq *rq = rq_alloc();
    struct rd r = rd_make(x->b, x->n);
    cr_assert_eq(ul_parse_assoc_rq(&r, rq, NULL), ERR_MALFORMED);
    free(rq);
    free(x);
}

/* ---- AE titles ---- */

Test(ul, ae_normalize_trims_spaces_and_refuses_bad_titles)
{
    char out[UL_AE_LEN + 1];
    cr_assert_eq(ul_ae_normalize((const uint8_t *)"  CT ROOM 1     ", 16, out), 0);
    cr_assert_str_eq(out, "CT ROOM 1", "inner spaces are kept");
    cr_assert_eq(ul_ae_normalize((const uint8_t *)"ABCDEFGHIJKLMNOP", 16, out), 0);
    cr_assert_str_eq(out, "ABCDEFGHIJKLMNOP");
    cr_assert_eq(ul_ae_normalize((const uint8_t *)"CORE\0\0\0\0", 8, out), 0);
    cr_assert_str_eq(out, "CORE");
    cr_assert_eq(ul_ae_normalize((const uint8_t *)"ABCDEFGHIJKLMNOPQ", 17, out), ERR_MALFORMED);
    cr_assert_eq(ul_ae_normalize((const uint8_t *)"                ", 16, out), ERR_MALFORMED);
    cr_assert_eq(ul_ae_normalize((const uint8_t *)"", 0, out), ERR_MALFORMED);
    cr_assert_eq(ul_ae_normalize((const uint8_t *)"A\\B", 3, out), ERR_MALFORMED);
    cr_assert_eq(ul_ae_normalize((const uint8_t *)"A\nB", 3, out), ERR_MALFORMED);
    cr_assert_eq(ul_ae_normalize((const uint8_t *)"A\0B", 3, out), ERR_MALFORMED);
    cr_assert_eq(ul_ae_normalize((const uint8_t *)"A\x7f", 2, out), ERR_MALFORMED);
    cr_assert_eq(ul_ae_normalize((const uint8_t *)"\xc3\xa9", 2, out), ERR_MALFORMED);
    cr_assert_str_eq(out, "", "output is empty on failure");
}

/* ---- framing ---- */

Test(ul, frame_waits_for_the_header_and_the_whole_body)
{
    uint8_t p[16] = {0x05, 0x00, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 0, 0x07, 0};
    for (size_t n = 0; n < 10; n++) {
        const uint8_t *g = guard_copy(p, n);
        uint8_t type = 0;
        uint32_t len = 0;
        cr_assert_eq(ul_frame(g, n, 1000, &type, &len), 0, "prefix of %zu bytes", n);
        guard_free(g, n);
    }
    const uint8_t *g = guard_copy(p, 12);
    uint8_t type;
    uint32_t len;
    cr_assert_eq(ul_frame(g, 12, 1000, &type, &len), 10, "trailing bytes of the next PDU");
    cr_assert_eq(type, UL_RELEASE_RQ);
    cr_assert_eq(len, 4);
    guard_free(g, 12);
}

Test(ul, frame_length_field_at_0_max_max1_and_all_ones)
{
    const uint32_t max = 65536;
    struct {
        uint32_t len;
        int64_t want; /* with the whole body present (when it fits) */
    } cases[] = {{0, 6}, {max, (int64_t)max + 6}, {max + 1, ERR_LIMIT}, {0xffffffffu, ERR_LIMIT}};
    uint8_t *buf = calloc(1, max + 6);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        buf[0] = 0x04;
        buf[2] = (uint8_t)(cases[i].len >> 24);
        buf[3] = (uint8_t)(cases[i].len >> 16);
        buf[4] = (uint8_t)(cases[i].len >> 8);
        buf[5] = (uint8_t)cases[i].len;
        size_t have = cases[i].len <= max ? cases[i].len + 6u : 6u;
        const uint8_t *g = guard_copy(buf, have);
        uint8_t type = 0;
        uint32_t len = 0;
        cr_assert_eq(ul_frame(g, have, max, &type, &len), cases[i].want, "length %u",
                     cases[i].len);
        cr_assert_eq(type, 0x04, "type reported even when refused (for the abort)");
        cr_assert_eq(len, cases[i].len);
        if (cases[i].want > 0)
            cr_assert_eq(ul_frame(g, have - 1, max, &type, &len), 0, "one byte short");
        guard_free(g, have);
    }
    free(buf);
}

Test(ul, frame_limit_is_checked_before_the_body_arrives)
{
    const uint8_t hdr[6] = {0x01, 0x00, 0x00, 0x01, 0x00, 0x01}; /* 65537 */
    const uint8_t *g = guard_copy(hdr, 6);
    uint8_t type;
    uint32_t len;
    cr_assert_eq(ul_frame(g, 6, UL_PRE_ASSOC_MAX, &type, &len), ERR_LIMIT);
    guard_free(g, 6);
}

/* ---- the short PDUs: A-ASSOCIATE-RJ, A-RELEASE-RQ/RP, A-ABORT ---- */

Test(ul, short_pdu_bodies_valid_case)
{
    const uint8_t rj[4] = {0, 1, 1, 7};
    const uint8_t *g = guard_copy(rj, 4);
    struct rd r = rd_make(g, 4);
    struct ul_rj out;
    cr_assert_eq(ul_parse_assoc_rj(&r, &out), 0);
    cr_assert_eq(out.result, 1);
    cr_assert_eq(out.source, 1);
    cr_assert_eq(out.reason, 7);
    guard_free(g, 4);

    const uint8_t ab[4] = {0, 0, 2, 6};
    g = guard_copy(ab, 4);
    r = rd_make(g, 4);
    uint8_t src, rsn;
    cr_assert_eq(ul_parse_abort(&r, &src, &rsn), 0);
    cr_assert_eq(src, 2);
    cr_assert_eq(rsn, 6);
    guard_free(g, 4);

    const uint8_t rel[4] = {0, 0, 0, 0};
    g = guard_copy(rel, 4);
    r = rd_make(g, 4);
    cr_assert_eq(ul_parse_release(&r), 0);
    cr_assert_eq(r.pos, 4);
    guard_free(g, 4);
}

Test(ul, short_pdu_bodies_cut_at_every_offset_or_with_trailing_garbage_are_refused)
{
    const uint8_t body[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    for (size_t n = 0; n <= 8; n++) {
        if (n == 4)
            continue;
        const uint8_t *g = guard_copy(body, n);
        struct rd r = rd_make(g, n);
        struct ul_rj rj;
        uint8_t s, q;
        int want = n < 4 ? ERR_TRUNCATED : ERR_MALFORMED;
        cr_assert_eq(ul_parse_assoc_rj(&r, &rj), want, "RJ body of %zu", n);
        cr_assert_eq(ul_parse_abort(&r, &s, &q), want, "A-ABORT body of %zu", n);
        cr_assert_eq(ul_parse_release(&r), want, "A-RELEASE body of %zu", n);
        cr_assert_eq(r.pos, 0);
        guard_free(g, n);
    }
}

/* ---- P-DATA-TF ---- */

Test(ul, pdata_valid_case_yields_each_pdv)
{
    struct bld *x = bld_new();
    u32(x, 2 + 3);
    u8(x, 1);
    u8(x, 0x03); /* command, last */
    str(x, "abc");
    u32(x, 2);
    u8(x, 3);
    u8(x, 0x00); /* data, not last, empty */
    u32(x, 2 + 1);
    u8(x, 3);
    u8(x, 0x02); /* data, last */
    u8(x, 'z');
    const uint8_t *g = guard_copy(x->b, x->n);
    struct rd r = rd_make(g, x->n);
    struct ul_pdv pdv;
    cr_assert_eq(ul_next_pdv(&r, &pdv), 1);
    cr_assert_eq(pdv.pctx_id, 1);
    cr_assert(pdv.is_command);
    cr_assert(pdv.is_last);
    cr_assert_eq(pdv.data.len, 3);
    cr_assert_eq(memcmp(pdv.data.p, "abc", 3), 0);
    cr_assert_eq(ul_next_pdv(&r, &pdv), 1);
    cr_assert_eq(pdv.pctx_id, 3);
    cr_assert_not(pdv.is_command);
    cr_assert_not(pdv.is_last);
    cr_assert_eq(pdv.data.len, 0);
    cr_assert_eq(ul_next_pdv(&r, &pdv), 1);
    cr_assert(pdv.is_last);
    cr_assert_eq(pdv.data.len, 1);
    cr_assert_eq(ul_next_pdv(&r, &pdv), 0, "clean end of the body");
    guard_free(g, x->n);
    free(x);
}

Test(ul, pdata_cut_at_every_offset_is_an_error_or_a_pdv_boundary)
{
    struct bld *x = bld_new();
    u32(x, 2 + 4);
    u8(x, 1);
    u8(x, 0x01);
    str(x, "abcd");
    size_t mid = x->n;
    u32(x, 2 + 5);
    u8(x, 1);
    u8(x, 0x03);
    str(x, "efghi");
    for (size_t cut = 0; cut < x->n; cut++) {
        const uint8_t *g = guard_copy(x->b, cut);
        struct rd r = rd_make(g, cut);
        struct ul_pdv pdv;
        int rc;
        int n = 0;
        while ((rc = ul_next_pdv(&r, &pdv)) == 1)
            n++;
        if (cut == 0 || cut == mid) {
            cr_assert_eq(rc, 0, "cut %zu", cut);
        } else {
            cr_assert_eq(rc, ERR_MALFORMED, "cut %zu", cut);
            size_t before = cut < mid ? 0 : mid;
            cr_assert_eq(r.pos, before, "cursor left at the broken PDV");
        }
        cr_assert_eq(n, cut >= mid ? 1 : 0);
        guard_free(g, cut);
    }
    free(x);
}

Test(ul, pdata_pdv_length_at_0_1_2_max_max1_and_all_ones)
{
    const uint8_t body[10] = {0, 0, 0, 0, 1, 0x02, 'a', 'b', 'c', 'd'};
    struct {
        uint32_t len;
        int want;
    } cases[] = {{0, ERR_MALFORMED}, {1, ERR_MALFORMED}, {2, 1}, {6, 1}, {7, ERR_MALFORMED},
                 {0xffffffffu, ERR_MALFORMED}, {0x80000000u, ERR_MALFORMED}};
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint8_t b[10];
        memcpy(b, body, 10);
        b[0] = (uint8_t)(cases[i].len >> 24);
        b[1] = (uint8_t)(cases[i].len >> 16);
        b[2] = (uint8_t)(cases[i].len >> 8);
        b[3] = (uint8_t)cases[i].len;
        const uint8_t *g = guard_copy(b, 10);
        struct rd r = rd_make(g, 10);
        struct ul_pdv pdv;
        cr_assert_eq(ul_next_pdv(&r, &pdv), cases[i].want, "PDV length %u", cases[i].len);
        if (cases[i].want < 0)
            cr_assert_eq(r.pos, 0);
        else
            cr_assert_eq(pdv.data.len, cases[i].len - 2);
        guard_free(g, 10);
    }
}

Test(ul, pdata_reserved_control_bits_are_malformed)
{
    for (unsigned bit = 2; bit < 8; bit++) {
        uint8_t b[7] = {0, 0, 0, 3, 1, (uint8_t)(1u << bit), 'x'};
        const uint8_t *g = guard_copy(b, 7);
        struct rd r = rd_make(g, 7);
        struct ul_pdv pdv;
        cr_assert_eq(ul_next_pdv(&r, &pdv), ERR_MALFORMED, "bit %u", bit);
        guard_free(g, 7);
    }
}

Test(ul, pdata_trailing_garbage_after_the_last_pdv_is_malformed)
{
    for (size_t extra = 1; extra <= 5; extra++) {
        uint8_t b[12] = {0, 0, 0, 3, 1, 3, 'x', 0, 0, 0, 0, 0};
        size_t n = 7 + extra;
        const uint8_t *g = guard_copy(b, n);
        struct rd r = rd_make(g, n);
        struct ul_pdv pdv;
        cr_assert_eq(ul_next_pdv(&r, &pdv), 1);
        cr_assert_eq(ul_next_pdv(&r, &pdv), ERR_MALFORMED, "%zu trailing bytes", extra);
        guard_free(g, n);
    }
}

/* ---- A-ASSOCIATE-AC (the SCU-side parser) ---- */

static struct bld *full_ac(void)
{
    struct bld *x = bld_new();
    rq_head(x, "DICOM_CORE", "MODALITY1");
    item_str(x, 0x10, APP);
    size_t p = open16(x, 0x21);
    u8(x, 1);
    u8(x, 0);
    u8(x, 0);
    u8(x, 0);
    item_str(x, 0x40, IMPL);
    close16(x, p);
    p = open16(x, 0x21);
    u8(x, 3);
    u8(x, 0);
    u8(x, 3);
    u8(x, 0);
    item_str(x, 0x40, "");
    close16(x, p);
    size_t ui = open16(x, 0x50);
    size_t m = open16(x, 0x51);
    u32(x, 262144);
    close16(x, m);
    item_str(x, 0x52, "1.2.3.4");
    item_str(x, 0x55, "GW_0.1");
    close16(x, ui);
    return x;
}

Test(ul, assoc_ac_valid_case)
{
    struct bld *x = full_ac();
    const uint8_t *g = guard_copy(x->b, x->n);
    struct rd r = rd_make(g, x->n);
    struct ul_assoc_ac *ac = malloc(sizeof *ac);
    cr_assert_eq(ul_parse_assoc_ac(&r, ac), 0);
    cr_assert_eq(ac->n_pctx, 2);
    cr_assert_eq(ac->pctx[0].id, 1);
    cr_assert_eq(ac->pctx[0].result, UL_PCTX_ACCEPT);
    cr_assert(slice_eq_str(ac->pctx[0].ts, IMPL));
    cr_assert_eq(ac->pctx[1].result, UL_PCTX_ABSTRACT_NOT_SUPPORTED);
    cr_assert_eq(ac->ui.max_len, 262144);
    cr_assert_str_eq(ac->called, "DICOM_CORE");
    guard_free(g, x->n);
    free(ac);
    free(x);
}

Test(ul, assoc_ac_cuts_and_overrunning_lengths_never_read_past_the_body)
{
    struct bld *x = full_ac();
    struct ul_assoc_ac *ac = malloc(sizeof *ac);
    for (size_t cut = 0; cut < 68; cut++) {
        const uint8_t *g = guard_copy(x->b, cut);
        struct rd r = rd_make(g, cut);
        cr_assert_eq(ul_parse_assoc_ac(&r, ac), ERR_TRUNCATED, "cut %zu", cut);
        guard_free(g, cut);
    }
    for (size_t cut = 68; cut < x->n; cut++) {
        const uint8_t *g = guard_copy(x->b, cut);
        struct rd r = rd_make(g, cut);
        (void)!ul_parse_assoc_ac(&r, ac); /* item boundaries may parse; nothing may overrun */
        cr_assert_leq(r.pos, cut);
        guard_free(g, cut);
    }
    uint8_t *b = malloc(x->n);
    for (size_t i = 0; i < x->n_lens; i++) {
        struct lenfield f = x->lens[i];
        uint64_t max = x->n - f.off - (size_t)f.width;
        const uint64_t vals[] = {0, max, max + 1, 0xffff};
        for (size_t k = 0; k < 4; k++) {
            memcpy(b, x->b, x->n);
            set_len(b, f, vals[k]);
            const uint8_t *g = guard_copy(b, x->n);
            struct rd r = rd_make(g, x->n);
            int rc = ul_parse_assoc_ac(&r, ac);
            if (k >= 2)
                cr_assert_lt(rc, 0, "field at %zu = %llu", f.off, (unsigned long long)vals[k]);
            guard_free(g, x->n);
        }
    }
    free(b);
    free(ac);
    free(x);
}

/* ---- encoders: exact bytes ---- */

static void assert_wbuf_eq(const struct wbuf *w, const uint8_t *want, size_t n)
{
    cr_assert_eq(w->len, n, "encoded %zu bytes, want %zu", w->len, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(w->p[i], want[i], "byte %zu: 0x%02x, want 0x%02x", i, w->p[i], want[i]);
}

Test(ul, encode_short_pdus_exactly_as_ps3_8_9_3_4_to_9_3_8)
{
    struct wbuf w;
    wbuf_init(&w, 1024);
    /* 9.3.4 A-ASSOCIATE-RJ: type 03, reserved, length 4, reserved, result, source, reason */
    cr_assert_eq(ul_encode_assoc_rj(&w, UL_RJ_PERMANENT, UL_RJ_SRC_USER, UL_RJ_USER_CALLED_AE), 0);
    assert_wbuf_eq(&w, (const uint8_t[]){3, 0, 0, 0, 0, 4, 0, 1, 1, 7}, 10);
    wbuf_reset(&w);
    cr_assert_eq(ul_encode_assoc_rj(&w, UL_RJ_TRANSIENT, UL_RJ_SRC_PRES, UL_RJ_PRES_LOCAL_LIMIT),
                 0);
    assert_wbuf_eq(&w, (const uint8_t[]){3, 0, 0, 0, 0, 4, 0, 2, 3, 2}, 10);
    wbuf_reset(&w);
    /* 9.3.6 / 9.3.7 A-RELEASE-RQ / RP: 4 reserved bytes */
    cr_assert_eq(ul_encode_release_rq(&w), 0);
    assert_wbuf_eq(&w, (const uint8_t[]){5, 0, 0, 0, 0, 4, 0, 0, 0, 0}, 10);
    wbuf_reset(&w);
    cr_assert_eq(ul_encode_release_rp(&w), 0);
    assert_wbuf_eq(&w, (const uint8_t[]){6, 0, 0, 0, 0, 4, 0, 0, 0, 0}, 10);
    wbuf_reset(&w);
    /* 9.3.8 A-ABORT: reserved, reserved, source, reason/diag */
    cr_assert_eq(ul_encode_abort(&w, UL_ABORT_SRC_PROVIDER, UL_ABORT_UNEXPECTED_PDU), 0);
    assert_wbuf_eq(&w, (const uint8_t[]){7, 0, 0, 0, 0, 4, 0, 0, 2, 2}, 10);
    wbuf_reset(&w);
    cr_assert_eq(ul_encode_abort(&w, UL_ABORT_SRC_USER, 0), 0);
    assert_wbuf_eq(&w, (const uint8_t[]){7, 0, 0, 0, 0, 4, 0, 0, 0, 0}, 10);
    wbuf_cleanup(&w);
}

Test(ul, encode_pdata_exactly_as_ps3_8_9_3_5)
{
    struct wbuf w;
    wbuf_init(&w, 1024);
    cr_assert_eq(ul_encode_pdata(&w, 5, true, true, (const uint8_t *)"HELLO", 5), 0);
    const uint8_t want[] = {4, 0, 0, 0, 0, 11, 0, 0, 0, 7, 5, 3, 'H', 'E', 'L', 'L', 'O'};
    assert_wbuf_eq(&w, want, sizeof want);
    wbuf_reset(&w);
    cr_assert_eq(ul_encode_pdata(&w, 7, false, false, NULL, 0), 0);
    assert_wbuf_eq(&w, (const uint8_t[]){4, 0, 0, 0, 0, 6, 0, 0, 0, 2, 7, 0}, 12);
    wbuf_reset(&w);
    cr_assert_eq(ul_encode_pdata(&w, 7, false, true, (const uint8_t *)"x", 1), 0);
    cr_assert_eq(w.p[11], 0x02, "data, last fragment");
    wbuf_reset(&w);
    cr_assert_eq(ul_encode_pdata(&w, 7, true, false, (const uint8_t *)"x", 1), 0);
    cr_assert_eq(w.p[11], 0x01, "command, not last");
    wbuf_cleanup(&w);
}

Test(ul, encode_assoc_ac_exactly_as_ps3_8_9_3_3)
{
    struct ul_assoc_ac *ac = calloc(1, sizeof *ac);
    ac->protocol_version = 1;
    memcpy(ac->called, "DICOM_CORE", 11);
    memcpy(ac->calling, "MODALITY1", 10);
    ac->n_pctx = 2;
    ac->pctx[0] = (struct ul_pctx_ac){1, UL_PCTX_ACCEPT, {(const uint8_t *)IMPL, strlen(IMPL)}};
    ac->pctx[1] = (struct ul_pctx_ac){3, UL_PCTX_ABSTRACT_NOT_SUPPORTED, {NULL, 0}};
    ac->ui.max_len = 262144;
    ac->ui.impl_uid = (struct slice){(const uint8_t *)"1.2.3.4", 7};
    ac->ui.impl_version = (struct slice){(const uint8_t *)"GW_0.1", 6};
    struct wbuf w;
    wbuf_init(&w, 65536);
    cr_assert_eq(ul_encode_assoc_ac(&w, ac), 0);

    struct bld *x = full_ac(); /* the same AC assembled by hand from the tables */
    struct bld *pdu = bld_new();
    u8(pdu, 0x02);
    u8(pdu, 0);
    u32(pdu, (uint32_t)x->n);
    put(pdu, x->b, x->n);
    assert_wbuf_eq(&w, pdu->b, pdu->n);
    wbuf_cleanup(&w);
    free(pdu);
    free(x);
    free(ac);
}

Test(ul, encode_assoc_rq_then_parse_round_trips)
{
    struct ul_assoc_rq *rq = calloc(1, sizeof *rq);
    rq->protocol_version = 1;
    memcpy(rq->called, "DICOM_CORE", 11);
    memcpy(rq->calling, "SCU", 4);
    rq->n_pctx = 3;
    const char *abs[3] = {VERIF, CT, MR};
    for (int i = 0; i < 3; i++) {
        rq->pctx[i].id = (uint8_t)(2 * i + 1);
        rq->pctx[i].abstract = (struct slice){(const uint8_t *)abs[i], strlen(abs[i])};
        rq->pctx[i].n_ts = 2;
        rq->pctx[i].ts[0] = (struct slice){(const uint8_t *)EXPL, strlen(EXPL)};
        rq->pctx[i].ts[1] = (struct slice){(const uint8_t *)IMPL, strlen(IMPL)};
    }
    rq->ui.max_len = 16384;
    rq->ui.impl_uid = (struct slice){(const uint8_t *)"1.2.3", 5};
    rq->ui.impl_version = (struct slice){(const uint8_t *)"V1", 2};
    rq->ui.has_async = true;
    rq->ui.ops_invoked = 1;
    rq->ui.ops_performed = 1;
    rq->ui.n_roles = 1;
    rq->ui.roles[0] = (struct ul_role){{(const uint8_t *)CT, strlen(CT)}, 0, 1};
    struct wbuf w;
    wbuf_init(&w, 65536);
    cr_assert_eq(ul_encode_assoc_rq(&w, rq), 0);
    uint8_t type;
    uint32_t blen;
    cr_assert_eq(ul_frame(w.p, w.len, UL_PRE_ASSOC_MAX, &type, &blen), (int64_t)w.len);
    cr_assert_eq(type, UL_ASSOC_RQ);
    /* the fixed part per 9.3.2: version, reserved, called, calling, 32 reserved, then item 10 */
    cr_assert_eq(w.p[6], 0);
    cr_assert_eq(w.p[7], 1);
    cr_assert_eq(memcmp(w.p + 10, "DICOM_CORE      SCU             ", 32), 0);
    for (int i = 42; i < 74; i++)
        cr_assert_eq(w.p[i], 0);
    cr_assert_eq(w.p[74], 0x10);

    struct ul_assoc_rq *back = rq_alloc();
    uint8_t reason;
    cr_assert_eq(parse_rq_guarded(w.p + 6, w.len - 6, back, &reason, NULL), 0);
    cr_assert_str_eq(back->called, "DICOM_CORE");
    cr_assert_str_eq(back->calling, "SCU");
    cr_assert(slice_eq_str(back->app_context, APP), "default application context");
    cr_assert_eq(back->n_pctx, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(back->pctx[i].id, 2 * i + 1);
        cr_assert(slice_eq_str(back->pctx[i].abstract, abs[i]));
        cr_assert_eq(back->pctx[i].n_ts, 2);
        cr_assert(slice_eq_str(back->pctx[i].ts[1], IMPL));
    }
    cr_assert_eq(back->ui.max_len, 16384);
    cr_assert(slice_eq_str(back->ui.impl_uid, "1.2.3"));
    cr_assert(slice_eq_str(back->ui.impl_version, "V1"));
    cr_assert(back->ui.has_async);
    cr_assert_eq(back->ui.n_roles, 1);
    cr_assert_eq(back->ui.roles[0].scp, 1);
    cr_assert_eq(back->glitches, 0);
    wbuf_cleanup(&w);
    free(back);
    free(rq);
}

Test(ul, encoders_report_a_full_buffer_or_an_item_over_64k)
{
    struct wbuf w;
    wbuf_init(&w, 9);
    cr_assert_eq(ul_encode_abort(&w, 0, 0), ERR_LIMIT, "10 bytes into a 9-byte cap");
    wbuf_cleanup(&w);

    struct ul_assoc_ac *ac = calloc(1, sizeof *ac);
    ac->protocol_version = 1;
    memcpy(ac->called, "A", 2);
    memcpy(ac->calling, "B", 2);
    uint8_t *big = malloc(70000);
    memset(big, '1', 70000);
    ac->ui.impl_uid = (struct slice){big, 70000};
    wbuf_init(&w, 1 << 20);
    cr_assert_eq(ul_encode_assoc_ac(&w, ac), ERR_LIMIT);
    wbuf_cleanup(&w);
    free(big);
    free(ac);
}

Test(ul, encode_assoc_rq_exactly_as_ps3_8_9_3_2)
{
    struct ul_assoc_rq *rq = calloc(1, sizeof *rq);
    rq->protocol_version = 1;
    memcpy(rq->called, "DICOM_CORE", 11);
    memcpy(rq->calling, "MODALITY1", 10);
    rq->n_pctx = 1;
    rq->pctx[0].id = 1;
    rq->pctx[0].abstract = (struct slice){(const uint8_t *)CT, strlen(CT)};
    rq->pctx[0].n_ts = 2;
    rq->pctx[0].ts[0] = (struct slice){(const uint8_t *)EXPL, strlen(EXPL)};
    rq->pctx[0].ts[1] = (struct slice){(const uint8_t *)IMPL, strlen(IMPL)};
    rq->ui.max_len = 16384;
    rq->ui.impl_uid = (struct slice){(const uint8_t *)"1.2.3.4", 7};
    rq->ui.has_async = true;
    rq->ui.ops_invoked = 2;
    rq->ui.ops_performed = 1;
    rq->ui.n_roles = 1;
    rq->ui.roles[0] = (struct ul_role){{(const uint8_t *)CT, strlen(CT)}, 1, 0};
    rq->ui.impl_version = (struct slice){(const uint8_t *)"V1", 2};
    struct wbuf w;
    wbuf_init(&w, 65536);
    cr_assert_eq(ul_encode_assoc_rq(&w, rq), 0);

    /* by hand: 9.3.2 fixed fields; items 10H, 20H (30H, 40H, 40H), 50H (51H, 52H, 53H, 54H,
     * 55H per PS3.7 D.3.3) */
    struct bld *x = bld_new();
    rq_head(x, "DICOM_CORE", "MODALITY1");
    item_str(x, 0x10, APP);
    pctx_rq(x, 1, CT, EXPL, IMPL);
    size_t ui = open16(x, 0x50);
    size_t m = open16(x, 0x51);
    u32(x, 16384);
    close16(x, m);
    item_str(x, 0x52, "1.2.3.4");
    size_t a = open16(x, 0x53);
    u16(x, 2);
    u16(x, 1);
    close16(x, a);
    size_t r = open16(x, 0x54);
    size_t rl = open_len16(x);
    str(x, CT);
    close16(x, rl);
    u8(x, 1);
    u8(x, 0);
    close16(x, r);
    item_str(x, 0x55, "V1");
    close16(x, ui);
    struct bld *pdu = bld_new();
    u8(pdu, 0x01);
    u8(pdu, 0);
    u32(pdu, (uint32_t)x->n);
    put(pdu, x->b, x->n);
    assert_wbuf_eq(&w, pdu->b, pdu->n);
    wbuf_cleanup(&w);
    free(pdu);
    free(x);
    free(rq);
}
