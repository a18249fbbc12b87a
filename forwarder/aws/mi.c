#include "mi.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/wbuf.h"
#include "aws_client.h"
#include "sigv4.h"

#define MI_RESP_CAP (256u * 1024)
#define MI_STOW_RESP_CAP (4u << 20)

struct mi_client {
    struct aws_client c;
    char *control; /* "https://medical-imaging.<region>.amazonaws.com" (no trailing '/') */
    char *dicom;   /* "https://dicom-medical-imaging.<region>.amazonaws.com" */
};

int mi_client_new(struct http_client *http, struct creds_provider *creds,
                  const struct mi_opts *o, struct mi_client **out)
{
    *out = NULL;
    struct mi_client *m = calloc(1, sizeof(*m));
    if (!m)
        return ERR_NOMEM;
    int rc = aws_client_init(&m->c, http, creds, o->region, "medical-imaging", false);
    if (rc == 0 && (!aws_endpoint_valid(o->endpoint) || !aws_endpoint_valid(o->dicom_endpoint)))
        rc = ERR_CONFIG;
    if (rc == 0) {
        m->control = aws_endpoint_dup(o->endpoint, "medical-imaging", o->region, "");
        m->dicom = aws_endpoint_dup(o->dicom_endpoint, "dicom-medical-imaging", o->region, "");
        if (!m->control || !m->dicom)
            rc = ERR_NOMEM;
    }
    if (rc < 0) {
        mi_client_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void mi_client_free(struct mi_client *m)
{
    if (!m)
        return;
    free(m->control);
    free(m->dicom);
    free(m);
}

/* ---- parsers ------------------------------------------------------------------------------ */

/* v's string into dst[sz]: ERR_MALFORMED when v is not a string, ERR_LIMIT when it does not fit. */
static int copy_string(const cJSON *v, char *dst, size_t sz)
{
    if (!cJSON_IsString(v))
        return ERR_MALFORMED;
    size_t n = strlen(v->valuestring);
    if (n >= sz)
        return ERR_LIMIT;
    memcpy(dst, v->valuestring, n + 1);
    return 0;
}

static int copy_field(const cJSON *o, const char *key, char *dst, size_t sz, bool required)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    dst[0] = '\0';
    if (!v)
        return required ? ERR_MALFORMED : 0;
    bool is_time = strcmp(key, "submittedAt") == 0 || strcmp(key, "endedAt") == 0;
    if (is_time && cJSON_IsNumber(v)) { /* rest-json timestamps: epoch seconds */
        if (!isfinite(v->valuedouble))
            return ERR_MALFORMED;
        int n = snprintf(dst, sz, "%.3f", v->valuedouble);
        return (n < 0 || (size_t)n >= sz) ? ERR_LIMIT : 0;
    }
    return copy_string(v, dst, sz);
}

int mi_parse_job(const uint8_t *p, size_t len, const char *wrapper, struct mi_job *out)
{
    memset(out, 0, sizeof(*out));
    cJSON *j = cJSON_ParseWithLength((const char *)p, len);
    const cJSON *o = j;
    if (wrapper && cJSON_IsObject(j))
        o = cJSON_GetObjectItemCaseSensitive(j, wrapper);
    const struct {
        const char *key;
        char *dst;
        size_t sz;
        bool required;
    } f[] = {
        {"jobId", out->job_id, sizeof(out->job_id), true},
        {"jobStatus", out->job_status, sizeof(out->job_status), true},
        {"datastoreId", out->datastore_id, sizeof(out->datastore_id), false},
        {"jobName", out->job_name, sizeof(out->job_name), false},
        {"inputS3Uri", out->input_s3_uri, sizeof(out->input_s3_uri), false},
        {"outputS3Uri", out->output_s3_uri, sizeof(out->output_s3_uri), false},
        {"message", out->message, sizeof(out->message), false},
        {"submittedAt", out->submitted_at, sizeof(out->submitted_at), false},
        {"endedAt", out->ended_at, sizeof(out->ended_at), false},
    };
    int rc = cJSON_IsObject(o) ? 0 : ERR_MALFORMED;
    for (size_t i = 0; rc == 0 && i < ARRAY_LEN(f); i++)
        rc = copy_field(o, f[i].key, f[i].dst, f[i].sz, f[i].required);
    if (rc == 0 && (!out->job_id[0] || !out->job_status[0]))
        rc = ERR_MALFORMED;
    cJSON_Delete(j);
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* The first entry of a DICOM JSON attribute's "Value" (PS3.18 F.2), or NULL. */
static const cJSON *first_value(const cJSON *obj, const char *tag)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, tag);
    if (!cJSON_IsObject(a))
        return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, "Value");
    if (!cJSON_IsArray(v))
        return NULL;
    return cJSON_GetArrayItem(v, 0);
}

