/* preassoc: the budget of connections that have not yet become associations (PS3.8 Sta2: TLS
 * handshake and A-ASSOCIATE-RQ still to come). It is separate from max_associations and shared
 * fairly: each source address (an IPv4 address, or an IPv6 /64) may hold at most per_source of
 * the max slots, so that idle connections from one place cannot starve everyone else. */
#ifndef GW_PREASSOC_H
#define GW_PREASSOC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/err.h"

struct preassoc_slot {
    uint8_t key[16];
    uint32_t n; /* 0: free */
};

struct preassoc {
    uint32_t max, per_source, total;
    struct preassoc_slot *slots; /* open addressing, 2 * max entries */
    uint32_t cap;
};

/* max >= 1, per_source >= 1. 0 or ERR_NOMEM. */
MUST_CHECK int preassoc_init(struct preassoc *p, uint32_t max, uint32_t per_source);
void preassoc_cleanup(struct preassoc *p);
/* The key of a source address (v4-mapped v6 folded to v4; v6 cut to its /64). */
void preassoc_key(const struct sockaddr *sa, uint8_t key[16]);
/* Take a slot for key: 0, or ERR_LIMIT with *why "pending connections from this source" or
 * "pending connections" (the whole budget). */
MUST_CHECK int preassoc_enter(struct preassoc *p, const uint8_t key[16], const char **why);
/* Give back a slot taken by preassoc_enter. */
void preassoc_leave(struct preassoc *p, const uint8_t key[16]);

#endif
