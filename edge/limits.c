#include "limits.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void limits_init(struct limits *l)
{
    memset(l, 0, sizeof *l);
}

void limits_cleanup(struct limits *l)
{
    FREE_NULL(l->clients);
    l->n_clients = l->cap_clients = 0;
}

static void key_of(const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        key[10] = key[11] = 0xff; /* v4-mapped, so one host is one key in either family */
        memcpy(key + 12, &in->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        memcpy(key, &in6->sin6_addr, 16);
        /* one IPv6 host holds a whole /64 (privacy addresses): count the /64 */
        if (!IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            memset(key + 8, 0, 8);
    }
}

static uint32_t hash16(const uint8_t k[16])
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ k[i]) * 16777619u;
    return h;
}

/* The slot of sa's address in tab for this minute (found, or a free/stale/oldest one in the
 * probe run, reset); a full table recycles, so memory never grows with hostile sources. */
static struct limits_src *slot(struct limits_src *tab, const struct sockaddr *sa, uint64_t minute)
{
    uint8_t key[16];
    key_of(sa, key);
    uint32_t h = hash16(key);
    struct limits_src *victim = NULL;
    for (unsigned probe = 0; probe < 8; probe++) {
        struct limits_src *s = &tab[(h + probe) % LIMITS_SRC_SLOTS];
        if (s->used && memcmp(s->addr, key, 16) == 0) {
            if (s->window != minute) {
                s->window = minute;
                s->count = 0;
            }
            return s;
        }
        if (!s->used || s->window != minute) {
            if (!victim || (victim->used && !s->used))
                victim = s;
        } else if (!victim || (victim->used && s->window < victim->window)) {
            victim = s;
        }
    }
    memset(victim, 0, sizeof *victim);
    memcpy(victim->addr, key, 16);
    victim->used = 1;
    victim->window = minute;
    return victim;
}

bool limits_source_allow(struct limits *l, const struct sockaddr *sa, uint64_t now_ms,
                         uint32_t per_minute)
{
    if (per_minute == 0)
        return true;
    struct limits_src *s = slot(l->src, sa, now_ms / 60000u);
    if (s->count >= per_minute)
        return false;
    s->count++;
    return true;
}

int64_t limits_log_allow(struct limits *l, const struct sockaddr *sa, uint64_t now_ms)
{
    struct limits_src *s = slot(l->logs, sa, now_ms / 60000u);
    if (s->count >= LIMITS_LOG_PER_MINUTE) {
        s->suppressed++;
        return -1;
    }
    s->count++;
    int64_t n = s->suppressed;
    s->suppressed = 0;
    return n;
}

static struct limits_client *find(struct limits *l, const char *id)
{
    for (size_t i = 0; i < l->n_clients; i++) {
        if (strcmp(l->clients[i].id, id) == 0)
            return &l->clients[i];
    }
    return NULL;
}

int limits_client_take(struct limits *l, const char *id, uint64_t now_ms, uint32_t max_active,
                       uint32_t max_per_minute, const char **why)
{
    struct limits_client *c = find(l, id);
    if (!c) {
        if (l->n_clients == l->cap_clients) {
            size_t cap = l->cap_clients ? l->cap_clients * 2 : 16;
            if (cap > 100000)
                return ERR_NOMEM;
            struct limits_client *n = realloc(l->clients, cap * sizeof *n);
            if (!n)
                return ERR_NOMEM;
            l->clients = n;
            l->cap_clients = cap;
        }
        c = &l->clients[l->n_clients++];
        memset(c, 0, sizeof *c);
        snprintf(c->id, sizeof c->id, "%s", id);
    }
    uint64_t minute = now_ms / 60000u;
    if (c->window != minute) {
        c->window = minute;
        c->count = 0;
    }
    if (max_active && c->active >= max_active) {
        *why = "max_associations";
        return ERR_LIMIT;
    }
    if (max_per_minute && c->count >= max_per_minute) {
        *why = "max_per_minute";
        return ERR_LIMIT;
    }
    c->active++;
    c->count++;
    return 0;
}

void limits_client_put(struct limits *l, const char *id)
{
    struct limits_client *c = find(l, id);
    if (c && c->active > 0)
        c->active--;
}
