/* crc64nvme: CRC-64/NVME, table-driven (slice-by-8) and by carry-less multiplication.
 *
 * Notation: "reflected" 64-bit values hold a polynomial of degree < 64 with bit i the
 * coefficient of x^(63-i), the order the CRC consumes bits in (LSB of the first byte first).
 * The register r after a message M (started from 0) is M(x) * x^64 mod P. */
#include "crc64nvme.h"

#include <pthread.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRC64_CLMUL 1
#include <immintrin.h>
#endif

#define POLY_NORMAL 0xAD93D23594C93659u    /* x^64 + ..., bit i = coefficient of x^i */
#define POLY_REFLECTED 0x9A6C9329AC4BC9B5u /* the same, bit-reversed */
#define CLMUL_MIN 128                      /* below this the tables are as fast */

static uint64_t table[8][256];
/* Folding constants for a 128-bit block moved forward by D bits: [0] multiplies the block's
 * first 8 bytes, [1] its last 8; see build(). */
static uint64_t fold128[2], fold1024[2];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static uint64_t reflect64(uint64_t v)
{
    uint64_t r = 0;
    for (int i = 0; i < 64; i++) {
        r = r << 1 | (v & 1);
        v >>= 1;
    }
    return r;
}

/* x^e mod P in normal bit order. */
static uint64_t xpow_mod(unsigned e)
{
    uint64_t r = 1;
    for (unsigned i = 0; i < e; i++)
        r = (r << 1) ^ ((r >> 63) ? POLY_NORMAL : 0);
    return r;
}

static void build(void)
{
    for (unsigned i = 0; i < 256; i++) {
        uint64_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ ((c & 1) ? POLY_REFLECTED : 0);
        table[0][i] = c;
    }
    for (unsigned i = 0; i < 256; i++) {
        for (int t = 1; t < 8; t++)
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];
    }
    /* A 128-bit block A = Ahi * x^64 + Alo (Ahi its first 8 bytes) moved forward by D bits is
     * Ahi * (x^(D+64) mod P) + Alo * (x^D mod P). A carry-less product of two reflected values
     * comes out multiplied by x once more (bit k of it is the coefficient of x^(126-k), where
     * the 128-bit block layout has x^(127-k)), hence the exponents minus one. */
    fold128[0] = reflect64(xpow_mod(128 + 63));
    fold128[1] = reflect64(xpow_mod(128 - 1));
    fold1024[0] = reflect64(xpow_mod(1024 + 63));
    fold1024[1] = reflect64(xpow_mod(1024 - 1));
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

/* Slice-by-8 over the register (not the finished CRC). */
static uint64_t tab_update(uint64_t r, const uint8_t *p, size_t n)
{
    for (; n >= 8; p += 8, n -= 8) {
        r ^= le64(p);
        r = table[7][r & 0xFF] ^ table[6][(r >> 8) & 0xFF] ^ table[5][(r >> 16) & 0xFF] ^
            table[4][(r >> 24) & 0xFF] ^ table[3][(r >> 32) & 0xFF] ^
            table[2][(r >> 40) & 0xFF] ^ table[1][(r >> 48) & 0xFF] ^ table[0][r >> 56];
    }
    for (; n > 0; p++, n--)
        r = table[0][(r ^ *p) & 0xFF] ^ (r >> 8);
    return r;
}

