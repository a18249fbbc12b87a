/* proxy_status: the running edge's state as JSON, for GET /status on its HTTP listener and
 * `dicom-edge status` (status_cmd.h): live associations by client, the last hour's refusals by
 * reason, certificate and CRL dates, the policy generation in force, the audit queue. No PHI:
 * client ids, AE-title-free counts, file paths and dates. */
#ifndef GW_PROXY_STATUS_H
#define GW_PROXY_STATUS_H

#include "common/wbuf.h"
#include "proxy.h"

/* Append the status document of e (one JSON object and a newline) to out. 0, or ERR_NOMEM
 * (out's error, or building the document ran out of memory). Loop thread only. */
MUST_CHECK int proxy_status_render(struct edge *e, struct wbuf *out);

/* The audit trail's state under the program-agnostic names the shipped Prometheus rules and
 * Grafana dashboard use for edge and core alike (compose/monitoring): gateway_audit_queue_messages,
 * gateway_audit_queue_bytes, gateway_audit_dropped_total and
 * gateway_audit_repository_up{repository}; the audit library's own dicom_edge_audit_* series
 * stay. Refreshed before each /metrics render; nothing without an audit trail. Loop thread. */
void proxy_status_audit_metrics(struct edge *e);

#endif
