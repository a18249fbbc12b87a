#define _GNU_SOURCE /* strcasestr */
/* The S3 client against the scripted HTTP server (tests/support/http_fixture.h): PutObject with
 * checksum, SSE-KMS and a path-style encoded key; multipart upload (abort on a failed part, 200
 * with an error body at Complete); CRC-64/NVME mode (single PUT and multipart with each part's
 * CRC and the full object's combined CRC, never completed when the parts do not combine into the
 * CRC received); HeadObject; CreateMultipartUpload and AbortMultipartUpload edge cases. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common/crc64nvme.h"
#include "forwarder/aws/s3.h"
#include "forwarder/aws/sigv4.h"
#include "http_fixture.h"

struct s3_outcome {
    bool done;
    struct http_result res;
};

static const struct s3_sums empty_sums = {.sha256_hex = SIGV4_EMPTY_SHA256};

static void on_s3(void *arg, const struct http_result *res)
{
    struct s3_outcome *o = arg;
    o->done = true;
    o->res = *res;
}

static struct s3_client *s3_for(struct fixture *f, struct creds_provider *cp, enum s3_sse sse,
                                const char *kms)
{
    char ep[64];
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d/", f->srv.port);
    struct s3_opts o = {.region = "us-east-1", .endpoint = ep, .sse = sse, .kms_key_id = kms};
    struct s3_client *s;
    cr_assert_eq(s3_client_new(f->http, cp, &o, &s), 0);
    return s;
}

static char *zero_file(size_t n)
{
    char *path = strdup("/tmp/gw-s3-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)n), 0);
    close(fd);
    return path;
}

Test(s3, put_object_sends_checksum_sse_kms_and_a_path_style_encoded_key)
{
    static const struct hs_canned s[] = {{200, "ETag: \"e\"\r\n", NULL}};
    struct fixture f;
    fx_start(&f, s, 1, 1);
    struct creds_provider *cp = fx_env_provider(&f);
    struct s3_client *s3 = s3_for(&f, cp, S3_SSE_KMS, "key-1");
    char *path = fx_temp_file("hello", 5);
    char hex[65];
    sigv4_sha256_hex("hello", 5, hex);
    struct s3_outcome o = {0};
    struct s3_sums sums = {.sha256_hex = hex};
    cr_assert_eq(
        s3_put_object_file(s3, "bkt", "dicom/b 1/1.2.dcm", path, 0, 5, &sums, on_s3, &o), 0);
    fx_run_until(&f, &o.done);
    cr_assert_eq(o.res.err, 0);
    const char *h = f.srv.seen_head[0];
    cr_assert(strstr(h, "PUT /bkt/dicom/b%201/1.2.dcm HTTP/1.1"), "%s", h);
    cr_assert(strstr(h, "x-amz-checksum-sha256: LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="), "%s",
              h);
    cr_assert(strstr(h, "x-amz-server-side-encryption: aws:kms"), "%s", h);
    cr_assert(strstr(h, "x-amz-server-side-encryption-aws-kms-key-id: key-1"), "%s", h);
    cr_assert_null(strcasestr(h, "Content-Encoding"), "%s", h);
    cr_assert_eq(f.srv.seen_body_len[0], 5);
    creds_provider_close(cp);
    s3_client_free(s3);
    unlink(path);
    free(path);
    fx_stop(&f);
}

Test(s3, a_failed_part_aborts_the_multipart_upload)
{
    static const struct hs_canned s[] = {
        {200, NULL, "<InitiateMultipartUploadResult><UploadId>u/1+</UploadId>"
                    "</InitiateMultipartUploadResult>"},
        {200, "ETag: \"p\"\r\n", NULL},
        {403, NULL, "<Error><Code>AccessDenied</Code><Message>no</Message></Error>"},
        {200, "ETag: \"p\"\r\n", NULL},
        {204, NULL, NULL}};
    struct fixture f;
    fx_start(&f, s, 5, 1);
    struct creds_provider *cp = fx_env_provider(&f);
    struct s3_client *s3 = s3_for(&f, cp, S3_SSE_NONE, NULL);
    char *path = zero_file(11u << 20); /* three parts of 5 MiB */
    struct s3_outcome o = {0};
    cr_assert_eq(s3_upload_file(s3, "bkt", "k.dcm", path, 0, 11u << 20, &empty_sums,
                                5u << 20, 5u << 20, on_s3, &o),
                 0);
    fx_run_until(&f, &o.done);
    cr_assert_eq(o.res.err, HTTP_ERR_STATUS);
    cr_assert_str_eq(o.res.error_code, "AccessDenied");
    cr_assert_eq(f.srv.n_seen, 5);
    cr_assert(strstr(f.srv.seen_head[0], "POST /bkt/k.dcm?uploads= "), "%s", f.srv.seen_head[0]);
    cr_assert(strstr(f.srv.seen_head[4], "DELETE /bkt/k.dcm?uploadId=u%2F1%2B "), "%s",
              f.srv.seen_head[4]);
    creds_provider_close(cp);
    s3_client_free(s3);
    unlink(path);
    free(path);
    fx_stop(&f);
}

