/* commit_txn_int: what commit_txn.c (the list, the timer, sweeps, the API) and commit_eval.c
 * (checking references, deciding, delivering) share. Not for other modules. */
#ifndef GW_COMMIT_TXN_INT_H
#define GW_COMMIT_TXN_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "commit_txn.h"
#include "common/log.h"
#include "spool/backend_commit.h"
#include "spool/backend_commit.h"
#include "spool/spool_backend.h"

struct ctxn {
    struct ctxn *next, **pprev;
    struct commit_mgr *m;
    struct commit_txn t;
    uint64_t assoc_id; /* the N-ACTION's association, 0 after a restart or takeover */
    uint64_t due;      /* uv_now() when its next step is due */
    unsigned polls, retries;
    size_t cursor;
    bool busy;      /* a locate, store write or report attempt is under way */
    bool saved;     /* DECIDED: the decision is durable */
    bool delivered; /* the report was answered: only the REPORTED write is left */
    bool final_pass, progress, stop, in_locate, located_sync;
    bool warned_no_route;
    bool undelivered;
    int64_t lease_until; /* shared store: our hold (unix ms) */
};

struct commit_mgr {
    struct core_ctx *ctx;
    const struct backend_commit_ops *ops;
    void *impl; /* the backend's, for ops */
    const struct backend_txn_ops *store;
    void *store_impl;
    bool shared;
    enum backend_copy_state point;
    char owner[96];
    struct ctxn *list;
    size_t n;
    uv_timer_t timer;
    uint64_t next_sweep;
    bool sweeping, stopping, status_dirty;
    int closing; /* handles and stores still closing */
    char status_path[SPOOL_PATH_MAX];
    struct metric_gauge *g_open, *g_last_ms, *g_requests;
    struct metric_counter *c_committed, *c_failed, *c_same, *c_new, *c_attempt_failed,
        *c_undelivered, *c_lat_sum;
};

int64_t commit_txn_wall_ms(void);                                  /* unix ms */
uint64_t commit_txn_now(const struct commit_mgr *m);                /* the loop's ms clock */
const struct core_commit_config *commit_txn_cfg(const struct commit_mgr *m);
void commit_txn_log(enum log_level lvl, const char *ev, const struct ctxn *x, const char *why);
void commit_txn_reschedule(struct commit_mgr *m);                  /* the timer, for the next due step */
void commit_txn_free(struct ctxn *x);                          /* unlinked and freed */
void commit_txn_link(struct commit_mgr *m, struct ctxn *x);
struct ctxn *commit_txn_find(const struct commit_mgr *m, const char *uid);
/* An async step ended: false when x is gone (stopping) and the caller must not touch it. */
bool commit_txn_back(struct ctxn *x);
void commit_txn_later(struct ctxn *x, uint64_t delay);             /* due in delay ms */
uint64_t commit_txn_backoff(uint32_t first, uint32_t max, unsigned n); /* first doubled n times, capped */
/* commit_eval.c: the next thing x needs, now (x not busy). */
void commit_eval_step(struct ctxn *x);
/* commit_eval.c: extend (and with body, write) x's lease and state in the store. */
void commit_eval_renew(struct ctxn *x, bool body);
int64_t commit_eval_lease_end(const struct commit_mgr *m);

#endif
