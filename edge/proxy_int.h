/* proxy_int: what the proxy's own files (edge/proxy*.c) share: the connection, its states, and
 * the few entry points of proxy.c the others call. Never included outside them. */
#ifndef GW_PROXY_INT_H
#define GW_PROXY_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "common/ul.h"
#include "common/wbuf.h"
#include "net/stream.h"
#include "net/tls_conn.h"
#include "pdu_follow.h"
#include "policy.h"
#include "proxy.h"

#define LINGER_MS 2000u /* after our last bytes (RJ, ABORT, close_notify): wait for the peer */
#define TRIM_AFTER_MS 5000u        /* a splice this quiet gives its TLS buffers back */
#define CONN_STOP (ERR_BASE - 100) /* a callback handled the event; stop delivering */
#define RQ_BUF_MAX (2u * (UL_PRE_ASSOC_MAX + UL_HDR_LEN))
#define PROXY_READ_BUF (64u * 1024u) /* one read of either socket */

enum conn_state {
    ST_HANDSHAKE, /* TLS handshake with the modality */
    ST_RQ,        /* waiting for the whole A-ASSOCIATE-RQ */
    ST_CONNECT,   /* admitted: resolving / connecting upstream */
    ST_UP_TLS,    /* upstream TLS handshake */
    ST_SPLICE,    /* both ways */
    ST_FINISH,    /* last bytes going out, then close */
};

struct edge_conn {
    struct edge *e;
    struct edge_gen *gen;
    struct edge_conn *next, *prev;
    uint64_t id;
    uv_tcp_t down, up;
    struct stream s_down, s_up; /* the write path of each leg (proxy_write.c) */
    uv_timer_t timer;
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    uv_shutdown_t sd_down, sd_up;
    int live;            /* initialised handles + pending getaddrinfo */
    int shutdowns;       /* pending uv_shutdown requests */
    bool closing, up_init, up_connected, slot_taken, in_assoc_count;
    bool reverse; /* accepted on the reverse listener: the core calling a device */
    bool pre_held;      /* holds a slot of e->preassoc (not admitted yet) */
    uint8_t pre_key[16];
    bool down_paused, up_paused;
    enum conn_state st;
    struct tls_conn *tls, *up_tls;
    struct wbuf rq;          /* the first PDU (and anything after it) until the splice */
    struct pdu_follow f_up, f_down; /* modality -> upstream, upstream -> modality */
    bool followers;
    uint64_t t_accept, t_admit, last_io;
    uint64_t bytes_up, bytes_down;
    uint32_t rq_max_len;
    const struct policy_client *client;
    const struct policy_route *route;
    const char *end;
    char peer_s[64];
    char peer_ip[48];     /* the address alone, for audit messages */
    char limit_key[140];  /* the key of the slot taken in e->limits */
    struct sockaddr_storage peer, local;
    char calling[UL_AE_LEN + 1], called[UL_AE_LEN + 1];
    char client_id[129], cn[257], serial[96], fp_hex[65];
    uint8_t fp[32];
    char subject[512];
};

/* proxy.c: the modality's socket is read here in every state (uv_read_cb). */
void proxy_on_down_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

#endif