Test(s3, complete_answering_200_with_an_error_body_is_a_failure)
{
    static const struct hs_canned s[] = {
        {200, NULL, "<InitiateMultipartUploadResult><UploadId>u1</UploadId>"
                    "</InitiateMultipartUploadResult>"},
        {200, "ETag: \"p\"\r\n", NULL},
        {200, NULL, "<Error><Code>InternalError</Code><Message>retry</Message></Error>"},
        {204, NULL, NULL}};
    struct fixture f;
    fx_start(&f, s, 4, 1);
    struct creds_provider *cp = fx_env_provider(&f);
    struct s3_client *s3 = s3_for(&f, cp, S3_SSE_NONE, NULL);
    char *path = zero_file(6u << 20);
    struct s3_outcome o = {0};
    cr_assert_eq(s3_upload_file(s3, "bkt", "k.dcm", path, 0, 6u << 20, &empty_sums,
                                5u << 20, 8u << 20, on_s3, &o),
                 0);
    fx_run_until(&f, &o.done);
    cr_assert_eq(o.res.err, HTTP_ERR_STATUS);
    cr_assert_str_eq(o.res.error_code, "InternalError");
    cr_assert(strstr(f.srv.seen_body[2], "<PartNumber>1</PartNumber>"));
    cr_assert(strstr(f.srv.seen_body[2], "<ChecksumSHA256>"));
    cr_assert(strstr(f.srv.seen_head[3], "DELETE "));
    creds_provider_close(cp);
    s3_client_free(s3);
    unlink(path);
    free(path);
    fx_stop(&f);
}

struct head_outcome {
    bool done, found;
    int err;
};

static void on_head(void *arg, const struct http_result *res, bool found)
{
    struct head_outcome *o = arg;
    o->done = true;
    o->err = res->err;
    o->found = found;
}

static struct s3_client *s3_crc_for(struct fixture *f, struct creds_provider *cp)
{
    char ep[64];
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d/", f->srv.port);
    struct s3_opts o = {.region = "us-east-1", .endpoint = ep, .checksum = S3_CHECKSUM_CRC64NVME};
    struct s3_client *s;
    cr_assert_eq(s3_client_new(f->http, cp, &o, &s), 0);
    return s;
}

/* n bytes of a fixed pseudo-random pattern in a new file (its content back in *data) */
static char *pattern_file(size_t n, uint8_t **data)
{
    uint8_t *d = malloc(n);
    cr_assert_not_null(d);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        d[i] = (uint8_t)x;
    }
    char *path = strdup("/tmp/gw-s3-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, d, n), (ssize_t)n);
    close(fd);
    *data = d;
    return path;
}

static void want_header(const char *head, const char *name, const char *value)
{
    char line[256];
    snprintf(line, sizeof line, "%s: %s\r\n", name, value);
    cr_assert(strcasestr(head, line), "want %s in %s", line, head);
}

