/* Tests for common/dcm_dict, common/dcm_vr and common/dcm_arena: the static tables are sorted and
 * coherent (PS3.5 6.2, 7.1.2; PS3.4 C.6), the Implicit VR fallbacks, and the arena's cap. */
#include <criterion/criterion.h>
#include <string.h>

#include "common/dcm_arena.h"
#include "common/dcm_dict.h"
#include "common/dcm_vr.h"

Test(dcm_dict, implicit_vr_fallbacks)
{
    cr_assert_eq(dcm_dict_vr(DCM_TAG(0x0010, 0x0010)), DCM_VR_PN);
    cr_assert_eq(dcm_dict_vr(DCM_TAG(0x0008, 0x1199)), DCM_VR_SQ);
    cr_assert_eq(dcm_dict_vr(DCM_TAG(0x0008, 0x1197)), DCM_VR_US);
    cr_assert_eq(dcm_dict_vr(DCM_TAG(0x0010, 0x0000)), DCM_VR_UL, "group length");
    cr_assert_eq(dcm_dict_vr(DCM_TAG(0x0009, 0x0010)), DCM_VR_LO, "private creator");
    cr_assert_eq(dcm_dict_vr(DCM_TAG(0x0009, 0x00FF)), DCM_VR_LO);
    cr_assert_eq(dcm_dict_vr(DCM_TAG(0x0009, 0x0100)), DCM_VR_UN);
    cr_assert_eq(dcm_dict_vr(DCM_TAG(0x0008, 0x0010)), DCM_VR_UN, "even group: not a creator");
    cr_assert_eq(dcm_dict_vr(DCM_TAG(0x0018, 0x0050)), DCM_VR_UN);
    cr_assert(dcm_dict_seq_conflict(DCM_TAG(0x0008, 0x1030), true));
    cr_assert(dcm_dict_seq_conflict(DCM_TAG(0x0008, 0x1032), false));
    cr_assert(!dcm_dict_seq_conflict(DCM_TAG(0x0008, 0x1032), true));
    cr_assert(!dcm_dict_seq_conflict(DCM_TAG(0x0018, 0x0050), true));
}

/* PS3.4 C.6.1.1: the key types of the Patient Root model's tables. */
Test(dcm_dict, qr_key_table)
{
    struct {
        uint32_t tag;
        uint8_t level, key;
    } rows[] = {
        {DCM_TAG(0x0010, 0x0010), DCM_DL_PATIENT, DCM_DK_REQUIRED},
        {DCM_TAG(0x0010, 0x0020), DCM_DL_PATIENT, DCM_DK_UNIQUE},
        {DCM_TAG(0x0008, 0x0020), DCM_DL_STUDY, DCM_DK_REQUIRED},
        {DCM_TAG(0x0008, 0x0030), DCM_DL_STUDY, DCM_DK_REQUIRED},
        {DCM_TAG(0x0008, 0x0050), DCM_DL_STUDY, DCM_DK_REQUIRED},
        {DCM_TAG(0x0020, 0x0010), DCM_DL_STUDY, DCM_DK_REQUIRED},
        {DCM_TAG(0x0020, 0x000D), DCM_DL_STUDY, DCM_DK_UNIQUE},
        {DCM_TAG(0x0008, 0x0060), DCM_DL_SERIES, DCM_DK_REQUIRED},
        {DCM_TAG(0x0020, 0x0011), DCM_DL_SERIES, DCM_DK_REQUIRED},
        {DCM_TAG(0x0020, 0x000E), DCM_DL_SERIES, DCM_DK_UNIQUE},
        {DCM_TAG(0x0020, 0x0013), DCM_DL_IMAGE, DCM_DK_REQUIRED},
        {DCM_TAG(0x0008, 0x0018), DCM_DL_IMAGE, DCM_DK_UNIQUE},
        {DCM_TAG(0x0008, 0x0052), DCM_DL_NONE, DCM_DK_CONTROL},
        {DCM_TAG(0x0008, 0x0054), DCM_DL_NONE, DCM_DK_RETURN},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct dcm_dict_entry *e = dcm_dict_find(rows[i].tag);
        cr_assert_not_null(e, "%08x", rows[i].tag);
        cr_assert_eq(e->level, rows[i].level, "%08x", rows[i].tag);
        cr_assert_eq(e->key, rows[i].key, "%08x", rows[i].tag);
    }
    /* one unique key per level */
    int unique[5] = {0};
    for (uint32_t g = 0x0008; g <= 0x0088; g++) {
        for (uint32_t el = 0; el <= 0xFFFF; el += 1) {
            const struct dcm_dict_entry *e = dcm_dict_find(DCM_TAG(g, el));
            if (e && e->key == DCM_DK_UNIQUE)
                unique[e->level]++;
            if (e)
                cr_assert_not_null(dcm_vr_info(e->vr), "%08x has a known VR", e->tag);
        }
    }
    for (int l = 1; l <= 4; l++)
        cr_assert_eq(unique[l], 1, "level %d", l);
}

