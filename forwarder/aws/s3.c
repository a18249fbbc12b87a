#include "s3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/wbuf.h"
#include "creds.h"
#include "sigv4.h"
#include "xml.h"

#define S3_MIN_PART (5ull * 1024 * 1024)
#define S3_MAX_PARTS 10000u
#define S3_XML_CAP (64u * 1024) /* S3's small XML answers */

struct s3_client {
    struct http_client *http;
    struct creds_provider *creds;
    char region[40];
    char *endpoint; /* NULL = AWS virtual-hosted */
    enum s3_sse sse;
    char *kms_key_id;
};

int s3_client_new(struct http_client *http, struct creds_provider *creds,
                  const struct s3_opts *o, struct s3_client **out)
{
    *out = NULL;
    if (!o->region || !*o->region || strlen(o->region) >= 40 ||
        (o->kms_key_id && *o->kms_key_id && o->sse != S3_SSE_KMS))
        return ERR_CONFIG;
    if (o->endpoint && *o->endpoint && strncmp(o->endpoint, "http://", 7) != 0 &&
        strncmp(o->endpoint, "https://", 8) != 0)
        return ERR_CONFIG;
    struct s3_client *s = calloc(1, sizeof(*s));
    if (!s)
        return ERR_NOMEM;
    s->http = http;
    s->creds = creds;
    memcpy(s->region, o->region, strlen(o->region) + 1);
    s->sse = o->sse;
    if (o->endpoint && *o->endpoint) {
        s->endpoint = strdup(o->endpoint);
        if (s->endpoint) {
            size_t l = strlen(s->endpoint);
            while (l > 8 && s->endpoint[l - 1] == '/')
                s->endpoint[--l] = '\0';
        }
    }
    if (o->kms_key_id && *o->kms_key_id)
        s->kms_key_id = strdup(o->kms_key_id);
    if ((o->endpoint && *o->endpoint && !s->endpoint) ||
        (o->kms_key_id && *o->kms_key_id && !s->kms_key_id)) {
        s3_client_free(s);
        return ERR_NOMEM;
    }
    *out = s;
    return 0;
}

void s3_client_free(struct s3_client *s)
{
    if (!s)
        return;
    free(s->endpoint);
    free(s->kms_key_id);
    free(s);
}

void s3_key_path(struct wbuf *out, const char *key)
{
    sigv4_uri_encode(out, key, strlen(key), true);
}

/* A request for bucket/key (key may be NULL: the bucket itself). */
static int new_req(struct s3_client *s, const char *method, const char *bucket, const char *key,
                   const char *query, struct http_req **out)
{
    struct wbuf u;
    wbuf_init(&u, 8192);
    if (s->endpoint) {
        wbuf_str(&u, s->endpoint);
        wbuf_u8(&u, '/');
        sigv4_uri_encode(&u, bucket, strlen(bucket), false);
    } else {
        wbuf_printf(&u, "https://%s.s3.%s.amazonaws.com", bucket, s->region);
    }
    wbuf_u8(&u, '/');
    if (key)
        s3_key_path(&u, key);
    wbuf_u8(&u, 0);
    if (u.err) {
        int rc = u.err;
        wbuf_cleanup(&u);
        return rc;
    }
    int rc = http_req_new(method, (const char *)u.p, out);
    wbuf_cleanup(&u);
    if (rc < 0)
        return rc;
    if (query && (rc = http_req_set_query(*out, query)) < 0) {
        http_req_free(*out);
        *out = NULL;
        return rc;
    }
    return 0;
}

static int add_sse(struct s3_client *s, struct http_req *r)
{
    if (s->sse == S3_SSE_AES256)
        return http_req_add_header(r, "x-amz-server-side-encryption", "AES256");
    if (s->sse == S3_SSE_KMS) {
        TRY(http_req_add_header(r, "x-amz-server-side-encryption", "aws:kms"));
        if (s->kms_key_id)
            return http_req_add_header(r, "x-amz-server-side-encryption-aws-kms-key-id",
                                       s->kms_key_id);
    }
    return 0;
}

/* The checksum S3 verifies before storing (and keeps), named as the SDKs name it. */
static int add_checksum(struct http_req *r, const char *b64)
{
    TRY(http_req_add_header(r, "x-amz-sdk-checksum-algorithm", "SHA256"));
    return http_req_add_header(r, "x-amz-checksum-sha256", b64);
}

/* ---- one operation --------------------------------------------------------------------- */

enum op_kind { OP_DONE, OP_CREATE, OP_PART, OP_GET, OP_COMPLETE, OP_ABORT };

