#include "core_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cfgread.h"
#include "common/log.h"
#include "common/ul.h"
#include "net/tls_ctx.h"
#include "sop_registry.h"

static const char g_default_json[] =
    "{\n"
    "  \"ae_title\": \"DICOM_CORE\",\n"
    "  \"listen\": \"0.0.0.0:11112\",\n"
    "  \"http_listen\": \"127.0.0.1:9112\",\n"
    "  \"spool_dir\": \"/var/lib/dicom-core/spool\",\n"
    "  \"ack\": \"spool\",\n"
    "  \"backend\": { \"type\": \"file\", \"dir\": \"/var/lib/dicom-core/store\" }\n"
    "}\n";

const char *core_config_default_json(void)
{
    return g_default_json;
}

int cidr_parse(const char *s, struct cidr *out)
{
    char buf[80];
    int n = snprintf(buf, sizeof buf, "%s", s);
    if (n < 0 || (size_t)n >= sizeof buf)
        return ERR_CONFIG;
    char *slash = strchr(buf, '/');
    long prefix = -1;
    if (slash) {
        *slash = '\0';
        char *end;
        errno = 0;
        prefix = strtol(slash + 1, &end, 10);
        if (errno || *end || end == slash + 1 || prefix < 0)
            return ERR_CONFIG;
    }
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        if (prefix > 32)
            return ERR_CONFIG;
        out->prefix = prefix < 0 ? 32 : (unsigned)prefix;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        if (prefix > 128)
            return ERR_CONFIG;
        out->prefix = prefix < 0 ? 128 : (unsigned)prefix;
    } else {
        return ERR_CONFIG;
    }
    return 0;
}

static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

bool cidr_list_match(const struct cidr *list, size_t n, const struct sockaddr *addr)
{
    uint8_t a4[4], a6[16];
    bool have4 = false, have6 = false;
    if (addr->sa_family == AF_INET) {
        memcpy(a4, &((const struct sockaddr_in *)(const void *)addr)->sin_addr, 4);
        have4 = true;
    } else if (addr->sa_family == AF_INET6) {
        memcpy(a6, &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr, 16);
        have6 = true;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a6, mapped, 12) == 0) {
            memcpy(a4, a6 + 12, 4);
            have4 = true;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (list[i].family == AF_INET && have4 && prefix_eq(list[i].addr, a4, list[i].prefix))
            return true;
        if (list[i].family == AF_INET6 && have6 && prefix_eq(list[i].addr, a6, list[i].prefix))
            return true;
    }
    return false;
}

/* ---- the table ----------------------------------------------------------------------- */

#define CC struct core_config

static int conv_ae_title(void *base, void *dst, const char *s)
{
    (void)base;
    if (!s[0])
        return 0; /* "" keeps the default */
    return ul_ae_normalize((const uint8_t *)s, strnlen(s, 64), dst);
}

static int conv_ae(void *base, void *dst, const char *s)
{
    (void)base;
    return ul_ae_normalize((const uint8_t *)s, strnlen(s, 17), dst);
}

static int conv_ts(void *base, void *dst, const char *s)
{
    (void)base;
    const struct ts_info *t = ts_find(s);
    if (!t)
        return ERR_CONFIG;
    memcpy(dst, &t, sizeof t);
    return 0;
}

static int conv_uid(void *base, void *dst, const char *s)
{
    (void)base;
    if (!ds_uid_valid(s))
        return ERR_CONFIG;
    snprintf(dst, 65, "%s", s);
    return 0;
}

static int conv_cidr(void *base, void *dst, const char *s)
{
    (void)base;
    return cidr_parse(s, dst);
}

static void check_tls(void *base, void *ctx, const char *path, struct wbuf *errs)
{
    struct core_config *c = base;
    (void)ctx;
    c->tls.enabled = true;
    if (!c->tls.cert[0] || !c->tls.key[0])
        cfgread_problem(errs, path, "", "needs cert and key");
}

static void check_proxy(void *base, void *ctx, const char *path, struct wbuf *errs)
{
    (void)ctx;
    (void)path;
    (void)errs;
    ((struct core_config *)base)->proxy_protocol = true;
}

