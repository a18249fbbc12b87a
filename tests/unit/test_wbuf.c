/* wbuf: appends are exact, the hard cap holds (sticky error, nothing written past it), and the
 * patch helpers never write outside what was appended. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "common/wbuf.h"

static void assert_bytes(const struct wbuf *b, const void *want, size_t n)
{
    cr_assert_eq(b->len, n, "length %zu, want %zu", b->len, n);
    cr_assert_eq(memcmp(b->p, want, n), 0);
}

Test(wbuf, init_allocates_nothing_and_cleanup_is_idempotent)
{
    struct wbuf b;
    wbuf_init(&b, 100);
    cr_assert_null(b.p);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.err, 0);
    wbuf_cleanup(&b);
    wbuf_cleanup(&b);
    cr_assert_null(b.p);
}

Test(wbuf, integers_are_written_in_the_stated_byte_order)
{
    struct wbuf b;
    wbuf_init(&b, 64);
    wbuf_u8(&b, 0x01);
    wbuf_u16be(&b, 0x0203);
    wbuf_u32be(&b, 0x04050607);
    wbuf_u16le(&b, 0x0908);
    wbuf_u32le(&b, 0x0d0c0b0a);
    wbuf_fill(&b, 0xee, 3);
    wbuf_str(&b, "AB");
    const uint8_t want[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0x0a, 0x0b, 0x0c, 0x0d, 0xee, 0xee, 0xee,
                            'A', 'B'};
    assert_bytes(&b, want, sizeof want);
    cr_assert_eq(b.err, 0);
    wbuf_cleanup(&b);
}

Test(wbuf, set_helpers_patch_in_place)
{
    struct wbuf b;
    wbuf_init(&b, 64);
    wbuf_fill(&b, 0, 10);
    wbuf_set_u32be(&b, 0, 0x11223344);
    wbuf_set_u16be(&b, 4, 0x5566);
    wbuf_set_u32le(&b, 6, 0x99887766);
    const uint8_t want[] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x66, 0x77, 0x88, 0x99};
    assert_bytes(&b, want, sizeof want);
    wbuf_cleanup(&b);
}

Test(wbuf, set_helpers_refuse_offsets_past_the_written_bytes)
{
    struct wbuf b;
    wbuf_init(&b, 64);
    wbuf_fill(&b, 0xab, 5);
    /* cap is larger than len: writing there would hit allocated but unwritten memory */
    wbuf_set_u32be(&b, 2, 0);          /* needs bytes 2..5, only 2..4 exist */
    wbuf_set_u32le(&b, 5, 0);
    wbuf_set_u16be(&b, 4, 0);
    wbuf_set_u16be(&b, SIZE_MAX, 0);   /* off + 2 would wrap */
    wbuf_set_u32be(&b, SIZE_MAX - 1, 0);
    const uint8_t want[] = {0xab, 0xab, 0xab, 0xab, 0xab};
    assert_bytes(&b, want, sizeof want);
    cr_assert_eq(b.len, 5);
    wbuf_cleanup(&b);
}

Test(wbuf, filling_exactly_to_the_cap_is_allowed)
{
    struct wbuf b;
    wbuf_init(&b, 1000);
    wbuf_fill(&b, 'x', 999);
    wbuf_u8(&b, 'y');
    cr_assert_eq(b.err, 0);
    cr_assert_eq(b.len, 1000);
    cr_assert_leq(b.cap, 1000, "never allocates past the hard cap");
    cr_assert_eq(b.p[999], 'y');
    wbuf_cleanup(&b);
}

Test(wbuf, passing_the_cap_is_a_sticky_error_and_writes_nothing)
{
    struct wbuf b;
    wbuf_init(&b, 8);
    wbuf_u32be(&b, 0x01020304);
    wbuf_u32be(&b, 0x05060708);
    cr_assert_eq(b.err, 0);
    wbuf_u8(&b, 9);
    cr_assert_eq(b.err, ERR_LIMIT);
    cr_assert_eq(b.len, 8);
    /* later appends, even ones that would fit after a reset, stay refused until reset */
    wbuf_u8(&b, 10);
    wbuf_put(&b, "", 0);
    cr_assert_eq(b.len, 8);
    cr_assert_eq(wbuf_reserve(&b, 0), ERR_LIMIT);
    wbuf_set_u32be(&b, 0, 0xffffffff); /* patching after an error is a no-op */
    cr_assert_eq(b.p[0], 1);
    wbuf_reset(&b);
    cr_assert_eq(b.err, 0);
    cr_assert_eq(b.len, 0);
    wbuf_u8(&b, 42);
    cr_assert_eq(b.len, 1);
    cr_assert_eq(b.p[0], 42);
    wbuf_cleanup(&b);
}

Test(wbuf, reserve_refuses_sizes_that_would_wrap)
{
    struct wbuf b;
    wbuf_init(&b, SIZE_MAX);
    wbuf_u8(&b, 1);
    cr_assert_eq(wbuf_reserve(&b, SIZE_MAX), ERR_LIMIT);
    cr_assert_eq(b.len, 1);
    cr_assert_eq(b.p[0], 1);
    wbuf_cleanup(&b);
}

Test(wbuf, zero_cap_refuses_the_first_byte)
{
    struct wbuf b;
    wbuf_init(&b, 0);
    wbuf_u8(&b, 1);
    cr_assert_eq(b.err, ERR_LIMIT);
    cr_assert_eq(b.len, 0);
    cr_assert_null(b.p);
    wbuf_cleanup(&b);
}

Test(wbuf, growth_keeps_earlier_bytes)
{
    struct wbuf b;
    wbuf_init(&b, 1 << 20);
    for (uint32_t i = 0; i < 100000; i++)
        wbuf_u32le(&b, i);
    cr_assert_eq(b.err, 0);
    cr_assert_eq(b.len, 400000);
    for (uint32_t i = 0; i < 100000; i += 997) {
        uint32_t v;
        memcpy(&v, b.p + 4 * i, 4);
        cr_assert_eq(v, i); /* little-endian host assumed by this check (x86-64, arm64) */
    }
    wbuf_cleanup(&b);
}

Test(wbuf, printf_appends_short_and_long_output)
{
    struct wbuf b;
    wbuf_init(&b, 4096);
    wbuf_printf(&b, "%s=%d;", "n", 42);
    cr_assert_eq(b.len, 5);
    cr_assert_eq(memcmp(b.p, "n=42;", 5), 0);
    /* longer than printf's 512-byte stack buffer */
    wbuf_printf(&b, "%1000d", 7);
    cr_assert_eq(b.err, 0);
    cr_assert_eq(b.len, 1005);
    cr_assert_eq(b.p[1004], '7');
    cr_assert_eq(b.p[5], ' ');
    wbuf_cleanup(&b);
}

Test(wbuf, printf_past_the_cap_is_a_sticky_error)
{
    struct wbuf b;
    wbuf_init(&b, 600);
    wbuf_printf(&b, "%700d", 1);
    cr_assert_eq(b.err, ERR_LIMIT);
    cr_assert_eq(b.len, 0);
    wbuf_printf(&b, "x");
    cr_assert_eq(b.len, 0);
    wbuf_cleanup(&b);
}
