/* dimse: DIMSE command sets (PS3.7 section 9, 10 and Annex E), always Implicit VR Little Endian
 * with a group length. Pure codecs: one struct with every command element this gateway reads or
 * writes, one parser, one encoder. */
#ifndef GW_DIMSE_H
#define GW_DIMSE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/rd.h"
#include "common/wbuf.h"

enum dimse_command {
    DIMSE_C_STORE_RQ = 0x0001,
    DIMSE_C_STORE_RSP = 0x8001,
    DIMSE_C_GET_RQ = 0x0010,
    DIMSE_C_GET_RSP = 0x8010,
    DIMSE_C_FIND_RQ = 0x0020,
    DIMSE_C_FIND_RSP = 0x8020,
    DIMSE_C_MOVE_RQ = 0x0021,
    DIMSE_C_MOVE_RSP = 0x8021,
    DIMSE_C_ECHO_RQ = 0x0030,
    DIMSE_C_ECHO_RSP = 0x8030,
    DIMSE_N_EVENT_REPORT_RQ = 0x0100,
    DIMSE_N_EVENT_REPORT_RSP = 0x8100,
    DIMSE_N_ACTION_RQ = 0x0130,
    DIMSE_N_ACTION_RSP = 0x8130,
    DIMSE_C_CANCEL_RQ = 0x0FFF,
};

/* True for a response command field (PS3.7 E.1: the high bit). */
static inline bool dimse_is_response(uint16_t field)
{
    return (field & 0x8000) != 0;
}

enum dimse_status {
    DIMSE_SUCCESS = 0x0000,
    DIMSE_PENDING = 0xFF00,
    DIMSE_PENDING_WARNING = 0xFF01,          /* C-FIND: optional keys not supported */
    DIMSE_CANCEL = 0xFE00,
    DIMSE_WARNING_SUBOPS = 0xB000,           /* C-GET/C-MOVE: some sub-operations failed */
    DIMSE_OUT_OF_RESOURCES = 0xA700,         /* C-STORE: Refused, out of resources */
    DIMSE_FIND_OUT_OF_RESOURCES = 0xA700,
    DIMSE_RETRIEVE_OUT_OF_RESOURCES_N = 0xA701, /* unable to calculate number of matches */
    DIMSE_RETRIEVE_OUT_OF_RESOURCES = 0xA702,   /* unable to perform sub-operations */
    DIMSE_MOVE_DEST_UNKNOWN = 0xA801,
    DIMSE_DATASET_MISMATCH = 0xA900,         /* C-STORE: data set does not match SOP class;
                                                C-FIND/GET/MOVE: identifier does not match */
    DIMSE_CANNOT_UNDERSTAND = 0xC000,        /* C-STORE: error, cannot understand */
    DIMSE_UNABLE_TO_PROCESS = 0xC000,        /* C-FIND/GET/MOVE: unable to process */
    DIMSE_SOP_CLASS_NOT_SUPPORTED = 0x0122,  /* refused: SOP class not supported */
    DIMSE_CLASS_INSTANCE_CONFLICT = 0x0119,
    DIMSE_DUPLICATE_SOP_INSTANCE = 0x0111,
    DIMSE_NO_SUCH_SOP_INSTANCE = 0x0112,
    DIMSE_NO_SUCH_ACTION = 0x0123,
    DIMSE_INVALID_ARGUMENT = 0x0115,
    DIMSE_MISSING_ATTRIBUTE = 0x0120,
    DIMSE_NOT_AUTHORIZED = 0x0124,
    DIMSE_UNRECOGNIZED_OPERATION = 0x0211,   /* PS3.7 C.4 */
    DIMSE_MISTYPED_ARGUMENT = 0x0212,
    DIMSE_DUPLICATE_INVOCATION = 0x0210,
    DIMSE_PROCESSING_FAILURE = 0x0110,
    DIMSE_RESOURCE_LIMITATION = 0x0213,
};

#define DIMSE_NO_DATASET 0x0101
#define DIMSE_CMD_MAX (64u * 1024u) /* cap on a reassembled command set */

/* Every command element (PS3.7 E.1-1) the gateway uses. On parse, has_* tells which were
 * present; strings are "" when absent. On encode, an element is written when its has_* flag is
 * set (numbers) or its string is not empty. */
struct dimse_cmd {
    uint16_t command_field;       /* (0000,0100) */
    uint16_t message_id;          /* (0000,0110) */
    uint16_t message_id_rsp;      /* (0000,0120) Message ID Being Responded To */
    uint16_t priority;            /* (0000,0700) */
    uint16_t data_set_type;       /* (0000,0800) */
    uint16_t status;              /* (0000,0900) */
    uint16_t event_type_id;       /* (0000,1002) */
    uint16_t action_type_id;      /* (0000,1008) */
    uint16_t remaining, completed, failed, warning; /* (0000,1020..1023) sub-operations */
    uint16_t move_originator_id;  /* (0000,1031) */
    uint32_t offending_element;   /* (0000,0901), one AT value: the attribute a failure names */
    bool has_command_field, has_message_id, has_message_id_rsp, has_priority,
        has_data_set_type, has_status, has_event_type_id, has_action_type_id, has_remaining,
        has_completed, has_failed, has_warning, has_move_originator_id, has_offending_element;
    char affected_sop_class[65];    /* (0000,0002) */
    char requested_sop_class[65];   /* (0000,0003) */
    char move_destination[17];      /* (0000,0600) */
    char error_comment[65];         /* (0000,0902) */
    char affected_sop_instance[65]; /* (0000,1000) */
    char requested_sop_instance[65];/* (0000,1001) */
    char move_originator_ae[17];    /* (0000,1030) */
};

/* Parse a whole command set (group 0000 elements, implicit VR LE). Returns 0, ERR_TRUNCATED or
 * ERR_MALFORMED (an element outside group 0000, a US of the wrong length, a UI over 64
 * characters, text with control characters, a group length that disagrees with the content).
 * Unknown group-0000 elements are skipped. */
MUST_CHECK int dimse_parse_cmd(struct rd *r, struct dimse_cmd *cmd);

/* Encode c as a command set (elements in ascending tag order, group length first). 0 or b's
 * error. */
MUST_CHECK int dimse_encode_cmd(struct wbuf *b, const struct dimse_cmd *c);

/* A response command set for request command `rq_field` (the response field is rq_field|0x8000).
 * sop_class / sop_instance may be NULL or "" to omit them; comment is an Error Comment (0000,0902)
 * of at most 64 characters, or NULL. */
MUST_CHECK int dimse_encode_rsp(struct wbuf *b, uint16_t rq_field, uint16_t msg_id,
                                const char *sop_class, const char *sop_instance, uint16_t status,
                                const char *comment);

/* A request command set (used by tests and tools acting as SCU). */
MUST_CHECK int dimse_encode_rq(struct wbuf *b, uint16_t field, uint16_t msg_id,
                               const char *sop_class, const char *sop_instance, bool has_dataset);

/* The response to rq (fields mirrored as PS3.7 prescribes per command: affected SOP class and
 * instance, message id being responded to) with status, no dataset. */
void dimse_rsp_init(struct dimse_cmd *rsp, const struct dimse_cmd *rq, uint16_t status);
/* Copy comment into rsp->error_comment (truncated to 64 characters, control characters
 * replaced): an Error Comment is LO. */
void dimse_set_comment(struct dimse_cmd *rsp, const char *comment);

#endif
