/* core_config: dicom-core's configuration: JSON file (or the embedded default) plus environment
 * overrides, validated as a whole, then frozen and passed around as const. */
#ifndef GW_CORE_CONFIG_H
#define GW_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/grants.h"
#include "common/wbuf.h"
#include "spool/spool_backend.h"
#include "ts.h"

#define CFG_PATH_MAX 1024
#define CFG_MAX_LIST 64


struct cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned prefix;
};

/* An AE title the core opens associations to (a C-MOVE destination, a modality awaiting its
 * Storage Commitment report): its address, directly or through an edge's reverse path. */
struct core_peer {
    char ae[17];
    char host[256];
    uint32_t port;
    bool tls;              /* with client_tls (our certificate, the CA that signs theirs) */
    char server_name[256]; /* the name their certificate must carry ("": not checked) */
};

/* What direct connections (no PROXY v2 grants from an edge) from these calling AE titles may
 * do; a calling AE title in no entry gets GRANT_DEFAULT_SERVICES and no reads. */
struct core_client {
    char calling[CFG_MAX_LIST][17];
    size_t n_calling;
    char services[8][8];
    size_t n_services;
    char read_scope[8];
    struct grants grants; /* from services and read_scope */
};

/* The spool's checksum of each object (its sidecar): CRC-64/NVME always; SHA-256 too unless
 * told to skip it (a backend that keys on SHA-256, aws, needs it). */
enum spool_checksum { SPOOL_CHECKSUM_SHA256 = 0, SPOOL_CHECKSUM_CRC64NVME = 1 };

/* "commit": Storage Commitment (svc_commit.c, commit_txn.c, commit_report.c). */
struct core_commit_config {
    int point;                   /* 0: the backend's strongest; else enum backend_copy_state */
    uint32_t max_refs;           /* references in one N-ACTION (more: 0213H) */
    uint32_t max_open;           /* transactions open at once in this process (more: 0213H) */
    uint32_t deadline_ms;        /* from the N-ACTION: pending references fail (0110H/0112H) */
    uint32_t poll_initial_ms;    /* first re-check of pending references, doubling ... */
    uint32_t poll_max_ms;        /* ... up to this */
    uint32_t report_timeout_ms;  /* an attempt: association and N-EVENT-REPORT-RSP */
    uint32_t retry_initial_ms;   /* delivery retries: first wait, doubling ... */
    uint32_t retry_max_ms;       /* ... up to this */
    uint32_t report_deadline_ms; /* after the decision: delivery is given up */
    uint32_t lease_ms;           /* shared store: a task's hold on a transaction */
    uint32_t sweep_ms;           /* shared store: looking for transactions of dead tasks */
    uint32_t remember_s;         /* reported Transaction UIDs stay known (duplicates) */
};

struct core_config {
    char ae_title[17];
    bool check_called_ae;                    /* reject other called AE titles (reason 7) */
    char calling_allow[CFG_MAX_LIST][17];    /* empty list: any calling AE */
    size_t n_calling_allow;
    char listen[128];
    char http_listen[128];                   /* "" disables the HTTP listener */
    char spool_dir[CFG_PATH_MAX];
    enum spool_ack ack;
    bool fsync;                              /* false only for benchmarks: weakens durability */
    enum spool_checksum spool_checksum;
    uint64_t min_free_bytes;                 /* refuse stores (0xA700) under this free space */
    uint32_t max_pdu;                        /* our maximum receive PDU length */
    uint32_t max_associations;               /* established associations at once */
    uint32_t preassoc_max;                   /* connections not yet associations, at once */
    uint32_t preassoc_per_source;            /* ... of them from one address (IPv6: one /64) */
    uint32_t artim_ms;                       /* PS3.8 ARTIM: request wait and close wait */
    uint32_t idle_ms;                        /* no PDU for this long on an association: abort */
    uint32_t drain_ms;                       /* SIGTERM: how long live associations may finish */
    const struct ts_info *ts[32];            /* accepted transfer syntaxes, preference order */
    size_t n_ts;
    char private_sops[CFG_MAX_LIST][65];     /* extra storage SOP classes to accept */
    size_t n_private_sops;
    bool accept_retired_sops;
    bool proxy_protocol;                     /* expect PROXY v2 from trusted sources */
    struct cidr proxy_trusted[CFG_MAX_LIST];
    size_t n_proxy_trusted;
    struct {
        char cert[CFG_PATH_MAX], key[CFG_PATH_MAX], client_ca[CFG_PATH_MAX], crl[CFG_PATH_MAX];
        bool enabled;
    } tls;
    int backend;                             /* index into the backend kinds (backend_type) */
    struct {                                 /* our identity when we open associations */
        char cert[CFG_PATH_MAX], key[CFG_PATH_MAX], ca[CFG_PATH_MAX];
        char profile[32];
        bool enabled;
    } client_tls;
    struct core_peer *peers;                 /* "ae_peers": AE title -> where to reach it */
    size_t n_peers;
    struct core_client *clients;             /* "clients": grants of direct connections */
    size_t n_clients;
    struct core_commit_config commit;        /* "commit" */
    char backend_type[32];                   /* the "backend" object's "type" */
    char log_level[8];
    char *backend_json; /* the "backend" object, as text: its backend parses and checks it */
    char *audit_json;   /* the "audit" object, as text (core/audit/audit_config.h), or NULL */
};

/* The embedded default configuration, as JSON text. */
const char *core_config_default_json(void);

/* Load from path (NULL: the embedded default), apply DICOM_CORE_* environment overrides, and
 * validate. Every problem found is appended to errs as one line; returns 0 or ERR_CONFIG. */
MUST_CHECK int core_config_load(const char *path, struct core_config *cfg, struct wbuf *errs);
void core_config_cleanup(struct core_config *cfg);

/* What a direct connection (no PROXY v2 grants) from calling AE title may do: the services and
 * read scope configured for it, else GRANT_DEFAULT_SERVICES and no reads. */
void core_config_grants(const struct core_config *cfg, const char *calling, struct grants *out);
/* The peer named ae ("ae_peers"), or NULL. */
const struct core_peer *core_config_peer(const struct core_config *cfg, const char *ae);

/* True when addr (AF_INET / AF_INET6, v4-mapped v6 included) lies in one of the CIDRs. */
bool cidr_list_match(const struct cidr *list, size_t n, const struct sockaddr *addr);
/* Parse "10.0.0.0/8", "::1/128" or a bare address. 0 or ERR_CONFIG. */
MUST_CHECK int cidr_parse(const char *s, struct cidr *out);

#endif
