/* http: building a request (method, URL, query, headers, body segments, signing and limits). */
#include "http.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/hex.h"
#include "http_int.h"

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

int http_req_new(const char *method, const char *url, struct http_req **out)
{
    *out = NULL;
    const char *sep = strstr(url, "://");
    if (!sep || sep == url || strpbrk(url, "?# \r\n"))
        return ERR_MALFORMED;
    const char *host = sep + 3;
    const char *slash = strchr(host, '/');
    size_t hlen = slash ? (size_t)(slash - host) : strlen(host);
    if (hlen == 0 || memchr(host, '@', hlen))
        return ERR_MALFORMED;
    struct http_req *r = calloc(1, sizeof(*r));
    if (!r)
        return ERR_NOMEM;
    r->method = strdup(method);
    r->url = strdup(url);
    r->host = dupn(host, hlen);
    r->path = strdup(slash ? slash : "/");
    r->query = strdup("");
    r->payload = HTTP_PAYLOAD_SIGNED;
    for (size_t i = 0; i < HTTP_MAX_SEGS; i++)
        r->segs[i].fd = -1;
    wbuf_init(&r->resp, 0);
    if (!r->method || !r->url || !r->host || !r->path || !r->query) {
        http_req_free(r);
        return ERR_NOMEM;
    }
    /* strip a default port from the Host we sign: curl sends none for it */
    size_t ul = strlen(r->host);
    if ((strncmp(url, "https://", 8) == 0 && ul > 4 && strcmp(r->host + ul - 4, ":443") == 0) ||
        (strncmp(url, "http://", 7) == 0 && ul > 3 && strcmp(r->host + ul - 3, ":80") == 0))
        *strrchr(r->host, ':') = '\0';
    *out = r;
    return 0;
}

void http_req_free(struct http_req *r)
{
    if (!r)
        return;
    free(r->method);
    free(r->url);
    free(r->host);
    free(r->path);
    free(r->query);
    for (size_t i = 0; i < r->nh; i++) {
        free(r->hname[i]);
        free(r->hval[i]);
    }
    for (size_t i = 0; i < r->nseg; i++) {
        free(r->segs[i].mem);
        free(r->segs[i].path);
        if (r->segs[i].fd >= 0)
            close(r->segs[i].fd);
    }
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->slist);
    if (r->sensitive && r->resp.p)
        OPENSSL_cleanse(r->resp.p, r->resp.cap);
    wbuf_cleanup(&r->resp);
    OPENSSL_cleanse(r->errbuf, sizeof(r->errbuf));
    free(r);
}

int http_req_set_query(struct http_req *r, const char *raw)
{
    struct wbuf w;
    wbuf_init(&w, 16384);
    int rc = sigv4_canonical_query(raw, &w);
    wbuf_u8(&w, 0);
    if (rc == 0 && w.err)
        rc = w.err;
    if (rc < 0) {
        wbuf_cleanup(&w);
        return rc;
    }
    free(r->query);
    r->query = (char *)w.p;
    return 0;
}

int http_req_add_header(struct http_req *r, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    if (nl == 0 || strpbrk(name, ":\r\n \t") || strpbrk(value, "\r\n"))
        return ERR_MALFORMED;
    if (r->nh == HTTP_MAX_HEADERS || r->hbytes + nl + vl > HTTP_MAX_HEADER_BYTES)
        return ERR_LIMIT;
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return ERR_NOMEM;
    }
    r->hname[r->nh] = n;
    r->hval[r->nh] = v;
    r->nh++;
    r->hbytes += nl + vl;
    return 0;
}

int http_req_body_mem(struct http_req *r, const void *p, size_t n)
{
    if (r->nseg == HTTP_MAX_SEGS)
        return ERR_LIMIT;
    struct seg *s = &r->segs[r->nseg];
    s->mem = malloc(n ? n : 1);
    if (!s->mem)
        return ERR_NOMEM;
    if (n)
        memcpy(s->mem, p, n);
    s->len = n;
    s->fd = -1;
    r->nseg++;
    r->body_len += n;
    return 0;
}

int http_req_body_file(struct http_req *r, const char *path, uint64_t off, uint64_t len)
{
    if (r->nseg == HTTP_MAX_SEGS)
        return ERR_LIMIT;
    struct seg *s = &r->segs[r->nseg];
    s->path = strdup(path);
    if (!s->path)
        return ERR_NOMEM;
    s->off = off;
    s->len = len;
    s->fd = -1;
    r->nseg++;
    r->body_len += len;
    return 0;
}

void http_req_sign(struct http_req *r, struct creds_provider *creds, const char *region,
                   const char *service, bool s3, enum http_payload payload)
{
    r->creds = creds;
    http_copy(r->region, sizeof(r->region), region, strlen(region));
    http_copy(r->service, sizeof(r->service), service, strlen(service));
    r->s3 = s3;
    if (!(payload == HTTP_PAYLOAD_KNOWN && !r->hash_ready))
        r->payload = payload;
}

int http_req_payload_sha256(struct http_req *r, const char *hex)
{
    uint8_t bin[32];
    TRY(sigv4_hex_to_bin32(hex, bin));
    hex_lower(bin, 32, r->payload_hex);
    r->hash_ready = true;
    r->payload = HTTP_PAYLOAD_KNOWN;
    return 0;
}

void http_req_set_response_cap(struct http_req *r, size_t cap)
{
    r->resp_cap = cap;
}

void http_req_set_max_attempts(struct http_req *r, unsigned n)
{
    r->max_attempts = n;
}

void http_req_set_timeouts(struct http_req *r, long connect_ms, long total_ms)
{
    r->connect_ms = connect_ms;
    r->total_ms = total_ms;
}

void http_req_set_sensitive(struct http_req *r)
{
    r->sensitive = true;
}

void http_req_accept_status(struct http_req *r, long status)
{
    if (r->naccept < 4)
        r->accept[r->naccept++] = status;
}

void http_req_set_user(struct http_req *r, void *user)
{
    r->user = user;
}

void *http_req_user(const struct http_req *r)
{
    return r->user;
}

const char *http_resp_header(const struct http_resp *resp, const char *name)
{
    const struct http_req *r = resp->req;
    for (size_t i = 0; i < r->nrh; i++) {
        const char *n = r->rh + r->rhoff[i];
        if (strcasecmp(n, name) == 0)
            return n + strlen(n) + 1;
    }
    return NULL;
}

const char *http_req_resp_header(const struct http_req *r, const char *name)
{
    struct http_resp tmp = {.req = r};
    return http_resp_header(&tmp, name);
}

void http_req_set_deadline(struct http_req *r, uint64_t ms)
{
    r->deadline_ms = ms;
}

void http_req_set_stream(struct http_req *r, const struct http_stream *s)
{
    r->stream = *s;
    r->has_stream = true;
}
