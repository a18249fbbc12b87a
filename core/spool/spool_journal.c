#include "spool/spool_journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"

#define JOURNAL_LINE_MAX (64u * 1024u)

struct spool_journal {
    int fd;
    bool fsync;
    size_t records;
    char path[1200];
};

static int replay(const char *path, spool_journal_replay_cb cb, void *arg)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        if ((size_t)n > JOURNAL_LINE_MAX)
            continue;
        cJSON *rec = cJSON_ParseWithLength(line, (size_t)n);
        if (cJSON_IsObject(rec))
            rc = cb(arg, rec);
        cJSON_Delete(rec); /* a torn line (crash mid-append) parses as nothing: skipped */
        if (rc < 0)
            break;
    }
    free(line);
    fclose(f);
    return rc;
}

int spool_journal_open(const char *path, bool fsync, spool_journal_replay_cb cb, void *arg,
                          struct spool_journal **out)
{
    struct spool_journal *j = calloc(1, sizeof *j);
    if (!j)
        return ERR_NOMEM;
    int n = snprintf(j->path, sizeof j->path, "%s", path);
    if (n < 0 || (size_t)n >= sizeof j->path) {
        free(j);
        return ERR_LIMIT;
    }
    j->fsync = fsync;
    int rc = cb ? replay(path, cb, arg) : 0;
    if (rc < 0) {
        free(j);
        return rc;
    }
    j->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (j->fd < 0) {
        rc = -errno;
        free(j);
        return rc;
    }
    /* a torn last line must not glue itself to the next record */
    off_t end = lseek(j->fd, 0, SEEK_END);
    if (end > 0) {
        int rfd = open(path, O_RDONLY | O_CLOEXEC);
        char last = '\n';
        if (rfd >= 0) {
            if (pread(rfd, &last, 1, end - 1) != 1)
                last = '\n';
            close(rfd);
        }
        if (last != '\n' && fileio_write_all(j->fd, "\n", 1) < 0) {
            rc = -errno;
            close(j->fd);
            free(j);
            return rc;
        }
    }
    *out = j;
    return 0;
}

int spool_journal_append(struct spool_journal *j, const cJSON *rec)
{
    char *s = cJSON_PrintUnformatted(rec);
    if (!s)
        return ERR_NOMEM;
    size_t n = strlen(s);
    s[n] = '\n'; /* replaces the NUL: cJSON allocated n + 1 bytes */
    struct stat st;
    off_t before = fstat(j->fd, &st) == 0 ? st.st_size : -1;
    int rc = n + 1 > JOURNAL_LINE_MAX ? ERR_LIMIT : fileio_write_all(j->fd, s, n + 1);
    cJSON_free(s);
    if (rc == 0) {
        j->records++;
    } else if (rc != ERR_LIMIT) {
        /* a short write (disk full) must not leave a fragment that the next record would be
         * glued to (replay would skip both): cut it off, or at least end its line */
        if ((before < 0 || ftruncate(j->fd, before) < 0) && fileio_write_all(j->fd, "\n", 1) < 0)
            return rc; /* nothing more to do: the record failed, the caller retries */
    }
    return rc;
}

int spool_journal_sync(struct spool_journal *j)
{
    if (j->fsync && fdatasync(j->fd) < 0)
        return -errno;
    return 0;
}

int spool_journal_compact(struct spool_journal *j, cJSON *const *recs, size_t n)
{
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.new", j->path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *s = cJSON_PrintUnformatted(recs[i]);
        if (!s) {
            rc = ERR_NOMEM;
            break;
        }
        size_t len = strlen(s);
        s[len] = '\n';
        rc = fileio_write_all(fd, s, len + 1);
        cJSON_free(s);
    }
    if (rc == 0 && j->fsync && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, j->path) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    if (j->fsync)
        {
        char dir[1200];
        snprintf(dir, sizeof dir, "%s", j->path);
        char *slash = strrchr(dir, '/');
        if (slash) {
            *slash = '\0';
            TRY(fileio_fsync_dir(dir[0] ? dir : "/"));
        }
    }
    int nfd = open(j->path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (nfd < 0)
        return -errno;
    close(j->fd);
    j->fd = nfd;
    j->records = n;
    return 0;
}

size_t spool_journal_records(const struct spool_journal *j)
{
    return j->records;
}

void spool_journal_close(struct spool_journal *j)
{
    if (!j)
        return;
    close(j->fd);
    free(j);
}
