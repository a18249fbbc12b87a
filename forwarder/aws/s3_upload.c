/* s3: a whole file (or a byte range of one) as one object: a single PutObject below the
 * threshold, else a multipart upload with a few parts in flight, aborted on failure. Built on
 * s3.c's calls only. */
#include "s3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    bool crc_known;   /* CRC-64/NVME mode: the object's CRC as received */
    uint64_t crc;
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
                          const char *sum, uint64_t crc)
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
    p->crc = crc;
    p->len = u->len - (uint64_t)pc->idx * u->part_size < u->part_size
                 ? u->len - (uint64_t)pc->idx * u->part_size
                 : u->part_size;
    u->done++;
    upl_pump(u);
}

static void upl_pump(struct upl *u)
{
    if (u->done == u->n_parts && u->crc_known &&
        s3_parts_crc64nvme(u->parts, u->n_parts) != u->crc) {
        /* the parts read from the file are not the bytes received: never completed */
        struct http_result res = {.err = HTTP_ERR_STATUS, .status = 400};
        snprintf(res.error_code, sizeof res.error_code, "BadDigest");
        snprintf(res.message, sizeof res.message,
                 "the parts' CRC-64/NVME differs from the object's");
        upl_fail(u, &res);
        return;
    }
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
                   uint64_t off, uint64_t len, const struct s3_sums *sums, uint64_t threshold,
                   uint64_t part_size, s3_done_cb cb, void *arg)
{
    if (len < threshold || len == 0)
        return s3_put_object_file(s, bucket, key, path, off, len, sums, cb, arg);
    uint64_t crc = 0;
    bool crc_known = s3_client_checksum(s) == S3_CHECKSUM_CRC64NVME && sums->crc64nvme_hex &&
                     sums->crc64nvme_hex[0];
    if (crc_known)
        TRY(s3_crc64nvme_from_hex(sums->crc64nvme_hex, &crc));
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
    u->crc_known = crc_known;
    u->crc = crc;
    if (!u->bucket || !u->key || !u->path || !u->parts || !u->ctx) {
        upl_free(u);
        return ERR_NOMEM;
    }
    int rc = s3_create_multipart(s, bucket, key, upl_created, u);
    if (rc < 0)
        upl_free(u);
    return rc;
}
