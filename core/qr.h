/* qr: what the Query/Retrieve services share (svc_find.c, svc_get.c, svc_move.c, retrieve*.c):
 * the SOP classes and their information models (PS3.4 C.6), the identifier (collected, parsed,
 * its failures mapped to statuses), the client's read scope (resolved through the backend for
 * each request, DESIGN.md invariant 6) and the responses. */
#ifndef GW_QR_H
#define GW_QR_H

#include <stdbool.h>
#include <stdint.h>

#include "common/dcm_query.h"
#include "common/strmap.h"
#include "common/wbuf.h"
#include "dimse_service.h"
#include "spool/backend_read.h"

#define QR_PATIENT_FIND "1.2.840.10008.5.1.4.1.2.1.1"
#define QR_PATIENT_MOVE "1.2.840.10008.5.1.4.1.2.1.2"
#define QR_PATIENT_GET "1.2.840.10008.5.1.4.1.2.1.3"
#define QR_STUDY_FIND "1.2.840.10008.5.1.4.1.2.2.1"
#define QR_STUDY_MOVE "1.2.840.10008.5.1.4.1.2.2.2"
#define QR_STUDY_GET "1.2.840.10008.5.1.4.1.2.2.3"

/* Failure statuses of our own, in the "unable to process" range C000-CFFF that PS3.4 C.4.1.1.4,
 * C.4.2.1.5 and C.4.3.1.4 leave to the implementation; docs/conformance.md lists them. */
#define QR_ST_RELATIONAL 0xC001 /* a relational query or retrieve (hierarchical only) */
#define QR_ST_CHARSET 0xC002    /* Specific Character Set not supported */
#define QR_ST_TOO_LARGE 0xC003  /* identifier over QR_IDENT_MAX or too many keys */
#define QR_ST_ARCHIVE 0xC004    /* the archive could not be searched or read */

#define QR_IDENT_MAX (256u * 1024u)

enum qr_kind { QR_FIND, QR_MOVE, QR_GET };

/* True when abstract is the Patient Root or Study Root SOP class of kind; *model says which. */
bool qr_model(const char *abstract, enum qr_kind kind, enum dcm_qr_model *model);

/* A failure to answer with: status, Error Comment (static text, no value from the request) and
 * Offending Element (0 when none). */
struct qr_fail {
    uint16_t status;
    const char *comment;
    uint32_t tag;
};

/* The identifier dataset of a request, collected up to QR_IDENT_MAX (bytes past it are dropped
 * and the request refused, the association going on). */
struct qr_ident {
    struct wbuf buf;
    bool too_large;
};
void qr_ident_init(struct qr_ident *id);
void qr_ident_put(struct qr_ident *id, const uint8_t *p, size_t n);
void qr_ident_cleanup(struct qr_ident *id);

/* Parse the identifier (in the context's transfer syntax) into a query of model and op. 0 and
 * *q (caller frees), or < 0 with *f: 0xA900 (not an identifier of this model: no or a wrong
 * level, a bad value, a key below the level, a missing unique key), QR_ST_RELATIONAL,
 * QR_ST_CHARSET, QR_ST_TOO_LARGE, 0xA700 (out of memory). */
MUST_CHECK int qr_parse(const struct qr_ident *id, const struct pctx_info *pctx,
                        enum dcm_qr_model model, enum dcm_qr_op op, struct dcm_query **q,
                        struct qr_fail *f);

/* The studies this client may read now: the scope of its grants, and for OWN / SHARED the study
 * list its backend gives (re-read for every request, so that a revoked or expired share stops
 * the next one). */
struct qr_scope {
    struct backend_read_scope s; /* what the backend is handed */
    char owner[BACKEND_OWNER_MAX];
    struct strmap set; /* s.studies, for lookups */
    char **studies;
    size_t n;
};
/* cb(arg, err, scope): scope is the callee's (qr_scope_free), NULL when err < 0. */
typedef void (*qr_scope_cb)(void *arg, int err, struct qr_scope *scope);
struct qr_scope_req;

