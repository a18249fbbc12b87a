#include "edge_gen.h"

#include <stdlib.h>
#include <time.h>

#include "net/sha256_file.h"
#include "net/tls_ctx.h"

/* The reverse listener's context: its CA bundle is trusted alone (partial chain), as the core
 * trusts the infrastructure CA: a modality certificate, whose CA is a sibling under the same
 * root, can never pass. */
static int reverse_ctx(const struct edge_config *cfg, SSL_CTX **out, struct wbuf *errs)
{
    if (!cfg->reverse.enabled)
        return 0;
    struct tls_server_opts o = {
        .cert = cfg->reverse.tls.cert,
        .key = cfg->reverse.tls.key,
        .client_ca = cfg->reverse.tls.client_ca,
        .crl = cfg->reverse.tls.crl,
        .crl_mode = cfg->reverse.tls.crl_mode,
        .profile = cfg->reverse.tls.profile,
        .partial_chain = true,
    };
    char err[512];
    int rc = tls_ctx_server_new(&o, out, err, sizeof err);
    if (rc < 0)
        wbuf_printf(errs, "reverse.tls: %s\n", err);
    return rc;
}

int edge_gen_new(const struct edge_config *cfg, struct edge_gen **out, struct wbuf *errs)
{
    struct edge_gen *g = calloc(1, sizeof *g);
    if (!g)
        return ERR_NOMEM;
    g->refs = 1;
    g->loaded_at = (int64_t)time(NULL);
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
    int rrc = reverse_ctx(cfg, &g->reverse, errs);
    int prc = policy_load(cfg->policy, &g->policy, errs);
    if (prc == 0)
        prc = policy_build_tls(g->policy, errs);
    if (rc < 0 || rrc < 0 || prc < 0) {
        edge_gen_unref(g);
        return rc < 0 ? rc : rrc < 0 ? rrc : prc;
    }
    if (sha256_file(cfg->policy, g->policy_sha256) < 0)
        g->policy_sha256[0] = '\0'; /* read a moment ago: only the status loses it */
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
    SSL_CTX_free(g->reverse);
    policy_free(g->policy);
    free(g);
}
