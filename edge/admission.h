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
    uint32_t asked;   /* the services the contexts ask for (GRANT_* bits, sop_service.h) */
    uint32_t denied;  /* those of them the client may not use */
    const struct policy_route *route; /* reverse path: the device's return route */
};

/* Who may use the reverse path besides what its CA bundle says: the subject CNs listed (none
 * listed: any certificate the reverse listener's CA signs). */
struct adm_reverse_rules {
    const char (*allow_cn)[257];
    size_t n_allow_cn;
};

/* Decide on p[0..n), the bytes received so far after the TLS handshake. Returns ADM_NEED_MORE
 * until the first PDU is whole (bounded: a PDU over UL_PRE_ASSOC_MAX is aborted at once, from
 * its header), then the verdict with *d filled. Per-client limits are the caller's (they need
 * state); everything else is decided here. id is the verified peer certificate. */
enum adm_verdict admission_decide(const struct policy *pol, const struct tls_peer_id *id,
                                  const uint8_t *p, size_t n, struct adm_decision *d);
/* The client's services against the contexts proposed: an association whose contexts all ask
 * for services it may not use (none it may, at least one it may not) is refused (permanent,
 * service-user, no-reason-given: PS3.8 9.3.4 has no reason "service not permitted"); a mixed
 * proposal goes through and the core rejects the contexts not granted (defence in depth).
 * Contexts of services we do not know are left to the core. */

/* The same for the reverse path (the core, in the VPC, calling a device on the hospital LAN
 * through the edge): the request's called AE title names the device (policy_device), whose
 * services must cover every context proposed (an unknown abstract syntax is refused). A
 * certificate outside rules, when it lists CNs: permanent, service-user, calling AE title not
 * recognised (3); no such device, or a context it is not granted: called AE title not
 * recognised (7). On admission d->client is the device's entry and d->route its return route. */
enum adm_verdict admission_reverse(const struct policy *pol, const struct adm_reverse_rules *rules,
                                   const struct tls_peer_id *id, const uint8_t *p, size_t n,
                                   struct adm_decision *d);

#endif
