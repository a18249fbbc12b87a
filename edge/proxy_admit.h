/* proxy_admit: the modality's side up to admission: the verified certificate's identity once
 * the handshake is done, the first PDU gathered whole, the policy's decision (admission.c),
 * and the per-client limits; then the upstream is started. */
#ifndef GW_PROXY_ADMIT_H
#define GW_PROXY_ADMIT_H

#include "proxy_int.h"

/* tls_plain_cb of the modality's tls_conn (arg: the edge_conn): gathers the A-ASSOCIATE-RQ
 * until the decision, holds what follows until the splice, then relays. */
int proxy_admit_plain(void *arg, const uint8_t *p, size_t n);
/* tls_ready_cb of the modality's tls_conn: keep the identity, wait for the request. */
int proxy_admit_ready(void *arg);

#endif
