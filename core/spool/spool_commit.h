/* spool_commit: the group committer. A thread that makes finished objects durable entries of the
 * spool's ready area: it writes each sidecar (spool_sidecar.h) and renames it in beside its data
 * (which was written in ready/ as it arrived), then one syncfs makes a whole batch durable (one
 * journal commit for everything that queued meanwhile). Completions come back to the loop thread
 * through a uv_async_t. */
#ifndef GW_SPOOL_COMMIT_H
#define GW_SPOOL_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "spool/spool.h"
#include "spool/spool_sidecar.h"

struct spool_commit_req;
typedef void (*spool_commit_done_cb)(struct spool_commit_req *r, int result, void *arg);

struct spool_commit_req {
    struct spool_commit_req *next;
    int fd;                  /* data file (spool_obj_create), still open; the committer closes it */
    struct spool_sidecar sc; /* id, bytes, sha256 ... filled by the creator */
    spool_commit_done_cb cb; /* runs on the loop thread */
    void *arg;
    int result;
};

struct spool_committer;

/* Start the thread. fsync=false skips flushing (benchmarks only; renames stay atomic). */
MUST_CHECK int spool_commit_start(uv_loop_t *loop, struct spool *spool, bool fsync,
                                  struct spool_committer **out);
/* Queue r (borrowed until its cb runs). Thread-safe; normally called on the loop thread. */
void spool_commit_submit(struct spool_committer *c, struct spool_commit_req *r);
/* Finish queued work, stop the thread, close the async handle; the object is freed when closed. */
void spool_commit_stop(struct spool_committer *c);

#endif
