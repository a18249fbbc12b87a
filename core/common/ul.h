/* ul: DICOM upper layer PDU codecs (PS3.8 section 9.3). Pure: slices in, structs out; encoders
 * write into a capped wbuf. Parsers see whole PDUs only (ul_frame waits for them). */
#ifndef GW_UL_H
#define GW_UL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "rd.h"
#include "wbuf.h"

enum ul_pdu_type {
    UL_ASSOC_RQ = 0x01,
    UL_ASSOC_AC = 0x02,
    UL_ASSOC_RJ = 0x03,
    UL_P_DATA_TF = 0x04,
    UL_RELEASE_RQ = 0x05,
    UL_RELEASE_RP = 0x06,
    UL_ABORT = 0x07,
};

enum ul_item_type {
    UL_ITEM_APP_CONTEXT = 0x10,
    UL_ITEM_PCTX_RQ = 0x20,
    UL_ITEM_PCTX_AC = 0x21,
    UL_ITEM_ABSTRACT = 0x30,
    UL_ITEM_TS = 0x40,
    UL_ITEM_USER_INFO = 0x50,
    UL_SUB_MAX_LEN = 0x51,
    UL_SUB_IMPL_UID = 0x52,
    UL_SUB_ASYNC = 0x53,
    UL_SUB_ROLE = 0x54,
    UL_SUB_IMPL_VERSION = 0x55,
    UL_SUB_EXT_NEG = 0x56,
    UL_SUB_COMMON_EXT_NEG = 0x57,
    UL_SUB_USER_ID_RQ = 0x58,
    UL_SUB_USER_ID_AC = 0x59,
};

/* PS3.8 9.3.4 A-ASSOCIATE-RJ result, source and reason. */
enum ul_rj_result { UL_RJ_PERMANENT = 1, UL_RJ_TRANSIENT = 2 };
enum ul_rj_source { UL_RJ_SRC_USER = 1, UL_RJ_SRC_ACSE = 2, UL_RJ_SRC_PRES = 3 };
enum ul_rj_reason {
    UL_RJ_USER_NO_REASON = 1,
    UL_RJ_USER_APP_CONTEXT = 2,
    UL_RJ_USER_CALLING_AE = 3,
    UL_RJ_USER_CALLED_AE = 7,
    UL_RJ_ACSE_NO_REASON = 1,
    UL_RJ_ACSE_PROTOCOL_VERSION = 2,
    UL_RJ_PRES_CONGESTION = 1,
    UL_RJ_PRES_LOCAL_LIMIT = 2,
};
/* PS3.8 9.3.8 A-ABORT source and reason/diag (reason is significant for the provider only). */
enum ul_abort_source { UL_ABORT_SRC_USER = 0, UL_ABORT_SRC_PROVIDER = 2 };
enum ul_abort_reason {
    UL_ABORT_NOT_SPECIFIED = 0,
    UL_ABORT_UNRECOGNIZED_PDU = 1,
    UL_ABORT_UNEXPECTED_PDU = 2,
    UL_ABORT_UNRECOGNIZED_PARAM = 4,
    UL_ABORT_UNEXPECTED_PARAM = 5,
    UL_ABORT_INVALID_PARAM = 6,
};
/* PS3.8 9.3.3.2 presentation context results. */
enum ul_pctx_result {
    UL_PCTX_ACCEPT = 0,
    UL_PCTX_USER_REJECT = 1,
    UL_PCTX_NO_REASON = 2,
    UL_PCTX_ABSTRACT_NOT_SUPPORTED = 3,
    UL_PCTX_TS_NOT_SUPPORTED = 4,
};

#define UL_HDR_LEN 6
#define UL_MIN_PDV_PDU 7 /* smallest P-DATA-TF body that holds a PDV: 4+1+1 header, 1 data */
#define UL_PRE_ASSOC_MAX (64u * 1024u) /* cap on any PDU body before acceptance */
#define UL_MAX_PCTX 128                 /* PS3.8: odd IDs 1..255 */
#define UL_MAX_TS 64                    /* transfer syntaxes kept per context; more are glitches */
#define UL_MAX_ROLES 128
#define UL_MAX_EXT_NEG 128
#define UL_UID_MAX 64
#define UL_AE_LEN 16
#define UL_APP_CONTEXT "1.2.840.10008.3.1.1.1"

/* Frame the PDU at the start of p[0..n). Returns >0: the whole PDU's length (header included)
 * once all of it is present; 0: need more; ERR_LIMIT: the declared body length exceeds max_body
 * (*type and *body_len are still set, for the caller's abort). Never reads past n. */
MUST_CHECK int64_t ul_frame(const uint8_t *p, size_t n, uint32_t max_body, uint8_t *type,
                            uint32_t *body_len);

/* An AE title per PS3.5 (AE VR): 16 bytes on the wire, leading and trailing spaces not
 * significant, default repertoire without control characters or backslash. Normalises raw into
 * out (NUL-terminated, trimmed). Returns 0, or ERR_MALFORMED for an empty title, a forbidden
 * character, or raw_len > 16. Also used on configured titles. */
