/* hex: hexadecimal of bytes (digests, fingerprints), both ways. */
#ifndef GW_HEX_H
#define GW_HEX_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Writes 2n lowercase hex digits and a NUL: out holds at least 2n+1 bytes. */
void hex_lower(const uint8_t *p, size_t n, char *out);

/* The value of one hex digit (either case), or -1 when ch is not one. */
int hex_value(char ch);

/* Decode hexlen hex digits (either case, nothing else: no NUL needed) into out. The digits are
 * read in order and the first non-hex character stops it, so a NUL-terminated string shorter
 * than hexlen is never read past its NUL. Returns the bytes written (hexlen / 2), or
 * ERR_MALFORMED for an odd count, a non-hex character (out then holds the bytes before it), or
 * more bytes than outcap. */
MUST_CHECK int hex_decode(const char *hex, size_t hexlen, uint8_t *out, size_t outcap);

#endif
