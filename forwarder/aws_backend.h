/* aws_backend: the core's "aws" backend. It runs the pipeline (pipeline.h) on a thread of its
 * own with its own libuv loop, which drives libcurl's multi-socket interface (http.h), and
 * plugs into the core through backend.h's hooks: notify (new spool entries), await (ack "s3" /
 * "healthimaging": the C-STORE answer waits for the object to get there), stats, stop.
 * Crossing threads: a locked queue plus uv_async_send each way. */
#ifndef GW_AWS_BACKEND_H
#define GW_AWS_BACKEND_H

#include <uv.h>

#include "backend.h"
#include "common/wbuf.h"
#include "core_config.h"
#include "spool.h"

struct metrics;

/* Check the "backend" object of type aws (cfg->aws_json) against the core's ack mode; one line
 * per problem into errs. 0 or ERR_CONFIG. */
MUST_CHECK int aws_backend_check_config(const struct core_config *cfg, struct wbuf *errs);

/* Parse the configuration, start the thread, replay the pipeline's journal, and begin. The
 * acknowledgement callbacks run on core_loop (an unreferenced uv_async_t there: it does not
 * keep the core's loop alive). *impl is for backend_wrap(&aws_backend_ops, impl, ...).
 * 0, ERR_CONFIG (logged per problem), or the failure of a start-up step (logged). */
MUST_CHECK int aws_backend_start(const struct core_config *cfg, struct spool *spool,
                                 uv_loop_t *core_loop, struct metrics *metrics, void **impl);

/* The hooks for backend_wrap. stop joins the thread; call it after the core's loop returned. */
extern const struct backend_ops aws_backend_ops;

#endif
