/* proxy_write: the write path of both legs, each a net/stream over its socket: set-up, the
 * output callbacks of the two tls_conns, what a failed write means in each phase, and the PDUs
 * the edge writes itself (A-ASSOCIATE-RJ and A-ABORT). */
#ifndef GW_PROXY_WRITE_H
#define GW_PROXY_WRITE_H

#include "admission.h"
#include "proxy_int.h"

/* Set up c->s_down on c->down (accepted) / c->s_up on c->up (initialised), with the
 * backpressure marks of the configuration. */
void proxy_write_init_down(struct edge_conn *c);
void proxy_write_init_up(struct edge_conn *c);
/* tls_out_cb of the modality's / the upstream's tls_conn (arg: the edge_conn; takes buf). */
int proxy_write_down_out(void *arg, uint8_t *buf, size_t n);
int proxy_write_up_out(void *arg, uint8_t *buf, size_t n);
/* An A-ABORT (service provider, reason 0) to the modality (to_down) or upstream, but only
 * between two PDUs of that direction (else the peer learns from the transport closing). */
void proxy_write_abort(struct edge_conn *c, bool to_down);
/* Audit the refusal, answer A-ASSOCIATE-RJ (result, source, reason) and finish. d may be NULL. */
void proxy_write_refuse(struct edge_conn *c, uint8_t result, uint8_t source, uint8_t reason,
                        const char *why, const struct adm_decision *d);
/* Audit, answer A-ABORT (service provider, reason) to the modality and finish. */
void proxy_write_abort_down(struct edge_conn *c, uint8_t reason, const char *why,
                            const struct adm_decision *d);

#endif
