#include "core_config.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/ul.h"
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

static void problem(struct wbuf *errs, const char *key, const char *msg)
{
    wbuf_printf(errs, "%s: %s\n", key, msg);
}

/* Copy a JSON string value into dst (cap bytes with NUL); missing keys keep the default. */
static void get_str(const cJSON *obj, const char *key, char *dst, size_t cap, struct wbuf *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return;
    if (!cJSON_IsString(v) || !v->valuestring) {
        problem(errs, key, "must be a string");
        return;
    }
    int n = snprintf(dst, cap, "%s", v->valuestring);
    if (n < 0 || (size_t)n >= cap)
        problem(errs, key, "too long");
}

static void get_bool(const cJSON *obj, const char *key, bool *dst, struct wbuf *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return;
    if (!cJSON_IsBool(v)) {
        problem(errs, key, "must be true or false");
        return;
    }
    *dst = cJSON_IsTrue(v);
}

static void get_u64(const cJSON *obj, const char *key, uint64_t *dst, uint64_t min, uint64_t max,
                    struct wbuf *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return;
    if (!cJSON_IsNumber(v) || v->valuedouble < (double)min || v->valuedouble > (double)max ||
        v->valuedouble != (double)(uint64_t)v->valuedouble) {
        char msg[96];
        snprintf(msg, sizeof msg, "must be a whole number from %llu to %llu",
                 (unsigned long long)min, (unsigned long long)max);
        problem(errs, key, msg);
        return;
    }
    *dst = (uint64_t)v->valuedouble;
}

static void get_u32(const cJSON *obj, const char *key, uint32_t *dst, uint32_t min, uint32_t max,
                    struct wbuf *errs)
{
    uint64_t t = *dst;
    get_u64(obj, key, &t, min, max, errs);
    *dst = (uint32_t)t;
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

static void set_defaults(struct core_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->ae_title, sizeof c->ae_title, "DICOM_CORE");
    c->check_called_ae = true;
    snprintf(c->listen, sizeof c->listen, "0.0.0.0:11112");
    snprintf(c->http_listen, sizeof c->http_listen, "127.0.0.1:9112");
    snprintf(c->spool_dir, sizeof c->spool_dir, "/var/lib/dicom-core/spool");
    c->ack = SPOOL_ACK_SPOOL;
    c->fsync = true;
    c->min_free_bytes = 1ull << 30;
    c->max_pdu = 262144;
    c->max_associations = 64;
    c->preassoc_max = 256;
    c->preassoc_per_source = 32;
    c->artim_ms = 30000;
    c->idle_ms = 300000;
    c->drain_ms = 30000;
    c->accept_retired_sops = true;
    snprintf(c->backend_type, sizeof c->backend_type, "file");
    snprintf(c->log_level, sizeof c->log_level, "info");
    for (size_t i = 0; i < ts_default_count() && i < ARRAY_LEN(c->ts); i++)
        c->ts[c->n_ts++] = ts_default_at(i);
}

static void get_ae_list(const cJSON *obj, const char *key, char (*dst)[17], size_t *n,
                        struct wbuf *errs)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!arr)
        return;
    if (!cJSON_IsArray(arr)) {
        problem(errs, key, "must be an array of AE titles");
        return;
    }
    *n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it) || *n >= CFG_MAX_LIST ||
            ul_ae_normalize((const uint8_t *)it->valuestring, strnlen(it->valuestring, 17),
                            dst[*n]) < 0) {
            problem(errs, key, "entries must be AE titles (1-16 characters, no backslash or "
                               "control characters), at most 64 of them");
            return;
        }
        (*n)++;
    }
}

