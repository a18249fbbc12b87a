/* core_audit_int: what core_audit's two files share (core_audit.c: the program, the association's
 * events, queries, accesses and commitments; core_audit_xfer.c: the per-association, per-study
 * accounting of instances transferred). Not for other modules. */
#ifndef GW_CORE_AUDIT_INT_H
#define GW_CORE_AUDIT_INT_H

#include "audit/audit.h"
#include "core_audit.h"

struct xfer_acct;

/* ctx->audit: the library's handle and what the core keeps for it. */
struct core_audit {
    struct audit *au;
    struct xfer_acct *accts; /* associations that moved instances, newest first */
};

/* The other node of an association as the library describes it; strings point into the
 * struct (or the association, for the call's duration). */
struct core_party {
    struct audit_party p;
    const char *our_ae; /* the AE title the peer addressed (ours), or NULL */
    bool tls;
    char ip[64];
};

/* Who is at the other end of a (the called AE title when we opened it, else the calling). */
void core_party_of(const struct assoc *a, struct core_party *out);
/* The numeric address of "addr:port" or "[v6]:port" into out. */
void core_party_ip(const char *peer, char *out, size_t cap);
/* The library's handle for a's program, or NULL (audit off). */
struct audit *core_audit_of(const struct assoc *a);
/* Success (0000) or a warning (Bxxx, also 0001 and 0107/0116: coercions and attribute warnings,
 * PS3.7 C.4). */
bool core_audit_status_ok(uint16_t status);

/* core_audit_xfer.c: every association's totals now (at stop), then free them. */
void core_audit_xfer_flush_all(struct core_audit *ca);

#endif
