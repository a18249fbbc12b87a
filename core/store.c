#define _GNU_SOURCE /* sync_file_range(2) */
#include "store.h"
#include "common/crc64nvme.h"
#include "common/hex.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spool/spool_backend.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/wbuf.h"
#include "dimse.h"

struct store_obj {
    uv_loop_t *loop;
    struct spool *spool;
    struct spool_committer *committer;
    int fd;
    char id[SPOOL_ID_MAX];
    uint8_t *buf[2];
    size_t len[2];
    size_t cap;
    int cur;        /* buffer being filled on the loop thread */
    int writing;    /* buffer the worker owns while inflight */
    bool inflight;
    int werr;       /* set by the worker, read after it finished */
    uv_work_t work;
    EVP_MD_CTX *md; /* SHA-256, or NULL (spool_checksum crc64nvme); touched by the worker while
                       inflight, by the loop thread otherwise (as is crc) */
    struct crc64nvme crc; /* always: the spool's own integrity check, cheap */
    uint64_t file_bytes;
    uint64_t synced_to;  /* worker: writeback started up to here */
    bool early_sync;     /* start writeback as we go, so the commit's flush has little left */
    struct ds_scan *scan;
    int scan_rc;
    bool ended, aborted, committing;
    uint16_t fail_status;
    const char *fail_comment;
    store_done_cb cb;
    void *cb_arg;
    void (*room_cb)(void *);
    void *room_arg;
    struct spool_commit_req creq;
    char sop_class[65], sop_instance[65], ts_uid[65];
    char calling[17], called[17], peer[64], cert_cn[257], cert_fp[65], client_id[129];
    uint64_t assoc_id;
    struct backend *ack_via;
    struct timespec t_start;
    char sha_hex[65];
    char crc_hex[17];
};

static void put_meta_ui(struct wbuf *b, uint16_t elem, const char *uid)
{
    size_t n = strnlen(uid, 64);
    wbuf_u16le(b, 0x0002);
    wbuf_u16le(b, elem);
    wbuf_put(b, "UI", 2);
    wbuf_u16le(b, (uint16_t)(n + (n & 1)));
    wbuf_put(b, uid, n);
    if (n & 1)
        wbuf_u8(b, 0);
}

static void put_meta_text(struct wbuf *b, uint16_t elem, const char *vr, const char *s)
{
    size_t n = strnlen(s, 64);
    wbuf_u16le(b, 0x0002);
    wbuf_u16le(b, elem);
    wbuf_put(b, vr, 2);
    wbuf_u16le(b, (uint16_t)(n + (n & 1)));
    wbuf_put(b, s, n);
    if (n & 1)
        wbuf_u8(b, ' ');
}

/* PS3.10 7.1: preamble, "DICM", then group 0002 in Explicit VR Little Endian. */
static int build_meta(const struct store_obj *o, struct wbuf *b)
{
    wbuf_fill(b, 0, 128);
    wbuf_put(b, "DICM", 4);
    wbuf_u16le(b, 0x0002);
    wbuf_u16le(b, 0x0000);
    wbuf_put(b, "UL", 2);
    wbuf_u16le(b, 4);
    size_t glen_at = b->len;
    wbuf_u32le(b, 0);
    size_t start = b->len;
    wbuf_u16le(b, 0x0002);
    wbuf_u16le(b, 0x0001);
    wbuf_put(b, "OB\0\0", 4);
    wbuf_u32le(b, 2);
    wbuf_put(b, "\x00\x01", 2);
    put_meta_ui(b, 0x0002, o->sop_class);
    put_meta_ui(b, 0x0003, o->sop_instance);
    put_meta_ui(b, 0x0010, o->ts_uid);
    put_meta_ui(b, 0x0012, GW_IMPL_CLASS_UID);
    put_meta_text(b, 0x0013, "SH", GW_IMPL_VERSION);
    put_meta_text(b, 0x0016, "AE", o->calling);
    wbuf_set_u32le(b, glen_at, (uint32_t)(b->len - start));
    return b->err;
}

/* Receive buffers are reused across objects: a fresh pair per object costs page faults and
 * brk/munmap churn on every C-STORE (a sixth of the CPU with 0.5 MB objects). The pool keeps a
 * few buffers of the usual size; any other size is allocated and freed as before. */
