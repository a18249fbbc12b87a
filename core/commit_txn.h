/* commit_txn: the Storage Commitment transactions this core process holds, from the N-ACTION to
 * the answered N-EVENT-REPORT (PS3.4 J.3). Each one is kept durable in a store (the backend's
 * shared one, e.g. DynamoDB for aws, else the core's own <spool>/commit/, commit_store.h)
 * before the N-ACTION is answered; it moves
 *   OPEN     its references are checked against the commit point (backend_commit_ops.locate),
 *            again and again with backoff, until each is committed or failed, or the deadline;
 *   DECIDED  the outcome (Event Type 1 or 2, each reference's result) is written to the store
 *            before any report goes out, so that every report of it says the same;
 *   REPORTED an N-EVENT-REPORT-RSP came back (commit_report.h), or delivery was given up
 *            after commit.report_deadline_ms past the deadline.
 * A reference is committed only when the newest copy of its SOP instance the backend knows has
 * the SOP class the modality named and has reached the commit point. At start every open
 * transaction of the store is resumed; with a shared store, transactions whose task died (lease
 * expired) are taken over. Everything runs on the core's loop. */
#ifndef GW_COMMIT_TXN_H
#define GW_COMMIT_TXN_H

#include <stdint.h>

#include "core_ctx.h"
#include "spool/commit_rec.h"

struct commit_mgr;

/* Start with ctx's configuration and backend (after backend_open): open the store, resume what
 * it holds. A backend without commitment support: 0 and nothing (svc_commit then answers
 * 0110H). 0 or < 0 (logged). */
MUST_CHECK int commit_start(struct core_ctx *ctx);
/* Stop timers and attempts, close the store (its handles close on the loop). NULL-safe. */
void commit_stop(struct core_ctx *ctx);

/* The N-ACTION's outcome: DIMSE status and an Error Comment (static text) or NULL. */
typedef void (*commit_open_cb)(void *arg, uint16_t status, const char *comment);

/* A new transaction from an N-ACTION on association assoc_id: t (uid, calling, called, refs;
 * taken, also on failure) gets its times and commit point here, is written to the store, and
 * cb says how to answer (0000 success; 0115H Transaction UID in use; 0213H too many open
 * transactions; 0110H the store failed). cb runs once, maybe before this returns. */
void commit_open(struct core_ctx *ctx, struct commit_txn *t, uint64_t assoc_id,
                 commit_open_cb cb, void *arg);

/* A new association from calling AE title calling can carry reports: try the ones waiting. */
void commit_kick(struct core_ctx *ctx, const char *calling);

/* Transactions held now, and the point in use (for logs and the status line). */
size_t commit_open_count(const struct core_ctx *ctx);
enum backend_copy_state commit_point(const struct core_ctx *ctx);

#endif
