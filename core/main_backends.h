/* main_backends: the registry of backends dicom-core can open by their configured "type". */
#ifndef GW_MAIN_BACKENDS_H
#define GW_MAIN_BACKENDS_H

#include "spool/spool_backend.h"

extern const struct backend_ops *const g_core_backends[]; /* NULL-terminated */

#endif