static void parse_json(const cJSON *root, struct core_config *c, struct wbuf *errs)
{
    char ae[64] = "";
    get_str(root, "ae_title", ae, sizeof ae, errs);
    if (ae[0] && ul_ae_normalize((const uint8_t *)ae, strnlen(ae, sizeof ae), c->ae_title) < 0)
        problem(errs, "ae_title", "must be 1-16 characters without backslash or control chars");
    get_bool(root, "check_called_ae", &c->check_called_ae, errs);
    get_ae_list(root, "calling_ae_allow", c->calling_allow, &c->n_calling_allow, errs);
    get_str(root, "listen", c->listen, sizeof c->listen, errs);
    get_str(root, "http_listen", c->http_listen, sizeof c->http_listen, errs);
    get_str(root, "spool_dir", c->spool_dir, sizeof c->spool_dir, errs);
    char ack[32] = "";
    get_str(root, "ack", ack, sizeof ack, errs);
    if (strcmp(ack, "spool") == 0)
        c->ack = SPOOL_ACK_SPOOL;
    else if (strcmp(ack, "s3") == 0)
        c->ack = SPOOL_ACK_S3;
    else if (strcmp(ack, "healthimaging") == 0)
        c->ack = SPOOL_ACK_HEALTHIMAGING;
    else if (ack[0])
        problem(errs, "ack", "must be \"spool\", \"s3\" or \"healthimaging\"");
    get_bool(root, "fsync", &c->fsync, errs);
    get_u64(root, "min_free_bytes", &c->min_free_bytes, 0, UINT64_MAX / 2, errs);
    get_u32(root, "max_pdu", &c->max_pdu, 4096, 16u << 20, errs);
    get_u32(root, "max_associations", &c->max_associations, 1, 100000, errs);
    get_u32(root, "preassoc_max", &c->preassoc_max, 1, 100000, errs);
    get_u32(root, "preassoc_per_source", &c->preassoc_per_source, 1, 100000, errs);
    get_u32(root, "artim_ms", &c->artim_ms, 100, 600000, errs);
    get_u32(root, "idle_ms", &c->idle_ms, 100, 86400000, errs);
    get_u32(root, "drain_ms", &c->drain_ms, 0, 3600000, errs);
    get_bool(root, "accept_retired_sop_classes", &c->accept_retired_sops, errs);
    get_str(root, "log_level", c->log_level, sizeof c->log_level, errs);
    if (log_level_parse(c->log_level) < 0)
        problem(errs, "log_level", "must be debug, info, warn or error");

    const cJSON *tsl = cJSON_GetObjectItemCaseSensitive(root, "transfer_syntaxes");
    if (tsl) {
        c->n_ts = 0;
        const cJSON *it;
        if (!cJSON_IsArray(tsl))
            problem(errs, "transfer_syntaxes", "must be an array of UIDs in preference order");
        else
            cJSON_ArrayForEach(it, tsl)
            {
                const struct ts_info *t = cJSON_IsString(it) ? ts_find(it->valuestring) : NULL;
                if (!t) {
                    problem(errs, "transfer_syntaxes",
                            "unknown or unsupported transfer syntax UID (big endian is not "
                            "supported)");
                    break;
                }
                if (c->n_ts < ARRAY_LEN(c->ts))
                    c->ts[c->n_ts++] = t;
            }
        if (c->n_ts == 0)
            problem(errs, "transfer_syntaxes", "must list at least one transfer syntax");
    }
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(root, "private_sop_classes");
    if (ps) {
        const cJSON *it;
        if (!cJSON_IsArray(ps))
            problem(errs, "private_sop_classes", "must be an array of UIDs");
        else
            cJSON_ArrayForEach(it, ps)
            {
                if (!cJSON_IsString(it) || !ds_uid_valid(it->valuestring) ||
                    c->n_private_sops >= CFG_MAX_LIST) {
                    problem(errs, "private_sop_classes", "entries must be valid UIDs (max 64)");
                    break;
                }
                snprintf(c->private_sops[c->n_private_sops++], 65, "%s", it->valuestring);
            }
    }
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "proxy_protocol");
    if (pp) {
        const cJSON *tr = cJSON_GetObjectItemCaseSensitive(pp, "trusted");
        if (!cJSON_IsObject(pp) || !cJSON_IsArray(tr) || cJSON_GetArraySize(tr) == 0) {
            problem(errs, "proxy_protocol", "must be {\"trusted\": [\"CIDR\", ...]} (non-empty)");
        } else {
            c->proxy_protocol = true;
            const cJSON *it;
            cJSON_ArrayForEach(it, tr)
            {
                if (c->n_proxy_trusted >= CFG_MAX_LIST || !cJSON_IsString(it) ||
                    cidr_parse(it->valuestring, &c->proxy_trusted[c->n_proxy_trusted]) < 0) {
                    problem(errs, "proxy_protocol.trusted", "entries must be CIDRs");
                    break;
                }
                c->n_proxy_trusted++;
            }
        }
    }
    const cJSON *tls = cJSON_GetObjectItemCaseSensitive(root, "tls");
    if (tls) {
        if (!cJSON_IsObject(tls)) {
            problem(errs, "tls", "must be an object");
        } else {
            c->tls.enabled = true;
            get_str(tls, "cert", c->tls.cert, sizeof c->tls.cert, errs);
            get_str(tls, "key", c->tls.key, sizeof c->tls.key, errs);
            get_str(tls, "client_ca", c->tls.client_ca, sizeof c->tls.client_ca, errs);
            get_str(tls, "crl", c->tls.crl, sizeof c->tls.crl, errs);
            if (!c->tls.cert[0] || !c->tls.key[0])
                problem(errs, "tls", "needs cert and key");
        }
    }
    const cJSON *be = cJSON_GetObjectItemCaseSensitive(root, "backend");
    if (be) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(be, "type");
        if (!cJSON_IsObject(be) || !cJSON_IsString(type)) {
            problem(errs, "backend", "must be an object with a \"type\"");
        } else if (snprintf(c->backend_type, sizeof c->backend_type, "%s", type->valuestring) >=
                   (int)sizeof c->backend_type) {
            problem(errs, "backend.type", "too long");
        } else {
            /* the backend's own keys are its own: main checks them through the registry */
            c->backend_json = cJSON_PrintUnformatted(be);
            if (!c->backend_json)
                problem(errs, "backend", "out of memory");
        }
    }
}

