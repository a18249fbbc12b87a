/* proxy: the edge's connections: accept, mTLS handshake, first-PDU admission, upstream
 * connect (TCP or TLS, PROXY v2), then a splice both ways with backpressure that follows PDU
 * headers; audit lines and metrics. Everything runs on one loop. The work is split over
 * proxy_*.c by job; what those files share is in proxy_int.h. */
#ifndef GW_PROXY_H
#define GW_PROXY_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "audit/audit.h"
#include "edge_config.h"
#include "edge_gen.h"
#include "common/preassoc.h"
#include "limits.h"
#include "net/metrics.h"
#include "refusals.h"

struct edge_metrics {
    struct metric_gauge *conns_active, *assocs_active;
    struct metric_counter *handshakes_ok, *bytes_to_upstream, *bytes_to_client;
    struct metric_counter *admitted, *conns_refused_limit, *conns_refused_rate;
    struct metric_counter *conns_refused_preassoc;
    /* the reverse path (the core's associations to devices) */
    struct metric_gauge *rconns_active, *rassocs_active;
    struct metric_counter *rhandshakes_ok, *rconns_refused_limit;
};

struct edge_conn;

struct edge {
    uv_loop_t *loop;
    const struct edge_config *cfg;
    struct edge_gen *gen; /* current; new connections take a reference */
    struct metrics *metrics;
    struct edge_metrics m;
    struct limits limits;
    struct preassoc preassoc; /* connections not yet admitted (limits.preassoc_*) */
    uv_tcp_t listener, rlistener; /* the modalities'; the reverse path's (cfg->reverse) */
    bool listening, rlistening, draining;
    struct sockaddr_storage listen_addr, rlisten_addr;
    struct edge_conn *conns; /* intrusive list, both listeners' */
    uint32_t n_conns, n_assocs;   /* every connection / admitted association */
    uint32_t n_rconns, n_rassocs; /* of them, the reverse path's */
    uint64_t next_id;
    struct audit *audit;          /* NULL: no audit trail (every audit_* call is a no-op) */
    struct refusals refusals;     /* the last hour's, for the status page */
    int64_t started_at;           /* unix seconds */
    void (*on_empty)(struct edge *e); /* draining and the last connection has gone */
};

/* Register metrics, bind cfg->listen (and cfg->reverse.listen when the reverse path is
 * configured) and start accepting. 0 or a negative code (logged). */
MUST_CHECK int proxy_start(struct edge *e);
/* Stop accepting; close connections not yet admitted; admitted ones go on (drain). */
void proxy_drain(struct edge *e);
/* Abort every connection now (A-ABORT both ways where a PDU boundary allows). */
void proxy_abort_all(struct edge *e);

#endif
