/* dimse: command sets (PS3.7 9.3 and Annex E), implicit VR little endian with a group length.
 * The parser is tested at every cut, with every element length at 0 / max / max+1 /
 * 0xFFFFFFFF, the group length's value off by one either way, and trailing garbage; encoders
 * byte for byte against command sets assembled here from the standard's tables. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dimse.h"
#include "guard.h"

#define VERIF "1.2.840.10008.1.1"
#define CT "1.2.840.10008.5.1.4.1.1.2"
#define INST "1.2.826.0.1.3680043.9.7433.1.1"

struct cb {
    uint8_t b[4096];
    size_t n;
    size_t lens[32]; /* offsets of the 32-bit element length fields */
    size_t n_lens;
};

static void le16(struct cb *c, uint16_t v)
{
    c->b[c->n++] = (uint8_t)v;
    c->b[c->n++] = (uint8_t)(v >> 8);
}

static void le32(struct cb *c, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        c->b[c->n++] = (uint8_t)(v >> (8 * i));
}

static void hdr(struct cb *c, uint16_t elem, uint32_t len)
{
    le16(c, 0x0000);
    le16(c, elem);
    c->lens[c->n_lens++] = c->n;
    le32(c, len);
}

static void us(struct cb *c, uint16_t elem, uint16_t v)
{
    hdr(c, elem, 2);
    le16(c, v);
}

/* UI: padded with one NUL to even length (PS3.5 9.1); other text with a space */
static void text(struct cb *c, uint16_t elem, const char *s, char pad)
{
    size_t n = strlen(s);
    hdr(c, elem, (uint32_t)(n + (n & 1)));
    memcpy(c->b + c->n, s, n);
    c->n += n;
    if (n & 1)
        c->b[c->n++] = (uint8_t)pad;
}

static size_t group_begin(struct cb *c)
{
    hdr(c, 0x0000, 4);
    size_t at = c->n;
    le32(c, 0);
    return at;
}

static void group_end(struct cb *c, size_t at)
{
    uint32_t v = (uint32_t)(c->n - at - 4);
    for (int i = 0; i < 4; i++)
        c->b[at + i] = (uint8_t)(v >> (8 * i));
}

/* C-STORE-RQ (PS3.7 Table 9.3-1) */
static struct cb *store_rq(void)
{
    struct cb *c = calloc(1, sizeof *c);
    size_t at = group_begin(c);
    text(c, 0x0002, CT, '\0');
    us(c, 0x0100, DIMSE_C_STORE_RQ);
    us(c, 0x0110, 0x1234);
    us(c, 0x0700, 2);
    us(c, 0x0800, 0x0000);
    text(c, 0x1000, INST, '\0');
    text(c, 0x1030, "MOVER", ' ');
    us(c, 0x1031, 77);
    group_end(c, at);
    return c;
}

static int parse_guarded(const uint8_t *p, size_t n, struct dimse_cmd *cmd, size_t *pos)
{
    const uint8_t *g = guard_copy(p, n);
    struct rd r = rd_make(g, n);
    int rc = dimse_parse_cmd(&r, cmd);
    cr_assert_leq(r.pos, n);
    if (pos)
        *pos = r.pos;
    guard_free(g, n);
    return rc;
}

Test(dimse, store_rq_valid_case_reads_every_field)
{
    struct cb *c = store_rq();
    struct dimse_cmd cmd;
    size_t pos;
    cr_assert_eq(parse_guarded(c->b, c->n, &cmd, &pos), 0);
    cr_assert_eq(pos, c->n);
    cr_assert(cmd.has_command_field);
    cr_assert_eq(cmd.command_field, DIMSE_C_STORE_RQ);
    cr_assert(cmd.has_message_id);
    cr_assert_eq(cmd.message_id, 0x1234);
    cr_assert_eq(cmd.priority, 2);
    cr_assert(cmd.has_data_set_type);
    cr_assert_eq(cmd.data_set_type, 0);
    cr_assert_str_eq(cmd.affected_sop_class, CT);
    cr_assert_str_eq(cmd.affected_sop_instance, INST, "the NUL pad is not part of the UID");
    cr_assert_str_eq(cmd.move_originator_ae, "MOVER");
    cr_assert_eq(cmd.move_originator_id, 77);
    free(c);
}