Test(s3, crc64nvme_put_sends_the_files_crc_and_keeps_the_sha256_payload_hash)
{
    static const struct hs_canned s[] = {{200, "ETag: \"e\"\r\n", NULL}};
    struct fixture f;
    fx_start(&f, s, 1, 1);
    struct creds_provider *cp = fx_env_provider(&f);
    struct s3_client *s3 = s3_crc_for(&f, cp);
    uint8_t *d;
    char *path = pattern_file(70000, &d);
    char hex[65], b64[CRC64NVME_B64_LEN + 1];
    sigv4_sha256_hex(d, 70000, hex);
    crc64nvme_base64(crc64nvme_portable(0, d, 70000), b64);
    struct s3_outcome o = {0};
    struct s3_sums sums = {.sha256_hex = hex};
    cr_assert_eq(s3_put_object_file(s3, "bkt", "k.dcm", path, 0, 70000, &sums, on_s3, &o), 0);
    fx_run_until(&f, &o.done);
    cr_assert_eq(o.res.err, 0);
    const char *h = f.srv.seen_head[0];
    want_header(h, "x-amz-checksum-crc64nvme", b64);
    want_header(h, "x-amz-sdk-checksum-algorithm", "CRC64NVME");
    want_header(h, "x-amz-content-sha256", hex); /* S3 checks the signed payload hash too */
    cr_assert_null(strcasestr(h, "x-amz-checksum-sha256"), "%s", h);
    cr_assert_eq(f.srv.seen_body_len[0], 70000);
    creds_provider_close(cp);
    s3_client_free(s3);
    unlink(path);
    free(path);
    free(d);
    fx_stop(&f);
}

Test(s3, crc64nvme_multipart_sends_each_parts_crc_and_the_full_objects)
{
    static const struct hs_canned s[] = {
        {200, NULL, "<InitiateMultipartUploadResult><UploadId>u1</UploadId>"
                    "</InitiateMultipartUploadResult>"},
        {200, "ETag: \"p\"\r\n", NULL},
        {200, "ETag: \"p\"\r\n", NULL},
        {200, "ETag: \"p\"\r\n", NULL},
        {200, NULL, "<CompleteMultipartUploadResult/>"}};
    struct fixture f;
    fx_start(&f, s, 5, 1);
    struct creds_provider *cp = fx_env_provider(&f);
    struct s3_client *s3 = s3_crc_for(&f, cp);
    size_t n = (11u << 20) + 12345; /* parts of 5 MiB, 5 MiB and the rest */
    uint8_t *d;
    char *path = pattern_file(n, &d);
    char whole_hex[17];
    snprintf(whole_hex, sizeof whole_hex, "%016llx",
             (unsigned long long)crc64nvme_portable(0, d, n));
    struct s3_sums sums = {.sha256_hex = SIGV4_EMPTY_SHA256, .crc64nvme_hex = whole_hex};
    struct s3_outcome o = {0};
    cr_assert_eq(
        s3_upload_file(s3, "bkt", "k.dcm", path, 0, n, &sums, 5u << 20, 5u << 20, on_s3, &o), 0);
    fx_run_until(&f, &o.done);
    cr_assert_eq(o.res.err, 0, "%s", o.res.message);
    cr_assert_eq(f.srv.n_seen, 5);
    want_header(f.srv.seen_head[0], "x-amz-checksum-algorithm", "CRC64NVME");
    want_header(f.srv.seen_head[0], "x-amz-checksum-type", "FULL_OBJECT");
    /* each part: its own CRC, computed here on the portable path from the bytes */
    for (unsigned part = 1; part <= 3; part++) {
        const char *h = NULL;
        char q[64];
        snprintf(q, sizeof q, "partNumber=%u&", part);
        for (size_t i = 1; i < 4; i++) {
            if (strstr(f.srv.seen_head[i], q))
                h = f.srv.seen_head[i];
        }
        cr_assert_not_null(h, "part %u not seen", part);
        size_t off = (size_t)(part - 1) * (5u << 20);
        size_t len = part < 3 ? 5u << 20 : n - off;
        char b64[CRC64NVME_B64_LEN + 1];
        crc64nvme_base64(crc64nvme_portable(0, d + off, len), b64);
        want_header(h, "x-amz-checksum-crc64nvme", b64);
        want_header(h, "x-amz-content-sha256", "UNSIGNED-PAYLOAD");
    }
    /* complete: the whole object's CRC, and each part's in the body */
    char whole[CRC64NVME_B64_LEN + 1];
    crc64nvme_base64(crc64nvme_portable(0, d, n), whole);
    want_header(f.srv.seen_head[4], "x-amz-checksum-crc64nvme", whole);
    want_header(f.srv.seen_head[4], "x-amz-checksum-type", "FULL_OBJECT");
    cr_assert(strstr(f.srv.seen_body[4], "<ChecksumCRC64NVME>"), "%s", f.srv.seen_body[4]);
    cr_assert_null(strstr(f.srv.seen_body[4], "SHA256"), "%s", f.srv.seen_body[4]);
    creds_provider_close(cp);
    s3_client_free(s3);
    unlink(path);
    free(path);
    free(d);
    fx_stop(&f);
}

