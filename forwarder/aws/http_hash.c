/* http: SHA-256 on the libuv threadpool: a request's body (its payload hash for SigV4) and any
 * byte range of a file (http_hash_file). Files are read in 1 MiB chunks with pread. */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/crc64nvme.h"
#include "common/hex.h"
#include "http_int.h"

/* Blocking: feed len bytes of path from off into md, or into crc when md is NULL (threadpool
 * only). 0 or < 0. */
static int digest_file(EVP_MD_CTX *md, struct crc64nvme *crc, uint8_t *buf, const char *path,
                       uint64_t off, uint64_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    uint64_t done = 0;
    while (done < len) {
        size_t want = len - done > HTTP_HASH_CHUNK ? HTTP_HASH_CHUNK : (size_t)(len - done);
        ssize_t k = pread(fd, buf, want, (off_t)(off + done));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            rc = k < 0 ? -errno : ERR_TRUNCATED;
            break;
        }
        if (!md)
            crc64nvme_update(crc, buf, (size_t)k);
        else if (EVP_DigestUpdate(md, buf, (size_t)k) != 1) {
            rc = ERR_UNSUPPORTED;
            break;
        }
        done += (uint64_t)k;
    }
    close(fd);
    return rc;
}

/* Threadpool: SHA-256 of the whole body (memory and file segments). */
static void hash_work(uv_work_t *w)
{
    struct http_req *r = w->data;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t *buf = malloc(HTTP_HASH_CHUNK);
    r->work_rc = 0;
    if (!md || !buf || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        r->work_rc = ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < r->nseg && r->work_rc == 0; i++) {
        struct seg *s = &r->segs[i];
        if (s->mem) {
            if (EVP_DigestUpdate(md, s->mem, s->len) != 1)
                r->work_rc = ERR_UNSUPPORTED;
        } else {
            r->work_rc = digest_file(md, NULL, buf, s->path, s->off, s->len);
        }
    }
    if (r->work_rc == 0) {
        uint8_t d[32];
        unsigned int dl = 0;
        if (EVP_DigestFinal_ex(md, d, &dl) != 1 || dl != 32)
            r->work_rc = ERR_UNSUPPORTED;
        else
            hex_lower(d, 32, r->work_hex);
    }
out:
    EVP_MD_CTX_free(md);
    free(buf);
}

static void hash_done(uv_work_t *w, int status)
{
    struct http_req *r = w->data;
    if (status < 0 || r->cancel || r->c->closing) {
        http_finish(r, HTTP_ERR_CANCELED);
        return;
    }
    if (r->work_rc < 0) {
        http_copy(r->res.message, sizeof(r->res.message), "request body unreadable", 23);
        http_finish(r, r->work_rc);
        return;
    }
    memcpy(r->payload_hex, r->work_hex, 65);
    r->hash_ready = true;
    http_start_attempt(r);
}

int http_hash_body(struct http_req *r)
{
    bool files = false;
    for (size_t i = 0; i < r->nseg; i++)
        files |= r->segs[i].mem == NULL;
    if (files) {
        r->state = RQ_HASHING;
        r->work.data = r;
        TRY(uv_queue_work(r->c->loop, &r->work, hash_work, hash_done));
        return 1;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t d[32];
    unsigned int dl = 0;
    bool okh = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; okh && i < r->nseg; i++)
        okh = EVP_DigestUpdate(md, r->segs[i].mem, r->segs[i].len) == 1;
    okh = okh && EVP_DigestFinal_ex(md, d, &dl) == 1 && dl == 32;
    EVP_MD_CTX_free(md);
    if (!okh)
        return ERR_UNSUPPORTED;
    hex_lower(d, 32, r->payload_hex);
    r->hash_ready = true;
    return 0;
}

/* ---- standalone file hashing on the threadpool ------------------------------------------ */

struct hash_job {
    uv_work_t work;
    struct http_client *c;
    char *path;
    uint64_t off, len;
    int rc;
    uint8_t hash[32];
    bool crc;              /* CRC-64/NVME instead of SHA-256 */
    struct crc64nvme crc64;
    http_hash_cb cb;
    http_crc_cb crc_cb;
    void *arg;
};

static void hash_job_work(uv_work_t *w)
{
    struct hash_job *j = w->data;
    if (j->crc) {
        uint8_t *cbuf = malloc(HTTP_HASH_CHUNK);
        crc64nvme_init(&j->crc64);
        j->rc = cbuf ? digest_file(NULL, &j->crc64, cbuf, j->path, j->off, j->len) : ERR_NOMEM;
        free(cbuf);
        return;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t *buf = malloc(HTTP_HASH_CHUNK);
    unsigned int dl = 0;
    if (!md || !buf || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        j->rc = ERR_NOMEM;
    else
        j->rc = digest_file(md, NULL, buf, j->path, j->off, j->len);
    if (j->rc == 0 && (EVP_DigestFinal_ex(md, j->hash, &dl) != 1 || dl != 32))
        j->rc = ERR_UNSUPPORTED;
    EVP_MD_CTX_free(md);
    free(buf);
}

static void hash_job_done(uv_work_t *w, int status)
{
    struct hash_job *j = w->data;
    struct http_client *c = j->c;
    int rc = status < 0 || c->closing ? HTTP_ERR_CANCELED : j->rc;
    if (j->crc)
        j->crc_cb(j->arg, rc, rc == 0 ? crc64nvme_final(&j->crc64) : 0);
    else
        j->cb(j->arg, rc, rc == 0 ? j->hash : NULL);
    free(j->path);
    free(j);
    c->pending--;
    http_client_maybe_closed(c);
}

static int queue_job(struct http_client *c, const char *path, uint64_t off, uint64_t len,
                     http_hash_cb cb, http_crc_cb crc_cb, void *arg)
{
    if (c->closing)
        return ERR_WRONG_STATE;
    struct hash_job *j = calloc(1, sizeof(*j));
    if (!j)
        return ERR_NOMEM;
    j->path = strdup(path);
    if (!j->path) {
        free(j);
        return ERR_NOMEM;
    }
    j->c = c;
    j->off = off;
    j->len = len;
    j->cb = cb;
    j->crc_cb = crc_cb;
    j->crc = crc_cb != NULL;
    j->arg = arg;
    j->work.data = j;
    int rc = uv_queue_work(c->loop, &j->work, hash_job_work, hash_job_done);
    if (rc < 0) {
        free(j->path);
        free(j);
        return rc;
    }
    c->pending++;
    return 0;
}

int http_hash_file(struct http_client *c, const char *path, uint64_t off, uint64_t len,
                   http_hash_cb cb, void *arg)
{
    return queue_job(c, path, off, len, cb, NULL, arg);
}

int http_crc64nvme_file(struct http_client *c, const char *path, uint64_t off, uint64_t len,
                        http_crc_cb cb, void *arg)
{
    return queue_job(c, path, off, len, NULL, cb, arg);
}
