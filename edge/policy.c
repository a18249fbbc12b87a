#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cfgread.h"
#include "common/hex.h"
#include "net/addr.h"

/* 64 hex digits, optionally separated by ':' (as `openssl x509 -fingerprint` prints them). */
static int parse_fp(const char *s, uint8_t fp[32])
{
    char digits[64];
    size_t n = 0;
    for (; *s; s++) {
        if (*s == ':')
            continue;
        if (n >= sizeof digits)
            return ERR_CONFIG;
        digits[n++] = *s;
    }
    return hex_decode(digits, n, fp, 32) == 32 ? 0 : ERR_CONFIG;
}

static bool ae_listed(const char list[][UL_AE_LEN + 1], size_t n, bool any, const char *ae)
{
    if (!ae[0])
        return false;
    if (any)
        return true;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], ae) == 0) /* PS3.5: AE titles are case-sensitive */
            return true;
    }
    return false;
}

#define PC struct policy_client
#define PR struct policy_route

/* "*" admits any title; otherwise a title, normalised. */
static int conv_ae(char *dst, bool *any, const char *s)
{
    if (strcmp(s, "*") == 0) {
        *any = true;
        return CFGREAD_SKIP;
    }
    return ul_ae_normalize((const uint8_t *)s, strnlen(s, UL_AE_LEN + 1), dst);
}

static int conv_calling(void *base, void *dst, const char *s)
{
    return conv_ae(dst, &((PC *)base)->any_calling, s);
}

static int conv_called(void *base, void *dst, const char *s)
{
    return conv_ae(dst, &((PC *)base)->any_called, s);
}

static int conv_rewrite(void *base, void *dst, const char *s)
{
    (void)base;
    return s[0] ? ul_ae_normalize((const uint8_t *)s, strnlen(s, UL_AE_LEN + 1), dst) : 0;
}

static int conv_fp(void *base, void *dst, const char *s)
{
    if (!s[0])
        return 0;
    TRY(parse_fp(s, dst));
    ((PC *)base)->has_fp = true;
    return 0;
}

static int conv_profile(void *base, void *dst, const char *s)
{
    (void)base;
    return s[0] ? tls_profile_parse(s, dst) : 0;
}

static int conv_service(void *base, void *dst, const char *s)
{
    (void)base;
    size_t n = strnlen(s, 8);
    if (n >= 8 || grants_service_bit(s, n) == 0)
        return ERR_CONFIG;
    memcpy(dst, s, n + 1);
    return 0;
}

static int conv_scope(void *base, void *dst, const char *s)
{
    (void)base;
    return grants_scope_parse(s, strnlen(s, 16), dst);
}

static void check_return(void *base, void *ctx, const char *path, struct wbuf *errs)
{
    struct policy_client *pc = base;
    (void)ctx;
    pc->has_return = true;
    if (!pc->ret_host[0])
        cfgread_problem(errs, path, "host", "required (the device's address on the hospital LAN)");
    if (pc->ret_port == 0)
        cfgread_problem(errs, path, "port", "required (the device's own DICOM SCP port)");
    if (pc->ret_tls && !pc->ret_server_name[0])
        snprintf(pc->ret_server_name, sizeof pc->ret_server_name, "%s", pc->ret_host);
}

static void check_device_tls(void *base, void *ctx, const char *path, struct wbuf *errs)
{
    struct policy *p = base;
    (void)ctx;
    p->device_tls.given = true;
    if (!p->device_tls.ca[0])
        cfgread_problem(errs, path, "ca", "required (the devices' certificates are verified)");
    if (p->device_tls.cert[0] && !p->device_tls.key[0])
        cfgread_problem(errs, path, "key", "required with cert");
}