Test(s3, crc64nvme_put_takes_the_crc_of_the_bytes_received_without_reading_the_file)
{
    static const struct hs_canned s[] = {{200, "ETag: \"e\"\r\n", NULL}};
    struct fixture f;
    fx_start(&f, s, 1, 1);
    struct creds_provider *cp = fx_env_provider(&f);
    struct s3_client *s3 = s3_crc_for(&f, cp);
    uint8_t *d;
    char *path = pattern_file(1000, &d);
    char hex[65], b64[CRC64NVME_B64_LEN + 1];
    sigv4_sha256_hex(d, 1000, hex);
    /* not the file's CRC: what the caller says it received is what S3 is asked to check */
    crc64nvme_base64(0x0123456789abcdefull, b64);
    struct s3_sums sums = {.sha256_hex = hex, .crc64nvme_hex = "0123456789ABCDEF"};
    struct s3_outcome o = {0};
    cr_assert_eq(s3_put_object_file(s3, "bkt", "k.dcm", path, 0, 1000, &sums, on_s3, &o), 0);
    fx_run_until(&f, &o.done);
    cr_assert_eq(o.res.err, 0);
    want_header(f.srv.seen_head[0], "x-amz-checksum-crc64nvme", b64);
    struct s3_sums bad = {.sha256_hex = hex, .crc64nvme_hex = "0123"};
    cr_assert_eq(s3_put_object_file(s3, "bkt", "k.dcm", path, 0, 1000, &bad, on_s3, &o),
                 ERR_MALFORMED);
    creds_provider_close(cp);
    s3_client_free(s3);
    unlink(path);
    free(path);
    free(d);
    fx_stop(&f);
}

Test(s3, crc64nvme_multipart_whose_parts_are_not_the_bytes_received_is_never_completed)
{
    static const struct hs_canned s[] = {
        {200, NULL, "<InitiateMultipartUploadResult><UploadId>u1</UploadId>"
                    "</InitiateMultipartUploadResult>"},
        {200, "ETag: \"p\"\r\n", NULL},
        {200, "ETag: \"p\"\r\n", NULL},
        {204, NULL, NULL}};
    struct fixture f;
    fx_start(&f, s, 4, 1);
    struct creds_provider *cp = fx_env_provider(&f);
    struct s3_client *s3 = s3_crc_for(&f, cp);
    size_t n = (6u << 20) + 1;
    uint8_t *d;
    char *path = pattern_file(n, &d);
    char good[17], bad[17];
    uint64_t crc = crc64nvme_portable(0, d, n);
    snprintf(good, sizeof good, "%016llx", (unsigned long long)crc);
    snprintf(bad, sizeof bad, "%016llx", (unsigned long long)(crc ^ 1));
    struct s3_sums sums = {.sha256_hex = SIGV4_EMPTY_SHA256, .crc64nvme_hex = bad};
    struct s3_outcome o = {0};
    cr_assert_eq(
        s3_upload_file(s3, "bkt", "k.dcm", path, 0, n, &sums, 5u << 20, 5u << 20, on_s3, &o), 0);
    fx_run_until(&f, &o.done);
    cr_assert_eq(o.res.err, HTTP_ERR_STATUS);
    cr_assert_str_eq(o.res.error_code, "BadDigest");
    cr_assert_eq(f.srv.n_seen, 4);
    cr_assert(strstr(f.srv.seen_head[3], "DELETE /bkt/k.dcm?uploadId=u1 "), "%s",
              f.srv.seen_head[3]); /* aborted, not completed */
    (void)good;
    creds_provider_close(cp);
    s3_client_free(s3);
    unlink(path);
    free(path);
    free(d);
    fx_stop(&f);
}

