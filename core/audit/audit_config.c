#include "audit_config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_hash.h"
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
    wbuf_printf(errs, "audit%s%s%s: %s\n", ctx, key[0] ? "." : "", key, msg);
}

static const cJSON *get(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static void str(const cJSON *obj, const char *ctx, const char *key, char *dst, size_t cap,
                struct wbuf *errs)
{
    const cJSON *v = get(obj, key);
    if (!v)
        return;
    if (!cJSON_IsString(v) || !v->valuestring) {
        problem(errs, ctx, key, "must be a string");
        return;
    }
    size_t n = strlen(v->valuestring);
    if (n >= cap) {
        problem(errs, ctx, key, "is too long");
        return;
    }
    memcpy(dst, v->valuestring, n + 1);
}

static void num(const cJSON *obj, const char *ctx, const char *key, uint64_t *dst, uint64_t min,
                uint64_t max, struct wbuf *errs)
{
    const cJSON *v = get(obj, key);
    if (!v)
        return;
    if (!cJSON_IsNumber(v) || v->valuedouble < (double)min || v->valuedouble > (double)max ||
        v->valuedouble != (double)(uint64_t)v->valuedouble) {
        char m[96];
        snprintf(m, sizeof m, "must be a whole number from %llu to %llu", (unsigned long long)min,
                 (unsigned long long)max);
        problem(errs, ctx, key, m);
        return;
    }
    *dst = (uint64_t)v->valuedouble;
}

static void num32(const cJSON *obj, const char *ctx, const char *key, uint32_t *dst, uint32_t min,
                  uint32_t max, struct wbuf *errs)
{
    uint64_t v = *dst;
    num(obj, ctx, key, &v, min, max, errs);
    *dst = (uint32_t)v;
}

static void unknown_keys(const cJSON *obj, const char *ctx, const char *const *known,
                         struct wbuf *errs)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        bool ok = false;
        for (size_t i = 0; known[i]; i++)
            ok = ok || (it->string && strcmp(it->string, known[i]) == 0);
        if (!ok)
            problem(errs, ctx, it->string ? it->string : "?", "unknown key");
    }
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

static void repo(const cJSON *o, size_t i, struct audit_repo_config *r, struct wbuf *errs)
{
    static const char *const known[] = {"transport", "host",        "port", "ca",          "cert",
                                        "key",       "server_name", "name", "tls_profile", NULL};
    char ctx[48];
    snprintf(ctx, sizeof ctx, ".repositories[%zu]", i);
    if (!cJSON_IsObject(o)) {
        problem(errs, ctx, "", "must be an object");
        return;
    }
    unknown_keys(o, ctx, known, errs);
    char transport[8] = "tls";
    str(o, ctx, "transport", transport, sizeof transport, errs);
    if (strcmp(transport, "tls") == 0)
        r->transport = AUDIT_TRANSPORT_TLS;
    else if (strcmp(transport, "udp") == 0)
        r->transport = AUDIT_TRANSPORT_UDP;
    else
        problem(errs, ctx, "transport", "must be \"tls\" or \"udp\"");
    str(o, ctx, "host", r->host, sizeof r->host, errs);
    if (!r->host[0])
        problem(errs, ctx, "host", "is required");
    uint32_t port = r->transport == AUDIT_TRANSPORT_TLS ? 6514 : 514;
    num32(o, ctx, "port", &port, 1, 65535, errs);
    r->port = port;
    str(o, ctx, "ca", r->ca, sizeof r->ca, errs);
    str(o, ctx, "cert", r->cert, sizeof r->cert, errs);
    str(o, ctx, "key", r->key, sizeof r->key, errs);
    str(o, ctx, "server_name", r->server_name, sizeof r->server_name, errs);
    snprintf(r->tls_profile, sizeof r->tls_profile, "bcp195-nd");
    str(o, ctx, "tls_profile", r->tls_profile, sizeof r->tls_profile, errs);
    if (r->transport == AUDIT_TRANSPORT_TLS) {
        enum tls_profile p;
        if (!r->ca[0])
            problem(errs, ctx, "ca", "is required for transport tls (the repository is verified)");
        if (!r->cert[0] != !r->key[0])
            problem(errs, ctx, "cert", "cert and key go together");
        if (tls_profile_parse(r->tls_profile, &p) < 0)
            problem(errs, ctx, "tls_profile", "is not a known profile");
        if (!r->server_name[0])
            memcpy(r->server_name, r->host, sizeof r->server_name); /* same size */
    } else if (r->ca[0] || r->cert[0] || r->key[0] || r->server_name[0]) {
        problem(errs, ctx, "transport", "udp takes no TLS settings (ca, cert, key, server_name)");
    }
    str(o, ctx, "name", r->name, sizeof r->name, errs);
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
        problem(errs, ctx, "name", "use letters, digits, '.', '_' or '-' (not first '.')");
}