static const struct cfgread_key g_tls_keys[] = {
    CFGREAD_STR("cert", CC, tls.cert, NULL),
    CFGREAD_STR("key", CC, tls.key, NULL),
    CFGREAD_STR("client_ca", CC, tls.client_ca, NULL),
    CFGREAD_STR("crl", CC, tls.crl, NULL),
};
static const struct cfgread_table g_tls = CFGREAD_TABLE(g_tls_keys, false, check_tls);

static int conv_profile(void *base, void *dst, const char *s)
{
    (void)base;
    enum tls_profile p;
    if (tls_profile_parse(s, &p) < 0)
        return ERR_CONFIG;
    snprintf(dst, 32, "%s", s);
    return 0;
}

static void check_client_tls(void *base, void *ctx, const char *path, struct wbuf *errs)
{
    struct core_config *c = base;
    (void)ctx;
    c->client_tls.enabled = true;
    if (!c->client_tls.ca[0])
        cfgread_problem(errs, path, "ca", "required (the CA that signs the peers' certificates)");
    if (!c->client_tls.cert[0] != !c->client_tls.key[0])
        cfgread_problem(errs, path, "", "cert and key go together");
}

static const struct cfgread_key g_client_tls_keys[] = {
    CFGREAD_STR("cert", CC, client_tls.cert, NULL),
    CFGREAD_STR("key", CC, client_tls.key, NULL),
    CFGREAD_STR("ca", CC, client_tls.ca, NULL),
    CFGREAD_CONV("profile", CC, client_tls.profile, 32, conv_profile, "bcp195-nd",
                 "unknown profile"),
};
static const struct cfgread_table g_client_tls =
    CFGREAD_TABLE(g_client_tls_keys, false, check_client_tls);

#define CP struct core_peer

static void check_peer(void *base, void *ctx, const char *path, struct wbuf *errs)
{
    struct core_peer *p = base;
    (void)ctx;
    char ae[17];
    if (ul_ae_normalize((const uint8_t *)p->ae, strnlen(p->ae, 17), ae) < 0)
        cfgread_problem(errs, path, "", "the name must be an AE title (1-16 characters)");
    else
        memcpy(p->ae, ae, sizeof ae);
    if (!p->host[0])
        cfgread_problem(errs, path, "host", "required");
    if (p->port == 0)
        cfgread_problem(errs, path, "port", "required (1-65535)");
}

static const struct cfgread_key g_peer_keys[] = {
    CFGREAD_STR("host", CP, host, NULL),
    CFGREAD_U32("port", CP, port, 0, 65535, 0),
    CFGREAD_BOOL("tls", CP, tls, false),
    CFGREAD_STR("server_name", CP, server_name, NULL),
};
static const struct cfgread_table g_peer = CFGREAD_TABLE(g_peer_keys, true, check_peer);

#define CL struct core_client

static void check_client(void *base, void *ctx, const char *path, struct wbuf *errs)
{
    struct core_client *c = base;
    (void)ctx;
    c->grants.services = c->n_services ? 0 : GRANT_DEFAULT_SERVICES;
    for (size_t i = 0; i < c->n_services; i++) {
        uint32_t bit = grants_service_bit(c->services[i], strlen(c->services[i]));
        if (!bit)
            cfgread_problem(errs, path, "services",
                            "entries must be store, echo, find, get, move or commit");
        c->grants.services |= bit;
    }
    c->grants.scope = GRANT_SCOPE_NONE;
    if (c->read_scope[0] &&
        grants_scope_parse(c->read_scope, strlen(c->read_scope), &c->grants.scope) < 0)
        cfgread_problem(errs, path, "read_scope", "must be none, own, shared or all");
}

static int conv_word(void *base, void *dst, const char *s)
{
    (void)base;
    return snprintf(dst, 8, "%s", s) >= 8 ? ERR_CONFIG : 0;
}

