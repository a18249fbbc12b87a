#include "net/proxy2.h"

#include <netinet/in.h>
#include <string.h>

#include "common/rd.h"

/* proxy-protocol.txt 2.2: "\r\n\r\n\0\r\nQUIT\n" */
static const uint8_t sig[PROXY2_SIG_LEN] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                            0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

enum { CMD_LOCAL = 0x0, CMD_PROXY = 0x1 };
enum { FAM_UNSPEC = 0x0, FAM_INET = 0x1, FAM_INET6 = 0x2, FAM_UNIX = 0x3 };
enum { PROTO_UNSPEC = 0x0, PROTO_STREAM = 0x1, PROTO_DGRAM = 0x2 };

/* Copy a TLV string into out: printable ASCII/UTF-8 only, no NUL or control characters. */
static int copy_text(struct rd *v, char *out, size_t cap)
{
    size_t n = rd_left(v);
    if (n >= cap)
        return ERR_MALFORMED;
    const uint8_t *p = rd_cur(v);
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] == 0x7F)
            return ERR_MALFORMED;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

static int parse_ssl(struct rd *v, struct proxy2_info *out)
{
    uint8_t client;
    uint32_t verify;
    TRY(rd_u8(v, &client));
    TRY(rd_u32be(v, &verify));
    out->ssl = (client & PP2_CLIENT_SSL) != 0;
    out->cert_verified =
        out->ssl && (client & (PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS)) && verify == 0;
    while (rd_left(v) > 0) {
        uint8_t type;
        uint16_t len;
        struct rd sub;
        TRY(rd_u8(v, &type));
        TRY(rd_u16be(v, &len));
        TRY(rd_sub(v, len, &sub));
        if (type == PP2_SUBTYPE_SSL_CN)
            TRY(copy_text(&sub, out->ssl_cn, sizeof out->ssl_cn));
        else if (type == PP2_SUBTYPE_SSL_VERSION)
            TRY(copy_text(&sub, out->ssl_version, sizeof out->ssl_version));
    }
    return 0;
}

static int parse_tlvs(struct rd *r, struct proxy2_info *out)
{
    while (rd_left(r) > 0) {
        uint8_t type;
        uint16_t len;
        struct rd v;
        TRY(rd_u8(r, &type));
        TRY(rd_u16be(r, &len));
        TRY(rd_sub(r, len, &v));
        switch (type) {
        case PP2_TYPE_SSL:
            TRY(parse_ssl(&v, out));
            break;
        case PP2_TYPE_GW_CERT_SHA256:
            if (len != 32)
                return ERR_MALFORMED;
            TRY(rd_copy(&v, out->fingerprint, 32));
            out->has_fingerprint = true;
            break;
        case PP2_TYPE_GW_CLIENT_ID:
            TRY(copy_text(&v, out->client_id, sizeof out->client_id));
            break;
        case PP2_TYPE_GW_GRANTS:
            TRY(copy_text(&v, out->grants, sizeof out->grants));
            break;
        default: /* others (ALPN, AUTHORITY, CRC32C, NOOP, AWS VPC endpoint id...) are skipped */
            break;
        }
    }
    return 0;
}

static int parse_body(struct rd *r, uint8_t fam, uint8_t cmd, struct proxy2_info *out)
{
    if (cmd == CMD_LOCAL) {
        out->local = true;
        return 0; /* LOCAL: the receiver must ignore address information */
    }
    if (fam == FAM_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
        struct sockaddr_in *d = (struct sockaddr_in *)&out->dst;
        uint16_t sp, dp;
        if (rd_left(r) < 12)
            return ERR_MALFORMED;
        TRY(rd_copy(r, &s->sin_addr, 4));
        TRY(rd_copy(r, &d->sin_addr, 4));
        TRY(rd_u16be(r, &sp));
        TRY(rd_u16be(r, &dp));
        s->sin_family = d->sin_family = AF_INET;
        s->sin_port = htons(sp);
        d->sin_port = htons(dp);
    } else if (fam == FAM_INET6) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)&out->dst;
        uint16_t sp, dp;
        if (rd_left(r) < 36)
            return ERR_MALFORMED;
        TRY(rd_copy(r, &s->sin6_addr, 16));
        TRY(rd_copy(r, &d->sin6_addr, 16));
        TRY(rd_u16be(r, &sp));
        TRY(rd_u16be(r, &dp));
        s->sin6_family = d->sin6_family = AF_INET6;
        s->sin6_port = htons(sp);
        d->sin6_port = htons(dp);
    } else if (fam == FAM_UNIX) {
        if (rd_left(r) < 216)
            return ERR_MALFORMED;
        TRY(rd_skip(r, 216));
    } else {
        return 0; /* UNSPEC with PROXY: no addresses, no TLVs we can place */
    }
    return parse_tlvs(r, out);
}

