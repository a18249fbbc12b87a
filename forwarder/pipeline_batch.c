/* pipeline: a batch's steps, one HealthImaging import job: the job item STARTING, then
 * StartDICOMImportJob (paced, clientToken = batch id), SUBMITTED, members IMPORTING, polling
 * GetDICOMImportJob, reading the job's output files, each member's outcome, the job's final
 * state; and a re-drive's one-object job. */
#include "pipeline_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/mi.h"
#include "aws/s3.h"
#include "common/log.h"
#include "net/metrics.h"

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
    pl_note_error(p, step, b->id, res, rc);
    b->next_ms = pl_now_ms() + pl_retry_delay(p, b->attempts);
    b->attempts++;
}

static void batch_finish(struct pipeline *p, struct pbatch *b)
{
    if (pl_journal_put(p, pl_rec_id("done", "b", b->id)) < 0) {
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
    (void)out;
    struct op o;
    if (!pl_op_end(arg, res, PL_BUDGET_DDB, &o))
        return;
    struct pipeline *p = o.p;
    struct pbatch *b = o.b;
    int kind = o.kind;
    size_t idx = o.idx;
    bool ok = res->err == 0 || res->err == HTTP_ERR_CONDITION;
    if (kind == 1) { /* a member update of a fan-out */
        b->inflight--;
        if (ok) {
            b->m[idx].marked = true;
        } else {
            pl_note_error(p, b->st == B_IMPORTING ? "ddb_importing" : "ddb_mark", b->m[idx].sop,
                          res, 0);
            b->next_ms = pl_now_ms() + pl_retry_delay(p, b->attempts++);
        }
        pl_pump(p);
        return;
    }
    b->busy = false;
    if (!ok) {
        batch_retry(p, b, "ddb_job", res, 0);
        pl_pump(p);
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
        pl_pump(p);
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
    pl_pump(p);
}

/* The start of an import-job call's callback: its batch no longer busy. False for a dead result,
 * and when the call failed (!ok: then it is retried later); else true with *o the call's op. */
static bool job_answered(void *arg, const struct http_result *res, bool ok, const char *step,
                         struct op *o)
{
    if (!pl_op_end(arg, res, PL_BUDGET_NONE, o))
        return false;
    o->b->busy = false;
    if (!ok) {
        batch_retry(o->p, o->b, step, res, 0);
        pl_pump(o->p);
    }
    return ok;
}

static void on_start_job(void *arg, const struct http_result *res, const struct mi_job *job)
{
    /* a failed start is retried with the job slot still taken */
    struct op o;
    if (!job_answered(arg, res, res->err == 0 && job && job->job_id[0], "start_import_job", &o))
        return;
    struct pipeline *p = o.p;
    struct pbatch *b = o.b;
    pl_scpy(b->job_id, sizeof b->job_id, job->job_id);
    cJSON *r = pl_rec_id("job", "b", b->id);
    if (r)
        cJSON_AddStringToObject(r, "job", b->job_id);
    if (pl_journal_put(p, r) < 0 || spool_journal_sync(p->journal) < 0) {
        /* not recorded: the clientToken gives the same job when we start it again */
        batch_retry(p, b, "journal", NULL, ERR_IO);
        pl_pump(p);
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
    pl_pump(p);
}

static void on_get_job(void *arg, const struct http_result *res, const struct mi_job *job)
{
    struct op o;
    if (!job_answered(arg, res, res->err == 0 && job, "get_import_job", &o))
        return;
    struct pipeline *p = o.p;
    struct pbatch *b = o.b;
    enum state_job st = state_job_parse(job->job_status);
    if (st == STATE_JOB_COMPLETED || st == STATE_JOB_FAILED) {
        b->final = st;
        pl_scpy(b->job_message, sizeof b->job_message, job->message);
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
        b->next_ms = pl_now_ms() + d;
    }
    pl_pump(p);
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
                    pl_scpy(m->image_set_id, sizeof m->image_set_id, r.image_set_id);
                    m->is_primary = r.is_primary;
                    pl_scpy(m->error_type, sizeof m->error_type, r.error_type);
                    pl_scpy(m->error_message, sizeof m->error_message, r.error_message);
                }
            }
        }
        start = i + 1;
    }
}

