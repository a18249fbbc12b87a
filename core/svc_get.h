/* svc_get: C-GET SCP (Query/Retrieve, Patient Root and Study Root). */
#ifndef GW_SVC_GET_H
#define GW_SVC_GET_H

#include "dimse_service.h"

extern const struct dimse_service svc_get;

#endif
