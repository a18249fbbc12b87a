/* edge_config: dicom-edge's edge.json plus DICOM_EDGE_* environment overrides, validated as a
 * whole, then frozen and passed around as const (STYLE.md §9). */
#ifndef GW_EDGE_CONFIG_H
#define GW_EDGE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "audit/audit_config.h"
#include "common/wbuf.h"
#include "net/tls_ctx.h"

#define EDGE_PATH_MAX 1024
#define EDGE_REVERSE_MAX_CN 16

struct edge_config {
    char listen[128];
    char http_listen[128]; /* "" disables /healthz and /metrics */
    struct {
        char cert[EDGE_PATH_MAX], key[EDGE_PATH_MAX], client_ca[EDGE_PATH_MAX];
        char crl[EDGE_PATH_MAX]; /* "" : no revocation check */
        enum tls_crl_mode crl_mode;
        enum tls_profile profile;
    } tls;
    char policy[EDGE_PATH_MAX];
    char log_level[8];
    uint32_t max_connections;       /* global, TLS or not yet */
    uint32_t per_source_per_minute; /* new connections per source address per minute; 0: off */
    uint32_t preassoc_max;          /* connections not yet admitted (TLS, A-ASSOCIATE-RQ), at once */
    uint32_t preassoc_per_source;   /* of them, from one source address (IPv6: its /64) */
    uint32_t handshake_ms;          /* TCP accept to TLS established */
    uint32_t assoc_rq_ms;           /* TLS established to whole A-ASSOCIATE-RQ */
    uint32_t connect_ms;            /* upstream TCP connect + TLS handshake */
    uint32_t idle_ms;               /* no byte either way for this long: close */
    uint32_t drain_ms;              /* SIGTERM: how long live associations may finish */
    uint32_t max_pdu;               /* cap on any PDU after acceptance, both ways */
    uint32_t high_water, low_water; /* backpressure marks on each side's write queue (bytes) */
    uint32_t keepalive_s;           /* TCP keepalive on both legs; 0: off */
    char user[64], group[64];       /* drop privileges to these after binding; "": stay */
    /* the reverse path (docs/edge.md): the core's associations to devices on the LAN */
    struct {
        bool enabled; /* the "reverse" object is present */
        char listen[128];
        struct {
            char cert[EDGE_PATH_MAX], key[EDGE_PATH_MAX]; /* default: tls.cert, tls.key */
            char client_ca[EDGE_PATH_MAX]; /* the infrastructure CA(s), trusted alone */
            char crl[EDGE_PATH_MAX];       /* "" : no revocation check */
            enum tls_crl_mode crl_mode;
            enum tls_profile profile;
        } tls;
        char allow_cn[EDGE_REVERSE_MAX_CN][257]; /* none: any certificate client_ca signs */
        size_t n_allow_cn;
        uint32_t max_associations; /* reverse associations at once, every device together */
        uint32_t max_per_device;   /* ... to one device */
    } reverse;
    char *audit_json;          /* while loading only: the "audit" object's text (NULL after) */
    struct audit_config audit; /* the "audit" object (docs/audit.md); audit.enabled */
    uint64_t audit_digest;     /* of the object's text: a reload tells whether it changed */
};

/* Load path (NULL: /etc/dicom-edge/edge.json), apply environment overrides, validate. Every
 * problem is one line appended to errs; returns 0 or ERR_CONFIG. A relative "policy" path is
 * taken relative to the configuration file's directory. */
MUST_CHECK int edge_config_load(const char *path, struct edge_config *c, struct wbuf *errs);

#endif