/* DICOM_CORE_<KEY> overrides for the scalar keys operators set most (env wins over the file). */
static void apply_env(cJSON *root, struct wbuf *errs)
{
    static const struct {
        const char *env, *key;
        bool number, boolean;
    } map[] = {
        {"DICOM_CORE_AE_TITLE", "ae_title", false, false},
        {"DICOM_CORE_LISTEN", "listen", false, false},
        {"DICOM_CORE_HTTP_LISTEN", "http_listen", false, false},
        {"DICOM_CORE_SPOOL_DIR", "spool_dir", false, false},
        {"DICOM_CORE_ACK", "ack", false, false},
        {"DICOM_CORE_LOG_LEVEL", "log_level", false, false},
        {"DICOM_CORE_FSYNC", "fsync", false, true},
        {"DICOM_CORE_MAX_ASSOCIATIONS", "max_associations", true, false},
        {"DICOM_CORE_MIN_FREE_BYTES", "min_free_bytes", true, false},
    };
    for (size_t i = 0; i < ARRAY_LEN(map); i++) {
        const char *v = getenv(map[i].env);
        if (!v)
            continue;
        cJSON *item;
        if (map[i].number) {
            char *end;
            errno = 0;
            double d = strtod(v, &end);
            if (errno || *end || end == v) {
                problem(errs, map[i].env, "must be a number");
                continue;
            }
            item = cJSON_CreateNumber(d);
        } else if (map[i].boolean) {
            if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
                problem(errs, map[i].env, "must be true or false");
                continue;
            }
            item = cJSON_CreateBool(strcmp(v, "true") == 0);
        } else {
            item = cJSON_CreateString(v);
        }
        if (!item || !cJSON_ReplaceItemInObjectCaseSensitive(root, map[i].key, item)) {
            if (item && !cJSON_AddItemToObject(root, map[i].key, item))
                cJSON_Delete(item);
        }
    }
}

static char *read_file(const char *path, size_t max, size_t *len, struct wbuf *errs)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        wbuf_printf(errs, "%s: cannot open: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    bool err = ferror(f);
    fclose(f);
    if (!buf || err || n > max) {
        wbuf_printf(errs, "%s: %s\n", path, !buf ? "out of memory" : err ? "read error" :
                                                                            "file too large");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int core_config_load(const char *path, struct core_config *cfg, struct wbuf *errs)
{
    set_defaults(cfg);
    size_t start = errs->len;
    size_t len = 0;
    char *text = path ? read_file(path, 1u << 20, &len, errs) : NULL;
    if (path && !text)
        return ERR_CONFIG;
    const char *src = text ? text : g_default_json;
    cJSON *root = cJSON_ParseWithLength(src, text ? len : sizeof g_default_json - 1);
    if (!root || !cJSON_IsObject(root)) {
        const char *at = cJSON_GetErrorPtr();
        wbuf_printf(errs, "%s: not a JSON object (error near byte %ld)\n", path ? path : "default",
                    at && root == NULL ? (long)(at - src) : 0L);
        cJSON_Delete(root);
        free(text);
        return ERR_CONFIG;
    }
    apply_env(root, errs);
    parse_json(root, cfg, errs);
    cJSON_Delete(root);
    free(text);
    if (!cfg->spool_dir[0] || cfg->spool_dir[0] != '/')
        problem(errs, "spool_dir", "must be an absolute path");
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
    if (cfg->backend_json) {
        cJSON_free(cfg->backend_json);
        cfg->backend_json = NULL;
    }
}
