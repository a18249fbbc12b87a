/* s3: the few S3 calls the forwarder needs, on an http client (REST/XML, SigV4 "s3").
 * Virtual-hosted style https://<bucket>.s3.<region>.amazonaws.com by default; path style
 * <endpoint>/<bucket>/<key> when an endpoint override is given (moto, tests). Objects are sent
 * with x-amz-checksum-sha256 and never with a Content-Encoding. File bodies are streamed from a
 * byte range of a file. All callbacks run on the http client's loop. */
#ifndef GW_S3_H
#define GW_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "http.h"
#include "common/wbuf.h"

struct s3_client;
struct creds_provider;

#define S3_MIN_PART (5ull * 1024 * 1024) /* S3's smallest part but the last */
#define S3_MAX_PARTS 10000u              /* S3's most parts in one upload */

enum s3_sse { S3_SSE_NONE = 0, S3_SSE_AES256, S3_SSE_KMS };

/* The checksum S3 verifies on every upload and keeps with the object. SHA256: x-amz-checksum-
 * sha256 (a multipart object's is composite: a checksum of the parts' checksums). CRC64NVME:
 * x-amz-checksum-crc64nvme, always of the full object (multipart included: the parts' CRCs are
 * combined, common/crc64nvme.h), computed here from the file on the threadpool. Either way a
 * single PUT is signed with the caller's SHA-256 as its payload hash, which S3 checks too. */
enum s3_checksum { S3_CHECKSUM_SHA256 = 0, S3_CHECKSUM_CRC64NVME };

struct s3_opts {
    const char *region;      /* required */
    const char *endpoint;    /* NULL/"" = AWS; else "http://127.0.0.1:PORT" (path style) */
    enum s3_sse sse;
    const char *kms_key_id;  /* with S3_SSE_KMS; NULL = the bucket's/AWS managed key */
    enum s3_checksum checksum;
};

/* A client (plain memory; no handles). http and creds are borrowed and must outlive it and every
 * call in flight. opts' strings are copied. 0, ERR_NOMEM, ERR_CONFIG (no region, bad endpoint,
 * kms_key_id without S3_SSE_KMS). */
MUST_CHECK int s3_client_new(struct http_client *http, struct creds_provider *creds,
                             const struct s3_opts *opts, struct s3_client **out);
/* Free: only once nothing is in flight (after http_client_close, or when idle). NULL is fine. */
void s3_client_free(struct s3_client *s);

/* Every call: takes its string arguments by copy; returns 0 (cb will run exactly once, later)
 * or < 0 (cb never runs). res->err is 0 on success, HTTP_ERR_* otherwise (res->error_code holds
 * the S3 code, e.g. "NoSuchKey", "AccessDenied", "SignatureDoesNotMatch"). */
typedef void (*s3_done_cb)(void *arg, const struct http_result *res);

/* What the caller knows of an object's bytes, computed while it received them. */
struct s3_sums {
    const char *sha256_hex;    /* required: 64 hex digits */
    const char *crc64nvme_hex; /* 16 hex digits, or NULL/"": computed from the file when needed */
};
/* The client's checksum mode. */
enum s3_checksum s3_client_checksum(const struct s3_client *s);
/* 16 hex digits (any case) to a CRC. 0 or ERR_MALFORMED. */
MUST_CHECK int s3_crc64nvme_from_hex(const char *hex, uint64_t *out);

/* PutObject of len bytes of path from off, whose SHA-256 is sums->sha256_hex: sent as the
 * signed payload hash, so S3 rejects a corrupted upload (XAmzContentSHA256Mismatch), and with
 * the client's checksum: x-amz-checksum-sha256 (the same hash, BadDigest) or
 * x-amz-checksum-crc64nvme (sums->crc64nvme_hex, else computed from the file first). */
MUST_CHECK int s3_put_object_file(struct s3_client *s, const char *bucket, const char *key,
                                  const char *path, uint64_t off, uint64_t len,
                                  const struct s3_sums *sums, s3_done_cb cb, void *arg);
/* PutObject from memory (copied); the hash is computed here. */
MUST_CHECK int s3_put_object_mem(struct s3_client *s, const char *bucket, const char *key,
                                 const void *p, size_t n, const char *content_type,
                                 s3_done_cb cb, void *arg);

/* CreateMultipartUpload (POST ?uploads, x-amz-checksum-algorithm SHA256, or CRC64NVME with
 * x-amz-checksum-type FULL_OBJECT; the SSE headers).
 * upload_id is borrowed for the callback; NULL when res->err != 0. */
