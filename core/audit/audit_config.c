#include "audit_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_hash.h"
#include "common/cfgread.h"
#include "net/tls_ctx.h"

void audit_config_defaults(struct audit_config *c)
{
    memset(c, 0, sizeof *c);
    c->queue_max_bytes = 64u * 1024u * 1024u;
    c->queue_max_messages = 100000;
    c->on_full = AQ_DROP_OLDEST;
    c->retry_min_ms = 500;
    c->retry_max_ms = 30000;
    c->connect_timeout_ms = 10000;
    c->ack_grace_ms = 1000;
}

static void problem(struct wbuf *errs, const char *ctx, const char *key, const char *msg)
{
    cfgread_problem(errs, ctx, key, msg);
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static bool name_ok(const char *s)
{
    if (!s[0] || s[0] == '.')
        return false;
    for (; *s; s++) {
        if (!name_char(*s))
            return false;
    }
    return true;
}

#define RC struct audit_repo_config

static const struct cfgread_enum g_transports[] = {
    {"tls", AUDIT_TRANSPORT_TLS, NULL},
    {"udp", AUDIT_TRANSPORT_UDP, NULL},
    {NULL, 0, NULL},
};

/* One repository: defaults that depend on its transport, the TLS rules, its name. */
static void check_repo(void *base, void *ctx, const char *path, struct wbuf *errs)
{
    struct audit_repo_config *r = base;
    (void)ctx;
    if (!r->host[0])
        problem(errs, path, "host", "is required");
    if (r->port == 0)
        r->port = r->transport == AUDIT_TRANSPORT_TLS ? 6514 : 514;
    if (r->transport == AUDIT_TRANSPORT_TLS) {
        enum tls_profile p;
        if (!r->ca[0])
            problem(errs, path, "ca", "is required for transport tls (the repository is verified)");
        if (!r->cert[0] != !r->key[0])
            problem(errs, path, "cert", "cert and key go together");
        if (tls_profile_parse(r->tls_profile, &p) < 0)
            problem(errs, path, "tls_profile", "is not a known profile");
        if (!r->server_name[0])
            memcpy(r->server_name, r->host, sizeof r->server_name); /* same size */
    } else if (r->ca[0] || r->cert[0] || r->key[0] || r->server_name[0]) {
        problem(errs, path, "transport", "udp takes no TLS settings (ca, cert, key, server_name)");
    }
    if (!r->name[0]) {
        char name[sizeof r->name];
        snprintf(name, sizeof name, "%s-%.40s-%u",
                 r->transport == AUDIT_TRANSPORT_TLS ? "tls" : "udp", r->host, r->port);
        memcpy(r->name, name, sizeof name);
        for (char *p = r->name; *p; p++) {
            if (!name_char(*p))
                *p = '_';
        }
    }
    if (!name_ok(r->name))
        problem(errs, path, "name", "use letters, digits, '.', '_' or '-' (not first '.')");
}

static const struct cfgread_key g_repo_keys[] = {
    CFGREAD_ENUM("transport", RC, transport, g_transports, AUDIT_TRANSPORT_TLS),
    CFGREAD_STR("host", RC, host, NULL),
    CFGREAD_U32("port", RC, port, 1, 65535, 0),
    CFGREAD_STR("ca", RC, ca, NULL),
    CFGREAD_STR("cert", RC, cert, NULL),
    CFGREAD_STR("key", RC, key, NULL),
    CFGREAD_STR("server_name", RC, server_name, NULL),
    CFGREAD_STR("name", RC, name, NULL),
    CFGREAD_STR("tls_profile", RC, tls_profile, "bcp195-nd"),
};
static const struct cfgread_table g_repo = CFGREAD_TABLE(g_repo_keys, true, check_repo);

#define AC struct audit_config

/* The whole object: repositories into their fixed array, the choices into their enums, and the
 * rules across keys. */
static void check_audit(void *base, void *ctx, const char *path, struct wbuf *errs)
{
    struct audit_config *c = base;
    (void)ctx;
    c->n_repos = 0;
    for (size_t i = 0; i < c->n_repo_list && i < AUDIT_MAX_REPOS; i++)
        c->repos[c->n_repos++] = c->repo_list[i];
    free(c->repo_list);
    c->repo_list = NULL;
    c->n_repo_list = 0;
    for (size_t i = 0; i < c->n_repos; i++) {
        for (size_t k = 0; k < i; k++) {
            if (strcmp(c->repos[i].name, c->repos[k].name) == 0)
                problem(errs, path, "repositories", "two repositories have one name: set name");
        }
    }
    if (!c->queue_dir[0])
        problem(errs, path, "queue_dir", "is required (one directory per program)");
    if (strcmp(c->on_full_s, "fail_closed") == 0)
        c->on_full = AQ_FAIL_CLOSED;
    else if (strcmp(c->on_full_s, "drop_oldest") == 0)
        c->on_full = AQ_DROP_OLDEST;
    else
        problem(errs, path, "on_full", "must be \"drop_oldest\" or \"fail_closed\"");
    if (strcmp(c->patient_id_s, "include") == 0)
        c->patient_include = true;
    else if (strcmp(c->patient_id_s, "hash") != 0)
        problem(errs, path, "patient_id", "must be \"hash\" or \"include\"");
    if (!c->patient_include && !c->hash_key_file[0])
        problem(errs, path, "hash_key_file", "is required unless patient_id is \"include\"");
    if (c->retry_max_ms < c->retry_min_ms)
        problem(errs, path, "retry_max_ms", "must not be below retry_min_ms");
}

static const struct cfgread_key g_keys[] = {
    CFGREAD_BOOL("enabled", AC, enabled, true),
    CFGREAD_ARRAY("repositories", AC, repo_list, n_repo_list, RC, &g_repo, 1, AUDIT_MAX_REPOS,
                  "must be an array of 1 repository or more, at most 4", .flags = CFGREAD_REQUIRED),
    CFGREAD_STR("queue_dir", AC, queue_dir, NULL),
    CFGREAD_U64("queue_max_bytes", AC, queue_max_bytes, AQ_MIN_BYTES, UINT64_C(16) << 30,
                64u * 1024u * 1024u),
    CFGREAD_U64("queue_max_messages", AC, queue_max_messages, 1, UINT64_C(100000000), 100000),
    CFGREAD_STR("on_full", AC, on_full_s, "drop_oldest"),
    CFGREAD_STR("patient_id", AC, patient_id_s, "hash"),
    CFGREAD_STR("hash_key_file", AC, hash_key_file, NULL),
    CFGREAD_STR("source_id", AC, source_id, NULL),
    CFGREAD_STR("enterprise_site_id", AC, enterprise_site_id, NULL),
    CFGREAD_STR("hostname", AC, hostname, NULL),
    CFGREAD_U32("retry_min_ms", AC, retry_min_ms, 10, 600000, 500),
    CFGREAD_U32("retry_max_ms", AC, retry_max_ms, 10, 3600000, 30000),
    CFGREAD_U32("connect_timeout_ms", AC, connect_timeout_ms, 100, 600000, 10000),
    CFGREAD_U32("ack_grace_ms", AC, ack_grace_ms, 0, 60000, 1000),
};
static const struct cfgread_table g_table = CFGREAD_TABLE(g_keys, true, check_audit);

int audit_config_parse(const char *json, struct audit_config *c, struct wbuf *errs)
{
    if (!json)
        return 0;
    cfgread_defaults(&g_table, c);
    c->repo_list = NULL;
    c->n_repo_list = 0;
    struct cfgread_job job = {.table = &g_table, .base = c, .name = "audit", .prefix = "audit"};
    int rc = cfgread_text(&job, json, strlen(json), errs);
    free(c->repo_list); /* only left when the array itself was refused */
    c->repo_list = NULL;
    c->n_repo_list = 0;
    return rc < 0 ? ERR_CONFIG : 0;
}

static void check_file(struct wbuf *errs, const char *ctx, const char *key, const char *path)
{
    if (path[0] && access(path, R_OK) < 0) {
        char m[AUDIT_PATH_MAX + 64];
        snprintf(m, sizeof m, "cannot read %s: %s", path, strerror(errno));
        problem(errs, ctx, key, m);
    }
}

int audit_config_check(const struct audit_config *c, struct wbuf *errs)
{
    size_t before = errs->len;
    if (!c->enabled)
        return 0;
    char err[AUDIT_PATH_MAX + 128];
    if (!c->patient_include) {
        uint8_t key[AUDIT_KEY_MAX];
        size_t klen;
        if (audit_key_load(c->hash_key_file, key, &klen, err, sizeof err) < 0)
            problem(errs, "audit", "hash_key_file", err);
        memset(key, 0, sizeof key);
    }
    for (size_t i = 0; i < c->n_repos; i++) {
        const struct audit_repo_config *r = &c->repos[i];
        char ctx[48];
        snprintf(ctx, sizeof ctx, "audit.repositories[%zu]", i);
        if (r->transport != AUDIT_TRANSPORT_TLS)
            continue;
        check_file(errs, ctx, "ca", r->ca);
        check_file(errs, ctx, "key", r->key);
        if (r->cert[0] && tls_check_cert_file(r->cert, NULL, err, sizeof err) < 0)
            problem(errs, ctx, "cert", err);
    }
    struct stat st;
    if (stat(c->queue_dir, &st) == 0 && !S_ISDIR(st.st_mode))
        problem(errs, "audit", "queue_dir", "exists and is not a directory");
    return errs->len > before ? ERR_CONFIG : 0;
}
