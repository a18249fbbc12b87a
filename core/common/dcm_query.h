/* dcm_query: the normalised Query/Retrieve request built from an identifier dataset, for the
 * Patient Root and Study Root information models (PS3.4 C.3, C.6.1, C.6.2): the level, and for
 * each key its tag, VR, level, key type, matching type (PS3.4 C.2.2.2) and values. C-FIND keeps
 * every key as a return key (C.2.2.1, C.4.1.1.3.2); C-GET / C-MOVE keep the unique keys
 * (C.4.2.1.4.1, C.4.3.1.3.1). Pure: libc only.
 *
 * Enforced (the reason code and the dcm result are in brackets):
 *  - Query/Retrieve Level (0008,0052) present, one of the model's levels: PATIENT (Patient Root
 *    only), STUDY, SERIES, IMAGE [NO_LEVEL / BAD_LEVEL, ERR_MALFORMED];
 *  - Specific Character Set supported by dcm_charset [CHARSET, ERR_UNSUPPORTED]; Query/Retrieve
 *    View (0008,0053) absent, as we do not negotiate Enhanced Multi-Frame Image Conversion
 *    (C.4.1.1.3.1) [VIEW, ERR_MALFORMED];
 *  - values valid for their VR and matching type: UIDs (PS3.5 9.1) in UI keys, DA/TM/DT single
 *    values or ranges "a-b", "-b", "a-" with a <= b and one '-' only (C.2.2.2.5; a TM range
 *    crossing midnight is refused, C.2.2.2.5.2), AS/DS/IS syntax, text decodable in the
 *    declared character set, the VR of an attribute dcm_dict knows equal to its dictionary VR
 *    (PS3.5 6.2; UN is read as the dictionary's VR, except for a sequence), no sequence for a
 *    tag of another VR [BAD_VALUE, ERR_MALFORMED]; a sequence key holds at most one item
 *    (C.2.2.2.6) [SEQ, ERR_MALFORMED];
 *  - the hierarchical (baseline) search only: relational queries (C.4.1.2.2.1) and relational
 *    retrievals (C.4.2.2.2) are not supported [RELATIONAL, ERR_UNSUPPORTED]. A request is
 *    relational when, for a level above the Query/Retrieve Level, its unique key is absent or is
 *    anything but a single value (empty, a list, a wild card), or one of its required or optional
 *    keys asks for matching (a non-empty value) (C.4.1.2.1, C.4.2.2.1);
 *  - C-FIND: a key of a level below the Query/Retrieve Level that asks for matching [KEY_LEVEL,
 *    ERR_MALFORMED]; C-GET/C-MOVE: the unique key of the retrieve level present and non-empty
 *    [MISSING_UNIQUE, ERR_MALFORMED], a single value at PATIENT level, one UID or a list at the
 *    other levels, no wild card or range [BAD_VALUE, ERR_MALFORMED];
 *  - more than opts.max_keys keys in all [LIMIT, ERR_LIMIT].
 * Tolerated: C-FIND without the unique key of the Query/Retrieve Level (as if it were empty, and
 * not returned); a wild card in Patient ID at PATIENT level; keys of upper levels with an empty
 * value (kept as return keys); lower-level keys with an empty value (returned empty); in C-GET /
 * C-MOVE, keys other than the unique keys (ignored); private attributes (ignored, neither matched
 * nor returned, as C.4.1.1.3.2 note 4 permits); values of Retrieve AE Title, Instance
 * Availability and Storage Media File-Set ID/UID (returned, never matched); an attribute the
 * dictionary does not know (an optional key of the Query/Retrieve Level).
 * Several values in a key of a VR other than UI: any value may match (our reading; Multiple Value
 * Matching, C.2.2.2.8, is not negotiated and leaves the semantics open). A wild card value of
 * exactly "*" is universal matching (C.2.2.2.4 note 1). Timezone Offset From UTC (0008,0201) is
 * kept but not used for matching (timezone query adjustment is not negotiated). */
#ifndef GW_DCM_QUERY_H
#define GW_DCM_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dcm_charset.h"
#include "dcm_dict.h"
#include "dcm_ds.h"
#include "dcm_dt.h"
#include "err.h"
#include "rd.h"

enum dcm_qr_model {
    DCM_QR_PATIENT_ROOT = 0, /* 1.2.840.10008.5.1.4.1.2.1.x */
    DCM_QR_STUDY_ROOT = 1,   /* 1.2.840.10008.5.1.4.1.2.2.x */
};

enum dcm_qr_op {
    DCM_QOP_FIND = 0,     /* C-FIND identifier */
    DCM_QOP_RETRIEVE = 1, /* C-GET or C-MOVE identifier */
};

enum dcm_qr_level { /* same values as enum dcm_dict_level */
    DCM_QL_PATIENT = 1,
    DCM_QL_STUDY = 2,
    DCM_QL_SERIES = 3,
    DCM_QL_IMAGE = 4,
};

enum dcm_match_type {
    DCM_MT_UNIVERSAL = 0, /* zero length, only padding, or "*": returned, never fails (C.2.2.2.3) */
    DCM_MT_SINGLE = 1,    /* C.2.2.2.1 */
    DCM_MT_UID_LIST = 2,  /* C.2.2.2.2: UIDs separated by backslash, any may match */
    DCM_MT_WILDCARD = 3,  /* C.2.2.2.4: '*' and '?' in AE CS LO LT PN SH ST UC UR UT */
    DCM_MT_RANGE = 4,     /* C.2.2.2.5: DA TM DT */
    DCM_MT_SEQUENCE = 5,  /* C.2.2.2.6: one item of item keys */
    DCM_MT_MULTI = 6,     /* several values of another VR: any may match (see above) */
};

