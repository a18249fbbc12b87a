#include "commit_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/uid.h"
#include "spool/commit_rec.h"

#define REC_MAX (16u << 20) /* a transaction file larger than this is not ours */

struct commit_store {
    uv_loop_t *loop;
    char dir[SPOOL_PATH_MAX];
    bool fsync;
    uint32_t remember_s;
    unsigned busy; /* works in flight */
    bool closing;
    void (*closed)(void *arg);
    void *closed_arg;
};

enum job_kind { JOB_CREATE, JOB_SAVE, JOB_CLAIM, JOB_LIST };

struct job {
    uv_work_t w;
    struct commit_store *s;
    enum job_kind kind;
    char uid[65];
    char *text;
    size_t len;
    int rc;
    struct commit_txn got;
    char (*uids)[65];
    size_t n_uids;
    union {
        backend_txn_cb done;
        backend_txn_got_cb got_cb;
        backend_txn_list_cb list_cb;
    } cb;
    void *arg;
};

static int txn_path(const struct commit_store *s, const char *uid, const char *ext, char *out,
                    size_t cap)
{
    if (!uid_valid(uid))
        return ERR_MALFORMED; /* digits and dots only: safe as a file name */
    int n = snprintf(out, cap, "%s/%s%s", s->dir, uid, ext);
    return n < 0 || (size_t)n >= cap ? ERR_LIMIT : 0;
}

/* ---- on the threadpool ---------------------------------------------------------------------- */

static int do_create(struct job *j)
{
    char tmp[SPOOL_PATH_MAX], path[SPOOL_PATH_MAX];
    TRY(txn_path(j->s, j->uid, ".json", path, sizeof path));
    TRY(txn_path(j->s, j->uid, ".new", tmp, sizeof tmp));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    int rc = fileio_write_all(fd, j->text, j->len);
    if (rc == 0 && j->s->fsync && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && link(tmp, path) < 0)
        rc = -errno; /* -EEXIST: the Transaction UID is taken (open, or reported recently) */
    unlink(tmp);
    if (rc == 0 && j->s->fsync)
        rc = fileio_fsync_dir(j->s->dir);
    return rc;
}

static int do_save(struct job *j)
{
    char path[SPOOL_PATH_MAX];
    TRY(txn_path(j->s, j->uid, ".json", path, sizeof path));
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno; /* never recreate a transaction that is gone */
    return fileio_replace(path, j->text, j->len, j->s->fsync);
}

static int do_claim(struct job *j)
{
    char path[SPOOL_PATH_MAX];
    TRY(txn_path(j->s, j->uid, ".json", path, sizeof path));
    char *text = NULL;
    size_t len = 0;
    TRY(fileio_read_small(path, REC_MAX, &text, &len));
    int rc = commit_rec_decode(text, len, &j->got);
    free(text);
    if (rc == 0 && j->got.state == COMMIT_REPORTED)
        rc = ERR_WRONG_STATE;
    return rc;
}

/* A file of ours, by name: <uid>.json. */
static bool txn_name(const char *name, char uid[65])
{
    size_t n = strnlen(name, 80);
    if (n < 6 || n - 5 > 64 || strcmp(name + n - 5, ".json") != 0)
        return false;
    memcpy(uid, name, n - 5);
    uid[n - 5] = '\0';
    return uid_valid(uid);
}

typedef void (*each_cb)(void *arg, const char *uid, const struct commit_txn *t,
                        const struct stat *st, const char *path);

static int each_txn(const char *dir, each_cb cb, void *arg)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct dirent *de;
    while ((de = readdir(d))) {
        char uid[65], path[SPOOL_PATH_MAX];
        if (!txn_name(de->d_name, uid) ||
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path)
            continue;
        struct stat st;
        char *text = NULL;
        size_t len = 0;
        struct commit_txn t;
        if (stat(path, &st) < 0 || fileio_read_small(path, REC_MAX, &text, &len) < 0)
            continue;
        if (commit_rec_decode(text, len, &t) == 0) {
            cb(arg, uid, &t, &st, path);
            commit_txn_cleanup(&t);
        }
        free(text);
    }
    closedir(d);
    return 0;
}