static void check_route_tls(void *base, void *ctx, const char *path, struct wbuf *errs)
{
    struct policy_route *rt = base;
    (void)ctx;
    rt->tls = true;
    if (!rt->tls_opts.ca[0])
        cfgread_problem(errs, path, "ca", "required (the upstream's certificate is verified)");
    if (rt->tls_opts.cert[0] && !rt->tls_opts.key[0])
        cfgread_problem(errs, path, "key", "required with cert");
}

static void check_route(void *base, void *ctx, const char *path, struct wbuf *errs)
{
    struct policy_route *rt = base;
    (void)ctx;
    if (addr_split(rt->upstream, rt->host, sizeof rt->host, &rt->port) < 0 || rt->port == 0)
        cfgread_problem(errs, path, "upstream", "must be host:port");
    if (rt->tls && !rt->tls_opts.server_name[0]) /* the name checked is the host's by default */
        snprintf(rt->tls_opts.server_name, sizeof rt->tls_opts.server_name, "%s", rt->host);
}

static void check_match(void *base, void *ctx, const char *path, struct wbuf *errs)
{
    const struct policy_client *pc = base;
    (void)ctx;
    if (!pc->subject_cn[0] && !pc->san_dns[0] && !pc->san_uri[0] && !pc->has_fp)
        cfgread_problem(errs, path, "",
                        "needs subject_cn, san_dns, san_uri or fingerprint_sha256 "
                        "(issuer alone would admit a whole CA)");
}

static void check_client(void *base, void *ctx, const char *path, struct wbuf *errs)
{
    struct policy_client *pc = base;
    const struct policy *p = ctx;
    size_t idx = (size_t)(pc - p->clients);
    if (!pc->id[0])
        cfgread_problem(errs, path, "id", "required");
    for (size_t i = 0; i < idx; i++) {
        if (pc->id[0] && strcmp(p->clients[i].id, pc->id) == 0)
            cfgread_problem(errs, path, "id", "duplicate client id");
    }
    if (!pc->route_name[0] && p->n_routes == 1)
        snprintf(pc->route_name, sizeof pc->route_name, "%s", p->routes[0].name);
    bool found = false;
    for (size_t i = 0; i < p->n_routes; i++) {
        if (strcmp(p->routes[i].name, pc->route_name) == 0) {
            pc->route = i;
            found = true;
        }
    }
    if (!found)
        cfgread_problem(errs, path, "route",
                        pc->route_name[0] ? "names no route in \"routes\"" : "required");
    pc->grants.services = pc->n_services ? 0 : GRANT_DEFAULT_SERVICES;
    for (size_t i = 0; i < pc->n_services; i++)
        pc->grants.services |= grants_service_bit(pc->services[i], strlen(pc->services[i]));
    if (pc->has_return && pc->n_calling == 0)
        cfgread_problem(errs, path, "return_address",
                        "needs calling_ae titles by name (the reverse path finds a device by the "
                        "AE title called; \"*\" names none)");
}

/* Across clients: one device per AE title on the reverse path, and device_tls where a return
 * address asks for TLS. */
static void check_policy(void *base, void *ctx, const char *path, struct wbuf *errs)
{
    struct policy *p = base;
    (void)ctx;
    char where[160];
    for (size_t i = 0; i < p->n_clients; i++) {
        const struct policy_client *a = &p->clients[i];
        if (!a->has_return)
            continue;
        snprintf(where, sizeof where, "clients[%zu].return_address", i);
        if (a->ret_tls && !p->device_tls.given)
            cfgread_problem(errs, path, where, "\"tls\": true needs a top-level \"device_tls\"");
        for (size_t j = 0; j < i; j++) {
            const struct policy_client *b = &p->clients[j];
            for (size_t k = 0; b->has_return && k < a->n_calling; k++) {
                if (ae_listed(b->calling, b->n_calling, false, a->calling[k])) {
                    cfgread_problem(errs, path, where,
                                    "an AE title it lists already has a return address in "
                                    "an earlier client");
                    break;
                }
            }
        }
    }
}

