#include "net/sha256_file.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <unistd.h>

#include "common/hex.h"

int sha256_file(const char *path, char hex[65])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    static __thread uint8_t buf[1 << 16];
    int rc = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : ERR_NOMEM;
    while (rc == 0) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = -errno;
        if (n <= 0)
            break;
        if (EVP_DigestUpdate(md, buf, (size_t)n) != 1)
            rc = ERR_NOMEM;
    }
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    if (rc == 0 && (EVP_DigestFinal_ex(md, d, &dl) != 1 || dl != 32))
        rc = ERR_NOMEM;
    EVP_MD_CTX_free(md);
    close(fd);
    if (rc == 0)
        hex_lower(d, 32, hex);
    return rc;
}
