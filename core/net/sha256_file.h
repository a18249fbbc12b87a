/* sha256_file: the SHA-256 of a whole file, as the spool's sidecars record it (lowercase hex). */
#ifndef GW_SHA256_FILE_H
#define GW_SHA256_FILE_H

#include "common/err.h"

/* hex: 64 hex digits and a NUL. 0, or a negative errno, or ERR_NOMEM. */
MUST_CHECK int sha256_file(const char *path, char hex[65]);

#endif
