/* Tests for common/dcm_charset: Specific Character Set (0008,0005) terms, decoding to UTF-8 and
 * encoding back, for the default repertoire, ISO_IR 100 and ISO_IR 192 (PS3.5 6.1), and the
 * refusals (code extensions, other sets, invalid bytes). */
#include <criterion/criterion.h>
#include <string.h>

#include "common/dcm_charset.h"
#include "guard.h"

static int cs_of(const char *value, size_t n, enum dcm_charset *out)
{
    struct dcm_ds *ds = dcm_ds_new(NULL);
    cr_assert_not_null(ds);
    if (value)
        cr_assert_eq(dcm_ds_add_raw(ds, dcm_ds_root_mut(ds), DCM_TAG(0x0008, 0x0005), DCM_VR_CS,
                                    value, n),
                     0);
    int rc = dcm_charset_of(dcm_ds_root(ds), out);
    dcm_ds_free(ds);
    return rc;
}

Test(dcm_charset, supported_terms_name_their_set)
{
    enum dcm_charset cs;
    cr_assert_eq(cs_of(NULL, 0, &cs), 0);
    cr_assert_eq(cs, DCM_CS_DEFAULT);
    cr_assert_eq(cs_of("", 0, &cs), 0);
    cr_assert_eq(cs, DCM_CS_DEFAULT);
    cr_assert_eq(cs_of("ISO_IR 6", 8, &cs), 0);
    cr_assert_eq(cs, DCM_CS_DEFAULT);
    cr_assert_eq(cs_of("ISO_IR 100", 10, &cs), 0);
    cr_assert_eq(cs, DCM_CS_LATIN1);
    cr_assert_eq(cs_of("ISO_IR 192", 10, &cs), 0);
    cr_assert_eq(cs, DCM_CS_UTF8);
    cr_assert_eq(cs_of(" ISO_IR 192 ", 12, &cs), 0, "CS padding is not significant");
    cr_assert_eq(cs, DCM_CS_UTF8);
    cr_assert_str_eq(dcm_charset_term(DCM_CS_LATIN1), "ISO_IR 100");
    cr_assert_str_eq(dcm_charset_term(DCM_CS_UTF8), "ISO_IR 192");
    cr_assert_str_eq(dcm_charset_term(DCM_CS_DEFAULT), "");
}

Test(dcm_charset, code_extensions_and_other_sets_are_unsupported)
{
    const char *bad[] = {
        "\\ISO 2022 IR 100",      /* code extensions (PS3.5 6.1.2.5) */
        "ISO 2022 IR 6\\ISO 2022 IR 87",
        "ISO 2022 IR 100",
        "ISO 2022 IR 6",
        "ISO_IR 101",             /* Latin-2 */
        "ISO_IR 144",             /* Cyrillic */
        "ISO_IR 13",              /* JIS X 0201 */
        "GB18030",
        "GBK",
        "ISO_IR 100\\ISO_IR 192",
        "iso_ir 100",
        "UTF-8",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum dcm_charset cs;
        cr_assert_eq(cs_of(bad[i], strlen(bad[i]), &cs), ERR_UNSUPPORTED, "%s", bad[i]);
    }
}

static void to_utf8(enum dcm_charset cs, const char *in, size_t n, int want_rc, const char *want)
{
    const uint8_t *g = guard_copy(in, n);
    struct wbuf w;
    wbuf_init(&w, 1024);
    wbuf_u8(&w, '>'); /* nothing may be appended on failure */
    int rc = dcm_charset_to_utf8(cs, g, n, &w);
    cr_assert_eq(rc, want_rc, "input '%.*s': %d", (int)n, in, rc);
    if (rc == 0) {
        cr_assert_eq(w.len, 1 + strlen(want));
        cr_assert_arr_eq(w.p + 1, want, strlen(want));
    } else {
        cr_assert_eq(w.len, 1);
    }
    wbuf_cleanup(&w);
    guard_free(g, n);
}

Test(dcm_charset, decodes_each_set_to_utf8)
{
    to_utf8(DCM_CS_DEFAULT, "Doe^John", 8, 0, "Doe^John");
    to_utf8(DCM_CS_DEFAULT, "a\r\nb\tc\fd", 8, 0, "a\r\nb\tc\fd");
    to_utf8(DCM_CS_DEFAULT, "M\xfcller", 6, ERR_MALFORMED, NULL);
    to_utf8(DCM_CS_DEFAULT, "a\x01", 2, ERR_MALFORMED, NULL);
    to_utf8(DCM_CS_DEFAULT, "a\x7f", 2, ERR_MALFORMED, NULL);
    to_utf8(DCM_CS_DEFAULT, "\x1b(B", 3, ERR_UNSUPPORTED, NULL);
    to_utf8(DCM_CS_LATIN1, "M\xfcller^Ren\xe9", 11, 0, "M\xc3\xbcller^Ren\xc3\xa9");
    to_utf8(DCM_CS_LATIN1, "\xa0\xff", 2, 0, "\xc2\xa0\xc3\xbf");
    to_utf8(DCM_CS_LATIN1, "\x85", 1, ERR_MALFORMED, NULL); /* C1 control */
    to_utf8(DCM_CS_LATIN1, "\x1b-A", 3, ERR_UNSUPPORTED, NULL);
    to_utf8(DCM_CS_UTF8, "\xe7\x8e\x8b^\xe5\xb0\x8f\xe6\x9d\xb1", 10, 0,
            "\xe7\x8e\x8b^\xe5\xb0\x8f\xe6\x9d\xb1");
    to_utf8(DCM_CS_UTF8, "\xf0\x9f\x98\x80", 4, 0, "\xf0\x9f\x98\x80");
}

