/* backend_commit: what the Storage Commitment service (issue 16) asks a backend: where each
 * received copy of an instance is, against the commit point (spool, S3 or HealthImaging), and,
 * for a backend whose state is shared between core tasks (aws: DynamoDB), the store of
 * commitment transactions that any task can finish. A backend that can fills a struct
 * backend_commit_ops and points its backend_ops.commit at it. Callbacks run on env->loop.
 *
 * Status: the interface the Storage Commitment service is built on; it lands with it. */
#ifndef GW_BACKEND_COMMIT_H
#define GW_BACKEND_COMMIT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* How far one received copy (SOP Instance UID + content hash) has come. */
enum backend_copy_state {
    COPY_UNKNOWN = 0,
    COPY_SPOOL = 1,    /* durable in the spool */
    COPY_STORED = 2,   /* in S3 (aws) or the file store (file) */
    COPY_IMPORTED = 3, /* in HealthImaging (an import job's success, or STOW-RS accepted it) */
    COPY_FAILED = 4,   /* HealthImaging refused it (failure has why) */
};

struct backend_copy {
    char sha256[65];
    char sop_class[65];
    enum backend_copy_state state;
    int64_t received_ms; /* unix milliseconds of its receipt, 0 when unknown */
    char failure[128];
};

typedef void (*backend_locate_cb)(void *arg, int err, const struct backend_copy *copies,
                                  size_t n);

struct backend_commit_ops {
    /* Every copy of SOP Instance sop the backend knows, newest first (at most 16). cb once, on
     * env->loop. 0, or < 0 (no cb). */
    int (*locate)(void *impl, const char *sop, backend_locate_cb cb, void *arg);
};

#endif
