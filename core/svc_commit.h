/* svc_commit: Storage Commitment Push Model SCP (N-ACTION; the N-EVENT-REPORT is commit_txn's). */
#ifndef GW_SVC_COMMIT_H
#define GW_SVC_COMMIT_H

#include "dimse_service.h"

extern const struct dimse_service svc_commit;

#endif
