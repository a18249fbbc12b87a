#include "sigv4.h"
#include "common/hex.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIGV4_MAX_HEADERS 48
#define SIGV4_MAX_QUERY_PAIRS 64
#define SIGV4_CAP (64u * 1024u) /* canonical request and scratch strings */

void aws_creds_wipe(struct aws_creds *c)
{
    OPENSSL_cleanse(c, sizeof(*c));
}

static const char g_hexu[] = "0123456789ABCDEF";

void sigv4_sha256_hex(const void *p, size_t n, char hex[65])
{
    uint8_t md[32];
    unsigned int mdlen = 0;
    if (EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        memset(hex, '0', 64); /* only on OpenSSL failure: signature then simply fails */
        hex[64] = '\0';
        return;
    }
    hex_lower(md, 32, hex);
}

int sigv4_hex_to_bin32(const char *hex, uint8_t out[32])
{
    TRY(hex_decode(hex, 64, out, 32)); /* stops at a NUL: a short string is never read past */
    return hex[64] == '\0' ? 0 : ERR_MALFORMED;
}

void sigv4_base64_32(const uint8_t in[32], char b64[45])
{
    /* 32 bytes -> 44 chars + NUL */
    EVP_EncodeBlock((unsigned char *)b64, in, 32);
    b64[44] = '\0';
}

void sigv4_amz_date(time_t t, char out[17])
{
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        memcpy(out, "19700101T000000Z", 17);
        return;
    }
    if (strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
        memcpy(out, "19700101T000000Z", 17);
}

static bool is_unreserved(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~';
}

void sigv4_uri_encode(struct wbuf *out, const char *s, size_t n, bool keep_slash)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            wbuf_u8(out, c);
        } else {
            char e[3] = {'%', g_hexu[c >> 4], g_hexu[c & 15]};
            wbuf_put(out, e, 3);
        }
    }
}

/* Percent-decode s[0..n) into out (which has room for n bytes); ERR_MALFORMED on a bad escape.
 * '+' stays '+': AWS query strings are RFC 3986, not form-encoded. */
static int pct_decode(const char *s, size_t n, char *out, size_t *outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (n - i < 3)
                return ERR_MALFORMED;
            uint8_t b;
            TRY(hex_decode(s + i + 1, 2, &b, 1));
            out[o++] = (char)b;
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    *outlen = o;
    return 0;
}

struct qpair {
    char *name; /* encoded, NUL-terminated */
    char *value;
};

static int qpair_cmp(const void *a, const void *b)
{
    const struct qpair *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* Decode then strictly re-encode s[0..n) into a new string. */
static int reencode(const char *s, size_t n, char **out)
{
    char *dec = malloc(n + 1);
    if (!dec)
        return ERR_NOMEM;
    size_t dlen = 0;
    int rc = pct_decode(s, n, dec, &dlen);
    if (rc < 0) {
        free(dec);
        return rc;
    }
    struct wbuf w;
    wbuf_init(&w, SIGV4_CAP);
    sigv4_uri_encode(&w, dec, dlen, false);
    wbuf_u8(&w, 0);
    free(dec);
    if (w.err) {
        rc = w.err;
        wbuf_cleanup(&w);
        return rc;
    }
    *out = (char *)w.p; /* ownership moves to the caller */
    return 0;
}

int sigv4_canonical_query(const char *raw, struct wbuf *out)
{
    if (!raw || !*raw)
        return 0;
    struct qpair pairs[SIGV4_MAX_QUERY_PAIRS];
    size_t np = 0;
    int rc = 0;
    const char *p = raw;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t seg = amp ? (size_t)(amp - p) : strlen(p); /* raw is our own caller's string */
        if (seg > 0) {
            if (np == SIGV4_MAX_QUERY_PAIRS) {
                rc = ERR_LIMIT;
                goto done;
            }
            const char *eq = memchr(p, '=', seg);
            size_t nlen = eq ? (size_t)(eq - p) : seg;
            pairs[np].name = NULL;
            pairs[np].value = NULL;
            rc = reencode(p, nlen, &pairs[np].name);
            if (rc == 0)
                rc = eq ? reencode(eq + 1, seg - nlen - 1, &pairs[np].value)
                        : reencode("", 0, &pairs[np].value);
            np++;
            if (rc < 0)
                goto done;
        }
        p += seg;
        if (*p == '&')
            p++;
    }
    qsort(pairs, np, sizeof(pairs[0]), qpair_cmp);
    for (size_t i = 0; i < np; i++) {
        if (i)
            wbuf_u8(out, '&');
        wbuf_str(out, pairs[i].name);
        wbuf_u8(out, '=');
        wbuf_str(out, pairs[i].value);
    }
    rc = out->err;
done:
    for (size_t i = 0; i < np; i++) {
        free(pairs[i].name);
        free(pairs[i].value);
    }
    return rc;
}

