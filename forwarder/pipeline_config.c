#include "pipeline_config.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static void problem(struct wbuf *errs, const char *path, const char *key, const char *msg)
{
    wbuf_printf(errs, "backend.%s%s%s: %s\n", path, *path ? "." : "", key, msg);
}

/* The keys each object may hold: anything else is a typo and reported. */
static void check_keys(const cJSON *obj, const char *path, const char *const *allowed,
                       struct wbuf *errs)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        bool ok = false;
        for (size_t i = 0; allowed[i]; i++) {
            if (it->string && strcmp(it->string, allowed[i]) == 0)
                ok = true;
        }
        if (!ok)
            problem(errs, path, it->string ? it->string : "?", "unknown key");
    }
}

static const cJSON *get_obj(const cJSON *root, const char *key, struct wbuf *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (v && !cJSON_IsObject(v)) {
        problem(errs, "", key, "must be an object");
        return NULL;
    }
    return v;
}

static void get_str(const cJSON *obj, const char *path, const char *key, char *dst, size_t cap,
                    struct wbuf *errs)
{
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (!v)
        return;
    if (!cJSON_IsString(v) || !v->valuestring) {
        problem(errs, path, key, "must be a string");
        return;
    }
    int n = snprintf(dst, cap, "%s", v->valuestring);
    if (n < 0 || (size_t)n >= cap)
        problem(errs, path, key, "too long");
}

static void get_num(const cJSON *obj, const char *path, const char *key, double *dst, double min,
                    double max, bool whole, struct wbuf *errs)
{
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (!v)
        return;
    if (!cJSON_IsNumber(v) || v->valuedouble < min || v->valuedouble > max ||
        (whole && v->valuedouble != (double)(uint64_t)v->valuedouble)) {
        char msg[128];
        snprintf(msg, sizeof msg, "must be a %s from %.17g to %.17g", whole ? "whole number" :
                                                                            "number",
                 min, max);
        problem(errs, path, key, msg);
        return;
    }
    *dst = v->valuedouble;
}

static void get_u64(const cJSON *obj, const char *path, const char *key, uint64_t *dst,
                    uint64_t min, uint64_t max, struct wbuf *errs)
{
    double d = (double)*dst;
    get_num(obj, path, key, &d, (double)min, (double)max, true, errs);
    *dst = (uint64_t)d;
}

static void get_u32(const cJSON *obj, const char *path, const char *key, uint32_t *dst,
                    uint32_t min, uint32_t max, struct wbuf *errs)
{
    uint64_t t = *dst;
    get_u64(obj, path, key, &t, min, max, errs);
    *dst = (uint32_t)t;
}

/* S3 bucket naming rules: 3-63 of [a-z0-9.-], starting and ending with a letter or digit. */
static bool bucket_valid(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '.' && c != '-')
            return false;
        if ((i == 0 || i == n - 1) && !alnum)
            return false;
    }
    return true;
}

/* A key prefix: non-empty, no leading or trailing '/', printable ASCII without spaces. */
static bool prefix_valid(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || p[0] == '/' || p[n - 1] == '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] <= ' ' || p[i] > '~' || p[i] == '\\')
            return false;
    }
    return true;
}

static bool alnum_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

static bool endpoint_valid(const char *e)
{
    if (strncmp(e, "http://", 7) != 0 && strncmp(e, "https://", 8) != 0)
        return false;
    for (const char *p = e; *p; p++) {
        if (*p <= ' ' || *p > '~')
            return false;
    }
    size_t n = strlen(e);
    return e[n - 1] != '/' && strchr(e + 8, '?') == NULL;
}

