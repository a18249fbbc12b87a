#define _GNU_SOURCE /* copy_file_range(2) */
#include "backend.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/sha256_file.h"
#include "dsscan.h"

#define BATCH_STEP 256

/* A set of strings (open addressing), for "sop|sha256" already stored and id -> assigned key. */
struct strmap {
    char **keys;
    char **vals;
    size_t cap, n;
};

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

static int strmap_put(struct strmap *m, const char *k, const char *v);

static int strmap_grow(struct strmap *m)
{
    struct strmap n = {0};
    n.cap = m->cap ? m->cap * 2 : 1024;
    n.keys = calloc(n.cap, sizeof *n.keys);
    n.vals = calloc(n.cap, sizeof *n.vals);
    if (!n.keys || !n.vals) {
        free(n.keys);
        free(n.vals);
        return ERR_NOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i]) {
            size_t j = fnv(m->keys[i]) & (n.cap - 1);
            while (n.keys[j])
                j = (j + 1) & (n.cap - 1);
            n.keys[j] = m->keys[i];
            n.vals[j] = m->vals[i];
            n.n++;
        }
    }
    free(m->keys);
    free(m->vals);
    *m = n;
    return 0;
}

static const char *strmap_get(const struct strmap *m, const char *k)
{
    if (!m->cap)
        return NULL;
    for (size_t j = fnv(k) & (m->cap - 1); m->keys[j]; j = (j + 1) & (m->cap - 1)) {
        if (strcmp(m->keys[j], k) == 0)
            return m->vals[j] ? m->vals[j] : "";
    }
    return NULL;
}

static int strmap_put(struct strmap *m, const char *k, const char *v)
{
    if ((m->n + 1) * 2 > m->cap)
        TRY(strmap_grow(m));
    size_t j = fnv(k) & (m->cap - 1);
    while (m->keys[j]) {
        if (strcmp(m->keys[j], k) == 0)
            return 0;
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = strdup(k);
    m->vals[j] = v ? strdup(v) : NULL;
    if (!m->keys[j] || (v && !m->vals[j]))
        return ERR_NOMEM;
    m->n++;
    return 0;
}

static void strmap_free(struct strmap *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->keys[i]);
        free(m->vals[i]);
    }
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

