/* audit_config: the "audit" object of dicom-edge's and dicom-core's configuration (every key is
 * documented in docs/audit.md), read through the common typed config reader (common/cfgread.h):
 * the programs keep the object as JSON text (CFGREAD_TEXT) and hand it here. */
#ifndef GW_AUDIT_CONFIG_H
#define GW_AUDIT_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit_queue.h"
#include "common/wbuf.h"

#define AUDIT_MAX_REPOS 4u
#define AUDIT_PATH_MAX 4096u

enum audit_transport { AUDIT_TRANSPORT_TLS = 0, AUDIT_TRANSPORT_UDP = 1 };

struct audit_repo_config {
    enum audit_transport transport;
    char name[AQ_NAME_MAX + 1]; /* its queue cursor and metric label; default tls-HOST-PORT */
    char host[256];
    unsigned port;             /* default 6514 (RFC 5425) or 514 (RFC 5426) */
    char ca[AUDIT_PATH_MAX];   /* TLS: CAs that sign the repository's certificate (required) */
    char cert[AUDIT_PATH_MAX]; /* TLS: our client certificate chain (PEM) and key: mutual TLS */
    char key[AUDIT_PATH_MAX];
    char server_name[256]; /* TLS: name checked in its certificate and sent as SNI;
                            * default host */
    char tls_profile[16];  /* default "bcp195-nd" (tls_profile_parse) */
};

struct audit_config {
    bool enabled; /* the object is present and "enabled" is not false */
    size_t n_repos;
    struct audit_repo_config repos[AUDIT_MAX_REPOS];
    struct audit_repo_config *repo_list; /* the reader's array, copied into repos and freed */
    size_t n_repo_list;
    char on_full_s[16], patient_id_s[16]; /* as written */
    char queue_dir[AUDIT_PATH_MAX];
    uint64_t queue_max_bytes;    /* default 64 MiB */
    uint64_t queue_max_messages; /* default 100000 */
    enum aq_full on_full;        /* "drop_oldest" (default) or "fail_closed" */
    bool patient_include;        /* "patient_id": "hash" (default) or "include" */
    char hash_key_file[AUDIT_PATH_MAX];
    char source_id[128];                 /* AuditSourceID; default: the host name */
    char enterprise_site_id[128];        /* AuditEnterpriseSiteID; default none */
    char hostname[256];                  /* syslog HOSTNAME and our NetworkAccessPointID; default
                                          * gethostname() */
    uint32_t retry_min_ms, retry_max_ms; /* reconnect backoff, default 500 .. 30000 */
    uint32_t connect_timeout_ms;         /* TCP connect + TLS handshake, default 10000 */
    uint32_t ack_grace_ms; /* TLS: a message counts as delivered once TCP has acknowledged
                            * it and the connection has stayed up this long; default 1000 */
};

/* Fill *c with the defaults (disabled, no repositories). */
void audit_config_defaults(struct audit_config *c);

/* Parse the "audit" object's JSON text (NULL: audit disabled, 0) into *c (start from
 * audit_config_defaults). Every problem is appended to errs as one line "audit.KEY: why";
 * unknown keys are problems too. Returns 0 or ERR_CONFIG. Files are not opened here. */
MUST_CHECK int audit_config_parse(const char *json, struct audit_config *c, struct wbuf *errs);

/* The checks --check-config adds: the key file loads, certificates and keys are readable and
 * valid, the queue directory can be created. Problems appended to errs; 0 or ERR_CONFIG. */
MUST_CHECK int audit_config_check(const struct audit_config *c, struct wbuf *errs);

#endif
