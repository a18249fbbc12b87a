#include "policy.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jcfg.h"
#include "net/addr.h"

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* 64 hex digits, optionally separated by ':' (as `openssl x509 -fingerprint` prints them). */
static int parse_fp(const char *s, uint8_t fp[32])
{
    size_t n = 0;
    int hi = -1;
    for (; *s; s++) {
        if (*s == ':')
            continue;
        int v = hexval(*s);
        if (v < 0 || n >= 32)
            return ERR_CONFIG;
        if (hi < 0) {
            hi = v;
        } else {
            fp[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    return n == 32 && hi < 0 ? 0 : ERR_CONFIG;
}

static void parse_ae_list(const cJSON *c, const char *ctx, const char *key,
                          char list[][UL_AE_LEN + 1], size_t *n, bool *any, struct wbuf *errs)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(c, key);
    if (!a || !cJSON_IsArray(a) || cJSON_GetArraySize(a) == 0) {
        jcfg_problem(errs, ctx, key, "must be a non-empty array of AE titles (or [\"*\"])");
        return;
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, a)
    {
        if (!cJSON_IsString(v) || !v->valuestring) {
            jcfg_problem(errs, ctx, key, "entries must be strings");
            continue;
        }
        if (strcmp(v->valuestring, "*") == 0) {
            *any = true;
            continue;
        }
        if (*n >= POLICY_MAX_AE) {
            jcfg_problem(errs, ctx, key, "too many AE titles (64 at most)");
            return;
        }
        size_t l = strnlen(v->valuestring, UL_AE_LEN + 1);
        if (ul_ae_normalize((const uint8_t *)v->valuestring, l, list[*n]) < 0) {
            jcfg_problem(errs, ctx, key, "invalid AE title (1-16 characters, no \\ or controls)");
            continue;
        }
        (*n)++;
    }
}

static void parse_route(const cJSON *r, struct policy_route *rt, struct wbuf *errs)
{
    char ctx[96];
    snprintf(ctx, sizeof ctx, "routes.%s", rt->name);
    if (!cJSON_IsObject(r)) {
        jcfg_problem(errs, "routes", rt->name, "must be an object");
        return;
    }
    jcfg_str(r, ctx, "upstream", rt->upstream, sizeof rt->upstream, errs);
    if (addr_split(rt->upstream, rt->host, sizeof rt->host, &rt->port) < 0 || rt->port == 0)
        jcfg_problem(errs, ctx, "upstream", "must be host:port");
    jcfg_bool(r, ctx, "proxy_protocol", &rt->proxy_protocol, errs);
    char rw[64] = "";
    jcfg_str(r, ctx, "called_ae_rewrite", rw, sizeof rw, errs);
    if (rw[0] &&
        ul_ae_normalize((const uint8_t *)rw, strnlen(rw, sizeof rw), rt->called_rewrite) < 0)
        jcfg_problem(errs, ctx, "called_ae_rewrite", "invalid AE title");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "tls");
    if (t && !cJSON_IsObject(t)) {
        jcfg_problem(errs, ctx, "tls", "must be an object");
    } else if (t) {
        char tctx[112];
        snprintf(tctx, sizeof tctx, "%s.tls", ctx);
        rt->tls = true;
        jcfg_str(t, tctx, "cert", rt->tls_opts.cert, sizeof rt->tls_opts.cert, errs);
        jcfg_str(t, tctx, "key", rt->tls_opts.key, sizeof rt->tls_opts.key, errs);
        jcfg_str(t, tctx, "ca", rt->tls_opts.ca, sizeof rt->tls_opts.ca, errs);
        snprintf(rt->tls_opts.server_name, sizeof rt->tls_opts.server_name, "%s", rt->host);
        jcfg_str(t, tctx, "server_name", rt->tls_opts.server_name,
                 sizeof rt->tls_opts.server_name, errs);
        char prof[32] = "";
        jcfg_str(t, tctx, "profile", prof, sizeof prof, errs);
        if (prof[0] && tls_profile_parse(prof, &rt->tls_opts.profile) < 0)
            jcfg_problem(errs, tctx, "profile", "unknown profile");
        if (!rt->tls_opts.ca[0])
            jcfg_problem(errs, tctx, "ca", "required (the upstream's certificate is verified)");
        if (rt->tls_opts.cert[0] && !rt->tls_opts.key[0])
            jcfg_problem(errs, tctx, "key", "required with cert");
    }
}

static void parse_client(const cJSON *c, size_t idx, struct policy *p, const cJSON *routes,
                         struct wbuf *errs)
{
    struct policy_client *pc = &p->clients[idx];
    char ctx[160];
    snprintf(ctx, sizeof ctx, "clients[%zu]", idx);
    if (!cJSON_IsObject(c)) {
        jcfg_problem(errs, "clients", ctx, "must be an object");
        return;
    }
    jcfg_str(c, ctx, "id", pc->id, sizeof pc->id, errs);
    if (!pc->id[0])
        jcfg_problem(errs, ctx, "id", "required");
    for (size_t i = 0; i < idx; i++) {
        if (pc->id[0] && strcmp(p->clients[i].id, pc->id) == 0)
            jcfg_problem(errs, ctx, "id", "duplicate client id");
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "match");
    if (!m || !cJSON_IsObject(m)) {
        jcfg_problem(errs, ctx, "match", "required object");
    } else {
        char mctx[176];
        snprintf(mctx, sizeof mctx, "%s.match", ctx);
        jcfg_str(m, mctx, "subject_cn", pc->subject_cn, sizeof pc->subject_cn, errs);
        jcfg_str(m, mctx, "san_dns", pc->san_dns, sizeof pc->san_dns, errs);
        jcfg_str(m, mctx, "san_uri", pc->san_uri, sizeof pc->san_uri, errs);
        jcfg_str(m, mctx, "issuer", pc->issuer, sizeof pc->issuer, errs);
        char fp[128] = "";
        jcfg_str(m, mctx, "fingerprint_sha256", fp, sizeof fp, errs);
        if (fp[0]) {
            if (parse_fp(fp, pc->fp) < 0)
                jcfg_problem(errs, mctx, "fingerprint_sha256", "must be 64 hex digits");
            else
                pc->has_fp = true;
        }
        if (!pc->subject_cn[0] && !pc->san_dns[0] && !pc->san_uri[0] && !pc->has_fp)
            jcfg_problem(errs, mctx, "",
                         "needs subject_cn, san_dns, san_uri or fingerprint_sha256 "
                         "(issuer alone would admit a whole CA)");
    }
    parse_ae_list(c, ctx, "calling_ae", pc->calling, &pc->n_calling, &pc->any_calling, errs);
    parse_ae_list(c, ctx, "called_ae", pc->called, &pc->n_called, &pc->any_called, errs);
    char route[64] = "";
    jcfg_str(c, ctx, "route", route, sizeof route, errs);
    if (!route[0] && p->n_routes == 1)
        snprintf(route, sizeof route, "%s", p->routes[0].name);
    bool found = false;
    for (size_t i = 0; i < p->n_routes; i++) {
        if (strcmp(p->routes[i].name, route) == 0) {
            pc->route = i;
            found = true;
        }
    }
    if (!found)
        jcfg_problem(errs, ctx, "route", route[0] ? "names no route in \"routes\"" : "required");
    (void)routes;
    jcfg_u32(c, ctx, "max_associations", &pc->max_associations, 0, 100000, errs);
    jcfg_u32(c, ctx, "max_per_minute", &pc->max_per_minute, 0, 1000000, errs);
}

int policy_parse(const char *json, size_t len, struct policy **out, struct wbuf *errs)
{
    size_t before = errs->len;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        wbuf_printf(errs, "policy: not a JSON object\n");
        return ERR_CONFIG;
    }
    struct policy *p = calloc(1, sizeof *p);
    if (!p) {
        cJSON_Delete(root);
        return ERR_NOMEM;
    }
    const cJSON *routes = cJSON_GetObjectItemCaseSensitive(root, "routes");
    const cJSON *clients = cJSON_GetObjectItemCaseSensitive(root, "clients");
    int nr = cJSON_IsObject(routes) ? cJSON_GetArraySize(routes) : 0;
    int nc = cJSON_IsArray(clients) ? cJSON_GetArraySize(clients) : -1;
    if (nr <= 0 || nr > POLICY_MAX_ROUTES)
        jcfg_problem(errs, "", "routes", "must be an object with 1 to 256 named routes");
    if (nc < 0 || nc > POLICY_MAX_CLIENTS)
        jcfg_problem(errs, "", "clients", "must be an array of at most 10000 entries");
    if (errs->len > before)
        goto done;
    p->routes = calloc((size_t)nr, sizeof *p->routes);
    p->clients = calloc(nc > 0 ? (size_t)nc : 1, sizeof *p->clients);
    if (!p->routes || !p->clients) {
        wbuf_printf(errs, "policy: out of memory\n");
        goto done;
    }
    const cJSON *r;
    cJSON_ArrayForEach(r, routes)
    {
        struct policy_route *rt = &p->routes[p->n_routes++];
        int n = snprintf(rt->name, sizeof rt->name, "%s", r->string ? r->string : "");
        if (n <= 0 || (size_t)n >= sizeof rt->name)
            jcfg_problem(errs, "routes", "", "route names must be 1-63 characters");
        parse_route(r, rt, errs);
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, clients)
    {
        parse_client(c, p->n_clients, p, routes, errs);
        p->n_clients++;
    }
done:
    cJSON_Delete(root);
    if (errs->len > before || errs->err) {
        policy_free(p);
        return errs->err ? ERR_NOMEM : ERR_CONFIG;
    }
    *out = p;
    return 0;
}

int policy_load(const char *path, struct policy **out, struct wbuf *errs)
{
    char *text = jcfg_read_file(path, 64u * 1024u * 1024u, errs);
    if (!text)
        return ERR_CONFIG;
    int rc = policy_parse(text, strlen(text), out, errs);
    free(text);
    return rc;
}

int policy_build_tls(struct policy *p, struct wbuf *errs)
{
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
    free(p->routes);
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

bool policy_calling_ok(const struct policy_client *c, const char *ae)
{
    return ae_listed(c->calling, c->n_calling, c->any_calling, ae);
}

bool policy_called_ok(const struct policy_client *c, const char *ae)
{
    return ae_listed(c->called, c->n_called, c->any_called, ae);
}
