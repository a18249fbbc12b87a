/* mpart: the streaming multipart/related reader (RFC 2046 5.1) and the Content-Type parameter
 * reader; p10meta: the streaming File Meta Information reader. Bodies are read whole, a byte at
 * a time and in every split into two pieces, and must give the same parts and bytes; broken
 * delimiters, header and part caps, a body that never closes; meta cut at every byte. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forwarder/aws/mpart.h"
#include "forwarder/aws/p10meta.h"
#include "guard.h"

Test(mpart, boundary_and_parameters)
{
    char b[80];
    cr_assert_eq(mpart_boundary("multipart/related; type=\"application/dicom\"; boundary=abc-1",
                                b, sizeof b), 0);
    cr_assert_str_eq(b, "abc-1");
    cr_assert_eq(mpart_boundary("multipart/related;boundary=\"a b:c\";type=x", b, sizeof b), 0);
    cr_assert_str_eq(b, "a b:c");
    cr_assert_eq(mpart_boundary("multipart/related; BOUNDARY=Zz", b, sizeof b), 0);
    cr_assert_str_eq(b, "Zz");
    cr_assert_eq(mpart_boundary("multipart/related; type=x", b, sizeof b), ERR_NOTFOUND);
    cr_assert_eq(mpart_boundary("multipart/related; boundary=", b, sizeof b), ERR_MALFORMED);
    cr_assert_eq(mpart_boundary("multipart/related; boundary=\"ab ", b, sizeof b), ERR_MALFORMED);
    cr_assert_eq(mpart_boundary("multipart/related; boundary=\"a{b\"", b, sizeof b),
                 ERR_MALFORMED);
    cr_assert_eq(mpart_boundary("multipart/related; boundary=\"ab \"", b, sizeof b),
                 ERR_MALFORMED); /* a blank at the end */
    char longb[120];
    snprintf(longb, sizeof longb, "m/r; boundary=%071d", 0);
    cr_assert_eq(mpart_boundary(longb, b, sizeof b), ERR_MALFORMED);
    char ts[70];
    cr_assert_eq(mpart_param("application/dicom; transfer-syntax=1.2.840.10008.1.2.1", "transfer-syntax",
                             ts, sizeof ts), 0);
    cr_assert_str_eq(ts, "1.2.840.10008.1.2.1");
    cr_assert_eq(mpart_param("a/b; x=123456", "x", ts, 4), ERR_LIMIT);
    cr_assert_eq(mpart_param("a/b; x", "x", ts, sizeof ts), ERR_MALFORMED);
}

struct collected {
    char types[4][64];
    uint8_t data[4][256];
    size_t len[4];
    int parts, ends;
    bool closed;
};

/* Feed body in pieces of size step (0: whole), collecting events. Returns 0 or the error. */
static int feed(const char *body, size_t n, size_t step, unsigned max_parts, struct collected *c)
{
    struct mpart m;
    memset(c, 0, sizeof *c);
    cr_assert_eq(mpart_init(&m, "bnd", max_parts), 0);
    size_t off = 0;
    for (;;) {
        size_t piece = step && n - off > step ? step : n - off;
        const uint8_t *p = guard_copy(body + off, piece);
        size_t used = 0;
        for (;;) {
            struct mpart_ev ev;
            int k = mpart_next(&m, p + used, piece - used, &ev);
            if (k < 0)
                return k;
            used += (size_t)k;
            if (ev.type == MPART_EV_HEAD) {
                snprintf(c->types[c->parts], sizeof c->types[0], "%.60s", m.part_type);
                c->parts++;
            } else if (ev.type == MPART_EV_DATA) {
                cr_assert(c->parts > 0 && c->len[c->parts - 1] + ev.len <= 256);
                memcpy(c->data[c->parts - 1] + c->len[c->parts - 1], ev.data, ev.len);
                c->len[c->parts - 1] += ev.len;
            } else if (ev.type == MPART_EV_END) {
                c->ends++;
            } else if (ev.type == MPART_EV_CLOSE) {
                c->closed = true;
            } else if (used == piece) {
                break;
            }
        }
        off += piece;
        if (off == n)
            break;
    }
    cr_assert_eq(c->closed, mpart_closed(&m));
    return 0;
}

