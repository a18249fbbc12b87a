/* dsscan_walk: what the well-formedness walk (core/dsscan) costs per object, against a plain
 * memcpy of the same bytes as this machine's reference. Timing only: it never fails on a figure,
 * but it exits 1 if an object is not well-formed (the figures would be for a shorter walk).
 *
 *   build/tests/dsscan_walk [--chunk N] [--seconds S] [--bomb MIB] FILE.dcm...
 *
 * Each Part-10 file's dataset (after the File Meta group; its transfer syntax picks the
 * encoding) is walked fed in N-byte pieces (default 16372: the PDV payload of a 16 KiB PDU, as
 * storescu sends) for about S seconds (default 0.5), best of 3. Prints, per file: bytes, ns per
 * byte and microseconds of CPU per object for the walk and for memcpy, and the walk's cost as a
 * multiple of the memcpy. --bomb MIB also walks a deflated dataset whose one value is MIB MiB of
 * zeros (deflate's best ratio, the decompression-bomb case) and prints its cost per inflated
 * byte and per MiB on the wire: what the inflate cap (DS_INFLATE_CAP) bounds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "dsscan.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *p = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
        p = malloc((size_t)n);
        if (p && fread(p, 1, (size_t)n, f) != (size_t)n)
            FREE_NULL(p);
    }
    fclose(f);
    *len = n > 0 ? (size_t)n : 0;
    return p;
}

static uint32_t le(const uint8_t *p, int n)
{
    uint32_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* PS3.5 7.1.2: the VRs with a 12-byte header */
static bool long_vr(const uint8_t *vr)
{
    static const char l[][3] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ",
                                "SV", "UC", "UN", "UR", "UT", "UV"};
    for (size_t i = 0; i < sizeof(l) / sizeof(l[0]); i++) {
        if (vr[0] == l[i][0] && vr[1] == l[i][1])
            return true;
    }
    return false;
}

/* PS3.10 7.1: preamble, "DICM", File Meta group in explicit VR LE. Finds where the dataset starts
 * and its transfer syntax; -1 if this is not a Part-10 file we can read. */
static int part10(const uint8_t *p, size_t n, size_t *ds_off, enum ds_encoding *enc)
{
    if (n < 144 || memcmp(p + 128, "DICM", 4) != 0)
        return -1;
    size_t off = 132;
    char ts[65] = "";
    while (off + 8 <= n && le(p + off, 2) == 0x0002) {
        uint16_t el = (uint16_t)le(p + off + 2, 2);
        const uint8_t *vr = p + off + 4;
        bool lng = long_vr(vr);
        size_t hl = lng ? 12 : 8;
        if (off + hl > n)
            return -1;
        size_t vl = lng ? le(p + off + 8, 4) : le(p + off + 6, 2);
        if (vl > n - off - hl)
            return -1;
        if (el == 0x0010 && vl < sizeof(ts)) {
            size_t k = vl;
            memcpy(ts, p + off + hl, k);
            ts[k] = '\0';
            while (k > 0 && (ts[k - 1] == '\0' || ts[k - 1] == ' '))
                ts[--k] = '\0';
        }
        off += hl + vl;
    }
    if (ts[0] == '\0')
        return -1;
    *ds_off = off;
    *enc = strcmp(ts, "1.2.840.10008.1.2") == 0        ? DS_IMPLICIT_LE
           : strcmp(ts, "1.2.840.10008.1.2.1.99") == 0 ? DS_DEFLATED_LE
                                                       : DS_EXPLICIT_LE;
    return 0;
}

static volatile uint8_t sink;

/* One walk of p[0..n) in chunk-byte pieces: 1 if well-formed. */
static int walk(enum ds_encoding enc, const uint8_t *p, size_t n, size_t chunk,
                const char **why)
{
    struct ds_scan *s = ds_scan_new(enc);
    if (!s)
        return -1;
    int rc = 0;
    for (size_t off = 0; off < n && rc == 0; off += chunk)
        rc = ds_scan_feed(s, p + off, n - off < chunk ? n - off : chunk);
    if (rc == 0)
        rc = ds_scan_finish(s);
    *why = ds_scan_error(s);
    ds_scan_free(s);
    return rc;
}

static void copy(uint8_t *dst, const uint8_t *p, size_t n, size_t chunk)
{
    for (size_t off = 0; off < n; off += chunk)
        memcpy(dst + off, p + off, n - off < chunk ? n - off : chunk);
    sink ^= dst[n / 2];
}

/* Deflate (raw, Z_RLE) of a dataset holding one OB value of mib MiB of zeros; NULL on failure. */
static uint8_t *bomb(size_t mib, size_t *len)
{
    static const uint8_t hdr[12] = {0x09, 0x00, 0x10, 0x10, 'O', 'B', 0, 0, 0, 0, 0, 0};
    static uint8_t zeros[1 << 20];
    uint8_t h[12];
    memcpy(h, hdr, sizeof(h));
    uint32_t v = (uint32_t)(mib << 20);
    for (int i = 0; i < 4; i++)
        h[8 + i] = (uint8_t)(v >> (8 * i));
    size_t cap = mib * 2048 + 65536, n = 0;
    uint8_t *out = malloc(cap);
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (!out || deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_RLE) != Z_OK) {
        free(out);
        return NULL;
    }
    for (size_t step = 0; step <= mib + 1; step++) {
        z.next_in = step == 0 ? h : zeros;
        z.avail_in = step == 0 ? sizeof(h) : step <= mib ? sizeof(zeros) : 0;
        int flush = step <= mib ? Z_NO_FLUSH : Z_FINISH, rc;
        do {
            z.next_out = out + n;
            z.avail_out = (uInt)(cap - n);
            rc = deflate(&z, flush);
            n = cap - z.avail_out;
        } while (rc == Z_OK && z.avail_in > 0 && n < cap);
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
            deflateEnd(&z);
            free(out);
            return NULL;
        }
    }
    deflateEnd(&z);
    *len = n;
    return out;
}

