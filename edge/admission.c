#include "admission.h"

#include <stdlib.h>
#include <string.h>

static enum adm_verdict abort_with(struct adm_decision *d, uint8_t reason, const char *why)
{
    d->verdict = ADM_ABORT;
    d->source = UL_ABORT_SRC_PROVIDER;
    d->reason = reason;
    d->why = why;
    return ADM_ABORT;
}

static enum adm_verdict reject(struct adm_decision *d, uint8_t result, uint8_t source,
                               uint8_t reason, const char *why)
{
    d->verdict = ADM_REJECT;
    d->result = result;
    d->source = source;
    d->reason = reason;
    d->why = why;
    return ADM_REJECT;
}

enum adm_verdict admission_decide(const struct policy *pol, const struct tls_peer_id *id,
                                  const uint8_t *p, size_t n, struct adm_decision *d)
{
    memset(d, 0, sizeof *d);
    uint8_t type = 0;
    uint32_t body_len = 0;
    int64_t framed = ul_frame(p, n, UL_PRE_ASSOC_MAX, &type, &body_len);
    if (n >= 1 && p[0] != UL_ASSOC_RQ) /* decide from the first byte: nothing else may come */
        return abort_with(d, UL_ABORT_UNEXPECTED_PDU, "not_associate_rq");
    if (framed == ERR_LIMIT)
        return abort_with(d, UL_ABORT_INVALID_PARAM, "rq_too_large");
    if (framed <= 0)
        return ADM_NEED_MORE;
    d->pdu_type = type;
    d->pdu_len = (size_t)framed;

    struct ul_assoc_rq *rq = malloc(sizeof *rq); /* ~140 KiB: never on the stack */
    if (!rq)
        return abort_with(d, UL_ABORT_NOT_SPECIFIED, "out_of_memory");
    memset(rq, 0, sizeof *rq);
    struct rd body = rd_make(p + UL_HDR_LEN, body_len);
    uint8_t abort_reason = UL_ABORT_INVALID_PARAM;
    int rc = ul_parse_assoc_rq(&body, rq, &abort_reason);
    if (rc < 0) {
        free(rq);
        return abort_with(d, abort_reason, "malformed_rq");
    }
    memcpy(d->calling, rq->calling, sizeof d->calling);
    memcpy(d->called, rq->called, sizeof d->called);
    d->max_len = rq->ui.has_max_len ? rq->ui.max_len : 0;
    bool calling_bad = rq->calling_bad, called_bad = rq->called_bad;
    uint16_t version = rq->protocol_version;
    free(rq);

    if (!(version & 0x1))
        return reject(d, UL_RJ_PERMANENT, UL_RJ_SRC_ACSE, UL_RJ_ACSE_PROTOCOL_VERSION,
                      "protocol_version");
    /* the first entry for this certificate whose AE titles fit; else the first entry's
     * verdict (calling AE before called AE, PS3.8 9.3.4 reasons 3 and 7) */
    const struct policy_client *first = id ? policy_match(pol, id, NULL) : NULL;
    if (!first)
        return reject(d, UL_RJ_PERMANENT, UL_RJ_SRC_USER, UL_RJ_USER_CALLING_AE,
                      "certificate_not_in_policy");
    for (const struct policy_client *c = first; c; c = policy_match(pol, id, c)) {
        if (!calling_bad && !called_bad && policy_calling_ok(c, d->calling) &&
            policy_called_ok(c, d->called)) {
            d->client = c;
            break;
        }
    }
    if (!d->client) {
        d->client = first;
        if (calling_bad || !policy_calling_ok(first, d->calling))
            return reject(d, UL_RJ_PERMANENT, UL_RJ_SRC_USER, UL_RJ_USER_CALLING_AE,
                          "calling_ae_not_allowed");
        return reject(d, UL_RJ_PERMANENT, UL_RJ_SRC_USER, UL_RJ_USER_CALLED_AE,
                      "called_ae_not_allowed");
    }
    d->verdict = ADM_ADMIT;
    d->why = "admitted";
    return ADM_ADMIT;
}