/* PS3.5 Table 7.1-1 / 7.1-2: which VRs have the 4-byte length in Explicit VR. */
Test(dcm_dict, vr_table_header_forms_and_padding)
{
    const char *lng[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT",
                         "UV"};
    const char *shrt[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO",
                          "LT", "PN", "SH", "SL", "SS", "ST", "TM", "UI", "UL", "US"};
    for (size_t i = 0; i < sizeof(lng) / sizeof(lng[0]); i++)
        cr_assert(dcm_vr_info(DCM_VR_CODE(lng[i][0], lng[i][1]))->long_len, "%s", lng[i]);
    for (size_t i = 0; i < sizeof(shrt) / sizeof(shrt[0]); i++)
        cr_assert(!dcm_vr_info(DCM_VR_CODE(shrt[i][0], shrt[i][1]))->long_len, "%s", shrt[i]);
    cr_assert_null(dcm_vr_info(DCM_VR_CODE('Z', 'Z')));
    cr_assert_null(dcm_vr_info(DCM_VR_CODE('O', 'X')));
    cr_assert_eq(dcm_vr_info(DCM_VR_UI)->pad, '\0');
    cr_assert_eq(dcm_vr_info(DCM_VR_PN)->pad, ' ');
    char name[3];
    dcm_vr_name(DCM_VR_SQ, name);
    cr_assert_str_eq(name, "SQ");
    const uint8_t *p = (const uint8_t *)"  ID  ";
    size_t n = 6;
    dcm_vr_strip(DCM_VR_LO, &p, &n);
    cr_assert_eq(n, 2);
    p = (const uint8_t *)"  text  ";
    n = 8;
    dcm_vr_strip(DCM_VR_LT, &p, &n);
    cr_assert_eq(n, 6, "LT keeps its leading spaces");
    p = (const uint8_t *)"1.2\0";
    n = 4;
    dcm_vr_strip(DCM_VR_UI, &p, &n);
    cr_assert_eq(n, 3);
}

Test(dcm_dict, arena_allocates_zeroed_memory_under_its_cap)
{
    struct dcm_arena a;
    dcm_arena_init(&a, 20000);
    uint8_t *p = dcm_arena_alloc(&a, 100);
    cr_assert_not_null(p);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(p[i], 0);
    cr_assert_eq((uintptr_t)p % _Alignof(max_align_t), 0);
    cr_assert_not_null(dcm_arena_alloc(&a, 0));
    cr_assert_null(dcm_arena_alloc(&a, 30000));
    cr_assert_eq(a.err, ERR_LIMIT);
    cr_assert_not_null(dcm_arena_dup(&a, "abc", 3));
    size_t total = 0;
    while (dcm_arena_alloc(&a, 1000))
        total += 1000;
    cr_assert_eq(a.err, ERR_LIMIT);
    cr_assert_leq(a.used, 20000);
    cr_assert_gt(total, 10000);
    dcm_arena_cleanup(&a);
    cr_assert_eq(a.used, 0);
    cr_assert_not_null(dcm_arena_alloc(&a, 100), "usable again after cleanup");
    dcm_arena_cleanup(&a);
}
