#include "pipeline.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aws/ddb.h"
#include "aws/mi.h"
#include "aws/s3.h"
#include "batch.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/sha256_file.h"
#include "net/metrics.h"
#include "pipeline_journal.h"
#include "state.h"

#define PL_MAX_ENTRIES 20000u  /* spool entries held in memory at once; the rest wait in ready/ */
#define PL_MAX_DDB 48u         /* DynamoDB requests in flight */
#define PL_TICK_MS 100u
#define PL_SCAN_MS 2000u       /* rescan ready/ at least this often */
#define PL_DONE_RING 4096u     /* recently finished entries, for late awaits */
#define PL_OUTPUT_MAX (256u << 20)
#define PL_ERRORS 8u
#define SPOOL_ID_LEN 48 /* the core's ids are shorter (SPOOL_ID_MAX) */

enum ent_step {
    E_RECEIVE,  /* DynamoDB: RECEIVED */
    E_DUPCHECK, /* the item belongs to another batch: look at it */
    E_UPLOAD,   /* S3 */
    E_STORED,   /* DynamoDB: STORED */
    E_TORN,     /* DynamoDB: a torn copy gives up its RECEIVED item (batch_id TORN) */
    E_STOW,     /* mode stow: StoreDICOM */
    E_FINAL,    /* mode stow: IMPORTED / FAILED */
    E_RELEASE,  /* journal + unlink, at the next flush */
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
    char id[SPOOL_ID_LEN];
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
    char id[SPOOL_ID_LEN];
    struct state_obj o;
    bool redrive;
    struct pbatch *b;
    enum ent_step step;
    bool busy, ack_reached, dup;
    bool journaled; /* its assign record is durable: only then may requests go out */
    int ack_result;
    unsigned attempts;
    uint64_t next_ms;
    bool stow_ok;
    char err_type[65], err_msg[256];
    bool sha_checked; /* the spool file's SHA-256 matched its sidecar (multipart uploads) */
};

struct awaiter {
    struct awaiter *next;
    char id[SPOOL_ID_LEN];
    uint64_t token;
    uint64_t deadline_ms;
};

struct done_rec {
    char id[SPOOL_ID_LEN];
    int result;
};

struct pipeline {
    struct pipeline_env env;
    const struct pipeline_config *cfg;
    char ready_dir[1100], own_dir[1100], redrive_dir[1200], failed_path[1200], status_path[1200];
    struct pipeline_journal *journal;
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

/* Copy with truncation (fixed-size record fields; the sources are bounded but may be longer). */
static void scpy(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint32_t rnd32(struct pipeline *p)
{
    /* xorshift32: jitter only; batch ids take their random bits from RAND_bytes */
    uint32_t x = p->rnd;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p->rnd = x ? x : 0x9e3779b9u;
    return p->rnd;
}

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

static void pump(struct pipeline *p);

/* ---- errors, metrics -------------------------------------------------------------------- */

static void note_error(struct pipeline *p, const char *step, const char *id,
                       const struct http_result *res, int rc)
{
    size_t i = p->n_errors++ % PL_ERRORS;
    state_now_iso(p->errors[i].at);
    scpy(p->errors[i].step, sizeof p->errors[i].step, step);
    snprintf(p->errors[i].code, sizeof p->errors[i].code, "%s",
             res && res->error_code[0] ? res->error_code : http_err_str(res ? res->err : rc));
    scpy(p->errors[i].msg, sizeof p->errors[i].msg, res ? res->message : "");
    metric_inc(p->m.errors);
    struct logb lb;
    if (log_begin(&lb, LOG_WARN, "forwarder_error")) {
        log_str(&lb, "step", step);
        log_str(&lb, "id", id);
        log_str(&lb, "err", http_err_str(res ? res->err : rc));
        if (res) {
            log_u64(&lb, "status", (uint64_t)res->status);
            log_str(&lb, "code", res->error_code);
            log_str(&lb, "message", res->message);
        }
        log_end(&lb);
    }
}

static uint64_t retry_delay(struct pipeline *p, unsigned attempts)
{
    p->st.retries++;
    metric_inc(p->m.retries);
    uint64_t d = batch_backoff_ms(attempts, 500, p->cfg->retry_max_ms, rnd32(p));
    return d < 100 ? 100 : d;
}

/* ---- paths -------------------------------------------------------------------------------- */

static int entry_path(const struct pipeline *p, const char *id, const char *ext, char *out,
                      size_t cap)
{
    int n = snprintf(out, cap, "%s/%s%s", p->ready_dir, id, ext);
    return n < 0 || (size_t)n >= cap ? ERR_LIMIT : 0;
}

static void s3_key_of(const struct pipeline *p, const char *batch, const char *sop, char *out,
                      size_t cap)
{
    snprintf(out, cap, "%s/%s/%s.dcm", p->cfg->s3.prefix, batch, sop);
}

/* ---- journal records ---------------------------------------------------------------------- */

static cJSON *rec_new(const char *t)
{
    cJSON *r = cJSON_CreateObject();
    if (r && !cJSON_AddStringToObject(r, "t", t)) {
        cJSON_Delete(r);
        r = NULL;
    }
    return r;
}

static int journal_put(struct pipeline *p, cJSON *r) /* takes r */
{
    if (!r)
        return ERR_NOMEM;
    int rc = pipeline_journal_append(p->journal, r);
    cJSON_Delete(r);
    if (rc == 0)
        p->journal_dirty = true;
    return rc;
}

static cJSON *rec_assign(const struct member *m, const char *batch, bool redrive)
{
    cJSON *r = rec_new("assign");
    if (!r)
        return NULL;
    cJSON_AddStringToObject(r, "id", m->id);
    cJSON_AddStringToObject(r, "b", batch);
    cJSON_AddStringToObject(r, "sop", m->sop);
    cJSON_AddStringToObject(r, "sha", m->sha);
    cJSON_AddNumberToObject(r, "bytes", (double)m->bytes);
    if (redrive)
        cJSON_AddBoolToObject(r, "rd", 1);
    return r;
}

static cJSON *rec_rbatch(const struct pbatch *b)
{
    cJSON *r = rec_new("rbatch");
    if (!r)
        return NULL;
    if (!cJSON_AddStringToObject(r, "b", b->id) ||
        !cJSON_AddStringToObject(r, "key", b->input_key) ||
        !cJSON_AddStringToObject(r, "sop", b->m[0].sop) ||
        !cJSON_AddStringToObject(r, "sha", b->m[0].sha) ||
        !cJSON_AddNumberToObject(r, "bytes", (double)b->m[0].bytes)) {
        cJSON_Delete(r);
        return NULL;
    }
    return r;
}

static cJSON *rec_id(const char *t, const char *key, const char *val)
{
    cJSON *r = rec_new(t);
    if (r && !cJSON_AddStringToObject(r, key, val)) {
        cJSON_Delete(r);
        r = NULL;
    }
    return r;
}

/* ---- batches -------------------------------------------------------------------------------- */

static struct pbatch *batch_find(struct pipeline *p, const char *id)
{
    for (struct pbatch *b = p->batches; b; b = b->next) {
        if (strcmp(b->id, id) == 0)
            return b;
    }
    return NULL;
}

static struct pbatch *batch_add(struct pipeline *p, const char *id)
{
    struct pbatch *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    scpy(b->id, sizeof b->id, id);
    b->fill.opened_ms = now_ms();
    b->st = B_OPEN;
    struct pbatch **pp = &p->batches;
    while (*pp)
        pp = &(*pp)->next;
    *pp = b;
    return b;
}

static void batch_free(struct pipeline *p, struct pbatch *b)
{
    for (struct pbatch **pp = &p->batches; *pp; pp = &(*pp)->next) {
        if (*pp == b) {
            *pp = b->next;
            break;
        }
    }
    if (p->open == b)
        p->open = NULL;
    free(b->m);
    free(b);
}

static struct member *batch_member_add(struct pbatch *b, const char *id, const char *sop,
                                       const char *sha, uint64_t bytes)
{
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        struct member *nm = realloc(b->m, nc * sizeof *nm);
        if (!nm)
            return NULL;
        b->m = nm;
        b->cap = nc;
    }
    struct member *m = &b->m[b->n++];
    memset(m, 0, sizeof *m);
    scpy(m->id, sizeof m->id, id);
    scpy(m->sop, sizeof m->sop, sop);
    scpy(m->sha, sizeof m->sha, sha);
    m->bytes = bytes;
    m->is_primary = -1;
    b->fill.objects++;
    b->fill.bytes += bytes;
    b->pending++;
    return m;
}

static struct member *batch_member(struct pbatch *b, const char *id)
{
    for (size_t i = b->n; i-- > 0;) {
        if (strcmp(b->m[i].id, id) == 0)
            return &b->m[i];
    }
    return NULL;
}

static bool batch_has_sop(const struct pbatch *b, const char *sop)
{
    for (size_t i = 0; i < b->n; i++) {
        if (!b->m[i].dropped && strcmp(b->m[i].sop, sop) == 0)
            return true;
    }
    return false;
}

static int batch_close(struct pipeline *p, struct pbatch *b)
{
    if (b->st != B_OPEN)
        return 0;
    TRY(journal_put(p, rec_id("close", "b", b->id)));
    b->st = B_CLOSED;
    if (p->open == b)
        p->open = NULL;
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "batch_closed")) {
        log_str(&lb, "batch", b->id);
        log_u64(&lb, "objects", b->fill.objects);
        log_u64(&lb, "bytes", b->fill.bytes);
        log_end(&lb);
    }
    return 0;
}

static int batch_open_new(struct pipeline *p)
{
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
        r = rnd32(p);
    char id[BATCH_ID_MAX];
    TRY(batch_id_make(id, sizeof id, time(NULL), r));
    struct pbatch *b = batch_add(p, id);
    if (!b)
        return ERR_NOMEM;
    p->open = b;
    return 0;
}

static const struct batch_limits *limits(const struct pipeline *p, struct batch_limits *l)
{
    l->max_objects = p->cfg->hi.batch_max_objects;
    l->max_bytes = p->cfg->hi.batch_max_bytes;
    l->max_age_ms = p->cfg->hi.batch_max_age_ms;
    return l;
}

