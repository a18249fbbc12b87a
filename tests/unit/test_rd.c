/* rd: every reader refuses short input without moving, reads exactly its bytes, and never
 * touches memory past the end (inputs sit against a PROT_NONE page). */
#include <criterion/criterion.h>
#include <string.h>

#include "common/rd.h"
#include "guard.h"

static const uint8_t bytes8[8] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};

Test(rd, u8_reads_one_byte_then_refuses)
{
    const uint8_t *in = guard_copy(bytes8, 1);
    struct rd r = rd_make(in, 1);
    uint8_t v = 0;
    cr_assert_eq(rd_u8(&r, &v), 0);
    cr_assert_eq(v, 0x01);
    cr_assert_eq(r.pos, 1);
    v = 0xAA;
    cr_assert_eq(rd_u8(&r, &v), ERR_TRUNCATED);
    cr_assert_eq(v, 0xAA, "output untouched on failure");
    cr_assert_eq(r.pos, 1);
    guard_free(in, 1);
}

Test(rd, integers_decode_both_byte_orders)
{
    const uint8_t *in = guard_copy(bytes8, 8);
    struct rd r = rd_make(in, 8);
    uint16_t a, c;
    uint32_t b;
    cr_assert_eq(rd_u16be(&r, &a), 0);
    cr_assert_eq(a, 0x0102);
    cr_assert_eq(rd_u32be(&r, &b), 0);
    cr_assert_eq(b, 0x03040506u);
    cr_assert_eq(rd_u16le(&r, &c), 0);
    cr_assert_eq(c, 0x0807);
    cr_assert_eq(rd_left(&r), 0);
    r = rd_make(in, 8);
    cr_assert_eq(rd_u32le(&r, &b), 0);
    cr_assert_eq(b, 0x04030201u);
    cr_assert_eq(rd_u32be(&r, &b), 0);
    cr_assert_eq(b, 0x05060708u);
    guard_free(in, 8);
}

Test(rd, high_bit_values_do_not_sign_extend)
{
    const uint8_t ff[4] = {0xff, 0xff, 0xff, 0xfe};
    const uint8_t *in = guard_copy(ff, 4);
    struct rd r = rd_make(in, 4);
    uint32_t v;
    cr_assert_eq(rd_u32be(&r, &v), 0);
    cr_assert_eq(v, 0xfffffffeu);
    r = rd_make(in, 4);
    cr_assert_eq(rd_u32le(&r, &v), 0);
    cr_assert_eq(v, 0xfeffffffu);
    guard_free(in, 4);
}

/* Every fixed-width reader at every shortfall: ERR_TRUNCATED, cursor unchanged. */
Test(rd, every_reader_refuses_every_short_input_without_moving)
{
    for (size_t n = 0; n < 4; n++) {
        const uint8_t *in = guard_copy(bytes8, n);
        struct rd r = rd_make(in, n);
        uint16_t v16 = 0x5555;
        uint32_t v32 = 0x55555555;
        if (n < 2) {
            cr_assert_eq(rd_u16be(&r, &v16), ERR_TRUNCATED);
            cr_assert_eq(rd_u16le(&r, &v16), ERR_TRUNCATED);
            cr_assert_eq(v16, 0x5555);
        }
        cr_assert_eq(rd_u32be(&r, &v32), ERR_TRUNCATED);
        cr_assert_eq(rd_u32le(&r, &v32), ERR_TRUNCATED);
        cr_assert_eq(v32, 0x55555555u);
        cr_assert_eq(r.pos, 0);
        guard_free(in, n);
    }
    /* and when the cursor has already moved */
    const uint8_t *in = guard_copy(bytes8, 5);
    struct rd r = rd_make(in, 5);
    uint32_t v;
    cr_assert_eq(rd_skip(&r, 2), 0);
    cr_assert_eq(rd_u32be(&r, &v), ERR_TRUNCATED);
    cr_assert_eq(r.pos, 2);
    guard_free(in, 5);
}

