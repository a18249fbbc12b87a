/* A scripted HTTP/1.1 server for unit tests of HTTP clients (see http_script.h). Test code: it
 * trusts what the client under test sends only as far as a test needs. */
#define _GNU_SOURCE /* strcasestr */
#include "http_script.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sconn {
    uv_tcp_t tcp;
    struct hs_server *s;
    char *buf;
    size_t len, cap;
};

static void sconn_closed(uv_handle_t *h)
{
    struct sconn *c = h->data;
    free(c->buf);
    free(c);
}

static void on_write_done(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
    free(w);
}

static void respond(struct sconn *c, const struct hs_canned *k)
{
    if (k->status < 0) {
        uv_close((uv_handle_t *)&c->tcp, sconn_closed);
        return;
    }
    if (k->status == 0)
        return; /* hang */
    const char *body = k->body ? k->body : "";
    size_t idx = (size_t)(k - c->s->script);
    size_t bl = c->s->body_lens && c->s->body_lens[idx] ? c->s->body_lens[idx] : strlen(body);
    size_t cap = bl + 1024;
    char *out = malloc(cap);
    int n = snprintf(out, cap, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n", k->status, bl,
                     k->headers ? k->headers : "");
    memcpy(out + n, body, bl);
    uv_write_t *w = malloc(sizeof(*w));
    w->data = out;
    uv_buf_t b = uv_buf_init(out, (unsigned)(n + (int)bl));
    uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_write_done);
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(sz);
    b->len = sz;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    struct sconn *c = st->data;
    if (nread < 0) {
        free(b->base);
        if (!uv_is_closing((uv_handle_t *)st))
            uv_close((uv_handle_t *)st, sconn_closed);
        return;
    }
    if (c->len + (size_t)nread > c->cap) {
        c->cap = (c->len + (size_t)nread) * 2;
        c->buf = realloc(c->buf, c->cap + 1);
    }
    memcpy(c->buf + c->len, b->base, (size_t)nread);
    c->len += (size_t)nread;
    free(b->base);
    for (;;) {
        c->buf[c->len] = '\0';
        char *end = strstr(c->buf, "\r\n\r\n");
        if (!end)
            return;
        size_t head = (size_t)(end - c->buf) + 4;
        size_t clen = 0;
        const char *cl = strcasestr(c->buf, "\r\ncontent-length:");
        if (cl && cl < end)
            clen = strtoul(cl + 17, NULL, 10);
        if (c->len < head + clen)
            return;
        struct hs_server *s = c->s;
        if (s->n_seen < HS_MAX_SEEN) {
            snprintf(s->seen_head[s->n_seen], sizeof(s->seen_head[0]), "%.*s", (int)head, c->buf);
            s->seen_body[s->n_seen] = malloc(clen + 1);
            memcpy(s->seen_body[s->n_seen], c->buf + head, clen);
            s->seen_body[s->n_seen][clen] = '\0'; /* callers may read it as a string */
            s->seen_body_len[s->n_seen] = clen;
            s->n_seen++;
        }
        size_t i = s->served < s->n_script ? s->served : s->n_script - 1;
        s->served++;
        memmove(c->buf, c->buf + head + clen, c->len - head - clen);
        c->len -= head + clen;
        respond(c, &s->script[i]);
        if (s->script[i].status < 0)
            return;
    }
}

static void on_conn(uv_stream_t *l, int status)
{
    if (status != 0)
        abort();
    struct hs_server *s = l->data;
    struct sconn *c = calloc(1, sizeof(*c));
    c->s = s;
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0)
        abort();
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

void hs_start(uv_loop_t *loop, struct hs_server *s, const struct hs_canned *script, size_t n)
{
    memset(s, 0, sizeof(*s));
    s->script = script;
    s->n_script = n;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    if (uv_tcp_bind(&s->listener, (const struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)&s->listener, 16, on_conn) != 0)
        abort();
    struct sockaddr_in b;
    int bl = sizeof(b);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&b, &bl);
    s->port = ntohs(b.sin_port);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    struct hs_server *s = arg;
    if (uv_is_closing(h))
        return;
    if (h == (uv_handle_t *)&s->listener || h->type != UV_TCP)
        uv_close(h, NULL);
    else
        uv_close(h, sconn_closed);
}

void hs_free(struct hs_server *s)
{
    for (size_t i = 0; i < s->n_seen; i++)
        free(s->seen_body[i]);
}


void hs_close_all(uv_loop_t *loop, struct hs_server *s)
{
    uv_walk(loop, close_walk, s);
}

void hs_start_bin(uv_loop_t *loop, struct hs_server *s, const struct hs_canned *script,
                  const size_t *lens, size_t n)
{
    hs_start(loop, s, script, n);
    s->body_lens = lens;
}
