/* audit_queue_open: opening a queue directory and recovering what a previous run left there. */
#include "audit_queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_qrec.h"
#include "audit_queue_int.h"

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > AQ_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return s[0] != '.';
}

/* "seg-" 16 hex ".aq" -> first seq */
static bool parse_seg_name(const char *s, uint64_t *first)
{
    if (strlen(s) != 23 || memcmp(s, "seg-", 4) != 0 || strcmp(s + 20, ".aq") != 0)
        return false;
    uint64_t v = 0;
    for (int i = 4; i < 20; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *first = v;
    return true;
}

static int mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s", path);
    if (n <= 0 || (size_t)n >= sizeof tmp)
        return ERR_CONFIG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct loader {
    struct aq *q;
    struct seg *s;
    uint64_t last;    /* last valid seq so far, all segments */
    uint64_t min_cur; /* gaps below this were delivered to every reader: not lost */
    uint64_t lost;
};

static void count_gap(struct loader *l, uint64_t from, uint64_t to) /* [from, to) */
{
    if (from < l->min_cur)
        from = l->min_cur;
    if (to > from)
        l->lost += to - from;
}

static int on_record(void *arg, uint64_t seq, uint64_t off, uint32_t size)
{
    struct loader *l = arg;
    struct seg *s = l->s;
    if (off > UINT32_MAX)
        return 0; /* not something we wrote (segments stay far below 4 GiB): skip it */
    if (l->last)
        count_gap(l, l->last + 1, seq);
    if (s->n == 0) {
        s->first = seq;
    } else {
        uint64_t want = s->first + s->n;
        if (seq - want > MAX_GAP)
            return 0;
        for (; want < seq; want++)
            TRY(aq_seg_push(s, 0, 0)); /* a lost record's place */
    }
    TRY(aq_seg_push(s, (uint32_t)off, size));
    l->last = seq;
    return 0;
}

static int open_state(struct aq *q, const char *name)
{
    return openat(q->dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
}

static int load_segments(struct aq *q, struct loader *l, struct aq_report *rep)
{
    DIR *d = fdopendir(dup(q->dirfd));
    if (!d)
        return -errno;
    uint64_t *firsts = NULL;
    size_t nf = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t f;
        if (!parse_seg_name(e->d_name, &f))
            continue;
        if (nf == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            uint64_t *nfs = realloc(firsts, ncap * sizeof *nfs);
            if (!nfs) {
                rc = ERR_NOMEM;
                break;
            }
            firsts = nfs;
            cap = ncap;
        }
        firsts[nf++] = f;
    }
    closedir(d);
    if (rc == 0 && nf)
        qsort(firsts, nf, sizeof *firsts, cmp_u64);
    if (rc == 0 && nf) {
        q->segs = calloc(nf, sizeof *q->segs);
        q->cap_segs = nf;
        if (!q->segs)
            rc = ERR_NOMEM;
    }
    for (size_t i = 0; rc == 0 && i < nf; i++) {
        char name[64];
        aq_seg_name(q, firsts[i], name, sizeof name);
        int fd = openat(q->dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            rc = -errno;
            break;
        }
        struct seg *s = &q->segs[q->n_segs];
        memset(s, 0, sizeof *s);
        s->fd = fd;
        l->s = s;
        struct aq_scan_result res;
        rc = aq_scan_fd(fd, l->last, on_record, l, &res);
        if (rc < 0) {
            close(fd);
            break;
        }
        rep->garbage_bytes += res.garbage;
        struct stat st;
        bool last_file = i + 1 == nf;
        if (s->n == 0) { /* nothing valid in it */
            free(s->off);
            free(s->size);
            close(fd);
            unlinkat(q->dirfd, name, 0);
            if (last_file && res.garbage && l->last >= l->min_cur)
                l->lost++; /* a first record cut by a crash */
            continue;
        }
        if (last_file && fstat(fd, &st) == 0 && (uint64_t)st.st_size > res.end) {
            /* a record cut by a crash (or garbage) after the last valid one: cut it off, so that
             * new records follow valid ones; it was a message we accepted: count it lost */
            if (ftruncate(fd, (off_t)res.end) == 0)
                (void)fdatasync(fd);
            l->lost++;
        }
        s->fsize = res.end;
        q->n_segs++;
    }
    free(firsts);
    return rc;
}

int aq_open(const struct aq_opts *o, struct aq **out, struct aq_report *rep, char *err,
            size_t err_len)
{
    memset(rep, 0, sizeof *rep);
    if (!o->dir || !o->dir[0] || o->n_readers == 0 || o->n_readers > AQ_MAX_READERS ||
        o->max_msgs == 0 || o->max_bytes < AQ_MIN_BYTES) {
        snprintf(err, err_len, "audit queue: invalid options (dir, readers, limits)");
        return ERR_CONFIG;
    }
    for (size_t r = 0; r < o->n_readers; r++) {
        if (!o->readers[r] || !valid_name(o->readers[r])) {
            snprintf(err, err_len, "audit queue: invalid reader name");
            return ERR_CONFIG;
        }
    }
    struct aq *q = calloc(1, sizeof *q);
    if (!q)
        return ERR_NOMEM;
    pthread_mutex_init(&q->mu, NULL);
    q->dirfd = q->lockfd = q->lostfd = -1;
    for (size_t r = 0; r < AQ_MAX_READERS; r++)
        q->curfd[r] = -1;
    snprintf(q->dir, sizeof q->dir, "%s", o->dir);
    q->n_readers = o->n_readers;
    q->max_bytes = o->max_bytes;
    q->max_msgs = o->max_msgs;
    q->on_full = o->on_full;
    q->seg_max = o->max_bytes / 16;
    q->seg_max = q->seg_max < SEG_MIN ? SEG_MIN : q->seg_max > SEG_MAX ? SEG_MAX : q->seg_max;
    int rc = mkdirs(o->dir);
    if (rc < 0) {
        snprintf(err, err_len, "audit queue: cannot create %s: %s", o->dir, err_str(rc));
        goto fail;
    }
    q->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (q->dirfd < 0 || (q->lockfd = open_state(q, "lock")) < 0) {
        rc = -errno;
        snprintf(err, err_len, "audit queue: cannot open %s: %s", o->dir, strerror(errno));
        goto fail;
    }
    if (flock(q->lockfd, LOCK_EX | LOCK_NB) < 0) {
        rc = ERR_CONFIG;
        snprintf(err, err_len, "audit queue: %s is in use by another process", o->dir);
        goto fail;
    }
    struct loader l = {.q = q, .min_cur = NO_CURSOR};
    bool all_cursors = true;
    for (size_t r = 0; r < q->n_readers; r++) {
        char name[AQ_NAME_MAX + 16];
        snprintf(q->names[r], sizeof q->names[r], "%s", o->readers[r]);
        snprintf(name, sizeof name, "cursor-%s.aq", o->readers[r]);
        if ((q->curfd[r] = open_state(q, name)) < 0) {
            rc = -errno;
            snprintf(err, err_len, "audit queue: cannot open %s: %s", name, strerror(errno));
            goto fail;
        }
        q->commit[r] = aq_state_read(q->curfd[r], "AQC1");
        q->saved[r] = q->commit[r];
        if (q->commit[r] == NO_CURSOR)
            all_cursors = false;
        else if (q->commit[r] < l.min_cur)
            l.min_cur = q->commit[r];
    }
    if (!all_cursors || l.min_cur == NO_CURSOR)
        l.min_cur = 0; /* a reader without a cursor wants everything held */
    if ((q->lostfd = open_state(q, "lost.aq")) < 0) {
        rc = -errno;
        snprintf(err, err_len, "audit queue: cannot open lost.aq: %s", strerror(errno));
        goto fail;
    }
    uint64_t lost = aq_state_read(q->lostfd, "AQL1");
    q->pending_lost = lost == NO_CURSOR ? 0 : lost;
    rc = load_segments(q, &l, rep);
    if (rc < 0) {
        snprintf(err, err_len, "audit queue: cannot read %s: %s", o->dir, err_str(rc));
        goto fail;
    }
    q->tail = l.last + 1;
    uint64_t oldest = q->n_segs ? q->segs[0].first : q->tail;
    for (size_t r = 0; r < q->n_readers; r++) {
        if (q->commit[r] != NO_CURSOR && q->commit[r] > q->tail)
            q->tail = q->commit[r]; /* everything was delivered and reaped: go on from there */
    }
    q->head = q->tail;
    for (size_t r = 0; r < q->n_readers; r++) {
        if (q->commit[r] == NO_CURSOR || q->commit[r] < oldest)
            q->commit[r] = oldest;
        if (q->commit[r] > q->tail)
            q->commit[r] = q->tail;
        if (q->commit[r] < q->head)
            q->head = q->commit[r];
    }
    for (size_t i = 0; i < q->n_segs; i++) {
        const struct seg *s = &q->segs[i];
        for (uint32_t k = 0; k < s->n; k++) {
            if (s->first + k >= q->head) {
                q->bytes += s->size[k];
                rep->records += s->size[k] ? 1 : 0;
            }
        }
    }
    rep->lost = l.lost;
    q->pending_lost += l.lost;
    rep->pending_lost = q->pending_lost;
    if (q->pending_lost != q->saved_lost)
        (void)aq_state_write(q->lostfd, "AQL1", q->pending_lost, true);
    q->saved_lost = q->pending_lost;
    pthread_mutex_lock(&q->mu);
    aq_reap(q);
    aq_update_full(q);
    pthread_mutex_unlock(&q->mu);
    *out = q;
    return 0;
fail:
    aq_close(q);
    return rc;
}

void aq_close(struct aq *q)
{
    if (!q)
        return;
    if (q->dirfd >= 0) {
        int rc = aq_save(q); /* best effort: a cursor not saved means resending, not losing */
        (void)rc;
    }
    for (size_t i = 0; i < q->n_segs; i++) {
        close(q->segs[i].fd);
        free(q->segs[i].off);
        free(q->segs[i].size);
    }
    free(q->segs);
    for (size_t r = 0; r < AQ_MAX_READERS; r++) {
        if (q->curfd[r] >= 0)
            close(q->curfd[r]);
    }
    if (q->lostfd >= 0)
        close(q->lostfd);
    if (q->lockfd >= 0)
        close(q->lockfd); /* releases the flock */
    if (q->dirfd >= 0)
        close(q->dirfd);
    pthread_mutex_destroy(&q->mu);
    free(q);
}
