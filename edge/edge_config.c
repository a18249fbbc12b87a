#include "edge_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cfgread.h"
#include "common/log.h"
#include "net/addr.h"

#define DEFAULT_PATH "/etc/dicom-edge/edge.json"

#define EC struct edge_config

static int conv_profile(void *base, void *dst, const char *s)
{
    (void)base;
    return s[0] ? tls_profile_parse(s, dst) : 0; /* "" keeps the default */
}

static const struct cfgread_enum g_crl_modes[] = {
    {"leaf", TLS_CRL_LEAF, NULL},
    {"chain", TLS_CRL_CHAIN, NULL},
    {NULL, 0, NULL},
};

static const struct cfgread_key g_tls_keys[] = {
    CFGREAD_STR("cert", EC, tls.cert, "/etc/dicom-edge/server.crt"),
    CFGREAD_STR("key", EC, tls.key, "/etc/dicom-edge/server.key"),
    CFGREAD_STR("client_ca", EC, tls.client_ca, "/etc/dicom-edge/client-ca.crt"),
    CFGREAD_STR("crl", EC, tls.crl, NULL),
    CFGREAD_CONV("profile", EC, tls.profile, 32, conv_profile, "bcp195-nd",
                 "must be \"bcp195-nd\", \"bcp195\", \"bcp195-ext\" or \"rfc9325\""),
    CFGREAD_ENUM("crl_check", EC, tls.crl_mode, g_crl_modes, TLS_CRL_LEAF,
                 .flags = CFGREAD_EMPTY_KEEPS),
};
static const struct cfgread_table g_tls = CFGREAD_TABLE(g_tls_keys, false, NULL);

static const struct cfgread_key g_limit_keys[] = {
    CFGREAD_U32("max_connections", EC, max_connections, 1, 1000000, 4096),
    CFGREAD_U32("per_source_per_minute", EC, per_source_per_minute, 0, 1000000, 600),
    CFGREAD_U32("preassoc_max", EC, preassoc_max, 1, 1000000, 256),
    CFGREAD_U32("preassoc_per_source", EC, preassoc_per_source, 1, 1000000, 32),
    CFGREAD_U32("handshake_ms", EC, handshake_ms, 100, 600000, 10000),
    CFGREAD_U32("assoc_rq_ms", EC, assoc_rq_ms, 100, 600000, 10000),
    CFGREAD_U32("connect_ms", EC, connect_ms, 100, 600000, 10000),
    CFGREAD_U32("idle_ms", EC, idle_ms, 100, 86400000, 300000),
    CFGREAD_U32("drain_ms", EC, drain_ms, 0, 3600000, 30000),
    CFGREAD_U32("max_pdu", EC, max_pdu, 4096, 128u * 1024u * 1024u, 16u * 1024u * 1024u),
    CFGREAD_U32("high_water", EC, high_water, 16384, 64u * 1024u * 1024u, 1024u * 1024u),
    CFGREAD_U32("low_water", EC, low_water, 0, 64u * 1024u * 1024u, 256u * 1024u),
    CFGREAD_U32("keepalive_s", EC, keepalive_s, 0, 7200, 60),
};
static const struct cfgread_table g_limits = CFGREAD_TABLE(g_limit_keys, false, NULL);

static void check_reverse(void *base, void *ctx, const char *path, struct wbuf *errs)
{
    struct edge_config *c = base;
    (void)ctx;
    c->reverse.enabled = true;
    struct sockaddr_storage ss;
    if (addr_parse(c->reverse.listen, &ss) < 0)
        cfgread_problem(errs, path, "listen", "must be a numeric host:port");
    if (!c->reverse.tls.client_ca[0])
        cfgread_problem(errs, path, "tls.client_ca",
                        "required: the infrastructure CA that signs the core's client "
                        "certificate (and nothing else: never the modality CA)");
}

static int conv_cn(void *base, void *dst, const char *s)
{
    (void)base;
    size_t n = strnlen(s, 257);
    if (n == 0 || n >= 257)
        return ERR_CONFIG;
    memcpy(dst, s, n + 1);
    return 0;
}

static const struct cfgread_key g_reverse_tls_keys[] = {
    CFGREAD_STR("cert", EC, reverse.tls.cert, NULL),
    CFGREAD_STR("key", EC, reverse.tls.key, NULL),
    CFGREAD_STR("client_ca", EC, reverse.tls.client_ca, NULL),
    CFGREAD_STR("crl", EC, reverse.tls.crl, NULL),
    CFGREAD_CONV("profile", EC, reverse.tls.profile, 32, conv_profile, "bcp195-nd",
                 "must be \"bcp195-nd\", \"bcp195\", \"bcp195-ext\" or \"rfc9325\""),
    CFGREAD_ENUM("crl_check", EC, reverse.tls.crl_mode, g_crl_modes, TLS_CRL_LEAF,
                 .flags = CFGREAD_EMPTY_KEEPS),
};
static const struct cfgread_table g_reverse_tls = CFGREAD_TABLE(g_reverse_tls_keys, true, NULL);

static const struct cfgread_key g_reverse_keys[] = {
    CFGREAD_STR("listen", EC, reverse.listen, "0.0.0.0:2763"),
    CFGREAD_OBJ("tls", &g_reverse_tls),
    CFGREAD_LIST("allow_cn", EC, reverse.allow_cn, reverse.n_allow_cn, conv_cn, 0,
                 EDGE_REVERSE_MAX_CN, "must be an array of at most 16 subject CNs",
                 "must be a subject CN of 1-256 characters"),
    CFGREAD_U32("max_associations", EC, reverse.max_associations, 1, 100000, 64),
    CFGREAD_U32("max_per_device", EC, reverse.max_per_device, 1, 100000, 4),
};
static const struct cfgread_table g_reverse = CFGREAD_TABLE(g_reverse_keys, true, check_reverse);

