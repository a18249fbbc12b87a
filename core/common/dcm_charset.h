/* dcm_charset: Specific Character Set (0008,0005) (PS3.3 C.12.1.1.2, PS3.5 6.1): turn the text
 * of the charset-dependent VRs (SH LO ST LT PN UC UT, PS3.5 6.1.2.3) into UTF-8 and back. Pure:
 * libc only.
 *
 * Supported, each as the single value of (0008,0005):
 *   absent, empty or "ISO_IR 6"  the Default Character Repertoire (ISO IR 6, i.e. ASCII);
 *                                 an empty value and "ISO_IR 6" are tolerated although PS3.3
 *                                 defines neither as a single value;
 *   "ISO_IR 100"                  Latin alphabet No. 1 (ISO 8859-1, without code extensions);
 *   "ISO_IR 192"                  Unicode in UTF-8 (PS3.5 6.1.2.5.3).
 * Refused with ERR_UNSUPPORTED, so that the service can answer a failure status naming the
 * attribute: more than one value (ISO 2022 code extensions, PS3.5 6.1.2.5), any "ISO 2022 IR n"
 * term, every other single-byte set (ISO_IR 101, 109, 110, 144, 127, 126, 138, 148, 203, 13,
 * 166) and the multi-byte ones other than UTF-8 (GB18030, GBK, ISO 2022 IR 87/149/58).
 *
 * In every set, text may hold the printable characters and, as PS3.5 6.1.3 and 6.2 allow them
 * in the free-text VRs, LF, FF, CR and TAB; the caller applies the narrower rules of each VR.
 * ESC (a code extension) is ERR_UNSUPPORTED; any other control, C1 control, byte outside the set
 * or invalid UTF-8 (overlong, surrogate, above U+10FFFF, truncated) is ERR_MALFORMED. */
#ifndef GW_DCM_CHARSET_H
#define GW_DCM_CHARSET_H

#include <stddef.h>
#include <stdint.h>

#include "dcm_ds.h"
#include "err.h"
#include "wbuf.h"

enum dcm_charset {
    DCM_CS_DEFAULT = 0, /* ISO IR 6 */
    DCM_CS_LATIN1 = 1,  /* ISO_IR 100 */
    DCM_CS_UTF8 = 2,    /* ISO_IR 192 */
};

/* The set named by a Specific Character Set element (NULL: absent). Returns 0 or ERR_UNSUPPORTED
 * (see above). */
MUST_CHECK int dcm_charset_from_elem(const struct dcm_elem *e, enum dcm_charset *out);

/* The set declared by (0008,0005) of it (a root dataset): as dcm_charset_from_elem(). */
MUST_CHECK int dcm_charset_of(const struct dcm_item *it, enum dcm_charset *out);

/* The defined term to write in (0008,0005): "" (default: omit the element), "ISO_IR 100" or
 * "ISO_IR 192". Static. */
const char *dcm_charset_term(enum dcm_charset cs);

/* Decode the code point at p[*i] (i < n) and advance *i. Returns 0, ERR_UNSUPPORTED (ESC) or
 * ERR_MALFORMED (see above). */
MUST_CHECK int dcm_charset_next(enum dcm_charset cs, const uint8_t *p, size_t n, size_t *i,
                                uint32_t *cp);

/* Append p[0..n), text in cs, to out as UTF-8. Returns 0, ERR_UNSUPPORTED, ERR_MALFORMED, or
 * out's sticky error (ERR_LIMIT / ERR_NOMEM). Nothing is appended on a decoding error. */
MUST_CHECK int dcm_charset_to_utf8(enum dcm_charset cs, const uint8_t *p, size_t n,
                                   struct wbuf *out);

/* Append p[0..n), UTF-8 text, to out encoded in cs. Returns 0, ERR_MALFORMED (p is not valid
 * UTF-8 text by the rules above), ERR_UNSUPPORTED (a character cs cannot represent: the caller
 * may answer in ISO_IR 192 instead, which PS3.4 C.4.1.1.3.2 permits), or out's sticky error.
 * Nothing is appended on failure. */
MUST_CHECK int dcm_charset_from_utf8(enum dcm_charset cs, const uint8_t *p, size_t n,
                                     struct wbuf *out);

/* Encode cp as UTF-8 into b (room for 4); returns the byte count (1..4). cp <= 0x10FFFF. */
size_t dcm_utf8_put(uint32_t cp, uint8_t b[4]);

#endif
