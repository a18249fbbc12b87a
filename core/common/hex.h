/* hex: lowercase hexadecimal of bytes (digests, fingerprints). */
#ifndef GW_HEX_H
#define GW_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Writes 2n lowercase hex digits and a NUL: out holds at least 2n+1 bytes. */
void hex_lower(const uint8_t *p, size_t n, char *out);

#endif