Test(rd, skip_sub_slice_copy_take_exactly_what_is_left)
{
    const uint8_t *in = guard_copy(bytes8, 8);
    struct rd r = rd_make(in, 8);
    struct rd sub;
    struct slice s;
    uint8_t out[8];
    cr_assert_eq(rd_skip(&r, 1), 0);
    cr_assert_eq(rd_sub(&r, 3, &sub), 0);
    cr_assert_eq(sub.len, 3);
    cr_assert_eq(sub.pos, 0);
    cr_assert_eq(sub.p, in + 1);
    cr_assert_eq(rd_slice(&r, 2, &s), 0);
    cr_assert_eq(s.p, in + 4);
    cr_assert_eq(s.len, 2);
    cr_assert_eq(rd_copy(&r, out, 2), 0);
    cr_assert_eq(out[0], 7);
    cr_assert_eq(out[1], 8);
    cr_assert_eq(rd_left(&r), 0);
    /* zero-length operations at the very end succeed and touch nothing */
    cr_assert_eq(rd_skip(&r, 0), 0);
    cr_assert_eq(rd_sub(&r, 0, &sub), 0);
    cr_assert_eq(sub.len, 0);
    cr_assert_eq(rd_slice(&r, 0, &s), 0);
    cr_assert_eq(rd_copy(&r, out, 0), 0);
    cr_assert_eq(r.pos, 8);
    guard_free(in, 8);
}

/* Lengths of n, left+1 and huge values (that would wrap pos + n) are refused unmoved. */
Test(rd, oversized_lengths_are_refused_without_wrapping)
{
    const uint8_t *in = guard_copy(bytes8, 8);
    const size_t bad[] = {9, 10, 0xffffffffu, SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 7};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rd r = rd_make(in, 8);
        cr_assert_eq(rd_skip(&r, 1), 0);
        struct rd sub = {NULL, 0, 0};
        struct slice s = {NULL, 0};
        uint8_t out[1] = {0x77};
        cr_assert_eq(rd_skip(&r, bad[i]), ERR_TRUNCATED);
        cr_assert_eq(rd_sub(&r, bad[i], &sub), ERR_TRUNCATED);
        cr_assert_eq(rd_slice(&r, bad[i], &s), ERR_TRUNCATED);
        cr_assert_eq(rd_copy(&r, out, bad[i]), ERR_TRUNCATED);
        cr_assert_eq(r.pos, 1);
        cr_assert_null(sub.p);
        cr_assert_null(s.p);
        cr_assert_eq(out[0], 0x77);
    }
    /* left + 1 where left is 7 */
    struct rd r = rd_make(in, 8);
    cr_assert_eq(rd_skip(&r, 1), 0);
    cr_assert_eq(rd_skip(&r, 8), ERR_TRUNCATED);
    cr_assert_eq(rd_skip(&r, 7), 0);
    guard_free(in, 8);
}

Test(rd, sub_reader_cannot_read_past_its_item)
{
    const uint8_t *in = guard_copy(bytes8, 8);
    struct rd r = rd_make(in, 8);
    struct rd sub;
    uint32_t v;
    cr_assert_eq(rd_sub(&r, 3, &sub), 0);
    cr_assert_eq(rd_u32be(&sub, &v), ERR_TRUNCATED, "the parent still has bytes, the item not");
    uint16_t w;
    cr_assert_eq(rd_u16be(&sub, &w), 0);
    cr_assert_eq(w, 0x0102);
    cr_assert_eq(rd_u16be(&sub, &w), ERR_TRUNCATED);
    cr_assert_eq(sub.pos, 2);
    guard_free(in, 8);
}

/* lengths come through a volatile so that GCC does not "prove" out-of-bounds reads on paths
 * that the loop's early returns make impossible (-Warray-bounds false positive) */
static struct slice mk(const char *p, size_t n)
{
    volatile size_t len = n;
    return (struct slice){(const uint8_t *)p, len};
}

Test(rd, slice_eq_str_compares_whole_strings)
{
    struct slice s = mk("1.2.840", 7);
    cr_assert(slice_eq_str(s, "1.2.840"));
    cr_assert_not(slice_eq_str(s, "1.2.84"));
    cr_assert_not(slice_eq_str(s, "1.2.8400"));
    cr_assert_not(slice_eq_str(s, ""));
    struct slice e = mk("", 0);
    cr_assert(slice_eq_str(e, ""));
    cr_assert_not(slice_eq_str(e, "x"));
    /* an embedded NUL in the slice never equals a C string's end */
    struct slice z = mk("ab\0", 3);
    cr_assert_not(slice_eq_str(z, "ab"));
}

Test(rd, zero_length_input_is_safe_at_a_guard_page)
{
    const uint8_t *in = guard_copy(bytes8, 0);
    struct rd r = rd_make(in, 0);
    uint8_t v;
    cr_assert_eq(rd_left(&r), 0);
    cr_assert_eq(rd_u8(&r, &v), ERR_TRUNCATED);
    cr_assert_eq(rd_skip(&r, 1), ERR_TRUNCATED);
    cr_assert_eq(rd_skip(&r, 0), 0);
    guard_free(in, 0);
}
