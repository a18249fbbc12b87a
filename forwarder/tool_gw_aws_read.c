/* gw-aws's read commands: see tool_gw_aws_read.h. */
#include "tool_gw_aws_read.h"
#include "tool_gw_aws_read_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/cfgread.h"
#include "common/dcm_dict.h"
#include "common/dcm_query.h"
#include "common/hex.h"
#include "forwarder/aws/creds.h"
#include "forwarder/aws/dicomweb.h"
#include "forwarder/aws/http.h"
#include "forwarder/aws/sts.h"
#include "forwarder/aws/sts_policy.h"
#include "forwarder/aws_read.h"
#include "forwarder/aws_share.h"

int gwr_usage(void)
{
    fprintf(stderr, "gw-aws: bad arguments for a read command (see "
                    "forwarder/tool_gw_aws_read.h)\n");
    return 2;
}

static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    }
    if (f)
        fclose(f);
    return kb;
}

int gwr_exit_for(int err)
{
    if (err == 0)
        return 0;
    if (err == ERR_LIMIT)
        return 4;
    if (err == -EACCES)
        return 5;
    return 1;
}

const char *gwr_err_name(int err)
{
    return err == 0 ? "ok" : err == -EACCES ? "EACCES" : http_err_str(err);
}

static void on_http_closed(void *arg)
{
    (void)arg;
}

void gwr_close(struct tctx *t)
{
    if (t->reader)
        aws_read_free(t->reader);
    creds_provider_close(t->scoped);
    creds_provider_close(t->chain);
    if (t->http)
        http_client_close(t->http, on_http_closed, NULL);
    if (t->timer_live)
        uv_close((uv_handle_t *)&t->timer, NULL);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    dw_client_free(t->dw);
    sts_client_free(t->sts);
    if (t->out)
        fclose(t->out);
    EVP_MD_CTX_free(t->md);
    if (uv_loop_close(&t->loop) != 0)
        fprintf(stderr, "error: loop not empty at exit\n");
}

/* The loop, an http client, the credentials chain, and with assume a session of that role
 * (with a session policy for studies_csv when given). */
static int tctx_open(struct tctx *t, const struct gw_aws_opts *o, const char *datastore,
                     const char *assume, const char *studies_csv)
{
    memset(t, 0, sizeof *t);
    t->exit = 1;
    if (uv_loop_init(&t->loop) != 0)
        return 1;
    struct http_opts ho;
    http_opts_default(&ho);
    ho.base_delay_ms = 50;
    ho.max_delay_ms = 1000;
    if (o->attempts)
        ho.max_attempts = o->attempts;
    if (http_client_new(&t->loop, &ho, &t->http) < 0 ||
        creds_provider_new(t->http, &t->chain) < 0) {
        fprintf(stderr, "error: no credentials chain applies\n");
        return 1;
    }
    t->use = t->chain;
    if (!assume)
        return 0;
    struct sts_opts so = {.region = o->region, .endpoint = o->sts_ep};
    if (sts_client_new(t->http, t->chain, &so, &t->sts) < 0)
        return 1;
    char policy[STS_POLICY_MAX_CHARS + 1], arn[200];
    const char *uids[256];
    size_t n = 0, len;
    char *csv = studies_csv ? strdup(studies_csv) : NULL;
    for (char *tok = csv ? strtok(csv, ",") : NULL; tok && n < 256; tok = strtok(NULL, ","))
        uids[n++] = tok;
    struct pipeline_config pc = {0};
    struct aws_read_config rc = {0};
    snprintf(pc.region, sizeof pc.region, "%s", o->region);
    snprintf(pc.hi.datastore_id, sizeof pc.hi.datastore_id, "%s", datastore ? datastore : "");
    snprintf(rc.reader_role_arn, sizeof rc.reader_role_arn, "%s", assume);
    int err = 0;
    if (n > 0) {
        err = aws_read_datastore_arn(&pc, &rc, arn, sizeof arn);
        if (err == 0)
            err = sts_policy_build(arn, uids, n, STS_POLICY_VIEWER, policy, sizeof policy, &len);
    }
    struct sts_assume a = {.role_arn = assume, .session_name = "gw-aws-read",
                           .duration_s = 900, .policy = n > 0 ? policy : NULL};
    if (err == 0)
        err = sts_provider_new(t->sts, &a, &t->scoped);
    free(csv);
    if (err < 0) {
        fprintf(stderr, "error: --assume: %s\n", err_str(err));
        return 1;
    }
    t->use = t->scoped;
    return 0;
}

