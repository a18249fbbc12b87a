/* proxy2: the PROXY protocol v2 header (haproxy proxy-protocol.txt 2.2). Parse and encode round
 * trip, truncation at every offset (need more), bad signature / version / command / family /
 * protocol / length, TLV overruns at every TLV length field, CN with NUL or control characters,
 * and the exact bytes of the encoder. Inputs sit against a PROT_NONE page. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "net/proxy2.h"

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

struct hb {
    uint8_t b[2048];
    size_t n;
    size_t tlv_lens[16]; /* offsets of 16-bit TLV length fields */
    size_t n_tlv;
};

static void be16(struct hb *h, uint16_t v)
{
    h->b[h->n++] = (uint8_t)(v >> 8);
    h->b[h->n++] = (uint8_t)v;
}

static void raw(struct hb *h, const void *p, size_t n)
{
    memcpy(h->b + h->n, p, n);
    h->n += n;
}

static size_t tlv_open(struct hb *h, uint8_t type)
{
    h->b[h->n++] = type;
    size_t at = h->n;
    h->tlv_lens[h->n_tlv++] = at;
    be16(h, 0);
    return at;
}

static void tlv_close(struct hb *h, size_t at)
{
    size_t len = h->n - at - 2;
    h->b[at] = (uint8_t)(len >> 8);
    h->b[at + 1] = (uint8_t)len;
}

static void tlv(struct hb *h, uint8_t type, const void *v, size_t n)
{
    size_t at = tlv_open(h, type);
    raw(h, v, n);
    tlv_close(h, at);
}

static void head(struct hb *h, uint8_t ver_cmd, uint8_t fam_proto)
{
    raw(h, SIG, 12);
    h->b[h->n++] = ver_cmd;
    h->b[h->n++] = fam_proto;
    be16(h, 0);
}

static void finish(struct hb *h)
{
    size_t len = h->n - 16;
    h->b[14] = (uint8_t)(len >> 8);
    h->b[15] = (uint8_t)len;
}

static const uint8_t FP[32] = {0xde, 0xad, 0xbe, 0xef, 1,  2,  3,  4,  5,  6,  7,
                               8,    9,    10,   11,   12, 13, 14, 15, 16, 17, 18,
                               19,   20,   21,   22,   23, 24, 25, 26, 27, 0xff};

/* PROXY TCP4 10.1.2.3:40000 -> 10.9.8.7:11112 with SSL (verified, CN, version), our
 * fingerprint and client-id TLVs, and a NOOP. */
static struct hb *edge_v4(const char *cn)
{
    struct hb *h = calloc(1, sizeof *h);
    head(h, 0x21, 0x11);
    raw(h, (const uint8_t[]){10, 1, 2, 3, 10, 9, 8, 7}, 8);
    be16(h, 40000);
    be16(h, 11112);
    size_t ssl = tlv_open(h, PP2_TYPE_SSL);
    h->b[h->n++] = PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN;
    raw(h, (const uint8_t[]){0, 0, 0, 0}, 4);
    tlv(h, PP2_SUBTYPE_SSL_VERSION, "TLSv1.3", 7);
    tlv(h, PP2_SUBTYPE_SSL_CN, cn, strlen(cn));
    tlv_close(h, ssl);
    tlv(h, PP2_TYPE_NOOP, "", 0);
    tlv(h, PP2_TYPE_GW_CERT_SHA256, FP, 32);
    tlv(h, PP2_TYPE_GW_CLIENT_ID, "ct-room-1", 9);
    finish(h);
    return h;
}

static int parse_guarded(const uint8_t *p, size_t n, struct proxy2_info *out)
{
    const uint8_t *g = guard_copy(p, n);
    int rc = proxy2_parse(g, n, out);
    guard_free(g, n);
    return rc;
}