enum dcm_qerr {
    DCM_QERR_NONE = 0,
    DCM_QERR_NO_LEVEL,       /* (0008,0052) absent or empty */
    DCM_QERR_BAD_LEVEL,      /* (0008,0052) not a level of the model */
    DCM_QERR_CHARSET,        /* (0008,0005) not supported, or a code extension in a value */
    DCM_QERR_VIEW,           /* (0008,0053) present */
    DCM_QERR_RELATIONAL,     /* a relational query or retrieval */
    DCM_QERR_KEY_LEVEL,      /* C-FIND: matching on a key below the level */
    DCM_QERR_BAD_VALUE,      /* a value invalid for its VR or matching type */
    DCM_QERR_SEQ,            /* a sequence key with more than one item */
    DCM_QERR_MISSING_UNIQUE, /* C-GET/C-MOVE: no unique key at the retrieve level */
    DCM_QERR_LIMIT,          /* too many keys, or the query's memory cap */
};

/* Why a parse failed: enough for the DIMSE response's Offending Element (0000,0901) and Error
 * Comment (0000,0902). comment is static English text without any value from the request. */
struct dcm_query_error {
    enum dcm_qerr reason;
    uint32_t tag; /* the offending attribute, 0 when none */
    const char *comment;
};

struct dcm_query_opts {
    enum dcm_qr_model model;
    enum dcm_qr_op op;
    bool combined_datetime; /* combined date-time range matching was negotiated (C.5.1.1): a
                               DA range and its TM partner's range of the same form are matched
                               as one DT range (C.2.2.2.5.4) */
    size_t max_keys;        /* keys in all, sequence item keys included; 0: 1024 */
    size_t max_bytes;       /* the query's memory; 0: 4 MiB */
};

struct dcm_query;

/* One value of a key. Text is UTF-8 (decoded from the request's character set), its insignificant
 * padding stripped; binary values are the raw bytes. All borrowed from the query. */
struct dcm_qvalue {
    enum dcm_match_type type; /* SINGLE, WILDCARD or RANGE */
    struct slice text;        /* the value; RANGE: the whole "lo-hi" */
    struct slice lo, hi;      /* RANGE: the two ends as text, either may be empty (open) */
    struct dcm_span span;     /* DA TM DT: what the value covers (dcm_dt), for a RANGE from the
                                 start of lo to the end of hi, INT64_MIN / INT64_MAX when open */
};

struct dcm_qkey {
    uint32_t tag;
    uint16_t vr;     /* the dictionary's when dcm_dict knows the tag, else the identifier's
                        (Implicit VR: UN) */
    uint8_t level;   /* enum dcm_qr_level of the attribute in this model; 0 inside a sequence */
    uint8_t role;    /* enum dcm_dict_key: UNIQUE, REQUIRED, OPTIONAL or RETURN */
    enum dcm_match_type type;
    size_t nvalues;  /* 0 for UNIVERSAL and SEQUENCE */
    const struct dcm_qvalue *values;
    const struct dcm_query *item; /* SEQUENCE: the keys of the item, a query without a level */
    uint32_t partner;             /* combined date-time: the TM tag on the DA key, the DA tag on
                                     the TM key (which is then matched through the DA key) */
    struct dcm_span combined;     /* on such a DA key: the DT range of date and time together */
};

/* Build *q from the identifier ident (a parsed dataset). On success *q is new (free it with
 * dcm_query_free) and err->reason is NONE. On failure *q is NULL, *err says why and the result
 * is ERR_MALFORMED, ERR_UNSUPPORTED (CHARSET, RELATIONAL), ERR_LIMIT or ERR_NOMEM (see above).
 * The query copies what it keeps: ident may be freed afterwards. */
MUST_CHECK int dcm_query_parse(const struct dcm_ds *ident, const struct dcm_query_opts *opts,
                               struct dcm_query **q, struct dcm_query_error *err);
void dcm_query_free(struct dcm_query *q); /* NULL is fine */

enum dcm_qr_level dcm_query_level(const struct dcm_query *q); /* 0 inside a sequence */
const char *dcm_query_level_name(enum dcm_qr_level level);    /* "STUDY"...; static */
enum dcm_qr_model dcm_query_model(const struct dcm_query *q);
bool dcm_query_combined_datetime(const struct dcm_query *q);
/* The request's character set; has_charset: whether (0008,0005) was present. */
enum dcm_charset dcm_query_charset(const struct dcm_query *q);
bool dcm_query_has_charset(const struct dcm_query *q);
/* Timezone Offset From UTC (0008,0201) as sent (padding stripped); false when absent. */
bool dcm_query_timezone(const struct dcm_query *q, struct slice *out);

/* The keys in ascending tag order (the return keys, PS3.4 C.2.2.1). */
size_t dcm_query_nkeys(const struct dcm_query *q);
const struct dcm_qkey *dcm_query_key(const struct dcm_query *q, size_t i); /* NULL past end */
const struct dcm_qkey *dcm_query_find(const struct dcm_query *q, uint32_t tag);
/* The unique key of level in this model: Patient ID, Study / Series / SOP Instance UID. */
uint32_t dcm_query_unique_tag(enum dcm_qr_level level);

#endif
