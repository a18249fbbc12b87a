#include "s3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc64nvme.h"
#include "common/hex.h"
#include "common/wbuf.h"
#include "aws_client.h"
#include "sigv4.h"
#include "xml.h"

#define S3_XML_CAP (64u * 1024) /* S3's small XML answers */

struct s3_client {
    struct aws_client c;
    char *endpoint; /* NULL = AWS virtual-hosted */
    enum s3_sse sse;
    char *kms_key_id;
    enum s3_checksum checksum;
};

int s3_client_new(struct http_client *http, struct creds_provider *creds,
                  const struct s3_opts *o, struct s3_client **out)
{
    *out = NULL;
    struct s3_client *s = calloc(1, sizeof(*s));
    if (!s)
        return ERR_NOMEM;
    int rc = aws_client_init(&s->c, http, creds, o->region, "s3", true);
    if (rc == 0 && ((o->kms_key_id && *o->kms_key_id && o->sse != S3_SSE_KMS) ||
                    !aws_endpoint_valid(o->endpoint)))
        rc = ERR_CONFIG;
    s->sse = o->sse;
    s->checksum = o->checksum == S3_CHECKSUM_CRC64NVME ? S3_CHECKSUM_CRC64NVME : S3_CHECKSUM_SHA256;
    if (rc == 0 && o->endpoint && *o->endpoint &&
        !(s->endpoint = aws_endpoint_dup(o->endpoint, "", "", "")))
        rc = ERR_NOMEM;
    if (rc == 0 && o->kms_key_id && *o->kms_key_id && !(s->kms_key_id = strdup(o->kms_key_id)))
        rc = ERR_NOMEM;
    if (rc < 0) {
        s3_client_free(s);
        return rc;
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
        wbuf_printf(&u, "https://%s.s3.%s.amazonaws.com", bucket, s->c.region);
    }
    wbuf_u8(&u, '/');
    if (key)
        s3_key_path(&u, key);
    TRY(aws_client_req(method, &u, out));
    int rc = query ? http_req_set_query(*out, query) : 0;
    if (rc < 0) {
        http_req_free(*out);
        *out = NULL;
    }
    return rc;
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

static int add_crc(struct http_req *r, uint64_t crc, char b64[CRC64NVME_B64_LEN + 1])
{
    crc64nvme_base64(crc, b64);
    TRY(http_req_add_header(r, "x-amz-sdk-checksum-algorithm", "CRC64NVME"));
    return http_req_add_header(r, "x-amz-checksum-crc64nvme", b64);
}

/* ---- one operation --------------------------------------------------------------------- */

enum op_kind { OP_DONE, OP_CREATE, OP_PART, OP_GET, OP_COMPLETE, OP_ABORT, OP_HEAD };

union s3_cb {
    s3_done_cb done;
    s3_create_cb create;
    s3_part_cb part;
    s3_get_cb get;
    s3_head_cb head;
};

struct s3_op {
    enum op_kind kind;
    union s3_cb cb;
    void *arg;
    char checksum_b64[45];
    uint64_t crc;
    /* for the part path (and a CRC-64/NVME PUT): the checksum first */
    struct s3_client *s;
    struct http_req *pending; /* built, waiting for the checksum */
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
        const char *sum_name = op->s->checksum == S3_CHECKSUM_SHA256 ? "x-amz-checksum-sha256"
                                                                      : "x-amz-checksum-crc64nvme";
        const char *sum = res.err == 0 ? http_resp_header(resp, sum_name) : NULL;
        if (res.err == 0 && (!etag || !*etag || strlen(etag) >= 130)) {
            res.err = HTTP_ERR_PARSE;
            etag = NULL;
        }
        if (sum && strcmp(sum, op->checksum_b64) != 0 && res.err == 0) {
            res.err = HTTP_ERR_PARSE; /* S3 saw other bytes than we hashed */
            snprintf(res.message, sizeof(res.message), "part checksum differs");
        }
        op->cb.part(op->arg, &res, res.err == 0 ? etag : NULL,
                    res.err == 0 ? op->checksum_b64 : NULL, res.err == 0 ? op->crc : 0);
        break;
    }
    case OP_HEAD: {
        bool found = res.err == 0 && res.status >= 200 && res.status < 300;
        op->cb.head(op->arg, &res, found);
        break;
    }
    case OP_GET:
        op->cb.get(op->arg, &res, res.err == 0 ? resp->body : NULL,
                   res.err == 0 ? resp->body_len : 0);
        break;
    }
    free(op);
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

/* The common tail of a call: r was built with result rc. On success an op of kind carries cb
 * to the answer (capped at cap bytes, 0 = the client's default); takes r. */
