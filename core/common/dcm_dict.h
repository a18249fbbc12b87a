/* dcm_dict: the compact data dictionary of the attributes that Query/Retrieve identifiers
 * (PS3.4 C.6.1, C.6.2), C-MOVE/C-GET responses and Storage Commitment (PS3.4 J.3) use: the VR
 * for Implicit VR Little Endian decoding (PS3.5 A.1) and, for Q/R, the level and key type of
 * each attribute in the Patient Root model. Anything else decodes as UN. Pure: static data. */
#ifndef GW_DCM_DICT_H
#define GW_DCM_DICT_H

#include <stdbool.h>
#include <stdint.h>

#define DCM_TAG(g, e) (((uint32_t)(g) << 16) | (uint32_t)(e))
#define DCM_TAG_GROUP(t) ((uint16_t)((t) >> 16))
#define DCM_TAG_ELEM(t) ((uint16_t)((t)&0xFFFFu))

/* The level an attribute belongs to in the Patient Root Q/R information model (PS3.4 C.6.1.1);
 * in the Study Root model the PATIENT attributes are STUDY attributes (C.3.2). */
enum dcm_dict_level {
    DCM_DL_NONE = 0, /* not an entity attribute (item content, control, response-only) */
    DCM_DL_PATIENT = 1,
    DCM_DL_STUDY = 2,
    DCM_DL_SERIES = 3,
    DCM_DL_IMAGE = 4,
};

/* Key type at that level (PS3.4 C.1.2: U, R, O), or a control attribute of the identifier. */
enum dcm_dict_key {
    DCM_DK_NONE = 0,    /* not a key */
    DCM_DK_UNIQUE = 1,  /* U */
    DCM_DK_REQUIRED = 2, /* R */
    DCM_DK_OPTIONAL = 3, /* O */
    DCM_DK_CONTROL = 4, /* shapes the query, never matched: (0008,0005) (0008,0052) (0008,0053)
                           (0008,0201) */
    DCM_DK_RETURN = 5,  /* returned, never matched: (0008,0054) (0008,0056) (0088,0130)
                           (0088,0140) */
};

struct dcm_dict_entry {
    uint32_t tag;
    uint16_t vr;   /* enum dcm_vr */
    uint8_t level; /* enum dcm_dict_level */
    uint8_t key;   /* enum dcm_dict_key */
};

/* The entry for tag, or NULL when the dictionary does not know it. */
const struct dcm_dict_entry *dcm_dict_find(uint32_t tag);

/* The VR to decode tag with in Implicit VR: the dictionary's, UL for a group length
 * (gggg,0000), LO for a private creator (odd group, element 0x0010..0x00FF), else UN. */
uint16_t dcm_dict_vr(uint32_t tag);

/* True when Implicit VR cannot carry this element: a sequence (seq) whose tag dcm_dict_vr()
 * gives another VR than SQ or UN, or a value whose tag it gives SQ. A reader with a dictionary
 * would misread either. */
bool dcm_dict_seq_conflict(uint32_t tag, bool seq);

#endif
