#include <criterion/criterion.h>
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
