/* assoc: one DICOM association as the acceptor: the PS3.8 9.2 state machine (Sta2 to Sta13 with
 * the ARTIM timer), negotiation, DIMSE C-ECHO and C-STORE, streaming each dataset to the spool. */
#ifndef GW_ASSOC_H
#define GW_ASSOC_H

#include <uv.h>

#include "core_ctx.h"

/* Accept a pending connection on server and run it. Returns 0 or a negative libuv code (the
 * connection is then closed and nothing else happens). */
MUST_CHECK int assoc_accept(struct core_ctx *ctx, uv_stream_t *server);

/* Drain: ask every idle association to release (A-RELEASE-RQ), busy ones after their current
 * operation. */
void assoc_drain_all(struct core_ctx *ctx);
/* Abort every association now (A-ABORT, service-provider). */
void assoc_abort_all(struct core_ctx *ctx);

#endif
