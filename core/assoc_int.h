/* assoc_int: what the association's own files share (assoc.c: the state machine and its life;
 * assoc_io.c: transport; assoc_negotiate.c: A-ASSOCIATE-RQ to AC; assoc_dimse.c: P-DATA,
 * command routing to the services and the API they use). Not for other modules. */
#ifndef GW_ASSOC_INT_H
#define GW_ASSOC_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "assoc.h"
#include "common/rd.h"
#include "common/ul.h"
#include "common/wbuf.h"
#include "dimse.h"
#include "dimse_service.h"
#include "net/stream.h"

#define GLITCH_MAX 256 /* odd-but-legal items tolerated on one connection */

/* PS3.8 Table 9-10 states an acceptor can be in. */
enum sta {
    STA2 = 2,   /* acceptor: transport open, awaiting A-ASSOCIATE-RQ (ARTIM running) */
    STA4 = 4,   /* requestor: awaiting the transport (and TLS) to open */
    STA5 = 5,   /* requestor: awaiting A-ASSOCIATE-AC or -RJ */
    STA6 = 6,   /* association established */
    STA7 = 7,   /* we sent A-RELEASE-RQ, awaiting A-RELEASE-RP */
    STA8 = 8,   /* peer sent A-RELEASE-RQ, our response pending */
    STA10 = 10, /* release collision, acceptor side, awaiting A-RELEASE-RP */
    STA11 = 11, /* release collision, requestor side, awaiting A-RELEASE-RP */
    STA13 = 13, /* awaiting transport close (ARTIM running) */
};

/* What only an association we requested has. */
struct assoc_out {
    struct assoc_connect_cbs cbs;
    char host[256];
    unsigned port;
    SSL_CTX *tls; /* a reference of ours */
    char tls_host[256];
    struct assoc_propose contexts[UL_MAX_PCTX];
    size_t n_contexts;
    uv_getaddrinfo_t gai;
    uv_connect_t conn;
    bool resolving, connecting;
    bool release_wanted;
    int err; /* for ended() */
};

struct pctx_entry {
    bool accepted;
    bool peer_scp;
    const struct ts_info *ts;
    const struct dimse_service *svc;
    char abstract[65];
};

struct rsp_wait {
    struct rsp_wait *next;
    uint16_t msg_id;
    assoc_rsp_cb cb;
    void *arg;
};

struct assoc {
    uv_tcp_t tcp;
    uv_timer_t timer;
    int live_handles;
    bool closing;
    struct assoc *next, **pprev;
    struct core_ctx *ctx;
    const struct core_config *cfg;
    uint64_t id;
    enum sta st;
    uint64_t t_start;

    /* transport (assoc_io.c) */
    uint8_t *rbuf;
    size_t rlen, rcap;
    bool reading, paused;
    bool in_process; /* assoc_process() is on the stack: callbacks must not re-enter it */
    bool awaiting_proxy;
    unsigned glitches;
    struct tls_conn *tls; /* NULL on a plain TCP listener */
    struct stream out_stream; /* the write path (clear, or through tls) */
    struct assoc_out *out; /* the requestor role, or NULL */
    bool pre_counted;      /* holds a pre-association slot (pre_key) */
    bool proxy_grants;     /* grants came in the PROXY v2 header */
    bool proxy_ssl;        /* the PROXY v2 header says the client came over TLS */
    struct grants grants;  /* what this client may do (set at the RQ at the latest) */
    bool established;      /* counted in ctx->established */
    uint8_t pre_key[16];
    void (*out_room_cb)(void *);
    void *out_room_arg;

    char peer[64];
    char cert_cn[257], cert_fp[65], client_id[129];
    char calling[17], called[17];
    uint32_t peer_max; /* 0: unlimited */
    uint32_t our_max;
    struct pctx_entry pctx[256];

    /* DIMSE (assoc_dimse.c) */
    struct wbuf cmd;
    uint8_t cmd_pctx;
    bool in_dataset;     /* a request announced a dataset that is still arriving */
    bool skip_dataset;   /* ... whose bytes are dropped (answered request or a peer response) */
    struct dimse_cmd req;
    struct pctx_info req_pctx;
    struct dimse_request rq;
    struct svc_op *op;   /* the operation in progress, or NULL */
    bool answer_due;     /* answer pending_status once the skipped dataset has ended */
    uint16_t pending_status;
    const char *pending_comment;
    bool release_wanted; /* drain: release when idle */
    uint16_t next_msg_id;
    struct rsp_wait *waits;
    bool out_open;       /* a message of ours is half sent (its dataset is still to come) */

    uint64_t bytes_in, bytes_out, objects, failures;
    const char *end_reason;
};

/* assoc.c */
void assoc_close(struct assoc *a, const char *reason);
/* The close callback of both handles: the last one frees a. */
void assoc_on_closed(uv_handle_t *h);
/* Common set-up of a new association (either role); links it into ctx. */
struct assoc *assoc_new(struct core_ctx *ctx);
void assoc_arm(struct assoc *a, uint32_t ms);
/* AA-1 / AA-7 / AA-8: send A-ABORT, then wait (ARTIM) for the peer to close: Sta13. */
void assoc_send_abort(struct assoc *a, uint8_t source, uint8_t reason, const char *why);
/* A protocol violation in a->st, by the table: AA-1 in Sta2, AA-8 elsewhere. */
void assoc_violation(struct assoc *a, uint8_t reason, const char *why);
/* Sta6 and nothing in progress: a drain's release may go now. */
void assoc_idle(struct assoc *a);
/* One whole PDU. false stops processing the buffer (pause, abort or close). */
bool assoc_handle_pdu(struct assoc *a, uint8_t type, struct rd *body);

/* assoc_connect.c: the requestor's AE-1..AE-4 */
/* The transport (and TLS) is open: send the A-ASSOCIATE-RQ (AE-2). */
void assoc_send_rq(struct assoc *a);
/* Sta5: an A-ASSOCIATE-AC (AE-3) or -RJ (AE-4). */
void assoc_handle_ac(struct assoc *a, struct rd *body);
void assoc_handle_rj(struct assoc *a, struct rd *body);
void assoc_out_free(struct assoc_out *o);

/* assoc_io.c */
MUST_CHECK int assoc_send_bytes(struct assoc *a, const uint8_t *p, size_t n);
/* Send b and clean it up; a failure closes the association (so callers need not check). */
int assoc_send_wbuf(struct assoc *a, struct wbuf *b);
void assoc_process(struct assoc *a);
/* Take a pre-association slot for the source sa; false: refused (the association is closed). */
bool assoc_preassoc_enter(struct assoc *a, const struct sockaddr *sa);
void assoc_preassoc_leave(struct assoc *a);
/* Start reading (and TLS, server side when !a->out, client side when a->out). 0 (failures
 * close the association). */
MUST_CHECK int assoc_io_start(struct assoc *a);
/* A write completed: wake a producer waiting for room. */
void assoc_io_written(struct assoc *a);

/* assoc_negotiate.c: AE-6 */
void assoc_handle_rq(struct assoc *a, struct rd *body);
void assoc_reject(struct assoc *a, uint8_t result, uint8_t source, uint8_t reason,
                  const char *why);

/* assoc_dimse.c: DT-2 / AR-6 */
bool assoc_handle_pdata(struct assoc *a, struct rd *body);
/* No request in progress and nothing owed: the drain may release. */
bool assoc_dimse_idle(const struct assoc *a);
/* The association ends: operations and waiters are told. */
void assoc_dimse_end(struct assoc *a);

#endif