static int dispatch(struct s3_client *s, struct http_req *r, int rc, enum op_kind kind,
                    union s3_cb cb, void *arg, size_t cap, enum http_payload mode)
{
    struct s3_op *op = rc == 0 ? op_new(kind, arg) : NULL;
    if (op)
        op->cb = cb;
    return aws_client_send(&s->c, r, rc, op, cap, mode, on_http);
}

/* PutObject's headers: type, x-amz-checksum-sha256 from sha256_hex (SHA-256 mode; the CRC is
 * added once computed), SSE, the payload hash. */
static int put_headers(struct s3_client *s, struct http_req *r, const char *content_type,
                       const char *sha256_hex)
{
    uint8_t bin[32];
    TRY(sigv4_hex_to_bin32(sha256_hex, bin));
    char b64[45];
    sigv4_base64_32(bin, b64);
    TRY(http_req_add_header(r, "Content-Type", content_type));
    if (s->checksum == S3_CHECKSUM_SHA256)
        TRY(add_checksum(r, b64));
    TRY(add_sse(s, r));
    return http_req_payload_sha256(r, sha256_hex);
}

/* A request whose checksum was computed (rc 0) or could not be (rc < 0): sign and send it, or
 * answer its callback with the failure. Takes op and its pending request. */
static void send_pending(struct s3_op *op, int rc, enum http_payload mode)
{
    struct http_req *r = op->pending;
    op->pending = NULL;
    if (rc == 0) {
        aws_client_sign(&op->s->c, r, mode);
        rc = http_send(op->s->c.http, r, on_http, op);
        if (rc == 0)
            return;
        r = NULL; /* http_send took it */
    }
    http_req_free(r);
    struct http_result res = {.err = rc};
    snprintf(res.message, sizeof(res.message), "body not readable: %s", http_err_str(rc));
    if (op->kind == OP_PART)
        op->cb.part(op->arg, &res, NULL, NULL, 0);
    else
        op->cb.done(op->arg, &res);
    free(op);
}

static void put_crc_done(void *arg, int err, uint64_t crc)
{
    struct s3_op *op = arg;
    int rc = err;
    if (rc == 0) {
        op->crc = crc;
        rc = add_crc(op->pending, crc, op->checksum_b64);
    }
    send_pending(op, rc, HTTP_PAYLOAD_KNOWN);
}

/* Hold r (takes it) until the CRC-64/NVME of the range is known, then send it. */
static int crc_then_send(struct s3_client *s, struct http_req *r, enum op_kind kind,
                         union s3_cb cb, void *arg, const char *path, uint64_t off, uint64_t len,
                         http_crc_cb done)
{
    struct s3_op *op = op_new(kind, arg);
    if (!op) {
        http_req_free(r);
        return ERR_NOMEM;
    }
    op->cb = cb;
    op->s = s;
    op->pending = r;
    int rc = http_crc64nvme_file(s->c.http, path, off, len, done, op);
    if (rc < 0) {
        http_req_free(r);
        free(op);
    }
    return rc;
}

/* ---- calls ------------------------------------------------------------------------------- */

enum s3_checksum s3_client_checksum(const struct s3_client *s)
{
    return s->checksum;
}

int s3_crc64nvme_from_hex(const char *hex, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; hex && hex[i] && i < 17; i++) {
        char c = hex[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d > 15)
            return ERR_MALFORMED;
        v = v << 4 | d;
    }
    if (i != 16)
        return ERR_MALFORMED;
    *out = v;
    return 0;
}