int audit_config_parse(const cJSON *obj, struct audit_config *c, struct wbuf *errs)
{
    static const char *const known[] = {
        "enabled",  "repositories", "queue_dir",     "queue_max_bytes",    "queue_max_messages",
        "on_full",  "patient_id",   "hash_key_file", "source_id",          "enterprise_site_id",
        "hostname", "retry_min_ms", "retry_max_ms",  "connect_timeout_ms", "ack_grace_ms",
        NULL};
    size_t before = errs->len;
    if (!obj)
        return 0;
    if (!cJSON_IsObject(obj)) {
        problem(errs, "", "", "must be an object");
        return ERR_CONFIG;
    }
    unknown_keys(obj, "", known, errs);
    const cJSON *en = get(obj, "enabled");
    c->enabled = true;
    if (en && !cJSON_IsBool(en))
        problem(errs, "", "enabled", "must be true or false");
    else if (en)
        c->enabled = cJSON_IsTrue(en);

    const cJSON *repos = get(obj, "repositories");
    if (!cJSON_IsArray(repos) || cJSON_GetArraySize(repos) < 1) {
        problem(errs, "", "repositories", "must be an array of 1 or more repositories");
    } else if ((size_t)cJSON_GetArraySize(repos) > AUDIT_MAX_REPOS) {
        problem(errs, "", "repositories", "at most 4 repositories");
    } else {
        const cJSON *it;
        cJSON_ArrayForEach(it, repos)
        {
            repo(it, c->n_repos, &c->repos[c->n_repos], errs);
            c->n_repos++;
        }
        for (size_t i = 0; i < c->n_repos; i++) {
            for (size_t k = 0; k < i; k++) {
                if (strcmp(c->repos[i].name, c->repos[k].name) == 0)
                    problem(errs, "", "repositories", "two repositories have one name: set name");
            }
        }
    }
    str(obj, "", "queue_dir", c->queue_dir, sizeof c->queue_dir, errs);
    if (!c->queue_dir[0])
        problem(errs, "", "queue_dir", "is required (one directory per program)");
    num(obj, "", "queue_max_bytes", &c->queue_max_bytes, AQ_MIN_BYTES, UINT64_C(16) << 30, errs);
    num(obj, "", "queue_max_messages", &c->queue_max_messages, 1, UINT64_C(100000000), errs);
    char buf[16] = "";
    str(obj, "", "on_full", buf, sizeof buf, errs);
    if (strcmp(buf, "fail_closed") == 0)
        c->on_full = AQ_FAIL_CLOSED;
    else if (buf[0] && strcmp(buf, "drop_oldest") != 0)
        problem(errs, "", "on_full", "must be \"drop_oldest\" or \"fail_closed\"");
    buf[0] = '\0';
    str(obj, "", "patient_id", buf, sizeof buf, errs);
    if (strcmp(buf, "include") == 0)
        c->patient_include = true;
    else if (buf[0] && strcmp(buf, "hash") != 0)
        problem(errs, "", "patient_id", "must be \"hash\" or \"include\"");
    str(obj, "", "hash_key_file", c->hash_key_file, sizeof c->hash_key_file, errs);
    if (!c->patient_include && !c->hash_key_file[0])
        problem(errs, "", "hash_key_file", "is required unless patient_id is \"include\"");
    str(obj, "", "source_id", c->source_id, sizeof c->source_id, errs);
    str(obj, "", "enterprise_site_id", c->enterprise_site_id, sizeof c->enterprise_site_id, errs);
    str(obj, "", "hostname", c->hostname, sizeof c->hostname, errs);
    num32(obj, "", "retry_min_ms", &c->retry_min_ms, 10, 600000, errs);
    num32(obj, "", "retry_max_ms", &c->retry_max_ms, 10, 3600000, errs);
    num32(obj, "", "connect_timeout_ms", &c->connect_timeout_ms, 100, 600000, errs);
    num32(obj, "", "ack_grace_ms", &c->ack_grace_ms, 0, 60000, errs);
    if (c->retry_max_ms < c->retry_min_ms)
        problem(errs, "", "retry_max_ms", "must not be below retry_min_ms");
    return errs->len > before || errs->err ? ERR_CONFIG : 0;
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
            problem(errs, "", "hash_key_file", err);
        memset(key, 0, sizeof key);
    }
    for (size_t i = 0; i < c->n_repos; i++) {
        const struct audit_repo_config *r = &c->repos[i];
        char ctx[48];
        snprintf(ctx, sizeof ctx, ".repositories[%zu]", i);
        if (r->transport != AUDIT_TRANSPORT_TLS)
            continue;
        check_file(errs, ctx, "ca", r->ca);
        check_file(errs, ctx, "key", r->key);
        if (r->cert[0] && tls_check_cert_file(r->cert, NULL, err, sizeof err) < 0)
            problem(errs, ctx, "cert", err);
    }
    struct stat st;
    if (stat(c->queue_dir, &st) == 0 && !S_ISDIR(st.st_mode))
        problem(errs, "", "queue_dir", "exists and is not a directory");
    return errs->len > before ? ERR_CONFIG : 0;
}
