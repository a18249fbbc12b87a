/* core_ctx: the runtime shared by the listener and its associations, all on the one loop. */
#ifndef GW_CORE_CTX_H
#define GW_CORE_CTX_H

#include <stdbool.h>
#include <stdint.h>
#include <openssl/types.h>
#include <uv.h>

#include "core_config.h"
#include "net/metrics.h"
#include "common/preassoc.h"
#include "spool/spool.h"
#include "spool/spool_commit.h"

struct backend;
struct assoc;
struct commit_mgr;
struct core_audit;

struct core_metrics {
    struct metric_counter *assoc_accepted, *assoc_rejected, *assoc_aborted, *assoc_released;
    struct metric_gauge *assoc_active, *spool_depth, *spool_bytes;
    struct metric_counter *objects, *bytes, *echoes, *pdu_aborts_sent;
};

struct core_ctx {
    uv_loop_t *loop;
    const struct core_config *cfg; /* replaced on SIGHUP; associations keep the one they began with */
    struct spool spool;
    struct spool_committer *committer;
    struct backend *backend;
    SSL_CTX *tls; /* the DICOM listener's TLS context (cfg "tls"), NULL for plain TCP */
    SSL_CTX *client_tls; /* for associations we open (cfg "client_tls"), or NULL */
    struct metrics *metrics;
    struct core_metrics m;
    struct core_audit *audit; /* the audit trail (core_audit.h), or NULL when not configured */
    uint32_t active;     /* associations (connections) accepted and alive */
    uint32_t outbound;   /* associations we requested, alive */
    uint32_t established; /* accepted associations past A-ASSOCIATE-AC (max_associations) */
    struct preassoc preassoc; /* connections before their A-ASSOCIATE-RQ (preassoc_*) */
    uint64_t next_id;
    bool draining;
    struct assoc *assocs; /* intrusive list of live connections */
    void (*on_last_assoc)(struct core_ctx *ctx); /* drain: fired when none is left, either way */
    struct commit_mgr *commit; /* Storage Commitment transactions (commit_txn.h), or NULL */
};

/* core_metrics.c: register the core's metrics in ctx->metrics. 0 or ERR_NOMEM. */
MUST_CHECK int core_metrics_init(struct core_ctx *ctx);
/* Count a failure status by its hex code (labels made lazily). */
void core_count_failure(struct core_ctx *ctx, uint16_t status);

#endif