static int value_str(const cJSON *obj, const char *tag, char *dst, size_t sz)
{
    dst[0] = '\0';
    const cJSON *v = first_value(obj, tag);
    if (!v)
        return 0;
    return copy_string(v, dst, sz);
}

static int value_us(const cJSON *obj, const char *tag, int *out)
{
    *out = -1;
    const cJSON *v = first_value(obj, tag);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 65535) ||
        v->valuedouble != floor(v->valuedouble))
        return ERR_MALFORMED;
    *out = (int)v->valuedouble;
    return 0;
}

static int parse_seq(const cJSON *root, const char *tag, bool stored, struct mi_stow_result *out)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, tag);
    if (!a)
        return 0;
    if (!cJSON_IsObject(a))
        return ERR_MALFORMED;
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(a, "Value");
    if (!items)
        return 0; /* an empty sequence */
    if (!cJSON_IsArray(items))
        return ERR_MALFORMED;
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        if (!cJSON_IsObject(it))
            return ERR_MALFORMED;
        if (out->n == MI_STOW_MAX_INSTANCES)
            return ERR_LIMIT;
        struct mi_stow_instance *in = &out->inst[out->n];
        memset(in, 0, sizeof(*in));
        in->stored = stored;
        TRY(value_str(it, "00081150", in->sop_class_uid, sizeof(in->sop_class_uid)));
        TRY(value_str(it, "00081155", in->sop_instance_uid, sizeof(in->sop_instance_uid)));
        TRY(value_str(it, "00081190", in->retrieve_url, sizeof(in->retrieve_url)));
        TRY(value_us(it, "00081197", &in->failure_reason));
        TRY(value_us(it, "00081196", &in->warning_reason));
        if (!in->sop_instance_uid[0])
            return ERR_MALFORMED;
        out->n++;
    }
    return 0;
}