void gwr_print_uids(const struct dcm_ds *ds)
{
    static const struct {
        uint32_t tag;
        const char *name;
    } keys[] = {{0x00100020u, "patient"},
                {0x0020000Du, "study"},
                {0x0020000Eu, "series"},
                {0x00080018u, "sop"}};
    printf("result");
    const struct dcm_item *root = dcm_ds_root(ds);
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        char v[80];
        const struct dcm_elem *e = dcm_item_find(root, keys[i].tag);
        if (e && dcm_elem_cstr(e, 0, v, sizeof v) == 0)
            printf(" %s=%s", keys[i].name, v);
    }
    printf(" elems=%zu\n", dcm_item_count(root));
}

/* ---- qido ------------------------------------------------------------------------------------ */

static void on_resume_timer(uv_timer_t *tm)
{
    struct tctx *t = tm->data;
    if (t->dwop)
        dw_resume(t->dwop);
    if (t->bop)
        aws_read_ops.resume(t->bop);
}

static void resume_later(struct tctx *t, uint64_t ms)
{
    if (!t->timer_live) {
        uv_timer_init(&t->loop, &t->timer);
        t->timer.data = t;
        t->timer_live = true;
    }
    uv_timer_start(&t->timer, on_resume_timer, ms, 0);
}

static int on_qido_result(void *arg, struct dcm_ds *ds)
{
    struct tctx *t = arg;
    t->results++;
    gwr_print_uids(ds);
    if (t->pause_each) {
        resume_later(t, 0);
        return 1;
    }
    return 0;
}

static void on_qido_done(void *arg, int err, const struct http_result *res, const char *why)
{
    struct tctx *t = arg;
    t->dwop = NULL;
    if (t->timer_live)
        uv_timer_stop(&t->timer);
    printf("done err=%s status=%ld code=%s results=%llu why=%s\n", gwr_err_name(err),
           res ? res->status : 0, res && res->error_code[0] ? res->error_code : "-",
           (unsigned long long)t->results, why);
    bool denied = res && (res->status == 403);
    t->exit = denied ? 5 : gwr_exit_for(err);
}

static int cmd_qido(int argc, char **argv, const struct gw_aws_opts *o)
{
    if (argc < 2)
        return gwr_usage();
    const char *ds = argv[0], *lvl = argv[1], *assume = NULL, *studies = NULL;
    struct dw_qido q = {0};
    struct dw_qido_key keys[32];
    const char *incl[60];
    char kbuf[32][256];
    struct dw_opts dwo = {.region = o->region, .endpoint = o->mi_dicom_ep, .datastore_id = ds};
    bool pause_each = false;
    q.level = !strcmp(lvl, "studies") ? DW_STUDIES : !strcmp(lvl, "series") ? DW_SERIES
                                                                           : DW_INSTANCES;
    if (strcmp(lvl, "studies") && strcmp(lvl, "series") && strcmp(lvl, "instances"))
        return gwr_usage();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--pause-each")) {
            pause_each = true;
            continue;
        }
        if (!v)
            return gwr_usage();
        i++;
        if (!strcmp(a, "--study"))
            q.study = v;
        else if (!strcmp(a, "--series"))
            q.series = v;
        else if (!strcmp(a, "--include") && q.n_include < 60)
            incl[q.n_include++] = v;
        else if (!strcmp(a, "--page-size"))
            dwo.page_size = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--max-results"))
            dwo.max_results = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--deadline-ms"))
            dwo.deadline_ms = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--assume"))
            assume = v;
        else if (!strcmp(a, "--studies"))
            studies = v;
        else if (!strcmp(a, "--key") && q.n_keys < 32 && strchr(v, '=')) {
            snprintf(kbuf[q.n_keys], sizeof kbuf[q.n_keys], "%s", v);
            char *eq = strchr(kbuf[q.n_keys], '=');
            *eq = '\0';
            keys[q.n_keys].name = kbuf[q.n_keys];
            keys[q.n_keys].value = eq + 1;
            q.n_keys++;
        } else
            return gwr_usage();
    }
    q.keys = keys;
    q.includefield = incl;
    struct tctx t;
    if (tctx_open(&t, o, ds, assume, studies) != 0 || dw_client_new(t.http, &dwo, &t.dw) < 0) {
        gwr_close(&t);
        return 1;
    }
    t.pause_each = pause_each;
    struct dw_search_cbs cbs = {.result = on_qido_result, .done = on_qido_done, .arg = &t};
    int rc = dw_search(t.dw, t.use, &q, &cbs, &t.dwop);
    if (rc < 0)
        fprintf(stderr, "error: %s\n", err_str(rc));
    else
        uv_run(&t.loop, UV_RUN_DEFAULT);
    gwr_close(&t);
    return rc < 0 ? 2 : t.exit;
}

