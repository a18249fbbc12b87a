#include "edge_config.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "jcfg.h"
#include "net/addr.h"

#define DEFAULT_PATH "/etc/dicom-edge/edge.json"

static void defaults(struct edge_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen, sizeof c->listen, "0.0.0.0:2762");
    snprintf(c->http_listen, sizeof c->http_listen, "127.0.0.1:9111");
    snprintf(c->tls.cert, sizeof c->tls.cert, "/etc/dicom-edge/server.crt");
    snprintf(c->tls.key, sizeof c->tls.key, "/etc/dicom-edge/server.key");
    snprintf(c->tls.client_ca, sizeof c->tls.client_ca, "/etc/dicom-edge/client-ca.crt");
    c->tls.crl_mode = TLS_CRL_LEAF;
    c->tls.profile = TLS_PROFILE_BCP195_ND;
    snprintf(c->policy, sizeof c->policy, "policy.json");
    snprintf(c->log_level, sizeof c->log_level, "info");
    c->max_connections = 4096;
    c->per_source_per_minute = 600;
    c->handshake_ms = 10000;
    c->assoc_rq_ms = 10000;
    c->connect_ms = 10000;
    c->idle_ms = 300000;
    c->drain_ms = 30000;
    c->max_pdu = 16u * 1024u * 1024u;
    c->high_water = 1024u * 1024u;
    c->low_water = 256u * 1024u;
    c->keepalive_s = 60;
}

static void env_str(const char *name, char *dst, size_t cap, struct wbuf *errs)
{
    const char *v = getenv(name);
    if (!v)
        return;
    int n = snprintf(dst, cap, "%s", v);
    if (n < 0 || (size_t)n >= cap)
        jcfg_problem(errs, "", name, "too long");
}

static void parse(const cJSON *root, struct edge_config *c, struct wbuf *errs)
{
    jcfg_str(root, "", "listen", c->listen, sizeof c->listen, errs);
    jcfg_str(root, "", "http_listen", c->http_listen, sizeof c->http_listen, errs);
    jcfg_str(root, "", "policy", c->policy, sizeof c->policy, errs);
    jcfg_str(root, "", "log_level", c->log_level, sizeof c->log_level, errs);
    jcfg_str(root, "", "user", c->user, sizeof c->user, errs);
    jcfg_str(root, "", "group", c->group, sizeof c->group, errs);
    const cJSON *tls = cJSON_GetObjectItemCaseSensitive(root, "tls");
    if (tls && !cJSON_IsObject(tls)) {
        jcfg_problem(errs, "", "tls", "must be an object");
    } else if (tls) {
        jcfg_str(tls, "tls", "cert", c->tls.cert, sizeof c->tls.cert, errs);
        jcfg_str(tls, "tls", "key", c->tls.key, sizeof c->tls.key, errs);
        jcfg_str(tls, "tls", "client_ca", c->tls.client_ca, sizeof c->tls.client_ca, errs);
        jcfg_str(tls, "tls", "crl", c->tls.crl, sizeof c->tls.crl, errs);
        char s[32] = "";
        jcfg_str(tls, "tls", "profile", s, sizeof s, errs);
        if (s[0] && tls_profile_parse(s, &c->tls.profile) < 0)
            jcfg_problem(errs, "tls", "profile",
                         "must be \"bcp195-nd\", \"bcp195\", \"bcp195-ext\" or \"rfc9325\"");
        s[0] = '\0';
        jcfg_str(tls, "tls", "crl_check", s, sizeof s, errs);
        if (strcmp(s, "chain") == 0)
            c->tls.crl_mode = TLS_CRL_CHAIN;
        else if (s[0] && strcmp(s, "leaf") != 0)
            jcfg_problem(errs, "tls", "crl_check", "must be \"leaf\" or \"chain\"");
    }
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(root, "limits");
    if (lim && !cJSON_IsObject(lim)) {
        jcfg_problem(errs, "", "limits", "must be an object");
        lim = NULL;
    }
    const cJSON *o = lim ? lim : root; /* limits may sit in "limits" or at the top */
    const char *ctx = lim ? "limits" : "";
    jcfg_u32(o, ctx, "max_connections", &c->max_connections, 1, 1000000, errs);
    jcfg_u32(o, ctx, "per_source_per_minute", &c->per_source_per_minute, 0, 1000000, errs);
    jcfg_u32(o, ctx, "handshake_ms", &c->handshake_ms, 100, 600000, errs);
    jcfg_u32(o, ctx, "assoc_rq_ms", &c->assoc_rq_ms, 100, 600000, errs);
    jcfg_u32(o, ctx, "connect_ms", &c->connect_ms, 100, 600000, errs);
    jcfg_u32(o, ctx, "idle_ms", &c->idle_ms, 100, 86400000, errs);
    jcfg_u32(o, ctx, "drain_ms", &c->drain_ms, 0, 3600000, errs);
    jcfg_u32(o, ctx, "max_pdu", &c->max_pdu, 4096, 128u * 1024u * 1024u, errs);
    jcfg_u32(o, ctx, "high_water", &c->high_water, 16384, 64u * 1024u * 1024u, errs);
    jcfg_u32(o, ctx, "low_water", &c->low_water, 0, 64u * 1024u * 1024u, errs);
    jcfg_u32(o, ctx, "keepalive_s", &c->keepalive_s, 0, 7200, errs);
}

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
        jcfg_problem(errs, "", "policy", "path too long");
        return;
    }
    memcpy(c->policy, buf, (size_t)n + 1);
}

int edge_config_load(const char *path, struct edge_config *c, struct wbuf *errs)
{
    defaults(c);
    size_t before = errs->len;
    const char *file = path ? path : DEFAULT_PATH;
    char *text = jcfg_read_file(file, 1024u * 1024u, errs);
    if (text) {
        cJSON *root = cJSON_Parse(text);
        if (!root || !cJSON_IsObject(root))
            wbuf_printf(errs, "%s: not a JSON object\n", file);
        else
            parse(root, c, errs);
        cJSON_Delete(root);
        free(text);
    }
    env_str("DICOM_EDGE_LISTEN", c->listen, sizeof c->listen, errs);
    env_str("DICOM_EDGE_HTTP_LISTEN", c->http_listen, sizeof c->http_listen, errs);
    env_str("DICOM_EDGE_POLICY", c->policy, sizeof c->policy, errs);
    env_str("DICOM_EDGE_LOG_LEVEL", c->log_level, sizeof c->log_level, errs);
    resolve_policy(c, file, errs);

    struct sockaddr_storage ss;
    if (addr_parse(c->listen, &ss) < 0)
        jcfg_problem(errs, "", "listen", "must be a numeric host:port");
    if (c->http_listen[0] && addr_parse(c->http_listen, &ss) < 0)
        jcfg_problem(errs, "", "http_listen", "must be a numeric host:port or \"\"");
    if (log_level_parse(c->log_level) < 0)
        jcfg_problem(errs, "", "log_level", "must be debug, info, warn or error");
    if (!c->tls.cert[0] || !c->tls.key[0] || !c->tls.client_ca[0])
        jcfg_problem(errs, "", "tls", "needs cert, key and client_ca (mutual TLS is required)");
    if (c->low_water >= c->high_water)
        jcfg_problem(errs, "limits", "low_water", "must be below high_water");
    if (c->group[0] && !c->user[0])
        jcfg_problem(errs, "", "group", "needs user");
    if (errs->err)
        return ERR_NOMEM;
    return errs->len > before ? ERR_CONFIG : 0;
}
