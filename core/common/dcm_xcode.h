/* dcm_xcode: a streaming transcoder of a dataset from Explicit VR Little Endian to Implicit VR
 * Little Endian (PS3.5 7.1.2 to 7.1.3, A.1), for a retrieve whose receiver accepted only the
 * default transfer syntax. Fed the dataset in any chunking, it writes each element header again
 * (tag and a 32-bit length: the VR is dropped) and copies values through, so memory stays O(1)
 * whatever the object's size. Pure: libc only.
 *
 * What changes besides the headers:
 *  - sequences and items of defined length become undefined length, closed by delimitation
 *    items (PS3.5 7.5.2): the explicit headers inside them shrink, so their old lengths would be
 *    wrong, and a reader of Implicit VR that does not know a (private) sequence's tag can still
 *    read it as one (PS3.5 6.2.2 note);
 *  - group length elements (gggg,0000), retired in datasets, are dropped (their values would
 *    no longer hold);
 *  - an explicit UN of undefined length already holds Implicit VR items (PS3.5 6.2.2): copied.
 * Refused (ERR_MALFORMED, sticky): an element of undefined length other than SQ or UN (an
 * encapsulated Pixel Data belongs to a compressed syntax, not to Explicit VR LE), a delimiter
 * that closes nothing, a value that overruns its sequence or item, nesting past
 * DCM_XCODE_DEPTH (ERR_LIMIT). */
#ifndef GW_DCM_XCODE_H
#define GW_DCM_XCODE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "wbuf.h"

#define DCM_XCODE_DEPTH 32u

struct dcm_xcode;

/* A new transcoder at the start of a dataset; NULL when malloc fails. */
struct dcm_xcode *dcm_xcode_new(void);
void dcm_xcode_free(struct dcm_xcode *x); /* NULL is fine */

/* Transcode the next n bytes, appending the result to out (at most 2n + 16 bytes: each closed
 * container adds an 8-byte delimiter). 0, ERR_MALFORMED, ERR_LIMIT, or out's sticky error. */
MUST_CHECK int dcm_xcode_feed(struct dcm_xcode *x, const uint8_t *p, size_t n, struct wbuf *out);

/* The input ended: close the containers whose defined length ended with it (appending their
 * delimiters to out). 0, or ERR_TRUNCATED when the dataset ended inside an element or an open
 * container, or the sticky error. */
MUST_CHECK int dcm_xcode_finish(struct dcm_xcode *x, struct wbuf *out);

#endif
