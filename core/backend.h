/* backend: where ready spool entries go. The `file` backend (the embedded default) moves each
 * entry into a store directory laid out like the S3 bucket, <dir>/<prefix>/<batch-id>/<SOP
 * Instance UID>.dcm, with a local job journal (<dir>/journal.jsonl) whose write-ahead records
 * make every step idempotent across crashes. It runs on its own thread. */
#ifndef GW_BACKEND_H
#define GW_BACKEND_H

#include <stdint.h>

#include "core_config.h"
#include "spool.h"

struct backend;

struct backend_stats {
    uint64_t stored, duplicates, failed, batches_closed;
    uint64_t last_error_at; /* unix seconds, 0 if none */
};

/* Start the backend for cfg (file only here; the aws backend lives in forwarder/). It first
 * recovers: replays the journal and resumes every entry still in ready/. */
MUST_CHECK int backend_start(const struct core_config *cfg, struct spool *spool,
                             struct backend **out);
/* New entries are in ready/ (cheap, thread-safe). */
void backend_notify(struct backend *b);

/* ack "s3" / "healthimaging": result 0 once the object got there, < 0 when it cannot. */
typedef void (*backend_ack_cb)(void *arg, int result);
/* Run cb(arg, result) on the core's loop once spool entry spool_id (already in ready/) reached
 * the configured ack point. The file backend acknowledges at the spool: cb runs at once. */
void backend_await(struct backend *b, const char *spool_id, backend_ack_cb cb, void *arg);

/* A backend implemented outside core/ (the aws one in forwarder/) plugs in with these hooks;
 * backend_notify / backend_await / backend_get_stats / backend_stop then call them. */
struct backend_ops {
    void (*notify)(void *impl);
    void (*await)(void *impl, const char *spool_id, backend_ack_cb cb, void *arg);
    void (*get_stats)(void *impl, struct backend_stats *out);
    void (*stop)(void *impl); /* joins its threads and frees impl */
};
MUST_CHECK int backend_wrap(const struct backend_ops *ops, void *impl, struct backend **out);
void backend_get_stats(struct backend *b, struct backend_stats *out);
/* Finish the step in progress, close the open batch, join the thread, free. NULL is fine. */
void backend_stop(struct backend *b);

#endif