static const struct cfgread_key g_route_tls_keys[] = {
    CFGREAD_STR("cert", PR, tls_opts.cert, NULL),
    CFGREAD_STR("key", PR, tls_opts.key, NULL),
    CFGREAD_STR("ca", PR, tls_opts.ca, NULL),
    CFGREAD_STR("server_name", PR, tls_opts.server_name, NULL),
    CFGREAD_CONV("profile", PR, tls_opts.profile, 32, conv_profile, "bcp195-nd",
                 "unknown profile"),
};
static const struct cfgread_table g_route_tls =
    CFGREAD_TABLE(g_route_tls_keys, false, check_route_tls);

static const struct cfgread_key g_route_keys[] = {
    CFGREAD_STR("upstream", PR, upstream, NULL),
    CFGREAD_BOOL("proxy_protocol", PR, proxy_protocol, false),
    CFGREAD_CONV("called_ae_rewrite", PR, called_rewrite, 64, conv_rewrite, NULL,
                 "invalid AE title"),
    CFGREAD_OBJ("tls", &g_route_tls),
};
static const struct cfgread_table g_route = CFGREAD_TABLE(g_route_keys, false, check_route);

static const struct cfgread_key g_return_keys[] = {
    CFGREAD_STR("host", PC, ret_host, NULL),
    CFGREAD_U32("port", PC, ret_port, 1, 65535, 0),
    CFGREAD_BOOL("tls", PC, ret_tls, false),
    CFGREAD_STR("server_name", PC, ret_server_name, NULL),
};
static const struct cfgread_table g_return = CFGREAD_TABLE(g_return_keys, true, check_return);

static const struct cfgread_key g_device_tls_keys[] = {
    CFGREAD_STR("ca", struct policy, device_tls.ca, NULL),
    CFGREAD_STR("cert", struct policy, device_tls.cert, NULL),
    CFGREAD_STR("key", struct policy, device_tls.key, NULL),
    CFGREAD_CONV("profile", struct policy, device_tls.profile, 32, conv_profile, "bcp195-nd",
                 "unknown profile"),
};
static const struct cfgread_table g_device_tls =
    CFGREAD_TABLE(g_device_tls_keys, true, check_device_tls);

static const struct cfgread_key g_match_keys[] = {
    CFGREAD_STR("subject_cn", PC, subject_cn, NULL),
    CFGREAD_STR("san_dns", PC, san_dns, NULL),
    CFGREAD_STR("san_uri", PC, san_uri, NULL),
    CFGREAD_STR("issuer", PC, issuer, NULL),
    CFGREAD_CONV("fingerprint_sha256", PC, fp, 128, conv_fp, NULL, "must be 64 hex digits"),
};
static const struct cfgread_table g_match = CFGREAD_TABLE(g_match_keys, false, check_match);

#define AE_LIST_MSG "must be a non-empty array of AE titles (or [\"*\"])"
#define AE_BAD_MSG "invalid AE title (1-16 characters, no \\ or controls)"
#define AE_MANY_MSG "too many AE titles (64 at most)"

static const struct cfgread_key g_client_keys[] = {
    CFGREAD_STR("id", PC, id, NULL),
    CFGREAD_OBJ("match", &g_match, .flags = CFGREAD_REQUIRED, .msg = "required object"),
    CFGREAD_LIST("calling_ae", PC, calling, n_calling, conv_calling, 1, POLICY_MAX_AE,
                 AE_LIST_MSG, AE_BAD_MSG, .flags = CFGREAD_REQUIRED, .many_msg = AE_MANY_MSG),
    CFGREAD_LIST("called_ae", PC, called, n_called, conv_called, 1, POLICY_MAX_AE, AE_LIST_MSG,
                 AE_BAD_MSG, .flags = CFGREAD_REQUIRED, .many_msg = AE_MANY_MSG),
    CFGREAD_STR("route", PC, route_name, NULL),
    CFGREAD_U32("max_associations", PC, max_associations, 0, 100000, 0),
    CFGREAD_U32("max_per_minute", PC, max_per_minute, 0, 1000000, 0),
    CFGREAD_LIST("services", PC, services, n_services, conv_service, 1, 8,
                 "must be a non-empty array of services (omit it for store and echo)",
                 "unknown service (store, echo, find, get, move, commit)"),
    CFGREAD_CONV("read_scope", PC, grants.scope, 16, conv_scope, "none",
                 "must be none, own, shared or all"),
    CFGREAD_OBJ("return_address", &g_return),
};
static const struct cfgread_table g_client = CFGREAD_TABLE(g_client_keys, false, check_client);

