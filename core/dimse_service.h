/* dimse_service: the table of DIMSE services the SCP offers, and the association API a service
 * uses. Each service (C-ECHO, C-STORE, ...) is a file of its own that fills one struct
 * dimse_service; services.c lists them. The association (assoc*.c) knows nothing of any
 * service: it asks the table which presentation contexts to accept and hands each request to
 * the service that accepted its context.
 *
 * A request either is answered at once (the service returns no operation and a status; the
 * association discards the request's dataset, if any, then sends that status), or becomes an
 * operation (struct svc_op) that the service owns: the association feeds it the request's
 * dataset, a C-CANCEL-RQ and the end of the association; the service sends its responses
 * (pending ones, sub-operations, the final one) through the assoc_* calls below and then calls
 * assoc_op_done. One operation at a time per association (asynchronous operations window 1). */
#ifndef GW_DIMSE_SERVICE_H
#define GW_DIMSE_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/grants.h"
#include "core_config.h"
#include "dimse.h"
#include "ts.h"

struct assoc;
struct core_ctx;
struct svc_op;

/* An accepted presentation context. */
struct pctx_info {
    uint8_t id;
    const char *abstract;
    const struct ts_info *ts;
    bool peer_scp; /* role selection: the peer acts as SCP (we are the SCU) on this context */
};

/* A request command set, complete, on an accepted context. */
struct dimse_request {
    const struct dimse_cmd *cmd;
    const struct pctx_info *pctx;
    bool has_dataset;
};

struct svc_op_hooks {
    /* Can the operation take n more dataset bytes now? false: the association stops reading
     * until assoc_resume. NULL: always. */
    bool (*can_take)(struct svc_op *op, size_t n);
    /* Dataset bytes of the request (borrowed for the call). */
    void (*data)(struct svc_op *op, const uint8_t *p, size_t n);
    /* The request's dataset is complete (also called, with no data before it, for a request
     * without a dataset). */
    void (*data_end)(struct svc_op *op);
    /* A C-CANCEL-RQ named this operation (PS3.7 9.3.2.3). NULL: ignored. */
    void (*cancel)(struct svc_op *op);
    /* The association is ending: stop everything and free op; no assoc_* call may follow. */
    void (*gone)(struct svc_op *op);
};

/* The part of an operation the association sees; services embed it first in their own. */
struct svc_op {
    const struct svc_op_hooks *hooks;
    struct assoc *a;
    uint16_t msg_id;   /* the request's Message ID */
    uint8_t pctx;      /* the request's context */
};

struct dimse_service {
    const char *name;
    /* The grant a client needs for it (common/grants.h): its contexts are rejected otherwise. */
    uint32_t grant;
    /* The request command fields this service handles, 0-terminated. */
    uint16_t commands[4];
    /* Negotiation: is abstract syntax uid served (as SCP) by this service? */
    bool (*serves)(const struct core_config *cfg, const char *abstract);
    /* Negotiation: may the peer take the SCP role for abstract (we then act as SCU on it, e.g.
     * C-STORE sub-operations of a C-GET), given the client's grants? NULL: never. */
    bool (*peer_scp)(const struct core_config *cfg, const char *abstract, struct grants g);
    /* Only uncompressed transfer syntaxes on this service's contexts (commands and
     * identifiers carry no pixel data). */
    bool uncompressed_only;
    /* A request. Either *op (registered by the association; the service answers later), or
     * NULL and *status / *comment: the association answers after the dataset, if any. */
    void (*request)(struct assoc *a, const struct dimse_request *rq, struct svc_op **op,
                    uint16_t *status, const char **comment);
};

/* The table (services.c). */
const struct dimse_service *services_serving(const struct core_config *cfg, const char *abstract);
bool services_peer_scp(const struct core_config *cfg, const char *abstract, struct grants g);

/* ---- what an association offers its services ------------------------------------------------ */

