/* hex: the encoder writes lowercase digits and a NUL; the decoder takes either case, refuses odd
 * lengths and non-hex characters, and stops at a NUL without reading past it. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "common/hex.h"
#include "guard.h"

Test(hex, decode_reads_either_case_and_returns_the_bytes_written)
{
    uint8_t out[4] = {0};
    cr_assert_eq(hex_decode("00fFa5", 6, out, sizeof out), 3);
    cr_assert_eq(out[0], 0x00);
    cr_assert_eq(out[1], 0xff);
    cr_assert_eq(out[2], 0xa5);
    cr_assert_eq(hex_decode("", 0, out, 0), 0);
}

Test(hex, decode_refuses_odd_counts_non_digits_and_overflow)
{
    uint8_t out[2];
    cr_assert_eq(hex_decode("abc", 3, out, sizeof out), ERR_MALFORMED);
    cr_assert_eq(hex_decode("0g", 2, out, sizeof out), ERR_MALFORMED);
    cr_assert_eq(hex_decode("g0", 2, out, sizeof out), ERR_MALFORMED);
    cr_assert_eq(hex_decode(":0", 2, out, sizeof out), ERR_MALFORMED);
    cr_assert_eq(hex_decode("000000", 6, out, sizeof out), ERR_MALFORMED);
}

Test(hex, decode_reads_no_further_than_hexlen)
{
    const uint8_t *in = guard_copy("0102", 4); /* the next byte sits on a PROT_NONE page */
    uint8_t out[2];
    cr_assert_eq(hex_decode((const char *)in, 4, out, sizeof out), 2);
    cr_assert_eq(out[1], 2);
    guard_free(in, 4);
}

Test(hex, lower_and_decode_round_trip)
{
    uint8_t in[256], back[256];
    char txt[513];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)i;
    hex_lower(in, sizeof in, txt);
    cr_assert_eq(strlen(txt), 512);
    cr_assert_eq(hex_decode(txt, 512, back, sizeof back), 256);
    cr_assert_eq(memcmp(in, back, sizeof in), 0);
    cr_assert_eq(hex_value('9'), 9);
    cr_assert_eq(hex_value('B'), 11);
    cr_assert_eq(hex_value('x'), -1);
}

Test(hex, lower_writes_two_lowercase_digits_per_byte_and_a_nul)
{
    const uint8_t in[] = {0x00, 0x0f, 0xa5, 0xff};
    char out[9];
    memset(out, 'X', sizeof out);
    hex_lower(in, sizeof in, out);
    cr_assert_str_eq(out, "000fa5ff");
}

Test(hex, decode_takes_either_case_and_round_trips)
{
    uint8_t out[4] = {0};
    cr_assert_eq(hex_decode("000fA5fF", 8, out, sizeof out), 4);
    const uint8_t want[] = {0x00, 0x0f, 0xa5, 0xff};
    cr_assert_eq(memcmp(out, want, 4), 0);
    char back[9];
    hex_lower(out, 4, back);
    cr_assert_str_eq(back, "000fa5ff");
}

Test(hex, decode_of_nothing_is_nothing)
{
    uint8_t out[1] = {0x5a};
    cr_assert_eq(hex_decode("", 0, out, sizeof out), 0);
    cr_assert_eq(out[0], 0x5a);
}

Test(hex, decode_refuses_an_odd_length)
{
    uint8_t out[2];
    cr_assert_eq(hex_decode("abc", 3, out, sizeof out), ERR_MALFORMED);
}

Test(hex, decode_refuses_a_non_hex_character_at_every_position)
{
    static const char bad[] = {'g', 'G', ' ', '-', 'x', '/', ':', '@', '`', '\xff'};
    for (size_t pos = 0; pos < 4; pos++) {
        for (size_t k = 0; k < sizeof bad; k++) {
            char s[5] = "0a1B";
            s[pos] = bad[k];
            uint8_t out[2];
            cr_assert_eq(hex_decode(s, 4, out, sizeof out), ERR_MALFORMED, "pos %zu char 0x%02x", pos,
                         (unsigned)(uint8_t)bad[k]);
        }
    }
}

Test(hex, decode_stops_at_a_nul_without_reading_past_it)
{
    /* the NUL is the last readable byte: a decoder that read the pair's second digit first, or
     * went on after the NUL, would touch the guard page */
    const uint8_t *in = guard_copy("ab\0", 3);
    uint8_t out[2] = {0};
    cr_assert_eq(hex_decode((const char *)in, 4, out, sizeof out), ERR_MALFORMED);
    cr_assert_eq(out[0], 0xab);
    guard_free(in, 3);
}
