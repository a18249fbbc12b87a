/* file_backend_int: what the file backend's own files share (not for other modules). */
#ifndef GW_FILE_BACKEND_INT_H
#define GW_FILE_BACKEND_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "common/dcm_query.h"
#include "common/strmap.h"
#include "common/wbuf.h"
#include "spool/backend_commit.h"
#include "spool/backend_read.h"
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
    struct {
        uint32_t page_size;   /* candidates per search page (one threadpool job each) */
        uint32_t max_results; /* matches one search returns at most (then ERR_LIMIT) */
        uint32_t chunk;       /* bytes per read of a fetch */
        uint32_t page_delay_ms; /* tests: a pause before each page after the first */
    } read;
};

/* Parse the "backend" object of type file (defaults for absent keys); one line per problem into
 * errs. 0 or ERR_CONFIG. */
MUST_CHECK int file_backend_config_parse(const char *json, struct file_backend_config *c,
                                         struct wbuf *errs);

/* ---- the read index (file_backend_index.c, _extract.c, _read.c, _fetch.c) ------------------ */

#define FX_LEVELS 3
enum fx_level { FX_STUDY = 0, FX_SERIES = 1, FX_IMAGE = 2 }; /* PATIENT attributes: FX_STUDY */
#define FX_BLOB_MAX (8u * 1024u)   /* one level's attributes of one entity, encoded */
#define FX_HEAD_MAX (1024u * 1024u) /* the head of a file read for its attributes */

/* What the extractor takes from a stored file. */
struct fx_attrs {
    struct wbuf blob[FX_LEVELS]; /* Explicit VR LE datasets, text in UTF-8 (no (0008,0005)) */
    char ts[65];                 /* the file's transfer syntax */
    uint64_t dataset_offset;     /* where its dataset begins */
    char modality[17];
    char patient_id[129];
};

struct fx_inst {
    char sop[65], sop_class[65], ts[65];
    char *key; /* under the store directory */
    uint64_t bytes, offset; /* the file's size and its dataset's offset */
    uint8_t *attrs;
    uint32_t attrs_len;
};

struct fx_series {
    char uid[65];
    char modality[17];
    uint8_t *attrs;
    uint32_t attrs_len;
    struct fx_inst **inst;
    size_t n, cap;
};

struct fx_study {
    char uid[65];
    char *patient_id; /* "" when the files have none */
    uint8_t *attrs;
    uint32_t attrs_len;
    struct fx_series **series;
    size_t n, cap;
    size_t n_inst;
    char **owners; /* who sent instances of it (backend_read_owner) */
    size_t n_owners;
};

/* An instance as the journal knows it (for the index's reconciliation at start). */
struct fx_known {
    char key[512];
    char sop[65], sop_class[65], study[65], series[65];
    char owner[160];
    uint64_t bytes;
    bool duplicate; /* the content was already stored: only the owner is new */
};

struct fx_index {
    pthread_rwlock_t lock;
    struct fx_study **studies;
    size_t n, cap;
    struct strmap where; /* "s|study" -> index, "e|study|series" -> index, "i|sop" -> "a/b/c" */
    struct spool_journal *file; /* <dir>/qr_index.jsonl */
    struct fx_known *known;     /* from the journal's replay, until reconciled */
    size_t n_known, cap_known;
    _Atomic bool ready;         /* reconciled with the journal: searches may run */
    bool opened;                /* lock initialised */
    uint64_t instances;
};

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
    struct fx_index index;
    uv_loop_t *loop; /* the program's loop: read callbacks run there */
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

/* file_backend_extract.c */
void fx_attrs_init(struct fx_attrs *a);
void fx_attrs_cleanup(struct fx_attrs *a);
/* The indexed attributes of a dataset head p[0..n) (Implicit or Explicit VR LE) into a->blob.
 * 0, or < 0 (the blobs are then empty: the dataset cannot be read as far as it goes). */
MUST_CHECK int fx_extract_head(const uint8_t *p, size_t n, bool implicit, struct fx_attrs *a);
/* The same from a stored Part-10 file (its first FX_HEAD_MAX bytes), with its transfer syntax
 * and dataset offset. 0 (attributes possibly empty) or -errno / ERR_MALFORMED (no Part-10
 * header). */
MUST_CHECK int fx_extract_file(const char *path, struct fx_attrs *a);

/* file_backend_index.c: all under index.lock, taken inside */
MUST_CHECK int fx_index_open(struct file_backend *b);
void fx_index_close(struct fx_index *x);
/* Journal replay: an instance the store holds (or a duplicate's new sender). */
MUST_CHECK int fx_index_know(struct fx_index *x, const struct fx_known *k);
/* On the backend thread at start: index what the journal knows and the index lacks (reading
 * the stored files), and every sender; then the index is ready. */
void fx_index_reconcile(struct file_backend *b);
/* A newly stored instance (backend thread): extract, add, persist (synced by fx_index_sync). */
void fx_index_stored(struct file_backend *b, const struct fx_known *k);
void fx_index_sync(struct file_backend *b);
/* Lookups, with the read lock held by the caller. */
struct fx_study *fx_index_study(struct fx_index *x, const char *study);
struct fx_series *fx_index_series(struct fx_index *x, const char *study, const char *series);
struct fx_inst *fx_index_inst(struct fx_index *x, const char *sop, struct fx_study **st,
                              struct fx_series **se);
bool fx_study_owned_by(const struct fx_study *s, const char *owner);

/* file_backend_read.c / file_backend_fetch.c: a search or a fetch, told apart for resume and
 * cancel */
enum fb_op_kind { FB_OP_SEARCH = 1, FB_OP_FETCH = 2 };
struct backend_read_op {
    enum fb_op_kind kind;
};
void fb_fetch_resume(struct backend_read_op *op);
void fb_fetch_cancel(struct backend_read_op *op);
/* The studies shared with client in shares.json text (grants not yet expired at now), appended
 * to *studies / *n (strdup'd) unless in seen. 0, ERR_MALFORMED (not {"shares": [...]}) or
 * ERR_NOMEM. */
MUST_CHECK int fb_shares_for(const char *text, size_t len, const char *client, int64_t now,
                             struct strmap *seen, char ***studies, size_t *n);
extern const struct backend_read_ops file_backend_read_ops;
MUST_CHECK int fb_fetch(void *impl, const char *study, const char *series, const char *sop,
                        const char *const *ts, size_t n_ts, const struct backend_read_scope *scope,
                        const struct backend_fetch_cbs *cbs, struct backend_read_op **op);
/* A study in the scope's list (ALL: every study). */
bool fb_scope_has(const struct backend_read_scope *scope, const char *study);
/* file_backend_scope.c: backend_read_ops.scope_studies */
MUST_CHECK int fb_scope_studies(void *impl, const char *client_id, enum grant_scope scope,
                                backend_studies_cb cb, void *arg);

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
