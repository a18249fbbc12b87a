/* state: the pure parsers of what DynamoDB and HealthImaging answer (GetItem, import jobs, the
 * job's result lines, a STOW-RS store response). Input is hostile: bounded, type-checked. */
#include "state.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "state_int.h"

static const char *ddb_s(const cJSON *item, const char *attr)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(item, attr);
    const cJSON *s = cJSON_IsObject(a) ? cJSON_GetObjectItemCaseSensitive(a, "S") : NULL;
    return cJSON_IsString(s) && s->valuestring ? s->valuestring : "";
}

void state_got_from(const cJSON *answer, struct state_got *out)
{
    memset(out, 0, sizeof *out);
    const cJSON *item = answer ? cJSON_GetObjectItemCaseSensitive(answer, "Item") : NULL;
    if (!cJSON_IsObject(item))
        return;
    out->found = true;
    const char *st = ddb_s(item, "state");
    for (int s = STATE_RECEIVED; s <= STATE_FAILED; s++) {
        if (strcmp(st, state_inst_name((enum state_inst)s)) == 0)
            out->state = (enum state_inst)s;
    }
    snprintf(out->batch, sizeof out->batch, "%s", ddb_s(item, "batch_id"));
    snprintf(out->s3_key, sizeof out->s3_key, "%s", ddb_s(item, "s3_key"));
    snprintf(out->error_type, sizeof out->error_type, "%s", ddb_s(item, "error_type"));
}

int state_parse_get(const char *body, size_t len, struct state_got *out)
{
    memset(out, 0, sizeof *out);
    cJSON *j = state_parse_object(body, len);
    if (!j)
        return ERR_MALFORMED;
    state_got_from(j, out);
    cJSON_Delete(j);
    return 0;
}

static bool job_id_valid(const char *s)
{
    size_t n = strnlen(s, 33);
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')))
            return false;
    }
    return true;
}

int state_parse_start_job(const char *body, size_t len, char *job_id, size_t cap)
{
    cJSON *j = cJSON_ParseWithLength(body, len);
    const cJSON *id = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "jobId") : NULL;
    int rc = ERR_MALFORMED;
    if (cJSON_IsString(id) && id->valuestring && job_id_valid(id->valuestring) &&
        strlen(id->valuestring) < cap) {
        memcpy(job_id, id->valuestring, strlen(id->valuestring) + 1);
        rc = 0;
    }
    cJSON_Delete(j);
    return rc;
}

int state_parse_get_job(const char *body, size_t len, struct state_job_info *out)
{
    memset(out, 0, sizeof *out);
    cJSON *j = cJSON_ParseWithLength(body, len);
    const cJSON *p = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "jobProperties")
                                       : NULL;
    const cJSON *st = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, "jobStatus") : NULL;
    int rc = ERR_MALFORMED;
    if (cJSON_IsString(st) && st->valuestring) {
        out->status = state_job_parse(st->valuestring);
        if (out->status >= STATE_JOB_SUBMITTED)
            rc = 0;
        state_copy_str(p, "message", out->message, sizeof out->message);
        state_copy_str(p, "outputS3Uri", out->output_uri, sizeof out->output_uri);
    }
    cJSON_Delete(j);
    return rc;
}

/* The SOP Instance UID a file is named after: the last path element without ".dcm". */
static int sop_of_path(const char *path, char out[65])
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t n = strlen(base);
    if (n < 5 || strcmp(base + n - 4, ".dcm") != 0 || n - 4 > 64)
        return ERR_MALFORMED;
    memcpy(out, base, n - 4);
    out[n - 4] = '\0';
    return state_uid_valid(out) ? 0 : ERR_MALFORMED;
}

int state_parse_result_line(const char *line, size_t len, bool success,
                            struct state_result *out)
{
    memset(out, 0, sizeof *out);
    out->is_primary = -1;
    out->ok = success;
    cJSON *j = state_parse_object(line, len);
    if (!j)
        return ERR_MALFORMED;
    char input[1024];
    state_copy_str(j, "inputFile", input, sizeof input);
    int rc = sop_of_path(input, out->sop);
    const cJSON *resp = cJSON_GetObjectItemCaseSensitive(j, "importResponse");
    const cJSON *src = cJSON_IsObject(resp) ? resp : j;
    state_copy_str(src, "imageSetId", out->image_set_id, sizeof out->image_set_id);
    const cJSON *prim = cJSON_GetObjectItemCaseSensitive(src, "isPrimary");
    if (cJSON_IsBool(prim))
        out->is_primary = cJSON_IsTrue(prim) ? 1 : 0;
    const cJSON *exc = cJSON_GetObjectItemCaseSensitive(j, "exception");
    const cJSON *esrc = cJSON_IsObject(exc) ? exc : j;
    state_copy_str(esrc, "exceptionType", out->error_type, sizeof out->error_type);
    if (!out->error_type[0])
        state_copy_str(esrc, "type", out->error_type, sizeof out->error_type);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(esrc, "message");
    if (cJSON_IsString(msg) && msg->valuestring)
        snprintf(out->error_message, sizeof out->error_message, "%s", msg->valuestring);
    if (!success && !out->error_type[0])
        snprintf(out->error_type, sizeof out->error_type, "ImportFailure");
    cJSON_Delete(j);
    return rc;
}

/* DICOM JSON (PS3.18 F.2): the first string Value of attribute tag in item. */
static const char *dj_str(const cJSON *item, const char *tag)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(item, tag);
    const cJSON *v = cJSON_IsObject(a) ? cJSON_GetObjectItemCaseSensitive(a, "Value") : NULL;
    const cJSON *s = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, 0) : NULL;
    return cJSON_IsString(s) ? s->valuestring : NULL;
}

static const cJSON *dj_seq(const cJSON *root, const char *tag)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, tag);
    const cJSON *v = cJSON_IsObject(a) ? cJSON_GetObjectItemCaseSensitive(a, "Value") : NULL;
    return cJSON_IsArray(v) ? v : NULL;
}

int state_parse_stow(const char *body, size_t len, const char *sop, uint16_t *failure)
{
    cJSON *j = cJSON_ParseWithLength(body, len);
    if (cJSON_IsArray(j) && cJSON_GetArraySize(j) == 1) { /* some servers wrap it */
        cJSON *inner = cJSON_DetachItemFromArray(j, 0);
        cJSON_Delete(j);
        j = inner;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ERR_MALFORMED;
    }
    int rc = ERR_NOTFOUND;
    const cJSON *it;
    const cJSON *ref = dj_seq(j, "00081199"); /* ReferencedSOPSequence */
    cJSON_ArrayForEach(it, ref)
    {
        const char *s = dj_str(it, "00081155");
        if (s && strcmp(s, sop) == 0)
            rc = 1;
    }
    const cJSON *failed = dj_seq(j, "00081198"); /* FailedSOPSequence */
    cJSON_ArrayForEach(it, failed)
    {
        const char *s = dj_str(it, "00081155");
        if (!s || strcmp(s, sop) != 0)
            continue;
        const cJSON *fr = cJSON_GetObjectItemCaseSensitive(it, "00081197"); /* FailureReason */
        const cJSON *v = cJSON_IsObject(fr) ? cJSON_GetObjectItemCaseSensitive(fr, "Value") : NULL;
        const cJSON *n = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, 0) : NULL;
        *failure = cJSON_IsNumber(n) && n->valuedouble >= 0 && n->valuedouble <= 65535
                       ? (uint16_t)n->valuedouble
                       : 0x0110;
        rc = 0;
    }
    cJSON_Delete(j);
    return rc;
}