/* ---- entries ------------------------------------------------------------------------------ */

static struct ent *ent_find(struct pipeline *p, const char *id)
{
    for (struct ent *e = p->hash[fnv(id) % ARRAY_LEN(p->hash)]; e; e = e->hnext) {
        if (strcmp(e->id, id) == 0)
            return e;
    }
    return NULL;
}

static void ent_insert(struct pipeline *p, struct ent *e)
{
    size_t h = fnv(e->id) % ARRAY_LEN(p->hash);
    e->hnext = p->hash[h];
    p->hash[h] = e;
    *p->ents_tail = e;
    p->ents_tail = &e->next;
    p->n_ents++;
}

static void ent_remove(struct pipeline *p, struct ent *e)
{
    for (struct ent **pp = &p->hash[fnv(e->id) % ARRAY_LEN(p->hash)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == e) {
            *pp = e->hnext;
            break;
        }
    }
    struct ent *prev = NULL;
    for (struct ent **pp = &p->ents; *pp; prev = *pp, pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            if (p->ents_tail == &e->next)
                p->ents_tail = prev ? &prev->next : &p->ents;
            break;
        }
    }
    p->n_ents--;
    free(e);
}

static bool done_lookup(const struct pipeline *p, const char *id, int *result)
{
    for (size_t i = 0; i < PL_DONE_RING; i++) {
        if (p->done[i].id[0] && strcmp(p->done[i].id, id) == 0) {
            *result = p->done[i].result;
            return true;
        }
    }
    return false;
}

static void done_note(struct pipeline *p, const char *id, int result)
{
    struct done_rec *d = &p->done[p->done_next++ % PL_DONE_RING];
    scpy(d->id, sizeof d->id, id);
    d->result = result;
}

/* The ack point of e was reached (result 0) or cannot be (result < 0). */
static void ack_reach(struct pipeline *p, struct ent *e, int result)
{
    if (e->ack_reached)
        return;
    e->ack_reached = true;
    e->ack_result = result;
    for (struct awaiter **pp = &p->awaiters; *pp;) {
        struct awaiter *a = *pp;
        if (strcmp(a->id, e->id) == 0) {
            *pp = a->next;
            if (p->env.acked)
                p->env.acked(p->env.acked_arg, a->token, result);
            free(a);
        } else {
            pp = &a->next;
        }
    }
}

/* A failed attempt of an awaited entry: answer the modality now (0xA700), keep retrying. */
static void ack_fail_waiters(struct pipeline *p, struct ent *e, int rc)
{
    for (struct awaiter **pp = &p->awaiters; *pp;) {
        struct awaiter *a = *pp;
        if (strcmp(a->id, e->id) == 0) {
            *pp = a->next;
            if (p->env.acked)
                p->env.acked(p->env.acked_arg, a->token, rc < 0 ? rc : ERR_IO);
            free(a);
        } else {
            pp = &a->next;
        }
    }
}

static bool is_outage(const struct http_result *res)
{
    return res && (res->err == HTTP_ERR_NETWORK || res->err == HTTP_ERR_THROTTLED ||
                   res->status >= 500);
}

static void ent_retry(struct pipeline *p, struct ent *e, const char *step,
                      const struct http_result *res, int rc)
{
    note_error(p, step, e->id, res, rc);
    if (p->env.ack != PIPELINE_ACK_NONE && !e->ack_reached)
        ack_fail_waiters(p, e, res ? res->err : rc);
    e->next_ms = now_ms() + retry_delay(p, e->attempts);
    e->attempts++;
    if (is_outage(res)) {
        uint64_t *hold = e->step == E_UPLOAD || e->step == E_STOW ? &p->hold_s3 : &p->hold_ddb;
        if (e->next_ms > *hold)
            *hold = e->next_ms;
    }
}

static void append_failed(struct pipeline *p, const struct state_obj *o, const char *job,
                          const char *type, const char *msg)
{
    cJSON *r = cJSON_CreateObject();
    if (!r)
        return;
    char now[40];
    state_now_iso(now);
    cJSON_AddStringToObject(r, "at", now);
    cJSON_AddStringToObject(r, "sop", o->sop);
    cJSON_AddStringToObject(r, "sha", o->sha);
    cJSON_AddStringToObject(r, "study", o->study);
    cJSON_AddStringToObject(r, "series", o->series);
    cJSON_AddStringToObject(r, "sop_class", o->sop_class);
    cJSON_AddStringToObject(r, "ts", o->ts);
    cJSON_AddStringToObject(r, "calling_ae", o->calling);
    cJSON_AddStringToObject(r, "called_ae", o->called);
    cJSON_AddNumberToObject(r, "bytes", (double)o->bytes);
    cJSON_AddStringToObject(r, "batch", o->batch);
    cJSON_AddStringToObject(r, "key", o->s3_key);
    cJSON_AddStringToObject(r, "job", job ? job : "");
    cJSON_AddStringToObject(r, "error_type", type);
    cJSON_AddStringToObject(r, "error_message", msg);
    char *s = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    if (!s)
        return;
    int fd = open(p->failed_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd >= 0) {
        size_t n = strlen(s);
        s[n] = '\n';
        if (write(fd, s, n + 1) < 0)
            note_error(p, "failed_list", o->sop, NULL, -errno);
        close(fd);
    }
    cJSON_free(s);
}

/* ---- entry steps ---------------------------------------------------------------------------- */

struct op {
    struct pipeline *p;
    struct ent *e;
    struct pbatch *b;
    size_t idx; /* member index for batch fan-out */
    int kind;
};

static struct op *op_new(struct pipeline *p, struct ent *e, struct pbatch *b, size_t idx, int kind)
{
    struct op *o = calloc(1, sizeof *o);
    if (o) {
        o->p = p;
        o->e = e;
        o->b = b;
        o->idx = idx;
        o->kind = kind;
    }
    return o;
}

/* A result that arrives after stop (the http client cancels everything) changes nothing: every
 * step is journaled or idempotent and will be redone by the next start. */
static bool op_dead(struct op *o, const struct http_result *res)
{
    if (o->p->stopping || (res && res->err == HTTP_ERR_CANCELED)) {
        free(o);
        return true;
    }
    return false;
}

static void on_ddb_entry(void *arg, const struct http_result *res, const cJSON *out);

static int ddb_send(struct pipeline *p, cJSON *req, const char *op, struct op *o) /* takes req */
{
    if (!req) {
        free(o);
        return ERR_NOMEM;
    }
    int rc = o ? ddb_call(p->env.ddb, op, req, on_ddb_entry, o) : ERR_NOMEM;
    cJSON_Delete(req);
    if (rc < 0) {
        free(o);
        return rc;
    }
    p->ddb++;
    return 0;
}

static void release_entry(struct pipeline *p, struct ent *e)
{
    p->releases++; /* the flush (one journal sync for many) finishes the release */
    e->step = E_RELEASE;
    e->busy = false;
}

static void on_dup_get(struct pipeline *p, struct ent *e, const cJSON *out)
{
    /* the item belongs to another batch: the same object (SOP Instance UID and content) was
     * received before and is being, or has been, forwarded. This copy is dropped. */
    const cJSON *item = out ? cJSON_GetObjectItemCaseSensitive(out, "Item") : NULL;
    const char *st = item ? ddb_get_s(item, "state") : NULL;
    const char *other = item ? ddb_get_s(item, "batch_id") : NULL;
    if (!item || !st || !other) {
        /* gone meanwhile (or malformed): try the normal way again */
        e->step = E_RECEIVE;
        return;
    }
    if (strcmp(other, e->o.batch) == 0) {
        /* our own item, already past RECEIVED: a replay after a crash. The upload is redone
         * (same key, same bytes) and the conditional STORED write is then a no-op. */
        e->step = E_UPLOAD;
        e->attempts = 0;
        return;
    }
    if (strcmp(st, "RECEIVED") == 0 || strcmp(other, STATE_TORN_BATCH) == 0) {
        /* the copy that owns the item has not reached S3 (it may yet be dropped as torn, and
         * then give the item up, E_TORN), or it just gave it up: this one is not dropped on
         * its account, but tries again until that copy is stored or the item is free */
        e->step = E_RECEIVE;
        ent_retry(p, e, "duplicate_not_yet_stored", NULL, ERR_WRONG_STATE);
        return;
    }
    /* the copy already there stands for this one at the ack point only if it reached it */
    bool durable = p->env.ack == PIPELINE_ACK_HI ? strcmp(st, "IMPORTED") == 0
                                                 : strcmp(st, "RECEIVED") != 0;
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "duplicate_dropped")) {
        log_str(&lb, "id", e->id);
        log_str(&lb, "sop_instance_uid", e->o.sop);
        log_str(&lb, "sha256", e->o.sha);
        log_str(&lb, "owner_batch", other);
        log_str(&lb, "owner_state", st);
        log_end(&lb);
    }
    p->st.duplicates++;
    metric_inc(p->m.dups);
    ack_reach(p, e, durable ? 0 : ERR_WRONG_STATE);
    e->dup = true;
    release_entry(p, e);
}

static void torn_release(struct pipeline *p, struct ent *e);

