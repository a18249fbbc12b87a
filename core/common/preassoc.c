#include "preassoc.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int preassoc_init(struct preassoc *p, uint32_t max, uint32_t per_source)
{
    memset(p, 0, sizeof *p);
    p->max = max ? max : 1;
    p->per_source = per_source ? per_source : 1;
    p->cap = 16;
    while (p->cap < 2 * p->max)
        p->cap *= 2;
    p->slots = calloc(p->cap, sizeof *p->slots);
    return p->slots ? 0 : ERR_NOMEM;
}

void preassoc_cleanup(struct preassoc *p)
{
    free(p->slots);
    p->slots = NULL;
}

void preassoc_key(const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET) {
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        key[10] = key[11] = 0xff;
    } else if (sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, v4mapped, 12) == 0)
            memcpy(key, a, 16);
        else
            memcpy(key, a, 8); /* one /64: one site's addresses */
    }
}

static uint32_t hash(const uint8_t key[16])
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 16777619u;
    return h;
}

/* The slot of key, or the free slot where it would go. Linear probing over slots with n > 0;
 * leave() keeps probe chains intact by re-inserting the chain after a removal. */
static struct preassoc_slot *find(struct preassoc *p, const uint8_t key[16])
{
    uint32_t i = hash(key) & (p->cap - 1);
    while (p->slots[i].n && memcmp(p->slots[i].key, key, 16) != 0)
        i = (i + 1) & (p->cap - 1);
    return &p->slots[i];
}

int preassoc_enter(struct preassoc *p, const uint8_t key[16], const char **why)
{
    struct preassoc_slot *s = find(p, key);
    if (s->n >= p->per_source) {
        *why = "pending connections from this source";
        return ERR_LIMIT;
    }
    if (p->total >= p->max) {
        *why = "pending connections";
        return ERR_LIMIT;
    }
    if (!s->n)
        memcpy(s->key, key, 16);
    s->n++;
    p->total++;
    return 0;
}

void preassoc_leave(struct preassoc *p, const uint8_t key[16])
{
    struct preassoc_slot *s = find(p, key);
    if (!s->n)
        return; /* not ours: nothing to give back */
    s->n--;
    p->total--;
    if (s->n)
        return;
    /* the slot is free: move later members of its probe chain back (no tombstones) */
    uint32_t i = (uint32_t)(s - p->slots);
    for (uint32_t j = (i + 1) & (p->cap - 1); p->slots[j].n; j = (j + 1) & (p->cap - 1)) {
        struct preassoc_slot moved = p->slots[j];
        p->slots[j].n = 0;
        *find(p, moved.key) = moved;
    }
}
