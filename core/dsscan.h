/* dsscan: a streaming walk of an incoming DICOM dataset, with O(1) memory whatever the object's
 * size. Fed the dataset bytes as they arrive from P-DATA fragments, in any chunking, it checks
 * that the whole dataset is well-formed to its last byte (every element header, sequences and
 * items of defined and undefined length, encapsulated pixel data, the deflate stream to its exact
 * end) and takes the four identifying UIDs on the way (and the Patient ID, for the audit trail
 * only). Values are skipped, never parsed or
 * buffered, except the UIDs it takes. Pure: no I/O, no logs, no globals.
 *
 * What it enforces and what it tolerates (a "glitch": accepted and counted) is listed at the top
 * of dsscan.c with the PS3.5 section of each rule. */
#ifndef GW_DSSCAN_H
#define GW_DSSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define DS_UID_MAX 64    /* PS3.5 9.1: at most 64 characters */
#define DS_MAX_DEPTH 64  /* sequences nested in one another (defined or undefined length) */
#define DS_REASON_MAX 64 /* every reason fits an Error Comment (0000,0902), VR LO: 64 chars */
#define DS_PATIENT_ID_MAX 64 /* PS3.5 6.2: Patient ID (0010,0020) is LO, at most 64 chars */
/* Deflated syntax: the whole inflated dataset is walked; past this many plaintext bytes (unless
 * ds_scan_set_inflate_cap() says otherwise) the object is refused with ERR_LIMIT. A
 * decompression-bomb guard: deflate expands up to ~1032:1 and zlib inflates such runs at about
 * 2.3 ns a byte on the build machine (tests/bench/dsscan_walk --bomb), so the worst case is
 * ~0.25 MiB on the wire for ~0.6 s of CPU. */
#define DS_INFLATE_CAP ((uint64_t)256 << 20)

enum ds_encoding {
    DS_IMPLICIT_LE = 0, /* 1.2.840.10008.1.2 */
    DS_EXPLICIT_LE = 1, /* 1.2.840.10008.1.2.1 and every encapsulated syntax */
    DS_DEFLATED_LE = 2, /* 1.2.840.10008.1.2.1.99: raw deflate (RFC 1951) of explicit VR LE */
};

/* How the top-level Pixel Data (7FE0,0010) was encoded, so that the caller can hold it against
 * the transfer syntax (PS3.5 A.4: encapsulated syntaxes only, and only those, encapsulate). */
enum ds_pixel {
    DS_PIXEL_NONE = 0,         /* no top-level (7FE0,0010) */
    DS_PIXEL_NATIVE = 1,       /* defined length */
    DS_PIXEL_ENCAPSULATED = 2, /* undefined length: offset table item, fragments, delimiter */
};

struct ds_uids {
    char sop_class[DS_UID_MAX + 1];    /* (0008,0016) */
    char sop_instance[DS_UID_MAX + 1]; /* (0008,0018) */
    char study[DS_UID_MAX + 1];        /* (0020,000D) */
    char series[DS_UID_MAX + 1];       /* (0020,000E) */
};

struct ds_scan; /* opaque: ~2.5 KiB, plus a z_stream and a 16 KiB inflate window for deflate */

/* Heap-allocate a scanner for the given encoding. NULL on allocation failure or an unknown enc. */
struct ds_scan *ds_scan_new(enum ds_encoding enc);
void ds_scan_free(struct ds_scan *s); /* NULL is fine */

/* Deflated only: refuse the object once its inflated dataset passes cap bytes (default
 * DS_INFLATE_CAP; 0 restores it). Call before the first feed; later calls are ignored. */
void ds_scan_set_inflate_cap(struct ds_scan *s, uint64_t cap);

/* Feed the next n bytes of the dataset (borrowed for the call only). Every byte of the dataset
 * must be fed, then ds_scan_finish() called. Returns 0 (well-formed so far: keep feeding) or, at
 * the first byte that proves the dataset is not well-formed, ERR_MALFORMED, ERR_LIMIT (nesting
 * deeper than DS_MAX_DEPTH, inflated data over the cap), ERR_TRUNCATED (deflated: the stream
 * ended inside the dataset) or ERR_NOMEM (zlib); the error is sticky and ds_scan_error() says
 * why. Never returns 1 (earlier versions did once the UIDs were
 * found; a caller that stops feeding on 1 still feeds everything). The verdict, the reason, the
 * offset and the UIDs do not depend on how the bytes were chunked. */
MUST_CHECK int ds_scan_feed(struct ds_scan *s, const uint8_t *p, size_t n);

/* Call when the dataset ended (last fragment). Returns 1 if the whole dataset was well-formed:
 * it ended cleanly after a complete top-level element (or was empty), every sequence and item
 * closed, and -- deflated -- the deflate stream ended, followed by at most one NUL pad byte (or
 * by a gzip trailer that matches the data, a glitch).
 * Otherwise a negative code: the stored error of a feed, or ERR_TRUNCATED (it ended inside an
 * element header or value, inside a sequence or encapsulated pixel data, or before the end of
 * the deflate stream), or ERR_MALFORMED (an incomplete header after the last element: trailing
 * bytes, or bytes after the deflate stream). Idempotent. UIDs may still be missing when it
 * returns 1: the caller decides. */
MUST_CHECK int ds_scan_finish(struct ds_scan *s);

/* Why the scan failed: a static string of at most DS_REASON_MAX ASCII characters, fit for the
 * C-STORE response's Error Comment and for logs (no dataset values in it); "" while no error. */
const char *ds_scan_error(const struct ds_scan *s);

/* Offset in the (inflated) dataset of the element header at or in which the scan failed (or
 * where it ended, for a truncation); 0 while no error. For logs. */
uint64_t ds_scan_error_offset(const struct ds_scan *s);

/* Odd-but-tolerated encodings seen so far (see dsscan.c), and the reason of the first one ("" if
 * none): for a per-association glitch counter and one log line. */
uint32_t ds_scan_glitches(const struct ds_scan *s);
const char *ds_scan_glitch(const struct ds_scan *s);

/* The UIDs found so far; a missing one is the empty string. Only top-level elements count. */
const struct ds_uids *ds_scan_uids(const struct ds_scan *s);

/* The top-level Patient ID (0010,0020), its insignificant spaces removed, for the audit trail
 * only (the Patient participant object of PS3.15 A.5.3.3/7): never put it into logs, sidecars,
 * tables or responses. "" while unseen, when empty, or when its value is not a plausible LO (over
 * DS_PATIENT_ID_MAX bytes, a control character other than ESC, a backslash, or a sequence or
 * undefined length); such a value is skipped like any other, never an error. ds_scan_free wipes
 * it. */
const char *ds_scan_patient_id(const struct ds_scan *s);

/* True once no later byte can change ds_scan_uids(): all four were seen, or the top-level element
 * stream passed (0020,000E). The dataset's well-formedness is still open until finish. */
bool ds_scan_uids_final(const struct ds_scan *s);

/* The top-level Pixel Data's encoding seen so far (see enum ds_pixel). */
enum ds_pixel ds_scan_pixel(const struct ds_scan *s);

/* True when s is a syntactically valid UID per PS3.5 9.1: 1..64 chars, digits and dots, no
 * empty component, no leading zero in a multi-digit component. */
bool ds_uid_valid(const char *s);

#endif
