#include "pipeline_config.h"

#include <stdio.h>
#include <string.h>

#include "common/cfgread.h"

static void problem(struct wbuf *errs, const char *path, const char *key, const char *msg)
{
    char full[64];
    snprintf(full, sizeof full, "backend%s%s", *path ? "." : "", path);
    cfgread_problem(errs, full, key, msg);
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

#define PC struct pipeline_config

static const struct cfgread_enum g_sses[] = {
    {"AES256", PIPELINE_SSE_AES256, NULL},
    {"aws:kms", PIPELINE_SSE_KMS, NULL},
    {NULL, 0, NULL},
};
static const struct cfgread_enum g_checksums[] = {
    {"sha256", PIPELINE_CHECKSUM_SHA256, NULL},
    {"crc64nvme", PIPELINE_CHECKSUM_CRC64NVME, NULL},
    {NULL, 0, NULL},
};
static const struct cfgread_enum g_modes[] = {
    {"import", PIPELINE_MODE_IMPORT, NULL},
    {"stow", PIPELINE_MODE_STOW, NULL},
    {NULL, 0, NULL},
};

static const struct cfgread_key g_s3_keys[] = {
    CFGREAD_STR("bucket", PC, s3.bucket, NULL),
    CFGREAD_STR("prefix", PC, s3.prefix, "dicom"),
    CFGREAD_STR("output_prefix", PC, s3.output_prefix, "import-output"),
    CFGREAD_ENUM("sse", PC, s3.sse, g_sses, PIPELINE_SSE_AES256),
    CFGREAD_STR("kms_key_id", PC, s3.kms_key_id, NULL),
    CFGREAD_U64("multipart_threshold", PC, s3.multipart_threshold, PIPELINE_PART_MIN,
                PIPELINE_PART_MAX, 16ull << 20),
    CFGREAD_U64("part_size", PC, s3.part_size, PIPELINE_PART_MIN, PIPELINE_PART_MAX, 8ull << 20),
    CFGREAD_ENUM("checksum", PC, s3.checksum, g_checksums, PIPELINE_CHECKSUM_SHA256),
};
static const struct cfgread_table g_s3 = CFGREAD_TABLE(g_s3_keys, true, NULL);

static const struct cfgread_key g_hi_keys[] = {
    CFGREAD_ENUM("mode", PC, hi.mode, g_modes, PIPELINE_MODE_IMPORT),
    CFGREAD_STR("datastore_id", PC, hi.datastore_id, NULL),
    CFGREAD_STR("data_access_role_arn", PC, hi.data_access_role_arn, NULL),
    CFGREAD_U32("batch_max_objects", PC, hi.batch_max_objects, 1, PIPELINE_JOB_MAX_OBJECTS,
                PIPELINE_JOB_MAX_OBJECTS),
    CFGREAD_U64("batch_max_bytes", PC, hi.batch_max_bytes, 1, PIPELINE_JOB_MAX_BYTES,
                PIPELINE_JOB_MAX_BYTES),
    CFGREAD_U32("batch_max_age_ms", PC, hi.batch_max_age_ms, 10, 86400000, 60000),
    CFGREAD_U32("max_concurrent_jobs", PC, hi.max_concurrent_jobs, 1, PIPELINE_MAX_JOBS, 10),
    CFGREAD_DOUBLE("start_tps", PC, hi.start_tps, 0.01, 100.0, 1.0),
    CFGREAD_U32("poll_initial_ms", PC, hi.poll_initial_ms, 10, 600000, 2000),
    CFGREAD_U32("poll_max_ms", PC, hi.poll_max_ms, 10, 3600000, 30000),
};
static const struct cfgread_table g_hi = CFGREAD_TABLE(g_hi_keys, true, NULL);

static const struct cfgread_key g_ddb_keys[] = {
    CFGREAD_STR("table", PC, ddb.table, NULL),
};
static const struct cfgread_table g_ddb = CFGREAD_TABLE(g_ddb_keys, true, NULL);

static const struct cfgread_key g_ep_keys[] = {
    CFGREAD_STR("s3", PC, endpoints.s3, NULL),
    CFGREAD_STR("dynamodb", PC, endpoints.dynamodb, NULL),
    CFGREAD_STR("medical_imaging", PC, endpoints.medical_imaging, NULL),
    CFGREAD_STR("medical_imaging_dicom", PC, endpoints.medical_imaging_dicom, NULL),
    CFGREAD_STR("sts", PC, endpoints.sts, NULL),
};
static const struct cfgread_table g_ep = CFGREAD_TABLE(g_ep_keys, true, NULL);

static const struct cfgread_key g_keys[] = {
    CFGREAD_SKIPKEY("type"), /* "aws": the core's reader chose this table by it */
    CFGREAD_STR("region", PC, region, NULL),
    CFGREAD_OBJ("s3", &g_s3),
    CFGREAD_OBJ("healthimaging", &g_hi),
    CFGREAD_OBJ("dynamodb", &g_ddb),
    CFGREAD_OBJ("endpoints", &g_ep),
    CFGREAD_U32("max_uploads", PC, max_uploads, 1, 256, 16),
    CFGREAD_U32("ack_timeout_ms", PC, ack_timeout_ms, 100, 600000, 30000),
    CFGREAD_U32("retry_max_ms", PC, retry_max_ms, 100, 3600000, 60000),
};
static const struct cfgread_table g_table = CFGREAD_TABLE(g_keys, true, NULL);

static bool table_valid(const char *t)
{
    size_t tl = strlen(t);
    bool ok = tl >= 3 && tl <= 255;
    for (size_t i = 0; i < tl; i++) {
        char ch = t[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            ok = false;
    }
    return ok;
}

/* The checks across keys, after every key is read. */
static void check(const struct pipeline_config *c, struct wbuf *errs)
{
    if (!region_valid(c->region))
        problem(errs, "", "region", "required, like \"us-east-1\"");
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
    if (c->hi.poll_max_ms < c->hi.poll_initial_ms)
        problem(errs, "healthimaging", "poll_max_ms", "must be at least poll_initial_ms");
    if (!alnum_id_valid(c->hi.datastore_id))
        problem(errs, "healthimaging", "datastore_id", "required: letters and digits");
    if (c->hi.mode == PIPELINE_MODE_IMPORT &&
        strncmp(c->hi.data_access_role_arn, "arn:", 4) != 0)
        problem(errs, "healthimaging", "data_access_role_arn",
                "required in mode \"import\": an IAM role ARN");
    if (!table_valid(c->ddb.table))
        problem(errs, "dynamodb", "table", "required: 3-255 of A-Z a-z 0-9 _ - .");
    const struct {
        const char *key;
        const char *val;
    } eps[] = {{"s3", c->endpoints.s3},
               {"dynamodb", c->endpoints.dynamodb},
               {"medical_imaging", c->endpoints.medical_imaging},
               {"medical_imaging_dicom", c->endpoints.medical_imaging_dicom},
               {"sts", c->endpoints.sts}};
    for (size_t i = 0; i < ARRAY_LEN(eps); i++) {
        if (eps[i].val[0] && !endpoint_valid(eps[i].val))
            problem(errs, "endpoints", eps[i].key,
                    "must be http:// or https:// host[:port] without a trailing '/'");
    }
}

int pipeline_config_parse(const char *json, struct pipeline_config *c, struct wbuf *errs)
{
    memset(c, 0, sizeof *c);
    cfgread_defaults(&g_table, c);
    size_t start = errs->len;
    struct cfgread_job job = {.table = &g_table, .base = c, .name = "backend",
                              .prefix = "backend"};
    if (!json) {
        problem(errs, "", "type", "the aws backend needs an object");
        return ERR_CONFIG;
    }
    if (cfgread_text(&job, json, strlen(json), errs) == ERR_MALFORMED)
        return ERR_CONFIG; /* "backend: not a JSON object" */
    check(c, errs);
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
