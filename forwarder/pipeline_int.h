/* pipeline_int: the pipeline's state and what its files share (pipeline.h is the public side).
 *   pipeline.c          life cycle: start, the tick and the flush check, await, stop; the calls
 *                       every step makes (ops, DynamoDB sends)
 *   pipeline_scan.c     intake: the spool's ready/ area, admitting entries into batches, the
 *                       re-drive requests
 *   pipeline_entry.c    an entry's steps: RECEIVED, S3 (or STOW-RS), STORED, release
 *   pipeline_batch.c    a batch's steps: the import job from start to its outcome per object
 *   pipeline_books.c    the books: batches and members, entries, acknowledgements, the flush
 *   pipeline_records.c  what the journal holds: its records, their replay, the compaction
 *   pipeline_status.c   errors, metrics, status.json and failed.jsonl
 * Everything runs on env->loop's thread. */
#ifndef GW_PIPELINE_INT_H
#define GW_PIPELINE_INT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "aws/ddb.h"
#include "aws/http.h"
#include "batch.h"
#include "pipeline.h"
#include "spool/spool_journal.h"
#include "state.h"

#define PL_MAX_ENTRIES 20000u  /* spool entries held in memory at once; the rest wait in ready/ */
#define PL_MAX_DDB 48u         /* DynamoDB requests in flight */
#define PL_TICK_MS 100u
#define PL_SCAN_MS 2000u       /* rescan ready/ at least this often */
#define PL_DONE_RING 4096u     /* recently finished entries, for late awaits */
#define PL_OUTPUT_MAX (256u << 20)
#define PL_ERRORS 8u

enum ent_step {
    E_RECEIVE,    /* DynamoDB: the claim, the item as RECEIVED (the normal path's one write) */
    E_DUPCHECK,   /* the claim failed: read the item (state_dup_decide says what next) */
    E_PROBE,      /* S3: is the owner's object there yet (HeadObject of the item's key) */
    E_UPLOAD,     /* S3 */
    E_TORN_PROBE, /* S3: did an earlier attempt of this now torn copy reach S3 */
    E_TORN,       /* DynamoDB: a torn copy gives up its RECEIVED item (batch_id TORN) */
    E_STOW,       /* mode stow: StoreDICOM */
    E_FINAL,      /* mode stow: IMPORTED / FAILED */
    E_REIMPORT,   /* mode import, a resend of a FAILED object: a re-drive of its S3 object */
    E_RELEASE,    /* journal + unlink, at the next flush */
};

enum batch_step {
    B_OPEN,
    B_CLOSED,     /* waiting for members to be stored, then for a job slot */
    B_JOB_OPEN,   /* DynamoDB job item STARTING */
    B_START,      /* StartDICOMImportJob */
    B_SUBMITTED,  /* DynamoDB job item SUBMITTED */
    B_IMPORTING,  /* members -> IMPORTING */
    B_POLL,       /* GetDICOMImportJob */
    B_FETCH,      /* output manifest, success.ndjson, failure.ndjson */
    B_MARK,       /* members -> IMPORTED / FAILED */
    B_JOB_FINAL,  /* DynamoDB job item COMPLETED / FAILED */
    B_DONE,
    B_REDRIVE,    /* a re-drive: the FAILED item back to STORED, then as B_CLOSED */
};

struct member {
    char id[SPOOL_ID_MAX];
    char sop[65], sha[65];
    uint64_t bytes;
    bool stored, dropped;
    /* job outcome */
    int outcome; /* 0 unknown, 1 imported, 2 failed */
    bool marked;
    char image_set_id[65];
    int is_primary;
    char error_type[65], error_message[256];
};

struct pbatch {
    struct pbatch *next;
    char id[BATCH_ID_MAX];
    struct batch_fill fill;
    enum batch_step st;
    struct member *m;
    size_t n, cap;
    size_t pending; /* members neither stored nor dropped */
    char job_id[80];
    bool busy;
    unsigned attempts, polls;
    uint64_t next_ms;
    size_t cursor, inflight; /* fan-out over members (IMPORTING, marks) */
    enum state_job final;
    char job_message[256];
    int fetched; /* outputs read: bit 0 manifest, 1 success, 2 failure */
    uint32_t n_imported, n_failed;
    char input_key[600]; /* a re-drive: the one object's key is the job's input */
};

