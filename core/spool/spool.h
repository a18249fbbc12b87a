/* spool: the on-disk spool, the one seam between the SCP that receives objects and the backends
 * that forward them. It owns the layout and every rule of the format:
 *   <dir>/ready/<id>.dcm  the Part-10 object, written there as it is received ...
 *   <dir>/tmp/<id>.json   ... its sidecar (spool_sidecar.h) while it is being committed ...
 *   <dir>/ready/<id>.json ... renamed beside it, last: the entry exists once its sidecar is in
 *                          ready/ (a data file alone there is never acknowledged: removed at
 *                          start)
 * Entry ids sort by arrival. Writers: the SCP's store (spool_obj_create) and the group committer
 * (spool_commit.h). Readers: the backends (spool_ready_list, spool_entry_*); each backend keeps
 * its own state under <dir>/<backend>/ (spool_area_dir). */
#ifndef GW_SPOOL_H
#define GW_SPOOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define SPOOL_ID_MAX 40
#define SPOOL_PATH_MAX 1200

struct spool {
    char dir[1024];
    char tmp_dir[1100];
    char ready_dir[1100];
    int ready_fd; /* directory fd, for syncfs/fsync after renames */
    uint64_t min_free;
    _Atomic int64_t depth; /* entries in ready/ */
    _Atomic int64_t depth_bytes;
    _Atomic uint64_t seq;
};

/* Create the directories if needed, remove partial objects left by a crash (files in tmp/, and
 * ready data files whose sidecar never landed), count the ready entries. 0 or a negative errno. */
MUST_CHECK int spool_open(struct spool *s, const char *dir, uint64_t min_free);
void spool_close(struct spool *s);
/* A fresh, unique entry id (time-ordered). */
void spool_new_id(struct spool *s, char out[SPOOL_ID_MAX]);
/* True while free space on the spool's filesystem is at or above the floor. */
bool spool_has_room(struct spool *s);
/* <dir>/<area>/<id><ext>; 0 or ERR_LIMIT on truncation. */
MUST_CHECK int spool_path(const struct spool *s, const char *area, const char *id, const char *ext,
                          char *out, size_t cap);
/* <dir>/<name>: the directory a backend keeps its own state in (created). 0 or < 0. */
MUST_CHECK int spool_area_dir(const struct spool *s, const char *name, char *out, size_t cap);
/* True when id has the shape spool_new_id gives (16 hex digits, '-', a decimal pid). */
bool spool_id_valid(const char *id);

/* Writer side: create <dir>/ready/<id>.dcm for a new object under a fresh id (written into id);
 * it is no entry until the committer renames its sidecar in. Returns the open fd (O_WRONLY) or
 * a negative errno. */
MUST_CHECK int spool_obj_create(struct spool *s, char id[SPOOL_ID_MAX]);
/* Remove an object that will not be committed (its data, and its sidecar in tmp/ if any). */
void spool_obj_discard(struct spool *s, const char *id);

/* Reader side. Up to max ids of ready entries (complete: sidecar present), oldest first, into
 * ids (caller's array of max rows). Returns how many, or a negative errno. */
MUST_CHECK int spool_ready_list(const struct spool *s, char (*ids)[SPOOL_ID_MAX], size_t max);
/* cb(arg, id) for every ready entry, oldest first; a negative return stops the walk and is
 * returned. 0, or -errno when ready/ cannot be read. */
typedef int (*spool_each_cb)(void *arg, const char *id);
MUST_CHECK int spool_ready_each(const struct spool *s, spool_each_cb cb, void *arg);

/* A read-only look at a spool directory that may belong to a running process (the operator's
 * status command): ready entries, their bytes, the oldest one's age. Nothing is changed. */
struct spool_peek {
    uint64_t depth, bytes;
    int64_t oldest_unix; /* mtime of the oldest ready entry, 0 when there is none */
};
MUST_CHECK int spool_peek(const char *dir, struct spool_peek *out);

/* An entry leaves the spool: data first, sidecar last (a crash in between leaves a sidecar
 * without data, which readers treat as a released entry), and the gauges go down by one entry
 * and bytes. */
void spool_entry_release(struct spool *s, const char *id, uint64_t bytes);
/* An entry was put into ready/ by someone else than the committer (a backend's re-drive). */
void spool_entry_added(struct spool *s, uint64_t bytes);

#endif