union s3_cb {
    s3_done_cb done;
    s3_create_cb create;
    s3_part_cb part;
    s3_get_cb get;
};

struct s3_op {
    enum op_kind kind;
    union s3_cb cb;
    void *arg;
    char checksum_b64[45];
    /* for the part path: hashing first */
    struct s3_client *s;
    struct http_req *pending; /* built, waiting for the hash */
};

static void on_http(void *arg, const struct http_resp *resp)
{
    struct s3_op *op = arg;
    struct http_result res = resp->res;
    switch (op->kind) {
    case OP_DONE:
        op->cb.done(op->arg, &res);
        break;
    case OP_ABORT:
        if (res.err == HTTP_ERR_STATUS && strcmp(res.error_code, "NoSuchUpload") == 0)
            res.err = 0;
        op->cb.done(op->arg, &res);
        break;
    case OP_COMPLETE: {
        char code[96];
        /* S3 may answer 200 and put an <Error> in the body */
        if (res.err == 0 && xml_text(resp->body, resp->body_len, "Code", code, sizeof(code)) == 0 &&
            resp->body_len > 0) {
            res.err = HTTP_ERR_STATUS;
            http_parse_aws_error(NULL, resp->body, resp->body_len, res.error_code,
                                 sizeof(res.error_code), res.message, sizeof(res.message));
        }
        op->cb.done(op->arg, &res);
        break;
    }
    case OP_CREATE: {
        char id[1024];
        if (res.err == 0 &&
            xml_text(resp->body, resp->body_len, "UploadId", id, sizeof(id)) == 0 && id[0]) {
            op->cb.create(op->arg, &res, id);
        } else {
            if (res.err == 0)
                res.err = HTTP_ERR_PARSE;
            op->cb.create(op->arg, &res, NULL);
        }
        break;
    }
    case OP_PART: {
        const char *etag = res.err == 0 ? http_resp_header(resp, "ETag") : NULL;
        const char *sum = res.err == 0 ? http_resp_header(resp, "x-amz-checksum-sha256") : NULL;
        if (res.err == 0 && (!etag || !*etag || strlen(etag) >= 130)) {
            res.err = HTTP_ERR_PARSE;
            etag = NULL;
        }
        if (sum && strcmp(sum, op->checksum_b64) != 0 && res.err == 0) {
            res.err = HTTP_ERR_PARSE; /* S3 saw other bytes than we hashed */
            snprintf(res.message, sizeof(res.message), "part checksum differs");
        }
        op->cb.part(op->arg, &res, res.err == 0 ? etag : NULL,
                    res.err == 0 ? op->checksum_b64 : NULL);
        break;
    }
    case OP_GET:
        op->cb.get(op->arg, &res, res.err == 0 ? resp->body : NULL,
                   res.err == 0 ? resp->body_len : 0);
        break;
    }
    free(op);
}

static int send_op(struct s3_client *s, struct http_req *r, struct s3_op *op)
{
    int rc = http_send(s->http, r, on_http, op);
    if (rc < 0)
        free(op);
    return rc;
}

static struct s3_op *op_new(enum op_kind kind, void *arg)
{
    struct s3_op *op = calloc(1, sizeof(*op));
    if (op) {
        op->kind = kind;
        op->arg = arg;
    }
    return op;
}

#define CAP_DEFAULT SIZE_MAX /* dispatch(): keep the client's default response cap */

/* The common tail of a call: r was built with result rc. On success an op of kind carries cb
 * to the answer; takes r (freed on failure). */
static int dispatch(struct s3_client *s, struct http_req *r, int rc, enum op_kind kind,
                    union s3_cb cb, void *arg, size_t cap, enum http_payload mode)
{
    struct s3_op *op = rc == 0 ? op_new(kind, arg) : NULL;
    if (rc == 0 && !op)
        rc = ERR_NOMEM;
    if (rc < 0) {
        http_req_free(r);
        return rc;
    }
    op->cb = cb;
    if (cap != CAP_DEFAULT)
        http_req_set_response_cap(r, cap);
    http_req_sign(r, s->creds, s->region, "s3", true, mode);
    return send_op(s, r, op);
}

/* PutObject's headers: type, x-amz-checksum-sha256 from sha256_hex, SSE, the payload hash. */
static int put_headers(struct s3_client *s, struct http_req *r, const char *content_type,
                       const char *sha256_hex)
{
    uint8_t bin[32];
    TRY(sigv4_hex_to_bin32(sha256_hex, bin));
    char b64[45];
    sigv4_base64_32(bin, b64);
    TRY(http_req_add_header(r, "Content-Type", content_type));
    TRY(add_checksum(r, b64));
    TRY(add_sse(s, r));
    return http_req_payload_sha256(r, sha256_hex);
}

