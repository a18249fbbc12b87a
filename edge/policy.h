/* policy: the edge's default-deny binding of client certificates to AE titles (policy.json).
 * A client entry matches a verified certificate and lists the calling and called AE titles it
 * may use, its route (which upstream) and its limits. Parsed once per load, then read-only. */
#ifndef GW_POLICY_H
#define GW_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "common/grants.h"
#include "common/ul.h"
#include "common/wbuf.h"
#include "net/tls_ctx.h"

#define POLICY_MAX_CLIENTS 10000
#define POLICY_MAX_ROUTES 256
#define POLICY_MAX_AE 64

struct policy_route {
    char name[64];
    char upstream[300]; /* "host:port" */
    char host[256];
    unsigned port;
    bool proxy_protocol;
    char called_rewrite[UL_AE_LEN + 1]; /* "" : keep the modality's called AE title */
    bool tls;
    struct {
        char cert[1024], key[1024], ca[1024];
        char server_name[256]; /* checked against the upstream certificate; default: host */
        enum tls_profile profile;
    } tls_opts;
    SSL_CTX *ctx; /* built by policy_build_tls; NULL for plain TCP */
};

struct policy_client {
    char id[129];
    /* every field given must match; at least one is given */
    char subject_cn[257];
    char san_dns[256];
    char san_uri[256];
    char issuer[512]; /* RFC 2253, as tls_peer_id.issuer */
    bool has_fp;
    uint8_t fp[32];
    size_t n_calling, n_called;
    bool any_calling, any_called; /* "*" listed */
    char calling[POLICY_MAX_AE][UL_AE_LEN + 1];
    char called[POLICY_MAX_AE][UL_AE_LEN + 1];
    char route_name[64]; /* as written ("" : the only route) */
    size_t route;        /* index into routes */
    uint32_t max_associations; /* concurrent; 0: no per-client bound */
    uint32_t max_per_minute;   /* new associations per minute; 0: no bound */
    /* what it may do (issue 15): carried to the core in the PROXY v2 grants TLV */
    char services[8][8]; /* as written; none: GRANT_DEFAULT_SERVICES */
    size_t n_services;
    struct grants grants; /* services bits and read scope */
    /* where the reverse path reaches this device (its own SCP), for the AE titles it calls
     * with: Storage Commitment reports, C-MOVE sub-operations (docs/edge.md) */
    bool has_return;
    char ret_host[256];
    uint32_t ret_port;
    bool ret_tls; /* with the policy's device_tls */
    char ret_server_name[256]; /* checked in the device's certificate; default ret_host */
    size_t ret_route;          /* index into returns */
};

/* The edge's TLS client settings toward devices whose return_address says "tls": true. */
struct policy_device_tls {
    bool given;
    char ca[1024], cert[1024], key[1024];
    enum tls_profile profile;
};

struct policy {
    size_t n_clients, n_routes, n_returns;
    struct policy_client *clients;
    struct policy_route *routes;
    struct policy_route *returns; /* one per client with a return_address ("device:<id>") */
    struct policy_device_tls device_tls;
    SSL_CTX *device_ctx; /* built by policy_build_tls when device_tls is given */
};

/* Parse policy JSON text (len bytes). Every problem is one line in errs. Returns 0 and *out
 * (free with policy_free), or ERR_CONFIG / ERR_NOMEM. Does not touch files or OpenSSL. */
MUST_CHECK int policy_parse(const char *json, size_t len, struct policy **out, struct wbuf *errs);
/* Read and parse a file. */
MUST_CHECK int policy_load(const char *path, struct policy **out, struct wbuf *errs);
/* Build the TLS client contexts of routes that use TLS (and of device_tls, which every return
 * route with "tls": true shares). 0 or ERR_TLS with a line in errs. */
MUST_CHECK int policy_build_tls(struct policy *p, struct wbuf *errs);
void policy_free(struct policy *p);

/* The first client entry after prev (NULL: from the start) that matches id, or NULL (default
 * deny). A certificate may match several entries (e.g. one per route); admission takes the
 * first whose AE titles fit. */
const struct policy_client *policy_match(const struct policy *p, const struct tls_peer_id *id,
                                         const struct policy_client *prev);
/* AE title ae (normalised) is listed for the client as calling / called. */
bool policy_calling_ok(const struct policy_client *c, const char *ae);
bool policy_called_ok(const struct policy_client *c, const char *ae);
/* The device reached by the reverse path when an association calls AE title ae: the client
 * entry with a return_address whose calling_ae lists ae by name ("*" does not count), or NULL.
 * Its route is &p->returns[c->ret_route]. */
const struct policy_client *policy_device(const struct policy *p, const char *ae);

#endif