/* ---- wado (and read get): the dataset to a file ------------------------------------------ */

int gwr_take(struct tctx *t, const uint8_t *p, size_t n)
{
    if (t->out && fwrite(p, 1, n, t->out) != n)
        return -EIO;
    EVP_DigestUpdate(t->md, p, n);
    t->bytes += n;
    if (!t->rate)
        return 0;
    t->window_bytes += n;
    uint64_t now = uv_now(&t->loop), elapsed = now - t->window_start;
    uint64_t due = t->window_bytes * 1000u / t->rate; /* ms the bytes so far may take */
    if (due > elapsed + 5) {
        resume_later(t, due - elapsed); /* a slow receiver: pause the download */
        return 1;
    }
    return 0;
}

void gwr_print_end(struct tctx *t, int err, const char *why)
{
    uint8_t h[32];
    char hexs[65];
    unsigned len = 0;
    EVP_DigestFinal_ex(t->md, h, &len);
    hex_lower(h, 32, hexs);
    printf("done err=%s bytes=%llu sha256=%s peak_rss_kb=%ld why=%s\n", gwr_err_name(err),
           (unsigned long long)t->bytes, hexs, peak_rss_kb(), why);
    fflush(stdout);
}

static int on_wado_begin(void *arg, const struct dw_instance *i)
{
    (void)arg;
    printf("begin ts=%s sop_class=%s sop=%s bytes=%llu\n", i->ts, i->sop_class, i->sop,
           (unsigned long long)i->bytes);
    return 0;
}

static int on_wado_data(void *arg, const uint8_t *p, size_t n)
{
    return gwr_take(arg, p, n);
}

static void on_wado_done(void *arg, int err, const struct http_result *res, const char *why)
{
    struct tctx *t = arg;
    t->dwop = NULL;
    if (t->timer_live)
        uv_timer_stop(&t->timer);
    gwr_print_end(t, err, why);
    printf("status=%ld code=%s\n", res ? res->status : 0,
           res && res->error_code[0] ? res->error_code : "-");
    t->exit = res && res->status == 403 ? 5 : gwr_exit_for(err);
}

int gwr_open_out(struct tctx *t, const char *path)
{
    t->md = EVP_MD_CTX_new();
    if (!t->md || EVP_DigestInit_ex(t->md, EVP_sha256(), NULL) != 1)
        return ERR_NOMEM;
    if (strcmp(path, "-") != 0) {
        t->out = fopen(path, "wb");
        if (!t->out)
            return -errno;
    }
    t->window_start = uv_now(&t->loop);
    return 0;
}

static int cmd_wado(int argc, char **argv, const struct gw_aws_opts *o)
{
    if (argc < 5)
        return gwr_usage();
    struct dw_wado w = {.study = argv[1], .series = argv[2], .sop = argv[3]};
    struct dw_opts dwo = {.region = o->region, .endpoint = o->mi_dicom_ep, .datastore_id = argv[0]};
    const char *assume = NULL, *studies = NULL;
    uint64_t rate = 0;
    for (int i = 5; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--multipart")) {
            w.multipart = true;
            continue;
        }
        if (!v)
            return gwr_usage();
        i++;
        if (!strcmp(a, "--ts"))
            w.transfer_syntax = v;
        else if (!strcmp(a, "--rate"))
            rate = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--deadline-ms"))
            dwo.deadline_ms = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--assume"))
            assume = v;
        else if (!strcmp(a, "--studies"))
            studies = v;
        else
            return gwr_usage();
    }
    struct tctx t;
    int rc = tctx_open(&t, o, argv[0], assume, studies) != 0 ? -1 : 0;
    if (rc == 0)
        rc = dw_client_new(t.http, &dwo, &t.dw);
    if (rc == 0)
        rc = gwr_open_out(&t, argv[4]);
    t.rate = rate;
    struct dw_wado_cbs cbs = {.begin = on_wado_begin, .data = on_wado_data,
                              .done = on_wado_done, .arg = &t};
    if (rc == 0)
        rc = dw_retrieve(t.dw, t.use, &w, &cbs, &t.dwop);
    if (rc == 0)
        uv_run(&t.loop, UV_RUN_DEFAULT);
    else
        fprintf(stderr, "error: %s\n", err_str(rc));
    gwr_close(&t);
    return rc < 0 ? 1 : t.exit;
}

int gw_aws_read_cmd(const char *cmd, int argc, char **argv, const struct gw_aws_opts *o)
{
    if (!strcmp(cmd, "qido"))
        return cmd_qido(argc, argv, o);
    if (!strcmp(cmd, "wado"))
        return cmd_wado(argc, argv, o);
    return gwr_cmd_read(argc, argv, o);
}
