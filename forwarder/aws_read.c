/* aws_read: the configuration ("read" in the aws backend's object), the read side's life cycle
 * on the program's loop, its errors, and the operations table. */
#include "aws_read.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/creds.h"
#include "aws_read_int.h"
#include "common/cfgread.h"
#include "common/log.h"

/* ---- configuration ------------------------------------------------------------------------ */

#define RC struct aws_read_config

static const struct cfgread_key g_keys[] = {
    CFGREAD_STR("reader_role_arn", RC, reader_role_arn, NULL),
    CFGREAD_U32("session_duration_s", RC, session_duration_s, 900, 43200, 3600),
    CFGREAD_U32("deadline_ms", RC, deadline_ms, 1000, 600000, 30000),
    CFGREAD_U32("page_size", RC, page_size, 1, 1000, 1000),
    CFGREAD_U32("max_results", RC, max_results, 1, 1000000, 10000),
    CFGREAD_U32("max_scope_studies", RC, max_scope_studies, 1, 1000000, 100000),
    CFGREAD_U32("creds_cache", RC, creds_cache, 1, 4096, 64),
    CFGREAD_U32("max_connections", RC, max_connections, 1, 256, 16),
    CFGREAD_BOOL("multipart", RC, multipart, false),
};

/* "arn:<partition>:iam::<12 digits>:role/<path/name>" */
static bool role_arn_valid(const char *a, char *partition, size_t pcap, char *account)
{
    if (strncmp(a, "arn:", 4) != 0)
        return false;
    const char *p = a + 4, *c = strchr(p, ':');
    if (!c || c == p || (size_t)(c - p) >= pcap || strncmp(c, ":iam::", 6) != 0)
        return false;
    memcpy(partition, p, (size_t)(c - p));
    partition[c - p] = '\0';
    const char *acct = c + 6;
    for (int i = 0; i < 12; i++) {
        if (acct[i] < '0' || acct[i] > '9')
            return false;
    }
    memcpy(account, acct, 12);
    account[12] = '\0';
    if (strncmp(acct + 12, ":role/", 6) != 0 || !acct[18])
        return false;
    for (const char *q = acct + 18; *q; q++) {
        if (*q <= ' ' || *q > '~' || *q == '"' || *q == '\\')
            return false;
    }
    return true;
}

static void check(void *base, void *ctx, const char *path, struct wbuf *errs)
{
    (void)ctx;
    const struct aws_read_config *c = base;
    char part[32], acct[13];
    if (c->reader_role_arn[0] && !role_arn_valid(c->reader_role_arn, part, sizeof part, acct))
        cfgread_problem(errs, path, "reader_role_arn",
                        "an IAM role ARN, arn:<partition>:iam::<account>:role/<name>");
}

static const struct cfgread_table g_table = CFGREAD_TABLE(g_keys, true, check);

int aws_read_config_split(const char *json, char **rest, struct aws_read_config *out,
                          struct wbuf *errs)
{
    memset(out, 0, sizeof *out);
    cfgread_defaults(&g_table, out);
    *rest = NULL;
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        *rest = strdup(json ? json : "");
        return *rest ? 0 : ERR_NOMEM;
    }
    cJSON *read = cJSON_DetachItemFromObjectCaseSensitive(j, "read");
    *rest = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    int rc = *rest ? 0 : ERR_NOMEM;
    if (rc == 0 && read) {
        char *text = cJSON_PrintUnformatted(read);
        if (!text) {
            rc = ERR_NOMEM;
        } else {
            struct cfgread_job job = {.table = &g_table, .base = out, .name = "backend.read",
                                      .prefix = "backend.read"};
            rc = cfgread_text(&job, text, strlen(text), errs);
            if (rc == ERR_MALFORMED) {
                cfgread_problem(errs, "backend", "read", "must be an object");
                rc = ERR_CONFIG;
            }
            free(text);
        }
    }
    cJSON_Delete(read);
    return rc;
}

int aws_read_datastore_arn(const struct pipeline_config *pc, const struct aws_read_config *rc,
                           char *out, size_t cap)
{
    char part[32], acct[13];
    if (!rc->reader_role_arn[0] || !role_arn_valid(rc->reader_role_arn, part, sizeof part, acct))
        return ERR_CONFIG;
    int n = snprintf(out, cap, "arn:%s:medical-imaging:%s:%s:datastore/%s", part, pc->region,
                     acct, pc->hi.datastore_id);
    return n < 0 || (size_t)n >= cap ? ERR_CONFIG : 0;
}

/* ---- errors ------------------------------------------------------------------------------- */

int aws_read_map_err(int err, const struct http_result *res)
{
    if (err >= 0)
        return err;
    if (err > HTTP_ERR_LAST && err <= HTTP_ERR_BASE) { /* the http client's */
        long st = res ? res->status : 0;
        const char *code = res ? res->error_code : "";
        switch (err) {
        case HTTP_ERR_STATUS:
            if (st == 403 || strstr(code, "AccessDenied"))
                return -EACCES;
            if (st == 404)
                return ERR_NOTFOUND;
            if (st == 406 || st == 400 || st == 415)
                return ERR_UNSUPPORTED;
            return ERR_IO;
        case HTTP_ERR_PARSE:
        case HTTP_ERR_TOO_BIG:
            return ERR_MALFORMED;
        case HTTP_ERR_CANCELED:
            return ERR_WRONG_STATE;
        default: /* NETWORK, THROTTLED, CREDS, CONDITION */
            return ERR_IO;
        }
    }
    return err;
}