struct ent {
    struct ent *next, *hnext;
    char id[SPOOL_ID_MAX];
    struct state_obj o; /* from the sidecar (o.redrive: a re-drive's copy), plus batch and key */
    struct pbatch *b;
    enum ent_step step;
    bool busy, ack_reached, dup;
    bool journaled; /* its assign record is durable: only then may requests go out */
    bool replayed;  /* assigned by an earlier run (the journal's replay) */
    int ack_result;
    unsigned attempts;
    uint64_t next_ms;
    bool stow_ok;
    char err_type[65], err_msg[256];
    bool sha_checked; /* the spool file's SHA-256 matched its sidecar (multipart uploads) */
    bool reattempt;   /* a resend of a FAILED object: STOW-RS of this copy, no new S3 object */
    unsigned waits;   /* looks at an owner's item that is not at the ack point yet */
    struct state_got *got; /* the item read back after a failed claim (heap), or NULL */
    char refusal[65]; /* with ack_result < 0: HealthImaging refused these bytes for good */
};

struct awaiter {
    struct awaiter *next;
    char id[SPOOL_ID_MAX];
    uint64_t token;
    uint64_t deadline_ms;
};

struct done_rec {
    char id[SPOOL_ID_MAX];
    int result;
    char refusal[65];
};

struct pipeline {
    struct pipeline_env env;
    const struct pipeline_config *cfg;
    char own_dir[1100], redrive_dir[1200], failed_path[1200], status_path[1200];
    struct spool_journal *journal;
    bool journal_dirty;
    uv_timer_t tick;
    uv_check_t flush;
    int live_handles;
    bool stopping;
    void (*stop_done)(void *);
    void *stop_arg;

    struct ent *ents, **ents_tail;
    struct ent *hash[4096];
    size_t n_ents;
    struct pbatch *batches, *open;
    struct awaiter *awaiters;
    struct done_rec done[PL_DONE_RING];
    size_t done_next;

    unsigned uploads, ddb, jobs_inflight;
    /* an outage of a service holds every new request to it until then (monotonic ms): one
     * backoff for the service instead of one per object */
    uint64_t hold_s3, hold_ddb;
    struct batch_pacer pacer;
    uint64_t last_scan_ms, last_status_ms, last_flush_ms;
    unsigned releases; /* entries waiting for the flush */
    bool scan_wanted;
    uint32_t rnd;
    time_t started;

    struct pipeline_stats st;
    struct {
        char at[40], step[24], code[96], msg[200];
    } errors[PL_ERRORS];
    size_t n_errors;
    struct {
        struct metric_counter *uploaded, *uploaded_bytes, *dups, *torn, *imported, *failed,
            *jobs_started, *jobs_completed, *jobs_failed, *retries, *errors;
        struct metric_gauge *inflight, *uploads, *batches_open, *jobs;
    } m;
};


/* A request in flight for an entry (e) or a batch (b, idx: the member of a fan-out; kind: which
 * step or output file). */
struct op {
    struct pipeline *p;
    struct ent *e;
    struct pbatch *b;
    size_t idx;
    int kind;
};

/* ---- pipeline.c -------------------------------------------------------------------------- */

/* Copy with truncation (fixed-size record fields; the sources are bounded but may be longer). */
void pl_scpy(char *dst, size_t cap, const char *src);
/* Monotonic milliseconds. */
uint64_t pl_now_ms(void);
/* 32 bits of jitter (not secret). */
uint32_t pl_rnd32(struct pipeline *p);
/* Run every entry and batch step that may go now. */
void pl_pump(struct pipeline *p);
/* A request's state, or NULL when out of memory. */
struct op *pl_op_new(struct pipeline *p, struct ent *e, struct pbatch *b, size_t idx, int kind);
/* The budget a request holds while in flight. */
enum pl_budget { PL_BUDGET_NONE, PL_BUDGET_DDB, PL_BUDGET_UPLOADS };
/* The start of every step's callback: o's request is over. Gives back the budget it held and
 * frees o. False when the result is dead: it came after stop, or was cancelled, and changes
 * nothing (every step is journaled or idempotent and redone by the next start). Else true,
 * with *out a copy of o whose entry, if any, is no longer busy (a batch's callers clear its
 * busy flag: the members of a fan-out do not hold it). */
