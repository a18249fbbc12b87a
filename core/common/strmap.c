#include "common/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

static int grow(struct strmap *m)
{
    struct strmap n = {0};
    n.cap = m->cap ? m->cap * 2 : 1024;
    n.keys = calloc(n.cap, sizeof *n.keys);
    n.vals = calloc(n.cap, sizeof *n.vals);
    if (!n.keys || !n.vals) {
        free(n.keys);
        free(n.vals);
        return ERR_NOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i]) {
            size_t j = (size_t)fnv(m->keys[i]) & (n.cap - 1);
            while (n.keys[j])
                j = (j + 1) & (n.cap - 1);
            n.keys[j] = m->keys[i];
            n.vals[j] = m->vals[i];
            n.n++;
        }
    }
    free(m->keys);
    free(m->vals);
    *m = n;
    return 0;
}

const char *strmap_get(const struct strmap *m, const char *k)
{
    if (!m->cap)
        return NULL;
    for (size_t j = (size_t)fnv(k) & (m->cap - 1); m->keys[j]; j = (j + 1) & (m->cap - 1)) {
        if (strcmp(m->keys[j], k) == 0)
            return m->vals[j] ? m->vals[j] : "";
    }
    return NULL;
}

int strmap_put(struct strmap *m, const char *k, const char *v)
{
    if ((m->n + 1) * 2 > m->cap)
        TRY(grow(m));
    size_t j = (size_t)fnv(k) & (m->cap - 1);
    while (m->keys[j]) {
        if (strcmp(m->keys[j], k) == 0)
            return 0;
        j = (j + 1) & (m->cap - 1);
    }
    char *key = strdup(k);
    char *val = v ? strdup(v) : NULL;
    if (!key || (v && !val)) {
        free(key);
        free(val);
        return ERR_NOMEM;
    }
    m->keys[j] = key;
    m->vals[j] = val;
    m->n++;
    return 0;
}

void strmap_free(struct strmap *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->keys[i]);
        free(m->vals[i]);
    }
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}
