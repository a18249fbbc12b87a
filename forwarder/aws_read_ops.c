/* The aws backend's read operations (spool/backend_read.h): the core calls them with the
 * backend's impl; the read side (aws_read.h) is reached through it. */
#include "aws_backend.h"
#include "aws_read.h"

static int bk_search(void *impl, const struct dcm_query *q, const struct backend_read_scope *scope,
                     const struct backend_search_cbs *cbs, struct backend_read_op **op)
{
    return aws_read_search(aws_backend_reader(impl), q, scope, cbs, op);
}

static int bk_fetch(void *impl, const char *study, const char *series, const char *sop,
                    const char *const *ts, size_t n_ts, const struct backend_read_scope *scope,
                    const struct backend_fetch_cbs *cbs, struct backend_read_op **op)
{
    return aws_read_fetch(aws_backend_reader(impl), study, series, sop, ts, n_ts, scope, cbs, op);
}

static int bk_scope_studies(void *impl, const char *client_id, enum grant_scope scope,
                            backend_studies_cb cb, void *arg)
{
    return aws_read_scope_studies(aws_backend_reader(impl), client_id, scope, cb, arg);
}

const struct backend_read_ops aws_backend_read_ops = {
    .search = bk_search,
    .fetch = bk_fetch,
    .resume = aws_read_resume,
    .cancel = aws_read_cancel,
    .scope_studies = bk_scope_studies,
};
