#include "audit_qrec.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const uint8_t MAGIC[4] = {'A', 'Q', 'R', '1'};
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t aq_crc32c(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *b = p;
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ b[i]) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

static void put_u32le(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int aq_rec_encode(struct wbuf *out, uint64_t seq, const void *payload, size_t n)
{
    if (n > AQ_REC_MAX) {
        if (!out->err)
            out->err = ERR_LIMIT;
        return out->err;
    }
    uint8_t h[AQ_REC_HDR];
    memcpy(h, MAGIC, 4);
    put_u64le(h + 4, seq);
    put_u32le(h + 12, (uint32_t)n);
    uint32_t crc = aq_crc32c(aq_crc32c(0, h + 4, 12), payload, n);
    put_u32le(h + 16, crc);
    wbuf_put(out, h, sizeof h);
    wbuf_put(out, payload, n);
    return out->err;
}

int aq_rec_parse(const uint8_t *p, size_t n, size_t max, uint64_t *seq, struct slice *payload)
{
    if (memcmp(p, MAGIC, n < 4 ? n : 4) != 0)
        return ERR_MALFORMED;
    if (n < AQ_REC_HDR)
        return 0;
    struct rd r = rd_make(p, n);
    uint64_t s = 0;
    uint32_t len, crc, lo, hi;
    TRY(rd_skip(&r, 4));
    TRY(rd_u32le(&r, &lo));
    TRY(rd_u32le(&r, &hi));
    s = (uint64_t)hi << 32 | lo;
    TRY(rd_u32le(&r, &len));
    TRY(rd_u32le(&r, &crc));
    if (len > max || len > AQ_REC_MAX)
        return ERR_LIMIT;
    if (len > rd_left(&r))
        return 0;
    uint32_t want = aq_crc32c(aq_crc32c(0, p + 4, 12), rd_cur(&r), len);
    if (want != crc)
        return ERR_MISMATCH;
    *seq = s;
    payload->p = rd_cur(&r);
    payload->len = len;
    return (int)(AQ_REC_HDR + len);
}

struct scan_state {
    uint64_t last_seq;
    aq_scan_cb cb;
    void *arg;
    struct aq_scan_result *res;
};

/* Scan buf[0..n), whose first byte is at file offset base; *used: bytes done with (less than n
 * only when a record needs bytes beyond the window and more may come). */
static int scan_window(struct scan_state *st, const uint8_t *buf, size_t n, uint64_t base, bool eof,
                       size_t *used)
{
    size_t i = 0;
    while (i < n) {
        uint64_t seq = 0;
        struct slice pl;
        int rc = aq_rec_parse(buf + i, n - i, AQ_REC_MAX, &seq, &pl);
        if (rc == 0 && !eof)
            break;
        if (rc > 0 && seq > st->last_seq) {
            if (st->cb) {
                int crc = st->cb(st->arg, seq, base + i, (uint32_t)rc);
                if (crc < 0)
                    return crc;
            }
            st->last_seq = seq;
            st->res->records++;
            i += (size_t)rc;
            st->res->end = base + i;
            continue;
        }
        if (rc == 0) { /* a cut record at the end of the file */
            st->res->garbage += n - i;
            i = n;
            break;
        }
        /* not a record here: skip to the next place the magic could start */
        const uint8_t *next = memchr(buf + i + 1, MAGIC[0], n - i - 1);
        size_t skip = next ? (size_t)(next - (buf + i)) : n - i;
        st->res->garbage += skip;
        i += skip;
    }
    *used = i;
    return 0;
}

int aq_scan(const uint8_t *buf, size_t n, uint64_t last_seq, aq_scan_cb cb, void *arg,
            struct aq_scan_result *res)
{
    memset(res, 0, sizeof *res);
    struct scan_state st = {last_seq, cb, arg, res};
    size_t used;
    return scan_window(&st, buf, n, 0, true, &used);
}

int aq_scan_fd(int fd, uint64_t last_seq, aq_scan_cb cb, void *arg, struct aq_scan_result *res)
{
    memset(res, 0, sizeof *res);
    const size_t W = 2 * (AQ_REC_HDR + AQ_REC_MAX);
    uint8_t *buf = malloc(W);
    if (!buf)
        return ERR_NOMEM;
    struct scan_state st = {last_seq, cb, arg, res};
    size_t have = 0;
    uint64_t base = 0;
    bool eof = false;
    int rc = 0;
    if (lseek(fd, 0, SEEK_SET) < 0) {
        rc = -errno;
        goto out;
    }
    for (;;) {
        while (!eof && have < W) {
            ssize_t r = read(fd, buf + have, W - have);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                rc = -errno;
                goto out;
            }
            if (r == 0)
                eof = true;
            have += (size_t)r;
        }
        size_t used = 0;
        rc = scan_window(&st, buf, have, base, eof, &used);
        if (rc < 0 || (eof && used == have))
            break;
        /* a window of W holds at least one whole record, so the scan always moves on */
        memmove(buf, buf + used, have - used);
        base += used;
        have -= used;
    }
out:
    free(buf);
    return rc;
}
