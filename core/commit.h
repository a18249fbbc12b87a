/* commit: the group committer. A thread that makes finished objects durable and moves them into
 * the spool's ready area: data and sidecar flushed (one syncfs for a batch of several objects,
 * fsync for one), renamed (data first, sidecar last), the ready directory fsync'd once per batch.
 * Completions come back to the loop thread through a uv_async_t. */
#ifndef GW_COMMIT_H
#define GW_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "spool.h"

struct commit_req;
typedef void (*commit_done_cb)(struct commit_req *r, int result, void *arg);

struct commit_req {
    struct commit_req *next;
    int fd;                 /* data file, still open; the committer closes it */
    char id[SPOOL_ID_MAX];
    char *sidecar;          /* JSON text, owned by the request's creator */
    size_t sidecar_len;
    uint64_t bytes;         /* size of the data file, for the spool's byte gauge */
    commit_done_cb cb;      /* runs on the loop thread */
    void *arg;
    int result;
};

struct committer;

/* Start the thread. fsync=false skips flushing (benchmarks only; renames stay atomic). */
MUST_CHECK int committer_start(uv_loop_t *loop, struct spool *spool, bool fsync,
                               struct committer **out);
/* Queue r (borrowed until its cb runs). Thread-safe; normally called on the loop thread. */
void committer_submit(struct committer *c, struct commit_req *r);
/* Finish queued work, stop the thread, close the async handle; the object is freed when closed. */
void committer_stop(struct committer *c);

#endif