static void on_ddb_entry(void *arg, const struct http_result *res, const cJSON *out)
{
    struct op *o = arg;
    struct pipeline *p = o->p;
    p->ddb--;
    if (op_dead(o, res))
        return;
    struct ent *e = o->e;
    free(o);
    e->busy = false;
    if (res->err == 0 || res->err == HTTP_ERR_CONDITION)
        p->hold_ddb = 0;
    switch (e->step) {
    case E_RECEIVE:
        if (res->err == 0) {
            e->step = E_UPLOAD;
            e->attempts = 0;
        } else if (res->err == HTTP_ERR_CONDITION) {
            e->step = E_DUPCHECK;
        } else {
            ent_retry(p, e, "ddb_received", res, 0);
        }
        break;
    case E_DUPCHECK:
        if (res->err == 0)
            on_dup_get(p, e, out);
        else
            ent_retry(p, e, "ddb_get", res, 0);
        break;
    case E_TORN:
        if (res->err == 0 || res->err == HTTP_ERR_CONDITION)
            torn_release(p, e); /* given up, or it was never this copy's */
        else
            ent_retry(p, e, "ddb_torn", res, 0);
        break;
    case E_STORED:
        if (res->err == 0 || res->err == HTTP_ERR_CONDITION) {
            e->attempts = 0;
            if (p->cfg->hi.mode == PIPELINE_MODE_STOW)
                e->step = E_STOW;
            else
                release_entry(p, e);
        } else {
            ent_retry(p, e, "ddb_stored", res, 0);
        }
        break;
    case E_FINAL:
        if (res->err == 0 || res->err == HTTP_ERR_CONDITION) {
            if (p->env.ack == PIPELINE_ACK_HI)
                ack_reach(p, e, e->stow_ok ? 0 : ERR_IO);
            if (e->stow_ok) {
                p->st.imported++;
                metric_inc(p->m.imported);
            } else {
                p->st.failed++;
                metric_inc(p->m.failed);
                append_failed(p, &e->o, NULL, e->err_type, e->err_msg);
            }
            release_entry(p, e);
        } else {
            ent_retry(p, e, "ddb_final", res, 0);
        }
        break;
    default:
        break;
    }
    pump(p);
}

static int verify_sha(const char *path, const char *want)
{
    char got[65];
    int rc = sha256_file(path, got);
    if (rc < 0)
        return rc;
    return strcmp(got, want) == 0 ? 0 : ERR_MISMATCH;
}

/* A spool entry whose bytes do not match its sidecar: a crash inside the core's group commit
 * left it, and it was never acknowledged (the core acknowledges only after the flush). */
static void drop_torn(struct ent *e)
{
    /* its RECEIVED item (if this copy wrote one) is given up first, so that the modality's
     * resend, which may land in another batch, can take it over; then the entry goes */
    e->step = E_TORN;
    e->attempts = 0;
}

static void torn_release(struct pipeline *p, struct ent *e)
{
    struct logb lb;
    if (log_begin(&lb, LOG_WARN, "spool_torn_entry_dropped")) {
        log_str(&lb, "id", e->id);
        log_str(&lb, "sop_instance_uid", e->o.sop);
        log_end(&lb);
    }
    p->st.torn++;
    metric_inc(p->m.torn);
    ack_reach(p, e, ERR_MISMATCH);
    e->dup = true; /* released without being counted as stored */
    release_entry(p, e);
}

static void on_upload(void *arg, const struct http_result *res)
{
    struct op *o = arg;
    struct pipeline *p = o->p;
    p->uploads--;
    if (op_dead(o, res))
        return;
    struct ent *e = o->e;
    free(o);
    e->busy = false;
    if (res->err == 0) {
        p->hold_s3 = 0;
        p->st.uploaded++;
        p->st.uploaded_bytes += e->o.bytes;
        metric_inc(p->m.uploaded);
        metric_add(p->m.uploaded_bytes, e->o.bytes);
        if (p->env.ack == PIPELINE_ACK_S3)
            ack_reach(p, e, 0);
        e->step = E_STORED;
        e->attempts = 0;
    } else if (strcmp(res->error_code, "BadDigest") == 0 ||
               strcmp(res->error_code, "XAmzContentSHA256Mismatch") == 0 ||
               strcmp(res->error_code, "InvalidDigest") == 0) {
        char path[1200];
        int v = entry_path(p, e->id, ".dcm", path, sizeof path);
        if (v == 0)
            v = verify_sha(path, e->o.sha);
        if (v == ERR_MISMATCH || v == -ENOENT)
            drop_torn(e);
        else
            ent_retry(p, e, "s3_put", res, 0);
    } else {
        ent_retry(p, e, "s3_put", res, 0);
    }
    pump(p);
}

static void on_stow(void *arg, const struct http_result *res, const struct mi_stow_result *out)
{
    struct op *o = arg;
    struct pipeline *p = o->p;
    p->uploads--;
    if (op_dead(o, res))
        return;
    struct ent *e = o->e;
    free(o);
    e->busy = false;
    const struct mi_stow_instance *in = NULL;
    for (size_t i = 0; out && i < out->n; i++) {
        if (strcmp(out->inst[i].sop_instance_uid, e->o.sop) == 0)
            in = &out->inst[i];
    }
    if (in && in->stored) {
        e->stow_ok = true;
        e->step = E_FINAL;
        e->attempts = 0;
    } else if (in) {
        e->stow_ok = false;
        snprintf(e->err_type, sizeof e->err_type, "StowFailure");
        snprintf(e->err_msg, sizeof e->err_msg, "FailureReason 0x%04x",
                 (unsigned)(in->failure_reason < 0 ? 0x0110 : in->failure_reason));
        e->step = E_FINAL;
    } else if (res->err == HTTP_ERR_STATUS && res->status >= 400 && res->status < 500 &&
               res->status != 429 && res->status != 403 && res->status != 408) {
        /* refused as a whole (not throttling, not auth): the object itself is at fault */
        e->stow_ok = false;
        scpy(e->err_type, sizeof e->err_type,
             res->error_code[0] ? res->error_code : "StowRejected");
        scpy(e->err_msg, sizeof e->err_msg, res->message);
        e->step = E_FINAL;
    } else {
        ent_retry(p, e, "stow", res, 0);
    }
    pump(p);
}

static void run_entry(struct pipeline *p, struct ent *e)
{
    uint64_t t = now_ms();
    if (t < ((e->step == E_UPLOAD || e->step == E_STOW) ? p->hold_s3 : p->hold_ddb))
        return;
    char now[40];
    state_now_iso(now);
    struct op *o;
    int rc = 0;
    switch (e->step) {
    case E_RECEIVE:
        if (p->ddb >= PL_MAX_DDB)
            return;
        o = op_new(p, e, NULL, 0, 0);
        rc = ddb_send(p, state_req_received(p->cfg->ddb.table, &e->o, e->redrive, now),
                      "PutItem", o);
        break;
    case E_DUPCHECK:
        if (p->ddb >= PL_MAX_DDB)
            return;
        o = op_new(p, e, NULL, 0, 0);
        rc = ddb_send(p, state_req_get(p->cfg->ddb.table, e->o.sop, e->o.sha), "GetItem", o);
        break;
    case E_UPLOAD: {
        if (p->uploads >= p->cfg->max_uploads)
            return;
        char path[1200];
        struct stat st;
        if (entry_path(p, e->id, ".dcm", path, sizeof path) < 0)
            return;
        if (stat(path, &st) < 0 || (uint64_t)st.st_size != e->o.bytes) {
            drop_torn(e);
            return;
        }
        if (!e->sha_checked && e->o.bytes >= p->cfg->s3.multipart_threshold) {
            /* a multipart upload's checksum is built from the parts as read, so S3 cannot
             * hold it against the sidecar's SHA-256: check the file here, once */
            int v = verify_sha(path, e->o.sha);
            if (v == ERR_MISMATCH || v == -ENOENT) {
                drop_torn(e);
                return;
            }
            if (v < 0) {
                ent_retry(p, e, "verify", NULL, v);
                return;
            }
            e->sha_checked = true;
        }
        o = op_new(p, e, NULL, 0, 0);
        rc = o ? s3_upload_file(p->env.s3, p->cfg->s3.bucket, e->o.s3_key, path, 0, e->o.bytes,
                                e->o.sha, p->cfg->s3.multipart_threshold, p->cfg->s3.part_size,
                                on_upload, o)
               : ERR_NOMEM;
        if (rc == 0)
            p->uploads++;
        else
            free(o);
        break;
    }
    case E_TORN:
        if (p->ddb >= PL_MAX_DDB)
            return;
        o = op_new(p, e, NULL, 0, 0);
        rc = ddb_send(p, state_req_torn(p->cfg->ddb.table, &e->o, now), "UpdateItem", o);
        break;
    case E_STORED: {
        if (p->ddb >= PL_MAX_DDB)
            return;
        o = op_new(p, e, NULL, 0, 0);
        rc = ddb_send(p, state_req_advance(p->cfg->ddb.table, e->o.sop, e->o.sha, STATE_STORED,
                                           NULL, now),
                      "UpdateItem", o);
        break;
    }
    case E_STOW: {
        if (p->uploads >= p->cfg->max_uploads)
            return;
        char path[1200];
        if (entry_path(p, e->id, ".dcm", path, sizeof path) < 0)
            return;
        o = op_new(p, e, NULL, 0, 0);
        /* POST .../studies (action StoreDICOM), not .../studies/{uid} (StoreDICOMStudy): the
         * task policy grants the former */
        rc = o ? mi_store_dicom(p->env.mi, p->cfg->hi.datastore_id, NULL, path, 0, e->o.bytes,
                                on_stow, o)
               : ERR_NOMEM;
        if (rc == 0)
            p->uploads++;
        else
            free(o);
        break;
    }
    case E_FINAL: {
        if (p->ddb >= PL_MAX_DDB)
            return;
        struct state_extra x = {.is_primary = -1};
        if (!e->stow_ok) {
            x.error_type = e->err_type;
            x.error_message = e->err_msg;
        }
        o = op_new(p, e, NULL, 0, 0);
        rc = ddb_send(p, state_req_advance(p->cfg->ddb.table, e->o.sop, e->o.sha,
                                           e->stow_ok ? STATE_IMPORTED : STATE_FAILED, &x, now),
                      "UpdateItem", o);
        break;
    }
    case E_RELEASE:
        return; /* at the next flush */
    }
    if (rc < 0) {
        ent_retry(p, e, "send", NULL, rc);
        return;
    }
    e->busy = true;
}

/* ---- batch steps --------------------------------------------------------------------------- */

static void on_ddb_batch(void *arg, const struct http_result *res, const cJSON *out);

static int ddb_send_b(struct pipeline *p, cJSON *req, struct op *o) /* takes req */
{
    if (!req || !o) {
        cJSON_Delete(req);
        free(o);
        return ERR_NOMEM;
    }
    int rc = ddb_call(p->env.ddb, "UpdateItem", req, on_ddb_batch, o);
    cJSON_Delete(req);
    if (rc < 0) {
        free(o);
        return rc;
    }
    p->ddb++;
    return 0;
}

