/* sop_registry: the Storage SOP Classes of the DICOM standard (PS3.4 Annex B), for presentation
 * context negotiation. The table is generated (common/sop_registry.c, by tools/gen_sop_registry.py
 * from the PS3.6 Table A-1 registry); it is read-only and needs no initialisation. */
#ifndef GW_SOP_REGISTRY_H
#define GW_SOP_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

/* PS3.4 Annex A: not a storage class, but every SCP accepts it (C-ECHO). */
#define SOP_VERIFICATION "1.2.840.10008.1.1"

struct sop_class {
    const char *uid;  /* e.g. "1.2.840.10008.5.1.4.1.1.2" */
    const char *name; /* as in PS3.6, retired ones ending in " (Retired)" */
    bool retired;
};

/* Storage SOP class by UID: exact match of a NUL-terminated string without padding (callers strip
 * the trailing NUL or space an even-length wire value carries). Returns a pointer into the static
 * table, or NULL if uid is NULL or not a storage class. O(log n); reads at most 65 bytes of uid. */
const struct sop_class *sop_registry_find(const char *uid);

/* Number of entries in the table (current and retired). */
size_t sop_registry_count(void);

/* Entry i of the table, sorted by UID in strcmp order; NULL when i >= sop_registry_count(). */
const struct sop_class *sop_registry_at(size_t i);

#endif
