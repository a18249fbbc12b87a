/* disk_probe: the machine's own limit for durable object writes, measured with exactly the writes
 * a store of the same objects needs, on the same file system, by one writer. Timing only: it
 * never fails on a figure (it exits 1 only when a write itself fails).
 *
 *   build/tests/disk_probe [--count N] [--modes abc] DIR FILE...
 *
 * FILE... are the objects (up to 64 are loaded and used in turn; DIR must be on the file system
 * under test, e.g. next to the spool). Modes:
 *   a  per object: a new file, write, fsync, rename into place, fsync of the directory: what a
 *      spool that keeps one file per object must do before it may acknowledge;
 *   b  per object: append at the end of a preallocated segment file (posix_fallocate, 256 MiB
 *      segments, created and their directory synced outside the timed part) and one fdatasync:
 *      a log-structured spool's floor;
 *   c  per object: a new file, write, rename, no sync at all: the page cache's speed.
 * Each mode prints one line:
 *   probe <mode> <objects/s> obj/s <MB/s> MB/s <CPU ms> ms CPU/obj  <description>
 * Files are removed after each mode, and everything is synced before each (not timed). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_OBJECTS 64
#define SEGMENT_BYTES ((off_t)256 << 20)

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what, const char *path)
{
    fprintf(stderr, "disk_probe: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static void write_all(int fd, const unsigned char *p, size_t n, off_t at, const char *path)
{
    while (n > 0) {
        ssize_t k = at >= 0 ? pwrite(fd, p, n, at) : write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            die("write", path);
        p += k;
        n -= (size_t)k;
        if (at >= 0)
            at += k;
    }
}

struct obj {
    unsigned char *p;
    size_t n;
};

static struct obj load(const char *path)
{
    struct obj o = {NULL, 0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0)
        die("read", path);
    o.n = (size_t)st.st_size;
    o.p = malloc(o.n);
    if (!o.p)
        die("allocate for", path);
    for (size_t got = 0; got < o.n;) {
        ssize_t k = read(fd, o.p + got, o.n - got);
        if (k <= 0)
            die("read", path);
        got += (size_t)k;
    }
    close(fd);
    return o;
}

static void run(char mode, const char *dir, const struct obj *objs, size_t nobj, size_t count)
{
    char path[4096], tmp[4096];
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        die("open directory", dir);
    /* b: the segments exist, preallocated and named durably, before the clock starts */
    size_t total = 0;
    for (size_t i = 0; i < count; i++)
        total += objs[i % nobj].n;
    /* each segment wastes less than one object at its end: one spare covers that */
    size_t nseg = mode == 'b' ? (size_t)((off_t)total / SEGMENT_BYTES + 2) : 0;
    int *seg = calloc(nseg ? nseg : 1, sizeof(int));
    if (!seg)
        die("allocate for", dir);
    for (size_t s = 0; s < nseg; s++) {
        snprintf(path, sizeof(path), "%s/segment-%zu", dir, s);
        seg[s] = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        if (seg[s] < 0)
            die("create", path);
        int rc = posix_fallocate(seg[s], 0, SEGMENT_BYTES);
        if (rc != 0) {
            errno = rc;
            die("preallocate", path);
        }
        if (fsync(seg[s]) != 0)
            die("fsync", path);
    }
    if (fsync(dfd) != 0)
        die("fsync", dir);
    sync();
    double w0 = wall_now(), c0 = cpu_now();
    size_t s = 0;
    off_t at = 0;
    for (size_t i = 0; i < count; i++) {
        const struct obj *o = &objs[i % nobj];
        if (mode == 'b') {
            if (at + (off_t)o->n > SEGMENT_BYTES) {
                if (++s >= nseg || (off_t)o->n > SEGMENT_BYTES) {
                    errno = EFBIG;
                    die("fit an object into", "a segment");
                }
                at = 0;
            }
            write_all(seg[s], o->p, o->n, at, "segment");
            if (fdatasync(seg[s]) != 0)
                die("fdatasync", "segment");
            at += (off_t)o->n;
            continue;
        }
        snprintf(tmp, sizeof(tmp), "%s/%zu.part", dir, i);
        snprintf(path, sizeof(path), "%s/%zu.dcm", dir, i);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        if (fd < 0)
            die("create", tmp);
        write_all(fd, o->p, o->n, -1, tmp);
        if (mode == 'a' && fsync(fd) != 0)
            die("fsync", tmp);
        if (close(fd) != 0)
            die("close", tmp);
        if (rename(tmp, path) != 0)
            die("rename", tmp);
        if (mode == 'a' && fsync(dfd) != 0)
            die("fsync", dir);
    }
    double wall = wall_now() - w0, cpu = cpu_now() - c0;
    static const char *const what[] = {
        "new file + write + fsync + rename + directory fsync",
        "append into a preallocated segment + fdatasync",
        "new file + write + rename, no sync",
    };
    printf("probe %c %.1f obj/s %.1f MB/s %.3f ms CPU/obj  %s\n", mode, (double)count / wall,
           (double)total / 1e6 / wall, cpu * 1e3 / (double)count, what[mode - 'a']);
    fflush(stdout);
    for (size_t t = 0; t < nseg; t++) {
        snprintf(path, sizeof(path), "%s/segment-%zu", dir, t);
        close(seg[t]);
        unlink(path);
    }
    for (size_t i = 0; mode != 'b' && i < count; i++) {
        snprintf(path, sizeof(path), "%s/%zu.dcm", dir, i);
        unlink(path);
    }
    free(seg);
    close(dfd);
    sync();
}

int main(int argc, char **argv)
{
    size_t count = 1000;
    const char *modes = "abc";
    int i = 1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--count") == 0)
            count = (size_t)strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--modes") == 0)
            modes = argv[i + 1];
    }
    if (argc - i < 2 || count == 0 || strspn(modes, "abc") != strlen(modes)) {
        fprintf(stderr, "usage: disk_probe [--count N] [--modes abc] DIR FILE...\n");
        return 2;
    }
    const char *dir = argv[i++];
    struct obj objs[MAX_OBJECTS];
    size_t nobj = 0, bytes = 0;
    for (; i < argc && nobj < MAX_OBJECTS; i++) {
        objs[nobj] = load(argv[i]);
        bytes += objs[nobj++].n;
    }
    printf("disk_probe: %zu objects of ~%zu B (%zu distinct) in %s\n", count, bytes / nobj, nobj,
           dir);
    for (const char *m = modes; *m; m++)
        run(*m, dir, objs, nobj, count);
    for (size_t k = 0; k < nobj; k++)
        free(objs[k].p);
    return 0;
}
