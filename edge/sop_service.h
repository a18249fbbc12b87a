/* sop_service: which service (common/grants.h bit) a presentation context of an
 * A-ASSOCIATE-RQ asks for, read from its abstract syntax and the role the requestor proposes for
 * it, and the edge's verdict on a whole proposal against a client's services. Pure.
 *
 *   Verification 1.2.840.10008.1.1                                   echo
 *   a Storage SOP Class (common/sop_registry.h)                       store; get when the
 *                                                                     requestor asks for the SCP
 *                                                                     role only (C-GET
 *                                                                     sub-operations, PS3.4 C.4.3)
 *   Patient Root, Study Root (and the retired Patient/Study Only)
 *   Q/R Information Models FIND / GET / MOVE (PS3.4 C.6),
 *   Composite Instance Root Retrieve GET / MOVE and Composite
 *   Instance Retrieve Without Bulk Data GET (PS3.4 Y, Z)              find / get / move
 *   Storage Commitment Push Model 1.2.840.10008.1.20.1 (and the
 *   retired Pull Model 1.2.840.10008.1.20.2)                          commit
 *   anything else                                                     0 (unknown) */
#ifndef GW_SOP_SERVICE_H
#define GW_SOP_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ul.h"

#define SOP_COMMITMENT_PUSH "1.2.840.10008.1.20.1"

/* The services abstract (a NUL-terminated UID without padding) asks for: GRANT_* bits, or 0
 * when it is none we know. scu / scp: the requestor's role proposal for it (PS3.8 D.3.3.4;
 * without an item: scu true, scp false). A storage class with scp set asks for store (when scu
 * is set too) and get (C-GET sub-operations). */
uint32_t sop_service_of(const char *abstract, bool scu, bool scp);

/* A proposal's presentation contexts counted against the services granted. */
struct sop_proposal {
    unsigned n_allowed; /* its services intersect the grant */
    unsigned n_denied;  /* a known service, none of it granted */
    unsigned n_unknown; /* no service we know (a private SOP class, worklist ...) */
    uint32_t asked;     /* every known service asked for */
    uint32_t denied;    /* the services of the denied contexts */
};

/* Count rq's contexts (their abstract syntaxes and role items) against granted (GRANT_* bits). */
void sop_service_check(const struct ul_assoc_rq *rq, uint32_t granted, struct sop_proposal *out);

/* The names of the services in bits, comma-separated ("store,commit"; "" for none) into out
 * (cap bytes with the NUL; only the whole names that fit). */
void sop_service_names(uint32_t bits, char *out, size_t cap);

#endif
