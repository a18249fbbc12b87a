/* assoc_dimse: DT-2 / AR-6 for the acceptor. P-DATA-TF PDUs are taken apart into PDVs; command
 * fragments are reassembled (bounded) and routed: a request to the service that accepted its
 * context (dimse_service.h), a C-CANCEL-RQ to the operation it names, a response to whoever
 * sent the request. Dataset fragments go to the operation in progress, with backpressure.
 * Also the API services use to answer (dimse_service.h, "what an association offers"). */
#include "assoc_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core_ctx.h"

/* ---- output ------------------------------------------------------------------------------ */

/* P-DATA out: one message part, fragmented to the peer's maximum length. An empty non-last
 * part sends nothing. */
static int send_message(struct assoc *a, uint8_t pctx, bool is_command, const uint8_t *p,
                        size_t n, bool last)
{
    size_t chunk = n ? n : 1;
    if (a->peer_max) /* >= UL_MIN_PDV_PDU (negotiation refused less) */
        chunk = a->peer_max - 6; /* a PDV item's header is 6 bytes */
    size_t off = 0;
    if (n == 0 && !last)
        return 0;
    do {
        size_t k = n - off < chunk ? n - off : chunk;
        struct wbuf b;
        wbuf_init(&b, k + 64);
        if (ul_encode_pdata(&b, pctx, is_command, last && off + k == n, p + off, k) < 0) {
            wbuf_cleanup(&b);
            return ERR_NOMEM;
        }
        TRY(assoc_send_wbuf(a, &b));
        off += k;
    } while (off < n);
    return 0;
}

int assoc_send_cmd(struct assoc *a, uint8_t pctx, const struct dimse_cmd *c)
{
    if (a->closing || a->st == STA13)
        return ERR_WRONG_STATE;
    struct wbuf b;
    wbuf_init(&b, DIMSE_CMD_MAX);
    int rc = dimse_encode_cmd(&b, c);
    if (rc == 0)
        rc = send_message(a, pctx, true, b.p, b.len, true);
    wbuf_cleanup(&b);
    if (rc == 0)
        a->out_open = c->data_set_type != DIMSE_NO_DATASET;
    if (rc < 0 && !a->closing)
        assoc_close(a, "cannot send a command");
    return rc;
}

int assoc_send_data(struct assoc *a, uint8_t pctx, const uint8_t *p, size_t n, bool last)
{
    if (a->closing || a->st == STA13)
        return ERR_WRONG_STATE;
    int rc = send_message(a, pctx, false, p, n, last);
    if (rc == 0 && last)
        a->out_open = false;
    if (rc < 0 && !a->closing)
        assoc_close(a, "cannot send a dataset");
    return rc;
}

static bool is_failure(uint16_t st)
{
    return st != DIMSE_SUCCESS && st != DIMSE_PENDING && st != DIMSE_PENDING_WARNING &&
           st != DIMSE_CANCEL && (st & 0xF000) != 0xB000 && st != 0x0001 && st != 0x0107 &&
           st != 0x0116;
}

int assoc_respond(struct assoc *a, const struct dimse_request *rq, uint16_t status,
                  const char *comment)
{
    if (is_failure(status)) {
        a->failures++;
        core_count_failure(a->ctx, status);
    }
    struct dimse_cmd rsp;
    dimse_rsp_init(&rsp, rq->cmd, status);
    if (comment && is_failure(status))
        dimse_set_comment(&rsp, comment);
    return assoc_send_cmd(a, rq->pctx->id, &rsp);
}

uint16_t assoc_next_msg_id(struct assoc *a)
{
    a->next_msg_id = (uint16_t)(a->next_msg_id + 1);
    if (a->next_msg_id == 0)
        a->next_msg_id = 1;
    return a->next_msg_id;
}