static const struct cfgread_key g_keys[] = {
    CFGREAD_STR("listen", EC, listen, "0.0.0.0:2762", .env = "DICOM_EDGE_LISTEN"),
    CFGREAD_STR("http_listen", EC, http_listen, "127.0.0.1:9111", .env = "DICOM_EDGE_HTTP_LISTEN"),
    CFGREAD_STR("policy", EC, policy, "policy.json", .env = "DICOM_EDGE_POLICY"),
    CFGREAD_STR("log_level", EC, log_level, "info", .env = "DICOM_EDGE_LOG_LEVEL"),
    CFGREAD_STR("user", EC, user, NULL),
    CFGREAD_STR("group", EC, group, NULL),
    CFGREAD_OBJ("tls", &g_tls),
    /* the limits may sit at the top or in "limits" (which wins) */
    CFGREAD_INLINE(&g_limits),
    CFGREAD_OBJ("limits", &g_limits),
    CFGREAD_OBJ("reverse", &g_reverse),
    CFGREAD_TEXT("audit", EC, audit_json), /* read by audit_config_parse, below */
};
static const struct cfgread_table g_table = CFGREAD_TABLE(g_keys, false, NULL);

/* "policy.json" next to "/etc/x/edge.json" is "/etc/x/policy.json". */
static void resolve_policy(struct edge_config *c, const char *cfg_path, struct wbuf *errs)
{
    if (c->policy[0] == '/' || !cfg_path)
        return;
    const char *slash = strrchr(cfg_path, '/');
    if (!slash)
        return;
    char buf[EDGE_PATH_MAX];
    int n = snprintf(buf, sizeof buf, "%.*s/%s", (int)(slash - cfg_path), cfg_path, c->policy);
    if (n < 0 || (size_t)n >= sizeof buf) {
        cfgread_problem(errs, "", "policy", "path too long");
        return;
    }
    memcpy(c->policy, buf, (size_t)n + 1);
}

/* The "audit" object's text (c->audit_json, freed here) through the audit library's reader. */
static void load_audit(struct edge_config *c, struct wbuf *errs)
{
    if (audit_config_parse(c->audit_json, &c->audit, errs) < 0 && errs->len == 0)
        cfgread_problem(errs, "", "audit", "invalid");
    c->audit_digest = 1469598103934665603ull; /* FNV-1a */
    for (const char *q = c->audit_json; q && *q; q++)
        c->audit_digest = (c->audit_digest ^ (uint8_t)*q) * 1099511628211ull;
    free(c->audit_json);
    c->audit_json = NULL;
}

int edge_config_load(const char *path, struct edge_config *c, struct wbuf *errs)
{
    memset(c, 0, sizeof *c);
    cfgread_defaults(&g_table, c);
    audit_config_defaults(&c->audit);
    size_t before = errs->len;
    const char *file = path ? path : DEFAULT_PATH;
    size_t len = 0;
    char *text = cfgread_file(file, 1024u * 1024u, &len, errs);
    if (!text)
        return errs->err ? ERR_NOMEM : ERR_CONFIG;
    struct cfgread_job job = {.table = &g_table, .base = c, .name = file, .prefix = ""};
    int rc = cfgread_text(&job, text, len, errs);
    free(text);
    load_audit(c, errs);
    if (rc == ERR_MALFORMED || rc == ERR_NOMEM)
        return rc == ERR_NOMEM ? ERR_NOMEM : ERR_CONFIG;
    resolve_policy(c, file, errs);
    if (c->reverse.enabled && !c->reverse.tls.cert[0]) /* the edge's own server certificate */
        memcpy(c->reverse.tls.cert, c->tls.cert, sizeof c->reverse.tls.cert);
    if (c->reverse.enabled && !c->reverse.tls.key[0])
        memcpy(c->reverse.tls.key, c->tls.key, sizeof c->reverse.tls.key);
    if (c->reverse.enabled && strcmp(c->reverse.listen, c->listen) == 0)
        cfgread_problem(errs, "reverse", "listen", "must differ from listen");

    struct sockaddr_storage ss;
    if (addr_parse(c->listen, &ss) < 0)
        cfgread_problem(errs, "", "listen", "must be a numeric host:port");
    if (c->http_listen[0] && addr_parse(c->http_listen, &ss) < 0)
        cfgread_problem(errs, "", "http_listen", "must be a numeric host:port or \"\"");
    if (log_level_parse(c->log_level) < 0)
        cfgread_problem(errs, "", "log_level", "must be debug, info, warn or error");
    if (!c->tls.cert[0] || !c->tls.key[0] || !c->tls.client_ca[0])
        cfgread_problem(errs, "", "tls", "needs cert, key and client_ca (mutual TLS is required)");
    if (c->low_water >= c->high_water)
        cfgread_problem(errs, "limits", "low_water", "must be below high_water");
    if (c->group[0] && !c->user[0])
        cfgread_problem(errs, "", "group", "needs user");
    if (errs->err)
        return ERR_NOMEM;
    return errs->len > before ? ERR_CONFIG : 0;
}