int mi_parse_stow_response(const uint8_t *p, size_t len, struct mi_stow_result *out)
{
    memset(out, 0, sizeof(*out));
    cJSON *j = cJSON_ParseWithLength((const char *)p, len);
    int rc = cJSON_IsObject(j) ? 0 : ERR_MALFORMED;
    if (rc == 0 && !cJSON_GetObjectItemCaseSensitive(j, "00081199") &&
        !cJSON_GetObjectItemCaseSensitive(j, "00081198"))
        rc = ERR_MALFORMED; /* not a store response */
    if (rc == 0)
        rc = parse_seq(j, "00081199", true, out);
    if (rc == 0)
        rc = parse_seq(j, "00081198", false, out);
    if (rc == 0)
        rc = value_str(j, "00081190", out->retrieve_url, sizeof(out->retrieve_url));
    cJSON_Delete(j);
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* ---- calls -------------------------------------------------------------------------------- */

struct mi_op {
    bool stow;
    mi_job_cb job_cb;
    mi_stow_cb stow_cb;
    const char *wrapper;
    void *arg;
};

static void on_http(void *arg, const struct http_resp *resp)
{
    struct mi_op *op = arg;
    struct http_result res = resp->res;
    if (op->stow) {
        struct mi_stow_result *sr = malloc(sizeof(*sr));
        bool have = false;
        if (sr && (res.err == 0 || res.err == HTTP_ERR_STATUS) && resp->body_len &&
            mi_parse_stow_response(resp->body, resp->body_len, sr) == 0)
            have = true;
        if (res.err == 0 && !have)
            res.err = HTTP_ERR_PARSE;
        op->stow_cb(op->arg, &res, have ? sr : NULL);
        free(sr);
    } else {
        struct mi_job job;
        bool have = false;
        if (res.err == 0) {
            have = mi_parse_job(resp->body, resp->body_len, op->wrapper, &job) == 0;
            if (!have)
                res.err = HTTP_ERR_PARSE;
        }
        op->job_cb(op->arg, &res, have ? &job : NULL);
    }
    free(op);
}

/* The state of a call (NULL when rc says its request could not be built, or out of memory). */
static struct mi_op *op_new(int rc, void *arg, const char *wrapper, mi_job_cb job_cb,
                            mi_stow_cb stow_cb)
{
    struct mi_op *op = rc == 0 ? calloc(1, sizeof(*op)) : NULL;
    if (op) {
        op->stow = stow_cb != NULL;
        op->job_cb = job_cb;
        op->stow_cb = stow_cb;
        op->wrapper = wrapper;
        op->arg = arg;
    }
    return op;
}

/* Path segment: datastore and job ids are [A-Za-z0-9]; encode anyway. */
static void put_seg(struct wbuf *w, const char *s)
{
    sigv4_uri_encode(w, s, strlen(s), false);
}

/* StartDICOMImportJob's body as JSON text (free it), or NULL when out of memory. */
static char *start_job_body(const struct mi_start_job *q)
{
    cJSON *body = cJSON_CreateObject();
    char *text = NULL;
    if (body && cJSON_AddStringToObject(body, "dataAccessRoleArn", q->role_arn) &&
        cJSON_AddStringToObject(body, "clientToken", q->client_token) &&
        cJSON_AddStringToObject(body, "inputS3Uri", q->input_s3_uri) &&
        cJSON_AddStringToObject(body, "outputS3Uri", q->output_s3_uri) &&
        (!q->job_name || cJSON_AddStringToObject(body, "jobName", q->job_name)))
        text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    return text;
}

int mi_start_import_job(struct mi_client *m, const struct mi_start_job *q, mi_job_cb cb,
                        void *arg)
{
    if (!q->datastore_id || !q->role_arn || !q->client_token || !q->input_s3_uri ||
        !q->output_s3_uri || !*q->client_token || strlen(q->client_token) > 64)
        return ERR_CONFIG;
    struct wbuf u;
    wbuf_init(&u, 4096);
    wbuf_str(&u, m->control);
    wbuf_str(&u, "/startDICOMImportJob/datastore/");
    put_seg(&u, q->datastore_id);
    struct http_req *r = NULL;
    int rc = aws_client_req("POST", &u, &r);
    char *text = rc == 0 ? start_job_body(q) : NULL;
    if (rc == 0 && !text)
        rc = ERR_NOMEM;
    if (rc == 0)
        rc = http_req_add_header(r, "Content-Type", "application/json");
    if (rc == 0)
        rc = http_req_body_mem(r, text, strlen(text));
    free(text);
    return aws_client_send(&m->c, r, rc, op_new(rc, arg, NULL, cb, NULL), MI_RESP_CAP,
                           HTTP_PAYLOAD_SIGNED, on_http);
}

int mi_get_import_job(struct mi_client *m, const char *datastore_id, const char *job_id,
                      mi_job_cb cb, void *arg)
{
    struct wbuf u;
    wbuf_init(&u, 4096);
    wbuf_str(&u, m->control);
    wbuf_str(&u, "/getDICOMImportJob/datastore/");
    put_seg(&u, datastore_id);
    wbuf_str(&u, "/job/");
    put_seg(&u, job_id);
    struct http_req *r = NULL;
    int rc = aws_client_req("GET", &u, &r);
    return aws_client_send(&m->c, r, rc, op_new(rc, arg, "jobProperties", cb, NULL),
                           MI_RESP_CAP, HTTP_PAYLOAD_SIGNED, on_http);
}

int mi_store_dicom(struct mi_client *m, const char *datastore_id, const char *study_uid,
                   const char *path, uint64_t off, uint64_t len, mi_stow_cb cb, void *arg)
{
    uint8_t rnd[16];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return ERR_UNSUPPORTED;
    char boundary[48];
    memcpy(boundary, "gw-", 3);
    hex_lower(rnd, sizeof rnd, boundary + 3);
    struct wbuf u;
    wbuf_init(&u, 4096);
    wbuf_str(&u, m->dicom);
    wbuf_str(&u, "/datastore/");
    put_seg(&u, datastore_id);
    wbuf_str(&u, "/studies");
    if (study_uid && *study_uid) {
        wbuf_u8(&u, '/');
        put_seg(&u, study_uid);
    }
    char ctype[160], head[160], tail[64];
    snprintf(ctype, sizeof(ctype), "multipart/related; type=\"application/dicom\"; boundary=%s",
             boundary);
    int n2 = snprintf(head, sizeof(head), "--%s\r\nContent-Type: application/dicom\r\n\r\n",
                      boundary);
    int n3 = snprintf(tail, sizeof(tail), "\r\n--%s--\r\n", boundary);
    struct http_req *r = NULL;
    int rc = aws_client_req("POST", &u, &r);
    if (rc == 0)
        rc = http_req_add_header(r, "Content-Type", ctype);
    if (rc == 0)
        rc = http_req_add_header(r, "Accept", "application/dicom+json");
    if (rc == 0)
        rc = http_req_body_mem(r, head, (size_t)n2);
    if (rc == 0)
        rc = http_req_body_file(r, path, off, len);
    if (rc == 0)
        rc = http_req_body_mem(r, tail, (size_t)n3);
    return aws_client_send(&m->c, r, rc, op_new(rc, arg, NULL, NULL, cb), MI_STOW_RESP_CAP,
                           HTTP_PAYLOAD_SIGNED, on_http);
}