static void job_rec(const struct pipeline *p, const struct pbatch *b, struct state_job_rec *j,
                    char *in, size_t in_cap, char *outu, size_t out_cap)
{
    if (b->input_key[0])
        snprintf(in, in_cap, "s3://%s/%s", p->cfg->s3.bucket, b->input_key);
    else
        snprintf(in, in_cap, "s3://%s/%s/%s/", p->cfg->s3.bucket, p->cfg->s3.prefix, b->id);
    snprintf(outu, out_cap, "s3://%s/%s/", p->cfg->s3.bucket, p->cfg->s3.output_prefix);
    memset(j, 0, sizeof *j);
    j->batch = b->id;
    j->job_id = b->job_id;
    j->datastore_id = p->cfg->hi.datastore_id;
    j->input_uri = in;
    j->output_uri = outu;
    uint32_t n = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->m[i].stored) {
            n++;
            bytes += b->m[i].bytes;
        }
    }
    j->objects = n;
    j->bytes = bytes;
    j->imported = b->n_imported;
    j->failed = b->n_failed;
}

static void batch_retry(struct pipeline *p, struct pbatch *b, const char *step,
                        const struct http_result *res, int rc)
{
    note_error(p, step, b->id, res, rc);
    b->next_ms = now_ms() + retry_delay(p, b->attempts);
    b->attempts++;
}

static void batch_finish(struct pipeline *p, struct pbatch *b)
{
    if (journal_put(p, rec_id("done", "b", b->id)) < 0) {
        batch_retry(p, b, "journal", NULL, ERR_IO);
        return;
    }
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "batch_done")) {
        log_str(&lb, "batch", b->id);
        log_str(&lb, "job_id", b->job_id);
        log_u64(&lb, "imported", b->n_imported);
        log_u64(&lb, "failed", b->n_failed);
        log_end(&lb);
    }
    b->st = B_DONE;
}

static void on_ddb_batch(void *arg, const struct http_result *res, const cJSON *out)
{
    struct op *o = arg;
    struct pipeline *p = o->p;
    (void)out;
    p->ddb--;
    if (op_dead(o, res))
        return;
    struct pbatch *b = o->b;
    int kind = o->kind;
    size_t idx = o->idx;
    free(o);
    bool ok = res->err == 0 || res->err == HTTP_ERR_CONDITION;
    if (kind == 1) { /* a member update of a fan-out */
        b->inflight--;
        if (ok) {
            b->m[idx].marked = true;
        } else {
            note_error(p, b->st == B_IMPORTING ? "ddb_importing" : "ddb_mark", b->m[idx].sop,
                       res, 0);
            b->next_ms = now_ms() + retry_delay(p, b->attempts++);
        }
        pump(p);
        return;
    }
    b->busy = false;
    if (!ok) {
        batch_retry(p, b, "ddb_job", res, 0);
        pump(p);
        return;
    }
    b->attempts = 0;
    if (b->st == B_REDRIVE && res->err == HTTP_ERR_CONDITION) {
        /* not FAILED any more, and not by this re-drive: another re-drive of the same object
         * (asked twice), or it was imported meanwhile. No second job. */
        struct logb lb;
        if (log_begin(&lb, LOG_INFO, "redrive_skipped")) {
            log_str(&lb, "batch", b->id);
            log_str(&lb, "sop_instance_uid", b->m[0].sop);
            log_end(&lb);
        }
        batch_finish(p, b);
        pump(p);
        return;
    }
    switch (b->st) {
    case B_JOB_OPEN:
        b->st = B_START;
        break;
    case B_REDRIVE:
        b->st = B_CLOSED;
        break;
    case B_SUBMITTED:
        b->st = B_IMPORTING;
        b->cursor = 0;
        for (size_t i = 0; i < b->n; i++)
            b->m[i].marked = false;
        break;
    case B_JOB_FINAL:
        batch_finish(p, b);
        break;
    default:
        break;
    }
    pump(p);
}

static void on_start_job(void *arg, const struct http_result *res, const struct mi_job *job)
{
    struct op *o = arg;
    struct pipeline *p = o->p;
    if (op_dead(o, res))
        return;
    struct pbatch *b = o->b;
    free(o);
    b->busy = false;
    if (res->err != 0 || !job || !job->job_id[0]) {
        /* the job slot stays taken while the start is retried */
        batch_retry(p, b, "start_import_job", res, 0);
        pump(p);
        return;
    }
    scpy(b->job_id, sizeof b->job_id, job->job_id);
    cJSON *r = rec_id("job", "b", b->id);
    if (r)
        cJSON_AddStringToObject(r, "job", b->job_id);
    if (journal_put(p, r) < 0 || pipeline_journal_sync(p->journal) < 0) {
        /* not recorded: the clientToken gives the same job when we start it again */
        batch_retry(p, b, "journal", NULL, ERR_IO);
        pump(p);
        return;
    }
    p->journal_dirty = false;
    p->st.jobs_started++;
    metric_inc(p->m.jobs_started);
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "import_job_started")) {
        log_str(&lb, "batch", b->id);
        log_str(&lb, "job_id", b->job_id);
        log_str(&lb, "status", job->job_status);
        log_end(&lb);
    }
    b->st = B_SUBMITTED;
    b->attempts = 0;
    pump(p);
}

static void on_get_job(void *arg, const struct http_result *res, const struct mi_job *job)
{
    struct op *o = arg;
    struct pipeline *p = o->p;
    if (op_dead(o, res))
        return;
    struct pbatch *b = o->b;
    free(o);
    b->busy = false;
    if (res->err != 0 || !job) {
        batch_retry(p, b, "get_import_job", res, 0);
        pump(p);
        return;
    }
    enum state_job st = state_job_parse(job->job_status);
    if (st == STATE_JOB_COMPLETED || st == STATE_JOB_FAILED) {
        b->final = st;
        scpy(b->job_message, sizeof b->job_message, job->message);
        b->st = B_FETCH;
        b->fetched = 0;
        b->attempts = 0;
        struct logb lb;
        if (log_begin(&lb, st == STATE_JOB_FAILED ? LOG_WARN : LOG_INFO, "import_job_ended")) {
            log_str(&lb, "batch", b->id);
            log_str(&lb, "job_id", b->job_id);
            log_str(&lb, "status", job->job_status);
            log_str(&lb, "message", job->message);
            log_end(&lb);
        }
    } else {
        /* SUBMITTED / IN_PROGRESS: poll again, backing off */
        uint64_t d = p->cfg->hi.poll_initial_ms;
        for (unsigned i = 0; i < b->polls && d < p->cfg->hi.poll_max_ms; i++)
            d *= 2;
        if (d > p->cfg->hi.poll_max_ms)
            d = p->cfg->hi.poll_max_ms;
        b->polls++;
        b->next_ms = now_ms() + d;
    }
    pump(p);
}

static struct member *member_by_sop(struct pbatch *b, const char *sop)
{
    for (size_t i = 0; i < b->n; i++) {
        if (b->m[i].stored && strcmp(b->m[i].sop, sop) == 0)
            return &b->m[i];
    }
    return NULL;
}

static void apply_results(struct pbatch *b, const uint8_t *body, size_t len, bool success)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && body[i] != '\n')
            continue;
        size_t n = i - start;
        if (n > 0 && n < 64u * 1024u) {
            struct state_result r;
            if (state_parse_result_line((const char *)body + start, n, success, &r) == 0) {
                struct member *m = member_by_sop(b, r.sop);
                if (m && (success || m->outcome != 1)) {
                    m->outcome = success ? 1 : 2;
                    scpy(m->image_set_id, sizeof m->image_set_id, r.image_set_id);
                    m->is_primary = r.is_primary;
                    scpy(m->error_type, sizeof m->error_type, r.error_type);
                    scpy(m->error_message, sizeof m->error_message, r.error_message);
                }
            }
        }
        start = i + 1;
    }
}

static void on_fetch(void *arg, const struct http_result *res, const uint8_t *body, size_t len)
{
    struct op *o = arg;
    struct pipeline *p = o->p;
    if (op_dead(o, res))
        return;
    struct pbatch *b = o->b;
    int which = o->kind;
    free(o);
    b->busy = false;
    bool absent = res->err != 0 && (strcmp(res->error_code, "NoSuchKey") == 0 ||
                                    res->status == 404);
    if (res->err != 0 && !absent) {
        batch_retry(p, b, "s3_get_output", res, 0);
        pump(p);
        return;
    }
    if (which == 1 && !absent)
        apply_results(b, body, len, true);
    else if (which == 2 && !absent)
        apply_results(b, body, len, false);
    b->fetched |= 1 << which;
    if (b->fetched == 7) {
        b->n_imported = b->n_failed = 0;
        for (size_t i = 0; i < b->n; i++) {
            struct member *m = &b->m[i];
            if (!m->stored)
                continue;
            if (m->outcome == 0) {
                /* in neither file: the job failed as a whole, or the manifest left it out */
                m->outcome = 2;
                snprintf(m->error_type, sizeof m->error_type, "%s",
                         b->final == STATE_JOB_FAILED ? "ImportJobFailed" : "NotInManifest");
                scpy(m->error_message, sizeof m->error_message, b->job_message);
            }
            if (m->outcome == 1)
                b->n_imported++;
            else
                b->n_failed++;
            m->marked = false;
        }
        b->st = B_MARK;
        b->cursor = 0;
        b->attempts = 0;
    }
    pump(p);
}

/* Fan out member updates (IMPORTING or the outcome) within the DynamoDB budget. Returns true
 * when every stored member is marked. */
