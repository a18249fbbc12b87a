/* aws_backend: the `aws` backend. It runs the pipeline (pipeline.h) on a thread of its own with
 * its own libuv loop, which drives libcurl's multi-socket interface (http.h), and implements
 * the spool's backend interface (spool/spool_backend.h): notify (new spool entries), await (ack
 * "s3" / "healthimaging": the C-STORE answer waits for the object to get there), stats, stop,
 * and the operator's subcommands (status, failed, redrive). Crossing threads: a locked queue
 * plus uv_async_send each way. */
#ifndef GW_AWS_BACKEND_H
#define GW_AWS_BACKEND_H

#include "spool/spool_backend.h"

extern const struct backend_ops aws_backend_ops;

struct aws_read;
/* The read side of a started aws backend (impl as backend_impl gives it). */
struct aws_read *aws_backend_reader(void *impl);
/* spool/backend_read.h's operations for the aws backend (impl: the backend's), aws_read_ops.c */
extern const struct backend_read_ops aws_backend_read_ops;

#endif
