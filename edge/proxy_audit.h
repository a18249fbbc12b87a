/* proxy_audit: the proxy's audit lines (one JSON line per admission decision and per ended
 * association, naming the certificate identity, the AE titles and the route), the labelled
 * counters and the last hour's refusals that go with them, and the DICOM audit messages
 * (core/audit: User Authentication, Security Alerts) of the connection's events. No PHI:
 * identities, AE titles and byte counts only. Only pointers to struct edge_conn here (not
 * proxy_int.h): main.c logs through this header too. */
#ifndef GW_PROXY_AUDIT_H
#define GW_PROXY_AUDIT_H

#include "admission.h"
#include "common/log.h"
#include "proxy.h"

/* A short name for a libuv or project status ("closed" for EOF). Static storage. */
const char *proxy_audit_status(int status);
/* The "conn" and "peer" fields of c. */
void proxy_audit_conn(struct logb *lb, const struct edge_conn *c);
/* The certificate identity fields of c (subject, cn, serial, fingerprint). */
void proxy_audit_identity(struct logb *lb, const struct edge_conn *c);
/* Count one in counter name{k1="v1",reason="v2"} (created on first use). */
void proxy_audit_count(struct edge *e, const char *name, const char *help, const char *k1,
                       const char *v1, const char *v2);
/* The admission decision ("admit", "reject", "abort") for c and why; d may be NULL. */
void proxy_audit_decision(struct edge_conn *c, const char *decision, const char *why,
                          const struct adm_decision *d);
/* An error line ev naming a listening address and the error (startup failures). */
void proxy_audit_listen_failed(const char *ev, const char *addr, const char *err);
/* The end of an admitted association: duration, bytes and PDUs each way, how it ended. */
void proxy_audit_assoc_end(const struct edge_conn *c);
/* A refusal (a connection closed at accept, a failed handshake, an association refused) on the
 * reverse path or the modalities': counted for the status page's last hour. */
void proxy_audit_refusal(struct edge *e, bool reverse, const char *reason);
/* DICOM audit: c's TLS client authentication succeeded (ok) or failed for reason (User
 * Authentication; a revoked or expired certificate also raises a Security Alert). */
void proxy_audit_tls(struct edge_conn *c, bool ok, const char *reason);
/* DICOM audit: c's association refused by admission (Security Alert, Use of Restricted
 * Function). */
void proxy_audit_refused(struct edge_conn *c, const char *why);
/* DICOM audit: c's certificate refused outside a handshake (re-verified after a reload). */
void proxy_audit_cert_rejected(struct edge_conn *c, const char *why);

#endif
