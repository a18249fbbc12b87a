#include "net/stream.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

struct stream_req {
    uv_write_t req;  /* req.data: the stream */
    uint8_t *owned;  /* the caller's buffer, freed after the write; NULL: the copy below */
    uint8_t copy[];
};

void stream_init(struct stream *s, uv_stream_t *h, stream_fail_cb on_fail,
                 stream_drain_cb on_drain, void *data)
{
    memset(s, 0, sizeof *s);
    s->h = h;
    s->on_fail = on_fail;
    s->on_drain = on_drain;
    s->data = data;
}

void stream_set_marks(struct stream *s, size_t high, size_t low)
{
    s->high = high;
    s->low = low;
}

void stream_set_tls(struct stream *s, struct tls_conn *t)
{
    s->tls = t;
}

size_t stream_queued(const struct stream *s)
{
    return uv_stream_get_write_queue_size(s->h);
}

bool stream_is_full(struct stream *s)
{
    if (s->high == 0 || stream_queued(s) <= s->high)
        return false;
    s->drain_armed = true;
    return true;
}

int stream_error(const struct stream *s)
{
    return s->err;
}

static int fail(struct stream *s, int rc)
{
    if (s->err == 0)
        s->err = rc;
    return rc;
}

static void on_written(uv_write_t *req, int status)
{
    struct stream_req *r = (struct stream_req *)req;
    struct stream *s = req->data;
    free(r->owned);
    free(r);
    if (uv_is_closing((uv_handle_t *)s->h))
        return; /* the owner is closing: cancelled writes are no news to it */
    if (status < 0) {
        bool first = s->err == 0;
        fail(s, status);
        if (first && s->on_fail)
            s->on_fail(s, status);
        return;
    }
    if (s->drain_armed && stream_queued(s) <= s->low) {
        s->drain_armed = false;
        if (s->on_drain)
            s->on_drain(s);
    }
}

/* Write what the socket takes now; queue the rest, copied (owned == NULL) or taken. */
static int write_out(struct stream *s, const uint8_t *p, size_t n, uint8_t *owned)
{
    if (s->err || n > UINT_MAX) {
        free(owned);
        return s->err ? s->err : fail(s, ERR_LIMIT);
    }
    size_t off = 0;
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)p, (unsigned)n); /* uv_buf_t is not const */
    int w = uv_try_write(s->h, &b, 1);
    if (w > 0) {
        off = (size_t)w;
    } else if (w < 0 && w != UV_EAGAIN && w != UV_ENOSYS) {
        free(owned);
        return fail(s, w);
    }
    if (off == n) {
        free(owned);
        return 0;
    }
    size_t rest = n - off;
    struct stream_req *r = malloc(sizeof *r + (owned ? 0 : rest));
    if (!r) {
        free(owned);
        return fail(s, ERR_NOMEM);
    }
    r->owned = owned;
    const uint8_t *from = p + off;
    if (!owned) {
        memcpy(r->copy, from, rest);
        from = r->copy;
    }
    r->req.data = s;
    b = uv_buf_init((char *)(uintptr_t)from, (unsigned)rest);
    int rc = uv_write(&r->req, s->h, &b, 1, on_written);
    if (rc < 0) {
        free(r->owned);
        free(r);
        return fail(s, rc);
    }
    return 0;
}

int stream_send_clear(struct stream *s, const uint8_t *p, size_t n)
{
    return n == 0 ? s->err : write_out(s, p, n, NULL);
}

int stream_send_owned(struct stream *s, uint8_t *buf, size_t n)
{
    if (n == 0) {
        free(buf);
        return s->err;
    }
    return write_out(s, buf, n, buf);
}

int stream_send(struct stream *s, const uint8_t *p, size_t n)
{
    if (!s->tls)
        return stream_send_clear(s, p, n);
    if (s->err)
        return s->err;
    int rc = tls_conn_write(s->tls, p, n); /* ciphertext: tls out -> stream_send_owned */
    return rc < 0 ? fail(s, rc) : 0;
}