#ifdef CRC64_CLMUL
__attribute__((target("pclmul,sse2"))) static inline __m128i fold(__m128i x, __m128i k)
{
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

__attribute__((target("pclmul,sse2"))) static inline __m128i load(const uint8_t *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

/* n >= CLMUL_MIN. Eight 128-bit lanes fold 128 bytes forward per round (the lanes hide the
 * multiply's latency), then fold into one lane, then 16 bytes at a time; the last lane is
 * reduced by the tables: its CRC from a zero register is the message's register. */
__attribute__((target("pclmul,sse2"))) static uint64_t clmul_update(uint64_t r, const uint8_t *p,
                                                                    size_t n)
{
    const __m128i k1024 = _mm_set_epi64x((long long)fold1024[1], (long long)fold1024[0]);
    const __m128i k128 = _mm_set_epi64x((long long)fold128[1], (long long)fold128[0]);
    __m128i x[8];
    for (int i = 0; i < 8; i++)
        x[i] = load(p + 16 * i);
    /* starting from register r is starting from 0 with r XORed into the first 8 bytes */
    x[0] = _mm_xor_si128(x[0], _mm_cvtsi64_si128((long long)r));
    p += 128;
    n -= 128;
    for (; n >= 128; p += 128, n -= 128) {
        for (int i = 0; i < 8; i++)
            x[i] = _mm_xor_si128(fold(x[i], k1024), load(p + 16 * i));
    }
    __m128i acc = x[0];
    for (int i = 1; i < 8; i++)
        acc = _mm_xor_si128(fold(acc, k128), x[i]);
    for (; n >= 16; p += 16, n -= 16)
        acc = _mm_xor_si128(fold(acc, k128), load(p));
    uint8_t last[16];
    _mm_storeu_si128((__m128i *)(void *)last, acc);
    return tab_update(tab_update(0, last, 16), p, n);
}
#endif

bool crc64nvme_accelerated(void)
{
#ifdef CRC64_CLMUL
    return __builtin_cpu_supports("pclmul");
#else
    return false;
#endif
}

uint64_t crc64nvme_portable(uint64_t crc, const void *p, size_t n)
{
    if (n == 0)
        return crc;
    (void)pthread_once(&once, build); /* fails only for an uninitialised once: not here */
    return ~tab_update(~crc, p, n);
}

uint64_t crc64nvme(uint64_t crc, const void *p, size_t n)
{
#ifdef CRC64_CLMUL
    if (n >= CLMUL_MIN && crc64nvme_accelerated()) {
        (void)pthread_once(&once, build);
        return ~clmul_update(~crc, p, n);
    }
#endif
    return crc64nvme_portable(crc, p, n);
}

void crc64nvme_init(struct crc64nvme *c)
{
    c->crc = 0;
}

void crc64nvme_update(struct crc64nvme *c, const void *p, size_t n)
{
    c->crc = crc64nvme(c->crc, p, n);
}

uint64_t crc64nvme_final(const struct crc64nvme *c)
{
    return c->crc;
}

/* a * b mod P, both reflected (bit 63 is x^0). a is never 0 here: x is invertible mod P. */
static uint64_t mulmod(uint64_t a, uint64_t b)
{
    uint64_t prod = 0;
    for (uint64_t m = (uint64_t)1 << 63; m != 0 && a != 0; m >>= 1) {
        if (a & m) {
            prod ^= b;
            a ^= m;
        }
        b = (b >> 1) ^ ((b & 1) ? POLY_REFLECTED : 0);
    }
    return prod;
}

uint64_t crc64nvme_combine(uint64_t crc1, uint64_t crc2, uint64_t len2)
{
    /* With initial value = final XOR, CRC(A B) = CRC(A) * x^(8 |B|) + CRC(B) mod P. */
    uint64_t xn = (uint64_t)1 << 63;  /* x^0 */
    uint64_t sq = (uint64_t)1 << 55;  /* x^8, then x^16, x^32, ... */
    for (; len2 != 0; len2 >>= 1) {
        if (len2 & 1)
            xn = mulmod(sq, xn);
        sq = mulmod(sq, sq);
    }
    return mulmod(xn, crc1) ^ crc2;
}

void crc64nvme_base64(uint64_t crc, char out[CRC64NVME_B64_LEN + 1])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    /* 8 bytes big-endian = 64 bits: eleven 6-bit groups (the last padded with 2 zero bits) */
    for (int i = 0; i < 11; i++) {
        int shift = 58 - 6 * i;
        uint64_t v = shift >= 0 ? crc >> shift : crc << -shift;
        out[i] = b64[v & 0x3F];
    }
    out[11] = '=';
    out[12] = '\0';
}
