/* proxy_audit: the proxy's audit lines (one JSON line per admission decision and per ended
 * association, naming the certificate identity, the AE titles and the route) and the labelled
 * counters that go with them. No PHI: identities, AE titles and byte counts only. Only
 * pointers to struct edge_conn here (not proxy_int.h): main.c logs through this header too. */
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

#endif