/* ---- calls ------------------------------------------------------------------------------- */

int s3_put_object_file(struct s3_client *s, const char *bucket, const char *key,
                       const char *path, uint64_t off, uint64_t len, const char *sha256_hex,
                       s3_done_cb cb, void *arg)
{
    uint8_t bin[32];
    TRY(sigv4_hex_to_bin32(sha256_hex, bin)); /* refuse a bad hash before building anything */
    struct http_req *r;
    TRY(new_req(s, "PUT", bucket, key, NULL, &r));
    int rc = put_headers(s, r, "application/dicom", sha256_hex);
    if (rc == 0)
        rc = http_req_body_file(r, path, off, len);
    return dispatch(s, r, rc, OP_DONE, (union s3_cb){.done = cb}, arg, CAP_DEFAULT,
                    HTTP_PAYLOAD_KNOWN);
}

int s3_put_object_mem(struct s3_client *s, const char *bucket, const char *key, const void *p,
                      size_t n, const char *content_type, s3_done_cb cb, void *arg)
{
    char hex[65];
    sigv4_sha256_hex(p, n, hex);
    struct http_req *r;
    TRY(new_req(s, "PUT", bucket, key, NULL, &r));
    int rc = put_headers(s, r, content_type ? content_type : "application/octet-stream", hex);
    if (rc == 0)
        rc = http_req_body_mem(r, p, n);
    return dispatch(s, r, rc, OP_DONE, (union s3_cb){.done = cb}, arg, CAP_DEFAULT,
                    HTTP_PAYLOAD_KNOWN);
}

int s3_create_multipart(struct s3_client *s, const char *bucket, const char *key,
                        s3_create_cb cb, void *arg)
{
    struct http_req *r;
    TRY(new_req(s, "POST", bucket, key, "uploads", &r));
    int rc = http_req_add_header(r, "Content-Type", "application/dicom");
    if (rc == 0)
        rc = http_req_add_header(r, "x-amz-checksum-algorithm", "SHA256");
    if (rc == 0)
        rc = add_sse(s, r);
    return dispatch(s, r, rc, OP_CREATE, (union s3_cb){.create = cb}, arg, S3_XML_CAP,
                    HTTP_PAYLOAD_SIGNED);
}

static void part_hashed(void *arg, int err, const uint8_t hash[32])
{
    struct s3_op *op = arg;
    struct http_req *r = op->pending;
    op->pending = NULL;
    int rc = err;
    char hex[65];
    if (rc == 0) {
        hex_lower(hash, 32, hex);
        sigv4_base64_32(hash, op->checksum_b64);
        rc = add_checksum(r, op->checksum_b64);
    }
    if (rc == 0)
        rc = http_req_payload_sha256(r, hex);
    if (rc == 0) {
        http_req_sign(r, op->s->creds, op->s->region, "s3", true, HTTP_PAYLOAD_KNOWN);
        rc = http_send(op->s->http, r, on_http, op);
        if (rc == 0)
            return;
        r = NULL; /* http_send took it */
    }
    http_req_free(r);
    struct http_result res = {.err = rc};
    snprintf(res.message, sizeof(res.message), "part not readable: %s", http_err_str(rc));
    op->cb.part(op->arg, &res, NULL, NULL);
    free(op);
}

int s3_upload_part(struct s3_client *s, const char *bucket, const char *key,
                   const char *upload_id, unsigned part_no, const char *path, uint64_t off,
                   uint64_t len, s3_part_cb cb, void *arg)
{
    if (part_no < 1 || part_no > S3_MAX_PARTS)
        return ERR_LIMIT;
    struct wbuf q;
    wbuf_init(&q, 4096);
    wbuf_printf(&q, "partNumber=%u&uploadId=", part_no);
    sigv4_uri_encode(&q, upload_id, strlen(upload_id), false);
    wbuf_u8(&q, 0);
    if (q.err) {
        int rc = q.err;
        wbuf_cleanup(&q);
        return rc;
    }
    struct http_req *r;
    int rc = new_req(s, "PUT", bucket, key, (const char *)q.p, &r);
    wbuf_cleanup(&q);
    if (rc < 0)
        return rc;
    rc = http_req_body_file(r, path, off, len);
    struct s3_op *op = rc == 0 ? op_new(OP_PART, arg) : NULL;
    if (rc == 0 && !op)
        rc = ERR_NOMEM;
    if (rc < 0) {
        http_req_free(r);
        return rc;
    }
    op->cb.part = cb;
    op->s = s;
    op->pending = r;
    rc = http_hash_file(s->http, path, off, len, part_hashed, op);
    if (rc < 0) {
        http_req_free(r);
        free(op);
    }
    return rc;
}

