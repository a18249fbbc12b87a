/* dicom_json: the DICOM JSON Model (PS3.18 F.2), as QIDO-RS answers carry it, turned into
 * datasets (common/dcm_ds.h) for the core's matching (common/dcm_match.h). Pure: bytes in,
 * datasets out; no I/O, no logs, no globals. The input is hostile: every node's type is checked
 * before it is read, every count and size is capped.
 *
 * What is taken (F.2.2, F.2.3): an object whose member names are 8 hexadecimal digits (the tag)
 * and whose members are objects with "vr" (one of PS3.5 6.2) and at most one of "Value" (an
 * array), "InlineBinary" (base64) or "BulkDataURI". By VR: PN values are objects of
 * "Alphabetic", "Ideographic", "Phonetic" strings, joined with '=' into one value; AE AS CS DA
 * DT LO LT SH ST TM UC UI UR UT values are strings; IS and DS numbers or strings; FL FD SL SS
 * UL US SV UV numbers (SV UV also strings, F.2.3.1); AT strings of 8 hex digits; SQ an array of
 * objects (the items); OB OD OF OL OV OW UN InlineBinary. A null in "Value" is an empty value.
 *
 * Every text value is UTF-8 (the JSON model's encoding), so each dataset's root gets Specific
 * Character Set (0008,0005) "ISO_IR 192" (the answer's own is ignored) and values are checked
 * against their VR's rules with characters counted as code points (dcm_vr_check).
 *
 * Refused as a whole (ERR_MALFORMED): not JSON, not an array of objects, a member name that is
 * not a tag, an attribute that is not an object, a missing or unknown "vr", a "Value" that is not
 * an array or holds the wrong JSON type for its VR, several values in an LT ST UR UT, items that
 * are not objects, bad base64. Left out and counted in dropped (the rest of the dataset is kept):
 * a value its VR's rules refuse (dcm_vr_check), a backslash inside one value of a multi-valued
 * VR, a number out of its VR's range, a tag of groups 0000-0007 (command and File Meta elements
 * never belong in a dataset), a duplicate tag, a BulkDataURI (bulk data is not fetched here).
 * Caps (ERR_LIMIT): the input's size (the caller's response cap), the number of objects
 * (max_objects), each dataset's struct dcm_limits (bytes, elements, sequence depth), and one
 * value's size (DICOM_JSON_VALUE_MAX). */
#ifndef GW_DICOM_JSON_H
#define GW_DICOM_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "common/dcm_ds.h"
#include "common/err.h"

#define DICOM_JSON_VALUE_MAX (1u << 20) /* one element's value bytes, decoded */

struct dicom_json_opts {
    size_t max_objects;            /* objects in the array; 0: 10,000 */
    struct dcm_limits limits;      /* per dataset; all zero: 1 MiB, 4096 elements, depth 8 */
};

/* The datasets of one answer, in its order. */
struct dicom_json_list {
    struct dcm_ds **ds;
    size_t n;
    size_t dropped; /* values left out (see above), over all datasets */
};

/* Parse p[0..n) (a JSON array; n == 0 is an empty answer, as a 204 has) into *out (caller's
 * storage, filled on success, zeroed on failure; free with dicom_json_list_free). Returns 0,
 * ERR_MALFORMED, ERR_LIMIT or ERR_NOMEM. */
MUST_CHECK int dicom_json_parse_array(const uint8_t *p, size_t n,
                                      const struct dicom_json_opts *opts,
                                      struct dicom_json_list *out);
/* Free every dataset of l and its array; l is zeroed. NULL is fine. */
void dicom_json_list_free(struct dicom_json_list *l);

/* One object (the text of a single DICOM JSON object, e.g. a metadata answer's element) into a
 * new dataset *out. Same rules and results; *dropped (may be NULL) counts what was left out. */
MUST_CHECK int dicom_json_parse_object(const uint8_t *p, size_t n,
                                       const struct dcm_limits *lim, struct dcm_ds **out,
                                       size_t *dropped);

#endif
