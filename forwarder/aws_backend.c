#include "aws_backend.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_commit.h"
#include "aws/creds.h"
#include "aws/ddb.h"
#include "aws/http.h"
#include "aws/mi.h"
#include "aws/s3.h"
#include "aws_read.h"
#include "aws_share.h"
#include "common/log.h"
#include "pipeline.h"
#include "pipeline_config.h"

/* One awaited acknowledgement; travels core -> forwarder -> core. */
struct ack_rec {
    struct ack_rec *next;
    char id[64];
    backend_ack_cb cb;
    void *arg;
    int result;
    char refused[65]; /* "" or why the object is refused for good */
};

struct aws_backend {
    struct pipeline_config cfg;
    struct aws_read_config rcfg; /* "read": the read side (aws_read.h), on the core's loop */
    struct aws_read *reader;
    struct spool *spool;
    bool fsync;
    enum pipeline_ack ack;
    struct metrics *metrics;

    uv_loop_t *core_loop;
    uv_async_t core_async; /* forwarder -> core: finished acks */

    pthread_t thread;
    uv_loop_t loop;
    uv_async_t fwd_async; /* core -> forwarder: notify, await, stop */
    uv_timer_t stats_timer;
    struct http_client *http;
    struct creds_provider *creds;
    struct s3_client *s3;
    struct ddb_client *ddb;
    struct mi_client *mi;
    struct pipeline *pipe;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started; /* the thread finished its start-up (start_rc says how) */
    int start_rc;
    bool kicked, stop;
    struct ack_rec *to_fwd, *to_core; /* under mu */
    struct backend_stats stats;       /* under mu: refreshed by the thread */
    struct aws_commit *commit;        /* Storage Commitment, on the core's loop (aws_commit.h) */
};

struct aws_commit *aws_backend_commit(void *impl)
{
    return impl ? ((struct aws_backend *)impl)->commit : NULL;
}

static int ack_of(enum spool_ack a)
{
    return a == SPOOL_ACK_S3 ? PIPELINE_ACK_S3 : a == SPOOL_ACK_HEALTHIMAGING ? PIPELINE_ACK_HI :
                                                                               PIPELINE_ACK_NONE;
}

static int ops_check_config(const char *json, enum spool_ack ack, struct wbuf *errs)
{
    struct pipeline_config pc;
    struct aws_read_config rcfg;
    char *rest = NULL; /* the object without "read", which is the read side's */
    int rc0 = aws_read_config_split(json, &rest, &rcfg, errs);
    if (!rest)
        return rc0 < 0 ? rc0 : ERR_NOMEM;
    int rc = pipeline_config_parse(rest, &pc, errs);
    free(rest);
    int rc2 = pipeline_config_check_ack(&pc, (int)ack, errs); /* mode is read regardless */
    return rc0 < 0 ? rc0 : rc < 0 ? rc : rc2;
}

struct aws_read *aws_backend_reader(void *impl)
{
    return ((struct aws_backend *)impl)->reader;
}

/* ---- forwarder thread -------------------------------------------------------------------- */

static void on_acked(void *arg, uint64_t token, int result, const char *refusal)
{
    struct aws_backend *b = arg;
    struct ack_rec *r = (struct ack_rec *)(uintptr_t)token;
    /* the core names only its own and errno codes; the forwarder logged the detail */
    r->result = result <= HTTP_ERR_BASE && result > HTTP_ERR_LAST ? ERR_IO : result;
    snprintf(r->refused, sizeof r->refused, "%s", result < 0 && refusal ? refusal : "");
    pthread_mutex_lock(&b->mu);
    r->next = b->to_core;
    b->to_core = r;
    pthread_mutex_unlock(&b->mu);
    uv_async_send(&b->core_async);
}

static void refresh_stats(struct aws_backend *b)
{
    if (!b->pipe)
        return;
    struct pipeline_stats s;
    pipeline_get_stats(b->pipe, &s);
    pthread_mutex_lock(&b->mu);
    b->stats.stored = s.uploaded;
    b->stats.duplicates = s.duplicates;
    b->stats.failed = s.failed;
    b->stats.batches_closed = s.jobs_completed + s.jobs_failed;
    pthread_mutex_unlock(&b->mu);
}

static void on_stats_timer(uv_timer_t *t)
{
    refresh_stats(t->data);
}

static void on_fwd_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_http_closed(void *arg)
{
    struct aws_backend *b = arg;
    uv_close((uv_handle_t *)&b->fwd_async, on_fwd_closed);
}

