/* Tests for core/common/crc64nvme: the published check value, vectors computed independently in
 * Python from the definition (data/crc64nvme/gen_vectors.py), a bit-at-a-time reference here,
 * both code paths, every chunking, combine, and the header's base64. */
#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc64nvme.h"
#include "common/err.h"
#include "guard.h"

/* The definition, one bit at a time: nothing shared with the code under test. */
static uint64_t bit_crc(const uint8_t *p, size_t n)
{
    uint64_t c = ~(uint64_t)0;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x9A6C9329AC4BC9B5u : c >> 1;
    }
    return ~c;
}

/* The byte stream of gen_vectors.py: xorshift64, low byte after each step. */
static void gen(uint64_t seed, uint8_t *out, size_t n)
{
    uint64_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[i] = (uint8_t)x;
    }
}

Test(crc64nvme, check_value_of_123456789_on_every_path)
{
    const uint8_t *in = guard_copy("123456789", 9);
    cr_assert_eq(crc64nvme(0, in, 9), CRC64NVME_CHECK);
    cr_assert_eq(crc64nvme_portable(0, in, 9), CRC64NVME_CHECK);
    cr_assert_eq(bit_crc(in, 9), CRC64NVME_CHECK);
    struct crc64nvme c;
    crc64nvme_init(&c);
    for (size_t i = 0; i < 9; i++)
        crc64nvme_update(&c, in + i, 1);
    cr_assert_eq(crc64nvme_final(&c), CRC64NVME_CHECK);
    cr_assert_eq(crc64nvme(0, NULL, 0), 0, "the CRC of nothing is 0");
    guard_free(in, 9);
}

Test(crc64nvme, header_value_is_base64_of_the_big_endian_bytes)
{
    char b64[CRC64NVME_B64_LEN + 1];
    crc64nvme_base64(CRC64NVME_CHECK, b64); /* 0xAE8B14860A799888 */
    cr_assert_str_eq(b64, "rosUhgp5mIg=");
    crc64nvme_base64(0, b64);
    cr_assert_str_eq(b64, "AAAAAAAAAAA=");
    crc64nvme_base64(~(uint64_t)0, b64);
    cr_assert_str_eq(b64, "//////////8=");
}

Test(crc64nvme, matches_python_vectors_whole_and_chunked)
{
    char src[4096];
    snprintf(src, sizeof(src), "%s", __FILE__);
    char path[4200];
    snprintf(path, sizeof(path), "%s/data/crc64nvme/vectors.txt", dirname(src));
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    char line[256];
    size_t count = 0;
    while (fgets(line, sizeof(line), f)) {
        char *end;
        size_t n = (size_t)strtoull(line, &end, 10);
        uint64_t seed = strtoull(end, &end, 10);
        uint64_t want = strtoull(end, &end, 16);
        char b64want[32];
        snprintf(b64want, sizeof(b64want), "%.12s", end + 1);
        uint8_t *buf = malloc(n ? n : 1);
        cr_assert_not_null(buf);
        gen(seed, buf, n);
        const uint8_t *g = guard_copy(buf, n);
        cr_assert_eq(crc64nvme(0, g, n), want, "len %zu", n);
        cr_assert_eq(crc64nvme_portable(0, g, n), want, "len %zu", n);
        char b64[CRC64NVME_B64_LEN + 1];
        crc64nvme_base64(want, b64);
        cr_assert_str_eq(b64, b64want, "len %zu", n);
        /* a few chunkings, the fast path on some chunks and the tables on others */
        static const size_t chunks[] = {1, 7, 127, 128, 129, 4096};
        for (size_t i = 0; i < ARRAY_LEN(chunks) && n < 70000; i++) {
            struct crc64nvme c;
            crc64nvme_init(&c);
            for (size_t off = 0; off < n; off += chunks[i])
                crc64nvme_update(&c, g + off, n - off < chunks[i] ? n - off : chunks[i]);
            cr_assert_eq(crc64nvme_final(&c), want, "len %zu chunk %zu", n, chunks[i]);
        }
        guard_free(g, n);
        free(buf);
        count++;
    }
    fclose(f);
    cr_assert_geq(count, 300);
}

