/* stream: the one write path onto a libuv stream (STYLE.md §7), for the core's associations and
 * the edge's two legs. Bytes go out in clear or, once a tls_conn is attached, through it (its
 * ciphertext comes back through stream_send_owned). What cannot be written at once is queued in
 * libuv: copied, or taken when the caller hands its buffer over. The owner watches the queue for
 * backpressure (high and low marks), and hears of a failed queued write once, by callback.
 * The struct lives by value in its owner, next to the handle it writes on. */
#ifndef GW_STREAM_H
#define GW_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "net/tls_conn.h"

struct stream;

/* A queued write failed with status (a UV_E* code). Called at most once per stream, and never
 * for a failure that a stream_send* call returned, nor once the handle is closing. */
typedef void (*stream_fail_cb)(struct stream *s, int status);
/* The queue has come down to the low mark after stream_is_full said it was full: resume the
 * source. Called once per stream_is_full that returned true. */
typedef void (*stream_drain_cb)(struct stream *s);

struct stream {
    uv_stream_t *h;       /* the owner's handle (borrowed) */
    struct tls_conn *tls; /* NULL: clear */
    stream_fail_cb on_fail;
    stream_drain_cb on_drain;
    void *data;           /* the owner's */
    size_t high, low;     /* marks on the queued bytes; high 0: never full */
    int err;              /* sticky: the first failure; later sends return it */
    bool drain_armed;
};

/* Set up s to write on h (initialised by the owner). on_fail and on_drain may be NULL. */
void stream_init(struct stream *s, uv_stream_t *h, stream_fail_cb on_fail,
                 stream_drain_cb on_drain, void *data);
/* Backpressure marks: full above high, drained at or below low (low < high). */
void stream_set_marks(struct stream *s, size_t high, size_t low);
/* From now on stream_send encrypts through t (borrowed: the owner frees it, after the handle
 * has closed or after stream_set_tls(s, NULL)). The tls_conn's out callback must hand its
 * ciphertext to stream_send_owned on this stream. */
void stream_set_tls(struct stream *s, struct tls_conn *t);

/* Send p[0..n) (borrowed: copied when it cannot go out at once), through the tls_conn when one
 * is attached. 0, or < 0: ERR_TLS, ERR_NOMEM, ERR_LIMIT (n > UINT_MAX) or a UV_E* code; after a
 * failure every later send returns that first failure without writing (a stream with a hole
 * in it must not carry more bytes). n == 0 sends nothing. */
MUST_CHECK int stream_send(struct stream *s, const uint8_t *p, size_t n);
/* Send in clear even when a tls_conn is attached (bytes before TLS, e.g. a PROXY v2 header).
 * Same returns as stream_send. */
MUST_CHECK int stream_send_clear(struct stream *s, const uint8_t *p, size_t n);
/* Send buf[0..n) in clear and take buf (malloc'd), even on failure: the tls_conn out callback
 * (tls_out_cb) of a TLS stream. Same returns as stream_send. */
MUST_CHECK int stream_send_owned(struct stream *s, uint8_t *buf, size_t n);

/* Bytes queued in libuv, not yet written to the socket. */
size_t stream_queued(const struct stream *s);
/* More than the high mark is queued: the owner should stop reading its source. When true,
 * on_drain will be called once the queue is down to the low mark. */
bool stream_is_full(struct stream *s);
/* 0, or the first failure of a send or a queued write. */
int stream_error(const struct stream *s);

#endif
