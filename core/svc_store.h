/* svc_store: the Storage SOP Classes as SCP (PS3.4 Annex B, PS3.7 9.1.1): C-STORE. Each
 * object streams into the spool (store.h) and is answered once durable at the configured
 * acknowledgement point. */
#ifndef GW_SVC_STORE_H
#define GW_SVC_STORE_H

#include "dimse_service.h"

extern const struct dimse_service svc_store;

#endif
