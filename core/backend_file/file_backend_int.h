/* file_backend_int: what the file backend's own files share (not for other modules). */
#ifndef GW_FILE_BACKEND_INT_H
#define GW_FILE_BACKEND_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/strmap.h"
#include "common/wbuf.h"
#include "spool/backend_commit.h"
#include "spool/spool.h"
#include "spool/spool_backend.h"
#include "spool/spool_journal.h"

#define FILE_BACKEND_STEP 256 /* ready entries taken per step */

struct file_backend_config {
    char dir[1024];
    char prefix[128];
    uint32_t batch_max_objects;
    uint64_t batch_max_bytes;
    uint32_t batch_max_age_ms;
};

/* Parse the "backend" object of type file (defaults for absent keys); one line per problem into
 * errs. 0 or ERR_CONFIG. */
MUST_CHECK int file_backend_config_parse(const char *json, struct file_backend_config *c,
                                         struct wbuf *errs);

struct file_backend {
    struct file_backend_config cfg;
    struct spool *spool;
    bool fsync;
    struct spool_journal *journal;
    struct strmap stored;   /* "sop|sha" */
    struct strmap assigned; /* spool id -> key, for entries assigned but not yet stored */
    char batch[64];
    uint32_t batch_objects;
    uint64_t batch_bytes;
    uint64_t batch_opened_ms;
    unsigned batch_seq;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, kicked;
    struct backend_stats stats;
    time_t started; /* entries older than this were left by a previous run: verify them */
    struct file_commit_index *commit_ix; /* Storage Commitment: where each copy is */
};

uint64_t file_backend_now_ms(void);
/* What makes a copy the same copy: the SOP Instance UID and the content's hash (the SHA-256, or
 * the CRC-64/NVME where the spool computed no SHA-256). */
void file_backend_stored_key(const char *sop, const char *sha, const char *crc, char *k,
                             size_t cap);
/* One step: up to FILE_BACKEND_STEP ready entries. How many were finished, or < 0. */
int file_backend_step(struct file_backend *b);
/* Close the open batch (a journal "job" record, as a HealthImaging import job would be). */
void file_backend_close_batch(struct file_backend *b);
/* Count and log a failed step. */
void file_backend_fail(struct file_backend *b, const char *what, const char *id, int rc);

/* file_backend_commit.c: Storage Commitment's index of copies (thread-safe). */
struct file_commit_index;
MUST_CHECK int file_commit_new(struct file_commit_index **out);
void file_commit_free(struct file_commit_index *ix); /* NULL is fine */
/* A copy of sop (content hash sha, class, receipt time as in the sidecar) reached st. */
void file_commit_note(struct file_commit_index *ix, const char *sop, const char *sha,
                      const char *sop_class, const char *received_iso,
                      enum backend_copy_state st);
extern const struct backend_commit_ops file_commit_ops;

#endif