static const struct cfgread_key g_client_keys[] = {
    CFGREAD_LIST("calling_ae", CL, calling, n_calling, conv_ae, 1, CFG_MAX_LIST,
                 "must be a non-empty array of AE titles", "entries must be AE titles",
                 .flags = CFGREAD_REQUIRED),
    CFGREAD_LIST("services", CL, services, n_services, conv_word, 0, 8,
                 "must be an array of service names",
                 "entries must be store, echo, find, get, move or commit"),
    CFGREAD_CONV("read_scope", CL, read_scope, 8, conv_word, "none",
                 "must be none, own, shared or all"),
};
static const struct cfgread_table g_client = CFGREAD_TABLE(g_client_keys, true, check_client);

static const struct cfgread_key g_proxy_keys[] = {
    CFGREAD_LIST("trusted", CC, proxy_trusted, n_proxy_trusted, conv_cidr, 1, CFG_MAX_LIST,
                 "must be a non-empty array of CIDRs", "entries must be CIDRs",
                 .flags = CFGREAD_REQUIRED),
};
static const struct cfgread_table g_proxy = CFGREAD_TABLE(g_proxy_keys, false, check_proxy);

/* The backends a "backend" object may name; each one's own keys are its backend's to read and
 * check (through the program's registry): the object is kept here as JSON text. */
static const struct cfgread_enum g_backends[] = {
    {"file", 0, NULL},
    {"aws", 1, NULL},
    {NULL, 0, NULL},
};
static const struct cfgread_enum g_checksums[] = {
    {"sha256", SPOOL_CHECKSUM_SHA256, NULL},
    {"crc64nvme", SPOOL_CHECKSUM_CRC64NVME, NULL},
    {NULL, 0, NULL},
};
static const struct cfgread_enum g_acks[] = {
    {"spool", SPOOL_ACK_SPOOL, NULL},
    {"s3", SPOOL_ACK_S3, NULL},
    {"healthimaging", SPOOL_ACK_HEALTHIMAGING, NULL},
    {NULL, 0, NULL},
};

static const struct cfgread_enum g_commit_points[] = {
    {"auto", 0, NULL},
    {"spool", 1, NULL},   /* COPY_SPOOL (spool/backend_commit.h) */
    {"stored", 2, NULL},  /* COPY_STORED: the file store, or S3 */
    {"s3", 2, NULL},
    {"healthimaging", 3, NULL}, /* COPY_IMPORTED */
    {NULL, 0, NULL},
};

static const struct cfgread_key g_commit_keys[] = {
    CFGREAD_ENUM("point", CC, commit.point, g_commit_points, 0, .env = "DICOM_CORE_COMMIT_POINT",
                 .flags = CFGREAD_EMPTY_KEEPS),
    CFGREAD_U32("max_refs", CC, commit.max_refs, 1, 50000, 5000),
    CFGREAD_U32("max_open", CC, commit.max_open, 1, 1000000, 10000),
    CFGREAD_U32("deadline_ms", CC, commit.deadline_ms, 100, 604800000u, 3600000,
                .env = "DICOM_CORE_COMMIT_DEADLINE_MS"),
    CFGREAD_U32("poll_initial_ms", CC, commit.poll_initial_ms, 10, 600000, 200),
    CFGREAD_U32("poll_max_ms", CC, commit.poll_max_ms, 10, 3600000, 10000),
    CFGREAD_U32("report_timeout_ms", CC, commit.report_timeout_ms, 100, 600000, 30000),
    CFGREAD_U32("retry_initial_ms", CC, commit.retry_initial_ms, 10, 3600000, 1000),
    CFGREAD_U32("retry_max_ms", CC, commit.retry_max_ms, 10, 86400000, 300000),
    CFGREAD_U32("report_deadline_ms", CC, commit.report_deadline_ms, 1000, 2592000000u, 86400000),
    CFGREAD_U32("lease_ms", CC, commit.lease_ms, 1000, 3600000, 60000),
    CFGREAD_U32("sweep_ms", CC, commit.sweep_ms, 100, 3600000, 30000),
    CFGREAD_U32("remember_s", CC, commit.remember_s, 60, 31536000, 604800),
};
static const struct cfgread_table g_commit = CFGREAD_TABLE(g_commit_keys, true, NULL);