Test(proxy2, v4_with_ssl_fingerprint_and_client_id_parses)
{
    struct hb *h = edge_v4("modality-ct1.hospital.example");
    struct proxy2_info info;
    cr_assert_eq(parse_guarded(h->b, h->n, &info), (int)h->n);
    cr_assert_not(info.local);
    const struct sockaddr_in *s = (const struct sockaddr_in *)&info.src;
    const struct sockaddr_in *d = (const struct sockaddr_in *)&info.dst;
    cr_assert_eq(s->sin_family, AF_INET);
    cr_assert_eq(ntohl(s->sin_addr.s_addr), 0x0a010203u);
    cr_assert_eq(ntohs(s->sin_port), 40000);
    cr_assert_eq(ntohl(d->sin_addr.s_addr), 0x0a090807u);
    cr_assert_eq(ntohs(d->sin_port), 11112);
    cr_assert(info.ssl);
    cr_assert(info.cert_verified);
    cr_assert_str_eq(info.ssl_cn, "modality-ct1.hospital.example");
    cr_assert_str_eq(info.ssl_version, "TLSv1.3");
    cr_assert_str_eq(info.client_id, "ct-room-1");
    cr_assert(info.has_fingerprint);
    cr_assert_eq(memcmp(info.fingerprint, FP, 32), 0);
    free(h);
}

Test(proxy2, trailing_stream_bytes_are_not_part_of_the_header)
{
    struct hb *h = edge_v4("cn");
    size_t hdr = h->n;
    raw(h, (const uint8_t[]){0x01, 0x00, 0x00, 0x00, 0x00, 0xcd}, 6); /* an A-ASSOCIATE-RQ */
    struct proxy2_info info;
    cr_assert_eq(parse_guarded(h->b, h->n, &info), (int)hdr);
    free(h);
}

Test(proxy2, v6_and_local_and_unspec_parse)
{
    struct hb *h = calloc(1, sizeof *h);
    head(h, 0x21, 0x21);
    uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1}, b[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 2};
    raw(h, a, 16);
    raw(h, b, 16);
    be16(h, 1234);
    be16(h, 11112);
    finish(h);
    struct proxy2_info info;
    cr_assert_eq(parse_guarded(h->b, h->n, &info), 52);
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&info.src;
    cr_assert_eq(s->sin6_family, AF_INET6);
    cr_assert_eq(memcmp(&s->sin6_addr, a, 16), 0);
    cr_assert_eq(ntohs(s->sin6_port), 1234);
    cr_assert_not(info.ssl);
    cr_assert_str_eq(info.ssl_cn, "");

    /* LOCAL (an NLB health check): addresses, if any, are ignored */
    memset(h, 0, sizeof *h);
    head(h, 0x20, 0x00);
    finish(h);
    cr_assert_eq(parse_guarded(h->b, h->n, &info), 16);
    cr_assert(info.local);
    memset(h, 0, sizeof *h);
    head(h, 0x20, 0x11);
    raw(h, (const uint8_t[]){1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2}, 12);
    finish(h);
    cr_assert_eq(parse_guarded(h->b, h->n, &info), 28);
    cr_assert(info.local);

    /* PROXY with UNSPEC: no addresses */
    memset(h, 0, sizeof *h);
    head(h, 0x21, 0x00);
    finish(h);
    cr_assert_eq(parse_guarded(h->b, h->n, &info), 16);
    cr_assert_eq(info.src.ss_family, 0);
    free(h);
}

Test(proxy2, cut_at_every_offset_needs_more)
{
    struct hb *h = edge_v4("modality");
    for (size_t cut = 0; cut < h->n; cut++) {
        struct proxy2_info info;
        cr_assert_eq(parse_guarded(h->b, cut, &info), 0, "cut at %zu of %zu", cut, h->n);
    }
    free(h);
}

