/* edge_gen: a generation of the edge's reloadable state: the server TLS contexts (the modality
 * listener's and the reverse listener's) and the policy (with its routes' client contexts).
 * SIGHUP builds a new one; each connection holds a reference to the generation it was admitted
 * under, so live associations keep theirs. */
#ifndef GW_EDGE_GEN_H
#define GW_EDGE_GEN_H

#include <stdint.h>

#include <openssl/ssl.h>

#include "common/wbuf.h"
#include "edge_config.h"
#include "policy.h"

struct edge_gen {
    unsigned refs;
    SSL_CTX *server;
    SSL_CTX *reverse; /* the reverse listener's (NULL: no "reverse" object) */
    struct policy *policy;
    uint64_t number;         /* the caller numbers generations (1 at start, +1 per reload) */
    int64_t loaded_at;       /* unix seconds */
    char policy_sha256[65];  /* of the policy file as read ("" if it could not be hashed) */
};

/* Build a generation from cfg (certificates, CRLs, policy). 0 and *out (one reference), or
 * ERR_CONFIG / ERR_TLS with one line per problem in errs. */
MUST_CHECK int edge_gen_new(const struct edge_config *cfg, struct edge_gen **out,
                            struct wbuf *errs);
/* Take one more reference. */
void edge_gen_ref(struct edge_gen *g);
/* Drop one reference; the last frees g. NULL does nothing. */
void edge_gen_unref(struct edge_gen *g);

#endif