/* Resolve the scope of a's client. 0 and *now (ALL, NONE: no backend question), 1 when cb will
 * follow (*req lets the caller abandon it), or < 0 (no backend that reads, out of memory). */
MUST_CHECK int qr_scope_resolve(struct assoc *a, struct qr_scope **now, qr_scope_cb cb,
                                void *arg, struct qr_scope_req **req);
/* The requester went away: cb will not be called (the request frees itself when it ends). */
void qr_scope_abandon(struct qr_scope_req *req);
bool qr_scope_has(const struct qr_scope *s, const char *study);
void qr_scope_free(struct qr_scope *s); /* NULL is fine */

/* Sub-operation counts of C-GET and C-MOVE responses (PS3.7 9.1.3, 9.1.4). */
struct qr_counts {
    uint16_t remaining, completed, failed, warning;
};

/* A response to req on context pctx: status, optional Error Comment (failures, and warnings
 * where the standard allows it) and Offending Element, the sub-operation counts (NULL: none;
 * remaining only when with_remaining), and a dataset (NULL: none) written in ts. 0, or < 0:
 * the association is closing (assoc_is_closing; its operation's gone hook has run), or the
 * dataset could not be encoded in ts (nothing was sent; the association goes on). */
MUST_CHECK int qr_respond(struct assoc *a, const struct dimse_cmd *req, uint8_t pctx,
                          const struct ts_info *ts, const struct qr_fail *f,
                          const struct qr_counts *counts, bool with_remaining,
                          const struct dcm_ds *ds);

/* The backend's read side of a's core, with its impl; NULL when the backend cannot read. */
const struct backend_read_ops *qr_backend(struct assoc *a, void **impl);

/* ---- a Q/R request up to its search: what C-FIND, C-GET and C-MOVE share ------------------- */

struct qr_op;

struct qr_op_kind {
    enum dcm_qr_op qop;
    /* The identifier is parsed (op->q) and the scope resolved (op->scope, not NONE): go. */
    void (*start)(struct qr_op *op);
    /* Answer f as the final response (a parse failure, the scope, a cancel before start). */
    void (*finish)(struct qr_op *op, const struct qr_fail *f);
};

/* Embedded first in the service's own operation. */
struct qr_op {
    struct svc_op base;
    const struct qr_op_kind *kind;
    struct dimse_cmd req;
    struct pctx_info pctx;
    enum dcm_qr_model model;
    struct qr_ident ident;
    struct dcm_query *q;
    struct qr_scope *scope;
    struct qr_scope_req *scope_req; /* resolving: the kind's start waits */
    const struct backend_read_ops *ops;
    void *impl;
    int busy; /* callbacks of the service on the stack */
    bool cancelled, gone, ended;
};

/* The checks of a request before its identifier: 0 and the model, or a status and comment to
 * answer at once (no identifier, SOP class other than the context's, no backend that reads). */
MUST_CHECK int qr_op_check(struct assoc *a, const struct dimse_request *rq, enum qr_kind kind,
                           enum dcm_qr_model *model, uint16_t *status, const char **comment);
/* Set up op (calloc'd by the service) for rq, with the service's hooks. */
void qr_op_init(struct qr_op *op, const struct qr_op_kind *kind, const struct svc_op_hooks *hooks,
                struct assoc *a, const struct dimse_request *rq, enum dcm_qr_model model);
/* The data and data_end hooks: collect the identifier, parse it, resolve the scope, then
 * kind->start (or kind->finish with the failure). */
void qr_op_data(struct svc_op *base, const uint8_t *p, size_t n);
void qr_op_data_end(struct svc_op *base);
/* C-CANCEL while the scope is being resolved: true when it was (the finish comes then). */
bool qr_op_cancel_early(struct qr_op *op);
/* The association ended: the scope's answer, if pending, is dropped. */
void qr_op_gone(struct qr_op *op);
/* The audit trail's Query (core_audit_query): op's identifier as sent (or none when it is not a
 * dataset), with the final status. Call once, before the final response. */
void qr_op_audit_query(const struct qr_op *op, uint16_t status);
/* Free what op holds (not op). */
void qr_op_cleanup(struct qr_op *op);

#endif
