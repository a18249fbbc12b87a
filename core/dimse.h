/* dimse: DIMSE command sets (PS3.7 section 9 and Annex E), always Implicit VR Little Endian
 * with a group length. Pure codecs. */
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
    DIMSE_C_FIND_RQ = 0x0020,
    DIMSE_C_MOVE_RQ = 0x0021,
    DIMSE_C_ECHO_RQ = 0x0030,
    DIMSE_C_ECHO_RSP = 0x8030,
    DIMSE_C_CANCEL_RQ = 0x0FFF,
};

enum dimse_status {
    DIMSE_SUCCESS = 0x0000,
    DIMSE_OUT_OF_RESOURCES = 0xA700,         /* C-STORE: Refused, out of resources */
    DIMSE_DATASET_MISMATCH = 0xA900,         /* C-STORE: data set does not match SOP class */
    DIMSE_CANNOT_UNDERSTAND = 0xC000,        /* C-STORE: error, cannot understand */
    DIMSE_SOP_CLASS_NOT_SUPPORTED = 0x0122,  /* refused: SOP class not supported */
    DIMSE_UNRECOGNIZED_OPERATION = 0x0211,   /* PS3.7 C.4 */
    DIMSE_MISTYPED_ARGUMENT = 0x0212,
    DIMSE_DUPLICATE_INVOCATION = 0x0210,
    DIMSE_PROCESSING_FAILURE = 0x0110,
};

#define DIMSE_NO_DATASET 0x0101
#define DIMSE_CMD_MAX (64u * 1024u) /* cap on a reassembled command set */

struct dimse_cmd {
    uint16_t command_field;
    uint16_t message_id;
    uint16_t priority;
    uint16_t data_set_type;
    bool has_command_field, has_message_id, has_data_set_type;
    char affected_sop_class[65];
    char affected_sop_instance[65];
    char move_originator_ae[17];
    uint16_t move_originator_id;
};

/* Parse a whole command set (group 0000 elements, implicit VR LE). Returns 0, ERR_TRUNCATED or
 * ERR_MALFORMED (an element outside group 0000, a US/UL of the wrong length, a UI over 64
 * characters, a group length that disagrees with the content). Unknown group-0000 elements are
 * skipped. */
MUST_CHECK int dimse_parse_cmd(struct rd *r, struct dimse_cmd *cmd);

/* A response command set for request command `rq_field` (the response field is rq_field|0x8000).
 * sop_class / sop_instance may be NULL or "" to omit them; comment is an Error Comment (0000,0902)
 * of at most 64 characters, or NULL. */
MUST_CHECK int dimse_encode_rsp(struct wbuf *b, uint16_t rq_field, uint16_t msg_id,
                                const char *sop_class, const char *sop_instance, uint16_t status,
                                const char *comment);

/* A request command set (used by tests and tools acting as SCU). */
MUST_CHECK int dimse_encode_rq(struct wbuf *b, uint16_t field, uint16_t msg_id,
                               const char *sop_class, const char *sop_instance, bool has_dataset);

#endif