struct assoc_who {
    uint64_t id;
    const char *calling, *called, *peer;
    const char *cert_cn, *cert_fp, *client_id; /* "" when unknown */
    struct grants grants; /* from the edge (PROXY v2), else the core's per-calling-AE settings */
    bool requestor;       /* we opened it (calling is ours, called the peer's) */
    bool tls;             /* the peer came over TLS: to our listener, or to the edge (PROXY v2) */
};
void assoc_who(const struct assoc *a, struct assoc_who *out);
struct core_ctx *assoc_ctx(const struct assoc *a);
const struct core_config *assoc_cfg(const struct assoc *a);
/* An accepted context by abstract syntax where the peer took the SCP role (peer_scp) or not.
 * 0 and *out, or ERR_NOTFOUND. */
MUST_CHECK int assoc_find_pctx(const struct assoc *a, const char *abstract, bool peer_scp,
                               struct pctx_info *out);
/* Every accepted context for abstract with that role (a peer may propose one abstract syntax
 * in several contexts, one transfer syntax each), in context-id order, up to max into out.
 * Returns how many. */
size_t assoc_find_pctxs(const struct assoc *a, const char *abstract, bool peer_scp,
                        struct pctx_info *out, size_t max);

/* Send a command set (and, when it announces one, follow it with assoc_send_data). 0 or < 0:
 * the association is then closing, and the gone hook of its operation has already run (an
 * operation whose send failed must not touch itself again). */
MUST_CHECK int assoc_send_cmd(struct assoc *a, uint8_t pctx, const struct dimse_cmd *c);
/* Send dataset bytes of the message begun by the last assoc_send_cmd on pctx; last ends it. */
MUST_CHECK int assoc_send_data(struct assoc *a, uint8_t pctx, const uint8_t *p, size_t n,
                               bool last);
/* The final or a pending response to op's request: status, comment; no dataset. */
MUST_CHECK int assoc_respond(struct assoc *a, const struct dimse_request *rq, uint16_t status,
                             const char *comment);
/* Bytes queued for the peer and not yet written; a producer waits below the high mark. */
size_t assoc_out_queued(const struct assoc *a);
#define ASSOC_OUT_HIGH (512u * 1024u)
/* cb(arg) once the queue is below ASSOC_OUT_HIGH / 2 (one-shot; not after the end). */
void assoc_on_out_room(struct assoc *a, void (*cb)(void *arg), void *arg);
/* A fresh Message ID for a request we send. */
uint16_t assoc_next_msg_id(struct assoc *a);
/* cb(arg, rsp) when the response to our request msg_id arrives (its dataset, if any, is
 * skipped), or cb(arg, NULL) when the association ends first. */
typedef void (*assoc_rsp_cb)(void *arg, const struct dimse_cmd *rsp);
MUST_CHECK int assoc_expect_rsp(struct assoc *a, uint16_t msg_id, assoc_rsp_cb cb, void *arg);
/* An established association that can carry a request of ours now (a Storage Commitment
 * report): the one numbered id when id != 0, else any association from calling AE title
 * calling; it must have an accepted context for abstract on which we are the SCP (the peer is
 * the SCU: peer_scp false), be neither closing nor releasing, have no message of ours half sent
 * and no request of ours awaiting its response (PS3.7 asynchronous operations window 1). *pctx
 * gets that context. NULL when there is none. */
struct assoc *assoc_find_for_request(struct core_ctx *ctx, uint64_t id, const char *calling,
                                     const char *abstract, struct pctx_info *pctx);
/* Stop taking input until assoc_resume (a request answered in order, after work of ours). */
void assoc_pause(struct assoc *a);
/* After can_take said no, or after assoc_pause: read again. */
void assoc_resume(struct assoc *a);
/* An object was stored (for the association's end-of-life log line). */
void assoc_count_object(struct assoc *a);
/* The operation sent its final response: the association takes the next request. */
void assoc_op_done(struct assoc *a, struct svc_op *op);
/* Give up: A-ABORT (service-provider) and close. */
void assoc_abort(struct assoc *a, const char *why);
bool assoc_is_closing(const struct assoc *a);

#endif
