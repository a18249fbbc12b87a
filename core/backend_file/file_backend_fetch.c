/* The file backend's fetch (spool/backend_read.h): one stored instance streamed from its
 * Part-10 file, dataset only, in chunks read through libuv's threadpool (uv_fs_read). One chunk
 * buffer per fetch, whatever the object's size: the receiver's pace (data() returning 1, then
 * resume) decides when the next chunk is read. The stored transfer syntax is sent as it is;
 * when the receiver did not accept it, Explicit VR Little Endian is transcoded to Implicit VR
 * Little Endian on the way (common/dcm_xcode), and any other mismatch is refused. */
#include "file_backend_int.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dcm_xcode.h"
#include "common/log.h"

#define TS_IMPLICIT "1.2.840.10008.1.2"
#define TS_EXPLICIT "1.2.840.10008.1.2.1"

struct fb_fetch {
    struct backend_read_op base;
    struct file_backend *b;
    struct backend_fetch_cbs cbs;
    struct backend_instance inst;
    char path[1600];
    uint64_t pos, end; /* file offsets of the dataset still to read */
    uv_file fd;
    uv_fs_t req;
    uint8_t *buf;
    size_t chunk;
    struct dcm_xcode *xc; /* Explicit to Implicit VR LE, or NULL */
    struct wbuf xout;     /* its output for one chunk */
    bool in_req, cancelled, paused, done;
};

static void fetch_free(struct fb_fetch *f)
{
    if (f->fd >= 0) {
        uv_fs_t c;
        uv_fs_close(f->b->loop, &c, f->fd, NULL); /* synchronous: a close does not block */
        uv_fs_req_cleanup(&c);
    }
    dcm_xcode_free(f->xc);
    wbuf_cleanup(&f->xout);
    free(f->buf);
    free(f);
}

/* The end, told once (on the loop, from a libuv callback). A transcoder's last delimiters go
 * out first, whatever the receiver's pace: a few bytes. */
static void finish(struct fb_fetch *f, int err, const char *why)
{
    f->done = true;
    if (err == 0 && f->xc) {
        wbuf_reset(&f->xout);
        int r = dcm_xcode_finish(f->xc, &f->xout);
        if (r == 0 && f->xout.len && f->cbs.data(f->cbs.arg, f->xout.p, f->xout.len) < 0)
            r = ERR_WRONG_STATE;
        if (f->cancelled) {
            fetch_free(f);
            return;
        }
        if (r < 0) {
            err = r;
            why = "stored dataset could not be transcoded";
        }
    }
    f->cbs.done(f->cbs.arg, err, why);
    fetch_free(f);
}

static void read_next(struct fb_fetch *f);

/* Bytes for the receiver, through the transcoder when there is one. 0, 1 (pause) or < 0. */
static int hand_out(struct fb_fetch *f, const uint8_t *p, size_t n)
{
    if (!f->xc)
        return f->cbs.data(f->cbs.arg, p, n);
    wbuf_reset(&f->xout);
    if (dcm_xcode_feed(f->xc, p, n, &f->xout) < 0)
        return ERR_MALFORMED;
    return f->xout.len ? f->cbs.data(f->cbs.arg, f->xout.p, f->xout.len) : 0;
}

static void on_read(uv_fs_t *req)
{
    struct fb_fetch *f = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    f->in_req = false;
    if (f->cancelled) {
        fetch_free(f);
        return;
    }
    if (n <= 0) {
        finish(f, n < 0 ? (int)n : ERR_TRUNCATED, "stored file could not be read");
        return;
    }
    f->pos += (uint64_t)n;
    int r = hand_out(f, f->buf, (size_t)n);
    if (f->cancelled) { /* cancelled from inside data() */
        fetch_free(f);
        return;
    }
    if (r < 0) {
        finish(f, r, r == ERR_MALFORMED ? "stored dataset could not be transcoded"
                                        : "stopped by the receiver");
        return;
    }
    if (r == 1 && f->pos < f->end) {
        f->paused = true;
        return;
    }
    read_next(f); /* or, after the last byte, the end: told now, not from a later resume */
}

static void read_next(struct fb_fetch *f)
{
    if (f->pos >= f->end) {
        finish(f, 0, NULL);
        return;
    }
    uint64_t left = f->end - f->pos;
    uv_buf_t b = uv_buf_init((char *)f->buf, (unsigned)(left < f->chunk ? left : f->chunk));
    f->req.data = f;
    int rc = uv_fs_read(f->b->loop, &f->req, f->fd, &b, 1, (int64_t)f->pos, on_read);
    if (rc < 0) {
        finish(f, rc, "stored file could not be read");
        return;
    }
    f->in_req = true;
}