static bool region_valid(const char *r)
{
    size_t n = strlen(r);
    if (n < 4)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = r[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

static void set_defaults(struct pipeline_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->s3.prefix, sizeof c->s3.prefix, "dicom");
    snprintf(c->s3.output_prefix, sizeof c->s3.output_prefix, "import-output");
    c->s3.sse = PIPELINE_SSE_AES256;
    c->s3.multipart_threshold = 16ull << 20;
    c->s3.part_size = 8ull << 20;
    c->hi.mode = PIPELINE_MODE_IMPORT;
    c->hi.batch_max_objects = PIPELINE_JOB_MAX_OBJECTS;
    c->hi.batch_max_bytes = PIPELINE_JOB_MAX_BYTES;
    c->hi.batch_max_age_ms = 60000;
    c->hi.max_concurrent_jobs = 10;
    c->hi.start_tps = 1.0;
    c->hi.poll_initial_ms = 2000;
    c->hi.poll_max_ms = 30000;
    c->max_uploads = 16;
    c->ack_timeout_ms = 30000;
    c->retry_max_ms = 60000;
}

int pipeline_config_parse(const char *json, struct pipeline_config *c, struct wbuf *errs)
{
    set_defaults(c);
    size_t start = errs->len;
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    if (!cJSON_IsObject(root)) {
        problem(errs, "", "type", "the aws backend needs an object");
        cJSON_Delete(root);
        return ERR_CONFIG;
    }
    static const char *const top_keys[] = {"type",      "region",      "s3",
                                           "healthimaging", "dynamodb", "endpoints",
                                           "max_uploads", "ack_timeout_ms", "retry_max_ms",
                                           NULL};
    static const char *const s3_keys[] = {"bucket",   "prefix",    "output_prefix",
                                          "sse",      "kms_key_id", "multipart_threshold",
                                          "part_size", NULL};
    static const char *const hi_keys[] = {"mode",
                                          "datastore_id",
                                          "data_access_role_arn",
                                          "batch_max_objects",
                                          "batch_max_bytes",
                                          "batch_max_age_ms",
                                          "max_concurrent_jobs",
                                          "start_tps",
                                          "poll_initial_ms",
                                          "poll_max_ms",
                                          NULL};
    static const char *const ddb_keys[] = {"table", NULL};
    static const char *const ep_keys[] = {"s3",   "dynamodb", "medical_imaging",
                                          "medical_imaging_dicom", "sts", NULL};
    check_keys(root, "", top_keys, errs);
    get_str(root, "", "region", c->region, sizeof c->region, errs);
    get_u32(root, "", "max_uploads", &c->max_uploads, 1, 256, errs);
    get_u32(root, "", "ack_timeout_ms", &c->ack_timeout_ms, 100, 600000, errs);
    get_u32(root, "", "retry_max_ms", &c->retry_max_ms, 100, 3600000, errs);
    if (!region_valid(c->region))
        problem(errs, "", "region", "required, like \"us-east-1\"");

    const cJSON *s3 = get_obj(root, "s3", errs);
    if (s3)
        check_keys(s3, "s3", s3_keys, errs);
    get_str(s3, "s3", "bucket", c->s3.bucket, sizeof c->s3.bucket, errs);
    get_str(s3, "s3", "prefix", c->s3.prefix, sizeof c->s3.prefix, errs);
    get_str(s3, "s3", "output_prefix", c->s3.output_prefix, sizeof c->s3.output_prefix, errs);
    char sse[16] = "AES256";
    get_str(s3, "s3", "sse", sse, sizeof sse, errs);
    if (strcmp(sse, "AES256") == 0)
        c->s3.sse = PIPELINE_SSE_AES256;
    else if (strcmp(sse, "aws:kms") == 0)
        c->s3.sse = PIPELINE_SSE_KMS;
    else
        problem(errs, "s3", "sse", "must be \"AES256\" or \"aws:kms\"");
    get_str(s3, "s3", "kms_key_id", c->s3.kms_key_id, sizeof c->s3.kms_key_id, errs);
    get_u64(s3, "s3", "part_size", &c->s3.part_size, PIPELINE_PART_MIN, PIPELINE_PART_MAX, errs);
    get_u64(s3, "s3", "multipart_threshold", &c->s3.multipart_threshold, PIPELINE_PART_MIN,
            PIPELINE_PART_MAX, errs);
    if (!bucket_valid(c->s3.bucket))
        problem(errs, "s3", "bucket", "required: 3-63 characters of a-z, 0-9, '.', '-'");
    if (!prefix_valid(c->s3.prefix))
        problem(errs, "s3", "prefix", "must be non-empty, without leading or trailing '/'");
    if (!prefix_valid(c->s3.output_prefix))
        problem(errs, "s3", "output_prefix",
                "must be non-empty, without leading or trailing '/'");
    else if (strcmp(c->s3.prefix, c->s3.output_prefix) == 0)
        problem(errs, "s3", "output_prefix", "must differ from prefix");
    if (c->s3.sse == PIPELINE_SSE_KMS && !c->s3.kms_key_id[0])
        problem(errs, "s3", "kms_key_id", "required when sse is \"aws:kms\"");
    if (c->s3.sse != PIPELINE_SSE_KMS && c->s3.kms_key_id[0])
        problem(errs, "s3", "kms_key_id", "only with sse \"aws:kms\"");

    const cJSON *hi = get_obj(root, "healthimaging", errs);
    if (hi)
        check_keys(hi, "healthimaging", hi_keys, errs);
    char mode[16] = "import";
    get_str(hi, "healthimaging", "mode", mode, sizeof mode, errs);
    if (strcmp(mode, "import") == 0)
        c->hi.mode = PIPELINE_MODE_IMPORT;
    else if (strcmp(mode, "stow") == 0)
        c->hi.mode = PIPELINE_MODE_STOW;
    else
        problem(errs, "healthimaging", "mode", "must be \"import\" or \"stow\"");
    get_str(hi, "healthimaging", "datastore_id", c->hi.datastore_id, sizeof c->hi.datastore_id,
            errs);
    get_str(hi, "healthimaging", "data_access_role_arn", c->hi.data_access_role_arn,
            sizeof c->hi.data_access_role_arn, errs);
    get_u32(hi, "healthimaging", "batch_max_objects", &c->hi.batch_max_objects, 1,
            PIPELINE_JOB_MAX_OBJECTS, errs);
    get_u64(hi, "healthimaging", "batch_max_bytes", &c->hi.batch_max_bytes, 1,
            PIPELINE_JOB_MAX_BYTES, errs);
    get_u32(hi, "healthimaging", "batch_max_age_ms", &c->hi.batch_max_age_ms, 10, 86400000,
            errs);
    get_u32(hi, "healthimaging", "max_concurrent_jobs", &c->hi.max_concurrent_jobs, 1,
            PIPELINE_MAX_JOBS, errs);
    get_num(hi, "healthimaging", "start_tps", &c->hi.start_tps, 0.01, 100.0, false, errs);
    get_u32(hi, "healthimaging", "poll_initial_ms", &c->hi.poll_initial_ms, 10, 600000, errs);
    get_u32(hi, "healthimaging", "poll_max_ms", &c->hi.poll_max_ms, 10, 3600000, errs);
    if (c->hi.poll_max_ms < c->hi.poll_initial_ms)
        problem(errs, "healthimaging", "poll_max_ms", "must be at least poll_initial_ms");
    if (!alnum_id_valid(c->hi.datastore_id))
        problem(errs, "healthimaging", "datastore_id", "required: letters and digits");
    if (c->hi.mode == PIPELINE_MODE_IMPORT &&
        strncmp(c->hi.data_access_role_arn, "arn:", 4) != 0)
        problem(errs, "healthimaging", "data_access_role_arn",
                "required in mode \"import\": an IAM role ARN");

    const cJSON *ddb = get_obj(root, "dynamodb", errs);
    if (ddb)
        check_keys(ddb, "dynamodb", ddb_keys, errs);
    get_str(ddb, "dynamodb", "table", c->ddb.table, sizeof c->ddb.table, errs);
    size_t tl = strlen(c->ddb.table);
    bool table_ok = tl >= 3 && tl <= 255;
    for (size_t i = 0; i < tl; i++) {
        char ch = c->ddb.table[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            table_ok = false;
    }
    if (!table_ok)
        problem(errs, "dynamodb", "table", "required: 3-255 of A-Z a-z 0-9 _ - .");

    const cJSON *ep = get_obj(root, "endpoints", errs);
    if (ep)
        check_keys(ep, "endpoints", ep_keys, errs);
    struct {
        const char *key;
        char *dst;
    } eps[] = {{"s3", c->endpoints.s3},
               {"dynamodb", c->endpoints.dynamodb},
               {"medical_imaging", c->endpoints.medical_imaging},
               {"medical_imaging_dicom", c->endpoints.medical_imaging_dicom},
               {"sts", c->endpoints.sts}};
    for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++) {
        get_str(ep, "endpoints", eps[i].key, eps[i].dst, sizeof c->endpoints.s3, errs);
        if (eps[i].dst[0] && !endpoint_valid(eps[i].dst))
            problem(errs, "endpoints", eps[i].key,
                    "must be http:// or https:// host[:port] without a trailing '/'");
    }
    cJSON_Delete(root);
    if (errs->err)
        return ERR_CONFIG;
    return errs->len > start ? ERR_CONFIG : 0;
}

int pipeline_config_check_ack(const struct pipeline_config *c, int ack, struct wbuf *errs)
{
    if (ack == 2 && c->hi.mode != PIPELINE_MODE_STOW) {
        wbuf_printf(errs, "ack: \"healthimaging\" needs backend.healthimaging.mode \"stow\" "
                          "(import jobs take minutes)\n");
        return ERR_CONFIG;
    }
    return 0;
}
