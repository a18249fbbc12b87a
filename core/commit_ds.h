/* commit_ds: the datasets of the Storage Commitment Push Model (PS3.4 J.3): the N-ACTION's
 * Action Information (a request: Transaction UID and Referenced SOP Sequence) and the
 * N-EVENT-REPORT's Event Information (the result). Pure: dcm_ds only, no I/O, no logs. */
#ifndef GW_COMMIT_DS_H
#define GW_COMMIT_DS_H

#include <stddef.h>
#include <stdint.h>

#include "common/dcm_ds.h"
#include "common/wbuf.h"
#include "spool/commit_rec.h"

#define SOP_STORAGE_COMMITMENT "1.2.840.10008.1.20.1"          /* PS3.4 J.3.5 */
#define SOP_STORAGE_COMMITMENT_INSTANCE "1.2.840.10008.1.20.1.1" /* its well-known instance */

#define TAG_TRANSACTION_UID 0x00081195u
#define TAG_REFERENCED_SOP_SEQ 0x00081199u
#define TAG_FAILED_SOP_SEQ 0x00081198u
#define TAG_REFERENCED_SOP_CLASS 0x00081150u
#define TAG_REFERENCED_SOP_INSTANCE 0x00081155u
#define TAG_FAILURE_REASON 0x00081197u

/* Why a request was refused (svc_commit turns these into statuses). */
enum commit_ds_err {
    COMMIT_DS_MALFORMED = -1,  /* not a dataset, or an attribute missing or invalid */
    COMMIT_DS_TOO_MANY = -2,   /* more references than max_refs */
    COMMIT_DS_NOMEM = -3,
};

/* Parse an N-ACTION Action Information dataset (Action Type 1, PS3.4 Table J.3-1) of n bytes in
 * ts into t: uid (the Transaction UID) and refs (class, instance; result COMMIT_PENDING); the
 * other fields of t are left as they are. Every reference needs both UIDs, valid (PS3.5 9.1);
 * at least one reference. Returns 0 (t->refs is then the caller's: commit_txn_cleanup), or
 * an enum commit_ds_err; *why names the problem for an Error Comment (static text, no data). */
int commit_ds_parse_action(const uint8_t *p, size_t n, enum dcm_ts ts, size_t max_refs,
                           struct commit_txn *t, const char **why);

/* The N-EVENT-REPORT Event Information (PS3.4 Table J.3-2) for a decided t, appended to out in
 * ts: Transaction UID, Referenced SOP Sequence (the committed references, when any) and Failed
 * SOP Sequence (the others, each with its Failure Reason, when any). 0 or < 0 (dcm_ds_write's
 * errors, ERR_NOMEM). */
MUST_CHECK int commit_ds_event(const struct commit_txn *t, enum dcm_ts ts, struct wbuf *out);

#endif
