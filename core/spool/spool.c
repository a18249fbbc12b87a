#include "spool/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"

int spool_path(const struct spool *s, const char *area, const char *id, const char *ext, char *out,
               size_t cap)
{
    int n = snprintf(out, cap, "%s/%s/%s%s", s->dir, area, id, ext);
    return (n < 0 || (size_t)n >= cap) ? ERR_LIMIT : 0;
}

int spool_area_dir(const struct spool *s, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", s->dir, name);
    if (n < 0 || (size_t)n >= cap)
        return ERR_LIMIT;
    return fileio_mkdir_p(out);
}

static bool has_suffix(const char *name, const char *suf)
{
    size_t n = strlen(name), m = strlen(suf);
    return n > m && strcmp(name + n - m, suf) == 0;
}

bool spool_id_valid(const char *id)
{
    size_t i = 0;
    for (; i < 16; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    if (id[i++] != '-')
        return false;
    size_t digits = 0;
    for (; id[i] && i < SPOOL_ID_MAX; i++, digits++) {
        if (id[i] < '0' || id[i] > '9')
            return false;
    }
    return digits > 0 && digits <= 10 && id[i] == '\0';
}

static int clean_tmp(struct spool *s)
{
    DIR *d = opendir(s->tmp_dir);
    if (!d)
        return -errno;
    struct dirent *e;
    unsigned removed = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        /* never acknowledged: a partial object or a sidecar that did not land */
        if (unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    if (removed) {
        struct logb b;
        if (log_begin(&b, LOG_WARN, "spool_partial_removed")) {
            log_u64(&b, "count", removed);
            log_end(&b);
        }
    }
    return 0;
}

static int scan_ready(struct spool *s)
{
    DIR *d = opendir(s->ready_dir);
    if (!d)
        return -errno;
    struct dirent *e;
    int64_t count = 0, bytes = 0;
    while ((e = readdir(d)) != NULL) {
        if (!has_suffix(e->d_name, ".dcm"))
            continue;
        char side[300];
        size_t n = strlen(e->d_name);
        snprintf(side, sizeof side, "%.*s.json", (int)(n - 4), e->d_name);
        struct stat st;
        if (fstatat(dirfd(d), side, &st, 0) < 0) {
            /* data renamed but the sidecar never landed: it was never acknowledged */
            (void)unlinkat(dirfd(d), e->d_name, 0);
            continue;
        }
        if (fstatat(dirfd(d), e->d_name, &st, 0) == 0) {
            count++;
            bytes += st.st_size;
        }
    }
    closedir(d);
    atomic_store(&s->depth, count);
    atomic_store(&s->depth_bytes, bytes);
    return 0;
}

int spool_open(struct spool *s, const char *dir, uint64_t min_free)
{
    memset(s, 0, sizeof *s);
    s->ready_fd = -1;
    s->min_free = min_free;
    if (snprintf(s->dir, sizeof s->dir, "%s", dir) >= (int)sizeof s->dir)
        return -ENAMETOOLONG;
    snprintf(s->tmp_dir, sizeof s->tmp_dir, "%s/tmp", s->dir);
    snprintf(s->ready_dir, sizeof s->ready_dir, "%s/ready", s->dir);
    TRY(fileio_mkdir_p(s->tmp_dir));
    TRY(fileio_mkdir_p(s->ready_dir));
    TRY(clean_tmp(s));
    TRY(scan_ready(s));
    s->ready_fd = open(s->ready_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->ready_fd < 0)
        return -errno;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    atomic_store(&s->seq, (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
    return 0;
}

void spool_close(struct spool *s)
{
    if (s->ready_fd >= 0)
        close(s->ready_fd);
    s->ready_fd = -1;
}

void spool_new_id(struct spool *s, char out[SPOOL_ID_MAX])
{
    /* microseconds at start, then +1 per object: unique within this spool, sorts by arrival */
    uint64_t v = atomic_fetch_add(&s->seq, 1);
    snprintf(out, SPOOL_ID_MAX, "%016llx-%d", (unsigned long long)v, (int)getpid());
}

bool spool_has_room(struct spool *s)
{
    if (s->min_free == 0)
        return true;
    struct statvfs st;
    if (statvfs(s->dir, &st) < 0)
        return false;
    return (uint64_t)st.f_bavail * st.f_frsize >= s->min_free;
}

int spool_obj_create(struct spool *s, char id[SPOOL_ID_MAX])
{
    spool_new_id(s, id);
    char path[SPOOL_PATH_MAX];
    /* straight into ready/: the entry exists only once its sidecar is renamed in beside it, so a
     * data file alone there is an object being received (or one a crash cut: spool_open removes
     * it), and no rename is needed at the commit */
    TRY(spool_path(s, "ready", id, ".dcm", path, sizeof path));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    return fd < 0 ? -errno : fd;
}

void spool_obj_discard(struct spool *s, const char *id)
{
    char p[SPOOL_PATH_MAX];
    if (spool_path(s, "tmp", id, ".json", p, sizeof p) == 0)
        unlink(p);
    if (spool_path(s, "ready", id, ".dcm", p, sizeof p) == 0)
        unlink(p);
}

static int json_filter(const struct dirent *e)
{
    return has_suffix(e->d_name, ".json");
}

int spool_ready_each(const struct spool *s, spool_each_cb cb, void *arg)
{
    struct dirent **names = NULL;
    int n = scandir(s->ready_dir, &names, json_filter, alphasort);
    if (n < 0)
        return -errno;
    int rc = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]->d_name) - 5; /* without ".json" */
        if (rc >= 0 && len < SPOOL_ID_MAX) {
            char id[SPOOL_ID_MAX];
            memcpy(id, names[i]->d_name, len);
            id[len] = '\0';
            rc = cb(arg, id);
        }
        free(names[i]);
    }
    free(names);
    return rc < 0 ? rc : 0;
}

struct list_job {
    char (*ids)[SPOOL_ID_MAX];
    size_t max, got;
};

static int list_one(void *arg, const char *id)
{
    struct list_job *j = arg;
    if (j->got >= j->max)
        return 1; /* enough: the rest are newer */
    snprintf(j->ids[j->got++], SPOOL_ID_MAX, "%s", id);
    return 0;
}

int spool_ready_list(const struct spool *s, char (*ids)[SPOOL_ID_MAX], size_t max)
{
    struct list_job j = {.ids = ids, .max = max};
    TRY(spool_ready_each(s, list_one, &j));
    return (int)j.got;
}

int spool_peek(const char *dir, struct spool_peek *out)
{
    memset(out, 0, sizeof *out);
    char ready[SPOOL_PATH_MAX];
    if (snprintf(ready, sizeof ready, "%s/ready", dir) >= (int)sizeof ready)
        return ERR_LIMIT;
    DIR *d = opendir(ready);
    if (!d)
        return -errno;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (!has_suffix(e->d_name, ".dcm") || fstatat(dirfd(d), e->d_name, &st, 0) < 0)
            continue;
        char side[300];
        size_t n = strlen(e->d_name);
        snprintf(side, sizeof side, "%.*s.json", (int)(n - 4), e->d_name);
        struct stat sst;
        if (fstatat(dirfd(d), side, &sst, 0) < 0)
            continue; /* still being received: not an entry yet */
        out->depth++;
        out->bytes += (uint64_t)st.st_size;
        if (!out->oldest_unix || st.st_mtime < out->oldest_unix)
            out->oldest_unix = st.st_mtime;
    }
    closedir(d);
    return 0;
}

void spool_entry_release(struct spool *s, const char *id, uint64_t bytes)
{
    char p[SPOOL_PATH_MAX];
    if (spool_path(s, "ready", id, ".dcm", p, sizeof p) == 0)
        unlink(p);
    if (spool_path(s, "ready", id, ".json", p, sizeof p) == 0)
        unlink(p);
    atomic_fetch_sub(&s->depth, 1);
    atomic_fetch_sub(&s->depth_bytes, (int64_t)bytes);
}

void spool_entry_added(struct spool *s, uint64_t bytes)
{
    atomic_fetch_add(&s->depth, 1);
    atomic_fetch_add(&s->depth_bytes, (int64_t)bytes);
}