Test(s3, parts_crc_combine_to_the_whole)
{
    uint8_t buf[3000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    struct s3_part p[3] = {{.crc = crc64nvme(0, buf, 1000), .len = 1000},
                           {.crc = crc64nvme(0, buf + 1000, 1999), .len = 1999},
                           {.crc = crc64nvme(0, buf + 2999, 1), .len = 1}};
    cr_assert_eq(s3_parts_crc64nvme(p, 3), crc64nvme_portable(0, buf, sizeof buf));
    cr_assert_eq(s3_parts_crc64nvme(p, 1), crc64nvme_portable(0, buf, 1000));
}

Test(s3, head_tells_a_missing_key_from_an_object)
{
    static const struct hs_canned s[] = {{200, "Content-Length: 5\r\n", NULL},
                                         {404, NULL, NULL},
                                         {403, NULL, NULL}};
    struct fixture f;
    fx_start(&f, s, 3, 1);
    struct creds_provider *cp = fx_env_provider(&f);
    struct s3_client *s3 = s3_for(&f, cp, S3_SSE_NONE, NULL);
    for (int i = 0; i < 3; i++) {
        struct head_outcome o = {0};
        cr_assert_eq(s3_head_object(s3, "bkt", "dicom/b/1.2.dcm", on_head, &o), 0);
        fx_run_until(&f, &o.done);
        cr_assert_eq(o.err, 0, "answer %d", i);
        cr_assert_eq(o.found, i == 0, "answer %d", i);
    }
    cr_assert(strstr(f.srv.seen_head[0], "HEAD /bkt/dicom/b/1.2.dcm HTTP/1.1"), "%s",
              f.srv.seen_head[0]);
    creds_provider_close(cp);
    s3_client_free(s3);
    fx_stop(&f);
}

struct create_outcome {
    bool done;
    int err;
};

static void on_create(void *arg, const struct http_result *res, const char *id)
{
    struct create_outcome *o = arg;
    o->done = true;
    o->err = res->err;
    cr_assert(id == NULL);
}

Test(s3, create_without_an_upload_id_is_a_parse_error)
{
    static const struct hs_canned s[] = {{200, NULL, "<InitiateMultipartUploadResult/>"}};
    struct fixture f;
    fx_start(&f, s, 1, 1);
    struct creds_provider *cp = fx_env_provider(&f);
    struct s3_client *s3 = s3_for(&f, cp, S3_SSE_NONE, NULL);
    struct create_outcome o = {0};
    cr_assert_eq(s3_create_multipart(s3, "bkt", "k", on_create, &o), 0);
    fx_run_until(&f, &o.done);
    cr_assert_eq(o.err, HTTP_ERR_PARSE);
    creds_provider_close(cp);
    s3_client_free(s3);
    fx_stop(&f);
}

Test(s3, abort_of_a_gone_upload_is_success)
{
    static const struct hs_canned s[] = {
        {404, NULL, "<Error><Code>NoSuchUpload</Code></Error>"}};
    struct fixture f;
    fx_start(&f, s, 1, 1);
    struct creds_provider *cp = fx_env_provider(&f);
    struct s3_client *s3 = s3_for(&f, cp, S3_SSE_NONE, NULL);
    struct s3_outcome o = {0};
    cr_assert_eq(s3_abort_multipart(s3, "bkt", "k", "u1", on_s3, &o), 0);
    fx_run_until(&f, &o.done);
    cr_assert_eq(o.res.err, 0);
    creds_provider_close(cp);
    s3_client_free(s3);
    fx_stop(&f);
}
