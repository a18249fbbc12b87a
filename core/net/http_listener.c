#include "net/http_listener.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "net/addr.h"

#define HTTP_HEAD_MAX 8192
#define HTTP_BODY_MAX (4u * 1024u * 1024u)
#define HTTP_TIMEOUT_MS 5000
#define HTTP_MAX_ROUTES 16
#define HTTP_MAX_CONNS 64

struct route {
    char path[64];
    http_handler_cb cb;
    void *arg;
};

struct http_conn;

struct http_listener {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    bool tcp_open, closing;
    struct route routes[HTTP_MAX_ROUTES];
    size_t n_routes;
    struct http_conn *conns;
    size_t n_conns;
    http_closed_cb closed_cb;
    void *closed_arg;
};

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    int live_handles;
    bool closing, responded;
    struct http_listener *h;
    struct http_conn *next, **pprev;
    struct wbuf out;
    size_t len;
    char buf[HTTP_HEAD_MAX];
};

static void maybe_free_listener(struct http_listener *h)
{
    if (h->closing && !h->tcp_open && h->n_conns == 0) {
        http_closed_cb cb = h->closed_cb;
        void *arg = h->closed_arg;
        free(h);
        if (cb)
            cb(arg);
    }
}

static void conn_on_close(uv_handle_t *hd)
{
    struct http_conn *c = hd->data;
    if (--c->live_handles > 0)
        return;
    struct http_listener *h = c->h;
    *c->pprev = c->next;
    if (c->next)
        c->next->pprev = c->pprev;
    h->n_conns--;
    wbuf_cleanup(&c->out);
    free(c);
    maybe_free_listener(h);
}

static void conn_close(struct http_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, conn_on_close);
    uv_close((uv_handle_t *)&c->timer, conn_on_close);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    conn_close(w->data);
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

static void respond(struct http_conn *c, int status, const char *ctype, const struct wbuf *body,
                    bool head_only)
{
    c->responded = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    size_t blen = body && !body->err ? body->len : 0;
    wbuf_init(&c->out, HTTP_BODY_MAX + 1024);
    wbuf_printf(&c->out,
                "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                status, reason(status), ctype ? ctype : "text/plain", blen);
    if (!head_only && blen)
        wbuf_put(&c->out, body->p, blen);
    if (c->out.err) {
        conn_close(c);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)c->out.p, (unsigned)c->out.len);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0)
        conn_close(c);
}

static void respond_text(struct http_conn *c, int status, const char *text)
{
    struct wbuf b;
    wbuf_init(&b, 1024);
    wbuf_str(&b, text);
    respond(c, status, "text/plain", &b, false);
    wbuf_cleanup(&b);
}

/* The request head is complete in c->buf[0..end): parse "METHOD SP target SP HTTP/1.x". */
static void handle_request(struct http_conn *c, size_t end)
{
    const char *p = c->buf, *stop = c->buf + end;
    const char *sp1 = memchr(p, ' ', (size_t)(stop - p));
    if (!sp1) {
        respond_text(c, 400, "bad request\n");
        return;
    }
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(stop - target));
    if (!sp2 || (size_t)(stop - sp2) < 9 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0) {
        respond_text(c, 400, "bad request\n");
        return;
    }
    size_t mlen = (size_t)(sp1 - p);
    bool head = mlen == 4 && memcmp(p, "HEAD", 4) == 0;
    bool get = mlen == 3 && memcmp(p, "GET", 3) == 0;
    if (!get && !head) {
        respond_text(c, 405, "only GET and HEAD\n");
        return;
    }
    size_t tlen = (size_t)(sp2 - target);
    const char *q = memchr(target, '?', tlen);
    if (q)
        tlen = (size_t)(q - target);
    struct http_listener *h = c->h;
    for (size_t i = 0; i < h->n_routes; i++) {
        const struct route *r = &h->routes[i];
        if (strlen(r->path) == tlen && memcmp(r->path, target, tlen) == 0) {
            struct wbuf body;
            wbuf_init(&body, HTTP_BODY_MAX);
            int status = 200;
            const char *ctype = "text/plain";
            r->cb(r->arg, &body, &status, &ctype);
            if (body.err)
                respond_text(c, 500, "response too large\n");
            else
                respond(c, status, ctype, &body, head);
            wbuf_cleanup(&body);
            return;
        }
    }
    respond_text(c, 404, "not found\n");
}

static void on_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *buf)
{
    struct http_conn *c = hd->data;
    (void)hint;
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *c = s->data;
    (void)buf;
    if (nread == 0 || c->closing || c->responded)
        return;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    size_t before = c->len;
    c->len += (size_t)nread;
    /* look for the blank line that ends the head, starting a little before the new bytes */
    size_t from = before > 3 ? before - 3 : 0;
    for (size_t i = from; i + 1 < c->len; i++) {
        if (c->buf[i] == '\n' && (c->buf[i + 1] == '\n' ||
                                  (i + 2 < c->len && c->buf[i + 1] == '\r' && c->buf[i + 2] == '\n'))) {
            handle_request(c, i);
            return;
        }
    }
    if (c->len == sizeof c->buf)
        respond_text(c, 431, "request head too large\n");
}

static void on_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_connection(uv_stream_t *srv, int status)
{
    struct http_listener *h = srv->data;
    if (status < 0 || h->closing)
        return;
    struct http_conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->h = h;
    if (uv_tcp_init(h->loop, &c->tcp) < 0) {
        free(c);
        return;
    }
    c->tcp.data = c;
    c->live_handles = 1;
    c->next = h->conns;
    if (c->next)
        c->next->pprev = &c->next;
    c->pprev = &h->conns;
    h->conns = c;
    h->n_conns++;
    uv_timer_init(h->loop, &c->timer);
    c->timer.data = c;
    c->live_handles = 2;
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) < 0 || h->n_conns > HTTP_MAX_CONNS) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_timer_start(&c->timer, on_timeout, HTTP_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

int http_listener_start(uv_loop_t *loop, const char *addr, struct http_listener **out)
{
    struct sockaddr_storage ss;
    TRY(addr_parse(addr, &ss));
    struct http_listener *h = calloc(1, sizeof *h);
    if (!h)
        return ERR_NOMEM;
    h->loop = loop;
    int rc = uv_tcp_init(loop, &h->tcp);
    if (rc < 0) {
        free(h);
        return rc;
    }
    h->tcp.data = h;
    h->tcp_open = true;
    rc = uv_tcp_bind(&h->tcp, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&h->tcp, 64, on_connection);
    if (rc < 0) {
        http_listener_close(h, NULL, NULL);
        return rc;
    }
    *out = h;
    return 0;
}

int http_listener_route(struct http_listener *h, const char *path, http_handler_cb cb, void *arg)
{
    if (h->n_routes >= HTTP_MAX_ROUTES)
        return ERR_LIMIT;
    struct route *r = &h->routes[h->n_routes];
    int n = snprintf(r->path, sizeof r->path, "%s", path);
    if (n < 0 || (size_t)n >= sizeof r->path)
        return ERR_LIMIT;
    r->cb = cb;
    r->arg = arg;
    h->n_routes++;
    return 0;
}

static void listener_on_close(uv_handle_t *hd)
{
    struct http_listener *h = hd->data;
    h->tcp_open = false;
    maybe_free_listener(h);
}

void http_listener_close(struct http_listener *h, http_closed_cb cb, void *arg)
{
    if (!h || h->closing)
        return;
    h->closing = true;
    h->closed_cb = cb;
    h->closed_arg = arg;
    for (struct http_conn *c = h->conns; c; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&h->tcp, listener_on_close);
}
