/* checksum_speed: how fast the store path can checksum an object on this machine. CRC-64/NVME
 * (common/crc64nvme: carry-less multiply and the portable tables) against SHA-256 (OpenSSL,
 * which uses the CPU's SHA extensions where it has them) and a plain memcpy of the same bytes as
 * the machine's reference. Timing only: it never fails on a figure.
 *
 *   build/tests/checksum_speed [object_bytes (525466)] [seconds per figure (0.5)]
 *
 * Prints one line per method: GB/s (best of 3 runs, CPU time of this thread) and microseconds
 * per object, with the object in cache (the store path checksums bytes it has just received). */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/crc64nvme.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum method { M_MEMCPY, M_CRC_FAST, M_CRC_TABLE, M_SHA256, M_COUNT };
static const char *const names[M_COUNT] = {"memcpy (reference)", "crc64nvme", "crc64nvme tables",
                                           "sha256 (OpenSSL)"};

static volatile uint64_t sink; /* keeps the work from being optimised away */

static void once(enum method m, const uint8_t *p, uint8_t *dst, size_t n, EVP_MD_CTX *md)
{
    switch (m) {
    case M_MEMCPY:
        memcpy(dst, p, n);
        sink ^= dst[n / 2];
        break;
    case M_CRC_FAST:
        sink ^= crc64nvme(0, p, n);
        break;
    case M_CRC_TABLE:
        sink ^= crc64nvme_portable(0, p, n);
        break;
    case M_SHA256: {
        unsigned char out[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(md, p, n) != 1 ||
            EVP_DigestFinal_ex(md, out, &len) != 1) {
            fprintf(stderr, "checksum_speed: OpenSSL SHA-256 failed\n");
            exit(1);
        }
        sink ^= out[0];
        break;
    }
    default:
        break;
    }
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 525466;
    double secs = argc > 2 ? strtod(argv[2], NULL) : 0.5;
    if (n == 0 || secs <= 0) {
        fprintf(stderr, "usage: checksum_speed [object_bytes] [seconds]\n");
        return 2;
    }
    uint8_t *src = malloc(n), *dst = malloc(n);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!src || !dst || !md) {
        fprintf(stderr, "checksum_speed: out of memory\n");
        return 1;
    }
    uint64_t x = 88172645463325252u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        src[i] = (uint8_t)x;
    }
    printf("checksum_speed: %zu-byte object, crc64nvme path: %s\n", n,
           crc64nvme_accelerated() ? "carry-less multiply (PCLMULQDQ)" : "tables (slice-by-8)");
    double gbs[M_COUNT];
    for (int m = 0; m < M_COUNT; m++) {
        double best = 0;
        for (int run = 0; run < 3; run++) {
            once((enum method)m, src, dst, n, md); /* warm */
            double t0 = cpu_now(), t;
            size_t iters = 0;
            do {
                once((enum method)m, src, dst, n, md);
                iters++;
                t = cpu_now() - t0;
            } while (t < secs / 3);
            double rate = (double)n * (double)iters / t / 1e9;
            if (rate > best)
                best = rate;
        }
        gbs[m] = best;
        printf("  %-20s %7.2f GB/s  %8.1f us per object\n", names[m], best,
               (double)n / best / 1e3);
    }
    printf("  crc64nvme is %.1fx SHA-256 and %.2fx memcpy here\n", gbs[M_CRC_FAST] / gbs[M_SHA256],
           gbs[M_CRC_FAST] / gbs[M_MEMCPY]);
    EVP_MD_CTX_free(md);
    free(src);
    free(dst);
    return 0;
}
