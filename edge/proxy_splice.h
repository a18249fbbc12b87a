/* proxy_splice: after admission, plaintext both ways: each direction follows PDU headers
 * (pdu_follow) to cap lengths and know the boundaries, and stops reading its source while the
 * destination's write queue is above the high mark (STYLE.md §7), until it drains. */
#ifndef GW_PROXY_SPLICE_H
#define GW_PROXY_SPLICE_H

#include "proxy_int.h"

/* The upstream is ready (TCP connected, TLS done): relay the held A-ASSOCIATE-RQ (its called
 * AE title rewritten when the route says so) and start both directions. */
void proxy_splice_begin(struct edge_conn *c);
/* Plaintext from the modality / from upstream during the splice. 0, or CONN_STOP when c was
 * finished (a violation, a lost peer). */
int proxy_splice_to_up(struct edge_conn *c, const uint8_t *p, size_t n);
int proxy_splice_to_down(struct edge_conn *c, const uint8_t *p, size_t n);
/* Send what to_up gathered for a plain-TCP upstream over one read of the modality's socket.
 * 0 or CONN_STOP. */
int proxy_splice_flush_up(void);
/* The upstream went away (closed, reset, a write failed) in the middle of an association:
 * A-ABORT to the modality, then finish. */
void proxy_splice_upstream_lost(struct edge_conn *c, int status);
/* The association is over by the protocol (release, abort, rejection seen on the wire). */
bool proxy_splice_over(const struct edge_conn *c);
/* How it ended, for the audit line. */
const char *proxy_splice_end_name(const struct edge_conn *c);
/* The write queue toward upstream (dst_up) or the modality is down to the low mark: resume
 * reading the other side. */
void proxy_splice_drained(struct edge_conn *c, bool dst_up);

#endif
