#include "admission.h"

#include <stdlib.h>
#include <string.h>

#include "sop_service.h"

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

/* Frame and parse the first PDU into *rq (heap, ~140 KiB: never on the stack; the caller frees
 * it). ADM_NEED_MORE, ADM_ABORT (d filled), or ADM_ADMIT meaning "parsed, decide now". */
static enum adm_verdict parse_rq(const uint8_t *p, size_t n, struct adm_decision *d,
                                 struct ul_assoc_rq **rq)
{
    memset(d, 0, sizeof *d);
    *rq = NULL;
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
    struct ul_assoc_rq *r = calloc(1, sizeof *r);
    if (!r)
        return abort_with(d, UL_ABORT_NOT_SPECIFIED, "out_of_memory");
    struct rd body = rd_make(p + UL_HDR_LEN, body_len);
    uint8_t abort_reason = UL_ABORT_INVALID_PARAM;
    if (ul_parse_assoc_rq(&body, r, &abort_reason) < 0) {
        free(r);
        return abort_with(d, abort_reason, "malformed_rq");
    }
    memcpy(d->calling, r->calling, sizeof d->calling);
    memcpy(d->called, r->called, sizeof d->called);
    d->max_len = r->ui.has_max_len ? r->ui.max_len : 0;
    *rq = r;
    return ADM_ADMIT;
}

static enum adm_verdict decide(const struct policy *pol, const struct tls_peer_id *id,
                               const struct ul_assoc_rq *rq, struct adm_decision *d)
{
    if (!(rq->protocol_version & 0x1))
        return reject(d, UL_RJ_PERMANENT, UL_RJ_SRC_ACSE, UL_RJ_ACSE_PROTOCOL_VERSION,
                      "protocol_version");
    /* the first entry for this certificate whose AE titles fit; else the first entry's
     * verdict (calling AE before called AE, PS3.8 9.3.4 reasons 3 and 7) */
    const struct policy_client *first = id ? policy_match(pol, id, NULL) : NULL;
    if (!first)
        return reject(d, UL_RJ_PERMANENT, UL_RJ_SRC_USER, UL_RJ_USER_CALLING_AE,
                      "certificate_not_in_policy");
    bool bad = rq->calling_bad || rq->called_bad;
    for (const struct policy_client *c = first; c; c = policy_match(pol, id, c)) {
        if (!bad && policy_calling_ok(c, d->calling) && policy_called_ok(c, d->called)) {
            d->client = c;
            break;
        }
    }
    if (!d->client) {
        d->client = first;
        if (rq->calling_bad || !policy_calling_ok(first, d->calling))
            return reject(d, UL_RJ_PERMANENT, UL_RJ_SRC_USER, UL_RJ_USER_CALLING_AE,
                          "calling_ae_not_allowed");
        return reject(d, UL_RJ_PERMANENT, UL_RJ_SRC_USER, UL_RJ_USER_CALLED_AE,
                      "called_ae_not_allowed");
    }
    struct sop_proposal sp;
    sop_service_check(rq, d->client->grants.services, &sp);
    d->asked = sp.asked;
    d->denied = sp.denied;
    if (sp.n_allowed == 0 && sp.n_denied > 0)
        return reject(d, UL_RJ_PERMANENT, UL_RJ_SRC_USER, UL_RJ_USER_NO_REASON,
                      "service_not_allowed");
    d->verdict = ADM_ADMIT;
    d->why = "admitted";
    return ADM_ADMIT;
}

enum adm_verdict admission_decide(const struct policy *pol, const struct tls_peer_id *id,
                                  const uint8_t *p, size_t n, struct adm_decision *d)
{
    struct ul_assoc_rq *rq;
    enum adm_verdict v = parse_rq(p, n, d, &rq);
    if (v != ADM_ADMIT)
        return v;
    v = decide(pol, id, rq, d);
    free(rq);
    return v;
}

static bool cn_allowed(const struct adm_reverse_rules *rules, const struct tls_peer_id *id)
{
    if (!rules || rules->n_allow_cn == 0)
        return id != NULL;
    for (size_t i = 0; id && i < rules->n_allow_cn; i++) {
        if (id->cn[0] && strcmp(rules->allow_cn[i], id->cn) == 0)
            return true;
    }
    return false;
}

static enum adm_verdict decide_reverse(const struct policy *pol,
                                       const struct adm_reverse_rules *rules,
                                       const struct tls_peer_id *id, const struct ul_assoc_rq *rq,
                                       struct adm_decision *d)
{
    if (!(rq->protocol_version & 0x1))
        return reject(d, UL_RJ_PERMANENT, UL_RJ_SRC_ACSE, UL_RJ_ACSE_PROTOCOL_VERSION,
                      "protocol_version");
    if (!cn_allowed(rules, id))
        return reject(d, UL_RJ_PERMANENT, UL_RJ_SRC_USER, UL_RJ_USER_CALLING_AE,
                      "reverse_identity_not_allowed");
    const struct policy_client *dev = rq->called_bad ? NULL : policy_device(pol, d->called);
    if (!dev)
        return reject(d, UL_RJ_PERMANENT, UL_RJ_SRC_USER, UL_RJ_USER_CALLED_AE,
                      "called_ae_not_recognized");
    d->client = dev;
    struct sop_proposal sp;
    sop_service_check(rq, dev->grants.services, &sp);
    d->asked = sp.asked;
    d->denied = sp.denied;
    /* the device cannot tell the core's contexts apart by grants: every one must be granted */
    if (sp.n_denied > 0 || sp.n_unknown > 0 || sp.n_allowed == 0)
        return reject(d, UL_RJ_PERMANENT, UL_RJ_SRC_USER, UL_RJ_USER_CALLED_AE,
                      sp.n_unknown > 0 ? "reverse_service_unknown" : "reverse_service_not_allowed");
    d->route = &pol->returns[dev->ret_route];
    d->verdict = ADM_ADMIT;
    d->why = "admitted";
    return ADM_ADMIT;
}

enum adm_verdict admission_reverse(const struct policy *pol, const struct adm_reverse_rules *rules,
                                   const struct tls_peer_id *id, const uint8_t *p, size_t n,
                                   struct adm_decision *d)
{
    struct ul_assoc_rq *rq;
    enum adm_verdict v = parse_rq(p, n, d, &rq);
    if (v != ADM_ADMIT)
        return v;
    v = decide_reverse(pol, rules, id, rq, d);
    free(rq);
    return v;
}