static const char g_body[] =
    "preamble \r\n--bnx no\r\n"
    "--bnd  \t\r\nContent-Type: application/dicom\r\nX-Other: y\r\n\r\n"
    "DATA\r\n--bn\r\n-\r\n--bnX\r\r\n--bnd\r\n"
    "\r\n" /* a part without headers */
    "second\r\n--bnd--\r\nepilogue --bnd";

static void check_body(const struct collected *c)
{
    cr_assert_eq(c->parts, 2);
    cr_assert_eq(c->ends, 2);
    cr_assert(c->closed);
    cr_assert_str_eq(c->types[0], "application/dicom");
    cr_assert_str_eq(c->types[1], "");
    cr_assert_eq(c->len[0], 21);
    cr_assert_eq(memcmp(c->data[0], "DATA\r\n--bn\r\n-\r\n--bnX\r", 21), 0);
    cr_assert_eq(c->len[1], 6);
    cr_assert_eq(memcmp(c->data[1], "second", 6), 0);
}

Test(mpart, whole_bytewise_and_every_split_agree)
{
    size_t n = sizeof g_body - 1;
    struct collected c;
    cr_assert_eq(feed(g_body, n, 0, 0, &c), 0);
    check_body(&c);
    cr_assert_eq(feed(g_body, n, 1, 0, &c), 0);
    check_body(&c);
    for (size_t step = 2; step < n; step++) {
        cr_assert_eq(feed(g_body, n, step, 0, &c), 0, "step %zu", step);
        check_body(&c);
    }
}

Test(mpart, broken_delimiter_lines_and_caps)
{
    struct collected c;
    const char *bad = "--bnd\r\n\r\nx\r\n--bndX\r\n--bnd-x";
    cr_assert_eq(feed(bad, strlen(bad), 0, 0, &c), ERR_MALFORMED); /* "-x" after it */
    const char *nolf = "--bnd\rX";
    cr_assert_eq(feed(nolf, strlen(nolf), 0, 0, &c), ERR_MALFORMED);
    const char *two = "--bnd\r\n\r\na\r\n--bnd\r\n\r\nb\r\n--bnd--";
    cr_assert_eq(feed(two, strlen(two), 0, 1, &c), ERR_LIMIT); /* one part allowed */
    cr_assert_eq(feed(two, strlen(two), 0, 2, &c), 0);
    char *pad = malloc(200);
    snprintf(pad, 200, "--bnd%070d", 0);
    for (char *q = pad + 5; *q; q++)
        *q = ' ';
    cr_assert_eq(feed(pad, strlen(pad), 0, 0, &c), ERR_LIMIT);
    free(pad);
    size_t hn = MPART_HEADERS_MAX + 100;
    char *hdr = malloc(hn + 1);
    memcpy(hdr, "--bnd\r\n", 7);
    memset(hdr + 7, 'h', hn - 7);
    hdr[hn] = '\0';
    cr_assert_eq(feed(hdr, hn, 0, 0, &c), ERR_LIMIT);
    free(hdr);
    const char *open = "--bnd\r\n\r\nno end";
    cr_assert_eq(feed(open, strlen(open), 0, 0, &c), 0);
    cr_assert(!c.closed, "a body without its closing delimiter is not complete");
    struct mpart m;
    cr_assert_eq(mpart_init(&m, "", 0), ERR_MALFORMED);
}

/* ---- p10meta ---------------------------------------------------------------------------------- */

static size_t meta(uint8_t *b, const char *ts, bool with_sop)
{
    memset(b, 0, 128);
    memcpy(b + 128, "DICM", 4);
    size_t o = 132;
    const uint8_t ver[] = {2, 0, 1, 0, 'O', 'B', 0, 0, 2, 0, 0, 0, 0, 1};
    memcpy(b + o, ver, sizeof ver);
    o += sizeof ver;
    const struct {
        uint8_t e;
        const char *v;
    } el[] = {{2, "1.2.840.10008.5.1.4.1.1.7"}, {3, "1.2.3.4"}, {0x10, ts}};
    for (size_t i = 0; i < 3; i++) {
        if (i == 1 && !with_sop)
            continue;
        size_t l = strlen(el[i].v), pl = l + (l & 1);
        const uint8_t h[] = {2, 0, el[i].e, 0, 'U', 'I', (uint8_t)pl, 0};
        memcpy(b + o, h, 8);
        memset(b + o + 8, 0, pl);
        memcpy(b + o + 8, el[i].v, l);
        o += 8 + pl;
    }
    return o;
}

