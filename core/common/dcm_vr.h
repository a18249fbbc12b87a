/* dcm_vr: the DICOM Value Representations (PS3.5 6.2) as data: how each is encoded (explicit VR
 * header length, padding, value unit), which padding is insignificant, and a validator for the
 * values we write. Pure: libc only. */
#ifndef GW_DCM_VR_H
#define GW_DCM_VR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* A VR is its two ASCII characters as a big-endian 16-bit number: DCM_VR_PN == 'P' << 8 | 'N'. */
#define DCM_VR_CODE(a, b) (((unsigned)(a) << 8) | (unsigned)(b))

enum dcm_vr {
    DCM_VR_AE = DCM_VR_CODE('A', 'E'),
    DCM_VR_AS = DCM_VR_CODE('A', 'S'),
    DCM_VR_AT = DCM_VR_CODE('A', 'T'),
    DCM_VR_CS = DCM_VR_CODE('C', 'S'),
    DCM_VR_DA = DCM_VR_CODE('D', 'A'),
    DCM_VR_DS = DCM_VR_CODE('D', 'S'),
    DCM_VR_DT = DCM_VR_CODE('D', 'T'),
    DCM_VR_FD = DCM_VR_CODE('F', 'D'),
    DCM_VR_FL = DCM_VR_CODE('F', 'L'),
    DCM_VR_IS = DCM_VR_CODE('I', 'S'),
    DCM_VR_LO = DCM_VR_CODE('L', 'O'),
    DCM_VR_LT = DCM_VR_CODE('L', 'T'),
    DCM_VR_OB = DCM_VR_CODE('O', 'B'),
    DCM_VR_OD = DCM_VR_CODE('O', 'D'),
    DCM_VR_OF = DCM_VR_CODE('O', 'F'),
    DCM_VR_OL = DCM_VR_CODE('O', 'L'),
    DCM_VR_OV = DCM_VR_CODE('O', 'V'),
    DCM_VR_OW = DCM_VR_CODE('O', 'W'),
    DCM_VR_PN = DCM_VR_CODE('P', 'N'),
    DCM_VR_SH = DCM_VR_CODE('S', 'H'),
    DCM_VR_SL = DCM_VR_CODE('S', 'L'),
    DCM_VR_SQ = DCM_VR_CODE('S', 'Q'),
    DCM_VR_SS = DCM_VR_CODE('S', 'S'),
    DCM_VR_ST = DCM_VR_CODE('S', 'T'),
    DCM_VR_SV = DCM_VR_CODE('S', 'V'),
    DCM_VR_TM = DCM_VR_CODE('T', 'M'),
    DCM_VR_UC = DCM_VR_CODE('U', 'C'),
    DCM_VR_UI = DCM_VR_CODE('U', 'I'),
    DCM_VR_UL = DCM_VR_CODE('U', 'L'),
    DCM_VR_UN = DCM_VR_CODE('U', 'N'),
    DCM_VR_UR = DCM_VR_CODE('U', 'R'),
    DCM_VR_US = DCM_VR_CODE('U', 'S'),
    DCM_VR_UT = DCM_VR_CODE('U', 'T'),
    DCM_VR_UV = DCM_VR_CODE('U', 'V'),
};

enum dcm_vr_kind {
    DCM_VK_TEXT = 1,  /* character string, multi-valued with backslash: AE AS CS DA DS DT IS LO
                         PN SH TM UC UI */
    DCM_VK_TEXT1 = 2, /* character string, one value (backslash is a character): LT ST UR UT */
    DCM_VK_BIN = 3,   /* fixed-size binary numbers: AT FD FL SL SS SV UL US UV */
    DCM_VK_BYTES = 4, /* opaque bytes: OB OD OF OL OV OW UN */
    DCM_VK_SQ = 5,    /* sequence of items */
};

#define DCM_STRIP_LEAD 1u  /* leading spaces are not significant (PS3.5 6.2) */
#define DCM_STRIP_TRAIL 2u /* trailing padding is not significant */

struct dcm_vr_info {
    uint16_t vr;
    uint8_t kind;     /* enum dcm_vr_kind */
    bool long_len;    /* explicit VR: 2 reserved bytes + 32-bit length (PS3.5 7.1.2) */
    bool charset;     /* value text depends on Specific Character Set (PS3.5 6.1.2.3) */
    uint8_t unit;     /* BIN/BYTES: length is a multiple of this; text: 1 */
    uint8_t pad;      /* byte that pads an odd value to even length: ' ' or NUL (PS3.5 6.2) */
    uint8_t strip;    /* DCM_STRIP_* */
    uint32_t max;     /* max length of one value, 0 = only the 32-bit limit (PS3.5 6.2) */
    bool max_chars;   /* max counts characters (charset VRs), not bytes */
};

/* The row for vr, or NULL when vr is not a VR of PS3.5 6.2 (e.g. "ZZ", or a retired "OX"). */
const struct dcm_vr_info *dcm_vr_info(uint16_t vr);

/* The two characters of vr into out[0..1] plus a NUL (out has room for 3). */
void dcm_vr_name(uint16_t vr, char out[3]);

/* Strip the insignificant padding of one text value (PS3.5 6.2): spaces at the end (and at the
 * start for AE CS DS IS LO SH), NUL at the end for UI. Also strips trailing NULs from any text
 * VR, a common encoder bug we tolerate when reading. Borrowed: *p / *n are narrowed in place. */
void dcm_vr_strip(uint16_t vr, const uint8_t **p, size_t *n);

/* Validate a whole element value as we would write it (PS3.5 6.2), before padding: text values
 * split on backslash (TEXT kind) each within the VR's character rules and maximum length
 * (characters counted as UTF-8 code points when utf8 is true, else as bytes); DA, TM, DT, UI, IS,
 * DS, AS syntax; BIN/BYTES lengths a multiple of their unit. Returns 0, or ERR_MALFORMED (the
 * value breaks the VR's rules), or ERR_UNSUPPORTED (vr unknown or SQ). */
MUST_CHECK int dcm_vr_check(uint16_t vr, const uint8_t *p, size_t n, bool utf8);

/* True when s[0..n) is a UID per PS3.5 9.1: 1..64 chars of digits and dots, no empty
 * component, no leading zero in a multi-digit component. */
bool dcm_uid_valid(const uint8_t *s, size_t n);

#endif
