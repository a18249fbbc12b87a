/* libFuzzer target for the PROXY protocol v2 parser (core/net/proxy2).
 * The input is parsed from an exact-size heap copy (ASan catches over-reads). Invariants: a
 * result > 0 never exceeds the input or PROXY2_MAX_LEN, and every shorter prefix of a complete
 * header needs more bytes (checked for one prefix per input); text fields are NUL-terminated,
 * free of control characters; a parsed PROXY header with addresses re-encodes (with the same
 * CN, fingerprint and client id) and parses back to the same values. */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "net/proxy2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static void check_text(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    CHECK(n < cap);
    for (size_t i = 0; i < n; i++)
        CHECK((uint8_t)s[i] >= 0x20 && (uint8_t)s[i] != 0x7f);
}

static int parse_copy(const uint8_t *p, size_t n, struct proxy2_info *out)
{
    uint8_t *c = malloc(n ? n : 1);
    CHECK(c != NULL);
    memcpy(c, p, n);
    int rc = proxy2_parse(c, n, out);
    free(c);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy2_info a, b;
    int rc = parse_copy(data, size, &a);
    if (rc < 0) {
        CHECK(rc == ERR_MALFORMED || rc == ERR_LIMIT || rc == ERR_TRUNCATED);
        return 0;
    }
    if (rc == 0)
        return 0;
    CHECK((size_t)rc <= size && rc <= PROXY2_MAX_LEN && rc >= PROXY2_HDR_LEN);
    size_t cut = size ? (size_t)data[size - 1] % (size_t)rc : 0;
    CHECK(parse_copy(data, cut, &b) == 0);
    check_text(a.ssl_cn, sizeof a.ssl_cn);
    check_text(a.ssl_version, sizeof a.ssl_version);
    check_text(a.client_id, sizeof a.client_id);
    if (a.local || (a.src.ss_family != AF_INET && a.src.ss_family != AF_INET6))
        return 0;
    const char *cn = a.cert_verified && a.ssl_cn[0] && strlen(a.ssl_cn) <= 255 ? a.ssl_cn : NULL;
    struct wbuf w;
    wbuf_init(&w, 4096);
    int erc = proxy2_encode(&w, (const struct sockaddr *)&a.src, (const struct sockaddr *)&a.dst,
                            cn, a.has_fingerprint ? a.fingerprint : NULL,
                            a.client_id[0] ? a.client_id : NULL);
    if (erc == 0) {
        CHECK(parse_copy(w.p, w.len, &b) == (int)w.len);
        CHECK(b.src.ss_family == a.src.ss_family);
        size_t alen = a.src.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                 : sizeof(struct sockaddr_in6);
        CHECK(memcmp(&a.src, &b.src, alen) == 0);
        CHECK(memcmp(&a.dst, &b.dst, alen) == 0);
        CHECK(strcmp(a.client_id, b.client_id) == 0);
        CHECK(a.has_fingerprint == b.has_fingerprint);
        if (a.has_fingerprint)
            CHECK(memcmp(a.fingerprint, b.fingerprint, 32) == 0);
        if (cn)
            CHECK(strcmp(cn, b.ssl_cn) == 0 && b.cert_verified);
    }
    wbuf_cleanup(&w);
    return 0;
}
