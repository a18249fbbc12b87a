#include "audit_queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "audit_qrec.h"
#include "audit_queue_int.h"

/* ------------------------------------------------------------------ small files */

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* A 16-byte state file: 4-byte magic, u64 value, CRC-32C of the value (u32). */
int aq_state_write(int fd, const char magic[4], uint64_t v, bool sync)
{
    uint8_t b[16];
    memcpy(b, magic, 4);
    put64(b + 4, v);
    uint32_t crc = aq_crc32c(0, b + 4, 8);
    for (int i = 0; i < 4; i++)
        b[12 + i] = (uint8_t)(crc >> (8 * i));
    if (pwrite(fd, b, sizeof b, 0) != (ssize_t)sizeof b)
        return errno ? -errno : ERR_IO;
    if (sync && fdatasync(fd) < 0)
        return -errno;
    return 0;
}

/* The value, or NO_CURSOR when the file is short, foreign or corrupt. */
uint64_t aq_state_read(int fd, const char magic[4])
{
    uint8_t b[16];
    if (pread(fd, b, sizeof b, 0) != (ssize_t)sizeof b || memcmp(b, magic, 4) != 0)
        return NO_CURSOR;
    uint32_t crc = 0;
    for (int i = 3; i >= 0; i--)
        crc = crc << 8 | b[12 + i];
    if (aq_crc32c(0, b + 4, 8) != crc)
        return NO_CURSOR;
    return get64(b + 4);
}

/* ------------------------------------------------------------------ the index */

void aq_update_full(struct aq *q)
{
    bool f = q->tail - q->head >= q->max_msgs || q->bytes + FULL_MARGIN > q->max_bytes ||
             (q->on_full == AQ_FAIL_CLOSED && q->last_refused);
    atomic_store(&q->full, f);
}

int aq_seg_push(struct seg *s, uint32_t off, uint32_t size)
{
    if (s->n == s->cap) {
        uint32_t ncap = s->cap ? s->cap * 2 : 64;
        uint32_t *no = realloc(s->off, ncap * sizeof *no);
        if (!no)
            return ERR_NOMEM;
        s->off = no;
        uint32_t *ns = realloc(s->size, ncap * sizeof *ns);
        if (!ns)
            return ERR_NOMEM;
        s->size = ns;
        s->cap = ncap;
    }
    s->off[s->n] = off;
    s->size[s->n] = size;
    s->n++;
    return 0;
}

static struct seg *find(struct aq *q, uint64_t seq, uint32_t *idx)
{
    for (size_t i = 0; i < q->n_segs; i++) {
        struct seg *s = &q->segs[i];
        if (seq >= s->first && seq - s->first < s->n) {
            *idx = (uint32_t)(seq - s->first);
            return s;
        }
    }
    return NULL;
}

static uint32_t size_of(struct aq *q, uint64_t seq)
{
    uint32_t i;
    struct seg *s = find(q, seq, &i);
    return s ? s->size[i] : 0;
}

void aq_seg_name(const struct aq *q, uint64_t first, char *buf, size_t n)
{
    (void)q;
    snprintf(buf, n, "seg-%016" PRIx64 ".aq", first);
}

/* Close and unlink the segments every reader is past (never the last one: appends go there). */
void aq_reap(struct aq *q)
{
    size_t k = 0;
    while (k + 1 < q->n_segs && q->segs[k].first + q->segs[k].n <= q->head)
        k++;
    for (size_t i = 0; i < k; i++) {
        struct seg *s = &q->segs[i];
        char name[64];
        aq_seg_name(q, s->first, name, sizeof name);
        close(s->fd);
        if (unlinkat(q->dirfd, name, 0) == 0)
            q->dir_dirty = true;
        free(s->off);
        free(s->size);
    }
    if (k) {
        memmove(q->segs, q->segs + k, (q->n_segs - k) * sizeof *q->segs);
        q->n_segs -= k;
    }
}

void aq_advance_head(struct aq *q, uint64_t to)
{
    while (q->head < to) {
        q->bytes -= size_of(q, q->head);
        q->head++;
    }
}

static void note_lost(struct aq *q, uint64_t n)
{
    q->pending_lost += n;
    if (q->lostfd >= 0)
        (void)aq_state_write(q->lostfd, "AQL1", q->pending_lost, false); /* aq_save syncs it */
}

/* ------------------------------------------------------------------ appending */