Test(proxy2, a_wrong_signature_byte_is_refused_as_soon_as_it_arrives)
{
    struct hb *h = edge_v4("modality");
    for (size_t i = 0; i < 12; i++) {
        uint8_t b[2048];
        memcpy(b, h->b, h->n);
        b[i] ^= 0x20;
        struct proxy2_info info;
        cr_assert_eq(parse_guarded(b, h->n, &info), ERR_MALFORMED, "byte %zu, whole", i);
        cr_assert_eq(parse_guarded(b, i + 1, &info), ERR_MALFORMED, "byte %zu, partial", i);
    }
    /* a PROXY v1 text header or a bare DICOM PDU is not v2 */
    struct proxy2_info info;
    cr_assert_eq(parse_guarded((const uint8_t *)"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 32, &info),
                 ERR_MALFORMED);
    cr_assert_eq(parse_guarded((const uint8_t[]){1, 0, 0, 0, 0, 0xcd}, 6, &info), ERR_MALFORMED);
    free(h);
}

Test(proxy2, bad_version_command_family_or_protocol_are_malformed)
{
    const uint8_t bad[][2] = {
        {0x11, 0x11}, {0x31, 0x11}, {0xf1, 0x11}, {0x01, 0x11}, /* versions 1, 3, 15, 0 */
        {0x22, 0x11}, {0x2f, 0x11},                             /* commands 2, 15 */
        {0x21, 0x41}, {0x21, 0xf1},                             /* families 4, 15 */
        {0x21, 0x13}, {0x21, 0x1f},                             /* protocols 3, 15 */
        {0x21, 0x12}, {0x21, 0x10}, {0x21, 0x22},               /* DGRAM/UNSPEC over IP */
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct hb *h = edge_v4("modality");
        h->b[12] = bad[i][0];
        h->b[13] = bad[i][1];
        struct proxy2_info info;
        cr_assert_eq(parse_guarded(h->b, h->n, &info), ERR_MALFORMED, "bytes %02x %02x",
                     bad[i][0], bad[i][1]);
        free(h);
    }
}

Test(proxy2, header_length_at_0_short_max_max1_and_all_ones)
{
    struct proxy2_info info;
    struct hb *h = calloc(1, sizeof *h);
    /* TCP4 needs 12 address bytes: 0 and 11 are malformed */
    for (uint16_t len = 0; len < 12; len++) {
        memset(h, 0, sizeof *h);
        head(h, 0x21, 0x11);
        memset(h->b + 16, 0, len);
        h->n += len;
        finish(h);
        cr_assert_eq(parse_guarded(h->b, h->n, &info), ERR_MALFORMED, "TCP4 length %u", len);
    }
    memset(h, 0, sizeof *h); /* TCP6 needs 36 */
    head(h, 0x21, 0x21);
    h->n += 35;
    finish(h);
    cr_assert_eq(parse_guarded(h->b, h->n, &info), ERR_MALFORMED);
    /* the largest block we take: 12 address bytes + a NOOP TLV up to 1024 */
    memset(h, 0, sizeof *h);
    head(h, 0x21, 0x11);
    h->n += 12;
    size_t at = tlv_open(h, PP2_TYPE_NOOP);
    h->n += PROXY2_MAX_LEN - PROXY2_HDR_LEN - 12 - 3;
    tlv_close(h, at);
    finish(h);
    cr_assert_eq(h->n, PROXY2_MAX_LEN);
    cr_assert_eq(parse_guarded(h->b, h->n, &info), PROXY2_MAX_LEN);
    /* one more byte is refused, before the bytes arrive */
    h->b[h->n++] = 0;
    struct hb h2 = *h;
    finish(&h2);
    cr_assert_eq(parse_guarded(h2.b, h2.n, &info), ERR_LIMIT);
    cr_assert_eq(parse_guarded(h2.b, 16, &info), ERR_LIMIT, "refused from the header alone");
    h2.b[14] = 0xff;
    h2.b[15] = 0xff;
    cr_assert_eq(parse_guarded(h2.b, 16, &info), ERR_LIMIT);
    free(h);
}

Test(proxy2, every_tlv_length_at_0_max1_and_all_ones_is_refused)
{
    struct hb *h = edge_v4("modality");
    cr_assert_eq(h->n_tlv, 6);
    for (size_t i = 0; i < h->n_tlv; i++) {
        size_t off = h->tlv_lens[i];
        uint16_t orig = (uint16_t)(h->b[off] << 8 | h->b[off + 1]);
        uint32_t max = (uint32_t)(h->n - off - 2);
        const uint32_t vals[] = {0, max + 1, 0xffff, max};
        for (size_t k = 0; k < 4; k++) {
            if (vals[k] == orig || (vals[k] == 0 && i == 3))
                continue; /* the NOOP TLV is empty already */
            uint8_t b[2048];
            memcpy(b, h->b, h->n);
            b[off] = (uint8_t)(vals[k] >> 8);
            b[off + 1] = (uint8_t)vals[k];
            struct proxy2_info info;
            memset(&info, 0x5a, sizeof info);
            int rc = parse_guarded(b, h->n, &info);
            if (k < 3) {
                cr_assert_eq(rc, ERR_MALFORMED, "TLV length at %zu = %u: rc %d", off, vals[k], rc);
                cr_assert_str_eq(info.ssl_cn, "", "nothing half-parsed is left behind");
            } else {
                cr_assert(rc == (int)h->n || rc == ERR_MALFORMED, "max: rc %d", rc);
            }
        }
    }
    free(h);
}

Test(proxy2, cn_with_nul_or_control_characters_is_refused)
{
    const char *bad[] = {"alice\0evil", "al\nice", "\x1b[31m", "a\x7f"};
    const size_t len[] = {10, 6, 5, 2};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct hb *h = calloc(1, sizeof *h);
        head(h, 0x21, 0x11);
        h->n += 12;
        size_t ssl = tlv_open(h, PP2_TYPE_SSL);
        h->b[h->n++] = PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN;
        h->n += 4;
        tlv(h, PP2_SUBTYPE_SSL_CN, bad[i], len[i]);
        tlv_close(h, ssl);
        finish(h);
        struct proxy2_info info;
        cr_assert_eq(parse_guarded(h->b, h->n, &info), ERR_MALFORMED, "CN %zu", i);
        cr_assert_str_eq(info.ssl_cn, "");
        free(h);
    }
}

