/* spool_backend: the interface every backend implements (the `file` store, the `aws` pipeline)
 * and the registry the program opens one through. A backend consumes the spool's ready entries
 * (spool.h) and reports when an entry reached the acknowledgement point. It sees the world only
 * through struct backend_env: never the SCP or its configuration. */
#ifndef GW_SPOOL_BACKEND_H
#define GW_SPOOL_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "common/wbuf.h"
#include "spool/spool.h"

struct metrics;
struct backend_read_ops;   /* spool/backend_read.h */
struct backend_commit_ops; /* spool/backend_commit.h */

/* Where a C-STORE success is decided (DESIGN.md invariant 1). */
enum spool_ack { SPOOL_ACK_SPOOL = 0, SPOOL_ACK_S3 = 1, SPOOL_ACK_HEALTHIMAGING = 2 };
const char *spool_ack_name(enum spool_ack a);

struct backend_env {
    uv_loop_t *loop;         /* the program's loop: every backend_ack_cb runs on it */
    struct spool *spool;
    enum spool_ack ack;
    bool fsync;              /* false only for benchmarks */
    struct metrics *metrics; /* may be NULL */
    const char *config_json; /* the configuration's "backend" object, as JSON text */
};

struct backend_stats {
    uint64_t stored, duplicates, failed, batches_closed;
    uint64_t last_error_at; /* unix seconds, 0 if none */
};

/* result 0 once the entry reached the ack point, < 0 when it cannot. A failure is of one of two
 * classes: refused == NULL, a passing one (outage, timeout: the SCP answers Out of Resources,
 * 0xA700, and the modality may send the object again); or refused != NULL, these bytes are
 * refused for good (e.g. HealthImaging refused them: the SCP answers a failure the modality
 * should not retry, 0xC000, with refused as the Error Comment: at most 64 characters, no data
 * values; borrowed for the call). */
typedef void (*backend_ack_cb)(void *arg, int result, const char *refused);

struct backend_ops {
    const char *name; /* the configuration's backend "type" */
    /* It keys its records on each object's SHA-256: the spool must compute it. */
    bool needs_sha256;
    /* Check the "backend" object (JSON text) against the ack point; one line per problem into
     * errs. 0 or ERR_CONFIG. */
    int (*check_config)(const char *config_json, enum spool_ack ack, struct wbuf *errs);
    /* Start: recover what a previous run left (journal, ready entries), then run. 0 and *impl,
     * or < 0 (logged by the backend). */
    int (*start)(const struct backend_env *env, void **impl);
    /* New entries are in ready/ (cheap, thread-safe). */
    void (*notify)(void *impl);
    /* cb(arg, result) on env->loop once spool entry id (already in ready/) reached env->ack. */
    void (*await)(void *impl, const char *id, backend_ack_cb cb, void *arg);
    void (*get_stats)(void *impl, struct backend_stats *out);
    /* Finish the step in progress, join threads, free impl. */
    void (*stop)(void *impl);
    /* The operator's subcommands (`dicom-core <cmd> ...`): returns the exit status, or -1 when
     * this backend has no such command. argv[0] is cmd. NULL: none at all. */
    int (*cli)(const char *cmd, int argc, char **argv, const char *spool_dir,
               const char *config_json);
    const char *cli_usage; /* lines for --help, or NULL */
    /* Reading back (C-FIND, C-GET, C-MOVE), or NULL when the backend cannot. */
    const struct backend_read_ops *read;
    /* Storage Commitment's questions, or NULL when the backend cannot answer them. */
    const struct backend_commit_ops *commit;
};


/* The registry: a NULL-terminated table of the backends a program is built with. */
const struct backend_ops *backend_find(const struct backend_ops *const *registry,
                                       const char *name);

struct backend;

/* Start the backend ops for env. 0 and *out, or the start's error. */
MUST_CHECK int backend_open(const struct backend_ops *ops, const struct backend_env *env,
                            struct backend **out);
void backend_notify(struct backend *b);
void backend_await(struct backend *b, const char *id, backend_ack_cb cb, void *arg);
void backend_get_stats(struct backend *b, struct backend_stats *out);
const char *backend_name(const struct backend *b);
/* The optional parts of an open backend (NULL when it has none), and its impl for their calls. */
const struct backend_read_ops *backend_read(const struct backend *b);
const struct backend_commit_ops *backend_commit(const struct backend *b);
void *backend_impl(const struct backend *b);
/* Stop and free. NULL is fine. */
void backend_stop(struct backend *b);

#endif