static int new_segment(struct aq *q)
{
    if (q->n_segs == q->cap_segs) {
        size_t ncap = q->cap_segs ? q->cap_segs * 2 : 16;
        struct seg *ns = realloc(q->segs, ncap * sizeof *ns);
        if (!ns)
            return ERR_NOMEM;
        q->segs = ns;
        q->cap_segs = ncap;
    }
    char name[64];
    aq_seg_name(q, q->tail, name, sizeof name);
    int fd = openat(q->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST && unlinkat(q->dirfd, name, 0) == 0) /* a stale leftover */
        fd = openat(q->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    struct seg *s = &q->segs[q->n_segs++];
    memset(s, 0, sizeof *s);
    s->first = q->tail;
    s->fd = fd;
    q->dir_dirty = true;
    return 0;
}

static int write_record(struct aq *q, const void *p, size_t n, uint64_t *seq)
{
    struct seg *s = q->n_segs ? &q->segs[q->n_segs - 1] : NULL;
    if (!s || s->fsize >= q->seg_max || s->first + s->n != q->tail ||
        s->fsize + AQ_REC_HDR + n > UINT32_MAX)
        TRY(new_segment(q));
    s = &q->segs[q->n_segs - 1];
    struct wbuf full;
    wbuf_init(&full, AQ_REC_HDR + n);
    int rc = aq_rec_encode(&full, q->tail, p, n);
    if (rc < 0) {
        wbuf_cleanup(&full);
        return rc;
    }
    ssize_t w;
    do {
        w = pwrite(s->fd, full.p, full.len, (off_t)s->fsize);
    } while (w < 0 && errno == EINTR);
    int err = w < 0 ? -errno : 0;
    size_t len = full.len;
    wbuf_cleanup(&full);
    if (w != (ssize_t)len) {
        /* no half record may stay behind; should that fail too, the next record overwrites it
         * (it goes where this one started) and a restart's scan skips any rest */
        if (ftruncate(s->fd, (off_t)s->fsize) < 0 && err == 0)
            err = -errno;
        return err ? err : ERR_IO;
    }
    TRY(aq_seg_push(s, (uint32_t)s->fsize, (uint32_t)len));
    s->fsize += len;
    s->dirty = true;
    q->bytes += len;
    if (seq)
        *seq = q->tail;
    q->tail++;
    return 0;
}

static bool fits(const struct aq *q, size_t rec)
{
    return q->tail - q->head < q->max_msgs && q->bytes + rec <= q->max_bytes;
}

static int append_locked(struct aq *q, const void *p, size_t n, uint64_t *seq, bool may_drop)
{
    size_t rec = AQ_REC_HDR + n;
    if (n > AQ_REC_MAX || rec > q->max_bytes)
        return ERR_LIMIT;
    while (!fits(q, rec)) {
        if (!may_drop || q->on_full == AQ_FAIL_CLOSED)
            return ERR_NOSPACE;
        /* drop the oldest message for every reader still waiting for it */
        uint64_t size = size_of(q, q->head);
        aq_advance_head(q, q->head + 1);
        if (size) {
            q->dropped++;
            note_lost(q, 1);
        }
        for (size_t r = 0; r < q->n_readers; r++) {
            if (q->commit[r] < q->head)
                q->commit[r] = q->head;
        }
    }
    return write_record(q, p, n, seq);
}

int aq_append(struct aq *q, const void *p, size_t n, uint64_t *seq)
{
    pthread_mutex_lock(&q->mu);
    int rc = append_locked(q, p, n, seq, true);
    if (rc == ERR_NOSPACE) {
        q->refused++;
        q->last_refused = true;
    }
    if (rc < 0)
        note_lost(q, 1);
    aq_update_full(q);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int aq_append_report(struct aq *q, const void *p, size_t n, uint64_t reported)
{
    pthread_mutex_lock(&q->mu);
    int rc = append_locked(q, p, n, NULL, false);
    if (rc == 0) {
        q->pending_lost = reported > q->pending_lost ? 0 : q->pending_lost - reported;
        note_lost(q, 0);
    }
    aq_update_full(q);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int aq_sync(struct aq *q)
{
    int fds[64];
    size_t nf = 0;
    bool more = false, dir;
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < q->n_segs; i++) {
        if (!q->segs[i].dirty)
            continue;
        if (nf == sizeof fds / sizeof fds[0]) {
            more = true;
            break;
        }
        fds[nf++] = q->segs[i].fd;
        q->segs[i].dirty = false;
    }
    dir = q->dir_dirty;
    q->dir_dirty = false;
    pthread_mutex_unlock(&q->mu);
    /* unlocked: appenders go on while the disk works; only this thread closes segment fds */
    int rc = 0;
    for (size_t i = 0; i < nf; i++) {
        if (fdatasync(fds[i]) < 0 && rc == 0)
            rc = -errno;
    }
    if (dir && fsync(q->dirfd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && more)
        return aq_sync(q);
    return rc;
}

/* ------------------------------------------------------------------ reading, committing */

int aq_read(struct aq *q, uint64_t seq, struct wbuf *out, uint64_t *next)
{
    pthread_mutex_lock(&q->mu);
    int rc;
    uint32_t i;
    struct seg *s;
    if (seq >= q->tail) {
        rc = 0;
    } else if (seq < q->head) {
        *next = q->head;
        rc = ERR_NOTFOUND;
    } else if (!(s = find(q, seq, &i)) || s->size[i] == 0) {
        *next = seq + 1;
        rc = ERR_NOTFOUND;
    } else {
        wbuf_reset(out);
        uint32_t size = s->size[i];
        rc = wbuf_reserve(out, size);
        ssize_t r = rc < 0 ? -1 : pread(s->fd, out->p, size, (off_t)s->off[i]);
        uint64_t got = 0;
        struct slice pl;
        if (rc < 0) {
            /* rc holds the wbuf error */
        } else if (r != (ssize_t)size ||
                   aq_rec_parse(out->p, size, AQ_REC_MAX, &got, &pl) != (int)size || got != seq) {
            s->size[i] = 0; /* damaged since we indexed it: skip it from now on */
            q->bytes -= size;
            note_lost(q, 1);
            *next = seq + 1;
            rc = ERR_NOTFOUND;
        } else {
            memmove(out->p, pl.p, pl.len);
            out->len = pl.len;
            rc = 1;
        }
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void aq_commit(struct aq *q, size_t r, uint64_t seq)
{
    pthread_mutex_lock(&q->mu);
    if (r < q->n_readers && seq > q->commit[r]) {
        q->commit[r] = seq > q->tail ? q->tail : seq;
        uint64_t min = q->tail;
        for (size_t k = 0; k < q->n_readers; k++) {
            if (q->commit[k] < min)
                min = q->commit[k];
        }
        if (min > q->head) {
            aq_advance_head(q, min);
            q->last_refused = false; /* room again */
        }
    }
    aq_reap(q);
    aq_update_full(q);
    pthread_mutex_unlock(&q->mu);
}

uint64_t aq_committed(struct aq *q, size_t r)
{
    pthread_mutex_lock(&q->mu);
    uint64_t v = r < q->n_readers ? q->commit[r] : 0;
    pthread_mutex_unlock(&q->mu);
    return v;
}

int aq_save(struct aq *q)
{
    uint64_t v[AQ_MAX_READERS], lost;
    pthread_mutex_lock(&q->mu);
    memcpy(v, q->commit, sizeof v);
    lost = q->pending_lost;
    aq_reap(q);
    pthread_mutex_unlock(&q->mu);
    int rc = 0;
    for (size_t r = 0; r < q->n_readers; r++) {
        if (v[r] == q->saved[r] || q->curfd[r] < 0)
            continue;
        int w = aq_state_write(q->curfd[r], "AQC1", v[r], true);
        if (w == 0)
            q->saved[r] = v[r];
        else if (rc == 0)
            rc = w;
    }
    if (lost != q->saved_lost && q->lostfd >= 0) {
        int w = aq_state_write(q->lostfd, "AQL1", lost, true);
        if (w == 0)
            q->saved_lost = lost;
        else if (rc == 0)
            rc = w;
    }
    return rc;
}

void aq_get_stats(struct aq *q, struct aq_stats *st)
{
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&q->mu);
    st->count = q->tail - q->head;
    st->bytes = q->bytes;
    st->head = q->head;
    st->tail = q->tail;
    st->dropped = q->dropped;
    st->refused = q->refused;
    st->pending_lost = q->pending_lost;
    memcpy(st->commit, q->commit, sizeof st->commit);
    st->segments = q->n_segs;
    st->full = atomic_load(&q->full);
    pthread_mutex_unlock(&q->mu);
}

bool aq_is_full(struct aq *q)
{
    return atomic_load(&q->full);
}