bool pl_op_end(struct op *o, const struct http_result *res, enum pl_budget budget,
               struct op *out);
/* Send a DynamoDB request (op_name, req) whose answer goes to cb(o). Takes req and o (both freed
 * on failure). 0 or < 0. */
MUST_CHECK int pl_ddb_send(struct pipeline *p, const char *op_name, cJSON *req, ddb_cb cb,
                           struct op *o);

/* ---- pipeline_scan.c ---------------------------------------------------------------------- */

/* The spool's layout as the pipeline sees it: the core's <spool>/ready/, and ours under
 * <spool>/forwarder/ (redrive/, failed.jsonl, status.json; the journal's path into jpath). */
/* The pipeline's own files under the spool (<spool>/forwarder/, created). 0 or < 0. */
MUST_CHECK int pl_layout(struct pipeline *p, char *jpath, size_t cap);
/* <spool>/ready/<id><ext> into out. 0 or ERR_LIMIT. */
MUST_CHECK int pl_entry_path(const struct pipeline *p, const char *id, const char *ext,
                             char *out, size_t cap);
/* The S3 key of an object: <prefix>/<batch>/<SOP>.dcm. */
void pl_s3_key_of(const struct pipeline *p, const char *batch, const char *sop, char *out,
                  size_t cap);
/* The whole of a small file path (at most max bytes) as a NUL-terminated string (free it), its
 * length in *len; NULL when it cannot be read (errno from open), is empty or is over max. */
/* Take spool entry id into the pipeline. 0 taken (or finished off), 1 skipped (known, over the
 * cap, or unusable: left for an operator), < 0 a journal failure: stop for now. */
int pl_admit(struct pipeline *p, const char *id);
/* Admit what ready/ holds, drop members whose entry is gone, flush. */
void pl_scan(struct pipeline *p);
/* Take the re-drive requests in <spool>/forwarder/redrive/ (at most 100 a call). */
void pl_take_redrives(struct pipeline *p);
/* True when key is one of ours for sop: <prefix>/<batch>/<sop>.dcm. */
bool pl_redrive_key_ok(const struct pipeline *p, const char *key, const char *sop);
/* Import the object at key (sop, sha, bytes) again: a re-drive batch of its own, journaled and
 * synced. 0 started, 1 one is already under way for that object, < 0 a journal failure. */
int pl_redrive_start(struct pipeline *p, const char *sop, const char *sha, const char *key,
                     uint64_t bytes);

/* ---- pipeline_entry.c --------------------------------------------------------------------- */

/* Start entry e's current step when its service and budget allow. */
void pl_run_entry(struct pipeline *p, struct ent *e);

/* ---- pipeline_batch.c --------------------------------------------------------------------- */

/* Start batch b's current step when it is due. */
void pl_run_batch(struct pipeline *p, struct pbatch *b);

/* ---- pipeline_books.c --------------------------------------------------------------------- */

/* The batch with this id, or NULL. */
struct pbatch *pl_batch_find(struct pipeline *p, const char *id);
/* A new batch at the end of the list, OPEN; NULL when out of memory. */
struct pbatch *pl_batch_add(struct pipeline *p, const char *id);
/* Unlink b (and forget it as the open batch) and free it. */
void pl_batch_free(struct pipeline *p, struct pbatch *b);
/* A new member of b (pending); NULL when out of memory. */
struct member *pl_member_add(struct pbatch *b, const char *id, const char *sop, const char *sha,
                             uint64_t bytes);
