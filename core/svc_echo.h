/* svc_echo: C-ECHO SCP (Verification). */
#ifndef GW_SVC_ECHO_H
#define GW_SVC_ECHO_H

#include "dimse_service.h"

extern const struct dimse_service svc_echo;

#endif
