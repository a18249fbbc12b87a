/* libFuzzer target for core/dsscan.
 * Input: byte 0 picks the encoding (mod 3), byte 1 seeds the chunking, the rest is the dataset.
 * The dataset is fed once in chunks derived from byte 1 (each chunk an exact-size heap copy, so
 * ASan catches any over-read) and once whole; both runs must agree on the result and the UIDs,
 * and any UID reported must be valid. */
#include "dsscan.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct outcome {
    int rc;
    struct ds_uids uids;
};

static uint32_t next_rand(uint32_t *x)
{
    *x ^= *x << 13; /* xorshift32 */
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static void check_uid(const char *u)
{
    if (u[0] != '\0' && !ds_uid_valid(u))
        __builtin_trap();
}

static struct outcome run(enum ds_encoding enc, const uint8_t *p, size_t n, uint8_t seed,
                          bool whole)
{
    struct outcome o;
    struct ds_scan *s = ds_scan_new(enc);
    if (!s)
        abort();
    /* seed: low 2 bits choose the largest chunk (1, 16, 512, 64 Ki), the rest seeds the sizes */
    static const size_t maxes[4] = {1, 16, 512, 65536};
    size_t max = maxes[seed & 3];
    uint32_t x = 0x9E3779B9u ^ seed;
    int rc = 0;
    size_t off = 0;
    while (off < n && rc == 0) {
        size_t k = whole ? n : 1 + next_rand(&x) % max;
        if (k > n - off)
            k = n - off;
        uint8_t *c = malloc(k);
        if (!c)
            abort();
        memcpy(c, p + off, k);
        rc = ds_scan_feed(s, c, k);
        free(c);
        off += k;
    }
    if (rc == 1 && ds_scan_feed(s, (const uint8_t *)"x", 1) != 1)
        __builtin_trap(); /* done is sticky */
    if (rc == 0)
        rc = ds_scan_finish(s);
    if (rc != 1 && rc != ERR_TRUNCATED && rc != ERR_MALFORMED && rc != ERR_NOMEM)
        __builtin_trap();
    o.rc = rc;
    o.uids = *ds_scan_uids(s);
    check_uid(o.uids.sop_class);
    check_uid(o.uids.sop_instance);
    check_uid(o.uids.study);
    check_uid(o.uids.series);
    ds_scan_free(s);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    enum ds_encoding enc = (enum ds_encoding)(data[0] % 3);
    struct outcome a = run(enc, data + 2, size - 2, data[1], false);
    struct outcome b = run(enc, data + 2, size - 2, data[1], true);
    if (a.rc != b.rc || memcmp(&a.uids, &b.uids, sizeof(a.uids)) != 0)
        __builtin_trap(); /* the result must not depend on the chunking */
    return 0;
}