/* RFC 3986 5.2.4 as botocore applies it: empty and "." segments dropped, ".." pops, a leading
 * and a trailing '/' kept. */
static void normalize_path(const char *path, struct wbuf *out)
{
    size_t n = strlen(path);
    if (n == 0) {
        wbuf_u8(out, '/');
        return;
    }
    /* segment table: offsets into path */
    size_t starts[256], lens[256], ns = 0;
    size_t i = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && path[j] != '/')
            j++;
        size_t len = j - i;
        if (len == 0 || (len == 1 && path[i] == '.')) {
            /* skip */
        } else if (len == 2 && path[i] == '.' && path[i + 1] == '.') {
            if (ns)
                ns--;
        } else if (ns < ARRAY_LEN(starts)) {
            starts[ns] = i;
            lens[ns] = len;
            ns++;
        } else {
            out->err = ERR_LIMIT;
            return;
        }
        i = j + 1;
    }
    if (path[0] == '/')
        wbuf_u8(out, '/');
    for (size_t k = 0; k < ns; k++) {
        if (k)
            wbuf_u8(out, '/');
        wbuf_put(out, path + starts[k], lens[k]);
    }
    if (path[n - 1] == '/' && ns)
        wbuf_u8(out, '/');
}

struct hdr {
    char name[128];
    const char *value;
    size_t idx;
};

static int hdr_cmp(const void *a, const void *b)
{
    const struct hdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Trim and collapse runs of blanks, as botocore's ' '.join(value.split()). */
static void put_trimmed(struct wbuf *w, const char *v)
{
    bool pending_space = false, any = false;
    for (; *v; v++) {
        char c = *v;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
            pending_space = any;
            continue;
        }
        if (pending_space)
            wbuf_u8(w, ' ');
        pending_space = false;
        any = true;
        wbuf_u8(w, (uint8_t)c);
    }
}

static int hmac256(const void *key, size_t klen, const void *msg, size_t mlen, uint8_t out[32])
{
    unsigned int olen = 0;
    if (!HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &olen) || olen != 32)
        return ERR_UNSUPPORTED;
    return 0;
}

int sigv4_sign(const struct sigv4_request *req, const struct aws_creds *creds,
               struct sigv4_out *out, struct wbuf *creq_out, struct wbuf *sts_out)
{
    struct hdr hs[SIGV4_MAX_HEADERS];
    if (req->n_headers > SIGV4_MAX_HEADERS)
        return ERR_LIMIT;
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *nm = req->headers[i].name;
        size_t k = 0;
        for (; nm[k]; k++) {
            if (k + 1 >= sizeof(hs[i].name))
                return ERR_LIMIT;
            char c = nm[k];
            hs[i].name[k] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        hs[i].name[k] = '\0';
        hs[i].value = req->headers[i].value;
        hs[i].idx = i;
    }
    qsort(hs, req->n_headers, sizeof(hs[0]), hdr_cmp);

    sigv4_amz_date(req->now, out->amz_date);
    char date8[9];
    memcpy(date8, out->amz_date, 8);
    date8[8] = '\0';

