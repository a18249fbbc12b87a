/* pipeline: what the operator sees: the last errors, the metrics, <spool>/forwarder/status.json
 * (about once a second) and failed.jsonl (every object that ended FAILED, and re-drives that
 * succeeded since). */
#include "pipeline_int.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "net/metrics.h"

#define STAT(f) {#f, offsetof(struct pipeline_stats, f)}
const struct pl_stat_field pl_stat_fields[] = {
    STAT(entries_inflight), STAT(uploads_inflight), STAT(batches_open), STAT(batches_closing),
    STAT(jobs_inflight),    STAT(uploaded),         STAT(duplicates),   STAT(imported),
    STAT(failed),           STAT(jobs_started),     STAT(jobs_completed), STAT(jobs_failed),
    STAT(retries),          STAT(ddb_requests),     STAT(s3_requests),
};
#undef STAT
const size_t pl_n_stat_fields = ARRAY_LEN(pl_stat_fields);

void pl_note_error(struct pipeline *p, const char *step, const char *id,
                   const struct http_result *res, int rc)
{
    size_t i = p->n_errors++ % PL_ERRORS;
    state_now_iso(p->errors[i].at);
    pl_scpy(p->errors[i].step, sizeof p->errors[i].step, step);
    snprintf(p->errors[i].code, sizeof p->errors[i].code, "%s",
             res && res->error_code[0] ? res->error_code : http_err_str(res ? res->err : rc));
    pl_scpy(p->errors[i].msg, sizeof p->errors[i].msg, res ? res->message : "");
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

uint64_t pl_retry_delay(struct pipeline *p, unsigned attempts)
{
    p->st.retries++;
    metric_inc(p->m.retries);
    uint64_t d = batch_backoff_ms(attempts, 500, p->cfg->retry_max_ms, pl_rnd32(p));
    return d < 100 ? 100 : d;
}

void pl_append_failed(struct pipeline *p, const struct state_obj *o, const char *job,
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
            pl_note_error(p, "failed_list", o->sop, NULL, -errno);
        close(fd);
    }
    cJSON_free(s);
}

/* failed.jsonl: a re-driven object imported at last leaves the list. */
void pl_append_redriven(struct pipeline *p, const struct member *m)
{
    char line[256];
    int n = snprintf(line, sizeof line, "{\"sop\":\"%s\",\"sha\":\"%s\",\"redriven\":true}\n",
                     m->sop, m->sha);
    int fd = open(p->failed_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0 || n < 0 || (size_t)n >= sizeof line || write(fd, line, (size_t)n) != n)
        pl_note_error(p, "failed_list", m->sop, NULL, ERR_IO);
    if (fd >= 0)
        close(fd);
}

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

void pl_write_status(struct pipeline *p)
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
    for (size_t i = 0; i < pl_n_stat_fields; i++) {
        const uint64_t *v = (const uint64_t *)((const char *)&s + pl_stat_fields[i].off);
        cJSON_AddNumberToObject(j, pl_stat_fields[i].name, (double)*v);
    }
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

void pl_metrics_init(struct pipeline *p)
{
    struct metrics *m = p->env.metrics;
    if (!m)
        return;
    static const char objs[] = "dicom_core_forwarder_objects_total", jobs[] =
        "dicom_core_forwarder_jobs_total";
    static const char h_obj[] = "Objects by forwarder stage outcome", h_jobs[] =
        "HealthImaging import jobs by outcome";
    const struct {
        struct metric_counter **at;
        const char *name, *help, *labels;
    } counters[] = {
        {&p->m.uploaded, objs, h_obj, "stage=\"s3_stored\""},
        {&p->m.dups, objs, h_obj, "stage=\"duplicate\""},
        {&p->m.torn, objs, h_obj, "stage=\"torn_dropped\""},
        {&p->m.imported, objs, h_obj, "stage=\"imported\""},
        {&p->m.failed, objs, h_obj, "stage=\"failed\""},
        {&p->m.uploaded_bytes, "dicom_core_forwarder_s3_bytes_total", "Bytes uploaded to S3",
         NULL},
        {&p->m.jobs_started, jobs, h_jobs, "outcome=\"started\""},
        {&p->m.jobs_completed, jobs, h_jobs, "outcome=\"completed\""},
        {&p->m.jobs_failed, jobs, h_jobs, "outcome=\"failed\""},
        {&p->m.retries, "dicom_core_forwarder_retries_total",
         "Pipeline steps retried after a failure", NULL},
        {&p->m.errors, "dicom_core_forwarder_errors_total",
         "Failed pipeline steps (each is retried)", NULL},
    };
    const struct {
        struct metric_gauge **at;
        const char *name, *help;
    } gauges[] = {
        {&p->m.inflight, "dicom_core_forwarder_entries_inflight",
         "Spool entries the forwarder is working on"},
        {&p->m.uploads, "dicom_core_forwarder_uploads_inflight",
         "S3 uploads (or STOW-RS requests) in flight"},
        {&p->m.batches_open, "dicom_core_forwarder_batches",
         "Batches not yet finished (open or closing)"},
        {&p->m.jobs, "dicom_core_forwarder_jobs_inflight",
         "HealthImaging import jobs started and not yet finished"},
    };
    for (size_t i = 0; i < ARRAY_LEN(counters); i++)
        *counters[i].at = metrics_counter(m, counters[i].name, counters[i].help,
                                          counters[i].labels);
    for (size_t i = 0; i < ARRAY_LEN(gauges); i++)
        *gauges[i].at = metrics_gauge(m, gauges[i].name, gauges[i].help, NULL);
}