Test(dimse, cut_at_every_offset_is_an_error)
{
    struct cb *c = store_rq();
    for (size_t cut = 1; cut < c->n; cut++) {
        struct dimse_cmd cmd;
        int rc = parse_guarded(c->b, cut, &cmd, NULL);
        cr_assert(rc == ERR_TRUNCATED || rc == ERR_MALFORMED, "cut %zu of %zu: rc %d", cut, c->n,
                  rc);
    }
    struct dimse_cmd cmd;
    int rc = parse_guarded(c->b, 0, &cmd, NULL);
    cr_assert(rc < 0 || !cmd.has_command_field, "an empty command set has no command");
    free(c);
}

Test(dimse, every_element_length_at_0_max_max1_and_all_ones)
{
    struct cb *c = store_rq();
    uint8_t *b = malloc(c->n);
    for (size_t i = 0; i < c->n_lens; i++) {
        size_t off = c->lens[i];
        uint32_t orig = (uint32_t)c->b[off] | (uint32_t)c->b[off + 1] << 8 |
                        (uint32_t)c->b[off + 2] << 16 | (uint32_t)c->b[off + 3] << 24;
        uint32_t max = (uint32_t)(c->n - off - 4);
        const uint32_t vals[] = {0, max, max + 1, 0xffffffffu};
        for (size_t k = 0; k < 4; k++) {
            if (vals[k] == orig)
                continue;
            memcpy(b, c->b, c->n);
            for (int j = 0; j < 4; j++)
                b[off + (size_t)j] = (uint8_t)(vals[k] >> (8 * j));
            struct dimse_cmd cmd;
            int rc = parse_guarded(b, c->n, &cmd, NULL);
            cr_assert_lt(rc, 0, "length at %zu set to %u parsed as valid", off, vals[k]);
        }
    }
    free(b);
    free(c);
}

Test(dimse, group_length_value_must_match_the_content)
{
    struct cb *c = store_rq();
    uint32_t glen = (uint32_t)(c->n - 12);
    const uint32_t vals[] = {0, glen - 1, glen + 1, 0xffffffffu};
    for (size_t k = 0; k < 4; k++) {
        struct cb d = *c;
        for (int j = 0; j < 4; j++)
            d.b[8 + j] = (uint8_t)(vals[k] >> (8 * j));
        struct dimse_cmd cmd;
        cr_assert_eq(parse_guarded(d.b, d.n, &cmd, NULL), ERR_MALFORMED, "group length %u",
                     vals[k]);
    }
    free(c);
}

Test(dimse, trailing_garbage_after_the_group_is_malformed)
{
    for (size_t extra = 1; extra <= 12; extra++) {
        struct cb *c = store_rq();
        for (size_t i = 0; i < extra; i++)
            c->b[c->n++] = 0;
        struct dimse_cmd cmd;
        cr_assert_lt(parse_guarded(c->b, c->n, &cmd, NULL), 0, "%zu trailing bytes", extra);
        free(c);
    }
}