static void on_pipeline_stopped(void *arg)
{
    struct aws_backend *b = arg;
    creds_provider_close(b->creds);
    b->creds = NULL;
    http_client_close(b->http, on_http_closed, b);
}

static void on_fwd_async(uv_async_t *a)
{
    struct aws_backend *b = a->data;
    pthread_mutex_lock(&b->mu);
    struct ack_rec *list = b->to_fwd;
    b->to_fwd = NULL;
    bool kicked = b->kicked, stop = b->stop;
    b->kicked = false;
    pthread_mutex_unlock(&b->mu);
    /* oldest first */
    struct ack_rec *rev = NULL;
    while (list) {
        struct ack_rec *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    if (kicked && !stop)
        pipeline_kick(b->pipe);
    while (rev) {
        struct ack_rec *n = rev->next;
        rev->next = NULL;
        pipeline_await(b->pipe, rev->id, (uint64_t)(uintptr_t)rev);
        rev = n;
    }
    if (stop && !uv_is_closing((uv_handle_t *)&b->stats_timer)) {
        refresh_stats(b);
        uv_close((uv_handle_t *)&b->stats_timer, NULL);
        pipeline_stop(b->pipe, on_pipeline_stopped, b);
    }
}

static int open_clients(struct aws_backend *b)
{
    struct http_opts ho;
    http_opts_default(&ho);
    ho.max_connections = (long)b->cfg.max_uploads + 16;
    TRY(http_client_new(&b->loop, &ho, &b->http));
    int rc = creds_provider_new(b->http, &b->creds);
    if (rc < 0) {
        log_msg(LOG_ERROR, "aws_credentials_unavailable",
                "no AWS credentials source: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, run "
                "in ECS, or on EC2 with an instance profile");
        return rc;
    }
    struct s3_opts so = {.region = b->cfg.region,
                         .endpoint = b->cfg.endpoints.s3,
                         .sse = b->cfg.s3.sse == PIPELINE_SSE_KMS ? S3_SSE_KMS : S3_SSE_AES256,
                         .kms_key_id = b->cfg.s3.kms_key_id[0] ? b->cfg.s3.kms_key_id : NULL,
                         .checksum = b->cfg.s3.checksum == PIPELINE_CHECKSUM_CRC64NVME
                                         ? S3_CHECKSUM_CRC64NVME
                                         : S3_CHECKSUM_SHA256};
    TRY(s3_client_new(b->http, b->creds, &so, &b->s3));
    struct ddb_opts dop = {.region = b->cfg.region, .endpoint = b->cfg.endpoints.dynamodb};
    TRY(ddb_client_new(b->http, b->creds, &dop, &b->ddb));
    struct mi_opts mo = {.region = b->cfg.region,
                         .endpoint = b->cfg.endpoints.medical_imaging,
                         .dicom_endpoint = b->cfg.endpoints.medical_imaging_dicom};
    TRY(mi_client_new(b->http, b->creds, &mo, &b->mi));
    struct pipeline_env env = {.loop = &b->loop,
                               .cfg = &b->cfg,
                               .spool = b->spool,
                               .fsync = b->fsync,
                               .ack = b->ack,
                               .s3 = b->s3,
                               .ddb = b->ddb,
                               .mi = b->mi,
                               .metrics = b->metrics,
                               .acked = on_acked,
                               .acked_arg = b};
    return pipeline_start(&env, &b->pipe);
}

static void noop_closed(void *arg)
{
    (void)arg;
}

static void close_clients_sync(struct aws_backend *b)
{
    /* start-up failed: close what was opened, on this thread's loop */
    if (b->creds)
        creds_provider_close(b->creds);
    b->creds = NULL;
    if (b->http)
        http_client_close(b->http, noop_closed, NULL);
    b->http = NULL;
    uv_close((uv_handle_t *)&b->fwd_async, NULL);
    uv_close((uv_handle_t *)&b->stats_timer, NULL);
    uv_run(&b->loop, UV_RUN_DEFAULT);
}

static void *fwd_thread(void *arg)
{
    struct aws_backend *b = arg;
    int rc = open_clients(b);
    if (rc == 0)
        uv_timer_start(&b->stats_timer, on_stats_timer, 1000, 1000);
    pthread_mutex_lock(&b->mu);
    b->started = true;
    b->start_rc = rc;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    if (rc < 0) {
        close_clients_sync(b);
        return NULL;
    }
    uv_run(&b->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- core side ----------------------------------------------------------------------------- */

static void on_core_async(uv_async_t *a)
{
    struct aws_backend *b = a->data;
    pthread_mutex_lock(&b->mu);
    struct ack_rec *list = b->to_core;
    b->to_core = NULL;
    pthread_mutex_unlock(&b->mu);
    while (list) {
        struct ack_rec *n = list->next;
        list->cb(list->arg, list->result, list->refused[0] ? list->refused : NULL);
        free(list);
        list = n;
    }
}

static int ops_start(const struct backend_env *env, void **impl)
{
    uv_loop_t *core_loop = env->loop;
    struct aws_backend *b = calloc(1, sizeof *b);
    if (!b)
        return ERR_NOMEM;
    struct wbuf errs;
    wbuf_init(&errs, 64u * 1024u);
    char *rest = NULL;
    int rc0 = aws_read_config_split(env->config_json, &rest, &b->rcfg, &errs);
    int rc = rest ? pipeline_config_parse(rest, &b->cfg, &errs) : ERR_NOMEM;
    free(rest);
    int rc2 = pipeline_config_check_ack(&b->cfg, (int)env->ack, &errs);
    rc = rc0 < 0 ? ERR_CONFIG : rc < 0 ? rc : rc2;
    if (rc < 0) {
        wbuf_u8(&errs, 0);
        const char *line = errs.p ? (const char *)errs.p : "";
        while (*line) {
            const char *nl = strchr(line, '\n');
            size_t n = nl ? (size_t)(nl - line) : strlen(line);
            struct logb lb;
            if (log_begin(&lb, LOG_ERROR, "config_invalid")) {
                log_strn(&lb, "problem", line, n);
                log_end(&lb);
            }
            line += n + (nl ? 1 : 0);
        }
        wbuf_cleanup(&errs);
        free(b);
        return ERR_CONFIG;
    }
    wbuf_cleanup(&errs);
    b->spool = env->spool;
    b->fsync = env->fsync;
    b->ack = (enum pipeline_ack)ack_of(env->ack);
    b->metrics = env->metrics;
    b->core_loop = core_loop;
    if ((rc = http_global_init()) < 0) {
        free(b);
        return rc;
    }
    if ((rc = aws_read_new(core_loop, &b->cfg, &b->rcfg, &b->reader)) < 0) {
        log_msg(LOG_ERROR, "aws_read_unavailable", "the read side could not start");
        free(b);
        return rc;
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    if ((rc = uv_loop_init(&b->loop)) < 0)
        goto fail_loop;
    if ((rc = uv_async_init(&b->loop, &b->fwd_async, on_fwd_async)) < 0)
        goto fail_fwd;
    b->fwd_async.data = b;
    uv_timer_init(&b->loop, &b->stats_timer);
    b->stats_timer.data = b;
    if ((rc = uv_async_init(core_loop, &b->core_async, on_core_async)) < 0)
        goto fail_core;
    b->core_async.data = b;
    uv_unref((uv_handle_t *)&b->core_async);
    if ((rc = -pthread_create(&b->thread, NULL, fwd_thread, b)) < 0)
        goto fail_thread;
    pthread_mutex_lock(&b->mu);
    while (!b->started)
        pthread_cond_wait(&b->cv, &b->mu);
    rc = b->start_rc;
    pthread_mutex_unlock(&b->mu);
    if (rc < 0) {
        pthread_join(b->thread, NULL);
        pipeline_free(b->pipe);
        mi_client_free(b->mi);
        ddb_client_free(b->ddb);
        s3_client_free(b->s3);
        uv_loop_close(&b->loop);
        uv_close((uv_handle_t *)&b->core_async, NULL);
        uv_run(core_loop, UV_RUN_NOWAIT);
        aws_read_free(b->reader);
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
        free(b);
        return rc;
    }
    if (aws_commit_new(core_loop, &b->cfg, &b->commit) < 0)
        log_msg(LOG_ERROR, "commit_unavailable", "Storage Commitment's DynamoDB client failed");
    *impl = b;
    return 0;

fail_thread:
    uv_close((uv_handle_t *)&b->core_async, NULL);
    uv_run(core_loop, UV_RUN_NOWAIT);
fail_core:
    uv_close((uv_handle_t *)&b->fwd_async, NULL);
    uv_close((uv_handle_t *)&b->stats_timer, NULL);
    uv_run(&b->loop, UV_RUN_DEFAULT);
fail_fwd:
    uv_loop_close(&b->loop);
fail_loop:
    aws_read_free(b->reader);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
    return rc;
}

static void ops_notify(void *impl)
{
    struct aws_backend *b = impl;
    pthread_mutex_lock(&b->mu);
    b->kicked = true;
    pthread_mutex_unlock(&b->mu);
    uv_async_send(&b->fwd_async);
}

static void ops_await(void *impl, const char *spool_id, backend_ack_cb cb, void *arg)
{
    struct aws_backend *b = impl;
    struct ack_rec *r = calloc(1, sizeof *r);
    if (!r) {
        cb(arg, ERR_NOMEM, NULL);
        return;
    }
    snprintf(r->id, sizeof r->id, "%s", spool_id);
    r->cb = cb;
    r->arg = arg;
    pthread_mutex_lock(&b->mu);
    r->next = b->to_fwd;
    b->to_fwd = r;
    pthread_mutex_unlock(&b->mu);
    uv_async_send(&b->fwd_async);
}

static void ops_stats(void *impl, struct backend_stats *out)
{
    struct aws_backend *b = impl;
    pthread_mutex_lock(&b->mu);
    *out = b->stats;
    pthread_mutex_unlock(&b->mu);
}

static void ops_stop(void *impl)
{
    struct aws_backend *b = impl;
    if (!b)
        return;
    aws_read_free(b->reader); /* on the core's loop, which the caller no longer runs */
    b->reader = NULL;
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_mutex_unlock(&b->mu);
    uv_async_send(&b->fwd_async);
    pthread_join(b->thread, NULL);
    /* the thread's loop ran dry: every request ended (cancelled ones included) */
    pipeline_free(b->pipe);
    mi_client_free(b->mi);
    ddb_client_free(b->ddb);
    s3_client_free(b->s3);
    if (uv_loop_close(&b->loop) != 0)
        log_msg(LOG_ERROR, "forwarder_loop_busy", "handles left open at stop");
    /* awaits that were queued for the thread but never taken, and answers not yet delivered */
    pthread_mutex_lock(&b->mu);
    struct ack_rec *left = b->to_fwd;
    b->to_fwd = NULL;
    pthread_mutex_unlock(&b->mu);
    while (left) {
        struct ack_rec *n = left->next;
        left->cb(left->arg, ERR_WRONG_STATE, NULL);
        free(left);
        left = n;
    }
    on_core_async(&b->core_async);
    uv_close((uv_handle_t *)&b->core_async, NULL);
    uv_run(b->core_loop, UV_RUN_NOWAIT);
    aws_commit_free(b->commit);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}

/* dicom-core status | failed | redrive (--all | SOP_INSTANCE_UID...) */
static int ops_cli(const char *cmd, int argc, char **argv, const char *spool_dir,
                   const char *config_json)
{
    (void)config_json;
    bool json = false, all = false;
    const char *sops[64];
    size_t n_sops = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--all") == 0)
            all = true;
        else if (n_sops < sizeof sops / sizeof sops[0])
            sops[n_sops++] = argv[i];
    }
    int rc;
    if (strcmp(cmd, "share") == 0)
        return aws_share_cli(argc, argv, config_json);
    if (strcmp(cmd, "status") == 0)
        return pipeline_cli_status(spool_dir, json) < 0 ? 1 : 0;
    if (strcmp(cmd, "failed") == 0)
        return pipeline_cli_failed_list(spool_dir, json) < 0 ? 1 : 0;
    if (strcmp(cmd, "redrive") != 0)
        return -1;
    if (!all && n_sops == 0) {
        fprintf(stderr, "dicom-core redrive: give --all or SOP Instance UIDs\n");
        return 1;
    }
    rc = 0;
    for (size_t i = 0; i < (all ? 1 : n_sops) && rc >= 0; i++) {
        int n = pipeline_cli_redrive(spool_dir, all ? NULL : sops[i]);
        if (n >= 0)
            printf("%d re-drive request(s) written for %s\n", n, all ? "all" : sops[i]);
        rc = n;
    }
    return rc < 0 ? 1 : 0;
}

const struct backend_ops aws_backend_ops = {
    .name = "aws",
    .needs_sha256 = true, /* DynamoDB items are keyed INSTANCE#<sop> / SHA256#<hash> */
    .check_config = ops_check_config,
    .start = ops_start,
    .notify = ops_notify,
    .await = ops_await,
    .get_stats = ops_stats,
    .stop = ops_stop,
    .cli = ops_cli,
    .cli_usage = "  status                  the forwarder's state: spool depth and age, batches, import\n"
                 "                          jobs in flight, last errors (aws backend)\n"
                 "  failed                  objects the aws backend could not import (FAILED)\n"
                 "  redrive                 import FAILED objects again (fetched back from S3)\n"
                 "  share                   grant, revoke and list study shares; temporary\n"
                 "                          study-scoped credentials for a DICOMweb viewer (aws)\n",
    .read = &aws_backend_read_ops,
    .commit = &aws_commit_ops,
};
