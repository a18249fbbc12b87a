/* creds_provider: what a request signer asks of a source of AWS credentials, and nothing of how
 * the source gets them. The standard chain (creds.h: environment, ECS, IMDS) is one provider; a
 * provider of temporary credentials from STS would be another. http.c signs with whichever it is
 * given, so the transport never depends on a provider's own code (which itself fetches through
 * the transport). Every call runs on the provider's loop thread. */
#ifndef GW_CREDS_PROVIDER_H
#define GW_CREDS_PROVIDER_H

#include <stdint.h>

#include "common/err.h"
#include "sigv4.h"

enum creds_source { CREDS_NONE = 0, CREDS_ENV, CREDS_ECS, CREDS_IMDS };

/* Callback: err 0 and c (borrowed: copy what you keep) or err < 0 (HTTP_ERR_CREDS,
 * HTTP_ERR_CANCELED) and c NULL. */
typedef void (*creds_cb)(void *arg, int err, const struct aws_creds *c);

struct creds_provider;

/* What each provider implements; the contracts are those of the calls below. */
struct creds_provider_ops {
    const struct aws_creds *(*peek)(struct creds_provider *p);
    int (*get)(struct creds_provider *p, creds_cb cb, void *arg);
    void (*invalidate)(struct creds_provider *p);
    void (*close)(struct creds_provider *p);
};

/* The head of every provider: a provider's own struct begins with it, ops pointing at its
 * table; source and fetches are kept up to date by the provider. */
struct creds_provider {
    const struct creds_provider_ops *ops;
    enum creds_source source;
    uint64_t fetches; /* successful fetches so far (environment keys count once) */
};

/* Credentials valid for at least another minute, or NULL (then call creds_get). Borrowed: valid
 * until the next return to the loop. */
const struct aws_creds *creds_peek(struct creds_provider *p);
/* Ask for credentials; cb runs later on the loop (never inside this call). Concurrent callers
 * share one fetch. 0 or ERR_NOMEM / ERR_WRONG_STATE (closing). */
MUST_CHECK int creds_get(struct creds_provider *p, creds_cb cb, void *arg);
/* Forget the cached credentials (after an ExpiredToken answer); the next get fetches anew. */
void creds_invalidate(struct creds_provider *p);
/* Where p's credentials come from. */
enum creds_source creds_provider_source(const struct creds_provider *p);
/* Number of successful fetches so far (env counts once). */
uint64_t creds_fetch_count(const struct creds_provider *p);

/* Stop: waiting callbacks run with HTTP_ERR_CANCELED, the provider's handles close, and it frees
 * itself once they and any fetch in flight are done. Call before http_client_close on the same
 * client. NULL is fine. */
void creds_provider_close(struct creds_provider *p);

#endif
