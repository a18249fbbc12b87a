/* creds: the two fetchers of the chain: the ECS container endpoint and EC2 instance metadata
 * (IMDSv2: token, role name, role credentials). Each ends in creds_fetch_done. */
#include "creds_int.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CREDS_RESP_CAP 16384
#define CREDS_TOKEN_FILE_MAX 8192
#define IMDS_TOKEN_TTL "21600"

static int send_req(struct creds_chain *p, struct http_req *r, http_done_cb cb)
{
    http_req_set_max_attempts(r, 2);
    http_req_set_timeouts(r, 1000, 3000);
    http_req_set_response_cap(r, CREDS_RESP_CAP);
    http_req_set_sensitive(r);
    int rc = http_send(p->http, r, cb, p);
    if (rc == 0)
        p->inflight++;
    return rc;
}

static void creds_from_body(struct creds_chain *p, const struct http_resp *resp)
{
    struct aws_creds nc;
    int rc = creds_parse_json(resp->body, resp->body_len, &nc);
    creds_fetch_done(p, rc < 0 ? HTTP_ERR_CREDS : 0, rc < 0 ? NULL : &nc);
}

/* ECS */
static void on_ecs(void *arg, const struct http_resp *resp)
{
    struct creds_chain *p = arg;
    p->inflight--;
    if (resp->res.err < 0)
        creds_fetch_done(p, resp->res.err == HTTP_ERR_CANCELED ? HTTP_ERR_CANCELED : HTTP_ERR_CREDS,
                         NULL);
    else
        creds_from_body(p, resp);
    creds_maybe_free(p);
}

static char *read_token_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = malloc(CREDS_TOKEN_FILE_MAX + 1);
    size_t n = 0;
    while (buf && n < CREDS_TOKEN_FILE_MAX) {
        ssize_t k = read(fd, buf + n, CREDS_TOKEN_FILE_MAX - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    if (!buf)
        return NULL;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    if (n == 0 || memchr(buf, '\n', n) || memchr(buf, '\r', n) || strlen(buf) != n) {
        OPENSSL_cleanse(buf, CREDS_TOKEN_FILE_MAX + 1);
        free(buf);
        return NULL;
    }
    return buf;
}

int creds_fetch_ecs(struct creds_chain *p)
{
    struct http_req *r;
    TRY(http_req_new("GET", p->ecs_url, &r));
    int rc = 0;
    if (p->ecs_token_file) {
        char *tok = read_token_file(p->ecs_token_file);
        if (!tok) {
            http_req_free(r);
            return ERR_IO;
        }
        rc = http_req_add_header(r, "Authorization", tok);
        OPENSSL_cleanse(tok, strlen(tok));
        free(tok);
    } else if (p->ecs_token) {
        rc = http_req_add_header(r, "Authorization", p->ecs_token);
    }
    if (rc < 0) {
        http_req_free(r);
        return rc;
    }
    return send_req(p, r, on_ecs);
}

/* IMDSv2: token, role name, role credentials */
static int imds_get(struct creds_chain *p, const char *suffix, http_done_cb cb)
{
    char url[1024];
    int n = snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%s",
                     p->imds_base, suffix);
    if (n < 0 || (size_t)n >= sizeof(url))
        return ERR_LIMIT;
    struct http_req *r;
    TRY(http_req_new("GET", url, &r));
    int rc = http_req_add_header(r, "X-aws-ec2-metadata-token", p->imds_token);
    if (rc < 0) {
        http_req_free(r);
        return rc;
    }
    return send_req(p, r, cb);
}

static void imds_fail(struct creds_chain *p, const struct http_resp *resp)
{
    int err = resp && resp->res.err == HTTP_ERR_CANCELED ? HTTP_ERR_CANCELED : HTTP_ERR_CREDS;
    creds_fetch_done(p, err, NULL);
}

static void on_imds_creds(void *arg, const struct http_resp *resp)
{
    struct creds_chain *p = arg;
    p->inflight--;
    if (resp->res.err < 0)
        imds_fail(p, resp);
    else
        creds_from_body(p, resp);
    creds_maybe_free(p);
}

static bool role_name_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  strchr("+=,.@_-", c);
        if (!ok || c == '\0')
            return false;
    }
    return true;
}

static void on_imds_role(void *arg, const struct http_resp *resp)
{
    struct creds_chain *p = arg;
    p->inflight--;
    if (resp->res.err < 0 || p->closing) {
        imds_fail(p, resp);
        creds_maybe_free(p);
        return;
    }
    /* first line of the body is the role name */
    size_t n = 0;
    while (n < resp->body_len && resp->body[n] != '\n' && resp->body[n] != '\r')
        n++;
    if (n >= sizeof(p->imds_role) || !role_name_ok((const char *)resp->body, n)) {
        imds_fail(p, NULL);
        return;
    }
    memcpy(p->imds_role, resp->body, n);
    p->imds_role[n] = '\0';
    if (imds_get(p, p->imds_role, on_imds_creds) < 0)
        imds_fail(p, NULL);
}

static void on_imds_token(void *arg, const struct http_resp *resp)
{
    struct creds_chain *p = arg;
    p->inflight--;
    if (resp->res.err < 0 || p->closing || resp->body_len == 0 ||
        resp->body_len >= sizeof(p->imds_token) ||
        memchr(resp->body, '\0', resp->body_len) || memchr(resp->body, '\n', resp->body_len) ||
        memchr(resp->body, '\r', resp->body_len)) {
        imds_fail(p, resp->res.err < 0 ? resp : NULL);
        creds_maybe_free(p);
        return;
    }
    memcpy(p->imds_token, resp->body, resp->body_len);
    p->imds_token[resp->body_len] = '\0';
    if (imds_get(p, "", on_imds_role) < 0)
        imds_fail(p, NULL);
}

int creds_fetch_imds(struct creds_chain *p)
{
    char url[1024];
    int n = snprintf(url, sizeof(url), "%s/latest/api/token", p->imds_base);
    if (n < 0 || (size_t)n >= sizeof(url))
        return ERR_LIMIT;
    struct http_req *r;
    TRY(http_req_new("PUT", url, &r));
    int rc = http_req_add_header(r, "X-aws-ec2-metadata-token-ttl-seconds", IMDS_TOKEN_TTL);
    if (rc < 0) {
        http_req_free(r);
        return rc;
    }
    return send_req(p, r, on_imds_token);
}

