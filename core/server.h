/* server: the DICOM listener and the operator's HTTP endpoints of dicom-core. */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <uv.h>

#include "core_ctx.h"
#include "net/http_listener.h"

struct server {
    struct core_ctx *ctx;
    uv_tcp_t listener;
    bool listening;
    struct http_listener *http;
};

/* Bind and listen on cfg->listen, and the HTTP listener on cfg->http_listen (unless ""). */
MUST_CHECK int server_start(struct server *s, struct core_ctx *ctx);
/* Build the TLS context for cfg->tls (when enabled) and make it the one new associations use;
 * live ones keep theirs. 0, or ERR_TLS / ERR_CONFIG (logged; the old context stays). */
MUST_CHECK int server_tls_load(struct core_ctx *ctx, const struct core_config *cfg);
/* Stop accepting new connections (drain). */
void server_stop_accepting(struct server *s);
/* Close the HTTP listener too (shutdown). */
void server_close(struct server *s);

#endif
