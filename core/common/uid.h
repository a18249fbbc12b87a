/* uid: DICOM UID syntax (PS3.5 9.1), for every layer that checks one before using it as a key,
 * a file name or a query parameter. Pure. */
#ifndef GW_UID_H
#define GW_UID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UID_MAX 64 /* PS3.5 9.1: at most 64 characters */

/* True when p[0..n) is a valid UID: 1..64 characters of digits and dots, no empty component,
 * no leading zero in a multi-digit component. An embedded NUL is just a bad character. */
bool uid_valid_n(const uint8_t *p, size_t n);
/* The same for a NUL-terminated string; reads at most 65 bytes of s. */
bool uid_valid(const char *s);

#endif