/* DICOM_CORE_<KEY> overrides the scalar keys operators set most (env wins over the file). */
static const struct cfgread_key g_keys[] = {
    CFGREAD_CONV("ae_title", CC, ae_title, 64, conv_ae_title, "DICOM_CORE",
                 "must be 1-16 characters without backslash or control chars",
                 .env = "DICOM_CORE_AE_TITLE"),
    CFGREAD_BOOL("check_called_ae", CC, check_called_ae, true),
    CFGREAD_LIST("calling_ae_allow", CC, calling_allow, n_calling_allow, conv_ae, 0,
                 CFG_MAX_LIST, "must be an array of AE titles",
                 "entries must be AE titles (1-16 characters, no backslash or control "
                 "characters), at most 64 of them"),
    CFGREAD_STR("listen", CC, listen, "0.0.0.0:11112", .env = "DICOM_CORE_LISTEN"),
    CFGREAD_STR("http_listen", CC, http_listen, "127.0.0.1:9112", .env = "DICOM_CORE_HTTP_LISTEN"),
    CFGREAD_STR("spool_dir", CC, spool_dir, "/var/lib/dicom-core/spool",
                .env = "DICOM_CORE_SPOOL_DIR"),
    CFGREAD_ENUM("ack", CC, ack, g_acks, SPOOL_ACK_SPOOL, .env = "DICOM_CORE_ACK",
                 .flags = CFGREAD_EMPTY_KEEPS),
    CFGREAD_BOOL("fsync", CC, fsync, true, .env = "DICOM_CORE_FSYNC"),
    CFGREAD_ENUM("spool_checksum", CC, spool_checksum, g_checksums, SPOOL_CHECKSUM_SHA256),
    CFGREAD_U64("min_free_bytes", CC, min_free_bytes, 0, UINT64_MAX / 2, 1ull << 30,
                .env = "DICOM_CORE_MIN_FREE_BYTES"),
    CFGREAD_U32("max_pdu", CC, max_pdu, 4096, 16u << 20, 262144),
    CFGREAD_U32("max_associations", CC, max_associations, 1, 100000, 64,
                .env = "DICOM_CORE_MAX_ASSOCIATIONS"),
    CFGREAD_U32("preassoc_max", CC, preassoc_max, 1, 100000, 256),
    CFGREAD_U32("preassoc_per_source", CC, preassoc_per_source, 1, 100000, 32),
    CFGREAD_U32("artim_ms", CC, artim_ms, 100, 600000, 30000),
    CFGREAD_U32("idle_ms", CC, idle_ms, 100, 86400000, 300000),
    CFGREAD_U32("drain_ms", CC, drain_ms, 0, 3600000, 30000),
    CFGREAD_BOOL("accept_retired_sop_classes", CC, accept_retired_sops, true),
    CFGREAD_STR("log_level", CC, log_level, "info", .env = "DICOM_CORE_LOG_LEVEL"),
    CFGREAD_LIST("transfer_syntaxes", CC, ts, n_ts, conv_ts, 0, ARRAY_LEN(((CC *)0)->ts),
                 "must be an array of UIDs in preference order",
                 "unknown or unsupported transfer syntax UID (big endian is not supported)"),
    CFGREAD_LIST("private_sop_classes", CC, private_sops, n_private_sops, conv_uid, 0,
                 CFG_MAX_LIST, "must be an array of UIDs", "entries must be valid UIDs (max 64)"),
    CFGREAD_OBJ("proxy_protocol", &g_proxy,
                .msg = "must be {\"trusted\": [\"CIDR\", ...]} (non-empty)"),
    CFGREAD_OBJ("tls", &g_tls),
    CFGREAD_OBJ("client_tls", &g_client_tls),
    CFGREAD_TEXT("audit", CC, audit_json),
    CFGREAD_MAP("ae_peers", CC, peers, n_peers, CP, ae, &g_peer, 0, 1024,
                "must be an object of at most 1024 AE titles", "AE titles are 1-16 characters"),
    CFGREAD_ARRAY("clients", CC, clients, n_clients, CL, &g_client, 0, 1024,
                  "must be an array of at most 1024 entries"),
    CFGREAD_OBJ("commit", &g_commit),
    CFGREAD_VARIANT("backend", CC, backend, g_backends, backend_json, 0,
                    "must be an object with a \"type\""),
};
static const struct cfgread_table g_table = CFGREAD_TABLE(g_keys, false, NULL);

