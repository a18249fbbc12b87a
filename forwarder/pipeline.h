/* pipeline: the aws backend's engine, on the forwarder's loop. It consumes the core's spool
 * (<spool>/ready/<id>.dcm + <id>.json) and carries each object through
 *   RECEIVED (DynamoDB) -> S3 upload -> STORED (DynamoDB) -> spool entry released
 * then, per batch (one HealthImaging import job): close by count/bytes/age, StartDICOMImportJob
 * (clientToken = batch id, paced to start_tps, at most max_concurrent_jobs), IMPORTING, polling
 * GetDICOMImportJob with backoff, reading the job's output manifest and ndjson files, and
 * IMPORTED / FAILED per object. In mode "stow" each object goes to StoreDICOM after S3 instead.
 * A write-ahead journal (<spool>/forwarder/journal.jsonl) fixes every choice (batch, key, job)
 * before it is acted on, so that after kill -9 each incomplete step is redone idempotently:
 * same S3 key, conditional DynamoDB writes, same clientToken. docs/forwarder.md has the whole
 * story. Everything here runs on env->loop's thread. */
#ifndef GW_PIPELINE_H
#define GW_PIPELINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "pipeline_config.h"
#include "spool/spool.h"

struct s3_client;
struct ddb_client;
struct mi_client;
struct metrics;
struct pipeline;

/* Where an awaited object's acknowledgement is decided. */
enum pipeline_ack { PIPELINE_ACK_NONE = 0, PIPELINE_ACK_S3 = 1, PIPELINE_ACK_HI = 2 };

/* result: 0 when the object reached the ack point, < 0 when it could not: refusal NULL for a
 * passing trouble (outage, timeout: the core answers 0xA700 and the modality may retry), or
 * why HealthImaging refused these bytes for good (at most 64 characters, no data values: the
 * core answers a failure the modality should not retry, with it as the Error Comment). token
 * is the one given to pipeline_await. */
typedef void (*pipeline_acked_cb)(void *arg, uint64_t token, int result, const char *refusal);

struct pipeline_env {
    uv_loop_t *loop;
    const struct pipeline_config *cfg; /* borrowed, frozen */
    struct spool *spool;               /* ready entries are read and released; forwarder/ is ours */
    bool fsync;                        /* false only for benchmarks */
    enum pipeline_ack ack;
    struct s3_client *s3;
    struct ddb_client *ddb;
    struct mi_client *mi;
    struct metrics *metrics;                    /* may be NULL */
    pipeline_acked_cb acked;
    void *acked_arg;
};

/* Replay the journal, compact it, and start scanning. 0 or a negative code (journal unreadable,
 * directory not writable). */
MUST_CHECK int pipeline_start(const struct pipeline_env *env, struct pipeline **out);
/* New entries may be in ready/: scan soon. */
void pipeline_kick(struct pipeline *p);
/* Ask for acked(token, result) once spool entry id reaches the ack point, or fails to within
 * cfg->ack_timeout_ms. Fires exactly once (also during pipeline_stop, with ERR_WRONG_STATE). */
void pipeline_await(struct pipeline *p, const char *id, uint64_t token);
/* Stop scheduling work and close the pipeline's own handles; in-flight requests are abandoned
 * by the caller closing the http client (their results are then ignored). Everything already
 * done is journaled. done(arg) runs once the handles are closed; pipeline_free afterwards,
 * once the http client has closed too. */
void pipeline_stop(struct pipeline *p, void (*done)(void *arg), void *arg);
void pipeline_free(struct pipeline *p);

/* Operator's view, also written to <spool>/forwarder/status.json about once a second. */
struct pipeline_stats {
    uint64_t entries_inflight, uploads_inflight, batches_open, batches_closing, jobs_inflight;
    uint64_t uploaded, uploaded_bytes, duplicates, torn, imported, failed, jobs_started,
        jobs_completed, jobs_failed, retries;
    uint64_t ddb_requests; /* DynamoDB requests sent (each attempt of the HTTP client is one) */
    uint64_t s3_requests;  /* S3 requests sent: PUT (a multipart upload: parts + 2), HEAD, GET */
};
void pipeline_get_stats(const struct pipeline *p, struct pipeline_stats *out);

/* Command-line helpers (no loop, no network): they read and write files under spool_dir. */
/* Print the operator's status (spool depth and age, status.json of the running pipeline). */
MUST_CHECK int pipeline_cli_status(const char *spool_dir, bool json);
/* List FAILED objects recorded by the pipeline (latest outcome per SOP Instance UID and hash). */
MUST_CHECK int pipeline_cli_failed_list(const char *spool_dir, bool json);
/* Ask for a re-drive of FAILED objects: every one when sop is NULL, else that SOP Instance UID.
 * The running (or next) pipeline fetches each from S3 back into the spool and imports it anew.
 * Returns how many were requested, or < 0. */
MUST_CHECK int pipeline_cli_redrive(const char *spool_dir, const char *sop);

#endif
