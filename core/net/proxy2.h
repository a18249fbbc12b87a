/* proxy2: the PROXY protocol version 2 header (haproxy's proxy-protocol.txt, section 2.2),
 * which an edge or an NLB puts before the DICOM stream. Pure: bytes in, struct out. */
#ifndef GW_PROXY2_H
#define GW_PROXY2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/err.h"
#include "common/wbuf.h"

#define PROXY2_SIG_LEN 12
#define PROXY2_HDR_LEN 16
#define PROXY2_MAX_LEN (PROXY2_HDR_LEN + 1024) /* we refuse longer TLV blocks */

/* TLV types (proxy-protocol.txt 2.2.x) and our custom ones (0xE0..0xEF is the custom range). */
enum proxy2_tlv {
    PP2_TYPE_ALPN = 0x01,
    PP2_TYPE_AUTHORITY = 0x02,
    PP2_TYPE_CRC32C = 0x03,
    PP2_TYPE_NOOP = 0x04,
    PP2_TYPE_UNIQUE_ID = 0x05,
    PP2_TYPE_SSL = 0x20,
    PP2_SUBTYPE_SSL_VERSION = 0x21,
    PP2_SUBTYPE_SSL_CN = 0x22,
    PP2_SUBTYPE_SSL_CIPHER = 0x23,
    PP2_SUBTYPE_SSL_SIG_ALG = 0x24,
    PP2_SUBTYPE_SSL_KEY_ALG = 0x25,
    PP2_TYPE_NETNS = 0x30,
    PP2_TYPE_GW_CERT_SHA256 = 0xE0, /* ours: 32-byte SHA-256 of the client certificate (DER) */
    PP2_TYPE_GW_CLIENT_ID = 0xE1,   /* ours: the edge policy's client id (UTF-8) */
    PP2_TYPE_GW_GRANTS = 0xE2,      /* ours: the client's grants, common/grants.h text form */
};

enum { PP2_CLIENT_SSL = 0x01, PP2_CLIENT_CERT_CONN = 0x02, PP2_CLIENT_CERT_SESS = 0x04 };

struct proxy2_info {
    bool local;                   /* LOCAL command (health check): no addresses */
    struct sockaddr_storage src;  /* the original client (ss_family 0 for AF_UNSPEC) */
    struct sockaddr_storage dst;
    bool ssl;                     /* a PP2_TYPE_SSL TLV with PP2_CLIENT_SSL was present */
    bool cert_verified;           /* client sent a certificate and verify == 0 */
    char ssl_cn[257];             /* client certificate CN, "" if none */
    char ssl_version[32];
    char client_id[129];          /* PP2_TYPE_GW_CLIENT_ID, "" if none */
    char grants[129];             /* PP2_TYPE_GW_GRANTS, "" if none */
    bool has_fingerprint;
    uint8_t fingerprint[32];      /* PP2_TYPE_GW_CERT_SHA256 */
};

/* Parse a header at the start of p[0..n). Returns the header's length (>0) when complete, 0
 * when more bytes are needed, ERR_MALFORMED when the bytes are not a valid v2 header (wrong
 * signature, version, command, family/length mismatch, bad TLV, CN with NUL or control
 * characters), ERR_LIMIT when it declares more than PROXY2_MAX_LEN. */
MUST_CHECK int proxy2_parse(const uint8_t *p, size_t n, struct proxy2_info *out);

/* Append a PROXY command header for src -> dst (both AF_INET or both AF_INET6) with an SSL TLV
 * when cn is not NULL (verified client certificate with that CN), the fingerprint TLV when fp
 * is not NULL and the client-id TLV when client_id is not NULL. 0 or ERR_LIMIT / ERR_MALFORMED
 * (mixed families, over-long strings) or the wbuf's error. */
MUST_CHECK int proxy2_encode(struct wbuf *out, const struct sockaddr *src,
                             const struct sockaddr *dst, const char *cn, const uint8_t fp[32],
                             const char *client_id);
/* The same with the grants TLV too when grants is not NULL (at most 128 bytes). */
MUST_CHECK int proxy2_encode_grants(struct wbuf *out, const struct sockaddr *src,
                                    const struct sockaddr *dst, const char *cn,
                                    const uint8_t fp[32], const char *client_id,
                                    const char *grants);

#endif