#define POOL_KEEP 16
static struct {
    pthread_mutex_t mu;
    size_t cap;
    size_t n;
    uint8_t *free[POOL_KEEP];
} g_pool = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint8_t *buf_get(size_t cap)
{
    uint8_t *b = NULL;
    pthread_mutex_lock(&g_pool.mu);
    if (g_pool.cap == cap && g_pool.n > 0)
        b = g_pool.free[--g_pool.n];
    pthread_mutex_unlock(&g_pool.mu);
    return b ? b : malloc(cap);
}

static void buf_put(uint8_t *b, size_t cap)
{
    if (!b)
        return;
    pthread_mutex_lock(&g_pool.mu);
    if (g_pool.n == 0)
        g_pool.cap = cap; /* follow the size in use */
    if (g_pool.cap == cap && g_pool.n < POOL_KEEP) {
        g_pool.free[g_pool.n++] = b;
        b = NULL;
    }
    pthread_mutex_unlock(&g_pool.mu);
    free(b);
}

void store_release_buffers(void)
{
    pthread_mutex_lock(&g_pool.mu);
    while (g_pool.n > 0)
        free(g_pool.free[--g_pool.n]);
    pthread_mutex_unlock(&g_pool.mu);
}

static void free_obj(struct store_obj *o)
{
    ds_scan_free(o->scan);
    EVP_MD_CTX_free(o->md);
    buf_put(o->buf[0], o->cap);
    buf_put(o->buf[1], o->cap);
    free(o);
}

static void discard_tmp(struct store_obj *o)
{
    if (o->fd >= 0)
        close(o->fd);
    o->fd = -1;
    spool_obj_discard(o->spool, o->id);
}

static void on_written(uv_work_t *w, int status);

/* Hand a buffer to the disk thread once this much has gathered (while none is in flight), so that
 * hashing and writing overlap with receiving: the response to a C-STORE then waits only for the
 * last small piece. Bigger pieces while one is in flight (up to cap) keep the hops few. */
#define STORE_SUBMIT_MIN (128u * 1024u)
static size_t submit_at(const struct store_obj *o)
{
    return o->cap / 2 < STORE_SUBMIT_MIN ? o->cap / 2 : STORE_SUBMIT_MIN;
}

static void write_work(uv_work_t *w)
{
    struct store_obj *o = w->data;
    const uint8_t *p = o->buf[o->writing];
    size_t n = o->len[o->writing];
    if (o->werr)
        return;
    crc64nvme_update(&o->crc, p, n);
    if (o->md && EVP_DigestUpdate(o->md, p, n) != 1) {
        o->werr = ERR_NOMEM;
        return;
    }
    int rc = fileio_write_all(o->fd, p, n);
    if (rc < 0) {
        o->werr = rc;
        return;
    }
    /* large objects: start writeback of what is written so far (non-blocking), so that the
     * durability flush at the end does not wait for the whole object to hit the disk */
    off_t end = lseek(o->fd, 0, SEEK_CUR);
    if (o->early_sync && end > 0 && (uint64_t)end - o->synced_to >= (8u << 20)) {
        (void)sync_file_range(o->fd, (off_t)o->synced_to, end - (off_t)o->synced_to,
                              SYNC_FILE_RANGE_WRITE);
        o->synced_to = (uint64_t)end;
    }
}

static void submit(struct store_obj *o)
{
    o->writing = o->cur;
    o->cur ^= 1;
    o->inflight = true;
    o->file_bytes += o->len[o->writing];
    int rc = uv_queue_work(o->loop, &o->work, write_work, on_written);
    if (rc < 0) {
        o->inflight = false;
        o->werr = rc;
        o->len[o->writing] = 0;
    }
}

static void fail(struct store_obj *o, uint16_t status, const char *comment)
{
    if (!o->fail_status) {
        o->fail_status = status;
        o->fail_comment = comment;
    }
}

static void finish(struct store_obj *o);