Test(p10meta, reads_the_meta_and_hands_on_the_dataset)
{
    uint8_t b[1024];
    size_t m = meta(b, "1.2.840.10008.1.2.1", true);
    memcpy(b + m, "\x08\x00\x16\x00UI\x02\x00" "1\0", 10);
    size_t n = m + 10;
    struct p10meta_info info;
    cr_assert_eq(p10meta_parse(b, n, &info), (int)m);
    cr_assert_str_eq(info.ts, "1.2.840.10008.1.2.1");
    cr_assert_str_eq(info.sop, "1.2.3.4");
    cr_assert_str_eq(info.sop_class, "1.2.840.10008.5.1.4.1.1.7");
    for (size_t cut = 0; cut < m + 4; cut++) /* needs the next group's tag */
        cr_assert_eq(p10meta_parse(guard_copy(b, cut), cut, &info), 0, "cut %zu", cut);
    /* streamed a byte at a time */
    struct p10meta *s = malloc(sizeof *s);
    p10meta_init(s);
    uint8_t out[32];
    size_t got = 0;
    int metas = 0;
    for (size_t i = 0; i < n; i++) {
        size_t used = 0;
        for (;;) {
            struct p10meta_ev ev;
            int k = p10meta_next(s, b + i + used, 1 - used, &ev);
            cr_assert(k >= 0);
            used += (size_t)k;
            if (ev.type == P10META_EV_META)
                metas++;
            else if (ev.type == P10META_EV_DATA) {
                cr_assert(metas == 1 && got + ev.len <= sizeof out);
                memcpy(out + got, ev.data, ev.len);
                got += ev.len;
            } else if (used == 1)
                break;
        }
    }
    cr_assert_eq(metas, 1);
    cr_assert_eq(got, 10);
    cr_assert_eq(memcmp(out, b + m, 10), 0);
    free(s);
}

Test(p10meta, refusals)
{
    uint8_t b[1024];
    struct p10meta_info info;
    size_t m = meta(b, "1.2.840.10008.1.2.1", true);
    memcpy(b + m, "\x08\x00\x16\x00", 4);
    b[128] = 'X';
    cr_assert_eq(p10meta_parse(b, m + 4, &info), ERR_MALFORMED); /* no DICM */
    m = meta(b, "1.2.840.10008.1.2.1", false);
    memcpy(b + m, "\x08\x00\x16\x00", 4);
    cr_assert_eq(p10meta_parse(b, m + 4, &info), ERR_MALFORMED); /* no SOP Instance */
    m = meta(b, "1.2.x", true);
    memcpy(b + m, "\x08\x00\x16\x00", 4);
    cr_assert_eq(p10meta_parse(b, m + 4, &info), ERR_MALFORMED); /* not a UID */
    m = meta(b, "1.2.840.10008.1.2.1", true);
    memcpy(b + m, "\x02\x00\x00\x01OB\x00\x00\xff\xff\xff\xff", 12);
    cr_assert_eq(p10meta_parse(b, m + 12, &info), ERR_MALFORMED); /* undefined length */
    memcpy(b + m, "\x02\x00\x00\x01OB\x00\x00\x00\x00\x02\x00", 12); /* 128 KiB value */
    cr_assert_eq(p10meta_parse(b, m + 12, &info), ERR_LIMIT);
    memcpy(b + m, "\x02\x00\x00\x01ZZ\x00\x00", 8);
    cr_assert_eq(p10meta_parse(b, m + 8, &info), ERR_MALFORMED); /* not a VR */
    /* the stream refuses a meta that never ends within the cap */
    struct p10meta *s = malloc(sizeof *s);
    p10meta_init(s);
    uint8_t *big = calloc(1, P10META_MAX + 64);
    m = meta(big, "1.2.840.10008.1.2.1", true);
    memcpy(big + m, "\x02\x00\x00\x01OB\x00\x00\x00\x00\x01\x00", 12); /* 64 KiB value */
    int rc = 0;
    size_t off = 0;
    while (rc >= 0 && off < P10META_MAX + 64) {
        struct p10meta_ev ev;
        rc = p10meta_next(s, big + off, 4096 < P10META_MAX + 64 - off ? 4096 : P10META_MAX + 64 - off,
                          &ev);
        off += rc > 0 ? (size_t)rc : 0;
        if (rc == 0)
            break;
    }
    cr_assert_eq(rc, ERR_LIMIT);
    free(big);
    free(s);
}
