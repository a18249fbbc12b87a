/* libFuzzer target for core/dsscan.
 * Input: byte 0 picks the encoding (mod 3) and, above that, a small inflate cap (0 = default);
 * byte 1 seeds the chunking; the rest is the dataset. The dataset is fed once in chunks derived
 * from byte 1 (each chunk an exact-size heap copy, so ASan catches any over-read) and once whole;
 * both runs must give the same verdict: result, reason, offset, glitch count, UIDs. Every reason
 * must fit an Error Comment, and any UID reported must be valid. */
#include "dsscan.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct outcome {
    int rc;
    const char *reason;
    uint64_t off;
    uint32_t glitches;
    bool final;
    enum ds_pixel pixel;
    struct ds_uids uids;
    char patient_id[DS_PATIENT_ID_MAX + 1];
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

static struct outcome run(uint8_t mode, const uint8_t *p, size_t n, uint8_t seed, bool whole)
{
    struct outcome o;
    struct ds_scan *s = ds_scan_new((enum ds_encoding)(mode % 3));
    if (!s)
        abort();
    unsigned capsel = mode / 3u; /* 0: default; else 64 bytes << (0..84): tiny caps get hit */
    if (capsel > 0)
        ds_scan_set_inflate_cap(s, (uint64_t)64 << (capsel % 24));
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
    if (rc > 0)
        __builtin_trap(); /* feed never says done: the caller feeds everything */
    int frc = ds_scan_finish(s);
    if ((rc < 0 && frc != rc) || ds_scan_finish(s) != frc)
        __builtin_trap(); /* errors are sticky, finish is idempotent */
    if (frc != 1 && frc != ERR_TRUNCATED && frc != ERR_MALFORMED && frc != ERR_LIMIT &&
        frc != ERR_NOMEM)
        __builtin_trap();
    o.rc = frc;
    o.reason = ds_scan_error(s);
    size_t rlen = strnlen(o.reason, DS_REASON_MAX + 1);
    if (rlen > DS_REASON_MAX || (frc < 0) != (rlen > 0))
        __builtin_trap();
    o.off = ds_scan_error_offset(s);
    o.glitches = ds_scan_glitches(s);
    o.final = ds_scan_uids_final(s);
    o.pixel = ds_scan_pixel(s);
    o.uids = *ds_scan_uids(s);
    check_uid(o.uids.sop_class);
    check_uid(o.uids.sop_instance);
    check_uid(o.uids.study);
    check_uid(o.uids.series);
    /* the Patient ID (for the audit trail): bounded, trimmed, no control character but ESC */
    const char *pid = ds_scan_patient_id(s);
    size_t plen = strnlen(pid, DS_PATIENT_ID_MAX + 1);
    if (plen > DS_PATIENT_ID_MAX || (plen && (pid[0] == ' ' || pid[plen - 1] == ' ')))
        __builtin_trap();
    for (size_t i = 0; i < plen; i++) {
        uint8_t c = (uint8_t)pid[i];
        if ((c < 0x20 && c != 0x1B) || c == 0x7F || c == '\\')
            __builtin_trap();
    }
    memcpy(o.patient_id, pid, plen + 1);
    ds_scan_free(s);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct outcome a = run(data[0], data + 2, size - 2, data[1], false);
    struct outcome b = run(data[0], data + 2, size - 2, data[1], true);
    /* the verdict must not depend on the chunking */
    if (a.rc != b.rc || strcmp(a.reason, b.reason) != 0 || a.off != b.off ||
        a.glitches != b.glitches || a.final != b.final || a.pixel != b.pixel ||
        memcmp(&a.uids, &b.uids, sizeof(a.uids)) != 0 || strcmp(a.patient_id, b.patient_id) != 0)
        __builtin_trap();
    return 0;
}
