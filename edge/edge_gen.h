/* edge_gen: a generation of the edge's reloadable state: the server TLS context and the policy
 * (with its routes' client contexts). SIGHUP builds a new one; each connection holds a
 * reference to the generation it was admitted under, so live associations keep theirs. */
#ifndef GW_EDGE_GEN_H
#define GW_EDGE_GEN_H

#include <openssl/ssl.h>

#include "common/wbuf.h"
#include "edge_config.h"
#include "policy.h"

struct edge_gen {
    unsigned refs;
    SSL_CTX *server;
    struct policy *policy;
};

/* Build a generation from cfg (certificates, CRL, policy). 0 and *out (one reference), or
 * ERR_CONFIG / ERR_TLS with one line per problem in errs. */
MUST_CHECK int edge_gen_new(const struct edge_config *cfg, struct edge_gen **out,
                            struct wbuf *errs);
/* Take one more reference. */
void edge_gen_ref(struct edge_gen *g);
/* Drop one reference; the last frees g. NULL does nothing. */
void edge_gen_unref(struct edge_gen *g);

#endif