/* routes before clients: a client names its route */
static const struct cfgread_key g_keys[] = {
    CFGREAD_MAP("routes", struct policy, routes, n_routes, PR, name, &g_route, 1,
                POLICY_MAX_ROUTES, "must be an object with 1 to 256 named routes",
                "route names must be 1-63 characters", .flags = CFGREAD_REQUIRED),
    CFGREAD_OBJ("device_tls", &g_device_tls),
    CFGREAD_ARRAY("clients", struct policy, clients, n_clients, PC, &g_client, 0,
                  POLICY_MAX_CLIENTS, "must be an array of at most 10000 entries",
                  .flags = CFGREAD_REQUIRED),
};
static const struct cfgread_table g_table = CFGREAD_TABLE(g_keys, false, check_policy);

/* One route per client with a return address: the proxy's upstream leg for the reverse path.
 * 0 or ERR_NOMEM. */
static int build_returns(struct policy *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_clients; i++)
        n += p->clients[i].has_return;
    if (n == 0)
        return 0;
    p->returns = calloc(n, sizeof *p->returns);
    if (!p->returns)
        return ERR_NOMEM;
    for (size_t i = 0; i < p->n_clients; i++) {
        struct policy_client *pc = &p->clients[i];
        if (!pc->has_return)
            continue;
        struct policy_route *rt = &p->returns[p->n_returns];
        pc->ret_route = p->n_returns++;
        snprintf(rt->name, sizeof rt->name, "device:%.56s", pc->id);
        bool v6 = strchr(pc->ret_host, ':') != NULL;
        snprintf(rt->upstream, sizeof rt->upstream, v6 ? "[%s]:%u" : "%s:%u", pc->ret_host,
                 (unsigned)pc->ret_port);
        snprintf(rt->host, sizeof rt->host, "%s", pc->ret_host);
        rt->port = pc->ret_port;
        rt->tls = pc->ret_tls;
        snprintf(rt->tls_opts.server_name, sizeof rt->tls_opts.server_name, "%s",
                 pc->ret_server_name);
    }
    return 0;
}

int policy_parse(const char *json, size_t len, struct policy **out, struct wbuf *errs)
{
    struct policy *p = calloc(1, sizeof *p);
    if (!p)
        return ERR_NOMEM;
    struct cfgread_job job = {.table = &g_table, .base = p, .ctx = p, .name = "policy",
                              .prefix = ""};
    int rc = cfgread_text(&job, json, len, errs);
    if (rc == 0)
        rc = build_returns(p);
    if (rc < 0) {
        policy_free(p);
        return rc == ERR_NOMEM ? ERR_NOMEM : ERR_CONFIG;
    }
    *out = p;
    return 0;
}

int policy_load(const char *path, struct policy **out, struct wbuf *errs)
{
    size_t len = 0;
    char *text = cfgread_file(path, 64u * 1024u * 1024u, &len, errs);
    if (!text)
        return ERR_CONFIG;
    int rc = policy_parse(text, len, out, errs);
    free(text);
    return rc;
}

