/* gw-aws read CONFIG ...: the aws backend's read side from the command line (see
 * tool_gw_aws_read.h). */
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/cfgread.h"
#include "common/dcm_dict.h"
#include "common/dcm_query.h"
#include "forwarder/aws_read.h"
#include "forwarder/aws_share.h"
#include "tool_gw_aws_read_int.h"

struct rctx {
    struct tctx *t;
    const char *client;
    enum grant_scope scope;
    int argc;
    char **argv;
    const char *sub;
    int repeat;
    const char *between;
    char **studies;
    size_t n_studies;
};

static void run_sub(struct rctx *c);

static int on_get_begin(void *arg, const struct backend_instance *i)
{
    (void)arg;
    printf("begin ts=%s sop_class=%s sop=%s bytes=%llu\n", i->ts, i->sop_class, i->sop,
           (unsigned long long)i->bytes);
    return 0;
}

static int on_get_data(void *arg, const uint8_t *p, size_t n)
{
    struct rctx *c = arg;
    return gwr_take(c->t, p, n);
}

static void on_get_done(void *arg, int err, const char *why)
{
    struct rctx *c = arg;
    c->t->bop = NULL;
    gwr_print_end(c->t, err, why);
    c->t->exit = gwr_exit_for(err);
    if (--c->repeat > 0 && err == 0) {
        if (c->between && system(c->between) != 0)
            fprintf(stderr, "warning: --between command failed\n");
        EVP_DigestInit_ex(c->t->md, EVP_sha256(), NULL);
        c->t->bytes = 0;
        run_sub(c);
    }
}

static int on_find_result(void *arg, const struct dcm_ds *cand)
{
    struct rctx *c = arg;
    c->t->results++;
    gwr_print_uids(cand);
    return 0;
}

static void on_find_done(void *arg, int err, const char *why)
{
    struct rctx *c = arg;
    c->t->bop = NULL;
    printf("done err=%s results=%llu why=%s\n", gwr_err_name(err),
           (unsigned long long)c->t->results, why);
    c->t->exit = gwr_exit_for(err);
}

/* An identifier from GGGGEEEE=VALUE arguments (values as given, not checked). */
static int make_query(struct rctx *c, struct dcm_query **q)
{
    const char *level = c->argv[0];
    bool patient_root = false;
    struct dcm_ds *ds = dcm_ds_new(NULL);
    if (!ds)
        return ERR_NOMEM;
    struct dcm_item *root = dcm_ds_root_mut(ds);
    int rc = dcm_ds_add_cstr(ds, root, 0x00080052u, DCM_VR_CS, level);
    for (int i = 1; rc == 0 && i < c->argc; i++) {
        if (!strcmp(c->argv[i], "--patient-root")) {
            patient_root = true;
            continue;
        }
        unsigned long tag = strtoul(c->argv[i], NULL, 16);
        const char *eq = strchr(c->argv[i], '=');
        if (!eq || eq - c->argv[i] != 8)
            return ERR_MALFORMED;
        rc = dcm_ds_add_raw(ds, root, (uint32_t)tag, dcm_dict_vr((uint32_t)tag), eq + 1,
                            strlen(eq + 1));
    }
    struct dcm_query_opts qo = {.model = patient_root ? DCM_QR_PATIENT_ROOT : DCM_QR_STUDY_ROOT,
                                .op = DCM_QOP_FIND};
    struct dcm_query_error qe;
    if (rc == 0)
        rc = dcm_query_parse(ds, &qo, q, &qe);
    if (rc < 0)
        fprintf(stderr, "error: query refused: %s\n", qe.comment ? qe.comment : err_str(rc));
    dcm_ds_free(ds);
    return rc;
}

static void run_sub(struct rctx *c)
{
    struct backend_read_scope s = {.scope = c->scope, .client_id = c->client,
                                   .studies = (const char *const *)c->studies,
                                   .n_studies = c->n_studies};
    int rc = 0;
    if (!strcmp(c->sub, "find")) {
        struct dcm_query *q = NULL;
        rc = make_query(c, &q);
        struct backend_search_cbs cbs = {.result = on_find_result, .done = on_find_done,
                                         .arg = c};
        if (rc == 0)
            rc = aws_read_ops.search(c->t->reader, q, &s, &cbs, &c->t->bop);
        dcm_query_free(q);
    } else {
        const char *ts[8];
        size_t n_ts = 0;
        for (int i = 4; i < c->argc && n_ts < 8; i++) {
            if (c->argv[i][0] == '-') {
                i++;
                continue;
            }
            ts[n_ts++] = c->argv[i];
        }
        if (n_ts == 0)
            ts[n_ts++] = "1.2.840.10008.1.2.1";
        struct backend_fetch_cbs cbs = {.begin = on_get_begin, .data = on_get_data,
                                        .done = on_get_done, .arg = c};
        rc = aws_read_ops.fetch(c->t->reader, c->argv[0], c->argv[1], c->argv[2], ts, n_ts, &s,
                                &cbs, &c->t->bop);
    }
    if (rc < 0) {
        printf("done err=%s why=refused at once\n", gwr_err_name(rc));
        c->t->exit = gwr_exit_for(rc);
    }
}