/* RFC 3629: every way UTF-8 can be invalid, each at the end of its input (guard page). */
Test(dcm_charset, refuses_invalid_utf8)
{
    const char *bad[] = {
        "\xc3",             /* truncated 2-byte */
        "\xe7\x8e",         /* truncated 3-byte */
        "\xf0\x9f\x98",     /* truncated 4-byte */
        "\x80",             /* lone continuation */
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong */
        "\xf0\x80\x80\xaf", /* overlong */
        "\xed\xa0\x80",     /* surrogate D800 */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xf8\x88\x80\x80\x80",
        "\xff",
        "\xc2\x85", /* U+0085, a C1 control */
        "\xc3\x28", /* bad continuation */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        to_utf8(DCM_CS_UTF8, bad[i], strlen(bad[i]), ERR_MALFORMED, NULL);
}

static void from_utf8(enum dcm_charset cs, const char *in, int want_rc, const char *want,
                      size_t want_n)
{
    size_t n = strlen(in);
    const uint8_t *g = guard_copy(in, n);
    struct wbuf w;
    wbuf_init(&w, 1024);
    int rc = dcm_charset_from_utf8(cs, g, n, &w);
    cr_assert_eq(rc, want_rc, "input '%s': %d", in, rc);
    if (rc == 0) {
        cr_assert_eq(w.len, want_n);
        cr_assert_arr_eq(w.p, want, want_n);
    } else {
        cr_assert_eq(w.len, 0);
    }
    wbuf_cleanup(&w);
    guard_free(g, n);
}

Test(dcm_charset, encodes_utf8_into_each_set_or_says_it_cannot)
{
    from_utf8(DCM_CS_DEFAULT, "Doe^John", 0, "Doe^John", 8);
    from_utf8(DCM_CS_DEFAULT, "M\xc3\xbcller", ERR_UNSUPPORTED, NULL, 0);
    from_utf8(DCM_CS_LATIN1, "M\xc3\xbcller", 0, "M\xfcller", 6);
    from_utf8(DCM_CS_LATIN1, "\xe7\x8e\x8b", ERR_UNSUPPORTED, NULL, 0);
    from_utf8(DCM_CS_LATIN1, "\xc2\x85", ERR_MALFORMED, NULL, 0);
    from_utf8(DCM_CS_UTF8, "\xe7\x8e\x8b", 0, "\xe7\x8e\x8b", 3);
    from_utf8(DCM_CS_UTF8, "\xe7\x8e", ERR_MALFORMED, NULL, 0);
    from_utf8(DCM_CS_UTF8, "a\x1b", ERR_UNSUPPORTED, NULL, 0);
}

/* Every Latin-1 character survives the round trip through UTF-8. */
Test(dcm_charset, latin1_round_trips_through_utf8)
{
    uint8_t all[256];
    size_t n = 0;
    for (unsigned c = 0x20; c < 0x100; c++) {
        if (c == 0x7F || (c >= 0x80 && c < 0xA0))
            continue;
        all[n++] = (uint8_t)c;
    }
    struct wbuf u, back;
    wbuf_init(&u, 4096);
    wbuf_init(&back, 4096);
    cr_assert_eq(dcm_charset_to_utf8(DCM_CS_LATIN1, all, n, &u), 0);
    cr_assert_eq(dcm_charset_from_utf8(DCM_CS_LATIN1, u.p, u.len, &back), 0);
    cr_assert_eq(back.len, n);
    cr_assert_arr_eq(back.p, all, n);
    wbuf_cleanup(&u);
    wbuf_cleanup(&back);
}

Test(dcm_charset, output_cap_is_reported)
{
    struct wbuf w;
    wbuf_init(&w, 4);
    cr_assert_eq(dcm_charset_to_utf8(DCM_CS_LATIN1, (const uint8_t *)"\xe9\xe9\xe9", 3, &w),
                 ERR_LIMIT);
    wbuf_cleanup(&w);
}

Test(dcm_charset, next_walks_code_points)
{
    const uint8_t s[] = "a\xc3\xa9\xe7\x8e\x8b";
    size_t i = 0;
    uint32_t cp;
    cr_assert_eq(dcm_charset_next(DCM_CS_UTF8, s, 6, &i, &cp), 0);
    cr_assert_eq(cp, 'a');
    cr_assert_eq(dcm_charset_next(DCM_CS_UTF8, s, 6, &i, &cp), 0);
    cr_assert_eq(cp, 0xE9);
    cr_assert_eq(dcm_charset_next(DCM_CS_UTF8, s, 6, &i, &cp), 0);
    cr_assert_eq(cp, 0x738B);
    cr_assert_eq(i, 6);
    cr_assert_eq(dcm_charset_next(DCM_CS_UTF8, s, 6, &i, &cp), ERR_MALFORMED);
    uint8_t b[4];
    cr_assert_eq(dcm_utf8_put(0x1F600, b), 4);
    cr_assert_arr_eq(b, "\xf0\x9f\x98\x80", 4);
}