static bool fan_out(struct pipeline *p, struct pbatch *b, bool outcome)
{
    char now[40];
    state_now_iso(now);
    bool all = true;
    for (size_t i = 0; i < b->n; i++) {
        struct member *m = &b->m[i];
        if (!m->stored || m->marked)
            continue;
        all = false;
        if (i < b->cursor)
            continue;
        if (p->ddb >= PL_MAX_DDB || now_ms() < b->next_ms)
            return false;
        struct state_extra x = {.job_id = b->job_id, .is_primary = -1};
        enum state_inst st = STATE_IMPORTING;
        if (outcome) {
            st = m->outcome == 1 ? STATE_IMPORTED : STATE_FAILED;
            x.image_set_id = m->image_set_id;
            x.is_primary = m->is_primary;
            x.error_type = m->error_type;
            x.error_message = m->error_message;
        }
        struct op *o = op_new(p, NULL, b, i, 1);
        int rc = ddb_send_b(p, state_req_advance(p->cfg->ddb.table, m->sop, m->sha, st, &x, now),
                            o);
        if (rc < 0) {
            batch_retry(p, b, "send", NULL, rc);
            return false;
        }
        b->inflight++;
        b->cursor = i + 1;
    }
    if (!all && b->inflight == 0)
        b->cursor = 0; /* a pass ended with failures: go round again (after next_ms) */
    return all && b->inflight == 0;
}

/* failed.jsonl: a re-driven object imported at last leaves the list. */
static void append_redriven(struct pipeline *p, const struct member *m)
{
    char line[256];
    int n = snprintf(line, sizeof line, "{\"sop\":\"%s\",\"sha\":\"%s\",\"redriven\":true}\n",
                     m->sop, m->sha);
    int fd = open(p->failed_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0 || n < 0 || (size_t)n >= sizeof line || write(fd, line, (size_t)n) != n)
        note_error(p, "failed_list", m->sop, NULL, ERR_IO);
    if (fd >= 0)
        close(fd);
}

static void record_outcomes(struct pipeline *p, struct pbatch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct member *m = &b->m[i];
        if (!m->stored)
            continue;
        if (m->outcome == 1) {
            p->st.imported++;
            metric_inc(p->m.imported);
            if (b->input_key[0])
                append_redriven(p, m);
        } else {
            p->st.failed++;
            metric_inc(p->m.failed);
            struct state_obj o;
            memset(&o, 0, sizeof o);
            scpy(o.sop, sizeof o.sop, m->sop);
            scpy(o.sha, sizeof o.sha, m->sha);
            o.bytes = m->bytes;
            if (b->input_key[0]) {
                scpy(o.s3_key, sizeof o.s3_key, b->input_key);
                /* the object stays where it was first stored: <prefix>/<batch>/<SOP>.dcm */
                const char *a = strchr(b->input_key, '/');
                const char *z = a ? strchr(a + 1, '/') : NULL;
                if (a && z && (size_t)(z - a - 1) < sizeof o.batch) {
                    memcpy(o.batch, a + 1, (size_t)(z - a - 1));
                    o.batch[z - a - 1] = '\0';
                }
            } else {
                scpy(o.batch, sizeof o.batch, b->id);
                s3_key_of(p, b->id, m->sop, o.s3_key, sizeof o.s3_key);
            }
            append_failed(p, &o, b->job_id, m->error_type, m->error_message);
        }
    }
}

static void run_batch(struct pipeline *p, struct pbatch *b)
{
    uint64_t now = now_ms();
    if (b->busy || now < b->next_ms)
        return;
    struct op *o;
    int rc = 0;
    char now_iso[40], in[1200], outu[1200];
    struct state_job_rec j;
    state_now_iso(now_iso);
    switch (b->st) {
    case B_OPEN: {
        struct batch_limits l;
        if (batch_due(&b->fill, limits(p, &l), now))
            rc = batch_close(p, b);
        return;
    }
    case B_CLOSED: {
        if (b->pending > 0)
            return;
        size_t stored = 0;
        for (size_t i = 0; i < b->n; i++)
            stored += b->m[i].stored;
        /* stow mode sends each object itself; a re-drive (one object, already in S3) is
         * imported by a job in either mode */
        if (stored == 0 || (p->cfg->hi.mode == PIPELINE_MODE_STOW && !b->input_key[0])) {
            batch_finish(p, b);
            return;
        }
        if (p->jobs_inflight >= p->cfg->hi.max_concurrent_jobs)
            return;
        uint64_t wait = batch_pacer_take(&p->pacer, now);
        if (wait > 0) {
            b->next_ms = now + wait;
            return;
        }
        p->jobs_inflight++;
        b->st = B_JOB_OPEN;
    }
        /* fall through */
    case B_JOB_OPEN:
        if (p->ddb >= PL_MAX_DDB)
            return;
        job_rec(p, b, &j, in, sizeof in, outu, sizeof outu);
        rc = ddb_send_b(p, state_req_job(p->cfg->ddb.table, &j, STATE_JOB_STARTING, now_iso),
                        op_new(p, NULL, b, 0, 0));
        break;
    case B_START: {
        job_rec(p, b, &j, in, sizeof in, outu, sizeof outu);
        struct mi_start_job sj = {.datastore_id = p->cfg->hi.datastore_id,
                                  .role_arn = p->cfg->hi.data_access_role_arn,
                                  .client_token = b->id,
                                  .input_s3_uri = in,
                                  .output_s3_uri = outu,
                                  .job_name = b->id};
        o = op_new(p, NULL, b, 0, 0);
        rc = o ? mi_start_import_job(p->env.mi, &sj, on_start_job, o) : ERR_NOMEM;
        if (rc < 0)
            free(o);
        break;
    }
    case B_SUBMITTED:
        if (p->ddb >= PL_MAX_DDB)
            return;
        job_rec(p, b, &j, in, sizeof in, outu, sizeof outu);
        rc = ddb_send_b(p, state_req_job(p->cfg->ddb.table, &j, STATE_JOB_SUBMITTED, now_iso),
                        op_new(p, NULL, b, 0, 0));
        break;
    case B_IMPORTING:
        if (fan_out(p, b, false)) {
            b->st = B_POLL;
            b->polls = 0;
            b->next_ms = now + p->cfg->hi.poll_initial_ms;
        }
        return;
    case B_POLL:
        o = op_new(p, NULL, b, 0, 0);
        rc = o ? mi_get_import_job(p->env.mi, p->cfg->hi.datastore_id, b->job_id, on_get_job, o)
               : ERR_NOMEM;
        if (rc < 0)
            free(o);
        break;
    case B_FETCH: {
        static const char *const names[] = {"job-output-manifest.json", "SUCCESS/success.ndjson",
                                            "FAILURE/failure.ndjson"};
        int which = -1;
        for (int i = 0; i < 3 && which < 0; i++) {
            if (!(b->fetched & (1 << i)))
                which = i;
        }
        if (which < 0)
            return;
        char key[1200];
        snprintf(key, sizeof key, "%s/%s-DicomImport-%s/%s", p->cfg->s3.output_prefix,
                 p->cfg->hi.datastore_id, b->job_id, names[which]);
        o = op_new(p, NULL, b, 0, which);
        rc = o ? s3_get_object(p->env.s3, p->cfg->s3.bucket, key, PL_OUTPUT_MAX, on_fetch, o)
               : ERR_NOMEM;
        if (rc < 0)
            free(o);
        break;
    }
    case B_MARK:
        if (fan_out(p, b, true)) {
            record_outcomes(p, b);
            b->st = B_JOB_FINAL;
            goto job_final;
        }
        return;
    case B_JOB_FINAL:
    job_final:
        if (p->ddb >= PL_MAX_DDB)
            return;
        job_rec(p, b, &j, in, sizeof in, outu, sizeof outu);
        rc = ddb_send_b(p, state_req_job(p->cfg->ddb.table, &j, b->final, now_iso),
                        op_new(p, NULL, b, 0, 0));
        if (rc == 0) {
            if (b->final == STATE_JOB_FAILED) {
                p->st.jobs_failed++;
                metric_inc(p->m.jobs_failed);
            } else {
                p->st.jobs_completed++;
                metric_inc(p->m.jobs_completed);
            }
        }
        break;
    case B_DONE:
        return;
    case B_REDRIVE:
        if (p->ddb >= PL_MAX_DDB)
            return;
        rc = ddb_send_b(p, state_req_redrive(p->cfg->ddb.table, b->m[0].sop, b->m[0].sha, b->id,
                                             now_iso),
                        op_new(p, NULL, b, 0, 0));
        break;
    }
    if (rc < 0) {
        batch_retry(p, b, "send", NULL, rc);
        return;
    }
    b->busy = true;
}

/* ---- scanning the spool ---------------------------------------------------------------------- */

static int json_filter(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 5 && n - 5 < SPOOL_ID_LEN && strcmp(d->d_name + n - 5, ".json") == 0;
}

