#include "creds_provider.h"

#include <stddef.h>

const struct aws_creds *creds_peek(struct creds_provider *p)
{
    return p->ops->peek(p);
}

int creds_get(struct creds_provider *p, creds_cb cb, void *arg)
{
    return p->ops->get(p, cb, arg);
}

void creds_invalidate(struct creds_provider *p)
{
    p->ops->invalidate(p);
}

enum creds_source creds_provider_source(const struct creds_provider *p)
{
    return p->source;
}

uint64_t creds_fetch_count(const struct creds_provider *p)
{
    return p->fetches;
}

void creds_provider_close(struct creds_provider *p)
{
    if (p)
        p->ops->close(p);
}