int assoc_expect_rsp(struct assoc *a, uint16_t msg_id, assoc_rsp_cb cb, void *arg)
{
    if (a->closing)
        return ERR_WRONG_STATE;
    struct rsp_wait *w = calloc(1, sizeof *w);
    if (!w)
        return ERR_NOMEM;
    w->msg_id = msg_id;
    w->cb = cb;
    w->arg = arg;
    w->next = a->waits;
    a->waits = w;
    return 0;
}

/* ---- the service API ---------------------------------------------------------------------- */

void assoc_who(const struct assoc *a, struct assoc_who *out)
{
    out->id = a->id;
    out->calling = a->calling;
    out->called = a->called;
    out->peer = a->peer;
    out->cert_cn = a->cert_cn;
    out->cert_fp = a->cert_fp;
    out->client_id = a->client_id;
    out->grants = a->grants;
    out->requestor = a->out != NULL;
    out->tls = a->tls != NULL || a->proxy_ssl;
}

struct core_ctx *assoc_ctx(const struct assoc *a)
{
    return a->ctx;
}

const struct core_config *assoc_cfg(const struct assoc *a)
{
    return a->cfg;
}

size_t assoc_find_pctxs(const struct assoc *a, const char *abstract, bool peer_scp,
                        struct pctx_info *out, size_t max)
{
    size_t n = 0;
    for (unsigned id = 1; id < 256 && n < max; id += 2) {
        const struct pctx_entry *e = &a->pctx[id];
        if (e->accepted && e->peer_scp == peer_scp && strcmp(e->abstract, abstract) == 0)
            out[n++] = (struct pctx_info){.id = (uint8_t)id, .abstract = e->abstract,
                                          .ts = e->ts, .peer_scp = e->peer_scp};
    }
    return n;
}

int assoc_find_pctx(const struct assoc *a, const char *abstract, bool peer_scp,
                    struct pctx_info *out)
{
    return assoc_find_pctxs(a, abstract, peer_scp, out, 1) ? 0 : ERR_NOTFOUND;
}

struct assoc *assoc_find_for_request(struct core_ctx *ctx, uint64_t id, const char *calling,
                                     const char *abstract, struct pctx_info *pctx)
{
    for (struct assoc *a = ctx->assocs; a; a = a->next) {
        if (id ? a->id != id : strcmp(a->calling, calling) != 0)
            continue;
        if (a->closing || a->st != STA6 || a->release_wanted || a->out_open || a->waits ||
            assoc_find_pctx(a, abstract, false, pctx) < 0)
            continue;
        return a;
    }
    return NULL;
}

void assoc_pause(struct assoc *a)
{
    a->paused = true;
}

void assoc_resume(struct assoc *a)
{
    if (a->closing || !a->paused)
        return;
    a->paused = false;
    if (!a->in_process)
        assoc_process(a);
}

void assoc_count_object(struct assoc *a)
{
    a->objects++;
}

void assoc_op_done(struct assoc *a, struct svc_op *op)
{
    if (a->op != op)
        return;
    a->op = NULL;
    assoc_idle(a);
    assoc_resume(a);
}

void assoc_abort(struct assoc *a, const char *why)
{
    if (!a->closing && a->st != STA13)
        assoc_send_abort(a, UL_ABORT_SRC_PROVIDER, UL_ABORT_NOT_SPECIFIED, why);
}

bool assoc_is_closing(const struct assoc *a)
{
    return a->closing || a->st == STA13;
}

bool assoc_dimse_idle(const struct assoc *a)
{
    return !a->in_dataset && !a->op && !a->answer_due && a->cmd.len == 0;
}

void assoc_dimse_end(struct assoc *a)
{
    struct svc_op *op = a->op;
    a->op = NULL;
    a->in_dataset = false;
    a->answer_due = false;
    if (op)
        op->hooks->gone(op);
    struct rsp_wait *w = a->waits;
    a->waits = NULL;
    while (w) {
        struct rsp_wait *next = w->next;
        w->cb(w->arg, NULL);
        free(w);
        w = next;
    }
}