Test(dimse, elements_outside_group_0000_wrong_us_lengths_and_long_uids_are_malformed)
{
    struct dimse_cmd cmd;
    struct cb *c = calloc(1, sizeof *c);
    size_t at = group_begin(c);
    us(c, 0x0100, 0x0030);
    le16(c, 0x0008); /* (0008,0018) in a command set */
    le16(c, 0x0018);
    le32(c, 2);
    le16(c, 0x3131);
    group_end(c, at);
    cr_assert_eq(parse_guarded(c->b, c->n, &cmd, NULL), ERR_MALFORMED);

    memset(c, 0, sizeof *c);
    at = group_begin(c);
    hdr(c, 0x0100, 4); /* US with 4 bytes */
    le32(c, 0x0030);
    group_end(c, at);
    cr_assert_eq(parse_guarded(c->b, c->n, &cmd, NULL), ERR_MALFORMED);

    memset(c, 0, sizeof *c);
    at = group_begin(c);
    char uid65[66];
    memset(uid65, '1', 65);
    uid65[65] = '\0';
    text(c, 0x1000, uid65, '\0');
    us(c, 0x0100, 0x0001);
    group_end(c, at);
    cr_assert_eq(parse_guarded(c->b, c->n, &cmd, NULL), ERR_MALFORMED, "UID of 65 characters");

    memset(c, 0, sizeof *c);
    at = group_begin(c);
    text(c, 0x0002, "1.2.\x01.4", '\0');
    group_end(c, at);
    cr_assert_eq(parse_guarded(c->b, c->n, &cmd, NULL), ERR_MALFORMED, "control character");

    memset(c, 0, sizeof *c);
    at = group_begin(c);
    hdr(c, 0x0002, 0xffffffffu); /* undefined length is not allowed in a command set */
    group_end(c, at);
    cr_assert_eq(parse_guarded(c->b, c->n, &cmd, NULL), ERR_MALFORMED);

    memset(c, 0, sizeof *c);
    at = group_begin(c);
    hdr(c, 0x0000, 4); /* a second group length later on is just an unknown element */
    le32(c, 0);
    us(c, 0x0100, 0x0030);
    group_end(c, at);
    cr_assert_eq(parse_guarded(c->b, c->n, &cmd, NULL), 0);
    cr_assert_eq(cmd.command_field, 0x0030);
    free(c);
}

Test(dimse, a_64_character_uid_is_accepted)
{
    struct cb *c = calloc(1, sizeof *c);
    size_t at = group_begin(c);
    char uid64[65];
    memset(uid64, '2', 64);
    uid64[64] = '\0';
    text(c, 0x1000, uid64, '\0');
    us(c, 0x0100, 0x0001);
    group_end(c, at);
    struct dimse_cmd cmd;
    cr_assert_eq(parse_guarded(c->b, c->n, &cmd, NULL), 0);
    cr_assert_str_eq(cmd.affected_sop_instance, uid64);
    free(c);
}

Test(dimse, unknown_command_elements_are_skipped)
{
    struct cb *c = calloc(1, sizeof *c);
    size_t at = group_begin(c);
    us(c, 0x0100, 0x0020); /* C-FIND-RQ */
    us(c, 0x0110, 5);
    hdr(c, 0x0901, 8);     /* Offending Element, AT */
    le32(c, 0x00100010);
    le32(c, 0x00200020);
    group_end(c, at);
    struct dimse_cmd cmd;
    cr_assert_eq(parse_guarded(c->b, c->n, &cmd, NULL), 0);
    cr_assert_eq(cmd.command_field, DIMSE_C_FIND_RQ);
    cr_assert_eq(cmd.message_id, 5);
    cr_assert_not(cmd.has_data_set_type);
    free(c);
}

static void assert_bytes(const struct wbuf *w, const struct cb *want)
{
    cr_assert_eq(w->len, want->n, "encoded %zu bytes, want %zu", w->len, want->n);
    for (size_t i = 0; i < want->n; i++)
        cr_assert_eq(w->p[i], want->b[i], "byte %zu: 0x%02x, want 0x%02x", i, w->p[i],
                     want->b[i]);
}

Test(dimse, echo_rsp_is_encoded_exactly_as_ps3_7_table_9_3_13)
{
    struct wbuf w;
    wbuf_init(&w, DIMSE_CMD_MAX);
    cr_assert_eq(dimse_encode_rsp(&w, DIMSE_C_ECHO_RQ, 7, VERIF, NULL, DIMSE_SUCCESS, NULL), 0);
    struct cb *c = calloc(1, sizeof *c);
    size_t at = group_begin(c);
    text(c, 0x0002, VERIF, '\0');
    us(c, 0x0100, DIMSE_C_ECHO_RSP);
    us(c, 0x0120, 7); /* Message ID Being Responded To */
    us(c, 0x0800, 0x0101);
    us(c, 0x0900, 0x0000);
    group_end(c, at);
    assert_bytes(&w, c);
    wbuf_cleanup(&w);
    free(c);
}

