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

#endif