Test(crc64nvme, fast_path_equals_the_definition_at_every_length_and_alignment)
{
    enum { MAX = 3000 };
    uint8_t *buf = malloc(MAX + 16);
    cr_assert_not_null(buf);
    gen(42, buf, MAX + 16);
    for (size_t n = 0; n <= MAX; n += n < 600 ? 1 : 37) {
        for (size_t align = 0; align < 16; align += n < 300 ? 1 : 5) {
            uint64_t want = bit_crc(buf + align, n);
            cr_assert_eq(crc64nvme(0, buf + align, n), want, "n %zu align %zu", n, align);
            cr_assert_eq(crc64nvme_portable(0, buf + align, n), want, "n %zu", n);
        }
    }
    free(buf);
    if (!crc64nvme_accelerated())
        cr_log_warn("no carry-less multiply on this CPU: only the tables were tested");
}

Test(crc64nvme, random_chunkings_of_a_large_buffer_agree)
{
    size_t n = 3u << 20;
    uint8_t *buf = malloc(n);
    cr_assert_not_null(buf);
    gen(7, buf, n);
    uint64_t whole = crc64nvme(0, buf, n);
    cr_assert_eq(crc64nvme_portable(0, buf, n), whole);
    uint64_t x = 12345;
    for (int round = 0; round < 20; round++) {
        struct crc64nvme c;
        crc64nvme_init(&c);
        for (size_t off = 0; off < n;) {
            x = x * 6364136223846793005u + 1442695040888963407u;
            size_t k = (size_t)(x >> 33) % (round < 10 ? 300 : 200000);
            if (k > n - off)
                k = n - off;
            crc64nvme_update(&c, buf + off, k);
            off += k;
        }
        cr_assert_eq(crc64nvme_final(&c), whole, "round %d", round);
    }
    free(buf);
}

Test(crc64nvme, combine_gives_the_crc_of_the_concatenation)
{
    enum { N = 70000 };
    uint8_t *buf = malloc(N);
    cr_assert_not_null(buf);
    gen(99, buf, N);
    uint64_t whole = crc64nvme(0, buf, N);
    static const size_t splits[] = {0, 1, 7, 8, 9, 127, 128, 4096, 65536, N - 1, N};
    for (size_t i = 0; i < ARRAY_LEN(splits); i++) {
        size_t a = splits[i];
        uint64_t c1 = crc64nvme(0, buf, a);
        uint64_t c2 = crc64nvme(0, buf + a, N - a);
        cr_assert_eq(crc64nvme_combine(c1, c2, N - a), whole, "split %zu", a);
    }
    /* three parts, as a multipart upload would */
    uint64_t p1 = crc64nvme(0, buf, 1000), p2 = crc64nvme(0, buf + 1000, 30000);
    uint64_t p3 = crc64nvme(0, buf + 31000, N - 31000);
    uint64_t c = crc64nvme_combine(crc64nvme_combine(p1, p2, 30000), p3, N - 31000);
    cr_assert_eq(c, whole);
    /* a long run of zeros: "123456789" then 4 MiB of zeros, combined and computed */
    static uint8_t zeros[1 << 16];
    uint64_t z = 0, direct = CRC64NVME_CHECK;
    for (int i = 0; i < 64; i++) {
        z = crc64nvme(z, zeros, sizeof(zeros));
        direct = crc64nvme(direct, zeros, sizeof(zeros));
    }
    cr_assert_eq(crc64nvme_combine(CRC64NVME_CHECK, z, 64u << 16), direct);
    cr_assert_eq(crc64nvme_combine(CRC64NVME_CHECK, 0, 0), CRC64NVME_CHECK);
    free(buf);
}
