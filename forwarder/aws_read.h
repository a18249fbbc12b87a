/* aws_read: the aws backend's read side (spool/backend_read.h): C-FIND candidates from
 * HealthImaging's QIDO-RS, C-GET/C-MOVE instances from WADO-RS, streamed, and the studies a
 * client may read (its own, from the DynamoDB instance items; shared ones, from grants). It runs
 * on the program's loop (env->loop) with an http client of its own there, never on the
 * forwarder's thread.
 *
 * Credentials: the reads are signed with credentials of the reader role (read.reader_role_arn),
 * assumed through STS with the task's own credentials. A client whose scope is its own or shared
 * studies gets a session whose policy allows the DICOMweb read actions only for those studies
 * (the condition key medical-imaging:StudyInstanceUID), so that a bug in our filter still cannot
 * read another study; when the studies do not fit a session policy (2,048 characters, or AWS's
 * packed limit), or for a study-level search (SearchDICOMStudies takes no study key), the
 * reader role's unscoped session is used and the core's filter, plus ours, is what holds
 * (logged as aws_read_unscoped). Sessions are cached per set of studies and fetched again five
 * minutes before they expire. Without a reader role every read uses the task's credentials
 * (a deployment without least privilege; logged at start).
 *
 * Errors handed to the core's done callbacks (why says more, never a value of the data):
 * ERR_LIMIT (HealthImaging's cap of 10,000 results), -EACCES (HealthImaging refused: 403,
 * AccessDenied, or the study is outside the scope), ERR_NOTFOUND (404), ERR_UNSUPPORTED (no
 * transfer syntax the receiver accepted can be had, or a query HealthImaging refused),
 * ERR_MALFORMED / ERR_TRUNCATED (an answer that breaks its format or ends early), ERR_IO
 * (network, outage, throttled past the deadline, no credentials), and the core's own codes
 * from its callbacks. */
#ifndef GW_AWS_READ_H
#define GW_AWS_READ_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/wbuf.h"
#include "pipeline_config.h"
#include "spool/backend_read.h"

/* The "read" object of the aws backend's configuration (docs/configuration.md). */
struct aws_read_config {
    char reader_role_arn[256]; /* "" = read with the task's credentials */
    uint32_t session_duration_s;
    uint32_t deadline_ms;      /* retries of one request (throttling, 5xx) end after this */
    uint32_t page_size;        /* QIDO limit */
    uint32_t max_results;      /* HealthImaging's cap on a search's results */
    uint32_t max_scope_studies;
    uint32_t creds_cache;      /* scoped sessions kept */
    uint32_t max_connections;
    bool multipart;            /* ask WADO-RS for multipart/related instead of application/dicom */
};

/* Take the "read" member out of the backend object json: *rest (malloc'd, the caller frees) is
 * the object without it, for pipeline_config_parse; *out is read from it (defaults when
 * absent). One line per problem in errs ("backend.read.<key>: why"). 0, ERR_CONFIG or
 * ERR_NOMEM. When json is not a JSON object *rest is a copy of it (the pipeline's parser says
 * why). */
MUST_CHECK int aws_read_config_split(const char *json, char **rest, struct aws_read_config *out,
                                     struct wbuf *errs);

/* The ARN of the data store of pc, in the reader role's partition and account (rc's
 * reader_role_arn), into out. 0, or ERR_CONFIG when there is no valid reader role. */
MUST_CHECK int aws_read_datastore_arn(const struct pipeline_config *pc,
                                      const struct aws_read_config *rc, char *out, size_t cap);

struct aws_read;

/* Start the read side on loop (the caller's thread runs it) for the backend configured by pc
 * and rc (both copied). 0, ERR_CONFIG (no credentials chain applies), ERR_NOMEM. */
MUST_CHECK int aws_read_new(uv_loop_t *loop, const struct pipeline_config *pc,
                            const struct aws_read_config *rc, struct aws_read **out);
/* Stop: operations still running end with their done callbacks (ERR_WRONG_STATE); the http
 * client is closed and the loop is run (UV_RUN_NOWAIT) until its handles are. NULL is fine. */
void aws_read_free(struct aws_read *r);

/* The operations of spool/backend_read.h (their contracts are there), with an aws_read as impl;
 * the backend's table (aws_backend_read_ops, aws_read_ops.c) reaches them through its own impl.
 * Refused at once: scope NONE (-EACCES), a fetch of a study outside an OWN or SHARED scope
 * (-EACCES), after aws_read_free began (ERR_WRONG_STATE). */
int aws_read_search(void *impl, const struct dcm_query *q, const struct backend_read_scope *scope,
                    const struct backend_search_cbs *cbs, struct backend_read_op **op);
int aws_read_fetch(void *impl, const char *study, const char *series, const char *sop,
                   const char *const *ts, size_t n_ts, const struct backend_read_scope *scope,
                   const struct backend_fetch_cbs *cbs, struct backend_read_op **op);
void aws_read_resume(struct backend_read_op *op);
void aws_read_cancel(struct backend_read_op *op);
int aws_read_scope_studies(void *impl, const char *client_id, enum grant_scope scope,
                           backend_studies_cb cb, void *arg);
/* The same as a table (impl: an aws_read), for programs that drive the read side alone. */
extern const struct backend_read_ops aws_read_ops;

#endif
