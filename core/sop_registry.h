/* sop_registry: the table now lives in the common layer (common/sop_registry.h), where the edge
 * can use it too; this header keeps the SCP's includes as they were. */
#ifndef GW_SCP_SOP_REGISTRY_H
#define GW_SCP_SOP_REGISTRY_H

#include "common/sop_registry.h"

#endif