typedef void (*s3_create_cb)(void *arg, const struct http_result *res, const char *upload_id);
MUST_CHECK int s3_create_multipart(struct s3_client *s, const char *bucket, const char *key,
                                   s3_create_cb cb, void *arg);

/* UploadPart part_no (1..10000) = len bytes of path from off. The part's checksum is computed
 * on the threadpool first (a read of the range): a SHA-256, sent as the payload hash and as
 * x-amz-checksum-sha256; or a CRC-64/NVME, sent as x-amz-checksum-crc64nvme with an unsigned
 * payload (the CRC guards the bytes). On success etag and checksum_b64 (borrowed) and crc (the
 * CRC-64/NVME, 0 in SHA-256 mode) must be kept for Complete. */
typedef void (*s3_part_cb)(void *arg, const struct http_result *res, const char *etag,
                           const char *checksum_b64, uint64_t crc);
MUST_CHECK int s3_upload_part(struct s3_client *s, const char *bucket, const char *key,
                              const char *upload_id, unsigned part_no, const char *path,
                              uint64_t off, uint64_t len, s3_part_cb cb, void *arg);

struct s3_part {
    unsigned part_no;
    char etag[130];        /* as returned, quotes included */
    char checksum_b64[45]; /* as returned */
    uint64_t crc, len;     /* CRC-64/NVME mode: the part's CRC and size */
};
/* CompleteMultipartUpload with parts in ascending part_no. In CRC-64/NVME mode the full
 * object's CRC (combined from the parts') is sent as x-amz-checksum-crc64nvme, so S3 checks
 * the assembled object against it. A 200 whose body is an <Error> is a failure (res->err
 * HTTP_ERR_STATUS and its code), as S3 documents. */
MUST_CHECK int s3_complete_multipart(struct s3_client *s, const char *bucket, const char *key,
                                     const char *upload_id, const struct s3_part *parts,
                                     size_t n_parts, s3_done_cb cb, void *arg);
/* The full object's CRC-64/NVME from its parts' (pure: crc64nvme_combine in part order). */
uint64_t s3_parts_crc64nvme(const struct s3_part *parts, size_t n_parts);
/* AbortMultipartUpload; NoSuchUpload counts as success (already gone). */
MUST_CHECK int s3_abort_multipart(struct s3_client *s, const char *bucket, const char *key,
                                  const char *upload_id, s3_done_cb cb, void *arg);

/* GetObject into memory capped at max bytes (HTTP_ERR_TOO_BIG beyond). body is borrowed for the
 * callback; NULL/0 on failure. */
typedef void (*s3_get_cb)(void *arg, const struct http_result *res, const uint8_t *body,
                          size_t len);
MUST_CHECK int s3_get_object(struct s3_client *s, const char *bucket, const char *key,
                             size_t max, s3_get_cb cb, void *arg);

/* HeadObject: found when the key exists (200). A missing key is res->err 0 and found false:
 * 404, or 403, S3's answer for a missing key to a caller without s3:ListBucket (the task role
 * has none). Needs s3:GetObject on the key. */
typedef void (*s3_head_cb)(void *arg, const struct http_result *res, bool found);
MUST_CHECK int s3_head_object(struct s3_client *s, const char *bucket, const char *key,
                              s3_head_cb cb, void *arg);

/* Upload len bytes of path from off as key: one PutObject when len < threshold, else a
 * multipart upload in parts of part_size (>= 5 MiB, the last smaller; doubled while over 10,000
 * parts), up to 4 parts in flight, each streamed from the file; on any failure the upload is
 * aborted (best effort, once no part is in flight) before cb runs with the first failure.
 * sums are the whole object's (the single PUT's; multipart parts carry their own checksums). In
 * CRC-64/NVME mode a multipart upload whose parts' CRCs do not combine into
 * sums->crc64nvme_hex (the file is not the bytes received) is not completed: cb gets
 * HTTP_ERR_STATUS with error_code "BadDigest", as S3 would answer. s3_upload.c. */
MUST_CHECK int s3_upload_file(struct s3_client *s, const char *bucket, const char *key,
                              const char *path, uint64_t off, uint64_t len,
                              const struct s3_sums *sums, uint64_t threshold,
                              uint64_t part_size, s3_done_cb cb, void *arg);

/* Pure helper. Appends the path-encoded key ("a b/c" -> "a%20b/c") to out. */
void s3_key_path(struct wbuf *out, const char *key);

#endif