struct backend {
    const struct backend_ops *ops; /* an external backend (backend_wrap): everything goes there */
    void *impl;
    const struct core_config *cfg;
    struct spool *spool;
    char dir[CFG_PATH_MAX];
    int journal_fd;
    struct strmap stored;   /* "sop|sha" */
    struct strmap assigned; /* spool id -> key, for entries assigned but not yet stored */
    char batch[64];
    uint32_t batch_objects;
    uint64_t batch_bytes;
    uint64_t batch_opened_ms;
    unsigned batch_seq;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, kicked;
    struct backend_stats stats;
    time_t started; /* entries older than this were left by a previous run: verify them */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int mkdir_p(const char *path)
{
    char tmp[CFG_PATH_MAX + 256];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
                return -errno;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* Append one JSON object as a line; the caller fsyncs the journal once per step. */
static int journal_append(struct backend *b, cJSON *obj)
{
    char *s = cJSON_PrintUnformatted(obj);
    if (!s)
        return ERR_NOMEM;
    size_t n = strlen(s);
    s[n] = '\n'; /* replaces the NUL; cJSON allocated n+1 bytes */
    int rc = fileio_write_all(b->journal_fd, s, n + 1);
    cJSON_free(s);
    return rc;
}

/* fsync: false (benchmarks only) skips every flush, here as in the spool. */
static int journal_sync(struct backend *b)
{
    if (b->cfg->fsync && fsync(b->journal_fd) < 0)
        return -errno;
    return 0;
}

static void open_batch(struct backend *b)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(b->batch, sizeof b->batch, "b%04d%02d%02dT%02d%02d%02dZ-%u-%d", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, b->batch_seq++,
             (int)getpid());
    b->batch_objects = 0;
    b->batch_bytes = 0;
    b->batch_opened_ms = now_ms();
}

/* A batch stands for a HealthImaging import job: closing it records the job as completed. */
static void close_batch(struct backend *b)
{
    if (!b->batch[0] || b->batch_objects == 0)
        return;
    cJSON *j = cJSON_CreateObject();
    if (j) {
        cJSON_AddStringToObject(j, "ev", "job");
        cJSON_AddStringToObject(j, "batch", b->batch);
        cJSON_AddStringToObject(j, "status", "COMPLETED");
        cJSON_AddNumberToObject(j, "objects", b->batch_objects);
        cJSON_AddNumberToObject(j, "bytes", (double)b->batch_bytes);
        if (journal_append(b, j) == 0 && journal_sync(b) == 0)
            b->stats.batches_closed++;
        cJSON_Delete(j);
    }
    b->batch[0] = '\0';
}

static int replay_journal(struct backend *b, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        cJSON *j = cJSON_ParseWithLength(line, (size_t)n);
        if (!j)
            continue; /* a torn last line from a crash: its step is redone */
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(j, "ev");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(j, "key");
        const cJSON *sop = cJSON_GetObjectItemCaseSensitive(j, "sop_instance_uid");
        const cJSON *sha = cJSON_GetObjectItemCaseSensitive(j, "sha256");
        if (cJSON_IsString(ev) && cJSON_IsString(id) && cJSON_IsString(key) &&
            strcmp(ev->valuestring, "assign") == 0) {
            rc = strmap_put(&b->assigned, id->valuestring, key->valuestring);
        } else if (cJSON_IsString(ev) && strcmp(ev->valuestring, "stored") == 0 &&
                   cJSON_IsString(sop) && cJSON_IsString(sha)) {
            char k[200];
            snprintf(k, sizeof k, "%s|%s", sop->valuestring, sha->valuestring);
            rc = strmap_put(&b->stored, k, NULL);
        }
        cJSON_Delete(j);
        if (rc < 0)
            break;
    }
    free(line);
    fclose(f);
    return rc;
}

static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    char tmp[CFG_PATH_MAX + 700];
    int tn = snprintf(tmp, sizeof tmp, "%s.tmp", to);
    if (tn < 0 || (size_t)tn >= sizeof tmp) {
        close(in);
        return -ENAMETOOLONG;
    }
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (out < 0) {
        int e = -errno;
        close(in);
        return e;
    }
    static __thread char buf[1 << 16];
    int rc = 0;
    bool in_kernel = true; /* copy_file_range: no trip through user space where it works */
    for (;;) {
        ssize_t r;
        if (in_kernel) {
            r = copy_file_range(in, NULL, out, NULL, (size_t)1 << 30, 0);
            if (r < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
                          errno == EOPNOTSUPP || errno == EPERM)) {
                in_kernel = false; /* not across these file systems: both offsets are intact */
                continue;
            }
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                rc = r < 0 ? -errno : 0;
                break;
            }
            continue;
        }
        r = read(in, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r < 0 ? -errno : 0;
            break;
        }
        rc = fileio_write_all(out, buf, (size_t)r);
        if (rc < 0)
            break;
    }
    if (rc == 0 && fsync(out) < 0)
        rc = -errno;
    close(in);
    if (close(out) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, to) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

struct entry {
    char id[SPOOL_ID_MAX];
    cJSON *side;
    char key[512];
    char dup;
};

static int json_filter(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return n > 5 && strcmp(e->d_name + n - 5, ".json") == 0;
}

static cJSON *read_sidecar(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n == 0 || n == sizeof buf)
        return NULL;
    return cJSON_ParseWithLength(buf, n);
}