static void on_written(uv_work_t *w, int status)
{
    struct store_obj *o = w->data;
    (void)status;
    o->inflight = false;
    o->len[o->writing] = 0;
    if (o->aborted) {
        discard_tmp(o);
        free_obj(o);
        return;
    }
    if (o->werr)
        fail(o, DIMSE_OUT_OF_RESOURCES, "write to spool failed");
    if (o->ended) {
        if (o->len[o->cur] > 0 && !o->werr)
            submit(o);
        if (!o->inflight)
            finish(o);
        return;
    }
    if (o->len[o->cur] >= submit_at(o))
        submit(o);
    if (o->room_cb) {
        void (*cb)(void *) = o->room_cb;
        o->room_cb = NULL;
        cb(o->room_arg);
    }
}

int store_begin(uv_loop_t *loop, struct spool *spool, struct spool_committer *committer,
                const struct store_params *p, struct store_obj **out)
{
    struct store_obj *o = calloc(1, sizeof *o);
    if (!o)
        return ERR_NOMEM;
    o->loop = loop;
    o->spool = spool;
    o->committer = committer;
    o->fd = -1;
    o->cap = p->buf_cap;
    o->work.data = o;
    o->creq.fd = -1;
    snprintf(o->sop_class, sizeof o->sop_class, "%s", p->sop_class);
    snprintf(o->sop_instance, sizeof o->sop_instance, "%s", p->sop_instance);
    snprintf(o->ts_uid, sizeof o->ts_uid, "%s", p->ts->uid);
    snprintf(o->calling, sizeof o->calling, "%s", p->calling_ae);
    snprintf(o->called, sizeof o->called, "%s", p->called_ae);
    snprintf(o->peer, sizeof o->peer, "%s", p->peer ? p->peer : "");
    snprintf(o->cert_cn, sizeof o->cert_cn, "%s", p->cert_cn ? p->cert_cn : "");
    snprintf(o->cert_fp, sizeof o->cert_fp, "%s", p->cert_fingerprint ? p->cert_fingerprint : "");
    snprintf(o->client_id, sizeof o->client_id, "%s", p->client_id ? p->client_id : "");
    o->assoc_id = p->assoc_id;
    o->ack_via = p->ack_via;
    o->early_sync = p->early_sync;
    clock_gettime(CLOCK_REALTIME, &o->t_start);
    o->buf[0] = buf_get(o->cap);
    o->buf[1] = buf_get(o->cap);
    crc64nvme_init(&o->crc);
    o->md = p->sha256 ? EVP_MD_CTX_new() : NULL;
    o->scan = ds_scan_new(p->ts->enc);
    if (!o->buf[0] || !o->buf[1] || (p->sha256 && !o->md) || !o->scan ||
        (o->md && EVP_DigestInit_ex(o->md, EVP_sha256(), NULL) != 1)) {
        free_obj(o);
        return ERR_NOMEM;
    }
    int rc = spool_obj_create(spool, o->id);
    if (rc < 0) {
        free_obj(o);
        return rc;
    }
    o->fd = rc;
    struct wbuf meta;
    wbuf_init(&meta, 1024);
    rc = build_meta(o, &meta);
    if (rc == 0 && meta.len <= o->cap) {
        memcpy(o->buf[0], meta.p, meta.len);
        o->len[0] = meta.len;
    } else {
        rc = rc ? rc : ERR_LIMIT;
    }
    wbuf_cleanup(&meta);
    if (rc < 0) {
        discard_tmp(o);
        free_obj(o);
        return rc;
    }
    *out = o;
    return 0;
}

bool store_can_accept(const struct store_obj *o, size_t n)
{
    return !o->inflight || o->len[o->cur] + n <= o->cap;
}

void store_on_room(struct store_obj *o, void (*cb)(void *), void *arg)
{
    o->room_cb = cb;
    o->room_arg = arg;
}

void store_write(struct store_obj *o, const uint8_t *p, size_t n)
{
    if (o->fail_status || n == 0)
        return; /* already failed: the rest of the dataset is read and dropped */
    if (o->scan_rc == 0) {
        o->scan_rc = ds_scan_feed(o->scan, p, n);
        if (o->scan_rc < 0) {
            /* PS3.4 B.2.3: 0xC000; the walk's reason (at most 64 characters, no data values)
             * is the Error Comment, so the modality's log says what is wrong */
            fail(o, DIMSE_CANNOT_UNDERSTAND, ds_scan_error(o->scan));
            return;
        }
    }
    while (n > 0) {
        size_t room = o->cap - o->len[o->cur];
        if (room == 0) {
            if (o->inflight)
                return; /* caller broke the can_accept contract; cannot happen */
            submit(o);
            continue;
        }
        size_t k = n < room ? n : room;
        memcpy(o->buf[o->cur] + o->len[o->cur], p, k);
        o->len[o->cur] += k;
        p += k;
        n -= k;
    }
    if (!o->inflight && o->len[o->cur] >= submit_at(o))
        submit(o);
}

