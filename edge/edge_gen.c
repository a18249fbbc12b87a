#include "edge_gen.h"

#include <stdlib.h>

#include "net/tls_ctx.h"

int edge_gen_new(const struct edge_config *cfg, struct edge_gen **out, struct wbuf *errs)
{
    struct edge_gen *g = calloc(1, sizeof *g);
    if (!g)
        return ERR_NOMEM;
    g->refs = 1;
    struct tls_server_opts o = {
        .cert = cfg->tls.cert,
        .key = cfg->tls.key,
        .client_ca = cfg->tls.client_ca,
        .crl = cfg->tls.crl,
        .crl_mode = cfg->tls.crl_mode,
        .profile = cfg->tls.profile,
    };
    char err[512];
    int rc = tls_ctx_server_new(&o, &g->server, err, sizeof err);
    if (rc < 0)
        wbuf_printf(errs, "tls: %s\n", err);
    int prc = policy_load(cfg->policy, &g->policy, errs);
    if (prc == 0)
        prc = policy_build_tls(g->policy, errs);
    if (rc < 0 || prc < 0) {
        edge_gen_unref(g);
        return rc < 0 ? rc : prc;
    }
    *out = g;
    return 0;
}

void edge_gen_ref(struct edge_gen *g)
{
    g->refs++;
}

void edge_gen_unref(struct edge_gen *g)
{
    if (!g || --g->refs > 0)
        return;
    SSL_CTX_free(g->server);
    policy_free(g->policy);
    free(g);
}
