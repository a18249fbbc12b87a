/* commit_report: delivering one Storage Commitment result (PS3.4 J.3.3): the N-EVENT-REPORT-RQ
 * with its Event Information, and the wait for the N-EVENT-REPORT-RSP. One attempt at a time per
 * transaction (commit_txn.c decides when to try again):
 *   1. the association that carried the N-ACTION, if the modality still holds it open, else
 *      any open association from the modality's AE title on which it proposed the Storage
 *      Commitment SOP class as SCU (the report goes on that context, PS3.4 J.3.3.1.2 note 1);
 *   2. else a new association to the modality's "ae_peers" entry (directly, or through an edge's
 *      reverse port), proposing the SOP class with us in the SCP role (PS3.8 D.3.3.4 role
 *      selection, PS3.4 J.3.3.1.3); released after the answer.
 * An attempt ends with the N-EVENT-REPORT-RSP (whatever its status: the report was delivered),
 * or fails: the association ends first, or no answer within commit.report_timeout_ms (the
 * association is then aborted). */
#ifndef GW_COMMIT_REPORT_H
#define GW_COMMIT_REPORT_H

#include <stdint.h>

#include "core_ctx.h"
#include "spool/commit_rec.h"

enum commit_report_path { COMMIT_PATH_SAME = 0, COMMIT_PATH_NEW = 1 };

/* err 0: delivered (rsp_status is the N-EVENT-REPORT-RSP's status); < 0: not delivered. */
typedef void (*commit_report_cb)(void *arg, int err, enum commit_report_path path,
                                 uint16_t rsp_status);

/* Start an attempt for decided t (copied: t may go after this call). assoc_id: the N-ACTION's
 * association (0 when unknown: after a restart or a takeover). Returns 0 (cb runs once, later),
 * ERR_NOTFOUND (no open association and no ae_peers entry for t->calling: nothing started),
 * or another < 0 (nothing started). */
MUST_CHECK int commit_report_send(struct core_ctx *ctx, const struct commit_txn *t,
                                  uint64_t assoc_id, commit_report_cb cb, void *arg);

#endif
