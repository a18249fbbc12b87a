/* fileio: the small file-descriptor helpers every writer of the spool, journals and status files
 * needs. */
#ifndef GW_FILEIO_H
#define GW_FILEIO_H

#include <stddef.h>

#include "err.h"

/* Write all n bytes of p to fd, going on after short writes and EINTR. 0 or -errno. */
MUST_CHECK int fileio_write_all(int fd, const void *p, size_t n);

#endif