Test(proxy2, over_long_strings_and_wrong_fingerprint_size_are_refused)
{
    char cn[300];
    memset(cn, 'c', sizeof cn - 1);
    cn[sizeof cn - 1] = '\0';
    struct hb *h = edge_v4(cn); /* 299 bytes: more than the 256 kept */
    struct proxy2_info info;
    cr_assert_eq(parse_guarded(h->b, h->n, &info), ERR_MALFORMED);
    free(h);

    cn[256] = '\0'; /* exactly what fits */
    h = edge_v4(cn);
    cr_assert_eq(parse_guarded(h->b, h->n, &info), (int)h->n);
    cr_assert_eq(strlen(info.ssl_cn), 256);
    free(h);

    h = calloc(1, sizeof *h);
    head(h, 0x21, 0x11);
    h->n += 12;
    tlv(h, PP2_TYPE_GW_CERT_SHA256, FP, 31);
    finish(h);
    cr_assert_eq(parse_guarded(h->b, h->n, &info), ERR_MALFORMED);

    memset(h, 0, sizeof *h);
    head(h, 0x21, 0x11);
    h->n += 12;
    char id[130];
    memset(id, 'i', 129);
    tlv(h, PP2_TYPE_GW_CLIENT_ID, id, 129);
    finish(h);
    cr_assert_eq(parse_guarded(h->b, h->n, &info), ERR_MALFORMED);
    free(h);
}

Test(proxy2, unverified_or_absent_certificate_is_not_cert_verified)
{
    struct hb *h = edge_v4("modality");
    /* verify field (4 bytes after the client byte) non-zero: certificate failed verification */
    size_t client = h->tlv_lens[0] + 2;
    h->b[client + 4] = 1;
    struct proxy2_info info;
    cr_assert_eq(parse_guarded(h->b, h->n, &info), (int)h->n);
    cr_assert(info.ssl);
    cr_assert_not(info.cert_verified);
    h->b[client + 4] = 0;
    h->b[client] = PP2_CLIENT_SSL; /* TLS but no client certificate */
    cr_assert_eq(parse_guarded(h->b, h->n, &info), (int)h->n);
    cr_assert_not(info.cert_verified);
    free(h);
}

