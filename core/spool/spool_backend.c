#include "spool/spool_backend.h"

#include <stdlib.h>
#include <string.h>

struct backend {
    const struct backend_ops *ops;
    void *impl;
};

const char *spool_ack_name(enum spool_ack a)
{
    switch (a) {
    case SPOOL_ACK_SPOOL: return "spool";
    case SPOOL_ACK_S3: return "s3";
    case SPOOL_ACK_HEALTHIMAGING: return "healthimaging";
    }
    return "?";
}

const struct backend_ops *backend_find(const struct backend_ops *const *registry,
                                       const char *name)
{
    for (size_t i = 0; registry[i]; i++) {
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    }
    return NULL;
}

int backend_open(const struct backend_ops *ops, const struct backend_env *env,
                 struct backend **out)
{
    struct backend *b = calloc(1, sizeof *b);
    if (!b)
        return ERR_NOMEM;
    b->ops = ops;
    int rc = ops->start(env, &b->impl);
    if (rc < 0) {
        free(b);
        return rc;
    }
    *out = b;
    return 0;
}

void backend_notify(struct backend *b)
{
    b->ops->notify(b->impl);
}

void backend_await(struct backend *b, const char *id, backend_ack_cb cb, void *arg)
{
    b->ops->await(b->impl, id, cb, arg);
}

void backend_get_stats(struct backend *b, struct backend_stats *out)
{
    memset(out, 0, sizeof *out);
    b->ops->get_stats(b->impl, out);
}

const char *backend_name(const struct backend *b)
{
    return b->ops->name;
}

void backend_stop(struct backend *b)
{
    if (!b)
        return;
    b->ops->stop(b->impl);
    free(b);
}

const struct backend_read_ops *backend_read(const struct backend *b)
{
    return b ? b->ops->read : NULL;
}

const struct backend_commit_ops *backend_commit(const struct backend *b)
{
    return b ? b->ops->commit : NULL;
}

void *backend_impl(const struct backend *b)
{
    return b ? b->impl : NULL;
}
