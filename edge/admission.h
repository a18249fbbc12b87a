/* admission: the edge's decision on the first PDU of a connection (pure: bytes, certificate
 * identity and policy in, verdict out). PS3.8 9.3.4 for the rejections, 9.3.8 for aborts. */
#ifndef GW_ADMISSION_H
#define GW_ADMISSION_H

#include <stddef.h>
#include <stdint.h>

#include "common/ul.h"
#include "net/tls_ctx.h"
#include "policy.h"

enum adm_verdict {
    ADM_NEED_MORE = 0, /* the first PDU is not complete yet */
    ADM_ADMIT = 1,
    ADM_REJECT = 2,    /* answer A-ASSOCIATE-RJ result/source/reason */
    ADM_ABORT = 3,     /* answer A-ABORT (service provider, reason) */
};

struct adm_decision {
    enum adm_verdict verdict;
    uint8_t result, source, reason; /* RJ fields, or the A-ABORT reason */
    const char *why;                /* short, for the audit line and metrics labels */
    const struct policy_client *client; /* the matched entry (NULL if none) */
    size_t pdu_len;                 /* header included (when complete) */
    uint8_t pdu_type;
    char calling[UL_AE_LEN + 1], called[UL_AE_LEN + 1];
    uint32_t max_len; /* the requestor's maximum PDU length (0: unlimited) */
};

/* Decide on p[0..n), the bytes received so far after the TLS handshake. Returns ADM_NEED_MORE
 * until the first PDU is whole (bounded: a PDU over UL_PRE_ASSOC_MAX is aborted at once, from
 * its header), then the verdict with *d filled. Per-client limits are the caller's (they need
 * state); everything else is decided here. id is the verified peer certificate. */
enum adm_verdict admission_decide(const struct policy *pol, const struct tls_peer_id *id,
                                  const uint8_t *p, size_t n, struct adm_decision *d);

#endif