/* ---- input -------------------------------------------------------------------------------- */

static bool any_service_handles(const struct assoc *a, uint16_t field)
{
    for (unsigned id = 1; id < 256; id += 2) {
        const struct dimse_service *s = a->pctx[id].svc;
        for (size_t i = 0; s && s->commands[i]; i++) {
            if (s->commands[i] == field)
                return true;
        }
    }
    return false;
}

static bool handles(const struct dimse_service *s, uint16_t field)
{
    for (size_t i = 0; s && s->commands[i]; i++) {
        if (s->commands[i] == field)
            return true;
    }
    return false;
}

/* A response from the peer to one of our requests. */
static void take_response(struct assoc *a, bool has_ds)
{
    struct rsp_wait **pw = &a->waits;
    while (*pw && (*pw)->msg_id != a->req.message_id_rsp)
        pw = &(*pw)->next;
    if (!a->req.has_message_id_rsp || !*pw) {
        assoc_violation(a, UL_ABORT_UNEXPECTED_PARAM, "response to no request of ours");
        return;
    }
    struct rsp_wait *w = *pw;
    *pw = w->next;
    if (has_ds) {
        a->in_dataset = true; /* a response's dataset is not used: skipped */
        a->skip_dataset = true;
    }
    w->cb(w->arg, &a->req);
    free(w);
}

/* A request no service takes on: answered with status after its dataset, if any. */
static void answer(struct assoc *a, bool has_ds, uint16_t status, const char *comment)
{
    if (has_ds) {
        a->in_dataset = true; /* the response follows the dataset */
        a->skip_dataset = true;
        a->answer_due = true;
        a->pending_status = status;
        a->pending_comment = comment;
        return;
    }
    if (assoc_respond(a, &a->rq, status, comment) == 0)
        assoc_idle(a);
}

/* A command set is complete: act on it. */
static void handle_command(struct assoc *a)
{
    if (a->closing)
        return;
    struct rd r = rd_make(a->cmd.p, a->cmd.len);
    int rc = dimse_parse_cmd(&r, &a->req);
    wbuf_reset(&a->cmd);
    if (rc < 0 || !a->req.has_command_field || !a->req.has_data_set_type) {
        assoc_violation(a, UL_ABORT_INVALID_PARAM, "malformed DIMSE command set");
        return;
    }
    bool has_ds = a->req.data_set_type != DIMSE_NO_DATASET;
    if (dimse_is_response(a->req.command_field)) {
        take_response(a, has_ds);
        return;
    }
    if (a->req.command_field == DIMSE_C_CANCEL_RQ) {
        /* PS3.7 9.3.2.3: no Message ID of its own (Message ID Being Responded To names the
         * operation), and no response */
        struct svc_op *op = a->op;
        if (op && a->req.has_message_id_rsp && a->req.message_id_rsp == op->msg_id &&
            op->hooks->cancel)
            op->hooks->cancel(op);
        if (has_ds) {
            a->in_dataset = true;
            a->skip_dataset = true;
        }
        return;
    }
    if (!a->req.has_message_id) {
        assoc_violation(a, UL_ABORT_INVALID_PARAM, "malformed DIMSE command set");
        return;
    }
    if (a->op) {
        assoc_violation(a, UL_ABORT_UNEXPECTED_PARAM, "request while another is in progress");
        return;
    }
    const struct pctx_entry *e = &a->pctx[a->cmd_pctx];
    a->req_pctx = (struct pctx_info){.id = a->cmd_pctx, .abstract = e->abstract, .ts = e->ts,
                                     .peer_scp = e->peer_scp};
    a->rq = (struct dimse_request){.cmd = &a->req, .pctx = &a->req_pctx, .has_dataset = has_ds};
    a->skip_dataset = false;
    if (!handles(e->svc, a->req.command_field)) {
        if (any_service_handles(a, a->req.command_field))
            answer(a, has_ds, DIMSE_SOP_CLASS_NOT_SUPPORTED,
                   "operation not offered for this context's SOP class");
        else
            answer(a, has_ds, DIMSE_UNRECOGNIZED_OPERATION, "operation not supported");
        return;
    }
    struct svc_op *op = NULL;
    uint16_t status = DIMSE_SUCCESS;
    const char *comment = NULL;
    e->svc->request(a, &a->rq, &op, &status, &comment);
    if (a->closing || a->st == STA13)
        return;
    if (!op) {
        answer(a, has_ds, status, comment);
        return;
    }
    op->a = a;
    op->msg_id = a->req.message_id;
    op->pctx = a->cmd_pctx;
    a->op = op;
    if (has_ds)
        a->in_dataset = true;
    else
        op->hooks->data_end(op);
}