int s3_put_object_file(struct s3_client *s, const char *bucket, const char *key,
                       const char *path, uint64_t off, uint64_t len, const struct s3_sums *sums,
                       s3_done_cb cb, void *arg)
{
    const char *sha256_hex = sums->sha256_hex;
    uint64_t crc = 0;
    bool crc_known = sums->crc64nvme_hex && sums->crc64nvme_hex[0];
    if (crc_known)
        TRY(s3_crc64nvme_from_hex(sums->crc64nvme_hex, &crc));
    uint8_t bin[32];
    TRY(sigv4_hex_to_bin32(sha256_hex, bin)); /* refuse a bad hash before building anything */
    struct http_req *r;
    TRY(new_req(s, "PUT", bucket, key, NULL, &r));
    int rc = put_headers(s, r, "application/dicom", sha256_hex);
    if (rc == 0)
        rc = http_req_body_file(r, path, off, len);
    char b64[CRC64NVME_B64_LEN + 1];
    if (rc == 0 && s->checksum == S3_CHECKSUM_CRC64NVME && crc_known)
        rc = add_crc(r, crc, b64); /* the CRC of the bytes as received: no read here */
    else if (rc == 0 && s->checksum == S3_CHECKSUM_CRC64NVME)
        return crc_then_send(s, r, OP_DONE, (union s3_cb){.done = cb}, arg, path, off, len,
                             put_crc_done);
    return dispatch(s, r, rc, OP_DONE, (union s3_cb){.done = cb}, arg, 0,
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
    char b64[CRC64NVME_B64_LEN + 1];
    if (rc == 0 && s->checksum == S3_CHECKSUM_CRC64NVME)
        rc = add_crc(r, crc64nvme(0, p, n), b64);
    if (rc == 0)
        rc = http_req_body_mem(r, p, n);
    return dispatch(s, r, rc, OP_DONE, (union s3_cb){.done = cb}, arg, 0,
                    HTTP_PAYLOAD_KNOWN);
}

int s3_create_multipart(struct s3_client *s, const char *bucket, const char *key,
                        s3_create_cb cb, void *arg)
{
    struct http_req *r;
    TRY(new_req(s, "POST", bucket, key, "uploads", &r));
    int rc = http_req_add_header(r, "Content-Type", "application/dicom");
    bool crc = s->checksum == S3_CHECKSUM_CRC64NVME;
    if (rc == 0)
        rc = http_req_add_header(r, "x-amz-checksum-algorithm", crc ? "CRC64NVME" : "SHA256");
    if (rc == 0 && crc) /* CRC64NVME objects have only a full-object checksum */
        rc = http_req_add_header(r, "x-amz-checksum-type", "FULL_OBJECT");
    if (rc == 0)
        rc = add_sse(s, r);
    return dispatch(s, r, rc, OP_CREATE, (union s3_cb){.create = cb}, arg, S3_XML_CAP,
                    HTTP_PAYLOAD_SIGNED);
}

static void part_hashed(void *arg, int err, const uint8_t hash[32])
{
    struct s3_op *op = arg;
    int rc = err;
    char hex[65];
    if (rc == 0) {
        hex_lower(hash, 32, hex);
        sigv4_base64_32(hash, op->checksum_b64);
        rc = add_checksum(op->pending, op->checksum_b64);
    }
    if (rc == 0)
        rc = http_req_payload_sha256(op->pending, hex);
    send_pending(op, rc, HTTP_PAYLOAD_KNOWN);
}

static void part_crc_done(void *arg, int err, uint64_t crc)
{
    struct s3_op *op = arg;
    int rc = err;
    if (rc == 0) {
        op->crc = crc;
        rc = add_crc(op->pending, crc, op->checksum_b64);
    }
    /* the CRC that S3 checks guards the bytes: no second pass over them for a payload hash */
    send_pending(op, rc, HTTP_PAYLOAD_UNSIGNED);
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
    if (rc == 0 && s->checksum == S3_CHECKSUM_CRC64NVME)
        return crc_then_send(s, r, OP_PART, (union s3_cb){.part = cb}, arg, path, off, len,
                             part_crc_done);
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
    rc = http_hash_file(s->c.http, path, off, len, part_hashed, op);
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
    bool crc = s->checksum == S3_CHECKSUM_CRC64NVME;
    const char *tag = crc ? "ChecksumCRC64NVME" : "ChecksumSHA256";
    for (size_t i = 0; i < n_parts; i++) {
        wbuf_printf(&body, "<Part><%s>", tag);
        wbuf_str(&body, parts[i].checksum_b64); /* base64: no XML specials */
        wbuf_printf(&body, "</%s><ETag>", tag);
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
    char b64[CRC64NVME_B64_LEN + 1];
    if (rc == 0 && crc) {
        crc64nvme_base64(s3_parts_crc64nvme(parts, n_parts), b64);
        rc = http_req_add_header(r, "x-amz-checksum-crc64nvme", b64);
        if (rc == 0)
            rc = http_req_add_header(r, "x-amz-checksum-type", "FULL_OBJECT");
    }
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

int s3_head_object(struct s3_client *s, const char *bucket, const char *key, s3_head_cb cb,
                   void *arg)
{
    struct http_req *r;
    TRY(new_req(s, "HEAD", bucket, key, NULL, &r));
    http_req_accept_status(r, 404);
    http_req_accept_status(r, 403);
    return dispatch(s, r, 0, OP_HEAD, (union s3_cb){.head = cb}, arg, S3_XML_CAP,
                    HTTP_PAYLOAD_SIGNED);
}

uint64_t s3_parts_crc64nvme(const struct s3_part *parts, size_t n_parts)
{
    uint64_t crc = 0;
    for (size_t i = 0; i < n_parts; i++)
        crc = i == 0 ? parts[i].crc : crc64nvme_combine(crc, parts[i].crc, parts[i].len);
    return crc;
}