int s3_complete_multipart(struct s3_client *s, const char *bucket, const char *key,
                          const char *upload_id, const struct s3_part *parts, size_t n_parts,
                          s3_done_cb cb, void *arg)
{
    if (n_parts == 0 || n_parts > S3_MAX_PARTS)
        return ERR_LIMIT;
    struct wbuf q, body;
    wbuf_init(&q, 4096);
    wbuf_str(&q, "uploadId=");
    sigv4_uri_encode(&q, upload_id, strlen(upload_id), false);
    wbuf_u8(&q, 0);
    wbuf_init(&body, 400u * S3_MAX_PARTS);
    wbuf_str(&body, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (size_t i = 0; i < n_parts; i++) {
        wbuf_str(&body, "<Part><ChecksumSHA256>");
        wbuf_str(&body, parts[i].checksum_b64); /* base64: no XML specials */
        wbuf_str(&body, "</ChecksumSHA256><ETag>");
        for (const char *e = parts[i].etag; *e; e++) {
            if (*e == '&')
                wbuf_str(&body, "&amp;");
            else if (*e == '<')
                wbuf_str(&body, "&lt;");
            else if (*e == '>')
                wbuf_str(&body, "&gt;");
            else
                wbuf_u8(&body, (uint8_t)*e);
        }
        wbuf_printf(&body, "</ETag><PartNumber>%u</PartNumber></Part>", parts[i].part_no);
    }
    wbuf_str(&body, "</CompleteMultipartUpload>");
    struct http_req *r = NULL;
    int rc = q.err ? q.err : body.err;
    if (rc == 0)
        rc = new_req(s, "POST", bucket, key, (const char *)q.p, &r);
    if (rc == 0)
        rc = http_req_add_header(r, "Content-Type", "application/xml");
    if (rc == 0)
        rc = http_req_body_mem(r, body.p, body.len);
    wbuf_cleanup(&q);
    wbuf_cleanup(&body);
    return dispatch(s, r, rc, OP_COMPLETE, (union s3_cb){.done = cb}, arg, S3_XML_CAP,
                    HTTP_PAYLOAD_SIGNED);
}

int s3_abort_multipart(struct s3_client *s, const char *bucket, const char *key,
                       const char *upload_id, s3_done_cb cb, void *arg)
{
    struct wbuf q;
    wbuf_init(&q, 4096);
    wbuf_str(&q, "uploadId=");
    sigv4_uri_encode(&q, upload_id, strlen(upload_id), false);
    wbuf_u8(&q, 0);
    struct http_req *r = NULL;
    int rc = q.err;
    if (rc == 0)
        rc = new_req(s, "DELETE", bucket, key, (const char *)q.p, &r);
    wbuf_cleanup(&q);
    return dispatch(s, r, rc, OP_ABORT, (union s3_cb){.done = cb}, arg, S3_XML_CAP,
                    HTTP_PAYLOAD_SIGNED);
}

int s3_get_object(struct s3_client *s, const char *bucket, const char *key, size_t max,
                  s3_get_cb cb, void *arg)
{
    struct http_req *r;
    TRY(new_req(s, "GET", bucket, key, NULL, &r));
    return dispatch(s, r, 0, OP_GET, (union s3_cb){.get = cb}, arg, max, HTTP_PAYLOAD_SIGNED);
}

/* ---- whole-file upload ------------------------------------------------------------------ */

#define S3_PARTS_IN_FLIGHT 4 /* overlaps one part's hashing with the others' sending */

struct upl;
struct upl_part_ctx {
    struct upl *u;
    unsigned idx;
};

struct upl {
    struct s3_client *s;
    char *bucket, *key, *path, *upload_id;
    uint64_t off, len, part_size;
    unsigned n_parts, next, in_flight, done;
    bool failed;
    struct s3_part *parts;
    struct upl_part_ctx *ctx;
    struct http_result fail;
    s3_done_cb cb;
    void *arg;
};

static void upl_free(struct upl *u)
{
    free(u->bucket);
    free(u->key);
    free(u->path);
    free(u->upload_id);
    free(u->parts);
    free(u->ctx);
    free(u);
}

static void upl_end(struct upl *u, const struct http_result *res)
{
    u->cb(u->arg, res);
    upl_free(u);
}

static void upl_aborted(void *arg, const struct http_result *res)
{
    struct upl *u = arg;
    (void)res; /* best effort: the bucket's lifecycle rule sweeps what is left */
    upl_end(u, &u->fail);
}

/* Record the first failure; abort once no part is in flight any more. */
static void upl_fail(struct upl *u, const struct http_result *res)
{
    if (!u->failed) {
        u->failed = true;
        u->fail = *res;
        if (u->fail.err == 0)
            u->fail.err = HTTP_ERR_PARSE;
    }
    if (u->in_flight > 0)
        return;
    if (!u->upload_id || s3_abort_multipart(u->s, u->bucket, u->key, u->upload_id,
                                            upl_aborted, u) < 0)
        upl_end(u, &u->fail);
}

static void upl_pump(struct upl *u);

static void upl_completed(void *arg, const struct http_result *res)
{
    struct upl *u = arg;
    if (res->err < 0) {
        upl_fail(u, res);
        return;
    }
    upl_end(u, res);
}

static void upl_part_done(void *arg, const struct http_result *res, const char *etag,
                          const char *sum)
{
    struct upl_part_ctx *pc = arg;
    struct upl *u = pc->u;
    u->in_flight--;
    if (res->err < 0 || u->failed) {
        upl_fail(u, res->err < 0 ? res : &u->fail);
        return;
    }
    struct s3_part *p = &u->parts[pc->idx];
    p->part_no = pc->idx + 1;
    snprintf(p->etag, sizeof(p->etag), "%s", etag);
    snprintf(p->checksum_b64, sizeof(p->checksum_b64), "%s", sum);
    u->done++;
    upl_pump(u);
}

static void upl_pump(struct upl *u)
{
    if (u->done == u->n_parts) {
        int rc = s3_complete_multipart(u->s, u->bucket, u->key, u->upload_id, u->parts,
                                       u->n_parts, upl_completed, u);
        if (rc < 0) {
            struct http_result res = {.err = rc};
            upl_fail(u, &res);
        }
        return;
    }
    while (!u->failed && u->next < u->n_parts && u->in_flight < S3_PARTS_IN_FLIGHT) {
        unsigned i = u->next++;
        uint64_t poff = (uint64_t)i * u->part_size;
        uint64_t plen = u->len - poff < u->part_size ? u->len - poff : u->part_size;
        u->ctx[i].u = u;
        u->ctx[i].idx = i;
        int rc = s3_upload_part(u->s, u->bucket, u->key, u->upload_id, i + 1, u->path,
                                u->off + poff, plen, upl_part_done, &u->ctx[i]);
        if (rc < 0) {
            struct http_result res = {.err = rc};
            upl_fail(u, &res);
            return;
        }
        u->in_flight++;
    }
}

static void upl_created(void *arg, const struct http_result *res, const char *upload_id)
{
    struct upl *u = arg;
    if (res->err < 0) {
        upl_end(u, res);
        return;
    }
    u->upload_id = strdup(upload_id);
    if (!u->upload_id) {
        struct http_result r2 = {.err = ERR_NOMEM};
        upl_end(u, &r2);
        return;
    }
    upl_pump(u);
}

int s3_upload_file(struct s3_client *s, const char *bucket, const char *key, const char *path,
                   uint64_t off, uint64_t len, const char *sha256_hex, uint64_t threshold,
                   uint64_t part_size, s3_done_cb cb, void *arg)
{
    if (len < threshold || len == 0)
        return s3_put_object_file(s, bucket, key, path, off, len, sha256_hex, cb, arg);
    if (part_size < S3_MIN_PART)
        part_size = S3_MIN_PART;
    while ((len + part_size - 1) / part_size > S3_MAX_PARTS)
        part_size *= 2;
    struct upl *u = calloc(1, sizeof(*u));
    if (!u)
        return ERR_NOMEM;
    u->s = s;
    u->bucket = strdup(bucket);
    u->key = strdup(key);
    u->path = strdup(path);
    u->off = off;
    u->len = len;
    u->part_size = part_size;
    u->n_parts = (unsigned)((len + part_size - 1) / part_size);
    u->parts = calloc(u->n_parts, sizeof(*u->parts));
    u->ctx = calloc(u->n_parts, sizeof(*u->ctx));
    u->cb = cb;
    u->arg = arg;
    if (!u->bucket || !u->key || !u->path || !u->parts || !u->ctx) {
        upl_free(u);
        return ERR_NOMEM;
    }
    int rc = s3_create_multipart(s, bucket, key, upl_created, u);
    if (rc < 0)
        upl_free(u);
    return rc;
}