static void on_open(uv_fs_t *req)
{
    struct fb_fetch *f = req->data;
    ssize_t fd = req->result;
    uv_fs_req_cleanup(req);
    f->in_req = false;
    if (fd >= 0)
        f->fd = (uv_file)fd;
    if (f->cancelled) {
        fetch_free(f);
        return;
    }
    if (fd < 0) {
        finish(f, (int)fd, "stored file could not be opened");
        return;
    }
    uv_fs_t st;
    int rc = uv_fs_fstat(NULL, &st, f->fd, NULL); /* synchronous: the inode is cached */
    uint64_t size = rc == 0 ? st.statbuf.st_size : 0;
    uv_fs_req_cleanup(&st);
    if (rc < 0 || size < f->pos) {
        finish(f, rc < 0 ? rc : ERR_TRUNCATED, "stored file is shorter than its header");
        return;
    }
    f->end = size;
    f->inst.bytes = f->xc ? 0 : size - f->pos;
    if (f->cbs.begin(f->cbs.arg, &f->inst) < 0 || f->cancelled) {
        if (f->cancelled)
            fetch_free(f);
        else
            finish(f, ERR_WRONG_STATE, "refused by the receiver");
        return;
    }
    read_next(f);
}

static bool listed(const char *const *ts, size_t n, const char *uid)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ts[i], uid) == 0)
            return true;
    }
    return false;
}

int fb_fetch(void *impl, const char *study, const char *series, const char *sop,
             const char *const *ts, size_t n_ts, const struct backend_read_scope *scope,
             const struct backend_fetch_cbs *cbs, struct backend_read_op **op)
{
    struct file_backend *b = impl;
    if (!b->index.ready)
        return ERR_WRONG_STATE;
    struct fb_fetch *f = calloc(1, sizeof *f);
    if (!f)
        return ERR_NOMEM;
    f->base.kind = FB_OP_FETCH;
    f->b = b;
    f->fd = -1;
    f->cbs = *cbs;
    int rc = ERR_NOTFOUND;
    struct fx_study *st;
    struct fx_series *se;
    pthread_rwlock_rdlock(&b->index.lock);
    struct fx_inst *in = fx_index_inst(&b->index, sop, &st, &se);
    /* outside the scope reads as absent: nothing tells a client what it may not see */
    if (in && strcmp(st->uid, study) == 0 && strcmp(se->uid, series) == 0 &&
        fb_scope_has(scope, study)) {
        snprintf(f->inst.study, sizeof f->inst.study, "%s", st->uid);
        snprintf(f->inst.series, sizeof f->inst.series, "%s", se->uid);
        snprintf(f->inst.sop, sizeof f->inst.sop, "%s", in->sop);
        snprintf(f->inst.sop_class, sizeof f->inst.sop_class, "%s", in->sop_class);
        snprintf(f->inst.ts, sizeof f->inst.ts, "%s", in->ts);
        snprintf(f->path, sizeof f->path, "%s/%s", b->cfg.dir, in->key);
        f->pos = in->offset;
        rc = 0;
    }
    pthread_rwlock_unlock(&b->index.lock);
    if (rc == 0 && !listed(ts, n_ts, f->inst.ts)) {
        rc = ERR_UNSUPPORTED;
        if (strcmp(f->inst.ts, TS_EXPLICIT) == 0 && listed(ts, n_ts, TS_IMPLICIT)) {
            f->xc = dcm_xcode_new();
            wbuf_init(&f->xout, 2 * (size_t)b->cfg.read.chunk + 4096);
            rc = f->xc ? 0 : ERR_NOMEM;
            snprintf(f->inst.ts, sizeof f->inst.ts, "%s", TS_IMPLICIT);
        }
    }
    f->chunk = b->cfg.read.chunk;
    if (rc == 0 && !(f->buf = malloc(f->chunk)))
        rc = ERR_NOMEM;
    f->req.data = f;
    if (rc == 0)
        rc = uv_fs_open(b->loop, &f->req, f->path, O_RDONLY | O_CLOEXEC, 0, on_open);
    if (rc < 0) {
        f->fd = -1;
        fetch_free(f);
        return rc;
    }
    f->in_req = true;
    *op = &f->base;
    return 0;
}

void fb_fetch_resume(struct backend_read_op *op)
{
    struct fb_fetch *f = (struct fb_fetch *)op;
    if (!f->paused || f->cancelled || f->in_req)
        return;
    f->paused = false;
    read_next(f); /* issues a read: its callback comes later, never inside this call */
}

void fb_fetch_cancel(struct backend_read_op *op)
{
    struct fb_fetch *f = (struct fb_fetch *)op;
    f->cancelled = true;
    if (!f->in_req)
        fetch_free(f);
}
