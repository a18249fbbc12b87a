/* svc_move: C-MOVE SCP (Query/Retrieve, Patient Root and Study Root). */
#ifndef GW_SVC_MOVE_H
#define GW_SVC_MOVE_H

#include "dimse_service.h"

extern const struct dimse_service svc_move;

#endif
