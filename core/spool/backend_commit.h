/* backend_commit: what the Storage Commitment service (PS3.4 Annex J) asks a backend: where each
 * received copy of an instance is, against the commit point (spool, store/S3 or HealthImaging),
 * and, for a backend whose state is shared between core tasks (aws: DynamoDB), the store of
 * commitment transactions that any task can finish. A backend that can fills a struct
 * backend_commit_ops and points its backend_ops.commit at it. Every callback runs on env->loop
 * (the core's loop), possibly before the call that started it returns (an in-memory answer).
 *
 * Transactions (struct commit_txn, spool/commit_rec.h) move OPEN -> DECIDED (the outcome fixed
 * once, durably, before any report is sent, so that every report of a transaction says the same)
 * -> REPORTED (an N-EVENT-REPORT-RSP came back, or the delivery deadline passed). A shared store
 * gives each transaction to one core task at a time with a lease (owner + lease_until, unix ms):
 * every write of the owner is conditional on still holding it, and another task takes a
 * transaction over only once its lease has expired (the owner died). */
#ifndef GW_BACKEND_COMMIT_H
#define GW_BACKEND_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct commit_txn; /* spool/commit_rec.h */

/* How far one received copy (SOP Instance UID + content hash) has come. */
enum backend_copy_state {
    COPY_UNKNOWN = 0,
    COPY_SPOOL = 1,    /* durable in the spool */
    COPY_STORED = 2,   /* in S3 (aws) or the file store (file) */
    COPY_IMPORTED = 3, /* in HealthImaging (an import job's success, or STOW-RS accepted it) */
    COPY_FAILED = 4,   /* HealthImaging refused it (failure has why) */
};

#define BACKEND_COPIES_MAX 16

struct backend_copy {
    char sha256[65];
    char sop_class[65];
    enum backend_copy_state state;
    int64_t received_ms; /* unix milliseconds of its receipt, 0 when unknown */
    char failure[128];
};

typedef void (*backend_locate_cb)(void *arg, int err, const struct backend_copy *copies,
                                  size_t n);

/* Answers of the transaction store. err: 0, -EEXIST (create: the Transaction UID is known),
 * ERR_WRONG_STATE (the lease is someone else's, or the transaction is already reported), or
 * another < 0 (the store could not be reached: retry later). */
typedef void (*backend_txn_cb)(void *arg, int err);
/* claim: t is the stored transaction (borrowed for the call) when err is 0. */
typedef void (*backend_txn_got_cb)(void *arg, int err, const struct commit_txn *t);
/* list: the Transaction UIDs of open transactions whose lease has expired (borrowed). */
typedef void (*backend_txn_list_cb)(void *arg, int err, const char (*uids)[65], size_t n);

struct backend_txn_ops {
    /* Store a new transaction (state OPEN) leased to owner until lease_until. */
    int (*create)(void *impl, const struct commit_txn *t, const char *owner, int64_t lease_until,
                  backend_txn_cb cb, void *arg);
    /* Take transaction uid over: only when it is not reported and its lease expired (or is
     * owner's already). */
    int (*claim)(void *impl, const char *uid, const char *owner, int64_t now, int64_t lease_until,
                 backend_txn_got_cb cb, void *arg);
    /* Write t's state (and, with body, its references and outcome) and extend the lease; only
     * while owner holds it. */
    int (*save)(void *impl, const struct commit_txn *t, bool body, const char *owner,
                int64_t lease_until, backend_txn_cb cb, void *arg);
    /* The report was answered (or given up on): REPORTED, kept until keep_until (unix ms) so
     * that a reuse of the Transaction UID is still recognised. Only while owner holds it. */
    int (*reported)(void *impl, const char *uid, const char *owner, int64_t keep_until,
                    backend_txn_cb cb, void *arg);
    /* Open transactions whose lease expired before now (a shared store: at most 100 per call,
     * the rest at the next sweep; the core's own store: all of them, read once at start). */
    int (*list)(void *impl, int64_t now, backend_txn_list_cb cb, void *arg);
};

struct backend_commit_ops {
    /* Every copy of SOP Instance sop the backend knows, newest first (at most
     * BACKEND_COPIES_MAX). cb once, on env->loop. 0, or < 0 (no cb). */
    int (*locate)(void *impl, const char *sop, backend_locate_cb cb, void *arg);
    /* The shared transaction store, or NULL: the core keeps transactions in its own spool
     * (<spool>/commit/), which only that core process finishes. */
    const struct backend_txn_ops *txn;
    /* The strongest point this backend's copies reach (COPY_STORED for file, COPY_IMPORTED for
     * aws): the default commit point. */
    enum backend_copy_state strongest;
    /* Requests made to the backend's services for commitment so far (status, benchmarks), or
     * NULL. */
    uint64_t (*requests)(void *impl);
    /* Release what commitment holds on env->loop (clients, handles); done(arg) once closed (NULL:
     * nothing to release). No other call may follow. */
    void (*close)(void *impl, void (*done)(void *arg), void *arg);
};

#endif
