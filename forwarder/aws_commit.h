/* aws_commit: the aws backend's answers to Storage Commitment (spool/backend_commit.h), on the
 * core's loop with a DynamoDB client of its own (the forwarder's clients live on its thread):
 *  - locate: a consistent Query of the instance items INSTANCE#<sop> (every copy, by SHA-256);
 *    RECEIVED is in a core's spool, STORED/IMPORTING in S3, IMPORTED in HealthImaging, FAILED;
 *  - the shared transaction store, in the same table:
 *      COMMIT#<Transaction UID> / TXN   state, owner, lease_until (unix ms), event, body (the
 *                                       commit_rec JSON), calling_ae, ttl once reported
 *      COMMITQ / <Transaction UID>      the index of open transactions (lease_until, done),
 *                                       which a sweep reads to take over those of a dead task
 *    The TXN item is created with attribute_not_exists(pk) (a duplicate Transaction UID is
 *    refused by DynamoDB itself, across tasks); every later write is conditional on the owner
 *    and on not being reported. Only PutItem, UpdateItem and Query: the task role needs no new
 *    action. */
#ifndef GW_AWS_COMMIT_H
#define GW_AWS_COMMIT_H

#include <uv.h>

#include "pipeline_config.h"
#include "spool/backend_commit.h"

struct aws_commit;

/* Clients on loop (the core's) for cfg's region, endpoints and table (copied). 0 or < 0. */
MUST_CHECK int aws_commit_new(uv_loop_t *loop, const struct pipeline_config *cfg,
                              struct aws_commit **out);
/* Free what is left once the ops' close has finished (or when it never started). NULL-safe. */
void aws_commit_free(struct aws_commit *c);

/* The ops; their impl is the aws backend's (aws_backend_commit() finds this state in it). */
extern const struct backend_commit_ops aws_commit_ops;
struct aws_commit *aws_backend_commit(void *backend_impl); /* aws_backend.c */

#endif
