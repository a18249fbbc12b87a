/* gw-aws: drive the forwarder's AWS clients from the command line, one call per run, on a libuv
 * loop exactly as the forwarder does (credentials from the standard chain). For integration
 * tests against moto and the HealthImaging emulator, and for an operator's connectivity probe.
 *
 *   gw-aws [options] creds
 *   gw-aws [options] s3-put BUCKET KEY FILE         (single PUT or multipart by --threshold)
 *   gw-aws [options] s3-get BUCKET KEY OUTFILE
 *   gw-aws [options] ddb-put TABLE ITEM_JSON [COND [NAMES_JSON [VALUES_JSON]]]
 *   gw-aws [options] ddb-update TABLE KEY_JSON UPDATE_EXPR COND NAMES_JSON VALUES_JSON
 *   gw-aws [options] ddb-get TABLE KEY_JSON
 *   gw-aws [options] ddb-call OPERATION REQUEST_JSON
 *   gw-aws [options] ddb-query TABLE INDEX|- KEY_COND NAMES_JSON VALUES_JSON
 *   gw-aws [options] mi-start DATASTORE ROLE_ARN CLIENT_TOKEN INPUT_URI OUTPUT_URI
 *   gw-aws [options] mi-get DATASTORE JOB_ID
 *   gw-aws [options] mi-stow DATASTORE FILE
 *   gw-aws [options] qido|wado|read ...   (tool_gw_aws_read.h)
 * options: --region R --s3-endpoint URL --ddb-endpoint URL --mi-endpoint URL
 *          --mi-dicom-endpoint URL --sts-endpoint URL --threshold N --part-size N --sha256 HEX
 *          --max N --attempts N --sse AES256|aws:kms --kms-key-id ID
 * Exit: 0 success, 3 condition failed (DynamoDB), 1 any other failure (the AWS error code is
 * printed on stderr as "error: ... code=<Code>"), 2 usage. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/log.h"
#include "net/sha256_file.h"
#include "forwarder/aws/creds.h"
#include "forwarder/aws/ddb.h"
#include "forwarder/aws/http.h"
#include "forwarder/aws/mi.h"
#include "forwarder/aws/s3.h"
#include "forwarder/tool_gw_aws_read.h"

static int g_exit = 1;
static const char *g_out_path;

static void usage(void)
{
    fprintf(stderr, "usage: gw-aws [options] creds|s3-put|s3-get|ddb-put|ddb-update|ddb-get|"
                    "ddb-query|mi-start|mi-get|mi-stow|qido|wado|read ARGS (see the source "
                    "header)\n");
    exit(2);
}

static void report(const struct http_result *res)
{
    if (res->err == 0) {
        g_exit = 0;
        return;
    }
    g_exit = res->err == HTTP_ERR_CONDITION ? 3 : 1;
    fprintf(stderr, "error: %s status=%ld code=%s attempts=%u message=%s\n",
            http_err_str(res->err), res->status, res->error_code[0] ? res->error_code : "-",
            res->attempts, res->message);
}

static void on_done(void *arg, const struct http_result *res)
{
    (void)arg;
    report(res);
    if (res->err == 0)
        printf("ok attempts=%u\n", res->attempts);
}

static void on_get(void *arg, const struct http_result *res, const uint8_t *body, size_t len)
{
    (void)arg;
    report(res);
    if (res->err == 0) {
        FILE *f = fopen(g_out_path, "wb");
        if (!f || fwrite(body, 1, len, f) != len || fclose(f) != 0) {
            fprintf(stderr, "error: cannot write %s\n", g_out_path);
            g_exit = 1;
            return;
        }
        printf("ok bytes=%zu\n", len);
    }
}

static void on_ddb(void *arg, const struct http_result *res, const cJSON *out)
{
    (void)arg;
    report(res);
    if (out) {
        char *s = cJSON_PrintUnformatted(out);
        if (s)
            printf("%s\n", s);
        free(s);
    }
}

static void on_job(void *arg, const struct http_result *res, const struct mi_job *job)
{
    (void)arg;
    report(res);
    if (job)
        printf("job_id=%s status=%s datastore=%s attempts=%u message=%s\n", job->job_id,
               job->job_status, job->datastore_id, res->attempts, job->message);
}

static void on_stow(void *arg, const struct http_result *res, const struct mi_stow_result *out)
{
    (void)arg;
    report(res);
    if (out) {
        for (size_t i = 0; i < out->n; i++)
            printf("instance %s stored=%d failure=%d\n", out->inst[i].sop_instance_uid,
                   out->inst[i].stored, out->inst[i].failure_reason);
    }
}

static void on_creds(void *arg, int err, const struct aws_creds *c)
{
    struct creds_provider *p = arg;
    if (err < 0) {
        fprintf(stderr, "error: %s\n", http_err_str(err));
        g_exit = 1;
        return;
    }
    static const char *const names[] = {"none", "env", "ecs", "imds"};
    /* only a 4-character prefix of the key id, never the secret or token */
    printf("source=%s key_prefix=%.4s token=%s expires_at=%lld fetches=%llu\n",
           names[creds_provider_source(p)], c->access_key_id, c->session_token[0] ? "yes" : "no",
           (long long)c->expires_at, (unsigned long long)creds_fetch_count(p));
    g_exit = 0;
}