MUST_CHECK int ul_ae_normalize(const uint8_t *raw, size_t raw_len, char out[UL_AE_LEN + 1]);
/* Strip the trailing NUL/space padding PS3.8 allows on UIDs in items. */
struct slice ul_uid_trim(struct slice s);

struct ul_pctx_rq {
    uint8_t id;
    struct slice abstract;
    uint8_t n_ts;
    struct slice ts[UL_MAX_TS];
};

struct ul_role {
    struct slice sop;
    uint8_t scu, scp;
};

struct ul_user_info {
    bool present;
    bool has_max_len;
    uint32_t max_len; /* 0: no limit */
    struct slice impl_uid;
    struct slice impl_version;
    bool has_async;
    uint16_t ops_invoked, ops_performed;
    uint16_t n_roles;
    struct ul_role roles[UL_MAX_ROLES];
    uint16_t n_ext_neg;        /* SOP class extended negotiation items recorded */
    struct slice ext_neg_sop[UL_MAX_EXT_NEG];
    uint16_t n_common_ext_neg; /* SOP class common extended negotiation items */
    bool has_user_identity;
    uint8_t user_identity_type; /* 1 username, 2 +passcode, 3 Kerberos, 4 SAML, 5 JWT */
    bool user_identity_rsp_requested;
};

/* A-ASSOCIATE-RQ (PS3.8 9.3.2) and the parts of an A-ASSOCIATE-AC (9.3.3) that mirror it. */
struct ul_assoc_rq {
    uint16_t protocol_version;
    char called[UL_AE_LEN + 1];  /* normalised; "" if invalid (see called_bad) */
    char calling[UL_AE_LEN + 1];
    bool called_bad, calling_bad;
    struct slice app_context;
    uint16_t n_pctx;
    struct ul_pctx_rq pctx[UL_MAX_PCTX];
    struct ul_user_info ui;
    unsigned glitches; /* odd-but-legal input seen: unknown items, extra TS, padding */
};

/* Parse an A-ASSOCIATE-RQ body (header stripped). Slices borrow from body. Returns 0;
 * ERR_TRUNCATED / ERR_MALFORMED for a broken PDU (*abort_reason says which PS3.8 diagnostic);
 * AE titles with bad characters are not a parse error (called_bad/calling_bad are set, the
 * association is then rejected). */
MUST_CHECK int ul_parse_assoc_rq(struct rd *body, struct ul_assoc_rq *rq,
                                 uint8_t *abort_reason);

struct ul_pctx_ac {
    uint8_t id;
    uint8_t result;
    struct slice ts; /* the chosen transfer syntax (empty when not accepted) */
};

struct ul_assoc_ac {
    uint16_t protocol_version;
    char called[UL_AE_LEN + 1];
    char calling[UL_AE_LEN + 1];
    struct slice app_context;
    uint16_t n_pctx;
    struct ul_pctx_ac pctx[UL_MAX_PCTX];
    struct ul_user_info ui;
};

/* Parse an A-ASSOCIATE-AC body (for SCU-side tools and tests). */
MUST_CHECK int ul_parse_assoc_ac(struct rd *body, struct ul_assoc_ac *ac);

/* Encoders. Each writes one whole PDU (header included) into b; returns 0 or b's error. */
MUST_CHECK int ul_encode_assoc_rq(struct wbuf *b, const struct ul_assoc_rq *rq);
MUST_CHECK int ul_encode_assoc_ac(struct wbuf *b, const struct ul_assoc_ac *ac);
MUST_CHECK int ul_encode_assoc_rj(struct wbuf *b, uint8_t result, uint8_t source, uint8_t reason);
MUST_CHECK int ul_encode_release_rq(struct wbuf *b);
MUST_CHECK int ul_encode_release_rp(struct wbuf *b);
MUST_CHECK int ul_encode_abort(struct wbuf *b, uint8_t source, uint8_t reason);

/* A-ASSOCIATE-RJ / A-ABORT bodies (4 bytes: reserved, result-or-reserved, source, reason). */
struct ul_rj {
    uint8_t result, source, reason;
};
MUST_CHECK int ul_parse_assoc_rj(struct rd *body, struct ul_rj *rj);
MUST_CHECK int ul_parse_abort(struct rd *body, uint8_t *source, uint8_t *reason);
/* A-RELEASE-RQ/RP bodies: 4 reserved bytes. */
MUST_CHECK int ul_parse_release(struct rd *body);

/* One PDV item of a P-DATA-TF body (PS3.8 9.3.5.1, E.2). */
struct ul_pdv {
    uint8_t pctx_id;
    bool is_command; /* message control header bit 0 */
    bool is_last;    /* bit 1 */
    struct slice data;
};
/* Take the next PDV from a P-DATA-TF body. Returns 1 with *pdv set, 0 at the clean end of the
 * body, ERR_MALFORMED for an item length < 2 or overrunning the PDU, or reserved header bits set. */
MUST_CHECK int ul_next_pdv(struct rd *body, struct ul_pdv *pdv);

/* Encode a P-DATA-TF PDU holding one PDV whose payload is data[0..n) (n + 12 must fit the peer's
 * max length; the caller fragments). */
MUST_CHECK int ul_encode_pdata(struct wbuf *b, uint8_t pctx_id, bool is_command, bool is_last,
                               const uint8_t *data, size_t n);

#endif
