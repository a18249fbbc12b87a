/* retrieve: what C-GET and C-MOVE share (svc_get.c, svc_move.c). Two steps:
 *  - the plan (retrieve_plan.c): the retrieve identifier's unique keys expanded into the
 *    instances to send, by hierarchical searches of the backend (study -> series -> image),
 *    every one inside the client's read scope;
 *  - the run (retrieve.c): the sub-operations, one at a time: fetch an instance from the
 *    backend, stream it into a C-STORE-RQ on a given association (the requestor's own for C-GET,
 *    a sub-association for C-MOVE) on a context where the receiver takes the SCP role and
 *    accepted a transfer syntax we can send, await the C-STORE-RSP, count. Memory stays bounded
 *    whatever the object's size: the backend pauses while the association's output queue is
 *    above ASSOC_OUT_HIGH. */
#ifndef GW_RETRIEVE_H
#define GW_RETRIEVE_H

#include <stdbool.h>
#include <stdint.h>

#include "qr.h"

/* The sub-operation counts are 16-bit (PS3.7 9.1.3.1): a retrieve plans at most this many. */
#define RETRIEVE_MAX 65535u

struct retrieve_item {
    char study[65], series[65], sop[65], sop_class[65];
    char ts[65]; /* the stored transfer syntax when the backend says ((0008,3002)), else "" */
    char patient[65]; /* its Patient ID when the backend says, else "" (the audit trail's) */
};

struct retrieve_list {
    struct retrieve_item *v;
    size_t n, cap;
};
void retrieve_list_free(struct retrieve_list *l);

/* ---- the plan ----------------------------------------------------------------------------- */

/* Are the studies the identifier names (Study Instance UID at STUDY level and below) inside the
 * scope? A retrieve that names one outside it is refused whole (0124, docs/conformance.md). */
bool retrieve_in_scope(const struct dcm_query *q, const struct qr_scope *scope);

/* The end of a plan: err 0 (out complete, possibly empty), ERR_LIMIT (more than RETRIEVE_MAX
 * instances, or a search hit the backend's cap: the count cannot be known), or another error
 * with why. */
typedef void (*retrieve_plan_cb)(void *arg, int err, const char *why);
struct retrieve_plan;

/* Expand q (a C-GET / C-MOVE query) into *out. q, scope and out are borrowed until cb or
 * retrieve_plan_cancel. 0 and *p (cb follows, never inside this call), 1 (nothing to search
 * under the identifier: out stays empty, no cb), or < 0 (no cb). */
MUST_CHECK int retrieve_plan_start(const struct backend_read_ops *ops, void *impl,
                                   const struct dcm_query *q, const struct qr_scope *scope,
                                   struct retrieve_list *out, retrieve_plan_cb cb, void *arg,
                                   struct retrieve_plan **p);
/* Stop now: no cb follows. */
void retrieve_plan_cancel(struct retrieve_plan *p);

/* ---- the run ------------------------------------------------------------------------------ */

struct retrieve_run;

enum retrieve_end {
    RETRIEVE_DONE = 0,      /* every sub-operation was attempted */
    RETRIEVE_CANCELLED = 1, /* C-CANCEL: stopped after the sub-operation in progress */
    RETRIEVE_LOST = 2,      /* the target association ended: the rest counted as failed */
};

struct retrieve_cbs {
    /* After each sub-operation (for a pending response). */
    void (*progress)(void *arg, const struct qr_counts *c);
    /* The end, once (unless retrieve_run_stop). retrieve_run_failed() is valid during it; the
     * run is freed when it returns. */
    void (*done)(void *arg, const struct qr_counts *c, enum retrieve_end how);
    void *arg;
};