static char *read_small(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = malloc(max + 1);
    ssize_t n = buf ? read(fd, buf, max + 1) : -1;
    close(fd);
    if (n <= 0 || (size_t)n > max) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

/* Put a new entry into a batch (write-ahead: journaled before any request). */
static int assign(struct pipeline *p, struct ent *e)
{
    struct batch_limits l;
    limits(p, &l);
    if (p->open && (!batch_accepts(&p->open->fill, &l, e->o.bytes) ||
                    batch_has_sop(p->open, e->o.sop)))
        TRY(batch_close(p, p->open));
    if (!p->open)
        TRY(batch_open_new(p));
    struct pbatch *b = p->open;
    struct member *m = batch_member_add(b, e->id, e->o.sop, e->o.sha, e->o.bytes);
    if (!m)
        return ERR_NOMEM;
    int rc = journal_put(p, rec_assign(m, b->id, e->redrive));
    if (rc < 0) {
        /* not journaled, so not a member: a phantom would hold its batch back for ever */
        b->n--;
        b->pending--;
        b->fill.objects--;
        b->fill.bytes -= e->o.bytes;
        return rc;
    }
    e->b = p->open;
    return 0;
}

static void flush(struct pipeline *p);

static bool awaited(const struct pipeline *p, const char *id)
{
    for (const struct awaiter *a = p->awaiters; a; a = a->next) {
        if (strcmp(a->id, id) == 0)
            return true;
    }
    return false;
}

/* Take spool entry id into the pipeline. 0 taken (or finished off), 1 skipped (known, over the
 * cap, or unusable: left for an operator), < 0 a journal failure: stop for now. */
static int admit(struct pipeline *p, const char *id)
{
    int dummy;
    if (ent_find(p, id) || done_lookup(p, id, &dummy))
        return 1;
    if (p->n_ents >= PL_MAX_ENTRIES && !awaited(p, id))
        return 1; /* a backlog waits in ready/; an object a modality waits for goes first */
    char path[1200];
    size_t slen = 0;
    char *side = entry_path(p, id, ".json", path, sizeof path) == 0
                     ? read_small(path, 64u * 1024u, &slen)
                     : NULL;
    if (!side && errno == ENOENT)
        return 1; /* not (yet, or any more) in ready/ */
    struct ent *e = calloc(1, sizeof *e);
    if (!e) {
        free(side);
        return ERR_NOMEM;
    }
    scpy(e->id, sizeof e->id, id);
    int rc = side ? state_obj_from_sidecar(side, slen, &e->o) : ERR_MALFORMED;
    if (rc == 0) {
        cJSON *sj = cJSON_ParseWithLength(side, slen);
        e->redrive = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sj, "redrive"));
        cJSON_Delete(sj);
    }
    free(side);
    if (rc < 0) {
        /* left in ready/ for an operator; never deleted unread */
        note_error(p, "sidecar", id, NULL, rc);
        done_note(p, id, ERR_MALFORMED);
        free(e);
        return 1;
    }
    /* assigned before a crash? the journal replay put it in its batch */
    struct pbatch *owner = NULL;
    struct member *m = NULL;
    for (struct pbatch *b = p->batches; b && !m; b = b->next) {
        m = batch_member(b, id);
        owner = b;
    }
    if (m && (m->stored || m->dropped)) {
        /* released before the crash but not unlinked: finish that */
        char d[1200];
        if (entry_path(p, id, ".dcm", d, sizeof d) == 0)
            unlink(d);
        unlink(path);
        if (p->env.spool_depth)
            atomic_fetch_sub(p->env.spool_depth, 1);
        if (p->env.spool_bytes)
            atomic_fetch_sub(p->env.spool_bytes, (int64_t)e->o.bytes);
        done_note(p, id, 0);
        free(e);
        return 0;
    }
    if (m) {
        e->b = owner;
        e->journaled = true; /* its assign was replayed from the journal */
    } else if ((rc = assign(p, e)) < 0) {
        note_error(p, "journal", id, NULL, rc);
        free(e);
        return rc;
    }
    scpy(e->o.batch, sizeof e->o.batch, e->b->id);
    s3_key_of(p, e->b->id, e->o.sop, e->o.s3_key, sizeof e->o.s3_key);
    e->step = E_RECEIVE;
    ent_insert(p, e);
    return 0;
}

/* A member still pending whose spool entry is gone (removed by hand, or a release whose journal
 * record was lost) would hold its batch, and every stored member with it, back for ever: it is
 * dropped, journaled like a duplicate. Runs after a scan has admitted what ready/ holds. */
static void reconcile_missing(struct pipeline *p)
{
    for (struct pbatch *b = p->batches; b; b = b->next) {
        if (b->pending == 0 || b->st == B_DONE)
            continue;
        for (size_t i = 0; i < b->n; i++) {
            struct member *m = &b->m[i];
            char path[1200];
            struct stat st;
            if (m->stored || m->dropped || ent_find(p, m->id) ||
                entry_path(p, m->id, ".json", path, sizeof path) < 0 ||
                stat(path, &st) == 0 || errno != ENOENT)
                continue;
            if (journal_put(p, rec_id("dup", "id", m->id)) < 0)
                return;
            struct logb lb;
            if (log_begin(&lb, LOG_WARN, "spool_entry_missing")) {
                log_str(&lb, "id", m->id);
                log_str(&lb, "sop_instance_uid", m->sop);
                log_str(&lb, "batch", b->id);
                log_end(&lb);
            }
            m->dropped = true;
            b->pending--;
        }
    }
}

static void scan(struct pipeline *p)
{
    p->scan_wanted = false;
    p->last_scan_ms = now_ms();
    struct dirent **names = NULL;
    int n = scandir(p->ready_dir, &names, json_filter, alphasort);
    if (n < 0) {
        note_error(p, "scan", p->ready_dir, NULL, -errno);
        return;
    }
    int rc = 0;
    for (int i = 0; i < n && rc >= 0; i++) {
        char id[SPOOL_ID_LEN];
        size_t len = strlen(names[i]->d_name) - 5;
        memcpy(id, names[i]->d_name, len);
        id[len] = '\0';
        rc = admit(p, id);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc >= 0)
        reconcile_missing(p);
    flush(p); /* the new assign records durable before any request for them */
}

/* ---- re-drive requests (dicom-core redrive writes them into <spool>/forwarder/redrive/) -- */

