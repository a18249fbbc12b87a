/* core_audit: audit of the SCP's events. dicom-core's audit trail (core/audit/audit.h, docs/audit.md:
 * DICOM audit messages of PS3.15 A.5.3 over syslog to the site's audit repository) as the SCP
 * uses it: the program starts and stops it, the association reports TLS client
 * authentications, policy refusals and its end, and each service reports what it did with one
 * call. docs/security.md ("Audit trail") says what each event carries.
 *
 * Every call below is a no-op while no "audit" object is configured (ctx->audit is NULL), takes
 * only the loop thread's objects, and never fails the caller: a message that cannot be queued is
 * logged and counted by the library (on_full "fail_closed" then makes core_audit_blocking() true,
 * and new associations are refused until the queue has room again). Nothing patient-related is
 * ever logged here; Patient IDs handed in are kept in memory only until the message is built
 * (wiped at the association's end) and hashed by the library unless "patient_id" is "include". */
#ifndef GW_CORE_AUDIT_H
#define GW_CORE_AUDIT_H

#include <openssl/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/audit_config.h"
#include "common/wbuf.h"
#include "core_config.h"

struct assoc;
struct core_ctx;
struct dcm_ds;

/* ---- the program (main.c) -------------------------------------------------------------------- */

/* Parse cfg's "audit" object into *out (disabled when absent). Problems appended to errs as
 * "audit.KEY: why" lines; 0 or ERR_CONFIG. */
MUST_CHECK int core_audit_config(const struct core_config *cfg, struct audit_config *out,
                                 struct wbuf *errs);
/* --check-config: core_audit_config plus audit_config_check (the key file, certificates and
 * queue directory). 0 or ERR_CONFIG with errs. */
MUST_CHECK int core_audit_check(const struct core_config *cfg, struct wbuf *errs);
/* Start the audit trail of ctx->cfg when configured (ctx->audit; NULL when not) and queue
 * Application Start. Call after the backend, before the listener. 0, or < 0 with err set (the
 * program exits). */
MUST_CHECK int core_audit_start(struct core_ctx *ctx, char *err, size_t err_len);
/* Application Stop, then deliver within drain_ms and stop (what is left stays queued). Call after
 * the loop has ended (every association's messages are queued by then). NULL audit: nothing. */
void core_audit_stop(struct core_ctx *ctx, unsigned drain_ms);
/* SIGHUP: the configuration at path was reloaded (ok) or refused (detail: why). */
void core_audit_reloaded(struct core_ctx *ctx, const char *path, bool ok, const char *detail);
/* True when the "audit" objects of two configurations differ (a reload cannot apply that). */
bool core_audit_changed(const struct core_config *a, const struct core_config *b);
/* fail_closed and the queue is full: refuse new associations (A-ASSOCIATE-RJ transient). */
bool core_audit_blocking(const struct core_ctx *ctx);
/* Let a server context remember the certificate a client presents, so that a refused handshake
 * is audited with the certificate's identity too (it is never the peer's once refused). */
void core_audit_tls_ctx(SSL_CTX *server);

/* ---- the association (assoc*.c) -------------------------------------------------------------- */

/* User Authentication: a TLS handshake on our listener from tcp_peer ("addr:port" of the TCP
 * connection: the edge itself when it proxies), accepted (ok) or refused for reason
 * (tls_fail_reason's words). ssl gives the certificate's subject, serial and fingerprint. */
void core_audit_tls_auth(struct assoc *a, const char *tcp_peer, SSL *ssl, bool ok,
                         const char *reason);
/* Security Alert (Use of Restricted Function): our own policy refused a's peer: called or
 * calling AE title not recognized, a service not granted, a PROXY v2 header refused. why is our
 * own text (no input bytes). */
void core_audit_refused(struct assoc *a, const char *why);
/* The association ends: DICOM Instances Transferred for each study it stored or sent (one
 * message for the instances that made it, one for those that failed), then its accounting and
 * the Patient IDs in it are wiped. */
void core_audit_assoc_end(struct assoc *a);

/* ---- the services: one call each --------------------------------------------------------------
 * a is the association the service runs on; strings are borrowed for the call; patient_id is the
 * Patient ID (0010,0020) as received, or NULL / "" when unknown; status is the DIMSE status of the
 * operation (success 0000 and warnings Bxxx count as done). */

/* C-STORE (svc_store.c): an object received from the peer, acknowledged or not. The first object
 * of a study on an association queues Begin Transferring DICOM Instances; the association's end
 * queues the study's totals. comment: the Error Comment of a failure, or NULL. */
void core_audit_stored(struct assoc *a, const char *sop_class, const char *study_uid,
                       const char *patient_id, uint16_t status, const char *comment);

/* C-GET / C-MOVE: one C-STORE sub-operation we sent, with the status of the peer's response
 * (0xA700-ish failures included; the ones never sent too, with the failure status the service
 * reports for them). a: the association the sub-operation went on (C-GET: the requestor's
 * own; C-MOVE: the one opened to the move destination). requestor: the association of the C-MOVE
 * request (a third participant, the requestor in the message), or NULL for C-GET. Like
 * core_audit_stored: Begin at a study's first instance, totals at a's end. */
void core_audit_sent(struct assoc *a, const struct assoc *requestor, const char *sop_class,
                     const char *study_uid, const char *patient_id, uint16_t status);

/* C-FIND: a query answered (call once, with the final response's status; Cancel FE00 counts as
 * done). sop_class: the information model (the request's Affected SOP Class UID); identifier: the
 * request's identifier as parsed (NULL: it did not parse). The library hashes or empties its
 * Patient module unless "include". */
void core_audit_query(struct assoc *a, const char *sop_class, const struct dcm_ds *identifier,
                      uint16_t status);

/* DICOM Instances Accessed: n instances of sop_class of one study read ('R'), created ('C'),
 * updated ('U') or deleted ('D') on the peer's behalf, outside a transfer (which
 * core_audit_sent reports). */
void core_audit_accessed(struct assoc *a, char action, const char *sop_class,
                         const char *study_uid, const char *patient_id, uint64_t n,
                         uint16_t status);

/* One instance of a Storage Commitment request, as its report states it. */
struct core_audit_commit_ref {
    const char *sop_class, *sop_instance;
    const char *study_uid;  /* NULL: unknown */
    const char *patient_id; /* NULL: unknown */
    bool committed;         /* in the Referenced SOP Sequence (else the Failed SOP Sequence) */
};
/* Storage Commitment: the report (N-EVENT-REPORT) of transaction_uid sent on a (the request's
 * association, or the one opened to send the report). One message per study for the committed
 * instances and one for the failed ones (failure: why, e.g. "not at the commit point"). */
void core_audit_commitment(struct assoc *a, const char *transaction_uid,
                           const struct core_audit_commit_ref *refs, size_t n,
                           const char *failure);

#endif