Test(proxy2, encode_v4_is_exactly_the_hand_built_header_and_round_trips)
{
    struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(40000)};
    struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons(11112)};
    s.sin_addr.s_addr = htonl(0x0a010203);
    d.sin_addr.s_addr = htonl(0x0a090807);
    struct wbuf w;
    wbuf_init(&w, 4096);
    cr_assert_eq(proxy2_encode(&w, (const struct sockaddr *)&s, (const struct sockaddr *)&d,
                               "modality", FP, "ct-room-1"),
                 0);
    struct hb *h = calloc(1, sizeof *h);
    head(h, 0x21, 0x11);
    raw(h, (const uint8_t[]){10, 1, 2, 3, 10, 9, 8, 7}, 8);
    be16(h, 40000);
    be16(h, 11112);
    size_t ssl = tlv_open(h, PP2_TYPE_SSL);
    h->b[h->n++] = PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN;
    raw(h, (const uint8_t[]){0, 0, 0, 0}, 4);
    tlv(h, PP2_SUBTYPE_SSL_CN, "modality", 8);
    tlv_close(h, ssl);
    tlv(h, PP2_TYPE_GW_CERT_SHA256, FP, 32);
    tlv(h, PP2_TYPE_GW_CLIENT_ID, "ct-room-1", 9);
    finish(h);
    cr_assert_eq(w.len, h->n);
    cr_assert_eq(memcmp(w.p, h->b, h->n), 0);
    struct proxy2_info info;
    cr_assert_eq(parse_guarded(w.p, w.len, &info), (int)w.len);
    cr_assert_str_eq(info.ssl_cn, "modality");
    cr_assert(info.cert_verified);
    cr_assert_str_eq(info.client_id, "ct-room-1");
    wbuf_cleanup(&w);
    free(h);
}

Test(proxy2, encode_v6_without_tlvs_round_trips)
{
    struct sockaddr_in6 s = {.sin6_family = AF_INET6, .sin6_port = htons(5)};
    struct sockaddr_in6 d = {.sin6_family = AF_INET6, .sin6_port = htons(6)};
    cr_assert_eq(inet_pton(AF_INET6, "2001:db8::7", &s.sin6_addr), 1);
    cr_assert_eq(inet_pton(AF_INET6, "fd00::1", &d.sin6_addr), 1);
    struct wbuf w;
    wbuf_init(&w, 4096);
    cr_assert_eq(proxy2_encode(&w, (const struct sockaddr *)&s, (const struct sockaddr *)&d, NULL,
                               NULL, NULL),
                 0);
    cr_assert_eq(w.len, 52);
    struct proxy2_info info;
    cr_assert_eq(parse_guarded(w.p, w.len, &info), 52);
    const struct sockaddr_in6 *ps = (const struct sockaddr_in6 *)&info.src;
    const struct sockaddr_in6 *pd = (const struct sockaddr_in6 *)&info.dst;
    cr_assert_eq(memcmp(&ps->sin6_addr, &s.sin6_addr, 16), 0);
    cr_assert_eq(memcmp(&pd->sin6_addr, &d.sin6_addr, 16), 0);
    cr_assert_eq(ntohs(ps->sin6_port), 5);
    cr_assert_not(info.ssl);
    cr_assert_not(info.has_fingerprint);
    wbuf_cleanup(&w);
}

Test(proxy2, encode_refuses_mixed_families_and_over_long_strings)
{
    struct sockaddr_in s4 = {.sin_family = AF_INET};
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    struct wbuf w;
    wbuf_init(&w, 4096);
    cr_assert_eq(proxy2_encode(&w, (const struct sockaddr *)&s4, (const struct sockaddr *)&s6,
                               NULL, NULL, NULL),
                 ERR_MALFORMED);
    char big[300];
    memset(big, 'x', 299);
    big[299] = '\0';
    cr_assert_eq(proxy2_encode(&w, (const struct sockaddr *)&s4, (const struct sockaddr *)&s4,
                               big, NULL, NULL),
                 ERR_LIMIT);
    cr_assert_eq(proxy2_encode(&w, (const struct sockaddr *)&s4, (const struct sockaddr *)&s4,
                               NULL, NULL, big),
                 ERR_LIMIT);
    wbuf_cleanup(&w);
    wbuf_init(&w, 20); /* a full buffer is reported */
    cr_assert_lt(proxy2_encode(&w, (const struct sockaddr *)&s4, (const struct sockaddr *)&s4,
                               "cn", FP, NULL),
                 0);
    wbuf_cleanup(&w);
}
