/* proxy_upstream: the leg to the core: resolve the route's host, connect with a deadline, send
 * the PROXY v2 header when the route asks for it, run the client TLS handshake, and read what
 * the core sends. Failures before the splice answer the modality with a transient
 * A-ASSOCIATE-RJ. */
#ifndef GW_PROXY_UPSTREAM_H
#define GW_PROXY_UPSTREAM_H

#include "proxy_int.h"

/* c is admitted (c->route set): connect upstream; the splice begins once it is ready. */
void proxy_upstream_start(struct edge_conn *c);
/* The upstream could not be reached or set up (why: a reason token, detail: text): log it,
 * give the association slot back, and refuse the modality (transient, congestion). */
void proxy_upstream_failed(struct edge_conn *c, const char *why, const char *detail);
/* uv_read_cb of the upstream socket. */
void proxy_upstream_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

#endif