struct retrieve_params {
    struct assoc *target; /* where the C-STORE sub-operations go */
    const struct backend_read_ops *ops;
    void *impl;
    const struct backend_read_scope *scope; /* borrowed for the run */
    const struct retrieve_list *list;       /* borrowed for the run */
    const char *move_originator;            /* C-MOVE: the requestor's AE title, else NULL */
    const struct assoc *requestor; /* C-MOVE: the request's association (audit), else NULL */
    uint16_t move_originator_id;            /* ... and its C-MOVE-RQ's Message ID */
};

/* Start the sub-operations. 0 and *out (callbacks follow, never inside this call), or
 * ERR_NOMEM. */
MUST_CHECK int retrieve_run_start(const struct retrieve_params *p, const struct retrieve_cbs *cbs,
                                  struct retrieve_run **out);
/* C-CANCEL: no new sub-operation; done(CANCELLED) once the one in progress has ended. */
void retrieve_run_cancel(struct retrieve_run *r);
/* The target association ended (its ended callback): done(LOST) follows at once. */
void retrieve_run_lost(struct retrieve_run *r);
/* The owner goes (the association's end, or the target's): stop now, no callback follows.
 * Call it while the target association still exists (in a gone hook or an ended callback). */
void retrieve_run_stop(struct retrieve_run *r);
/* The Failed SOP Instance UID List (0008,0058) of the sub-operations that failed, as one
 * backslash-separated value (capped: it must fit a UI element, PS3.5 7.1.2). */
const char *retrieve_run_failed(const struct retrieve_run *r);

/* The final status of a retrieve from its counts (PS3.4 C.4.2.1.5 / C.4.3.1.4): 0000 when none
 * failed, B000 when some did, A702 when all did (none completed), FE00 when cancelled. */
uint16_t retrieve_final_status(const struct qr_counts *c, enum retrieve_end how);

/* ---- the operation: what a C-GET and a C-MOVE request share ------------------------------- */

struct retrieve_op;

/* What differs between C-GET and C-MOVE: where the sub-operations go. */
struct retrieve_kind {
    const char *event; /* the log event of the end: "c_get", "c_move" */
    enum qr_kind qr;
    /* The instances are planned (op->list.n > 0): open the target, then retrieve_op_run, or
     * retrieve_op_fail_all. */
    void (*planned)(struct retrieve_op *op);
    /* C-CANCEL while planned() is opening the target (NULL: nothing to do). */
    void (*cancel)(struct retrieve_op *op);
    /* The requestor's association ended: let go of the target (NULL: nothing to do). */
    void (*gone)(struct retrieve_op *op);
    /* The sub-operations ended, before the final response (NULL: nothing to do). */
    void (*run_done)(struct retrieve_op *op);
};

/* Embedded first in the kind's own operation (svc_get.c, svc_move.c). */
struct retrieve_op {
    struct qr_op qr; /* first: the request, identifier, scope */
    const struct retrieve_kind *kind;
    struct retrieve_plan *plan;
    struct retrieve_list list;
    struct retrieve_run *run;
    struct qr_counts c;
    int holds; /* the kind's outstanding callbacks (a sub-association's end): keep op */
};

/* Set up op (calloc'd by the kind, at least sizeof *op) for rq (checked with qr_op_check);
 * its hooks are ours. */
void retrieve_op_init(struct retrieve_op *op, const struct retrieve_kind *kind,
                      struct assoc *a, const struct dimse_request *rq, enum dcm_qr_model model);
/* Run the sub-operations on target (C-MOVE: with the requestor as move originator). */
void retrieve_op_run(struct retrieve_op *op, struct assoc *target, bool move);
/* Every planned instance failed (the target could not be reached): the final response. */
void retrieve_op_fail_all(struct retrieve_op *op, const char *why);
/* The final response (status from the standard's table, counts unless none were planned). */
void retrieve_op_finish(struct retrieve_op *op, uint16_t status, const char *comment);
/* The kind's hold is over (its sub-association ended): free op if nothing else keeps it. */
void retrieve_op_unhold(struct retrieve_op *op);

#endif