static void set_defaults(struct core_config *c)
{
    memset(c, 0, sizeof *c);
    cfgread_defaults(&g_table, c);
    for (size_t i = 0; i < ts_default_count() && i < ARRAY_LEN(c->ts); i++)
        c->ts[c->n_ts++] = ts_default_at(i);
}

static void problem(struct wbuf *errs, const char *key, const char *msg)
{
    cfgread_problem(errs, "", key, msg);
}

int core_config_load(const char *path, struct core_config *cfg, struct wbuf *errs)
{
    set_defaults(cfg);
    size_t start = errs->len;
    size_t len = 0;
    char *text = path ? cfgread_file(path, 1u << 20, &len, errs) : NULL;
    if (path && !text)
        return ERR_CONFIG;
    struct cfgread_job job = {.table = &g_table, .base = cfg, .name = path ? path : "default",
                              .prefix = ""};
    int rc = cfgread_text(&job, text ? text : g_default_json,
                          text ? len : sizeof g_default_json - 1, errs);
    free(text);
    if (rc == ERR_MALFORMED)
        return ERR_CONFIG;
    if (log_level_parse(cfg->log_level) < 0)
        problem(errs, "log_level", "must be debug, info, warn or error");
    if (cfg->n_ts == 0)
        problem(errs, "transfer_syntaxes", "must list at least one transfer syntax");
    if (!cfg->spool_dir[0] || cfg->spool_dir[0] != '/')
        problem(errs, "spool_dir", "must be an absolute path");
    for (size_t i = 0; g_backends[i].name; i++) {
        if (g_backends[i].value == cfg->backend)
            snprintf(cfg->backend_type, sizeof cfg->backend_type, "%s", g_backends[i].name);
    }
    if (cfg->commit.point == 3 && strcmp(cfg->backend_type, "aws") != 0)
        problem(errs, "commit.point", "\"healthimaging\" needs the aws backend");
    if (cfg->commit.poll_max_ms < cfg->commit.poll_initial_ms ||
        cfg->commit.retry_max_ms < cfg->commit.retry_initial_ms)
        problem(errs, "commit", "a *_max_ms is below its *_initial_ms");
    if (cfg->commit.report_timeout_ms * 2 > cfg->commit.lease_ms)
        problem(errs, "commit.lease_ms", "must be at least twice report_timeout_ms");
    for (size_t i = 0; i < cfg->n_private_sops; i++) {
        if (sop_registry_find(cfg->private_sops[i]))
            problem(errs, "private_sop_classes", "lists a standard storage SOP class");
    }
    if (errs->err)
        return ERR_CONFIG;
    return errs->len > start ? ERR_CONFIG : 0;
}

void core_config_cleanup(struct core_config *cfg)
{
    FREE_NULL(cfg->backend_json);
    FREE_NULL(cfg->audit_json);
    FREE_NULL(cfg->peers);
    FREE_NULL(cfg->clients);
}

void core_config_grants(const struct core_config *cfg, const char *calling, struct grants *out)
{
    out->services = GRANT_DEFAULT_SERVICES;
    out->scope = GRANT_SCOPE_NONE;
    for (size_t i = 0; i < cfg->n_clients; i++) {
        for (size_t k = 0; k < cfg->clients[i].n_calling; k++) {
            if (strcmp(cfg->clients[i].calling[k], calling) == 0) {
                *out = cfg->clients[i].grants;
                return;
            }
        }
    }
}

const struct core_peer *core_config_peer(const struct core_config *cfg, const char *ae)
{
    for (size_t i = 0; i < cfg->n_peers; i++) {
        if (strcmp(cfg->peers[i].ae, ae) == 0)
            return &cfg->peers[i];
    }
    return NULL;
}