static const char *jstr(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void fail_log(struct backend *b, const char *what, const char *id, int rc)
{
    b->stats.failed++;
    b->stats.last_error_at = (uint64_t)time(NULL);
    struct logb lb;
    if (log_begin(&lb, LOG_ERROR, "backend_file_error")) {
        log_str(&lb, "step", what);
        log_str(&lb, "id", id);
        log_str(&lb, "err", err_str(rc));
        log_end(&lb);
    }
}

/* One step: up to BATCH_STEP ready entries. Returns how many were finished, or < 0. */
static int step(struct backend *b)
{
    struct dirent **names = NULL;
    int n = scandir(b->spool->ready_dir, &names, json_filter, alphasort);
    if (n < 0)
        return -errno;
    int take = n < BATCH_STEP ? n : BATCH_STEP;
    struct entry *es = calloc((size_t)(take ? take : 1), sizeof *es);
    int done = 0, rc = 0, count = 0;
    if (!es) {
        rc = ERR_NOMEM;
        goto out;
    }
    /* 1. read sidecars; assign keys (write-ahead) */
    for (int i = 0; i < take; i++) {
        struct entry *e = &es[count];
        size_t len = strlen(names[i]->d_name) - 5;
        if (len >= sizeof e->id)
            continue;
        memcpy(e->id, names[i]->d_name, len);
        e->id[len] = '\0';
        char path[1200];
        if (spool_path(b->spool, "ready", e->id, ".json", path, sizeof path) < 0)
            continue;
        e->side = read_sidecar(path);
        const char *sop = e->side ? jstr(e->side, "sop_instance_uid") : "";
        const char *sha = e->side ? jstr(e->side, "sha256") : "";
        if (!ds_uid_valid(sop) || strlen(sha) != 64) {
            fail_log(b, "sidecar", e->id, ERR_MALFORMED);
            cJSON_Delete(e->side);
            e->side = NULL;
            continue; /* left in ready/ for an operator; never deleted unread */
        }
        char k[200];
        snprintf(k, sizeof k, "%s|%s", sop, sha);
        if (strmap_get(&b->stored, k)) {
            /* this object is in the store already: a duplicate, or an entry whose release a
             * crash cut between unlinking its data and its sidecar. Either way it is released
             * as a duplicate (its data, if any, is not needed), not reported as torn. */
            e->dup = 1;
            count++;
            continue;
        }
        struct stat sst;
        if (stat(path, &sst) == 0 && sst.st_mtime < b->started && !strmap_get(&b->assigned, e->id)) {
            /* left by a previous run: a crash inside the group commit can leave an entry that
             * was never acknowledged and whose data never reached the disk */
            char data[1200], got[65] = "";
            int vr = spool_path(b->spool, "ready", e->id, ".dcm", data, sizeof data);
            if (vr == 0)
                vr = sha256_file(data, got);
            if (vr == -ENOENT || (vr == 0 && strcmp(got, sha) != 0)) {
                struct logb lb;
                if (log_begin(&lb, LOG_WARN, "spool_torn_entry_dropped")) {
                    log_str(&lb, "id", e->id);
                    log_str(&lb, "sop_instance_uid", sop);
                    log_end(&lb);
                }
                unlink(data);
                unlink(path);
                atomic_fetch_sub(&b->spool->depth, 1);
                cJSON_Delete(e->side);
                e->side = NULL;
                continue;
            }
        }
        const char *prev = strmap_get(&b->assigned, e->id);
        if (prev) {
            snprintf(e->key, sizeof e->key, "%s", prev);
        } else {
            const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(e->side, "bytes");
            uint64_t sz = cJSON_IsNumber(bytes) ? (uint64_t)bytes->valuedouble : 0;
            if (!b->batch[0] || b->batch_objects >= b->cfg->file.batch_max_objects ||
                b->batch_bytes + sz > b->cfg->file.batch_max_bytes) {
                close_batch(b);
                open_batch(b);
            }
            snprintf(e->key, sizeof e->key, "%s/%s/%s.dcm", b->cfg->file.prefix, b->batch, sop);
            char full[CFG_PATH_MAX + 600];
            snprintf(full, sizeof full, "%s/%s", b->dir, e->key);
            struct stat st;
            if (stat(full, &st) == 0) { /* same SOP, other content, same batch: next batch */
                close_batch(b);
                open_batch(b);
                snprintf(e->key, sizeof e->key, "%s/%s/%s.dcm", b->cfg->file.prefix, b->batch,
                         sop);
            }
            b->batch_objects++;
            b->batch_bytes += sz;
            cJSON *j = cJSON_CreateObject();
            if (!j) {
                rc = ERR_NOMEM;
                goto out;
            }
            cJSON_AddStringToObject(j, "ev", "assign");
            cJSON_AddStringToObject(j, "id", e->id);
            cJSON_AddStringToObject(j, "key", e->key);
            cJSON_AddStringToObject(j, "batch", b->batch);
            rc = journal_append(b, j);
            cJSON_Delete(j);
            if (rc < 0 || (rc = strmap_put(&b->assigned, e->id, e->key)) < 0)
                goto out;
        }
        count++;
    }
    if (count == 0)
        goto out;
    if ((rc = journal_sync(b)) < 0) {
        goto out;
    }
    /* 2. place the data: a hard link where the store shares the spool's filesystem */
    char last_dir[CFG_PATH_MAX + 600] = "";
    for (int i = 0; i < count; i++) {
        struct entry *e = &es[i];
        if (e->dup)
            continue;
        char from[1200], to[CFG_PATH_MAX + 600], dir[CFG_PATH_MAX + 600];
        if (spool_path(b->spool, "ready", e->id, ".dcm", from, sizeof from) < 0)
            continue;
        snprintf(to, sizeof to, "%s/%s", b->dir, e->key);
        snprintf(dir, sizeof dir, "%s", to);
        char *slash = strrchr(dir, '/');
        *slash = '\0';
        int r = mkdir_p(dir);
        if (r == 0 && link(from, to) < 0) {
            r = -errno;
            if (r == -EEXIST)
                r = 0; /* placed before a crash: the key is ours (write-ahead assign) */
            else if (r == -EXDEV || r == -EPERM)
                r = copy_file(from, to);
        }
        if (r < 0) {
            fail_log(b, "place", e->id, r);
            e->key[0] = '\0';
            continue;
        }
        if (b->cfg->fsync && strcmp(dir, last_dir) != 0) {
            r = fsync_dir(dir);
            if (r < 0) {
                fail_log(b, "fsync", e->id, r);
                e->key[0] = '\0';
                continue;
            }
            snprintf(last_dir, sizeof last_dir, "%s", dir);
        }
    }
    /* 3. record them; 4. only then release the spool entries */
    for (int i = 0; i < count; i++) {
        struct entry *e = &es[i];
        if (!e->dup && !e->key[0])
            continue;
        cJSON *j = cJSON_Duplicate(e->side, 1);
        if (!j) {
            rc = ERR_NOMEM;
            goto out;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(j, "id");
        cJSON_AddStringToObject(j, "ev", e->dup ? "duplicate" : "stored");
        cJSON_AddStringToObject(j, "id", e->id);
        if (!e->dup)
            cJSON_AddStringToObject(j, "key", e->key);
        rc = journal_append(b, j);
        cJSON_Delete(j);
        if (rc < 0)
            goto out;
    }
    if ((rc = journal_sync(b)) < 0) {
        goto out;
    }
    for (int i = 0; i < count; i++) {
        struct entry *e = &es[i];
        if (!e->dup && !e->key[0])
            continue;
        char k[200], p[1200];
        snprintf(k, sizeof k, "%s|%s", jstr(e->side, "sop_instance_uid"), jstr(e->side, "sha256"));
        if (strmap_put(&b->stored, k, NULL) < 0) {
            rc = ERR_NOMEM;
            goto out;
        }
        const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(e->side, "bytes");
        if (spool_path(b->spool, "ready", e->id, ".dcm", p, sizeof p) == 0)
            unlink(p);
        if (spool_path(b->spool, "ready", e->id, ".json", p, sizeof p) == 0)
            unlink(p);
        atomic_fetch_sub(&b->spool->depth, 1);
        if (cJSON_IsNumber(bytes))
            atomic_fetch_sub(&b->spool->depth_bytes, (int64_t)bytes->valuedouble);
        if (e->dup)
            b->stats.duplicates++;
        else
            b->stats.stored++;
        done++;
    }
out:
    if (es) {
        for (int i = 0; i < take; i++)
            cJSON_Delete(es[i].side);
        free(es);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc < 0 ? rc : done;
}

static void *backend_thread(void *arg)
{
    struct backend *b = arg;
    unsigned backoff_ms = 0;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        while (!b->stop && !b->kicked) {
            uint64_t wait_ms = backoff_ms ? backoff_ms : b->cfg->file.batch_max_age_ms;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)(wait_ms / 1000);
            ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            if (pthread_cond_timedwait(&b->cv, &b->mu, &ts) != 0)
                break; /* timed out: age check and a retry scan */
        }
        bool stop = b->stop;
        b->kicked = false;
        pthread_mutex_unlock(&b->mu);

        int r, total = 0;
        do {
            r = step(b);
            total += r > 0 ? r : 0;
        } while (r > 0 && !stop);
        if (r < 0) {
            fail_log(b, "step", "-", r);
            backoff_ms = backoff_ms ? (backoff_ms * 2 > 30000 ? 30000 : backoff_ms * 2) : 500;
        } else {
            backoff_ms = 0;
        }
        if (b->batch[0] && now_ms() - b->batch_opened_ms >= b->cfg->file.batch_max_age_ms)
            close_batch(b);
        if (stop)
            break;
        if (total > 0) {
            /* not on the acknowledgement path: let entries gather so that one step (and its
             * journal fsyncs) covers many objects instead of competing with the committer */
            pthread_mutex_lock(&b->mu);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100L * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            while (!b->stop && pthread_cond_timedwait(&b->cv, &b->mu, &ts) == 0)
                ;
            pthread_mutex_unlock(&b->mu);
        }
    }
    close_batch(b);
    return NULL;
}

int backend_start(const struct core_config *cfg, struct spool *spool, struct backend **out)
{
    if (cfg->backend != BACKEND_FILE)
        return ERR_UNSUPPORTED;
    struct backend *b = calloc(1, sizeof *b);
    if (!b)
        return ERR_NOMEM;
    b->cfg = cfg;
    b->spool = spool;
    b->journal_fd = -1;
    b->started = time(NULL);
    snprintf(b->dir, sizeof b->dir, "%s", cfg->file.dir);
    int rc = mkdir_p(b->dir);
    char jpath[CFG_PATH_MAX + 32];
    snprintf(jpath, sizeof jpath, "%s/journal.jsonl", b->dir);
    if (rc == 0)
        rc = replay_journal(b, jpath);
    if (rc == 0) {
        b->journal_fd = open(jpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (b->journal_fd < 0)
            rc = -errno;
    }
    if (rc < 0) {
        strmap_free(&b->stored);
        strmap_free(&b->assigned);
        free(b);
        return rc;
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->kicked = true; /* resume whatever a previous run left in ready/ */
    rc = pthread_create(&b->thread, NULL, backend_thread, b);
    if (rc != 0) {
        close(b->journal_fd);
        strmap_free(&b->stored);
        strmap_free(&b->assigned);
        free(b);
        return -rc;
    }
    *out = b;
    return 0;
}

int backend_wrap(const struct backend_ops *ops, void *impl, struct backend **out)
{
    struct backend *b = calloc(1, sizeof *b);
    if (!b)
        return ERR_NOMEM;
    b->ops = ops;
    b->impl = impl;
    *out = b;
    return 0;
}

void backend_await(struct backend *b, const char *spool_id, backend_ack_cb cb, void *arg)
{
    if (b->ops) {
        b->ops->await(b->impl, spool_id, cb, arg);
        return;
    }
    cb(arg, 0); /* the file backend acknowledges at the spool */
}

void backend_notify(struct backend *b)
{
    if (b->ops) {
        b->ops->notify(b->impl);
        return;
    }
    pthread_mutex_lock(&b->mu);
    b->kicked = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

void backend_get_stats(struct backend *b, struct backend_stats *out)
{
    if (b->ops) {
        b->ops->get_stats(b->impl, out);
        return;
    }
    pthread_mutex_lock(&b->mu);
    *out = b->stats; /* counters are written by the thread; a torn read only skews a scrape */
    pthread_mutex_unlock(&b->mu);
}

void backend_stop(struct backend *b)
{
    if (!b)
        return;
    if (b->ops) {
        b->ops->stop(b->impl);
        free(b);
        return;
    }
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    close(b->journal_fd);
    strmap_free(&b->stored);
    strmap_free(&b->assigned);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}
