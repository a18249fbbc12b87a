#include "audit_hash.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/hex.h"

int audit_hmac_hex(const uint8_t *key, size_t klen, const void *msg, size_t n, char out[65])
{
    uint8_t md[32];
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha256(), key, (int)klen, msg, n, md, &mdlen) || mdlen != sizeof md)
        return ERR_UNEXPECTED;
    hex_lower(md, sizeof md, out);
    OPENSSL_cleanse(md, sizeof md);
    return 0;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int audit_key_parse(const uint8_t *p, size_t n, uint8_t key[AUDIT_KEY_MAX], size_t *len)
{
    while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    bool hex = n >= 2 * AUDIT_KEY_MIN && n <= 2 * AUDIT_KEY_MAX && n % 2 == 0;
    for (size_t i = 0; hex && i < n; i++)
        hex = hexval(p[i]) >= 0;
    if (hex) {
        for (size_t i = 0; i < n / 2; i++)
            key[i] = (uint8_t)(hexval(p[2 * i]) << 4 | hexval(p[2 * i + 1]));
        *len = n / 2;
        return 0;
    }
    if (n < AUDIT_KEY_MIN || n > AUDIT_KEY_MAX)
        return ERR_CONFIG;
    memcpy(key, p, n);
    *len = n;
    return 0;
}

int audit_key_load(const char *path, uint8_t key[AUDIT_KEY_MAX], size_t *len, char *err,
                   size_t err_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, err_len, "cannot open hash_key_file %s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    uint8_t buf[4096];
    ssize_t n = -1;
    int rc = ERR_CONFIG;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_len, "hash_key_file %s is not a regular file", path);
    } else if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(err, err_len, "hash_key_file %s is readable by group or others (chmod 600)", path);
    } else if (st.st_size > (off_t)sizeof buf || (n = read(fd, buf, sizeof buf)) < 0) {
        snprintf(err, err_len, "cannot read hash_key_file %s (at most 4 KiB)", path);
    } else if (audit_key_parse(buf, (size_t)n, key, len) < 0) {
        snprintf(err, err_len,
                 "hash_key_file %s: the key must be %u..%u bytes (or twice as many hex digits)",
                 path, AUDIT_KEY_MIN, AUDIT_KEY_MAX);
    } else {
        rc = 0;
    }
    OPENSSL_cleanse(buf, sizeof buf);
    close(fd);
    return rc;
}