    struct wbuf c, sh, tmp;
    wbuf_init(&c, SIGV4_CAP);
    wbuf_init(&sh, 4096);
    wbuf_init(&tmp, SIGV4_CAP);
    int rc;

    wbuf_str(&c, req->method);
    wbuf_u8(&c, '\n');
    const char *path = req->path && *req->path ? req->path : "/";
    if (req->s3_path) {
        wbuf_str(&c, path);
    } else {
        normalize_path(path, &tmp);
        if (tmp.err) {
            rc = tmp.err;
            goto out;
        }
        sigv4_uri_encode(&c, (const char *)tmp.p, tmp.len, true);
    }
    wbuf_u8(&c, '\n');
    rc = sigv4_canonical_query(req->query, &c);
    if (rc < 0)
        goto out;
    wbuf_u8(&c, '\n');
    for (size_t i = 0; i < req->n_headers; i++) {
        bool dup = i > 0 && strcmp(hs[i].name, hs[i - 1].name) == 0;
        if (dup) {
            wbuf_u8(&c, ',');
        } else {
            if (i > 0)
                wbuf_u8(&c, '\n');
            wbuf_str(&c, hs[i].name);
            wbuf_u8(&c, ':');
            if (sh.len)
                wbuf_u8(&sh, ';');
            wbuf_str(&sh, hs[i].name);
        }
        put_trimmed(&c, hs[i].value);
    }
    if (req->n_headers)
        wbuf_u8(&c, '\n');
    wbuf_u8(&c, '\n');
    wbuf_put(&c, sh.p, sh.len);
    wbuf_u8(&c, '\n');
    wbuf_str(&c, req->payload_hash);
    if (c.err || sh.err) {
        rc = c.err ? c.err : sh.err;
        goto out;
    }

    char creq_hash[65];
    sigv4_sha256_hex(c.p, c.len, creq_hash);
    char scope[160];
    int sn = snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", date8, req->region,
                      req->service);
    if (sn < 0 || (size_t)sn >= sizeof(scope)) {
        rc = ERR_LIMIT;
        goto out;
    }
    char sts[400];
    sn = snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s\n%s", out->amz_date, scope,
                  creq_hash);
    if (sn < 0 || (size_t)sn >= sizeof(sts)) {
        rc = ERR_LIMIT;
        goto out;
    }

    uint8_t k[32];
    char kseed[4 + sizeof(creds->secret_access_key)];
    size_t slen = strnlen(creds->secret_access_key, sizeof(creds->secret_access_key) - 1);
    memcpy(kseed, "AWS4", 4);
    memcpy(kseed + 4, creds->secret_access_key, slen);
    rc = hmac256(kseed, 4 + slen, date8, 8, k);
    OPENSSL_cleanse(kseed, sizeof(kseed));
    if (rc == 0)
        rc = hmac256(k, 32, req->region, strlen(req->region), k);
    if (rc == 0)
        rc = hmac256(k, 32, req->service, strlen(req->service), k);
    if (rc == 0)
        rc = hmac256(k, 32, "aws4_request", 12, k);
    uint8_t sig[32];
    if (rc == 0)
        rc = hmac256(k, 32, sts, (size_t)sn, sig);
    OPENSSL_cleanse(k, sizeof(k));
    if (rc < 0)
        goto out;
    hex_lower(sig, 32, out->signature);

    wbuf_u8(&sh, 0);
    if (sh.err) {
        rc = sh.err;
        goto out;
    }
    sn = snprintf(out->authorization, sizeof(out->authorization),
                  "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                  creds->access_key_id, scope, (const char *)sh.p, out->signature);
    if (sn < 0 || (size_t)sn >= sizeof(out->authorization)) {
        rc = ERR_LIMIT;
        goto out;
    }
    if (creq_out)
        wbuf_put(creq_out, c.p, c.len);
    if (sts_out)
        wbuf_str(sts_out, sts);
    rc = 0;
out:
    wbuf_cleanup(&c);
    wbuf_cleanup(&sh);
    wbuf_cleanup(&tmp);
    return rc;
}
