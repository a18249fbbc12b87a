#include "sop_registry.h"

#include <criterion/criterion.h>
#include <string.h>

static void expect_storage(const char *uid, bool retired)
{
    const struct sop_class *c = sop_registry_find(uid);
    cr_assert_not_null(c, "%s should be a storage class", uid);
    cr_assert_str_eq(c->uid, uid);
    cr_assert_not_null(c->name);
    cr_assert_gt(strnlen(c->name, 128), 0);
    cr_assert_eq(c->retired, retired, "%s retired flag", uid);
}

Test(sop_registry, table_is_strictly_sorted_without_duplicates)
{
    size_t n = sop_registry_count();
    cr_assert_gt(n, 0);
    for (size_t i = 1; i < n; i++) {
        const struct sop_class *a = sop_registry_at(i - 1);
        const struct sop_class *b = sop_registry_at(i);
        cr_assert_lt(strcmp(a->uid, b->uid), 0, "%s !< %s at %zu", a->uid, b->uid, i);
    }
}

Test(sop_registry, every_entry_is_found_by_its_own_uid)
{
    for (size_t i = 0; i < sop_registry_count(); i++) {
        const struct sop_class *c = sop_registry_at(i);
        cr_assert_eq(sop_registry_find(c->uid), c, "%s", c->uid);
        cr_assert_leq(strnlen(c->uid, 80), 64, "%s longer than a UID may be", c->uid);
        cr_assert_eq(c->retired, strstr(c->name, "(Retired)") != NULL, "%s", c->name);
    }
}

Test(sop_registry, holds_every_class_of_the_current_standard)
{
    cr_assert_gt(sop_registry_count(), 150);
}

Test(sop_registry, at_past_the_end_is_null)
{
    cr_assert_not_null(sop_registry_at(sop_registry_count() - 1));
    cr_assert_null(sop_registry_at(sop_registry_count()));
    cr_assert_null(sop_registry_at((size_t)-1));
}

Test(sop_registry, finds_common_storage_classes)
{
    expect_storage("1.2.840.10008.5.1.4.1.1.2", false);     /* CT Image */
    expect_storage("1.2.840.10008.5.1.4.1.1.2.1", false);   /* Enhanced CT Image */
    expect_storage("1.2.840.10008.5.1.4.1.1.4", false);     /* MR Image */
    expect_storage("1.2.840.10008.5.1.4.1.1.3.1", false);   /* Ultrasound Multi-frame Image */
    expect_storage("1.2.840.10008.5.1.4.1.1.7", false);     /* Secondary Capture Image */
    expect_storage("1.2.840.10008.5.1.4.1.1.88.11", false); /* Basic Text SR */
    expect_storage("1.2.840.10008.5.1.4.1.1.104.1", false); /* Encapsulated PDF */
    expect_storage("1.2.840.10008.5.1.4.1.1.1.1.1", false); /* DX - For Processing */
    expect_storage("1.2.840.10008.5.1.4.38.1", false);      /* Hanging Protocol */
    cr_assert_str_eq(sop_registry_find("1.2.840.10008.5.1.4.1.1.2")->name, "CT Image Storage");
}

Test(sop_registry, finds_classes_added_after_pydicom_2_3_1)
{
    expect_storage("1.2.840.10008.5.1.4.1.1.6.3", false);     /* Photoacoustic Image, 2023 */
    expect_storage("1.2.840.10008.5.1.4.1.1.66.8", false);    /* Height Map Segmentation */
    expect_storage("1.2.840.10008.5.1.4.1.1.201.1", false);   /* Inventory */
    expect_storage("1.2.840.10008.5.1.4.1.1.9.100.1", false); /* Waveform Presentation State */
    cr_assert_str_eq(sop_registry_find("1.2.840.10008.5.1.4.1.1.77.1.8")->name,
                     "Confocal Microscopy Image Storage");
}

Test(sop_registry, finds_retired_classes_marked_retired)
{
    expect_storage("1.2.840.10008.5.1.4.1.1.3", true);    /* US Multi-frame, old UID */
    expect_storage("1.2.840.10008.5.1.4.1.1.6", true);    /* US Image, old UID */
    expect_storage("1.2.840.10008.5.1.4.1.1.5", true);    /* NM Image, old UID */
    expect_storage("1.2.840.10008.5.1.4.1.1.88.1", true); /* Text SR - Trial */
    cr_assert_str_eq(sop_registry_find("1.2.840.10008.5.1.4.1.1.3")->name,
                     "Ultrasound Multi-frame Image Storage (Retired)");
}

Test(sop_registry, refuses_non_storage_classes)
{
    cr_assert_null(sop_registry_find("1.2.840.10008.1.20.1"));      /* Storage Commitment Push */
    cr_assert_null(sop_registry_find("1.2.840.10008.1.20.2"));      /* Storage Commitment Pull */
    cr_assert_null(sop_registry_find(SOP_VERIFICATION));
    cr_assert_null(sop_registry_find("1.2.840.10008.5.1.4.1.2.2.1")); /* Study Root Q/R FIND */
    cr_assert_null(sop_registry_find("1.2.840.10008.5.1.4.31"));    /* Modality Worklist FIND */
    cr_assert_null(sop_registry_find("1.2.840.10008.1.3.10"));      /* Media Storage Directory */
    cr_assert_null(sop_registry_find("1.2.840.10008.5.1.4.1.1.201.2")); /* Inventory - FIND */
    cr_assert_null(sop_registry_find("1.2.840.10008.1.2.1"));       /* a transfer syntax */
}

Test(sop_registry, refuses_uids_that_are_not_classes)
{
    cr_assert_null(sop_registry_find("1.2.840.10008.5.1.4.1.1.2.9"));
    cr_assert_null(sop_registry_find("1.2.840.10008.5.1.4.1.1"));   /* a prefix of every class */
    cr_assert_null(sop_registry_find("1.2.840.10008.5.1.4.1.1.20.")); /* NM Image + a dot */
    cr_assert_null(sop_registry_find("0"));
    cr_assert_null(sop_registry_find("9.9.9"));
    cr_assert_null(sop_registry_find(""));
    cr_assert_null(sop_registry_find(NULL));
}

Test(sop_registry, refuses_space_padded_uids_and_stops_at_nul)
{
    /* PS3.5 9.1: the wire pads an odd-length UID with one NUL; some peers pad with a space. The
     * caller strips either. A NUL pad left in place just ends the C string, so it cannot change
     * the answer; any other byte makes the UID a different one. */
    static const char nul_padded[] = "1.2.840.10008.5.1.4.1.1.2\0";
    cr_assert_not_null(sop_registry_find(nul_padded)); /* the NUL ends the C string */
    cr_assert_null(sop_registry_find("1.2.840.10008.5.1.4.1.1.2 "));
    cr_assert_null(sop_registry_find(" 1.2.840.10008.5.1.4.1.1.2"));
    cr_assert_null(sop_registry_find("1.2.840.10008.5.1.4.1.1.4 "));
}