/* A dataset PDV. false: stop taking the PDU. */
static bool take_data(struct assoc *a, const struct ul_pdv *pdv)
{
    if (!a->in_dataset || pdv->pctx_id != a->cmd_pctx) {
        assoc_violation(a, UL_ABORT_UNEXPECTED_PARAM, "dataset PDV without a command");
        return false;
    }
    struct svc_op *op = a->skip_dataset ? NULL : a->op;
    if (op)
        op->hooks->data(op, pdv->data.p, pdv->data.len);
    if (!pdv->is_last)
        return true;
    a->in_dataset = false;
    if (op) {
        op->hooks->data_end(op);
    } else if (a->answer_due) {
        a->answer_due = false;
        if (assoc_respond(a, &a->rq, a->pending_status, a->pending_comment) == 0)
            assoc_idle(a);
    }
    a->skip_dataset = false;
    /* a response may have closed the association (a peer that does not read): then nothing
     * more of this PDU is taken, or a new operation would have no owner */
    return !(a->closing || a->st == STA13);
}

bool assoc_handle_pdata(struct assoc *a, struct rd *body)
{
    /* backpressure: the whole PDU must fit the operation's buffers before any of it is taken */
    struct svc_op *op = a->op;
    if (op && a->in_dataset && !a->skip_dataset && op->hooks->can_take &&
        !op->hooks->can_take(op, rd_left(body))) {
        a->paused = true; /* the operation calls assoc_resume */
        return false;
    }
    if (rd_left(body) == 0) { /* PS3.8 9.3.5: one or more PDV items */
        assoc_violation(a, UL_ABORT_INVALID_PARAM, "P-DATA-TF without PDV items");
        return false;
    }
    struct ul_pdv pdv;
    int rc;
    while ((rc = ul_next_pdv(body, &pdv)) == 1) {
        const struct pctx_entry *e = &a->pctx[pdv.pctx_id];
        if (!e->accepted || pdv.pctx_id % 2 == 0) {
            assoc_violation(a, UL_ABORT_INVALID_PARAM, "PDV on a context that was not accepted");
            return false;
        }
        if (!pdv.is_command) {
            if (!take_data(a, &pdv))
                return false;
            continue;
        }
        if (a->in_dataset) {
            assoc_violation(a, UL_ABORT_UNEXPECTED_PARAM, "command PDV while a dataset was due");
            return false;
        }
        if (a->cmd.len > 0 && pdv.pctx_id != a->cmd_pctx) {
            assoc_violation(a, UL_ABORT_INVALID_PARAM, "command fragments on different contexts");
            return false;
        }
        a->cmd_pctx = pdv.pctx_id;
        wbuf_put(&a->cmd, pdv.data.p, pdv.data.len);
        if (a->cmd.err) {
            assoc_violation(a, UL_ABORT_INVALID_PARAM, "command set too large");
            return false;
        }
        if (pdv.is_last) {
            handle_command(a);
            if (a->closing || a->st == STA13)
                return false;
        }
    }
    if (rc < 0) {
        assoc_violation(a, UL_ABORT_INVALID_PARAM, "malformed PDV item");
        return false;
    }
    return !a->paused;
}