static void run_bomb(size_t mib, size_t chunk)
{
    size_t n;
    uint8_t *z = bomb(mib, &n);
    if (!z) {
        fprintf(stderr, "dsscan_walk: could not build the deflate stream\n");
        return;
    }
    struct ds_scan *s = ds_scan_new(DS_DEFLATED_LE);
    ds_scan_set_inflate_cap(s, UINT64_MAX);
    double t0 = cpu_now();
    int rc = 0;
    for (size_t off = 0; off < n && rc == 0; off += chunk)
        rc = ds_scan_feed(s, z + off, n - off < chunk ? n - off : chunk);
    rc = rc ? rc : ds_scan_finish(s);
    double t = cpu_now() - t0;
    double plain = (double)mib * 1048576.0 + 12;
    printf("deflate bomb: %zu MiB of zeros in %zu bytes (%.0f:1), walked %s in %.3f s CPU: "
           "%.2f ns per inflated byte, %.2f s per MiB on the wire; the default cap (%llu MiB) "
           "costs %.2f s\n",
           mib, n, plain / (double)n, rc == 1 ? "to its end" : ds_scan_error(s), t,
           t * 1e9 / plain, t / ((double)n / 1048576.0),
           (unsigned long long)(DS_INFLATE_CAP >> 20), t / plain * (double)DS_INFLATE_CAP);
    ds_scan_free(s);
    free(z);
}

int main(int argc, char **argv)
{
    size_t bomb_mib = 0;
    size_t chunk = 16372;
    double secs = 0.5;
    int i = 1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--chunk") == 0)
            chunk = (size_t)strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--seconds") == 0)
            secs = strtod(argv[i + 1], NULL);
        else if (strcmp(argv[i], "--bomb") == 0)
            bomb_mib = (size_t)strtoull(argv[i + 1], NULL, 10);
    }
    if ((i >= argc && bomb_mib == 0) || chunk == 0 || secs <= 0 || bomb_mib > 4095) {
        fprintf(stderr, "usage: dsscan_walk [--chunk N] [--seconds S] [--bomb MIB] FILE.dcm...\n");
        return 2;
    }
    static const char *const encs[] = {"implicit", "explicit", "deflated"};
    if (i < argc)
        printf("%-28s %-8s %9s | %8s %9s | %8s %9s | %s\n", "object", "encoding", "bytes",
               "walk ns/B", "us/object", "copy ns/B", "us/object", "walk/copy");
    int status = 0;
    for (; i < argc; i++) {
        size_t len, off;
        enum ds_encoding enc;
        uint8_t *file = slurp(argv[i], &len);
        if (!file || part10(file, len, &off, &enc) < 0) {
            fprintf(stderr, "dsscan_walk: %s: not a readable Part-10 file\n", argv[i]);
            free(file);
            status = 1;
            continue;
        }
        const uint8_t *p = file + off;
        size_t n = len - off;
        uint8_t *dst = malloc(n);
        const char *why = "";
        if (!dst || walk(enc, p, n, chunk, &why) != 1) {
            fprintf(stderr, "dsscan_walk: %s: not well-formed: %s\n", argv[i], why);
            free(dst);
            free(file);
            status = 1;
            continue;
        }
        double best[2] = {1e30, 1e30}; /* seconds per object: walk, copy */
        for (int m = 0; m < 2; m++) {
            for (int run = 0; run < 3; run++) {
                /* batches between clock reads, so that reading the clock costs nothing */
                size_t batch = 1, iters = 0;
                double t0 = cpu_now(), t;
                do {
                    for (size_t b = 0; b < batch; b++) {
                        if (m == 0)
                            (void)walk(enc, p, n, chunk, &why);
                        else
                            copy(dst, p, n, chunk);
                    }
                    iters += batch;
                    batch *= 2;
                    t = cpu_now() - t0;
                } while (t < secs / 3);
                if (t / (double)iters < best[m])
                    best[m] = t / (double)iters;
            }
        }
        const char *base = strrchr(argv[i], '/');
        printf("%-28s %-8s %9zu | %8.3f %9.1f | %8.3f %9.1f | %.1fx\n", base ? base + 1 : argv[i],
               encs[enc], n, best[0] * 1e9 / (double)n, best[0] * 1e6,
               best[1] * 1e9 / (double)n, best[1] * 1e6, best[0] / best[1]);
        free(dst);
        free(file);
    }
    if (bomb_mib > 0)
        run_bomb(bomb_mib, chunk);
    return status;
}
