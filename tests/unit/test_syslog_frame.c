/* syslog_frame: the RFC 5424 header PS3.15 A.6 asks for (facility 10, severity by outcome, MSGID,
 * no structured data, BOM), the octet-counting frame of RFC 5425 / RFC 6587 and its parser: cut
 * at every offset, leading zero, non-digits, too many digits, lengths 0 / max / max+1 /
 * 0xFFFFFFFF, back-to-back frames; and the header parser on our output and on hostile input.
 * Parser inputs sit against a PROT_NONE page. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "audit/syslog_frame.h"
#include "guard.h"

static int parse_frame(const char *s, size_t n, size_t max, struct slice *m)
{
    const uint8_t *g = guard_copy(s, n);
    int rc = syslog_frame_parse(g, n, max, m);
    if (rc > 0) /* the slice points into the guarded copy: compare before freeing */
        cr_assert_leq((size_t)rc, n);
    guard_free(g, n);
    return rc;
}

Test(syslog_frame, severity_follows_the_outcome)
{
    cr_assert_eq(syslog_severity_for_outcome(0), 5);
    cr_assert_eq(syslog_severity_for_outcome(4), 4);
    cr_assert_eq(syslog_severity_for_outcome(8), 3);
    cr_assert_eq(syslog_severity_for_outcome(12), 2);
}

Test(syslog_frame, header_is_rfc5424_with_facility_10_and_a_bom)
{
    struct wbuf b;
    wbuf_init(&b, 4096);
    struct syslog_hdr h = {.severity = 5,
                           .time_us = INT64_C(1735689599000001),
                           .host = "gw.example",
                           .app = "dicom-core",
                           .procid = 42,
                           .msgid = SYSLOG_MSGID_DICOM,
                           .bom = true};
    cr_assert_eq(syslog_format(&b, &h, "<x/>", 4), 0);
    const char want[] =
        "<85>1 2024-12-31T23:59:59.000001Z gw.example dicom-core 42 DICOM+RFC3881 - "
        "\xEF\xBB\xBF<x/>";
    cr_assert_eq(b.len, sizeof want - 1);
    cr_assert(memcmp(b.p, want, b.len) == 0, "%.*s", (int)b.len, (const char *)b.p);
    wbuf_cleanup(&b);
}

Test(syslog_frame, header_fields_are_sanitised_and_bounded)
{
    struct wbuf b;
    wbuf_init(&b, 4096);
    char longapp[100];
    memset(longapp, 'a', sizeof longapp - 1);
    longapp[sizeof longapp - 1] = '\0';
    struct syslog_hdr h = {.severity = 2,
                           .time_us = 0,
                           .host = "bad host\n",
                           .app = longapp,
                           .msgid = NULL,
                           .bom = false};
    cr_assert_eq(syslog_format(&b, &h, "m", 1), 0);
    struct syslog_parsed p;
    cr_assert_eq(syslog_parse(b.p, b.len, &p), 0);
    cr_assert_eq(p.pri, 82);
    cr_assert(slice_eq_str(p.host, "bad_host_"));
    cr_assert_eq(p.app.len, 48);
    cr_assert(slice_eq_str(p.procid, "-"));
    cr_assert(slice_eq_str(p.msgid, "-"));
    cr_assert(!p.bom);
    cr_assert(slice_eq_str(p.msg, "m"));
    wbuf_cleanup(&b);
}

Test(syslog_frame, octet_frame_round_trips)
{
    struct wbuf b;
    wbuf_init(&b, 4096);
    cr_assert_eq(syslog_frame_octet(&b, "hello", 5), 0);
    cr_assert_eq(syslog_frame_octet(&b, "world!", 6), 0);
    cr_assert_eq(b.len, 7 + 8);
    struct slice m;
    int rc = syslog_frame_parse(b.p, b.len, 100, &m);
    cr_assert_eq(rc, 7);
    cr_assert(slice_eq_str(m, "hello"));
    rc = syslog_frame_parse(b.p + 7, b.len - 7, 100, &m);
    cr_assert_eq(rc, 8);
    cr_assert(slice_eq_str(m, "world!"));
    wbuf_cleanup(&b);
}

Test(syslog_frame, every_cut_needs_more)
{
    const char f[] = "12 abcdefghijkl";
    struct slice m;
    for (size_t cut = 0; cut < sizeof f - 1; cut++)
        cr_assert_eq(parse_frame(f, cut, 100, &m), 0, "cut %zu", cut);
    cr_assert_eq(parse_frame(f, sizeof f - 1, 100, &m), 15);
}

Test(syslog_frame, malformed_lengths_are_refused)
{
    struct slice m;
    cr_assert_eq(parse_frame("0 ", 2, 100, &m), ERR_MALFORMED); /* MSG-LEN 0 / leading 0 */
    cr_assert_eq(parse_frame("05 hello", 8, 100, &m), ERR_MALFORMED);
    cr_assert_eq(parse_frame("x5 hello", 8, 100, &m), ERR_MALFORMED);
    cr_assert_eq(parse_frame("5x hello", 8, 100, &m), ERR_MALFORMED);
    cr_assert_eq(parse_frame(" 5 hello", 8, 100, &m), ERR_MALFORMED);
    cr_assert_eq(parse_frame("100 ", 4, 100, &m), 0);         /* max: need the bytes */
    cr_assert_eq(parse_frame("101 ", 4, 100, &m), ERR_LIMIT); /* max + 1 */
    cr_assert_eq(parse_frame("4294967295 ", 11, 1u << 20, &m), ERR_LIMIT);
    cr_assert_eq(parse_frame("12345678901 ", 12, SIZE_MAX, &m), ERR_LIMIT); /* 11 digits */
    cr_assert_eq(parse_frame("1234567890", 10, SIZE_MAX, &m), 0); /* 10 digits, no SP yet */
}

Test(syslog_frame, header_parser_refuses_hostile_headers)
{
    struct syslog_parsed p;
    const char *bad[] = {"",
                         "<",
                         "<>1 - - - - - -",
                         "<192>1 - - - - - -",
                         "<1a>1 - - - - - -",
                         "<13>0 - - - - - -",
                         "<13>1 - - - - -",
                         "<13>1 - - - - - [x",
                         "<13>1 - - - - - [x a=\"]",
                         "<13>1 - - - - - ]",
                         "<13>1 2024 h a p mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm - x",
                         "<0013>1 - - - - - -",
                         "<13>1 -  - - - - -"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = strlen(bad[i]);
        const uint8_t *g = guard_copy(bad[i], n);
        cr_assert_lt(syslog_parse(g, n, &p), 0, "accepted: %s", bad[i]);
        guard_free(g, n);
    }
    const char ok[] = "<13>1 - - - - - [id a=\"x\\]y\"][id2] msg";
    cr_assert_eq(syslog_parse((const uint8_t *)ok, sizeof ok - 1, &p), 0);
    cr_assert(slice_eq_str(p.sd, "[id a=\"x\\]y\"][id2]"));
    cr_assert(slice_eq_str(p.msg, "msg"));
}