static bool hex64(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (size_t i = 0; i < 64; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

/* The key a request names must be one of ours: <prefix>/<batch>/<SOP>.dcm. */
static bool redrive_key_ok(const struct pipeline *p, const char *key, const char *sop)
{
    size_t pl = strlen(p->cfg->s3.prefix), kl = strlen(key), sl = strlen(sop);
    if (kl >= 600 || kl < pl + 1 + sl + 5 || strncmp(key, p->cfg->s3.prefix, pl) != 0 ||
        key[pl] != '/')
        return false;
    const char *tail = key + kl - sl - 5;
    return tail[0] == '/' && strncmp(tail + 1, sop, sl) == 0 && strcmp(tail + 1 + sl, ".dcm") == 0;
}

static int redrive_one(struct pipeline *p, const char *path)
{
    size_t len = 0;
    char *text = read_small(path, 64u * 1024u, &len);
    cJSON *r = text ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
    const cJSON *sop = cJSON_GetObjectItemCaseSensitive(r, "sop");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(r, "sha");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(r, "key");
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(r, "bytes");
    int rc = ERR_MALFORMED;
    if (cJSON_IsString(sop) && cJSON_IsString(sha) && cJSON_IsString(key) &&
        strlen(sop->valuestring) <= 64 && hex64(sha->valuestring) &&
        redrive_key_ok(p, key->valuestring, sop->valuestring)) {
        uint32_t rnd = 0;
        if (RAND_bytes((unsigned char *)&rnd, sizeof rnd) != 1)
            rnd = rnd32(p);
        char id[BATCH_ID_MAX];
        struct pbatch *b = NULL;
        struct member *m = NULL;
        rc = batch_id_make(id, sizeof id, time(NULL), rnd);
        if (rc == 0 && !(b = batch_add(p, id)))
            rc = ERR_NOMEM;
        if (rc == 0 &&
            !(m = batch_member_add(b, "-", sop->valuestring, sha->valuestring,
                                   cJSON_IsNumber(bytes) ? (uint64_t)bytes->valuedouble : 0)))
            rc = ERR_NOMEM;
        if (rc == 0) {
            m->stored = true;
            b->pending = 0;
            scpy(b->input_key, sizeof b->input_key, key->valuestring);
            b->st = B_REDRIVE;
            rc = journal_put(p, rec_rbatch(b));
            if (rc == 0)
                rc = pipeline_journal_sync(p->journal);
        }
        if (rc < 0 && b)
            batch_free(p, b);
        struct logb lb;
        if (rc == 0 && log_begin(&lb, LOG_INFO, "redrive_started")) {
            log_str(&lb, "sop_instance_uid", sop->valuestring);
            log_str(&lb, "key", key->valuestring);
            log_str(&lb, "batch", id);
            log_end(&lb);
        }
    }
    cJSON_Delete(r);
    if (rc == ERR_MALFORMED)
        note_error(p, "redrive_request", path, NULL, rc);
    if (rc == 0 || rc == ERR_MALFORMED)
        unlink(path); /* taken (journaled), or unusable */
    return rc;
}

static void take_redrives(struct pipeline *p)
{
    DIR *d = opendir(p->redrive_dir);
    if (!d)
        return;
    struct dirent *de;
    int taken = 0;
    while ((de = readdir(d)) && taken < 100) {
        size_t n = strlen(de->d_name);
        if (n <= 5 || strcmp(de->d_name + n - 5, ".json") != 0)
            continue;
        char path[1500];
        snprintf(path, sizeof path, "%s/%s", p->redrive_dir, de->d_name);
        int rc = redrive_one(p, path);
        if (rc < 0 && rc != ERR_MALFORMED)
            break;
        taken++;
    }
    closedir(d);
}

/* ---- the flush: one journal sync for everything of this loop iteration -------------------- */

static void flush(struct pipeline *p)
{
    bool any = false;
    for (struct ent *e = p->ents; e; e = e->next) {
        if (e->step == E_RELEASE) {
            cJSON *r = rec_id(e->dup ? "dup" : "stored", "id", e->id);
            if (journal_put(p, r) < 0) {
                note_error(p, "journal", e->id, NULL, ERR_IO);
                return;
            }
            any = true;
        }
    }
    p->last_flush_ms = now_ms();
    if (p->journal_dirty) {
        int rc = pipeline_journal_sync(p->journal);
        if (rc < 0) {
            note_error(p, "journal_sync", "-", NULL, rc);
            return; /* nothing below happens until the journal is durable */
        }
        p->journal_dirty = false;
    }
    for (struct ent *e = p->ents; e; e = e->next)
        e->journaled = true;
    p->releases = 0;
    if (!any)
        return;
    for (struct ent *e = p->ents, *next; e; e = next) {
        next = e->next;
        if (e->step != E_RELEASE)
            continue;
        char d[1200], s[1200];
        if (entry_path(p, e->id, ".dcm", d, sizeof d) == 0)
            unlink(d);
        if (entry_path(p, e->id, ".json", s, sizeof s) == 0)
            unlink(s);
        if (p->env.spool_depth)
            atomic_fetch_sub(p->env.spool_depth, 1);
        if (p->env.spool_bytes)
            atomic_fetch_sub(p->env.spool_bytes, (int64_t)e->o.bytes);
        struct member *m = e->b ? batch_member(e->b, e->id) : NULL;
        if (m) {
            if (e->dup)
                m->dropped = true;
            else
                m->stored = true;
            if (e->b->pending > 0)
                e->b->pending--;
        }
        if (!e->ack_reached)
            ack_reach(p, e, e->dup ? ERR_WRONG_STATE : 0);
        done_note(p, e->id, e->ack_result);
        ent_remove(p, e);
    }
    p->scan_wanted = true; /* room for more */
}

/* ---- scheduling ---------------------------------------------------------------------------- */

static void pump(struct pipeline *p)
{
    if (p->stopping)
        return;
    uint64_t now = now_ms();
    for (struct ent *e = p->ents; e; e = e->next) {
        if (!e->busy && e->journaled && e->step != E_RELEASE && now >= e->next_ms)
            run_entry(p, e);
    }
    for (struct pbatch *b = p->batches, *next; b; b = next) {
        next = b->next;
        run_batch(p, b);
        if (b->st == B_DONE) {
            if (b->job_id[0] && p->jobs_inflight > 0)
                p->jobs_inflight--;
            batch_free(p, b);
        }
    }
}

static void write_status(struct pipeline *p);

static void on_tick(uv_timer_t *t)
{
    struct pipeline *p = t->data;
    uint64_t now = now_ms();
    /* awaiters that ran out of time: the core answers 0xA700 */
    for (struct awaiter **pp = &p->awaiters; *pp;) {
        struct awaiter *a = *pp;
        if (now >= a->deadline_ms) {
            *pp = a->next;
            note_error(p, "ack_timeout", a->id, NULL, ERR_LIMIT);
            if (p->env.acked)
                p->env.acked(p->env.acked_arg, a->token, UV_ETIMEDOUT);
            free(a);
        } else {
            pp = &a->next;
        }
    }
    if (p->scan_wanted || now - p->last_scan_ms >= PL_SCAN_MS) {
        if (now - p->last_scan_ms >= PL_SCAN_MS)
            take_redrives(p);
        scan(p);
    } else {
        flush(p);
    }
    pump(p);
    if (now - p->last_status_ms >= 1000) {
        p->last_status_ms = now;
        write_status(p);
    }
}

/* After each loop pass: flush when enough releases gathered or a little time went by (the
 * tick flushes too), so that one fdatasync covers many objects. */
static void on_check(uv_check_t *c)
{
    struct pipeline *p = c->data;
    if (p->stopping)
        return;
    if (p->releases >= 32 || (p->releases > 0 && now_ms() - p->last_flush_ms >= 20)) {
        flush(p);
        pump(p);
    }
}

/* ---- journal replay ----------------------------------------------------------------------- */

static int on_replay(void *arg, const cJSON *rec)
{
    struct pipeline *p = arg;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rec, "t");
    if (!cJSON_IsString(t))
        return 0;
    const cJSON *jb = cJSON_GetObjectItemCaseSensitive(rec, "b");
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(rec, "id");
    const char *bid = cJSON_IsString(jb) ? jb->valuestring : NULL;
    const char *id = cJSON_IsString(jid) ? jid->valuestring : NULL;
    if (bid && !batch_id_valid(bid))
        return 0;
    if (id && strlen(id) >= SPOOL_ID_LEN)
        return 0;
    if (strcmp(t->valuestring, "assign") == 0 && bid && id) {
        const cJSON *sop = cJSON_GetObjectItemCaseSensitive(rec, "sop");
        const cJSON *sha = cJSON_GetObjectItemCaseSensitive(rec, "sha");
        const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(rec, "bytes");
        if (!cJSON_IsString(sop) || !cJSON_IsString(sha) || !cJSON_IsNumber(bytes) ||
            strlen(sop->valuestring) > 64 || strlen(sha->valuestring) != 64)
            return 0;
        struct pbatch *b = batch_find(p, bid);
        if (!b && !(b = batch_add(p, bid)))
            return ERR_NOMEM;
        if (!batch_member_add(b, id, sop->valuestring, sha->valuestring,
                              (uint64_t)bytes->valuedouble))
            return ERR_NOMEM;
    } else if ((strcmp(t->valuestring, "stored") == 0 || strcmp(t->valuestring, "dup") == 0) &&
               id) {
        for (struct pbatch *b = p->batches; b; b = b->next) {
            struct member *m = batch_member(b, id);
            if (m && !m->stored && !m->dropped) {
                if (t->valuestring[0] == 's')
                    m->stored = true;
                else
                    m->dropped = true;
                if (b->pending > 0)
                    b->pending--;
                break;
            }
        }
    } else if (strcmp(t->valuestring, "rbatch") == 0 && bid) {
        const cJSON *sop = cJSON_GetObjectItemCaseSensitive(rec, "sop");
        const cJSON *sha = cJSON_GetObjectItemCaseSensitive(rec, "sha");
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(rec, "key");
        const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(rec, "bytes");
        if (!cJSON_IsString(sop) || !cJSON_IsString(sha) || !cJSON_IsString(key) ||
            !cJSON_IsNumber(bytes) || strlen(sop->valuestring) > 64 ||
            strlen(sha->valuestring) != 64 || strlen(key->valuestring) >= 600)
            return 0;
        struct pbatch *b = batch_find(p, bid);
        if (b)
            return 0;
        if (!(b = batch_add(p, bid)))
            return ERR_NOMEM;
        struct member *m = batch_member_add(b, "-", sop->valuestring, sha->valuestring,
                                            (uint64_t)bytes->valuedouble);
        if (!m)
            return ERR_NOMEM;
        m->stored = true;
        b->pending = 0;
        scpy(b->input_key, sizeof b->input_key, key->valuestring);
        b->st = B_REDRIVE;
    } else if (strcmp(t->valuestring, "close") == 0 && bid) {
        struct pbatch *b = batch_find(p, bid);
        if (b && b->st == B_OPEN)
            b->st = B_CLOSED;
    } else if (strcmp(t->valuestring, "job") == 0 && bid) {
        struct pbatch *b = batch_find(p, bid);
        const cJSON *job = cJSON_GetObjectItemCaseSensitive(rec, "job");
        if (b && cJSON_IsString(job) && strlen(job->valuestring) < sizeof b->job_id) {
            scpy(b->job_id, sizeof b->job_id, job->valuestring);
            b->st = B_SUBMITTED;
        }
    } else if (strcmp(t->valuestring, "done") == 0 && bid) {
        struct pbatch *b = batch_find(p, bid);
        if (b)
            batch_free(p, b);
    }
    return 0;
}

/* After replay: every batch left open by the previous run closes now (its members keep their
 * keys); the journal is rewritten with the live state only. */
static int compact(struct pipeline *p)
{
    size_t n = 0, cap = 16;
    for (struct pbatch *b = p->batches; b; b = b->next)
        cap += b->n * 2 + 3;
    cJSON **recs = calloc(cap, sizeof *recs);
    if (!recs)
        return ERR_NOMEM;
    int rc = 0;
    for (struct pbatch *b = p->batches; b && rc == 0; b = b->next) {
        if (b->st == B_OPEN)
            b->st = B_CLOSED;
        if (b->input_key[0] && b->n == 1) {
            recs[n] = rec_rbatch(b);
            if (!recs[n++])
                rc = ERR_NOMEM;
        }
        for (size_t i = 0; i < b->n && rc == 0 && !b->input_key[0]; i++) {
            struct member *m = &b->m[i];
            if (m->dropped)
                continue;
            recs[n] = rec_assign(m, b->id, false);
            if (!recs[n++])
                rc = ERR_NOMEM;
            if (m->stored && rc == 0) {
                recs[n] = rec_id("stored", "id", m->id);
                if (!recs[n++])
                    rc = ERR_NOMEM;
            }
        }
        if (rc == 0) {
            recs[n] = rec_id("close", "b", b->id);
            if (!recs[n++])
                rc = ERR_NOMEM;
        }
        if (rc == 0 && b->job_id[0]) {
            recs[n] = rec_id("job", "b", b->id);
            if (!recs[n] || !cJSON_AddStringToObject(recs[n], "job", b->job_id))
                rc = ERR_NOMEM;
            n++;
        }
    }
    if (rc == 0)
        rc = pipeline_journal_compact(p->journal, recs, n);
    for (size_t i = 0; i < n; i++)
        cJSON_Delete(recs[i]);
    free(recs);
    /* dropped members are gone from the new journal: drop them here too */
    for (struct pbatch *b = p->batches; b; b = b->next) {
        size_t w = 0;
        for (size_t i = 0; i < b->n; i++) {
            if (!b->m[i].dropped)
                b->m[w++] = b->m[i];
        }
        b->n = w;
        if (b->job_id[0])
            p->jobs_inflight++;
    }
    return rc;
}

/* ---- status ------------------------------------------------------------------------------- */

void pipeline_get_stats(const struct pipeline *p, struct pipeline_stats *out)
{
    *out = p->st;
    out->entries_inflight = p->n_ents;
    out->uploads_inflight = p->uploads;
    out->jobs_inflight = p->jobs_inflight;
    out->batches_open = p->open ? 1 : 0;
    out->batches_closing = 0;
    for (const struct pbatch *b = p->batches; b; b = b->next) {
        if (b->st != B_OPEN)
            out->batches_closing++;
    }
}

static void write_status(struct pipeline *p)
{
    struct pipeline_stats s;
    pipeline_get_stats(p, &s);
    metric_gauge_set(p->m.inflight, (int64_t)s.entries_inflight);
    metric_gauge_set(p->m.uploads, (int64_t)s.uploads_inflight);
    metric_gauge_set(p->m.batches_open, (int64_t)(s.batches_open + s.batches_closing));
    metric_gauge_set(p->m.jobs, (int64_t)s.jobs_inflight);
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return;
    char now[40];
    state_now_iso(now);
    cJSON_AddStringToObject(j, "updated_at", now);
    cJSON_AddNumberToObject(j, "pid", (double)getpid());
    cJSON_AddStringToObject(j, "mode", p->cfg->hi.mode == PIPELINE_MODE_STOW ? "stow" :
                                                                                 "import");
    cJSON_AddNumberToObject(j, "entries_inflight", (double)s.entries_inflight);
    cJSON_AddNumberToObject(j, "uploads_inflight", (double)s.uploads_inflight);
    cJSON_AddNumberToObject(j, "batches_open", (double)s.batches_open);
    cJSON_AddNumberToObject(j, "batches_closing", (double)s.batches_closing);
    cJSON_AddNumberToObject(j, "jobs_inflight", (double)s.jobs_inflight);
    cJSON_AddNumberToObject(j, "uploaded", (double)s.uploaded);
    cJSON_AddNumberToObject(j, "duplicates", (double)s.duplicates);
    cJSON_AddNumberToObject(j, "imported", (double)s.imported);
    cJSON_AddNumberToObject(j, "failed", (double)s.failed);
    cJSON_AddNumberToObject(j, "jobs_started", (double)s.jobs_started);
    cJSON_AddNumberToObject(j, "jobs_completed", (double)s.jobs_completed);
    cJSON_AddNumberToObject(j, "jobs_failed", (double)s.jobs_failed);
    cJSON_AddNumberToObject(j, "retries", (double)s.retries);
    cJSON *batches = cJSON_AddArrayToObject(j, "batches");
    static const char *const bnames[] = {"OPEN",     "CLOSED",    "JOB_OPEN", "STARTING",
                                         "SUBMITTED", "IMPORTING", "POLLING",  "FETCHING",
                                         "MARKING",  "FINISHING", "DONE",     "REDRIVE"};
    for (const struct pbatch *b = p->batches; b && batches; b = b->next) {
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddStringToObject(o, "id", b->id);
        cJSON_AddStringToObject(o, "step", bnames[b->st]);
        cJSON_AddNumberToObject(o, "objects", (double)b->fill.objects);
        cJSON_AddNumberToObject(o, "pending", (double)b->pending);
        cJSON_AddStringToObject(o, "job_id", b->job_id);
        cJSON_AddItemToArray(batches, o);
    }
    cJSON *errs = cJSON_AddArrayToObject(j, "last_errors");
    size_t ne = p->n_errors < PL_ERRORS ? p->n_errors : PL_ERRORS;
    for (size_t k = 0; k < ne && errs; k++) {
        size_t i = (p->n_errors - 1 - k) % PL_ERRORS;
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddStringToObject(o, "at", p->errors[i].at);
        cJSON_AddStringToObject(o, "step", p->errors[i].step);
        cJSON_AddStringToObject(o, "code", p->errors[i].code);
        cJSON_AddStringToObject(o, "message", p->errors[i].msg);
        cJSON_AddItemToArray(errs, o);
    }
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text)
        return;
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.tmp", p->status_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd >= 0) {
        size_t n = strlen(text);
        bool ok = fileio_write_all(fd, text, n) == 0;
        close(fd);
        if (!ok || rename(tmp, p->status_path) < 0)
            unlink(tmp);
    }
    cJSON_free(text);
}

