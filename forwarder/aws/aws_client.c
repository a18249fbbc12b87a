#include "aws_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AWS_ENDPOINT_MAX 4096

int aws_client_init(struct aws_client *c, struct http_client *http,
                    struct creds_provider *creds, const char *region, const char *service,
                    bool s3)
{
    if (!region || !*region || strlen(region) >= sizeof(c->region))
        return ERR_CONFIG;
    memset(c, 0, sizeof(*c));
    c->http = http;
    c->creds = creds;
    memcpy(c->region, region, strlen(region) + 1);
    c->service = service;
    c->s3 = s3;
    return 0;
}

bool aws_endpoint_valid(const char *url)
{
    return !url || !*url || strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0;
}

char *aws_endpoint_dup(const char *override, const char *host_prefix, const char *region,
                       const char *suffix)
{
    struct wbuf w;
    wbuf_init(&w, AWS_ENDPOINT_MAX);
    if (override && *override) {
        size_t l = strlen(override);
        while (l > 8 && override[l - 1] == '/')
            l--;
        wbuf_put(&w, override, l);
    } else {
        wbuf_printf(&w, "https://%s.%s.amazonaws.com", host_prefix, region);
    }
    wbuf_str(&w, suffix);
    wbuf_u8(&w, 0);
    if (w.err) {
        wbuf_cleanup(&w);
        return NULL;
    }
    return (char *)w.p; /* the wbuf's buffer becomes the string: free() it */
}

int aws_client_req(const char *method, struct wbuf *url, struct http_req **out)
{
    *out = NULL;
    wbuf_u8(url, 0);
    int rc = url->err;
    if (rc == 0)
        rc = http_req_new(method, (const char *)url->p, out);
    wbuf_cleanup(url);
    return rc;
}

void aws_client_sign(const struct aws_client *c, struct http_req *r, enum http_payload payload)
{
    http_req_sign(r, c->creds, c->region, c->service, c->s3, payload);
}

int aws_client_send(const struct aws_client *c, struct http_req *r, int rc, void *op,
                    size_t cap, enum http_payload payload, http_done_cb done)
{
    if (rc == 0 && !op)
        rc = ERR_NOMEM;
    if (rc < 0) {
        http_req_free(r);
        free(op);
        return rc;
    }
    http_req_set_response_cap(r, cap);
    aws_client_sign(c, r, payload);
    rc = http_send(c->http, r, done, op);
    if (rc < 0)
        free(op);
    return rc;
}
