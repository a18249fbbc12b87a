/* http_listener: the small operator's HTTP/1.1 listener behind /healthz and /metrics. GET and
 * HEAD only, one request per connection, request head capped at 8 KiB and 5 s; never exposed
 * to untrusted networks by default (binds 127.0.0.1). Runs on the caller's loop. */
#ifndef GW_HTTP_LISTENER_H
#define GW_HTTP_LISTENER_H

#include <uv.h>

#include "common/wbuf.h"

struct http_listener;

/* Fill body (capped at 4 MiB), set *status (default 200) and *ctype (default text/plain). */
typedef void (*http_handler_cb)(void *arg, struct wbuf *body, int *status, const char **ctype);
typedef void (*http_closed_cb)(void *arg);

/* Bind "host:port" (numeric) and listen. *out is owned by the caller until http_listener_close.
 * 0 or a negative code (ERR_CONFIG for a bad address, UV_E* from bind/listen). */
MUST_CHECK int http_listener_start(uv_loop_t *loop, const char *addr, struct http_listener **out);
/* Serve path (exact match, query string ignored) with cb. At most 16 routes. 0 or ERR_LIMIT. */
MUST_CHECK int http_listener_route(struct http_listener *h, const char *path, http_handler_cb cb,
                                   void *arg);
/* Close the listener and its open connections; frees h once every handle has closed, then
 * calls cb(arg) if cb is not NULL. */
void http_listener_close(struct http_listener *h, http_closed_cb cb, void *arg);

#endif