static void list_one(void *arg, const char *uid, const struct commit_txn *t, const struct stat *st,
                     const char *path)
{
    struct job *j = arg;
    if (t->state == COMMIT_REPORTED) {
        if (time(NULL) - st->st_mtime > (time_t)j->s->remember_s)
            unlink(path); /* remembered long enough */
        return;
    }
    if (j->rc < 0)
        return; /* every open one: this store is read only at start */
    if (j->n_uids % 16 == 0) {
        char(*nu)[65] = realloc(j->uids, (j->n_uids + 16) * sizeof *nu);
        if (!nu) {
            j->rc = ERR_NOMEM;
            return;
        }
        j->uids = nu;
    }
    snprintf(j->uids[j->n_uids++], 65, "%s", uid);
}

static void work(uv_work_t *w)
{
    struct job *j = w->data;
    switch (j->kind) {
    case JOB_CREATE:
        j->rc = do_create(j);
        break;
    case JOB_SAVE:
        j->rc = do_save(j);
        break;
    case JOB_CLAIM:
        j->rc = do_claim(j);
        break;
    case JOB_LIST: {
        int rc = each_txn(j->s->dir, list_one, j);
        if (rc < 0)
            j->rc = rc;
        break;
    }
    }
}

/* ---- on the loop ------------------------------------------------------------------------------ */

static void maybe_closed(struct commit_store *s)
{
    if (!s->closing || s->busy)
        return;
    void (*done)(void *) = s->closed;
    void *arg = s->closed_arg;
    free(s);
    if (done)
        done(arg);
}

static void after(uv_work_t *w, int status)
{
    struct job *j = w->data;
    struct commit_store *s = j->s;
    if (status < 0 && j->rc == 0)
        j->rc = status;
    switch (j->kind) {
    case JOB_CREATE:
    case JOB_SAVE:
        j->cb.done(j->arg, j->rc);
        break;
    case JOB_CLAIM:
        j->cb.got_cb(j->arg, j->rc, j->rc == 0 ? &j->got : NULL);
        break;
    case JOB_LIST:
        j->cb.list_cb(j->arg, j->rc, (const char(*)[65])j->uids, j->rc == 0 ? j->n_uids : 0);
        break;
    }
    commit_txn_cleanup(&j->got);
    free(j->uids);
    free(j->text);
    free(j);
    s->busy--;
    maybe_closed(s);
}

static int submit(struct commit_store *s, struct job *j)
{
    if (s->closing) {
        free(j->text);
        free(j);
        return ERR_WRONG_STATE;
    }
    j->s = s;
    j->w.data = j;
    int rc = uv_queue_work(s->loop, &j->w, work, after);
    if (rc < 0) {
        free(j->text);
        free(j);
        return rc;
    }
    s->busy++;
    return 0;
}

static struct job *job_new(enum job_kind kind, const char *uid, void *arg)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->kind = kind;
    snprintf(j->uid, sizeof j->uid, "%s", uid ? uid : "");
    j->arg = arg;
    return j;
}

static int write_job(struct commit_store *s, enum job_kind kind, const struct commit_txn *t,
                     bool refs, backend_txn_cb cb, void *arg)
{
    struct job *j = job_new(kind, t->uid, arg);
    if (!j)
        return ERR_NOMEM;
    j->cb.done = cb;
    int rc = commit_rec_encode(t, refs, &j->text, &j->len);
    if (rc < 0) {
        free(j);
        return rc;
    }
    return submit(s, j);
}

static int st_create(void *impl, const struct commit_txn *t, const char *owner,
                     int64_t lease_until, backend_txn_cb cb, void *arg)
{
    (void)owner;
    (void)lease_until;
    return write_job(impl, JOB_CREATE, t, true, cb, arg);
}

static int st_claim(void *impl, const char *uid, const char *owner, int64_t now,
                    int64_t lease_until, backend_txn_got_cb cb, void *arg)
{
    (void)owner;
    (void)now;
    (void)lease_until;
    struct job *j = job_new(JOB_CLAIM, uid, arg);
    if (!j)
        return ERR_NOMEM;
    j->cb.got_cb = cb;
    return submit(impl, j);
}

