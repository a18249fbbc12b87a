/* commit_store: the core's own store of Storage Commitment transactions, for backends without a
 * shared one (file): one file per transaction, <spool>/commit/<Transaction UID>.json, holding its
 * record (spool/commit_rec.h). A new transaction is written to a temporary file, fsync'd, and
 * linked to its name (link(2) fails when the name exists: a duplicate Transaction UID, decided
 * atomically), then the directory is fsync'd; later states replace the file atomically
 * (fileio_replace). A reported transaction keeps a small file (no references) for remember_s so
 * that a reuse of its UID is refused, then it is removed. Every file operation runs on the libuv
 * threadpool; callbacks run on the loop. It implements struct backend_txn_ops (leases mean
 * nothing here: one process owns the directory). */
#ifndef GW_COMMIT_STORE_H
#define GW_COMMIT_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "spool/backend_commit.h"
#include "spool/spool.h"

struct commit_store;

/* Create <spool>/commit/ if needed. 0 and *out, or < 0 (-errno, ERR_NOMEM, ERR_LIMIT). */
MUST_CHECK int commit_store_open(uv_loop_t *loop, const struct spool *spool, bool fsync,
                                 uint32_t remember_s, struct commit_store **out);

/* The operations; impl is the struct commit_store. close frees it once its work is done. */
extern const struct backend_txn_ops commit_store_ops;
void commit_store_close(void *impl, void (*done)(void *arg), void *arg);

/* Read-only, for the operator's status command: count the transaction files under
 * <spool_dir>/commit/ by state, and print one line per open one to stdout (json: one JSON
 * object per line). 0 or -errno. */
MUST_CHECK int commit_store_print(const char *spool_dir, bool json, uint64_t *open_n,
                                  uint64_t *reported_n);

#endif