/* ---- life cycle ----------------------------------------------------------------------------- */

static void metrics_init(struct pipeline *p)
{
    struct metrics *m = p->env.metrics;
    if (!m)
        return;
    static const char h_obj[] = "Objects by forwarder stage outcome";
    p->m.uploaded = metrics_counter(m, "dicom_core_forwarder_objects_total", h_obj,
                                    "stage=\"s3_stored\"");
    p->m.dups = metrics_counter(m, "dicom_core_forwarder_objects_total", h_obj,
                                "stage=\"duplicate\"");
    p->m.torn = metrics_counter(m, "dicom_core_forwarder_objects_total", h_obj,
                                "stage=\"torn_dropped\"");
    p->m.imported = metrics_counter(m, "dicom_core_forwarder_objects_total", h_obj,
                                    "stage=\"imported\"");
    p->m.failed = metrics_counter(m, "dicom_core_forwarder_objects_total", h_obj,
                                  "stage=\"failed\"");
    p->m.uploaded_bytes = metrics_counter(m, "dicom_core_forwarder_s3_bytes_total",
                                          "Bytes uploaded to S3", NULL);
    static const char h_jobs[] = "HealthImaging import jobs by outcome";
    p->m.jobs_started = metrics_counter(m, "dicom_core_forwarder_jobs_total", h_jobs,
                                        "outcome=\"started\"");
    p->m.jobs_completed = metrics_counter(m, "dicom_core_forwarder_jobs_total", h_jobs,
                                          "outcome=\"completed\"");
    p->m.jobs_failed = metrics_counter(m, "dicom_core_forwarder_jobs_total", h_jobs,
                                       "outcome=\"failed\"");
    p->m.retries = metrics_counter(m, "dicom_core_forwarder_retries_total",
                                   "Pipeline steps retried after a failure", NULL);
    p->m.errors = metrics_counter(m, "dicom_core_forwarder_errors_total",
                                  "Failed pipeline steps (each is retried)", NULL);
    p->m.inflight = metrics_gauge(m, "dicom_core_forwarder_entries_inflight",
                                  "Spool entries the forwarder is working on", NULL);
    p->m.uploads = metrics_gauge(m, "dicom_core_forwarder_uploads_inflight",
                                 "S3 uploads (or STOW-RS requests) in flight", NULL);
    p->m.batches_open = metrics_gauge(m, "dicom_core_forwarder_batches",
                                      "Batches not yet finished (open or closing)", NULL);
    p->m.jobs = metrics_gauge(m, "dicom_core_forwarder_jobs_inflight",
                              "HealthImaging import jobs started and not yet finished", NULL);
}

static int mkdir_one(const char *d)
{
    if (mkdir(d, 0750) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int pipeline_start(const struct pipeline_env *env, struct pipeline **out)
{
    struct pipeline *p = calloc(1, sizeof *p);
    if (!p)
        return ERR_NOMEM;
    p->env = *env;
    p->cfg = env->cfg;
    p->ents_tail = &p->ents;
    p->started = time(NULL);
    p->rnd = (uint32_t)now_ms() ^ (uint32_t)getpid() * 2654435761u;
    if (p->rnd == 0)
        p->rnd = 1;
    snprintf(p->ready_dir, sizeof p->ready_dir, "%s/ready", env->spool_dir);
    snprintf(p->own_dir, sizeof p->own_dir, "%s/forwarder", env->spool_dir);
    snprintf(p->redrive_dir, sizeof p->redrive_dir, "%s/redrive", p->own_dir);
    snprintf(p->failed_path, sizeof p->failed_path, "%s/failed.jsonl", p->own_dir);
    snprintf(p->status_path, sizeof p->status_path, "%s/status.json", p->own_dir);
    char jpath[1200];
    snprintf(jpath, sizeof jpath, "%s/journal.jsonl", p->own_dir);
    int rc = mkdir_one(p->own_dir);
    if (rc == 0)
        rc = pipeline_journal_open(jpath, env->fsync, on_replay, p, &p->journal);
    if (rc == 0)
        rc = compact(p);
    if (rc < 0) {
        pipeline_journal_close(p->journal);
        while (p->batches)
            batch_free(p, p->batches);
        free(p);
        return rc;
    }
    batch_pacer_init(&p->pacer, p->cfg->hi.start_tps, now_ms());
    metrics_init(p);
    uv_timer_init(env->loop, &p->tick);
    uv_check_init(env->loop, &p->flush);
    p->tick.data = p->flush.data = p;
    p->live_handles = 2;
    uv_timer_start(&p->tick, on_tick, 0, PL_TICK_MS);
    uv_check_start(&p->flush, on_check);
    size_t nb = 0, nm = 0;
    for (struct pbatch *b = p->batches; b; b = b->next) {
        nb++;
        nm += b->pending;
    }
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, "forwarder_started")) {
        log_str(&lb, "mode", p->cfg->hi.mode == PIPELINE_MODE_STOW ? "stow" : "import");
        log_str(&lb, "bucket", p->cfg->s3.bucket);
        log_str(&lb, "table", p->cfg->ddb.table);
        log_u64(&lb, "batches_resumed", nb);
        log_u64(&lb, "objects_resumed", nm);
        log_end(&lb);
    }
    p->scan_wanted = true;
    *out = p;
    return 0;
}

void pipeline_kick(struct pipeline *p)
{
    /* coalesced: the next tick scans ready/ once for every kick since the last one */
    p->scan_wanted = true;
}

void pipeline_await(struct pipeline *p, const char *id, uint64_t token)
{
    if (p->stopping) {
        if (p->env.acked)
            p->env.acked(p->env.acked_arg, token, ERR_WRONG_STATE);
        return;
    }
    struct ent *e = ent_find(p, id);
    int result;
    if (e && e->ack_reached) {
        p->env.acked(p->env.acked_arg, token, e->ack_result);
        return;
    }
    if (!e && done_lookup(p, id, &result)) {
        p->env.acked(p->env.acked_arg, token, result);
        return;
    }
    struct awaiter *a = calloc(1, sizeof *a);
    if (!a) {
        p->env.acked(p->env.acked_arg, token, ERR_NOMEM);
        return;
    }
    scpy(a->id, sizeof a->id, id);
    a->token = token;
    a->deadline_ms = now_ms() + p->cfg->ack_timeout_ms;
    a->next = p->awaiters;
    p->awaiters = a;
    if (!e) {
        /* straight in, without a scan of the whole spool: a modality is waiting */
        if (admit(p, id) != 0)
            p->scan_wanted = true;
        flush(p);
        pump(p);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct pipeline *p = h->data;
    if (--p->live_handles == 0 && p->stop_done)
        p->stop_done(p->stop_arg);
}

void pipeline_stop(struct pipeline *p, void (*done)(void *arg), void *arg)
{
    p->stopping = true;
    p->stop_done = done;
    p->stop_arg = arg;
    flush(p); /* what finished gets journaled and released */
    write_status(p);
    while (p->awaiters) {
        struct awaiter *a = p->awaiters;
        p->awaiters = a->next;
        if (p->env.acked)
            p->env.acked(p->env.acked_arg, a->token, ERR_WRONG_STATE);
        free(a);
    }
    uv_close((uv_handle_t *)&p->tick, on_handle_closed);
    uv_close((uv_handle_t *)&p->flush, on_handle_closed);
}

void pipeline_free(struct pipeline *p)
{
    if (!p)
        return;
    while (p->ents) {
        struct ent *e = p->ents;
        p->ents = e->next;
        free(e);
    }
    while (p->batches)
        batch_free(p, p->batches);
    pipeline_journal_close(p->journal);
    free(p);
}
