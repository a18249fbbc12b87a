/* proxy_ac: what the edge reads in the core's A-ASSOCIATE-AC: the maximum length of the P-DATA
 * PDUs the modality may send from then on. Pure: bytes in, a number out. */
#ifndef GW_PROXY_AC_H
#define GW_PROXY_AC_H

#include <stddef.h>
#include <stdint.h>

/* pdu[0..len) is a whole A-ASSOCIATE-AC, header included. Returns the acceptor's maximum
 * length (PS3.8 D.1) capped at cap, cap when it is 0 (unlimited) or absent, and fallback when
 * the AC does not parse (or memory runs out). */
uint32_t proxy_ac_max_body(const uint8_t *pdu, size_t len, uint32_t cap, uint32_t fallback);

#endif
