/* hex: lowercase hexadecimal of bytes (digests, fingerprints), and back. */
#ifndef GW_HEX_H
#define GW_HEX_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Writes 2n lowercase hex digits and a NUL: out holds at least 2n+1 bytes. */
void hex_lower(const uint8_t *p, size_t n, char *out);

/* Decodes the n hex digits of s (either case) into n/2 bytes of out. s is read in order and the
 * first non-hex character stops it, so a NUL-terminated string shorter than n is never read
 * past its NUL. 0, or ERR_MALFORMED (n odd, or a non-hex character: out then holds the bytes
 * before it). */
MUST_CHECK int hex_decode(const char *s, size_t n, uint8_t *out);

#endif