/* ack "s3" / "healthimaging": the backend's answer for an object already durable in ready/. */
static void on_acked(void *arg, int result, const char *refused)
{
    struct store_obj *o = arg;
    if (!o->cb) {
        free_obj(o); /* the association went away while we waited */
        return;
    }
    if (result < 0) {
        struct logb b;
        if (log_begin(&b, LOG_WARN, "ack_failed")) {
            log_str(&b, "id", o->id);
            log_str(&b, "err", err_str(result));
            log_end(&b);
        }
        o->cb(o->cb_arg, refused ? DIMSE_CANNOT_UNDERSTAND : DIMSE_OUT_OF_RESOURCES,
              refused ? refused : "not stored at the configured ack point", o);
    } else {
        o->cb(o->cb_arg, DIMSE_SUCCESS, NULL, o);
    }
    free_obj(o);
}

static void on_committed(struct spool_commit_req *r, int result, void *arg)
{
    struct store_obj *o = arg;
    (void)r;
    if (result == 0 && o->ack_via) {
        backend_notify(o->ack_via);
        backend_await(o->ack_via, o->id, on_acked, o); /* still "committing" until it answers */
        return;
    }
    if (!o->cb) {
        free_obj(o); /* the association went away while committing */
        return;
    }
    if (result < 0) {
        struct logb b;
        if (log_begin(&b, LOG_ERROR, "spool_commit_failed")) {
            log_str(&b, "id", o->id);
            log_str(&b, "err", err_str(result));
            log_end(&b);
        }
        o->cb(o->cb_arg, DIMSE_OUT_OF_RESOURCES, "spool commit failed", o);
    } else {
        o->cb(o->cb_arg, DIMSE_SUCCESS, NULL, o);
    }
    free_obj(o);
}

static void iso_time(char *out, size_t cap, const struct timespec *ts)
{
    struct tm tm;
    gmtime_r(&ts->tv_sec, &tm);
    int n = snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(ts->tv_nsec / 1000000));
    if (n < 0 || (size_t)n >= cap)
        out[0] = '\0';
}

static void fill_sidecar(const struct store_obj *o, struct spool_sidecar *sc)
{
    const struct ds_uids *u = ds_scan_uids(o->scan);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    memset(sc, 0, sizeof *sc);
    snprintf(sc->id, sizeof sc->id, "%s", o->id);
    memcpy(sc->sop_class, o->sop_class, sizeof sc->sop_class);
    memcpy(sc->sop_instance, o->sop_instance, sizeof sc->sop_instance);
    memcpy(sc->study, u->study, sizeof sc->study);
    memcpy(sc->series, u->series, sizeof sc->series);
    memcpy(sc->ts, o->ts_uid, sizeof sc->ts);
    memcpy(sc->calling, o->calling, sizeof sc->calling);
    memcpy(sc->called, o->called, sizeof sc->called);
    memcpy(sc->peer, o->peer, sizeof sc->peer);
    memcpy(sc->cert_cn, o->cert_cn, sizeof sc->cert_cn);
    memcpy(sc->cert_fp, o->cert_fp, sizeof sc->cert_fp);
    memcpy(sc->client_id, o->client_id, sizeof sc->client_id);
    sc->bytes = o->file_bytes;
    memcpy(sc->sha256, o->sha_hex, sizeof sc->sha256);
    memcpy(sc->crc64nvme, o->crc_hex, sizeof sc->crc64nvme);
    sc->assoc = o->assoc_id;
    iso_time(sc->received_start, sizeof sc->received_start, &o->t_start);
    iso_time(sc->received_end, sizeof sc->received_end, &now);
}

