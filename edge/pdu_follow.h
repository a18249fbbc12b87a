/* pdu_follow: follows PS3.8 PDU headers through a spliced byte stream without buffering
 * payloads: enforces a maximum PDU length, counts PDUs, and notes the ones that end an
 * association. Pure: bytes in, state out. */
#ifndef GW_PDU_FOLLOW_H
#define GW_PDU_FOLLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/wbuf.h"

/* Which side of the association writes the stream being followed (the PDUs it may send). */
enum pdu_side { PDU_FROM_REQUESTOR, PDU_FROM_ACCEPTOR };

struct pdu_follow {
    uint32_t max_body;  /* P-DATA-TF body cap, the negotiated maximum (PS3.8 D.1) */
    enum pdu_side side;
    uint8_t hdr[6];
    uint8_t hdr_have;
    uint64_t body_left;
    uint64_t pdus;      /* headers seen */
    uint8_t type;       /* of the PDU in progress or last seen */
    bool saw_release_rp, saw_abort, saw_ac, saw_rj;
    bool keep_first;    /* collect the first PDU whole into first (for the A-ASSOCIATE-AC) */
    struct wbuf first;
};

/* max_body: cap on P-DATA-TF bodies (every other PDU is capped at UL_PRE_ASSOC_MAX); side:
 * who writes the stream; keep_first: collect the first PDU (capped at 64 KiB). */
void pdu_follow_init(struct pdu_follow *f, uint32_t max_body, enum pdu_side side,
                     bool keep_first);
void pdu_follow_cleanup(struct pdu_follow *f);
/* Walk p[0..n). 0, or ERR_LIMIT when a header declares a body over its cap (*f then tells
 * the type), or ERR_MALFORMED for an unknown PDU type or one its side may not send here: an
 * A-ASSOCIATE-RQ other than the requestor's first PDU, an A-ASSOCIATE-AC or -RJ from the
 * requestor, an A-ASSOCIATE-RQ from the acceptor. */
MUST_CHECK int pdu_follow_feed(struct pdu_follow *f, const uint8_t *p, size_t n);
/* Between two PDUs (an injected A-ABORT would not cut one in half). */
static inline bool pdu_follow_at_boundary(const struct pdu_follow *f)
{
    return f->hdr_have == 0 && f->body_left == 0;
}
/* The first PDU is complete in f->first. */
bool pdu_follow_first_done(const struct pdu_follow *f);

#endif
