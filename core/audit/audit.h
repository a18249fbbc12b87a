/* audit: the audit trail of dicom-edge and dicom-core for the site's audit repository (IHE
 * ATNA): DICOM audit messages (PS3.15 A.5) over syslog, TLS (RFC 5425) or UDP (RFC 5426),
 * queued durably on disk while a repository is away.
 *
 * Set-up, once per program (after its configuration is read, before it serves):
 *
 *     struct audit *au = NULL;                  // NULL: audit off; every call below is a no-op
 *     if (cfg->audit.enabled &&
 *         audit_start(&cfg->audit, &(struct audit_opts){.app_name = "dicom-core",
 *                     .ae_title = cfg->ae_title, .metrics = metrics}, &au, err, sizeof err) < 0)
 *         exit with err;
 *     audit_app_start(au);
 *     ...                                       // one call per event, from any thread
 *     audit_app_stop(au);
 *     audit_stop(au, 2000);                     // deliver what it can within 2 s, then stop
 *
 * The library runs its own thread and libuv loop (the queue's fsyncs and the repositories'
 * connections never touch the caller's loop). Each event call renders the message on the
 * caller's thread and appends it to the queue with one write(2) (no fsync there: the audit
 * thread fsyncs in small groups before sending); it returns 0, or ERR_NOSPACE when the queue is
 * full and on_full is fail_closed (the caller should then refuse new work: audit_is_blocking),
 * or another error (logged by the library, rate-limited; never fatal to the caller).
 *
 * The program must ignore SIGPIPE (dicom-edge and dicom-core do). Nothing patient-related is
 * ever logged here. */
#ifndef GW_AUDIT_H
#define GW_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/audit_config.h"
#include "audit/audit_events.h"
#include "net/metrics.h"
#include "net/tls_ctx.h"

struct audit;

struct audit_opts {
    const char *app_name;    /* "dicom-edge" / "dicom-core": APP-NAME, UserID, metric prefix */
    const char *ae_title;    /* our AE title (AlternativeUserID), or NULL */
    struct metrics *metrics; /* may be NULL */
};

/* Load the key, open (and recover) the queue, start the audit thread and connect to every
 * repository. Returns 0 and *out, or ERR_CONFIG / -errno with err set. cfg is copied. */
MUST_CHECK int audit_start(const struct audit_config *cfg, const struct audit_opts *o,
                           struct audit **out, char *err, size_t err_len);

/* Wait up to drain_ms for every repository to take what is queued, then close the
 * connections, save the cursors, stop the thread and free. NULL does nothing. What is not
 * delivered stays queued for the next run. Call it once no other thread emits any more (after
 * the program's workers and loops have stopped): a call on a stopped audit trail is a
 * use-after-free. */
void audit_stop(struct audit *a, unsigned drain_ms);

/* fail_closed and the queue has no room: refuse new associations until it is false again.
 * Lock-free; false for NULL or drop_oldest. */
bool audit_is_blocking(struct audit *a);

/* Block the calling thread until every repository has taken everything queued so far (0) or
 * timeout_ms passes (ERR_WRONG_STATE). For tools and tests. */
MUST_CHECK int audit_wait_drained(struct audit *a, unsigned timeout_ms);

struct audit_status {
    uint64_t queued, bytes, dropped, refused, pending_lost;
    bool blocking;
    size_t n_repos;
    struct {
        char name[AQ_NAME_MAX + 1];
        bool up;
        uint64_t backlog; /* messages not yet committed for it */
    } repos[AUDIT_MAX_REPOS];
};
void audit_get_status(struct audit *a, struct audit_status *st);

/* The identity a tls_peer_id holds, for audit_party.cert (borrows id's strings). */
struct audit_cert audit_cert_from_tls(const struct tls_peer_id *id);

/* ---- events: one call each; a NULL a does nothing and returns 0 ---- */

/* Application Activity: this program started / is stopping. */
int audit_app_start(struct audit *a);
int audit_app_stop(struct audit *a);

/* A TLS client authentication (edge: each handshake with a modality; core: each TLS handshake
 * from the edge or a client): User Authentication, success or failure with tls_fail_reason's
 * reason. A failure for "revoked", "expired" or "not_yet_valid" also raises a Security Alert
 * (Node Authentication): such a certificate was presented. */
int audit_tls_auth(struct audit *a, const struct audit_party *peer, bool ok, const char *reason);

/* Security Alert (Use of Restricted Function): an association or request refused by policy
 * (certificate not bound to the AE titles, service not granted, read outside scope...). */
int audit_policy_refused(struct audit *a, const struct audit_party *peer, const char *why);

/* Security Alert (Node Authentication): a revoked or expired certificate found outside a
 * handshake (e.g. a live connection re-verified after a CRL reload). */
int audit_cert_rejected(struct audit *a, const struct audit_party *peer, const char *why);

/* Security Alert (Security Configuration): configuration, certificates, CRL or policy reloaded
 * (ok) or a reload refused (the old configuration stays). path: the file concerned. */
int audit_config_reloaded(struct audit *a, const char *path, bool ok, const char *detail);

/* Begin Transferring DICOM Instances: the first instance of a study on an association. */
int audit_transfer_begin(struct audit *a, const struct audit_xfer *x);

/* DICOM Instances Transferred: a study's instances at the end of an association; one message
 * for the successes and, when some failed, one for the failures. */
int audit_transfer_end(struct audit *a, const struct audit_xfer *x);

/* Query: a C-FIND request (the identifier as received). */
int audit_query(struct audit *a, const struct audit_query *q);

/* DICOM Instances Accessed: instances of one study read, changed or deleted. */
int audit_instances_accessed(struct audit *a, const struct audit_access *acc);

/* Storage Commitment: a report (N-EVENT-REPORT) sent for one study's instances; one message for
 * the committed ones and, when some failed, one for the failures. */
int audit_commitment(struct audit *a, const struct audit_commit *c);

#endif