/* The member of b for spool entry id, or NULL. */
struct member *pl_member_find(struct pbatch *b, const char *id);
/* True when b holds a member (not dropped) with this SOP Instance UID. */
bool pl_batch_has_sop(const struct pbatch *b, const char *sop);
/* Close an open batch (journaled). 0 or the journal's error. */
MUST_CHECK int pl_batch_close(struct pipeline *p, struct pbatch *b);
/* Open a new batch with a fresh id as p->open. 0 or < 0. */
MUST_CHECK int pl_batch_open_new(struct pipeline *p);
/* The configured batch limits into *l. */
const struct batch_limits *pl_limits(const struct pipeline *p, struct batch_limits *l);
/* The entry of spool id being worked on, or NULL; insert a new one (at the end: scan order). */
struct ent *pl_ent_find(struct pipeline *p, const char *id);
void pl_ent_insert(struct pipeline *p, struct ent *e);
/* Unlink and free e. */
void pl_ent_remove(struct pipeline *p, struct ent *e);
/* The result of a recently finished entry (true when known; *refusal "" or why HealthImaging
 * refused it, borrowed from the ring). */
bool pl_done_lookup(const struct pipeline *p, const char *id, int *result, const char **refusal);
/* Remember a finished entry's result (a ring of PL_DONE_RING, for late awaits). */
void pl_done_note(struct pipeline *p, const char *id, int result, const char *refusal);
/* The ack point of e was reached (result 0) or cannot be (result < 0; e->refusal set: refused
 * for good): answer its awaiters. */
void pl_ack_reach(struct pipeline *p, struct ent *e, int result);
/* A failed attempt of an awaited entry: answer the modality now (0xA700), keep retrying. */
void pl_ack_fail_waiters(struct pipeline *p, struct ent *e, int rc);
/* True when someone awaits spool entry id. */
bool pl_awaited(const struct pipeline *p, const char *id);
/* Journal the releases, make the journal durable, then unlink released entries and answer
 * their awaiters: one fdatasync for everything of a loop pass. */
void pl_flush(struct pipeline *p);

/* ---- pipeline_records.c ------------------------------------------------------------------- */

/* Append record r to the journal (takes r; NULL = out of memory). 0 or < 0. */
MUST_CHECK int pl_journal_put(struct pipeline *p, cJSON *r);
/* The records: {"t":"assign",...} of a member, {"t":"rbatch",...} of a re-drive batch, and
 * {"t":t, key:val} (close, done, stored, dup, job). NULL when out of memory. */
cJSON *pl_rec_assign(const struct member *m, const char *batch, bool redrive);
cJSON *pl_rec_rbatch(const struct pbatch *b);
cJSON *pl_rec_id(const char *t, const char *key, const char *val);
/* spool_journal_open's replay callback (arg = the pipeline): rebuild the books. */
int pl_replay(void *arg, const cJSON *rec);
/* After replay: close what was open and rewrite the journal with the live state only. */
MUST_CHECK int pl_compact(struct pipeline *p);

/* ---- pipeline_status.c -------------------------------------------------------------------- */

/* The counters of status.json after "mode", in order: name and place in struct pipeline_stats
 * (a uint64_t). The operator's status command prints the same list. */
struct pl_stat_field {
    const char *name;
    size_t off;
};
extern const struct pl_stat_field pl_stat_fields[];
extern const size_t pl_n_stat_fields;

/* A failed step: kept for status.json, counted, logged. res may be NULL (then rc says). */
void pl_note_error(struct pipeline *p, const char *step, const char *id,
                   const struct http_result *res, int rc);
/* The backoff before attempt number attempts of a step (counted as a retry). */
uint64_t pl_retry_delay(struct pipeline *p, unsigned attempts);
/* Register the pipeline's metrics (env->metrics may be NULL: then nothing). */
void pl_metrics_init(struct pipeline *p);
/* Write <spool>/forwarder/status.json (and refresh the gauges). */
void pl_write_status(struct pipeline *p);
/* failed.jsonl: an object's failure; a re-driven object imported at last. */
void pl_append_failed(struct pipeline *p, const struct state_obj *o, const char *job,
                      const char *type, const char *msg);
void pl_append_redriven(struct pipeline *p, const struct member *m);

#endif
