/* audit_queue_int: what audit_queue.c and audit_queue_open.c share (not for other modules). */
#ifndef GW_AUDIT_QUEUE_INT_H
#define GW_AUDIT_QUEUE_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include "audit_queue.h"

#define SEG_MIN (64u * 1024u)
#define SEG_MAX (64u * 1024u * 1024u) /* so that even a 16 GiB queue stays within 257 open files   \
                                       */
#define FULL_MARGIN (8u * 1024u)      /* "full": no room for a typical message any more */
#define MAX_GAP (1u << 20)            /* placeholders for lost records within one segment */
#define NO_CURSOR UINT64_MAX

struct seg {
    uint64_t first;  /* seq of entry 0 */
    uint32_t n, cap; /* entries (lost ones included) */
    uint32_t *off;   /* file offset of each record */
    uint32_t *size;  /* its size; 0: lost (corrupt) */
    uint64_t fsize;  /* where the next record goes */
    int fd;
    bool dirty; /* appended since the last fdatasync */
};

struct aq {
    pthread_mutex_t mu;
    char dir[PATH_MAX];
    int dirfd, lockfd, lostfd;
    int curfd[AQ_MAX_READERS];
    char names[AQ_MAX_READERS][AQ_NAME_MAX + 1];
    size_t n_readers;
    uint64_t max_bytes, max_msgs, seg_max;
    enum aq_full on_full;
    struct seg *segs;
    size_t n_segs, cap_segs;
    uint64_t head, tail, bytes;
    uint64_t commit[AQ_MAX_READERS], saved[AQ_MAX_READERS];
    uint64_t dropped, refused, pending_lost, saved_lost;
    bool dir_dirty, last_refused;
    atomic_bool full;
};

/* A 16-byte state file (cursor, lost counter): magic, u64 LE value, CRC-32C of the value. */
int aq_state_write(int fd, const char magic[4], uint64_t v, bool sync);
/* The value, or NO_CURSOR when the file is short, foreign or corrupt. */
uint64_t aq_state_read(int fd, const char magic[4]);
void aq_update_full(struct aq *q);
int aq_seg_push(struct seg *s, uint32_t off, uint32_t size);
void aq_seg_name(const struct aq *q, uint64_t first, char *buf, size_t n);
/* Close and unlink the segments every reader is past (never the last one). */
void aq_reap(struct aq *q);
void aq_advance_head(struct aq *q, uint64_t to);

#endif
