#include "pdu_follow.h"

#include <string.h>

#include "common/ul.h"

void pdu_follow_init(struct pdu_follow *f, uint32_t max_body, enum pdu_side side,
                     bool keep_first)
{
    memset(f, 0, sizeof *f);
    f->max_body = max_body;
    f->side = side;
    f->keep_first = keep_first;
    wbuf_init(&f->first, UL_PRE_ASSOC_MAX + UL_HDR_LEN);
}

void pdu_follow_cleanup(struct pdu_follow *f)
{
    wbuf_cleanup(&f->first);
}

bool pdu_follow_first_done(const struct pdu_follow *f)
{
    return f->pdus > 1 || (f->pdus == 1 && f->body_left == 0);
}

static int on_header(struct pdu_follow *f)
{
    uint32_t len = (uint32_t)f->hdr[2] << 24 | (uint32_t)f->hdr[3] << 16 |
                   (uint32_t)f->hdr[4] << 8 | f->hdr[5];
    f->type = f->hdr[0];
    f->pdus++;
    if (f->type < UL_ASSOC_RQ || f->type > UL_ABORT)
        return ERR_MALFORMED;
    bool from_rq = f->side == PDU_FROM_REQUESTOR;
    if ((f->type == UL_ASSOC_RQ && (!from_rq || f->pdus > 1)) ||
        ((f->type == UL_ASSOC_AC || f->type == UL_ASSOC_RJ) && from_rq))
        return ERR_MALFORMED;
    /* PS3.8 D.1: the negotiated maximum bounds P-DATA-TF PDUs only */
    if (len > (f->type == UL_P_DATA_TF ? f->max_body : UL_PRE_ASSOC_MAX))
        return ERR_LIMIT;
    switch (f->type) {
    case UL_RELEASE_RP: f->saw_release_rp = true; break;
    case UL_ABORT: f->saw_abort = true; break;
    case UL_ASSOC_AC: f->saw_ac = true; break;
    case UL_ASSOC_RJ: f->saw_rj = true; break;
    default: break;
    }
    f->body_left = len;
    return 0;
}

int pdu_follow_feed(struct pdu_follow *f, const uint8_t *p, size_t n)
{
    while (n > 0) {
        size_t used;
        if (f->body_left == 0) {
            size_t want = sizeof f->hdr - f->hdr_have;
            used = n < want ? n : want;
            memcpy(f->hdr + f->hdr_have, p, used);
            f->hdr_have = (uint8_t)(f->hdr_have + used);
            if (f->pdus == 0 && f->keep_first)
                wbuf_put(&f->first, p, used);
            if (f->hdr_have == sizeof f->hdr) {
                f->hdr_have = 0;
                TRY(on_header(f));
            }
        } else {
            used = (uint64_t)n < f->body_left ? n : (size_t)f->body_left;
            if (f->pdus == 1 && f->keep_first)
                wbuf_put(&f->first, p, used); /* capped: an over-long first PDU sets err */
            f->body_left -= used;
        }
        p += used;
        n -= used;
    }
    return 0;
}
