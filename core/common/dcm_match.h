/* dcm_match: match a candidate entity (a dataset, e.g. built from a QIDO-RS answer) against a
 * dcm_query (PS3.4 C.2.2.2), and build the C-FIND response identifier for a match (C.4.1.1.3.2).
 * Pure: libc only.
 *
 * Matching, key by key; the candidate matches when every key matches:
 *  - universal keys, RETURN keys (Retrieve AE Title...) and the TM half of a combined date-time
 *    pair never fail;
 *  - an absent attribute, or one with no value, matches nothing but universal matching, unless
 *    DCM_MATCH_UNKNOWN_MATCHES asks for PS3.4 C.2.2.1.2 (a zero-length Required or supported
 *    Optional Key of the entity is "unknown" and matches anything);
 *  - a multi-valued candidate attribute matches when any of its values matches (C.2.2.3), and a
 *    UID list (C.2.2.2.2) or several key values (DCM_MT_MULTI) when any of them matches;
 *  - single value (C.2.2.2.1): exact, case-sensitive comparison of the texts after removing the
 *    insignificant padding, by character (the candidate decoded from its character set, the key
 *    from the request's), so that "Müller" in ISO_IR 100 matches "Müller" in ISO_IR 192; PN is
 *    case-sensitive too unless DCM_MATCH_PN_ICASE (then ASCII letters only fold, C.2.2.2.1.1:
 *    the conformance statement must say which); IS and DS compare as text; binary VRs and UN
 *    byte for byte; DA, TM and DT by meaning (C.2.2.2.1.3): the spans of key and candidate
 *    (dcm_dt) must overlap, so "2230" matches "223000";
 *  - wild card (C.2.2.2.4): '*' any run of characters (also none), '?' exactly one character,
 *    case-sensitive (PN as above);
 *  - range (C.2.2.2.5): the candidate's span overlaps the key's range, bounds included; a
 *    candidate value its VR cannot parse does not match;
 *  - combined date-time (C.2.2.2.5.4, when negotiated): the candidate's date plus its time (the
 *    whole day when the time is absent or unreadable) against the DT range;
 *  - sequence (C.2.2.2.6): some item of the candidate's sequence matches every item key; when
 *    no item key asks for matching (all empty), the key filters nothing, like universal
 *    matching, and only selects what is returned.
 * Wild card patterns longer than DCM_MATCH_PATTERN_MAX bytes never match (bounded cost). */
#ifndef GW_DCM_MATCH_H
#define GW_DCM_MATCH_H

#include <stdbool.h>

#include "dcm_charset.h"
#include "dcm_ds.h"
#include "dcm_query.h"
#include "err.h"

#define DCM_MATCH_PN_ICASE 0x1u        /* PN: ASCII letters match either case */
#define DCM_MATCH_UNKNOWN_MATCHES 0x2u /* empty/absent candidate value matches (C.2.2.1.2) */

#define DCM_MATCH_PATTERN_MAX 4096u

struct dcm_match_opts {
    unsigned flags;            /* DCM_MATCH_* */
    enum dcm_charset cand_cs;  /* the candidates' character set: QIDO-RS JSON is DCM_CS_UTF8 */
    const char *retrieve_ae;   /* Retrieve AE Title (0008,0054) of every response (C.4.1.1.3.2),
                                  or NULL to return the candidate's only when requested */
};

/* True when cand (a root dataset) matches every key of q (see above). Never fails: a candidate
 * value that cannot be decoded or parsed does not match. */
bool dcm_match(const struct dcm_query *q, const struct dcm_item *cand,
               const struct dcm_match_opts *o);

/* The response identifier for a candidate that matched, as a new tree in *out (caller frees):
 *  - exactly the request's keys, in ascending order, each with the candidate's value, or zero
 *    length when the candidate lacks it (C.4.1.1.3.2 note 2); an upper-level unique key the
 *    candidate lacks gets the request's single value (the hierarchical match implies it,
 *    C.4.1.3.1.1); a universal sequence key returns the candidate's whole sequence, a sequence
 *    key with item keys the candidate's matching items with only those keys (C.2.2.2.6);
 *  - Query/Retrieve Level (0008,0052) as requested; Retrieve AE Title (0008,0054) when
 *    o->retrieve_ae is given; Timezone Offset From UTC (0008,0201) when requested and the
 *    candidate has a value;
 *  - text in the request's character set when every value fits in it, else in ISO_IR 192 (which
 *    C.4.1.1.3.2 permits); Specific Character Set (0008,0005) present exactly when that set is
 *    not the default repertoire;
 *  - nothing else: no attribute of the candidate that the request did not ask for.
 * Values are copied as the candidate has them (not re-validated); a candidate attribute of
 * another shape than the key (a sequence for a value or the reverse) counts as absent, an UN one
 * takes the key's VR, and inside a copied sequence an element Implicit VR could not carry is
 * left out (dcm_dict_seq_conflict), so the response encodes in both syntaxes. Returns 0,
 * ERR_MALFORMED (a
 * candidate text value is not valid in o->cand_cs, or retrieve_ae is not a valid AE), ERR_LIMIT
 * (lim's caps; NULL: DCM_LIMITS_DEFAULT) or ERR_NOMEM. */
MUST_CHECK int dcm_match_response(const struct dcm_query *q, const struct dcm_item *cand,
                                  const struct dcm_match_opts *o, const struct dcm_limits *lim,
                                  struct dcm_ds **out);

#endif