static void on_scope(void *arg, int err, const char *const *studies, size_t n)
{
    struct rctx *c = arg;
    if (err < 0) {
        printf("done err=%s why=scope\n", gwr_err_name(err));
        c->t->exit = gwr_exit_for(err);
        return;
    }
    if (!strcmp(c->sub, "scope")) {
        for (size_t i = 0; i < n; i++)
            printf("study %s\n", studies[i]);
        printf("done err=ok studies=%zu\n", n);
        c->t->exit = 0;
        return;
    }
    c->studies = calloc(n + 1, sizeof *c->studies);
    for (size_t i = 0; c->studies && i < n; i++)
        c->studies[c->n_studies++] = strdup(studies[i]);
    run_sub(c);
}

static char *backend_json(const char *path)
{
    struct wbuf errs;
    wbuf_init(&errs, 4096);
    size_t len;
    char *text = cfgread_file(path, 1u << 20, &len, &errs);
    wbuf_cleanup(&errs);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "backend");
    char *out = cJSON_PrintUnformatted(cJSON_IsObject(b) ? b : j);
    cJSON_Delete(j);
    return out;
}

int gwr_cmd_read(int argc, char **argv, const struct gw_aws_opts *o)
{
    if (argc < 2)
        return gwr_usage();
    char *json = backend_json(argv[0]);
    if (!json) {
        fprintf(stderr, "error: cannot read %s\n", argv[0]);
        return 2;
    }
    if (!strcmp(argv[1], "share")) {
        int rc = aws_share_cli(argc - 1, argv + 1, json);
        free(json);
        return rc;
    }
    if (argc < 4) {
        free(json);
        return gwr_usage();
    }
    struct rctx c = {.client = argv[2], .sub = argv[1], .argc = argc - 4, .argv = argv + 4,
                     .repeat = 1};
    if (grants_scope_parse(argv[3], strlen(argv[3]), &c.scope) < 0) {
        free(json);
        return gwr_usage();
    }
    uint64_t rate = 0;
    for (int i = 4; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "--repeat")) {
            long n = strtol(argv[i + 1], NULL, 10);
            c.repeat = n > 0 && n < 1000 ? (int)n : 1;
        }
        else if (!strcmp(argv[i], "--between"))
            c.between = argv[i + 1];
        else if (!strcmp(argv[i], "--rate"))
            rate = strtoull(argv[i + 1], NULL, 10);
    }
    struct wbuf errs;
    wbuf_init(&errs, 16384);
    struct pipeline_config pc;
    struct aws_read_config rc;
    char *rest = NULL;
    int err = aws_read_config_split(json, &rest, &rc, &errs);
    if (err == 0 && rest)
        err = pipeline_config_parse(rest, &pc, &errs);
    free(rest);
    free(json);
    if (err < 0) {
        wbuf_u8(&errs, 0);
        fprintf(stderr, "error: configuration: %s", errs.p ? (char *)errs.p : "?\n");
        wbuf_cleanup(&errs);
        return 2;
    }
    wbuf_cleanup(&errs);
    struct tctx t;
    memset(&t, 0, sizeof t);
    t.exit = 1;
    if (uv_loop_init(&t.loop) != 0)
        return 1;
    c.t = &t;
    (void)o;
    err = aws_read_new(&t.loop, &pc, &rc, &t.reader);
    if (err == 0 && !strcmp(c.sub, "get") && c.argc >= 4)
        err = gwr_open_out(&t, c.argv[3]);
    else if (err == 0 && strcmp(c.sub, "find") && strcmp(c.sub, "scope"))
        err = ERR_MALFORMED;
    t.rate = rate;
    if (err == 0)
        err = aws_read_ops.scope_studies(t.reader, c.client, c.scope, on_scope, &c);
    if (err == 0)
        uv_run(&t.loop, UV_RUN_DEFAULT);
    else
        fprintf(stderr, "error: %s\n", err_str(err));
    if (t.bop)
        aws_read_ops.cancel(t.bop);
    gwr_close(&t);
    for (size_t i = 0; i < c.n_studies; i++)
        free(c.studies[i]);
    free(c.studies);
    return err < 0 ? 1 : t.exit;
}

