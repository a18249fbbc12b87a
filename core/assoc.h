/* assoc: one DICOM association, in either role of PS3.8 9.2: the acceptor (a modality, PACS or
 * workstation connected to us) or the requestor (an association the gateway opens: C-MOVE
 * sub-operations, Storage Commitment reports). One state machine (Sta1 to Sta13 with the ARTIM
 * timer), one transport, one P-DATA path; the DIMSE services (dimse_service.h) use the same API
 * on both. */
#ifndef GW_ASSOC_H
#define GW_ASSOC_H

#include <openssl/types.h>
#include <stdbool.h>
#include <uv.h>

#include "core_ctx.h"

struct assoc;

/* Accept a pending connection on server and run it. Returns 0 or a negative libuv code (the
 * connection is then closed and nothing else happens). */
MUST_CHECK int assoc_accept(struct core_ctx *ctx, uv_stream_t *server);

/* ---- the requestor role ------------------------------------------------------------------- */

/* A presentation context to propose. */
struct assoc_propose {
    const char *abstract;
    const char *ts[8]; /* transfer syntaxes in preference order, NULL-terminated */
    bool we_scp;       /* role selection: we take the SCP role (a Storage Commitment report) */
    bool peer_scp;     /* role selection: the peer takes the SCP role (the default for us as the
                          requestor: no item is sent when neither flag is set) */
};

struct assoc_connect_opts {
    const char *host; /* a name or an address */
    unsigned port;
    SSL_CTX *tls;          /* client context (our certificate, the CA to verify the peer), or
                              NULL for plain TCP */
    const char *tls_host;  /* the name the peer's certificate must carry (NULL: not checked) */
    const char *calling, *called;
    const struct assoc_propose *contexts;
    size_t n_contexts;     /* 1..128 */
    uint32_t connect_ms;   /* connection and TLS handshake; 0: the configured ARTIM */
};

struct assoc_connect_cbs {
    /* The A-ASSOCIATE-AC arrived: use assoc_find_pctx and the assoc_send_* calls. */
    void (*ready)(void *arg, struct assoc *a);
    /* The end, exactly once (also when ready never came): err 0 after a release, else the
     * reason (ERR_IO connect or transport, ERR_UNEXPECTED rejected or aborted, ERR_TLS).
     * why names it for logs. The association is gone when this returns. */
    void (*ended)(void *arg, int err, const char *why);
    void *arg;
};

/* Open an association. 0 (cbs->ended will be called, exactly once, unless assoc_forget) or
 * ERR_NOMEM / ERR_LIMIT (nothing started, no callback). */
MUST_CHECK int assoc_connect(struct core_ctx *ctx, const struct assoc_connect_opts *o,
                             const struct assoc_connect_cbs *cbs);
/* Release (A-RELEASE-RQ) now if idle, else once the work in progress is done. */
void assoc_release(struct assoc *a);

/* Drain: ask every idle association to release (A-RELEASE-RQ), busy ones after their current
 * operation. */
void assoc_drain_all(struct core_ctx *ctx);
/* Abort every association now (A-ABORT, service-provider). */
void assoc_abort_all(struct core_ctx *ctx);

#endif
