/* audit_queue: a durable, bounded FIFO of audit messages in a directory, read by several
 * repositories at their own pace. Messages get contiguous sequence numbers; each reader commits
 * the sequence it has delivered up to; a message leaves the disk once every reader has committed
 * it (or the full-queue policy dropped it).
 *
 * Files in dir: seg-<first seq, 16 hex>.aq (records, audit_qrec.h), cursor-<reader>.aq (a
 * reader's commit), lost.aq (messages lost and not yet reported), lock (flock: one process).
 *
 * Durability: aq_append write(2)s the record, so it survives the process being killed at once;
 * aq_sync fdatasyncs what was appended (and the directory after a new segment) so that it
 * survives a power loss too. The audit thread calls aq_sync before it sends anything.
 *
 * Thread safety: every function takes the queue's mutex; aq_sync, aq_commit, aq_save and
 * aq_close must all be called from one thread (they close and unlink files). */
#ifndef GW_AUDIT_QUEUE_H
#define GW_AUDIT_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wbuf.h"

#define AQ_MAX_READERS 8u
#define AQ_NAME_MAX 64u
#define AQ_MIN_BYTES (256u * 1024u)

enum aq_full { AQ_DROP_OLDEST = 0, AQ_FAIL_CLOSED = 1 };

struct aq_opts {
    const char *dir;    /* created (0700) when missing */
    uint64_t max_bytes; /* payload + record headers of the messages held, >= AQ_MIN_BYTES */
    uint64_t max_msgs;  /* >= 1 */
    enum aq_full on_full;
    size_t n_readers;                    /* 1..AQ_MAX_READERS */
    const char *readers[AQ_MAX_READERS]; /* names: [A-Za-z0-9._-], 1..AQ_NAME_MAX */
};

/* What aq_open found on disk. */
struct aq_report {
    uint64_t records;       /* messages held */
    uint64_t lost;          /* sequence numbers missing (corrupt or cut records) */
    uint64_t garbage_bytes; /* bytes that were not valid records */
    uint64_t pending_lost;  /* lost, not yet reported (includes earlier runs') */
};

struct aq_stats {
    uint64_t count, bytes; /* messages held (head..tail) and their bytes */
    uint64_t head, tail;   /* the oldest held seq, the next seq to assign */
    uint64_t dropped;      /* dropped by drop_oldest, this run */
    uint64_t refused;      /* refused by fail_closed, this run */
    uint64_t pending_lost; /* lost and not yet reported by an alert */
    uint64_t commit[AQ_MAX_READERS];
    size_t segments;
    bool full; /* no room for another message */
};

struct aq;

/* Open (or create) the queue in o->dir and recover what is there: every segment is scanned as
 * untrusted bytes, a cut record at the end of the last segment is truncated away, corrupt records
 * are skipped and counted lost, readers without a cursor file start at the oldest message.
 * Returns 0 and *out; ERR_CONFIG (bad options, or another process holds the queue) or -errno,
 * with err set. */
MUST_CHECK int aq_open(const struct aq_opts *o, struct aq **out, struct aq_report *rep, char *err,
                       size_t err_len);
/* Save the cursors, close every file, free. NULL does nothing. */
void aq_close(struct aq *q);

/* Append one message (n <= AQ_REC_MAX bytes). When it does not fit: drop_oldest drops the
 * oldest messages until it does (each counted lost); fail_closed appends nothing and returns
 * ERR_NOSPACE (the message counted lost). Returns 0 (and *seq when not NULL), ERR_NOSPACE,
 * ERR_LIMIT (larger than the queue or AQ_REC_MAX), or ERR_IO / -errno (then counted lost). */
MUST_CHECK int aq_append(struct aq *q, const void *p, size_t n, uint64_t *seq);

/* Append the alert that reports `reported` lost messages, only if it fits without dropping
 * anything; on success those are no longer pending. 0, ERR_NOSPACE or an append error. */
MUST_CHECK int aq_append_report(struct aq *q, const void *p, size_t n, uint64_t reported);

/* Make every appended record durable (fdatasync, and the directory after a new segment). */
MUST_CHECK int aq_sync(struct aq *q);

/* Read message seq into out (reset first). Returns 1 (out holds it); 0 when seq >= tail (not yet
 * appended); ERR_NOTFOUND when it is gone (dropped, or lost to corruption): *next is where to go
 * on; or -errno. */
MUST_CHECK int aq_read(struct aq *q, uint64_t seq, struct wbuf *out, uint64_t *next);

/* Reader r has delivered every message below seq (no effect if seq is not above its commit).
 * Frees the segments no reader needs any more. */
void aq_commit(struct aq *q, size_t r, uint64_t seq);
uint64_t aq_committed(struct aq *q, size_t r);

/* Write the readers' cursors and the lost counter (fdatasync'd). 0 or -errno. */
MUST_CHECK int aq_save(struct aq *q);

void aq_get_stats(struct aq *q, struct aq_stats *st);
/* Lock-free: true while the queue has no room for another message. */
bool aq_is_full(struct aq *q);

#endif