int policy_build_tls(struct policy *p, struct wbuf *errs)
{
    if (p->device_tls.given && !p->device_ctx) {
        struct tls_client_opts o = {
            .cert = p->device_tls.cert[0] ? p->device_tls.cert : NULL,
            .key = p->device_tls.key[0] ? p->device_tls.key : NULL,
            .ca = p->device_tls.ca,
            .profile = p->device_tls.profile,
        };
        char err[512];
        if (tls_ctx_client_new(&o, &p->device_ctx, err, sizeof err) < 0) {
            wbuf_printf(errs, "device_tls: %s\n", err);
            return ERR_TLS;
        }
    }
    for (size_t i = 0; i < p->n_returns; i++) {
        struct policy_route *rt = &p->returns[i];
        if (rt->tls && !rt->ctx && p->device_ctx && SSL_CTX_up_ref(p->device_ctx) == 1)
            rt->ctx = p->device_ctx;
        if (rt->tls && !rt->ctx) {
            wbuf_printf(errs, "%s: no TLS context for the device\n", rt->name);
            return ERR_TLS;
        }
    }
    for (size_t i = 0; i < p->n_routes; i++) {
        struct policy_route *rt = &p->routes[i];
        if (!rt->tls || rt->ctx)
            continue;
        struct tls_client_opts o = {
            .cert = rt->tls_opts.cert,
            .key = rt->tls_opts.key,
            .ca = rt->tls_opts.ca,
            .profile = rt->tls_opts.profile,
        };
        char err[512];
        if (tls_ctx_client_new(&o, &rt->ctx, err, sizeof err) < 0) {
            wbuf_printf(errs, "routes.%s.tls: %s\n", rt->name, err);
            return ERR_TLS;
        }
    }
    return 0;
}

void policy_free(struct policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; p->routes && i < p->n_routes; i++)
        SSL_CTX_free(p->routes[i].ctx);
    for (size_t i = 0; p->returns && i < p->n_returns; i++)
        SSL_CTX_free(p->returns[i].ctx);
    SSL_CTX_free(p->device_ctx);
    free(p->routes);
    free(p->returns);
    free(p->clients);
    free(p);
}

static bool client_matches(const struct policy_client *c, const struct tls_peer_id *id)
{
    if (c->subject_cn[0] && strcmp(c->subject_cn, id->cn) != 0)
        return false;
    if (c->has_fp && memcmp(c->fp, id->fp, 32) != 0)
        return false;
    if (c->issuer[0] && strcmp(c->issuer, id->issuer) != 0)
        return false;
    if (c->san_dns[0]) {
        bool ok = false;
        for (unsigned i = 0; i < id->n_dns && !ok; i++)
            ok = strcasecmp(c->san_dns, id->dns[i]) == 0; /* DNS names are case-insensitive */
        if (!ok)
            return false;
    }
    if (c->san_uri[0]) {
        bool ok = false;
        for (unsigned i = 0; i < id->n_uri && !ok; i++)
            ok = strcmp(c->san_uri, id->uri[i]) == 0;
        if (!ok)
            return false;
    }
    return true;
}

const struct policy_client *policy_match(const struct policy *p, const struct tls_peer_id *id,
                                         const struct policy_client *prev)
{
    for (size_t i = prev ? (size_t)(prev - p->clients) + 1 : 0; i < p->n_clients; i++) {
        if (client_matches(&p->clients[i], id))
            return &p->clients[i];
    }
    return NULL;
}

bool policy_calling_ok(const struct policy_client *c, const char *ae)
{
    return ae_listed(c->calling, c->n_calling, c->any_calling, ae);
}

bool policy_called_ok(const struct policy_client *c, const char *ae)
{
    return ae_listed(c->called, c->n_called, c->any_called, ae);
}

const struct policy_client *policy_device(const struct policy *p, const char *ae)
{
    for (size_t i = 0; i < p->n_clients; i++) {
        const struct policy_client *c = &p->clients[i];
        if (c->has_return && ae_listed(c->calling, c->n_calling, false, ae))
            return c;
    }
    return NULL;
}