static cJSON *json_arg(const char *s)
{
    cJSON *j = cJSON_Parse(s);
    if (!j) {
        fprintf(stderr, "error: not JSON: %s\n", s);
        exit(2);
    }
    return j;
}

struct ctx {
    struct http_client *http;
    struct creds_provider *creds;
};

static void http_closed(void *arg)
{
    (void)arg;
}

int main(int argc, char **argv)
{
    log_setup("gw-aws", LOG_WARN);
    const char *region = getenv("AWS_DEFAULT_REGION") ? getenv("AWS_DEFAULT_REGION")
                                                      : "us-east-1";
    const char *s3_ep = NULL, *ddb_ep = NULL, *mi_ep = NULL, *mi_dicom_ep = NULL, *sha = NULL;
    const char *sts_ep = NULL;
    const char *sse = NULL, *kms = NULL;
    uint64_t threshold = 16u << 20, part_size = 8u << 20;
    size_t max = 64u << 20;
    unsigned attempts = 0;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (i + 1 >= argc)
            usage();
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--region"))
            region = v;
        else if (!strcmp(k, "--s3-endpoint"))
            s3_ep = v;
        else if (!strcmp(k, "--ddb-endpoint"))
            ddb_ep = v;
        else if (!strcmp(k, "--mi-endpoint"))
            mi_ep = v;
        else if (!strcmp(k, "--mi-dicom-endpoint"))
            mi_dicom_ep = v;
        else if (!strcmp(k, "--sts-endpoint"))
            sts_ep = v;
        else if (!strcmp(k, "--threshold"))
            threshold = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--part-size"))
            part_size = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--max"))
            max = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--attempts"))
            attempts = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(k, "--sha256"))
            sha = v;
        else if (!strcmp(k, "--sse"))
            sse = v;
        else if (!strcmp(k, "--kms-key-id"))
            kms = v;
        else
            usage();
    }
    if (i >= argc)
        usage();
    const char *cmd = argv[i++];
    int nargs = argc - i;
    char **a = argv + i;
    if (!strcmp(cmd, "qido") || !strcmp(cmd, "wado") || !strcmp(cmd, "read")) {
        struct gw_aws_opts ro = {.region = region, .ddb_ep = ddb_ep, .mi_dicom_ep = mi_dicom_ep,
                                 .sts_ep = sts_ep, .attempts = attempts};
        return gw_aws_read_cmd(cmd, nargs, a, &ro);
    }

    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return 1;
    struct http_opts ho;
    http_opts_default(&ho);
    ho.base_delay_ms = 50;
    ho.max_delay_ms = 1000;
    if (attempts)
        ho.max_attempts = attempts;
    struct ctx c = {0};
    if (http_client_new(&loop, &ho, &c.http) < 0 || creds_provider_new(c.http, &c.creds) < 0) {
        fprintf(stderr, "error: no credentials chain applies\n");
        return 1;
    }
    struct s3_opts so = {.region = region, .endpoint = s3_ep};
    if (sse)
        so.sse = !strcmp(sse, "aws:kms") ? S3_SSE_KMS : S3_SSE_AES256;
    so.kms_key_id = kms;
    struct ddb_opts dopt = {.region = region, .endpoint = ddb_ep};
    struct mi_opts mo = {.region = region, .endpoint = mi_ep, .dicom_endpoint = mi_dicom_ep};
    struct s3_client *s3 = NULL;
    struct ddb_client *ddb = NULL;
    struct mi_client *mi = NULL;
    if (s3_client_new(c.http, c.creds, &so, &s3) < 0 ||
        ddb_client_new(c.http, c.creds, &dopt, &ddb) < 0 ||
        mi_client_new(c.http, c.creds, &mo, &mi) < 0) {
        fprintf(stderr, "error: bad client options\n");
        return 2;
    }
    cJSON *j1 = NULL, *j2 = NULL, *j3 = NULL;
    int rc = 0;
    if (!strcmp(cmd, "creds")) {
        rc = creds_get(c.creds, on_creds, c.creds);
    } else if (!strcmp(cmd, "s3-put") && nargs == 3) {
        char hex[65];
        struct stat st;
        rc = stat(a[2], &st) < 0 ? -errno : sha256_file(a[2], hex);
        struct s3_sums sums = {.sha256_hex = sha ? sha : hex};
        if (rc == 0)
            rc = s3_upload_file(s3, a[0], a[1], a[2], 0, (uint64_t)st.st_size, &sums, threshold,
                                part_size, on_done, NULL);
    } else if (!strcmp(cmd, "s3-get") && nargs == 3) {
        g_out_path = a[2];
        rc = s3_get_object(s3, a[0], a[1], max, on_get, NULL);
    } else if (!strcmp(cmd, "ddb-put") && nargs >= 2 && nargs <= 5) {
        j1 = json_arg(a[1]);
        j2 = nargs >= 4 ? json_arg(a[3]) : NULL;
        j3 = nargs >= 5 ? json_arg(a[4]) : NULL;
        rc = ddb_put_item(ddb, a[0], j1, nargs >= 3 ? a[2] : NULL, j2, j3, on_ddb, NULL);
    } else if (!strcmp(cmd, "ddb-update") && nargs == 6) {
        j1 = json_arg(a[1]);
        j2 = json_arg(a[4]);
        j3 = json_arg(a[5]);
        rc = ddb_update_item(ddb, a[0], j1, a[2], a[3], j2, j3, "ALL_NEW", on_ddb, NULL);
    } else if (!strcmp(cmd, "ddb-get") && nargs == 2) {
        j1 = json_arg(a[1]);
        rc = ddb_get_item(ddb, a[0], j1, true, on_ddb, NULL);
    } else if (!strcmp(cmd, "ddb-call") && nargs == 2) {
        j1 = json_arg(a[1]);
        rc = ddb_call(ddb, a[0], j1, on_ddb, NULL);
    } else if (!strcmp(cmd, "ddb-query") && nargs == 5) {
        j2 = json_arg(a[3]);
        j3 = json_arg(a[4]);
        rc = ddb_query(ddb, a[0], strcmp(a[1], "-") ? a[1] : NULL, a[2], j2, j3, NULL, 0,
                       on_ddb, NULL);
    } else if (!strcmp(cmd, "mi-start") && nargs == 5) {
        struct mi_start_job q = {a[0], a[1], a[2], a[3], a[4], NULL};
        rc = mi_start_import_job(mi, &q, on_job, NULL);
    } else if (!strcmp(cmd, "mi-get") && nargs == 2) {
        rc = mi_get_import_job(mi, a[0], a[1], on_job, NULL);
    } else if (!strcmp(cmd, "mi-stow") && nargs == 2) {
        struct stat st;
        rc = stat(a[1], &st) == 0 ? 0 : -errno;
        if (rc == 0)
            rc = mi_store_dicom(mi, a[0], NULL, a[1], 0, (uint64_t)st.st_size, on_stow, NULL);
    } else {
        usage();
    }
    if (rc < 0) {
        fprintf(stderr, "error: %s\n", http_err_str(rc));
        g_exit = 1;
    } else {
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    cJSON_Delete(j1);
    cJSON_Delete(j2);
    cJSON_Delete(j3);
    creds_provider_close(c.creds);
    http_client_close(c.http, http_closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    s3_client_free(s3);
    ddb_client_free(ddb);
    mi_client_free(mi);
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "error: loop not empty at exit\n");
        return 1;
    }
    return g_exit;
}
