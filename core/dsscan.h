/* dsscan: a streaming scanner that reads just enough of an incoming DICOM dataset to take its
 * identifying UIDs, with O(1) memory whatever the object's size. It is fed the dataset bytes as
 * they arrive from P-DATA fragments, in any chunking, and never buffers element values other than
 * the UIDs it wants. Pure: no I/O, no logs, no globals. */
#ifndef GW_DSSCAN_H
#define GW_DSSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define DS_UID_MAX 64        /* PS3.5 9.1: at most 64 characters */
#define DS_MAX_DEPTH 16      /* nesting of undefined-length sequences we follow before giving up */

enum ds_encoding {
    DS_IMPLICIT_LE = 0, /* 1.2.840.10008.1.2 */
    DS_EXPLICIT_LE = 1, /* 1.2.840.10008.1.2.1 and every encapsulated syntax */
    DS_DEFLATED_LE = 2, /* 1.2.840.10008.1.2.1.99: raw deflate (RFC 1951) of explicit VR LE */
};

struct ds_uids {
    char sop_class[DS_UID_MAX + 1];    /* (0008,0016) */
    char sop_instance[DS_UID_MAX + 1]; /* (0008,0018) */
    char study[DS_UID_MAX + 1];        /* (0020,000D) */
    char series[DS_UID_MAX + 1];       /* (0020,000E) */
};

struct ds_scan; /* opaque: holds a z_stream and a 16 KiB inflate window for deflate */

/* Heap-allocate a scanner for the given encoding. NULL on allocation failure or an unknown enc. */
struct ds_scan *ds_scan_new(enum ds_encoding enc);
void ds_scan_free(struct ds_scan *s); /* NULL is fine */

/* Feed the next n bytes of the dataset (borrowed for the call only). Returns:
 *   1  the scan is finished (either all four UID elements were seen, or the top-level element
 *      stream passed (0020,000E), so no later bytes can change the result, or -- deflated only --
 *      64 MiB of plaintext were scanned without finishing, a decompression-bomb guard); later
 *      feeds are ignored and return 1;
 *   0  need more bytes;
 *   ERR_MALFORMED for bytes that cannot be a dataset in this encoding (bad VR, undefined length
 *      where PS3.5 forbids it, a UID value longer than 64 or with characters outside [0-9.]
 *      once its trailing NUL/space padding is removed, a top-level UID element that appears
 *      twice, a misplaced item or delimiter, nesting deeper than DS_MAX_DEPTH undefined-length
 *      sequences, bad deflate stream); ERR_NOMEM if zlib cannot allocate -- the scanner stays in
 *      the error state.
 * Top-level elements only are taken: UIDs inside sequences are skipped. A UID element of length
 * 0 (or only padding) counts as seen, with the empty string as its value. */
MUST_CHECK int ds_scan_feed(struct ds_scan *s, const uint8_t *p, size_t n);

/* Call when the dataset ended (last fragment). Returns 1 if the scan finished, or the data ended
 * cleanly between two top-level elements (even before group 0020 ended, so UIDs may be missing:
 * the caller decides what that means); ERR_TRUNCATED if it ended anywhere else (in an element
 * header, in any value, inside an undefined-length sequence, or before the end of the deflate
 * stream); the stored error if a feed failed. */
MUST_CHECK int ds_scan_finish(struct ds_scan *s);

/* The UIDs found so far; a missing one is the empty string. */
const struct ds_uids *ds_scan_uids(const struct ds_scan *s);

/* True when s is a syntactically valid UID per PS3.5 9.1: 1..64 chars, digits and dots, no
 * empty component, no leading zero in a multi-digit component. */
bool ds_uid_valid(const char *s);

#endif
