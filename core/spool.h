/* spool: the on-disk spool. Layout: <dir>/tmp/<id>.part (objects being received) and
 * <dir>/ready/<id>.dcm + <id>.json (durable, acknowledged objects and their sidecars; the
 * sidecar is renamed last and marks the entry complete). */
#ifndef GW_SPOOL_H
#define GW_SPOOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define SPOOL_ID_MAX 40

struct spool {
    char dir[1024];
    char tmp_dir[1100];
    char ready_dir[1100];
    int ready_fd; /* directory fd, for fsync after renames */
    uint64_t min_free;
    _Atomic int64_t depth;       /* entries in ready/ */
    _Atomic int64_t depth_bytes;
    _Atomic uint64_t seq;
};

/* Create the directories if needed, remove partial objects left by a crash (files in tmp/, and ready
 * data files whose sidecar never landed), count the ready entries. 0 or a negative errno. */
MUST_CHECK int spool_open(struct spool *s, const char *dir, uint64_t min_free);
void spool_close(struct spool *s);
/* A fresh, unique entry id (time-ordered). */
void spool_new_id(struct spool *s, char out[SPOOL_ID_MAX]);
/* True while free space on the spool's filesystem is at or above the floor. */
bool spool_has_room(struct spool *s);
/* Path helpers; 0 or ERR_LIMIT on truncation. */
MUST_CHECK int spool_path(const struct spool *s, const char *area, const char *id, const char *ext,
                          char *out, size_t cap);

#endif