int proxy2_parse(const uint8_t *p, size_t n, struct proxy2_info *out)
{
    size_t cmp = n < PROXY2_SIG_LEN ? n : PROXY2_SIG_LEN;
    if (memcmp(p, sig, cmp) != 0)
        return ERR_MALFORMED;
    if (n < PROXY2_HDR_LEN)
        return 0;
    struct rd r = rd_make(p, n);
    uint8_t ver_cmd, fam_proto;
    uint16_t len;
    if (rd_skip(&r, PROXY2_SIG_LEN) < 0 || rd_u8(&r, &ver_cmd) < 0 || rd_u8(&r, &fam_proto) < 0 ||
        rd_u16be(&r, &len) < 0)
        return ERR_TRUNCATED; /* unreachable: n >= 16 */
    uint8_t ver = (uint8_t)(ver_cmd >> 4), cmd = (uint8_t)(ver_cmd & 0x0F);
    uint8_t fam = (uint8_t)(fam_proto >> 4), proto = (uint8_t)(fam_proto & 0x0F);
    if (ver != 2 || cmd > CMD_PROXY || fam > FAM_UNIX || proto > PROTO_DGRAM)
        return ERR_MALFORMED;
    if (cmd == CMD_PROXY && fam != FAM_UNSPEC && proto != PROTO_STREAM)
        return ERR_MALFORMED; /* DICOM runs over TCP only */
    if ((size_t)len > PROXY2_MAX_LEN - PROXY2_HDR_LEN)
        return ERR_LIMIT;
    if ((size_t)len > rd_left(&r))
        return 0;
    struct rd body;
    if (rd_sub(&r, len, &body) < 0)
        return ERR_TRUNCATED;
    memset(out, 0, sizeof *out);
    int rc = parse_body(&body, fam, cmd, out);
    if (rc < 0) {
        memset(out, 0, sizeof *out);
        return rc == ERR_LIMIT ? ERR_LIMIT : ERR_MALFORMED;
    }
    return (int)(PROXY2_HDR_LEN + len);
}

static void put_tlv(struct wbuf *out, uint8_t type, const void *v, size_t n)
{
    wbuf_u8(out, type);
    wbuf_u16be(out, (uint16_t)n);
    wbuf_put(out, v, n);
}

int proxy2_encode(struct wbuf *out, const struct sockaddr *src, const struct sockaddr *dst,
                  const char *cn, const uint8_t fp[32], const char *client_id)
{
    return proxy2_encode_grants(out, src, dst, cn, fp, client_id, NULL);
}

int proxy2_encode_grants(struct wbuf *out, const struct sockaddr *src,
                         const struct sockaddr *dst, const char *cn, const uint8_t fp[32],
                         const char *client_id, const char *grants)
{
    if (!src || !dst || src->sa_family != dst->sa_family)
        return ERR_MALFORMED;
    size_t cn_len = cn ? strnlen(cn, 256) : 0;
    size_t id_len = client_id ? strnlen(client_id, 129) : 0;
    size_t gr_len = grants ? strnlen(grants, 129) : 0;
    if (cn_len > 255 || id_len > 128 || gr_len > 128)
        return ERR_LIMIT;
    size_t start = out->len;
    wbuf_put(out, sig, sizeof sig);
    wbuf_u8(out, 0x21); /* version 2, PROXY */
    if (src->sa_family == AF_INET) {
        wbuf_u8(out, (FAM_INET << 4) | PROTO_STREAM);
        wbuf_u16be(out, 0); /* patched below */
        const struct sockaddr_in *s = (const struct sockaddr_in *)(const void *)src;
        const struct sockaddr_in *d = (const struct sockaddr_in *)(const void *)dst;
        wbuf_put(out, &s->sin_addr, 4);
        wbuf_put(out, &d->sin_addr, 4);
        wbuf_u16be(out, ntohs(s->sin_port));
        wbuf_u16be(out, ntohs(d->sin_port));
    } else if (src->sa_family == AF_INET6) {
        wbuf_u8(out, (FAM_INET6 << 4) | PROTO_STREAM);
        wbuf_u16be(out, 0);
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)(const void *)src;
        const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)(const void *)dst;
        wbuf_put(out, &s->sin6_addr, 16);
        wbuf_put(out, &d->sin6_addr, 16);
        wbuf_u16be(out, ntohs(s->sin6_port));
        wbuf_u16be(out, ntohs(d->sin6_port));
    } else {
        return ERR_MALFORMED;
    }
    if (cn) {
        wbuf_u8(out, PP2_TYPE_SSL);
        wbuf_u16be(out, (uint16_t)(5 + 3 + cn_len));
        wbuf_u8(out, PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN);
        wbuf_u32be(out, 0); /* verified */
        put_tlv(out, PP2_SUBTYPE_SSL_CN, cn, cn_len);
    }
    if (fp)
        put_tlv(out, PP2_TYPE_GW_CERT_SHA256, fp, 32);
    if (client_id)
        put_tlv(out, PP2_TYPE_GW_CLIENT_ID, client_id, id_len);
    if (grants)
        put_tlv(out, PP2_TYPE_GW_GRANTS, grants, gr_len);
    if (out->err)
        return out->err;
    size_t body = out->len - start - PROXY2_HDR_LEN;
    if (body > PROXY2_MAX_LEN - PROXY2_HDR_LEN)
        return ERR_LIMIT;
    wbuf_set_u16be(out, start + 14, (uint16_t)body);
    return out->err;
}
