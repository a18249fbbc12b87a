/* svc_get: the Query/Retrieve GET SOP classes as SCP (PS3.4 C.4.3), Patient Root and Study
 * Root. The sub-operations are C-STORE requests on the requestor's own association, on the
 * storage contexts where it took the SCP role (PS3.8 D.3.3.4 role selection, which peer_scp
 * grants to a client that may C-GET); the rest is shared with C-MOVE (retrieve_op.c). */
#include "svc_get.h"

#include <stdlib.h>

#include "retrieve.h"
#include "svc_store.h"

static bool serves(const struct core_config *cfg, const char *abstract)
{
    (void)cfg;
    return qr_model(abstract, QR_GET, NULL);
}

/* A C-GET client may receive what the store accepts: every storage SOP class it serves. */
static bool peer_scp(const struct core_config *cfg, const char *abstract, struct grants g)
{
    return (g.services & GRANT_GET) && svc_store.serves(cfg, abstract);
}

static void planned(struct retrieve_op *op)
{
    retrieve_op_run(op, op->qr.base.a, false);
}

static const struct retrieve_kind kind = {
    .event = "c_get",
    .qr = QR_GET,
    .planned = planned,
};

static void request(struct assoc *a, const struct dimse_request *rq, struct svc_op **out,
                    uint16_t *status, const char **comment)
{
    *out = NULL;
    enum dcm_qr_model model;
    if (qr_op_check(a, rq, QR_GET, &model, status, comment) < 0)
        return;
    struct retrieve_op *op = calloc(1, sizeof *op);
    if (!op) {
        *status = DIMSE_RETRIEVE_OUT_OF_RESOURCES;
        *comment = "out of memory";
        return;
    }
    retrieve_op_init(op, &kind, a, rq, model);
    *out = &op->qr.base;
}

const struct dimse_service svc_get = {
    .name = "get",
    .grant = GRANT_GET,
    .commands = {DIMSE_C_GET_RQ, 0},
    .serves = serves,
    .peer_scp = peer_scp,
    .uncompressed_only = true,
    .request = request,
};