static void on_fetch(void *arg, const struct http_result *res, const uint8_t *body, size_t len)
{
    struct op o;
    if (!pl_op_end(arg, res, PL_BUDGET_NONE, &o))
        return;
    struct pipeline *p = o.p;
    struct pbatch *b = o.b;
    int which = o.kind;
    b->busy = false;
    bool absent = res->err != 0 && (strcmp(res->error_code, "NoSuchKey") == 0 ||
                                    res->status == 404);
    if (res->err != 0 && !absent) {
        batch_retry(p, b, "s3_get_output", res, 0);
        pl_pump(p);
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
                pl_scpy(m->error_message, sizeof m->error_message, b->job_message);
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
    pl_pump(p);
}

/* Fan out member updates (IMPORTING or the outcome) within the DynamoDB budget. Returns true
 * when every stored member is marked. */
static int ddb_update(struct pipeline *p, cJSON *req, struct op *o) /* takes req and o */
{
    return pl_ddb_send(p, "UpdateItem", req, on_ddb_batch, o);
}

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
        if (p->ddb >= PL_MAX_DDB || pl_now_ms() < b->next_ms)
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
        struct op *o = pl_op_new(p, NULL, b, i, 1);
        int rc = ddb_update(p, state_req_advance(p->cfg->ddb.table, m->sop, m->sha, st, &x, now),
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
                pl_append_redriven(p, m);
        } else {
            p->st.failed++;
            metric_inc(p->m.failed);
            struct state_obj o;
            memset(&o, 0, sizeof o);
            pl_scpy(o.sop, sizeof o.sop, m->sop);
            pl_scpy(o.sha, sizeof o.sha, m->sha);
            o.bytes = m->bytes;
            if (b->input_key[0]) {
                pl_scpy(o.s3_key, sizeof o.s3_key, b->input_key);
                /* the object stays where it was first stored: <prefix>/<batch>/<SOP>.dcm */
                const char *a = strchr(b->input_key, '/');
                const char *z = a ? strchr(a + 1, '/') : NULL;
                if (a && z && (size_t)(z - a - 1) < sizeof o.batch) {
                    memcpy(o.batch, a + 1, (size_t)(z - a - 1));
                    o.batch[z - a - 1] = '\0';
                }
            } else {
                pl_scpy(o.batch, sizeof o.batch, b->id);
                pl_s3_key_of(p, b->id, m->sop, o.s3_key, sizeof o.s3_key);
            }
            pl_append_failed(p, &o, b->job_id, m->error_type, m->error_message);
        }
    }
}

/* UpdateItem: the batch's job item moved forward to st, with its counters. */
static int job_item(struct pipeline *p, struct pbatch *b, enum state_job st, const char *now)
{
    char in[1200], outu[1200];
    struct state_job_rec j;
    job_rec(p, b, &j, in, sizeof in, outu, sizeof outu);
    return ddb_update(p, state_req_job(p->cfg->ddb.table, &j, st, now),
                      pl_op_new(p, NULL, b, 0, 0));
}

void pl_run_batch(struct pipeline *p, struct pbatch *b)
{
    uint64_t now = pl_now_ms();
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
        if (batch_due(&b->fill, pl_limits(p, &l), now))
            rc = pl_batch_close(p, b);
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
        rc = job_item(p, b, STATE_JOB_STARTING, now_iso);
        break;
    case B_START: {
        job_rec(p, b, &j, in, sizeof in, outu, sizeof outu);
        struct mi_start_job sj = {.datastore_id = p->cfg->hi.datastore_id,
                                  .role_arn = p->cfg->hi.data_access_role_arn,
                                  .client_token = b->id,
                                  .input_s3_uri = in,
                                  .output_s3_uri = outu,
                                  .job_name = b->id};
        o = pl_op_new(p, NULL, b, 0, 0);
        rc = o ? mi_start_import_job(p->env.mi, &sj, on_start_job, o) : ERR_NOMEM;
        if (rc < 0)
            free(o);
        break;
    }
    case B_SUBMITTED:
        if (p->ddb >= PL_MAX_DDB)
            return;
        rc = job_item(p, b, STATE_JOB_SUBMITTED, now_iso);
        break;
    case B_IMPORTING:
        if (fan_out(p, b, false)) {
            b->st = B_POLL;
            b->polls = 0;
            b->next_ms = now + p->cfg->hi.poll_initial_ms;
        }
        return;
    case B_POLL:
        o = pl_op_new(p, NULL, b, 0, 0);
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
        o = pl_op_new(p, NULL, b, 0, which);
        rc = o ? s3_get_object(p->env.s3, p->cfg->s3.bucket, key, PL_OUTPUT_MAX, on_fetch, o)
               : ERR_NOMEM;
        if (rc < 0)
            free(o);
        else
            p->st.s3_requests++;
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
        rc = job_item(p, b, b->final, now_iso);
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
        rc = ddb_update(p, state_req_redrive(p->cfg->ddb.table, b->m[0].sop, b->m[0].sha, b->id,
                                             now_iso),
                        pl_op_new(p, NULL, b, 0, 0));
        break;
    }
    if (rc < 0) {
        batch_retry(p, b, "send", NULL, rc);
        return;
    }
    b->busy = true;
}