static int st_save(void *impl, const struct commit_txn *t, bool body, const char *owner,
                   int64_t lease_until, backend_txn_cb cb, void *arg)
{
    (void)owner;
    (void)lease_until;
    (void)body; /* the file is always whole */
    return write_job(impl, JOB_SAVE, t, true, cb, arg);
}

static int st_reported(void *impl, const char *uid, const char *owner, int64_t keep_until,
                       backend_txn_cb cb, void *arg)
{
    (void)owner;
    (void)keep_until; /* the file's mtime and remember_s say how long */
    struct commit_txn t = {.state = COMMIT_REPORTED, .point = COPY_SPOOL, .event = 0};
    snprintf(t.uid, sizeof t.uid, "%s", uid);
    snprintf(t.calling, sizeof t.calling, "-");
    snprintf(t.called, sizeof t.called, "-");
    t.created_ms = (int64_t)time(NULL) * 1000;
    return write_job(impl, JOB_SAVE, &t, false, cb, arg);
}

static int st_list(void *impl, int64_t now, backend_txn_list_cb cb, void *arg)
{
    (void)now;
    struct job *j = job_new(JOB_LIST, NULL, arg);
    if (!j)
        return ERR_NOMEM;
    j->cb.list_cb = cb;
    return submit(impl, j);
}

const struct backend_txn_ops commit_store_ops = {
    .create = st_create,
    .claim = st_claim,
    .save = st_save,
    .reported = st_reported,
    .list = st_list,
};

void commit_store_close(void *impl, void (*done)(void *arg), void *arg)
{
    struct commit_store *s = impl;
    s->closing = true;
    s->closed = done;
    s->closed_arg = arg;
    maybe_closed(s);
}

int commit_store_open(uv_loop_t *loop, const struct spool *spool, bool fsync, uint32_t remember_s,
                      struct commit_store **out)
{
    struct commit_store *s = calloc(1, sizeof *s);
    if (!s)
        return ERR_NOMEM;
    int rc = spool_area_dir(spool, "commit", s->dir, sizeof s->dir);
    if (rc < 0) {
        free(s);
        return rc;
    }
    s->loop = loop;
    s->fsync = fsync;
    s->remember_s = remember_s;
    *out = s;
    return 0;
}

/* ---- the status command ---------------------------------------------------------------------- */

struct print_ctx {
    bool json;
    uint64_t open, reported;
};

static void print_one(void *arg, const char *uid, const struct commit_txn *t,
                      const struct stat *st, const char *path)
{
    struct print_ctx *p = arg;
    (void)st;
    (void)path;
    if (t->state == COMMIT_REPORTED) {
        p->reported++;
        return;
    }
    p->open++;
    size_t pending = 0;
    for (size_t i = 0; i < t->n_refs; i++)
        pending += t->refs[i].result == COMMIT_PENDING;
    if (p->json)
        printf("{\"transaction_uid\":\"%s\",\"state\":\"%s\",\"calling_ae\":\"%s\","
               "\"refs\":%zu,\"pending\":%zu,\"point\":\"%s\",\"created_ms\":%lld,"
               "\"deadline_ms\":%lld}\n",
               uid, commit_state_name(t->state), t->calling, t->n_refs, pending,
               commit_point_name(t->point), (long long)t->created_ms,
               (long long)t->deadline_ms);
    else
        printf("  %-64s %-8s %-16s %5zu refs, %5zu pending, point %s\n", uid,
               commit_state_name(t->state), t->calling, t->n_refs, pending,
               commit_point_name(t->point));
}

int commit_store_print(const char *spool_dir, bool json, uint64_t *open_n, uint64_t *reported_n)
{
    char dir[SPOOL_PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s/commit", spool_dir) >= (int)sizeof dir)
        return ERR_LIMIT;
    struct print_ctx p = {.json = json};
    int rc = each_txn(dir, print_one, &p);
    *open_n = p.open;
    *reported_n = p.reported;
    return rc;
}
