/* fileio: the small file and directory helpers every writer of the spool, journals and status
 * files needs (POSIX only). */
#ifndef GW_FILEIO_H
#define GW_FILEIO_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Write all n bytes of p to fd, going on after short writes and EINTR. 0 or -errno. */
MUST_CHECK int fileio_write_all(int fd, const void *p, size_t n);
/* Create path and its missing parents (mode 0750). 0, -ENAMETOOLONG or -errno. */
MUST_CHECK int fileio_mkdir_p(const char *path);
/* fsync the directory path (makes renames and new names in it durable). 0 or -errno. */
MUST_CHECK int fileio_fsync_dir(const char *path);
/* Read a whole regular file of at most max bytes into a new NUL-terminated buffer (*out, to be
 * freed; *len without the NUL). 0, -errno, or ERR_LIMIT when the file is larger than max. */
MUST_CHECK int fileio_read_small(const char *path, size_t max, char **out, size_t *len);
/* Write p[0..n) to path atomically: path.tmp written, fsync'd (when sync), renamed over path,
 * directory fsync'd (when sync). 0 or -errno / ERR_LIMIT (path too long). */
MUST_CHECK int fileio_replace(const char *path, const void *p, size_t n, int sync);

/* The CRC-64/NVME (common/crc64nvme.h) of the whole file at path. 0 or -errno. */
MUST_CHECK int fileio_crc64nvme(const char *path, uint64_t *out);
/* Copy from into to (a new file): to.tmp written (copy_file_range where the kernel can, else
 * read/write), fsync'd, renamed to to. 0 or -errno. */
MUST_CHECK int fileio_copy(const char *from, const char *to);

#endif
