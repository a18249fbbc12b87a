/* aws_read_int: what the files of the aws backend's read side share (aws_read.h is the public
 * side).
 *   aws_read.c        configuration, life cycle, errors, the operations table
 *   aws_read_creds.c  which credentials read a scope: cached STS sessions per set of studies
 *   aws_read_query.c  a C-FIND query as QIDO-RS parameters (pure)
 *   aws_read_search.c search: QIDO-RS, candidates completed and filtered by scope
 *   aws_read_fetch.c  fetch: WADO-RS streamed, transfer syntax negotiation
 *   aws_read_scope.c  the studies of a scope, from DynamoDB */
#ifndef GW_AWS_READ_INT_H
#define GW_AWS_READ_INT_H

#include "aws/creds_provider.h"
#include "aws/ddb.h"
#include "aws/dicomweb.h"
#include "aws/http.h"
#include "aws/sts.h"
#include "aws_read.h"

#define AWS_READ_UID_MAX 65

/* A sorted copy of a scope's studies (fixed-size UIDs, for bsearch). */
struct read_scope {
    enum grant_scope scope;
    char client_id[129];
    char (*studies)[AWS_READ_UID_MAX];
    size_t n;
};

struct rcreds; /* a cached session (aws_read_creds.c) */

struct aws_read {
    uv_loop_t *loop;
    struct aws_read_config cfg;
    char region[32], table[256], datastore_id[64];
    char datastore_arn[200]; /* from the reader role's partition and account; "" without one */
    struct http_client *http;
    struct creds_provider *base;     /* the standard chain: the task's credentials */
    struct sts_client *sts;          /* NULL without a reader role */
    struct creds_provider *unscoped; /* the reader role's session without a policy, or base */
    struct dw_client *dw;
    struct ddb_client *ddb;
    struct rcreds *cache;            /* scoped sessions, most recently used first */
    size_t n_cache;
    size_t live;                     /* operations not yet ended */
    bool closing;
};

/* A search or a fetch (aws_read_search.c, aws_read_fetch.c): handed to the core as a
 * struct backend_read_op * (never defined: each backend casts its own). */
enum read_kind { READ_SEARCH = 1, READ_FETCH = 2 };
struct aws_read_op {
    enum read_kind kind;
};

/* aws_read_search.c / aws_read_fetch.c: resume and cancel of their own kind. */
void aws_read_search_resume(struct aws_read_op *op);
void aws_read_search_cancel(struct aws_read_op *op);
void aws_read_fetch_resume(struct aws_read_op *op);
void aws_read_fetch_cancel(struct aws_read_op *op);

/* ---- aws_read.c ---- */
/* The core's error code and why for an operation's failure: err from dicomweb (an HTTP_ERR_*
 * with res, or ours) mapped as aws_read.h lists. */
int aws_read_map_err(int err, const struct http_result *res);
/* One log line when reads fall back to the unscoped session (event aws_read_unscoped). */
void aws_read_log_unscoped(const char *client_id, const char *what, size_t n_studies);

/* ---- aws_read_scope.c: scopes ---- */
/* A sorted, deduplicated copy of s into *out. 0, ERR_NOMEM, ERR_MALFORMED (a study that is not
 * a UID; NULL studies with OWN or SHARED). */
MUST_CHECK int read_scope_copy(const struct backend_read_scope *s, struct read_scope *out);
void read_scope_free(struct read_scope *s);
/* Whether study may be read under s (ALL: any; NONE: none). */
bool read_scope_has(const struct read_scope *s, const char *study);

/* ---- aws_read_creds.c ---- */
struct rcreds_lease;
/* cb(arg, 0, provider, scoped) once credentials that read scope are at hand (later, on the
 * loop); provider stays valid until aws_read_creds_release. err < 0 (HTTP_ERR_CREDS with why)
 * when none can be had. study_search: the read is a study-level search, which no scoped
 * session may do (SearchDICOMStudies takes no study key): the unscoped one is used. */
typedef void (*rcreds_cb)(void *arg, int err, struct creds_provider *p, bool scoped,
                          const char *why);
MUST_CHECK int aws_read_creds_acquire(struct aws_read *r, const struct read_scope *scope,
                                      bool study_search, rcreds_cb cb, void *arg,
                                      struct rcreds_lease **out);
/* Give the lease back (also while its acquire is still waiting: cb then never runs). */
void aws_read_creds_release(struct rcreds_lease *l);
/* Close every cached session (at free). */
void aws_read_creds_close_all(struct aws_read *r);

/* ---- aws_read_query.c ---- */
#define READ_PLAN_KEYS 24
#define READ_PLAN_INCLUDE 50

/* A C-FIND query as one QIDO-RS search. */
struct read_plan {
    enum dcm_qr_level level;
    struct dw_qido qido;
    struct dw_qido_key keys[READ_PLAN_KEYS];
    const char *include[READ_PLAN_INCLUDE];
    char study[AWS_READ_UID_MAX], series[AWS_READ_UID_MAX]; /* of the path, "" if none */
    char patient_id[72];  /* the query's single Patient ID (Patient Root), "" if none */
    bool patient_root;
    bool empty;           /* nothing in scope can match: no request at all */
    struct wbuf text;     /* the keys' names and values */
};

/* Plan q under scope (sorted). 0, ERR_UNSUPPORTED (a query QIDO-RS cannot carry out: a
 * missing upper-level unique key), ERR_NOMEM. Free with read_plan_cleanup. */
MUST_CHECK int read_plan_make(const struct dcm_query *q, const struct read_scope *scope,
                              struct read_plan *p);
void read_plan_cleanup(struct read_plan *p);

#endif