Test(dimse, store_rsp_with_comment_is_encoded_exactly_as_ps3_7_table_9_3_2)
{
    struct wbuf w;
    wbuf_init(&w, DIMSE_CMD_MAX);
    cr_assert_eq(dimse_encode_rsp(&w, DIMSE_C_STORE_RQ, 0x1234, CT, INST, DIMSE_OUT_OF_RESOURCES,
                                  "disk full"),
                 0);
    struct cb *c = calloc(1, sizeof *c);
    size_t at = group_begin(c);
    text(c, 0x0002, CT, '\0');
    us(c, 0x0100, DIMSE_C_STORE_RSP);
    us(c, 0x0120, 0x1234);
    us(c, 0x0800, 0x0101);
    us(c, 0x0900, 0xA700);
    text(c, 0x0902, "disk full", ' ');
    text(c, 0x1000, INST, '\0');
    group_end(c, at);
    assert_bytes(&w, c);
    /* and the response parses back (elements ascending, group length right) */
    struct dimse_cmd cmd;
    cr_assert_eq(parse_guarded(w.p, w.len, &cmd, NULL), 0);
    cr_assert_eq(cmd.command_field, DIMSE_C_STORE_RSP);
    cr_assert_str_eq(cmd.affected_sop_instance, INST);
    wbuf_cleanup(&w);
    free(c);
}

Test(dimse, elements_are_in_ascending_tag_order)
{
    struct wbuf w;
    wbuf_init(&w, DIMSE_CMD_MAX);
    cr_assert_eq(dimse_encode_rsp(&w, DIMSE_C_STORE_RQ, 1, CT, INST, 0xC000, "x"), 0);
    uint16_t last = 0;
    for (size_t i = 0; i < w.len;) {
        uint16_t e = (uint16_t)(w.p[i + 2] | w.p[i + 3] << 8);
        uint32_t n = (uint32_t)w.p[i + 4] | (uint32_t)w.p[i + 5] << 8 |
                     (uint32_t)w.p[i + 6] << 16 | (uint32_t)w.p[i + 7] << 24;
        cr_assert(i == 0 || e > last, "element %04x after %04x", e, last);
        cr_assert_eq(n % 2, 0, "element %04x has odd length %u", e, n);
        last = e;
        i += 8 + n;
    }
    wbuf_cleanup(&w);
}

Test(dimse, request_encoder_round_trips)
{
    struct wbuf w;
    wbuf_init(&w, DIMSE_CMD_MAX);
    cr_assert_eq(dimse_encode_rq(&w, DIMSE_C_STORE_RQ, 99, CT, INST, true), 0);
    struct dimse_cmd cmd;
    cr_assert_eq(parse_guarded(w.p, w.len, &cmd, NULL), 0);
    cr_assert_eq(cmd.command_field, DIMSE_C_STORE_RQ);
    cr_assert_eq(cmd.message_id, 99);
    cr_assert_eq(cmd.data_set_type, 0);
    cr_assert_str_eq(cmd.affected_sop_class, CT);
    cr_assert_str_eq(cmd.affected_sop_instance, INST);
    wbuf_reset(&w);
    cr_assert_eq(dimse_encode_rq(&w, DIMSE_C_ECHO_RQ, 1, VERIF, NULL, false), 0);
    cr_assert_eq(parse_guarded(w.p, w.len, &cmd, NULL), 0);
    cr_assert_eq(cmd.data_set_type, DIMSE_NO_DATASET);
    cr_assert_str_eq(cmd.affected_sop_instance, "");
    wbuf_cleanup(&w);
}

Test(dimse, encoder_reports_a_full_buffer)
{
    struct wbuf w;
    wbuf_init(&w, 20);
    cr_assert_eq(dimse_encode_rsp(&w, DIMSE_C_ECHO_RQ, 1, VERIF, NULL, 0, NULL), ERR_LIMIT);
    wbuf_cleanup(&w);
}
