/* http_script: a scripted HTTP/1.1 server on a libuv loop (127.0.0.1, kernel-chosen port) for
 * unit tests of HTTP clients running on the same loop. Each request (head + Content-Length body)
 * is recorded and answered with the next canned response; the last one repeats. */
#ifndef GW_TEST_HTTP_SCRIPT_H
#define GW_TEST_HTTP_SCRIPT_H

#include <stddef.h>
#include <uv.h>

struct hs_canned {
    int status;          /* 0 = never answer (hang), -1 = close the connection at once */
    const char *headers; /* extra header lines, each ending in \r\n; may be NULL */
    const char *body;    /* may be NULL */
};

#define HS_MAX_SEEN 32
struct hs_server {
    uv_tcp_t listener;
    int port;
    const struct hs_canned *script;
    const size_t *body_lens; /* hs_start_bin: bytes of each body, 0 = strlen; else NULL */
    size_t n_script;
    size_t served;
    char seen_head[HS_MAX_SEEN][4096];
    char *seen_body[HS_MAX_SEEN]; /* each NUL-terminated after seen_body_len bytes */
    size_t seen_body_len[HS_MAX_SEEN];
    size_t n_seen;
};

/* Listen on loop; aborts the process on failure (tests only). */
void hs_start(uv_loop_t *loop, struct hs_server *s, const struct hs_canned *script, size_t n);
/* As hs_start, with binary bodies: lens[i] bytes of script[i].body (0: strlen), lens borrowed
 * for the server's life. */
void hs_start_bin(uv_loop_t *loop, struct hs_server *s, const struct hs_canned *script,
                  const size_t *lens, size_t n);
/* Close every handle still open on loop (the server's and any other), for teardown. */
void hs_close_all(uv_loop_t *loop, struct hs_server *s);
/* Free what hs_start recorded (after the loop has run the closes). */
void hs_free(struct hs_server *s);

#endif
