/* grants: what a client may do beyond connecting: the DIMSE services it may use and the studies
 * it may read. The edge decides them from its policy (per client certificate), carries them to
 * the core in a PROXY v2 TLV (net/proxy2.h, PP2_TYPE_GW_GRANTS) as text, and the core enforces
 * them; for direct connections the core's own configuration gives them per calling AE title.
 * Text form: "services=store,echo,find;scope=own" (either part may be absent). Pure. */
#ifndef GW_GRANTS_H
#define GW_GRANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum grant_service {
    GRANT_STORE = 1u << 0,  /* C-STORE */
    GRANT_ECHO = 1u << 1,   /* C-ECHO */
    GRANT_FIND = 1u << 2,   /* C-FIND */
    GRANT_GET = 1u << 3,    /* C-GET */
    GRANT_MOVE = 1u << 4,   /* C-MOVE */
    GRANT_COMMIT = 1u << 5, /* Storage Commitment (N-ACTION, N-EVENT-REPORT) */
};
#define GRANT_DEFAULT_SERVICES (GRANT_STORE | GRANT_ECHO) /* what a policy entry meant before */

/* Which studies a client's reads may reach (DESIGN.md invariant 6; the default grants none). */
enum grant_scope {
    GRANT_SCOPE_NONE = 0,   /* no reads */
    GRANT_SCOPE_OWN = 1,    /* studies whose instances this client sent */
    GRANT_SCOPE_SHARED = 2, /* studies shared with it (grants with an expiry), and its own */
    GRANT_SCOPE_ALL = 3,
};

struct grants {
    uint32_t services; /* enum grant_service bits */
    enum grant_scope scope;
};

#define GRANTS_TEXT_MAX 128

/* A service name ("store", "echo", "find", "get", "move", "commit") to its bit, 0 if unknown. */
uint32_t grants_service_bit(const char *name, size_t len);
/* A scope name ("none", "own", "shared", "all"); ERR_MALFORMED if unknown. */
MUST_CHECK int grants_scope_parse(const char *name, size_t len, enum grant_scope *out);
const char *grants_scope_name(enum grant_scope s);
/* Parse the text form (n bytes, no NUL needed). Unknown service names, a bad scope, anything
 * but "services=" and "scope=" parts: ERR_MALFORMED (the receiver then trusts nothing). Absent
 * parts: services GRANT_DEFAULT_SERVICES, scope none. */
MUST_CHECK int grants_parse(const char *text, size_t n, struct grants *out);
/* The text form into out (cap bytes with the NUL). 0 or ERR_LIMIT. */
MUST_CHECK int grants_format(const struct grants *g, char *out, size_t cap);

#endif