/* All bytes are on disk (or failed): decide, then commit or discard. Loop thread. */
static void finish(struct store_obj *o)
{
    if (!o->fail_status) {
        int rc = o->scan_rc == 0 ? ds_scan_finish(o->scan) : o->scan_rc;
        const struct ds_uids *u = ds_scan_uids(o->scan);
        if (rc < 0)
            fail(o, DIMSE_CANNOT_UNDERSTAND, ds_scan_error(o->scan));
        else if (!u->sop_instance[0] || strcmp(u->sop_instance, o->sop_instance) != 0)
            fail(o, DIMSE_CANNOT_UNDERSTAND, "SOP Instance UID differs from the command's");
        else if (u->sop_class[0] && strcmp(u->sop_class, o->sop_class) != 0)
            fail(o, DIMSE_DATASET_MISMATCH, "SOP Class UID differs from the command's");
        else if (!u->study[0] || !u->series[0])
            fail(o, DIMSE_CANNOT_UNDERSTAND, "Study or Series Instance UID missing");
    }
    if (!o->fail_status && o->md) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        if (EVP_DigestFinal_ex(o->md, md, &mdlen) != 1 || mdlen != 32) {
            fail(o, DIMSE_OUT_OF_RESOURCES, "hash failed");
        } else {
            hex_lower(md, 32, o->sha_hex);
        }
    }
    if (!o->fail_status)
        snprintf(o->crc_hex, sizeof o->crc_hex, "%016llx",
                 (unsigned long long)crc64nvme_final(&o->crc));
    if (ds_scan_glitches(o->scan) || ds_scan_error(o->scan)[0]) {
        struct logb lb;
        if (log_begin(&lb, ds_scan_error(o->scan)[0] ? LOG_WARN : LOG_INFO, "dataset_walk")) {
            log_str(&lb, "id", o->id);
            log_u64(&lb, "assoc", o->assoc_id);
            if (ds_scan_error(o->scan)[0]) {
                log_str(&lb, "refused", ds_scan_error(o->scan));
                log_u64(&lb, "offset", ds_scan_error_offset(o->scan));
            }
            if (ds_scan_glitches(o->scan)) {
                log_u64(&lb, "glitches", ds_scan_glitches(o->scan));
                log_str(&lb, "first_glitch", ds_scan_glitch(o->scan));
            }
            log_end(&lb);
        }
    }
    if (o->fail_status) {
        discard_tmp(o);
        o->cb(o->cb_arg, o->fail_status, o->fail_comment, o);
        free_obj(o);
        return;
    }
    fill_sidecar(o, &o->creq.sc);
    o->creq.fd = o->fd;
    o->fd = -1; /* the committer closes it */
    o->creq.cb = on_committed;
    o->creq.arg = o;
    o->committing = true;
    spool_commit_submit(o->committer, &o->creq);
}

void store_end(struct store_obj *o, store_done_cb cb, void *arg)
{
    o->ended = true;
    o->cb = cb;
    o->cb_arg = arg;
    o->room_cb = NULL;
    if (o->inflight)
        return; /* on_written continues */
    if (o->len[o->cur] > 0 && !o->fail_status) {
        submit(o);
        if (o->inflight)
            return;
    }
    if (o->werr)
        fail(o, DIMSE_OUT_OF_RESOURCES, "write to spool failed");
    finish(o);
}

void store_abort(struct store_obj *o)
{
    if (o->committing) {
        /* already handed to the committer: it will land in ready/ unacknowledged, which is
         * harmless (the modality will resend); detach the callback */
        o->cb = NULL;
        return;
    }
    o->aborted = true;
    o->room_cb = NULL;
    if (o->inflight)
        return;
    discard_tmp(o);
    free_obj(o);
}

uint64_t store_bytes(const struct store_obj *o)
{
    return o->file_bytes;
}

const char *store_sha256_hex(const struct store_obj *o)
{
    return o->sha_hex;
}

const char *store_crc64_hex(const struct store_obj *o)
{
    return o->crc_hex;
}

const struct ds_uids *store_uids(const struct store_obj *o)
{
    return ds_scan_uids(o->scan);
}

const char *store_id(const struct store_obj *o)
{
    return o->id;
}

const char *store_patient_id(const struct store_obj *o)
{
    return ds_scan_patient_id(o->scan);
}
