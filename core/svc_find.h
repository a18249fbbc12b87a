/* svc_find: C-FIND SCP (Query/Retrieve, Patient Root and Study Root). */
#ifndef GW_SVC_FIND_H
#define GW_SVC_FIND_H

#include "dimse_service.h"

extern const struct dimse_service svc_find;

#endif