void aws_read_log_unscoped(const char *client_id, const char *what, size_t n_studies)
{
    struct logb b;
    if (log_begin(&b, LOG_INFO, "aws_read_unscoped")) {
        log_str(&b, "client_id", client_id);
        log_str(&b, "why", what);
        log_u64(&b, "studies", n_studies);
        log_str(&b, "msg", "reads use the reader role's unscoped session: the core's scope "
                           "filter (and ours) hold, not an STS session policy");
        log_end(&b);
    }
}

/* ---- life cycle ----------------------------------------------------------------------------- */

int aws_read_new(uv_loop_t *loop, const struct pipeline_config *pc,
                 const struct aws_read_config *rc, struct aws_read **out)
{
    *out = NULL;
    struct aws_read *r = calloc(1, sizeof *r);
    if (!r)
        return ERR_NOMEM;
    r->loop = loop;
    r->cfg = *rc;
    snprintf(r->region, sizeof r->region, "%s", pc->region);
    snprintf(r->table, sizeof r->table, "%s", pc->ddb.table);
    snprintf(r->datastore_id, sizeof r->datastore_id, "%s", pc->hi.datastore_id);
    if (aws_read_datastore_arn(pc, rc, r->datastore_arn, sizeof r->datastore_arn) < 0)
        r->datastore_arn[0] = '\0'; /* no reader role: no session policies either */
    struct http_opts ho;
    http_opts_default(&ho);
    ho.max_connections = (long)rc->max_connections;
    int err = http_client_new(loop, &ho, &r->http);
    if (err == 0)
        err = creds_provider_new(r->http, &r->base);
    if (err == 0 && rc->reader_role_arn[0]) {
        struct sts_opts so = {.region = pc->region, .endpoint = pc->endpoints.sts};
        err = sts_client_new(r->http, r->base, &so, &r->sts);
        if (err == 0) {
            struct sts_assume a = {.role_arn = rc->reader_role_arn,
                                   .session_name = "dicom-core-reader",
                                   .duration_s = rc->session_duration_s};
            err = sts_provider_new(r->sts, &a, &r->unscoped);
        }
    } else if (err == 0) {
        r->unscoped = r->base;
        log_msg(LOG_WARN, "aws_read_no_reader_role",
                "backend.read.reader_role_arn is not set: HealthImaging reads use the task's "
                "own credentials, without study-scoped STS sessions");
    }
    if (err == 0) {
        struct dw_opts dwo = {.region = pc->region,
                              .endpoint = pc->endpoints.medical_imaging_dicom,
                              .datastore_id = pc->hi.datastore_id,
                              .page_size = rc->page_size,
                              .max_results = rc->max_results,
                              .deadline_ms = rc->deadline_ms};
        err = dw_client_new(r->http, &dwo, &r->dw);
    }
    if (err == 0) {
        struct ddb_opts dop = {.region = pc->region, .endpoint = pc->endpoints.dynamodb};
        err = ddb_client_new(r->http, r->base, &dop, &r->ddb);
    }
    if (err < 0) {
        aws_read_free(r);
        return err;
    }
    *out = r;
    return 0;
}

static void on_http_closed(void *arg)
{
    *(bool *)arg = true;
}

void aws_read_free(struct aws_read *r)
{
    if (!r)
        return;
    r->closing = true;
    aws_read_creds_close_all(r);
    if (r->unscoped && r->unscoped != r->base)
        creds_provider_close(r->unscoped);
    r->unscoped = NULL;
    creds_provider_close(r->base);
    r->base = NULL;
    if (r->http) {
        bool closed = false;
        http_client_close(r->http, on_http_closed, &closed); /* ops in flight end now */
        for (int i = 0; !closed && i < 100000; i++)
            uv_run(r->loop, UV_RUN_NOWAIT); /* only close callbacks are left: no wait */
        if (!closed)
            log_msg(LOG_ERROR, "aws_read_close_stuck", "the read side's handles did not close");
    }
    if (r->live)
        log_msg(LOG_WARN, "aws_read_ops_left", "read operations were still running at stop");
    dw_client_free(r->dw);
    ddb_client_free(r->ddb);
    sts_client_free(r->sts);
    free(r);
}

/* ---- the operations table ---------------------------------------------------------------------- */

void aws_read_resume(struct backend_read_op *bop)
{
    struct aws_read_op *op = (struct aws_read_op *)bop;
    if (op->kind == READ_SEARCH)
        aws_read_search_resume(op);
    else
        aws_read_fetch_resume(op);
}

void aws_read_cancel(struct backend_read_op *bop)
{
    struct aws_read_op *op = (struct aws_read_op *)bop;
    if (op->kind == READ_SEARCH)
        aws_read_search_cancel(op);
    else
        aws_read_fetch_cancel(op);
}

const struct backend_read_ops aws_read_ops = {
    .search = aws_read_search,
    .fetch = aws_read_fetch,
    .resume = aws_read_resume,
    .cancel = aws_read_cancel,
    .scope_studies = aws_read_scope_studies,
};
