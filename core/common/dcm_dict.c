/* Entries: PS3.6 (tags, VRs) and PS3.4 C.6.1.1 / C.6.2.1 (levels, key types). Sorted by tag. */
#include "dcm_dict.h"

#include "dcm_vr.h"
#include "err.h"

#define E(g, e, vr, lvl, key) {DCM_TAG(g, e), DCM_VR_##vr, DCM_DL_##lvl, DCM_DK_##key}

static const struct dcm_dict_entry dict[] = {
    E(0x0008, 0x0005, CS, NONE, CONTROL),   /* Specific Character Set */
    E(0x0008, 0x0008, CS, IMAGE, OPTIONAL), /* Image Type */
    E(0x0008, 0x0012, DA, IMAGE, OPTIONAL), /* Instance Creation Date */
    E(0x0008, 0x0013, TM, IMAGE, OPTIONAL), /* Instance Creation Time */
    E(0x0008, 0x0014, UI, IMAGE, OPTIONAL), /* Instance Creator UID */
    E(0x0008, 0x0016, UI, IMAGE, OPTIONAL), /* SOP Class UID */
    E(0x0008, 0x0018, UI, IMAGE, UNIQUE),   /* SOP Instance UID */
    E(0x0008, 0x001A, UI, IMAGE, OPTIONAL), /* Related General SOP Class UID */
    E(0x0008, 0x0020, DA, STUDY, REQUIRED), /* Study Date */
    E(0x0008, 0x0021, DA, SERIES, OPTIONAL), /* Series Date */
    E(0x0008, 0x0022, DA, IMAGE, OPTIONAL), /* Acquisition Date */
    E(0x0008, 0x0023, DA, IMAGE, OPTIONAL), /* Content Date */
    E(0x0008, 0x002A, DT, IMAGE, OPTIONAL), /* Acquisition DateTime */
    E(0x0008, 0x0030, TM, STUDY, REQUIRED), /* Study Time */
    E(0x0008, 0x0031, TM, SERIES, OPTIONAL), /* Series Time */
    E(0x0008, 0x0032, TM, IMAGE, OPTIONAL), /* Acquisition Time */
    E(0x0008, 0x0033, TM, IMAGE, OPTIONAL), /* Content Time */
    E(0x0008, 0x0050, SH, STUDY, REQUIRED), /* Accession Number */
    E(0x0008, 0x0051, SQ, STUDY, OPTIONAL), /* Issuer of Accession Number Sequence */
    E(0x0008, 0x0052, CS, NONE, CONTROL),   /* Query/Retrieve Level */
    E(0x0008, 0x0053, CS, NONE, CONTROL),   /* Query/Retrieve View */
    E(0x0008, 0x0054, AE, NONE, RETURN),    /* Retrieve AE Title */
    E(0x0008, 0x0055, AE, NONE, NONE),      /* Station AE Title */
    E(0x0008, 0x0056, CS, NONE, RETURN),    /* Instance Availability */
    E(0x0008, 0x0058, UI, NONE, NONE),      /* Failed SOP Instance UID List */
    E(0x0008, 0x0060, CS, SERIES, REQUIRED), /* Modality */
    E(0x0008, 0x0061, CS, STUDY, OPTIONAL), /* Modalities in Study */
    E(0x0008, 0x0062, UI, STUDY, OPTIONAL), /* SOP Classes in Study */
    E(0x0008, 0x0063, SQ, STUDY, OPTIONAL), /* Anatomic Regions in Study Code Sequence */
    E(0x0008, 0x0064, CS, SERIES, OPTIONAL), /* Conversion Type */
    E(0x0008, 0x0070, LO, SERIES, OPTIONAL), /* Manufacturer */
    E(0x0008, 0x0080, LO, SERIES, OPTIONAL), /* Institution Name */
    E(0x0008, 0x0090, PN, STUDY, OPTIONAL), /* Referring Physician's Name */
    E(0x0008, 0x0100, SH, NONE, NONE),      /* Code Value */
    E(0x0008, 0x0102, SH, NONE, NONE),      /* Coding Scheme Designator */
    E(0x0008, 0x0103, SH, NONE, NONE),      /* Coding Scheme Version */
    E(0x0008, 0x0104, LO, NONE, NONE),      /* Code Meaning */
    E(0x0008, 0x0105, CS, NONE, NONE),      /* Mapping Resource */
    E(0x0008, 0x0106, DT, NONE, NONE),      /* Context Group Version */
    E(0x0008, 0x0107, DT, NONE, NONE),      /* Context Group Local Version */
    E(0x0008, 0x010B, CS, NONE, NONE),      /* Context Group Extension Flag */
    E(0x0008, 0x010D, UI, NONE, NONE),      /* Context Group Extension Creator UID */
    E(0x0008, 0x010F, CS, NONE, NONE),      /* Context Identifier */
    E(0x0008, 0x0117, UI, NONE, NONE),      /* Context UID */
    E(0x0008, 0x0118, UI, NONE, NONE),      /* Mapping Resource UID */
    E(0x0008, 0x0119, UC, NONE, NONE),      /* Long Code Value */
    E(0x0008, 0x0120, UR, NONE, NONE),      /* URN Code Value */
    E(0x0008, 0x0121, SQ, NONE, NONE),      /* Equivalent Code Sequence */
    E(0x0008, 0x0122, LO, NONE, NONE),      /* Mapping Resource Name */
    E(0x0008, 0x0201, SH, NONE, CONTROL),   /* Timezone Offset From UTC */
    E(0x0008, 0x1010, SH, SERIES, OPTIONAL), /* Station Name */
    E(0x0008, 0x1030, LO, STUDY, OPTIONAL), /* Study Description */
    E(0x0008, 0x1032, SQ, STUDY, OPTIONAL), /* Procedure Code Sequence */
    E(0x0008, 0x103E, LO, SERIES, OPTIONAL), /* Series Description */
    E(0x0008, 0x1040, LO, SERIES, OPTIONAL), /* Institutional Department Name */
    E(0x0008, 0x1048, PN, STUDY, OPTIONAL), /* Physician(s) of Record */
    E(0x0008, 0x1050, PN, SERIES, OPTIONAL), /* Performing Physician's Name */
    E(0x0008, 0x1060, PN, STUDY, OPTIONAL), /* Name of Physician(s) Reading Study */
    E(0x0008, 0x1070, PN, SERIES, OPTIONAL), /* Operators' Name */
    E(0x0008, 0x1080, LO, STUDY, OPTIONAL), /* Admitting Diagnoses Description */
    E(0x0008, 0x1090, LO, SERIES, OPTIONAL), /* Manufacturer's Model Name */
    E(0x0008, 0x1110, SQ, STUDY, OPTIONAL), /* Referenced Study Sequence */
    E(0x0008, 0x1111, SQ, SERIES, OPTIONAL), /* Referenced Performed Procedure Step Sequence */
    E(0x0008, 0x1115, SQ, NONE, NONE),      /* Referenced Series Sequence */
    E(0x0008, 0x1120, SQ, PATIENT, OPTIONAL), /* Referenced Patient Sequence */
    E(0x0008, 0x1150, UI, NONE, NONE),      /* Referenced SOP Class UID */
    E(0x0008, 0x1155, UI, NONE, NONE),      /* Referenced SOP Instance UID */
    E(0x0008, 0x1160, IS, NONE, NONE),      /* Referenced Frame Number */
    E(0x0008, 0x1195, UI, NONE, NONE),      /* Transaction UID */
    E(0x0008, 0x1196, US, NONE, NONE),      /* Warning Reason */
    E(0x0008, 0x1197, US, NONE, NONE),      /* Failure Reason */
    E(0x0008, 0x1198, SQ, NONE, NONE),      /* Failed SOP Sequence */
    E(0x0008, 0x1199, SQ, NONE, NONE),      /* Referenced SOP Sequence */
    E(0x0008, 0x119A, SQ, NONE, NONE),      /* Other Failures Sequence */
    E(0x0008, 0x2218, SQ, NONE, NONE),      /* Anatomic Region Sequence */
    E(0x0008, 0x3001, SQ, IMAGE, OPTIONAL), /* Alternate Representation Sequence */
    E(0x0008, 0x3002, UI, IMAGE, OPTIONAL), /* Available Transfer Syntax UID */
    E(0x0010, 0x0010, PN, PATIENT, REQUIRED), /* Patient's Name */
    E(0x0010, 0x0020, LO, PATIENT, UNIQUE), /* Patient ID */
    E(0x0010, 0x0021, LO, PATIENT, OPTIONAL), /* Issuer of Patient ID */
    E(0x0010, 0x0022, CS, PATIENT, OPTIONAL), /* Type of Patient ID */
    E(0x0010, 0x0024, SQ, PATIENT, OPTIONAL), /* Issuer of Patient ID Qualifiers Sequence */
    E(0x0010, 0x0030, DA, PATIENT, OPTIONAL), /* Patient's Birth Date */
    E(0x0010, 0x0032, TM, PATIENT, OPTIONAL), /* Patient's Birth Time */
    E(0x0010, 0x0040, CS, PATIENT, OPTIONAL), /* Patient's Sex */
    E(0x0010, 0x1000, LO, PATIENT, OPTIONAL), /* Other Patient IDs (retired) */
    E(0x0010, 0x1001, PN, PATIENT, OPTIONAL), /* Other Patient Names */
    E(0x0010, 0x1002, SQ, PATIENT, OPTIONAL), /* Other Patient IDs Sequence */
    E(0x0010, 0x1010, AS, STUDY, OPTIONAL), /* Patient's Age */
    E(0x0010, 0x1020, DS, STUDY, OPTIONAL), /* Patient's Size */
    E(0x0010, 0x1030, DS, STUDY, OPTIONAL), /* Patient's Weight */
    E(0x0010, 0x2160, SH, PATIENT, OPTIONAL), /* Ethnic Group */
    E(0x0010, 0x2180, SH, STUDY, OPTIONAL), /* Occupation */
    E(0x0010, 0x21B0, LT, STUDY, OPTIONAL), /* Additional Patient History */
    E(0x0010, 0x4000, LT, PATIENT, OPTIONAL), /* Patient Comments */
    E(0x0018, 0x0015, CS, SERIES, OPTIONAL), /* Body Part Examined */
    E(0x0018, 0x1030, LO, SERIES, OPTIONAL), /* Protocol Name */
    E(0x0020, 0x000D, UI, STUDY, UNIQUE),   /* Study Instance UID */
    E(0x0020, 0x000E, UI, SERIES, UNIQUE),  /* Series Instance UID */
    E(0x0020, 0x0010, SH, STUDY, REQUIRED), /* Study ID */
    E(0x0020, 0x0011, IS, SERIES, REQUIRED), /* Series Number */
    E(0x0020, 0x0012, IS, IMAGE, OPTIONAL), /* Acquisition Number */
    E(0x0020, 0x0013, IS, IMAGE, REQUIRED), /* Instance Number */
    E(0x0020, 0x0052, UI, SERIES, OPTIONAL), /* Frame of Reference UID */
    E(0x0020, 0x0060, CS, SERIES, OPTIONAL), /* Laterality */
    E(0x0020, 0x1070, IS, STUDY, OPTIONAL), /* Other Study Numbers */
    E(0x0020, 0x1200, IS, PATIENT, OPTIONAL), /* Number of Patient Related Studies */
    E(0x0020, 0x1202, IS, PATIENT, OPTIONAL), /* Number of Patient Related Series */
    E(0x0020, 0x1204, IS, PATIENT, OPTIONAL), /* Number of Patient Related Instances */
    E(0x0020, 0x1206, IS, STUDY, OPTIONAL), /* Number of Study Related Series */
    E(0x0020, 0x1208, IS, STUDY, OPTIONAL), /* Number of Study Related Instances */
    E(0x0020, 0x1209, IS, SERIES, OPTIONAL), /* Number of Series Related Instances */
    E(0x0028, 0x0008, IS, IMAGE, OPTIONAL), /* Number of Frames */
    E(0x0028, 0x0010, US, IMAGE, OPTIONAL), /* Rows */
    E(0x0028, 0x0011, US, IMAGE, OPTIONAL), /* Columns */
    E(0x0028, 0x0100, US, IMAGE, OPTIONAL), /* Bits Allocated */
    E(0x0032, 0x1060, LO, STUDY, OPTIONAL), /* Requested Procedure Description */
    E(0x0040, 0x0244, DA, SERIES, OPTIONAL), /* Performed Procedure Step Start Date */
    E(0x0040, 0x0245, TM, SERIES, OPTIONAL), /* Performed Procedure Step Start Time */
    E(0x0040, 0x0253, SH, SERIES, OPTIONAL), /* Performed Procedure Step ID */
    E(0x0040, 0x0254, LO, SERIES, OPTIONAL), /* Performed Procedure Step Description */
    E(0x0040, 0x0275, SQ, SERIES, OPTIONAL), /* Request Attributes Sequence */
    E(0x0040, 0x0512, LO, IMAGE, OPTIONAL), /* Container Identifier */
    E(0x0040, 0x0551, LO, NONE, NONE),      /* Specimen Identifier */
    E(0x0040, 0x0554, UI, NONE, NONE),      /* Specimen UID */
    E(0x0040, 0x0560, SQ, IMAGE, OPTIONAL), /* Specimen Description Sequence */
    E(0x0040, 0x1001, SH, NONE, NONE),      /* Requested Procedure ID */
    E(0x0040, 0xA043, SQ, IMAGE, OPTIONAL), /* Concept Name Code Sequence */
    E(0x0040, 0xA170, SQ, NONE, NONE),      /* Purpose of Reference Code Sequence */
    E(0x0040, 0xA491, CS, IMAGE, OPTIONAL), /* Completion Flag */
    E(0x0040, 0xA493, CS, IMAGE, OPTIONAL), /* Verification Flag */
    E(0x0040, 0xA504, SQ, IMAGE, OPTIONAL), /* Content Template Sequence */
    E(0x0040, 0xDB00, CS, NONE, NONE),      /* Template Identifier */
    E(0x0088, 0x0130, SH, NONE, RETURN),    /* Storage Media File-Set ID */
    E(0x0088, 0x0140, UI, NONE, RETURN),    /* Storage Media File-Set UID */
};

#undef E

const struct dcm_dict_entry *dcm_dict_find(uint32_t tag)
{
    size_t lo = 0, hi = ARRAY_LEN(dict);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (dict[mid].tag == tag)
            return &dict[mid];
        if (dict[mid].tag < tag)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

uint16_t dcm_dict_vr(uint32_t tag)
{
    const struct dcm_dict_entry *e = dcm_dict_find(tag);
    if (e)
        return e->vr;
    uint16_t g = DCM_TAG_GROUP(tag), el = DCM_TAG_ELEM(tag);
    if (el == 0)
        return DCM_VR_UL; /* group length (PS3.5 7.2) */
    if ((g & 1) && el >= 0x0010 && el <= 0x00FF)
        return DCM_VR_LO; /* private creator (PS3.5 7.8.1) */
    return DCM_VR_UN;
}

bool dcm_dict_seq_conflict(uint32_t tag, bool seq)
{
    uint16_t vr = dcm_dict_vr(tag);
    return seq ? (vr != DCM_VR_SQ && vr != DCM_VR_UN) : vr == DCM_VR_SQ;
}
