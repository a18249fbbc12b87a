/* svc_move: the Query/Retrieve MOVE SOP classes as SCP (PS3.4 C.4.2), Patient Root and Study
 * Root. The Move Destination is an AE title of the configuration's "ae_peers" (unknown: A801);
 * the core opens a sub-association to it (assoc_connect; TLS with "client_tls" when the peer
 * says so: a destination on the hospital network is an edge's reverse port), proposing for each
 * SOP class to send one context of the uncompressed syntaxes and one per stored syntax, and
 * runs the sub-operations there (retrieve.c), the pending C-MOVE responses going back on the
 * requestor's association. The rest is shared with C-GET (retrieve_op.c). */
#include "svc_move.h"

#include <stdlib.h>
#include <string.h>

#include "assoc.h"
#include "common/log.h"
#include "common/ul.h"
#include "core_ctx.h"
#include "retrieve.h"

struct move_op {
    struct retrieve_op r; /* first */
    struct core_peer peer;
    struct assoc *sub; /* once ready, until ended */
};

static bool serves(const struct core_config *cfg, const char *abstract)
{
    (void)cfg;
    return qr_model(abstract, QR_MOVE, NULL);
}

/* Add a context for abstract with ts[] unless an equal one is there; false when full. */
static bool propose(struct assoc_propose *c, size_t *n, const char *abstract,
                    const char *const *ts, size_t n_ts)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(c[i].abstract, abstract) == 0 && strcmp(c[i].ts[0], ts[0]) == 0)
            return true;
    }
    if (*n >= UL_MAX_PCTX)
        return false;
    struct assoc_propose *p = &c[(*n)++];
    memset(p, 0, sizeof *p);
    p->abstract = abstract;
    for (size_t i = 0; i < n_ts && i < ARRAY_LEN(p->ts) - 1; i++)
        p->ts[i] = ts[i];
    return true;
}

static void on_ready(void *arg, struct assoc *a)
{
    struct move_op *m = arg;
    m->sub = a;
    if (m->r.qr.gone) {
        assoc_abort(a, "C-MOVE requestor gone");
        return;
    }
    if (m->r.qr.cancelled) {
        assoc_release(a);
        retrieve_op_finish(&m->r, DIMSE_CANCEL, NULL);
        return;
    }
    retrieve_op_run(&m->r, a, true);
}

static void on_ended(void *arg, int err, const char *why)
{
    struct move_op *m = arg;
    m->sub = NULL;
    if (!m->r.qr.ended && !m->r.qr.gone) {
        if (m->r.run) {
            retrieve_run_lost(m->r.run); /* the final response comes from the run's end */
        } else if (m->r.qr.cancelled) {
            retrieve_op_finish(&m->r, DIMSE_CANCEL, NULL);
        } else {
            struct logb lb;
            if (log_begin(&lb, LOG_WARN, "c_move_destination_failed")) {
                log_str(&lb, "destination", m->peer.ae);
                log_str(&lb, "err", err_str(err));
                log_str(&lb, "why", why ? why : "");
                log_end(&lb);
            }
            retrieve_op_fail_all(&m->r, "the move destination could not be reached");
        }
    }
    retrieve_op_unhold(&m->r);
}

static void planned(struct retrieve_op *op)
{
    struct move_op *m = (struct move_op *)op;
    struct core_ctx *ctx = assoc_ctx(op->qr.base.a);
    const struct core_config *cfg = assoc_cfg(op->qr.base.a);
    static const char *const uncompressed[] = {TS_EXPLICIT_LE, TS_IMPLICIT_LE};
    struct assoc_propose *c = calloc(UL_MAX_PCTX, sizeof *c);
    size_t n = 0;
    if (!c) {
        retrieve_op_fail_all(op, "out of memory");
        return;
    }
    /* every SOP class first (uncompressed: what we can always send or transcode to), then a
     * context per stored syntax that is not among those, while there is room (PS3.8 9.3.2.2:
     * at most 128) */
    for (size_t i = 0; i < op->list.n; i++)
        (void)propose(c, &n, op->list.v[i].sop_class, uncompressed, 2);
    for (size_t i = 0; i < op->list.n; i++) {
        const char *ts = op->list.v[i].ts;
        if (ts[0] && strcmp(ts, TS_EXPLICIT_LE) != 0 && strcmp(ts, TS_IMPLICIT_LE) != 0 &&
            ts_find(ts) && !propose(c, &n, op->list.v[i].sop_class, (const char *const[]){ts}, 1))
            break;
    }
    struct assoc_connect_opts o = {
        .host = m->peer.host,
        .port = m->peer.port,
        .tls = m->peer.tls ? ctx->client_tls : NULL,
        .tls_host = m->peer.server_name[0] ? m->peer.server_name : NULL,
        .calling = cfg->ae_title,
        .called = m->peer.ae,
        .contexts = c,
        .n_contexts = n,
    };
    struct assoc_connect_cbs cbs = {.ready = on_ready, .ended = on_ended, .arg = m};
    int rc = m->peer.tls && !ctx->client_tls ? ERR_CONFIG : assoc_connect(ctx, &o, &cbs);
    free(c);
    if (rc < 0) {
        retrieve_op_fail_all(op, rc == ERR_CONFIG ? "no client_tls for a TLS move destination"
                                                  : "the move destination could not be reached");
        return;
    }
    op->holds++; /* on_ended comes, exactly once */
}

static void cancel(struct retrieve_op *op)
{
    (void)op; /* still connecting: on_ready releases and answers FE00 */
}

static void gone(struct retrieve_op *op)
{
    struct move_op *m = (struct move_op *)op;
    if (m->sub)
        assoc_abort(m->sub, "C-MOVE requestor gone");
}

static void run_done(struct retrieve_op *op)
{
    struct move_op *m = (struct move_op *)op;
    if (m->sub)
        assoc_release(m->sub);
}

static const struct retrieve_kind kind = {
    .event = "c_move",
    .qr = QR_MOVE,
    .planned = planned,
    .cancel = cancel,
    .gone = gone,
    .run_done = run_done,
};

static void request(struct assoc *a, const struct dimse_request *rq, struct svc_op **out,
                    uint16_t *status, const char **comment)
{
    *out = NULL;
    enum dcm_qr_model model;
    if (qr_op_check(a, rq, QR_MOVE, &model, status, comment) < 0)
        return;
    const struct core_peer *peer = core_config_peer(assoc_cfg(a), rq->cmd->move_destination);
    if (!peer) { /* PS3.4 C.4.2.1.5: refused, move destination unknown */
        *status = DIMSE_MOVE_DEST_UNKNOWN;
        *comment = "move destination unknown (not in ae_peers)";
        return;
    }
    struct move_op *m = calloc(1, sizeof *m);
    if (!m) {
        *status = DIMSE_RETRIEVE_OUT_OF_RESOURCES;
        *comment = "out of memory";
        return;
    }
    m->peer = *peer;
    retrieve_op_init(&m->r, &kind, a, rq, model);
    *out = &m->r.qr.base;
}

const struct dimse_service svc_move = {
    .name = "move",
    .grant = GRANT_MOVE,
    .commands = {DIMSE_C_MOVE_RQ, 0},
    .serves = serves,
    .uncompressed_only = true,
    .request = request,
};
