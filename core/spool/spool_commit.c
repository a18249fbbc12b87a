#define _GNU_SOURCE /* syncfs(2) */
#include "spool/spool_commit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"

struct spool_committer {
    uv_loop_t *loop;
    struct spool *spool;
    bool fsync;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct spool_commit_req *pending, **pending_tail;
    struct spool_commit_req *done, **done_tail;
    bool stopping;
    uv_async_t async;
};

/* Write the sidecar into tmp/; returns its fd (still open, for fsync) or a negative errno. */
static int write_sidecar(struct spool_committer *c, struct spool_commit_req *r)
{
    char path[SPOOL_PATH_MAX];
    if (spool_path(c->spool, "tmp", r->sc.id, ".json", path, sizeof path) < 0)
        return -ENAMETOOLONG;
    char *text = NULL;
    size_t len = 0;
    TRY(spool_sidecar_encode(&r->sc, &text, &len));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        free(text);
        return -errno;
    }
    int rc = fileio_write_all(fd, text, len);
    free(text);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

static int move_into_ready(struct spool_committer *c, struct spool_commit_req *r)
{
    char from[SPOOL_PATH_MAX], to[SPOOL_PATH_MAX]; /* the data is in ready/ already */
    TRY(spool_path(c->spool, "tmp", r->sc.id, ".json", from, sizeof from));
    TRY(spool_path(c->spool, "ready", r->sc.id, ".json", to, sizeof to));
    if (rename(from, to) < 0) {
        int e = -errno;
        char data[SPOOL_PATH_MAX];
        if (spool_path(c->spool, "ready", r->sc.id, ".dcm", data, sizeof data) == 0)
            unlink(data);
        return e;
    }
    return 0;
}

static void discard(struct spool_committer *c, struct spool_commit_req *r)
{
    spool_obj_discard(c->spool, r->sc.id);
}

/* One batch: everything that queued while the previous batch was being made durable.
 * The files are renamed into ready/ first and then a single syncfs(2) makes the data, the
 * sidecars and the renames durable together: one journal commit for the whole batch (the
 * platform's group commit). Nothing is acknowledged before syncfs returns success. A crash
 * inside syncfs can leave an entry in ready/ whose data never reached the disk; it was never
 * acknowledged, and the backend verifies the SHA-256 of entries left by a previous run before
 * it forwards them, dropping such a torn entry. */
static void run_batch(struct spool_committer *c, struct spool_commit_req *batch)
{
    struct spool_commit_req *r;
    for (r = batch; r; r = r->next) {
        int fd = write_sidecar(c, r);
        r->result = fd < 0 ? fd : 0;
        if (fd >= 0 && close(fd) < 0 && errno != EINTR)
            r->result = -errno;
        if (close(r->fd) < 0 && r->result == 0 && errno != EINTR)
            r->result = -errno;
        r->fd = -1;
        if (r->result == 0)
            r->result = move_into_ready(c, r);
        if (r->result < 0)
            discard(c, r);
    }
    if (!c->fsync)
        return;
    if (syncfs(c->spool->ready_fd) == 0)
        return;
    int e = -errno;
    for (r = batch; r; r = r->next) {
        if (r->result != 0)
            continue;
        r->result = e; /* not durable: never acknowledged, and not left for the backend */
        char p[SPOOL_PATH_MAX];
        if (spool_path(c->spool, "ready", r->sc.id, ".json", p, sizeof p) == 0)
            unlink(p);
        if (spool_path(c->spool, "ready", r->sc.id, ".dcm", p, sizeof p) == 0)
            unlink(p);
    }
}

static void *commit_thread(void *arg)
{
    struct spool_committer *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->pending && !c->stopping)
            pthread_cond_wait(&c->cv, &c->mu);
        if (!c->pending && c->stopping)
            break;
        /* take at most 64 at a time: everything that queued while the last batch ran */
        struct spool_commit_req *batch = c->pending, *last = batch;
        size_t n = 1;
        while (last->next && n < 64) {
            last = last->next;
            n++;
        }
        c->pending = last->next;
        if (!c->pending)
            c->pending_tail = &c->pending;
        last->next = NULL;
        pthread_mutex_unlock(&c->mu);

        run_batch(c, batch);

        pthread_mutex_lock(&c->mu);
        *c->done_tail = batch;
        c->done_tail = &last->next;
        uv_async_send(&c->async);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void on_closed(uv_handle_t *h);

static void on_async(uv_async_t *a)
{
    struct spool_committer *c = a->data;
    pthread_mutex_lock(&c->mu);
    struct spool_commit_req *r = c->done;
    c->done = NULL;
    c->done_tail = &c->done;
    pthread_mutex_unlock(&c->mu);
    while (r) {
        struct spool_commit_req *next = r->next;
        r->next = NULL;
        if (r->result == 0)
            spool_entry_added(c->spool, r->sc.bytes);
        r->cb(r, r->result, r->arg);
        r = next;
    }
}

int spool_commit_start(uv_loop_t *loop, struct spool *spool, bool fsync, struct spool_committer **out)
{
    struct spool_committer *c = calloc(1, sizeof *c);
    if (!c)
        return ERR_NOMEM;
    c->loop = loop;
    c->spool = spool;
    c->fsync = fsync;
    c->pending_tail = &c->pending;
    c->done_tail = &c->done;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    int rc = uv_async_init(loop, &c->async, on_async);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->async.data = c;
    rc = pthread_create(&c->thread, NULL, commit_thread, c);
    if (rc != 0) {
        uv_close((uv_handle_t *)&c->async, on_closed);
        return -rc;
    }
    *out = c;
    return 0;
}

void spool_commit_submit(struct spool_committer *c, struct spool_commit_req *r)
{
    r->next = NULL;
    pthread_mutex_lock(&c->mu);
    *c->pending_tail = r;
    c->pending_tail = &r->next;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void on_closed(uv_handle_t *h)
{
    struct spool_committer *c = h->data;
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

void spool_commit_stop(struct spool_committer *c)
{
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    on_async(&c->async); /* deliver what finished last */
    uv_close((uv_handle_t *)&c->async, on_closed);
}
