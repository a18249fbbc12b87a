#define _GNU_SOURCE /* copy_file_range(2) */
#include "common/fileio.h"
#include "common/crc64nvme.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILEIO_PATH_MAX 4096

int fileio_write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int fileio_mkdir_p(const char *path)
{
    char tmp[FILEIO_PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s", path);
    if (n < 0 || (size_t)n >= sizeof tmp)
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

int fileio_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int fileio_read_small(const char *path, size_t max, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > max) {
        close(fd);
        return ERR_LIMIT;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return ERR_NOMEM;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* the file shrank: what was read is what there is */
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

int fileio_replace(const char *path, const void *p, size_t n, int sync)
{
    char tmp[FILEIO_PATH_MAX], dir[FILEIO_PATH_MAX];
    int k = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (k < 0 || (size_t)k >= sizeof tmp)
        return ERR_LIMIT;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    int rc = fileio_write_all(fd, p, n);
    if (rc == 0 && sync && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0 && errno != EINTR)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    if (!sync)
        return 0;
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return fileio_fsync_dir(".");
    if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    return fileio_fsync_dir(dir);
}

int fileio_copy(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    char tmp[FILEIO_PATH_MAX];
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

int fileio_crc64nvme(const char *path, uint64_t *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    static __thread uint8_t buf[1 << 16];
    uint64_t crc = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = -errno;
            close(fd);
            return e;
        }
        if (r == 0)
            break;
        crc = crc64nvme(crc, buf, (size_t)r);
    }
    close(fd);
    *out = crc;
    return 0;
}
