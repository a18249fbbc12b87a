/* The file backend's lifecycle: configuration, journal replay, its thread, the backend_ops. */
#include "backend_file/file_backend.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/log.h"
#include "file_backend_int.h"

uint64_t file_backend_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void file_backend_fail(struct file_backend *b, const char *what, const char *id, int rc)
{
    b->stats.failed++;
    b->stats.last_error_at = (uint64_t)time(NULL);
    struct logb lb;
    if (log_begin(&lb, LOG_ERROR, "backend_file_error")) {
        log_str(&lb, "step", what);
        log_str(&lb, "id", id);
        log_str(&lb, "err", err_str(rc));
        log_end(&lb);
    }
}

static const char *jstr(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A stored (or duplicate) record, as the read index needs it: the sidecar's fields. */
static int know(struct file_backend *b, const cJSON *rec, const char *key, bool dup)
{
    struct fx_known k = {.duplicate = dup};
    const cJSON *cert = cJSON_GetObjectItemCaseSensitive(rec, "cert");
    const char *fields[] = {"sop_instance_uid", "sop_class_uid", "study_instance_uid",
                            "series_instance_uid"};
    char *dst[] = {k.sop, k.sop_class, k.study, k.series};
    for (size_t i = 0; i < 4; i++) {
        const char *v = jstr(rec, fields[i]);
        if (!v || strlen(v) > 64)
            return 0;
        snprintf(dst[i], 65, "%s", v);
    }
    if (key && strlen(key) >= sizeof k.key)
        return 0;
    snprintf(k.key, sizeof k.key, "%s", key ? key : "");
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(rec, "bytes");
    k.bytes = cJSON_IsNumber(bytes) && bytes->valuedouble > 0 ? (uint64_t)bytes->valuedouble : 0;
    backend_read_owner(cJSON_IsObject(cert) ? jstr(cert, "client_id") : NULL,
                       jstr(rec, "calling_ae"), k.owner, sizeof k.owner);
    return fx_index_know(&b->index, &k);
}

/* Journal replay: "assign" fixes an entry's key, "stored" marks sop|sha as in the store; both
 * "stored" and "duplicate" tell the read index what the store holds and who sent it. */
static int on_replay(void *arg, const cJSON *rec)
{
    struct file_backend *b = arg;
    const char *ev = jstr(rec, "ev"), *id = jstr(rec, "id"), *key = jstr(rec, "key");
    const char *sop = jstr(rec, "sop_instance_uid"), *sha = jstr(rec, "sha256");
    const char *crc = jstr(rec, "crc64nvme");
    if (!ev)
        return 0;
    if (strcmp(ev, "assign") == 0 && id && key)
        return strmap_put(&b->assigned, id, key);
    if (strcmp(ev, "stored") == 0 && sop && (sha || crc)) {
        file_commit_note(b->commit_ix, sop, sha ? sha : crc, jstr(rec, "sop_class_uid"),
                         jstr(rec, "received_end"), COPY_STORED);
        char k[200];
        file_backend_stored_key(sop, sha, crc, k, sizeof k);
        TRY(strmap_put(&b->stored, k, NULL));
        return key ? know(b, rec, key, false) : 0;
    }
    if (strcmp(ev, "duplicate") == 0)
        return know(b, rec, NULL, true);
    return 0;
}

static void timed_wait(struct file_backend *b, uint64_t wait_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(wait_ms / 1000);
    ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    (void)pthread_cond_timedwait(&b->cv, &b->mu, &ts);
}

static void *backend_thread(void *arg)
{
    struct file_backend *b = arg;
    unsigned backoff_ms = 0;
    fx_index_reconcile(b); /* before new objects: the journal's view first */
    for (;;) {
        pthread_mutex_lock(&b->mu);
        if (!b->stop && !b->kicked) /* a timeout means: age check and a retry scan */
            timed_wait(b, backoff_ms ? backoff_ms : b->cfg.batch_max_age_ms);
        bool stop = b->stop;
        b->kicked = false;
        pthread_mutex_unlock(&b->mu);

        int r, total = 0;
        do {
            r = file_backend_step(b);
            total += r > 0 ? r : 0;
        } while (r > 0 && !stop);
        if (r < 0) {
            file_backend_fail(b, "step", "-", r);
            backoff_ms = backoff_ms ? (backoff_ms * 2 > 30000 ? 30000 : backoff_ms * 2) : 500;
        } else {
            backoff_ms = 0;
        }
        if (b->batch[0] &&
            file_backend_now_ms() - b->batch_opened_ms >= b->cfg.batch_max_age_ms)
            file_backend_close_batch(b);
        if (stop)
            break;
        if (total > 0) {
            /* not on the acknowledgement path: let entries gather so that one step (and its
             * journal fsyncs) covers many objects instead of competing with the committer */
            pthread_mutex_lock(&b->mu);
            uint64_t until = file_backend_now_ms() + 100;
            while (!b->stop && file_backend_now_ms() < until)
                timed_wait(b, until - file_backend_now_ms());
            pthread_mutex_unlock(&b->mu);
        }
    }
    file_backend_close_batch(b);
    return NULL;
}

static void free_backend(struct file_backend *b)
{
    spool_journal_close(b->journal);
    fx_index_close(&b->index);
    file_commit_free(b->commit_ix);
    strmap_free(&b->stored);
    strmap_free(&b->assigned);
    free(b);
}

static int fb_check_config(const char *json, enum spool_ack ack, struct wbuf *errs)
{
    struct file_backend_config c;
    int rc = file_backend_config_parse(json, &c, errs);
    if (ack != SPOOL_ACK_SPOOL) {
        wbuf_printf(errs, "ack: \"s3\" and \"healthimaging\" need the aws backend\n");
        rc = ERR_CONFIG;
    }
    return rc;
}

static int fb_start(const struct backend_env *env, void **impl)
{
    struct file_backend *b = calloc(1, sizeof *b);
    if (!b)
        return ERR_NOMEM;
    struct wbuf errs;
    wbuf_init(&errs, 4096);
    int rc = file_backend_config_parse(env->config_json, &b->cfg, &errs);
    wbuf_cleanup(&errs);
    b->spool = env->spool;
    b->fsync = env->fsync;
    b->loop = env->loop;
    b->started = time(NULL);
    if (rc == 0)
        rc = file_commit_new(&b->commit_ix);
    if (rc == 0)
        rc = fileio_mkdir_p(b->cfg.dir);
    char jpath[1100];
    if (rc == 0 && snprintf(jpath, sizeof jpath, "%s/journal.jsonl", b->cfg.dir) >=
                       (int)sizeof jpath)
        rc = ERR_LIMIT;
    if (rc == 0)
        rc = fx_index_open(b);
    if (rc == 0)
        rc = spool_journal_open(jpath, env->fsync, on_replay, b, &b->journal);
    if (rc < 0) {
        free_backend(b);
        return rc;
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->kicked = true; /* resume whatever a previous run left in ready/ */
    rc = pthread_create(&b->thread, NULL, backend_thread, b);
    if (rc != 0) {
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
        free_backend(b);
        return -rc;
    }
    *impl = b;
    return 0;
}

static void fb_notify(void *impl)
{
    struct file_backend *b = impl;
    pthread_mutex_lock(&b->mu);
    b->kicked = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static void fb_await(void *impl, const char *id, backend_ack_cb cb, void *arg)
{
    (void)impl;
    (void)id;
    cb(arg, 0, NULL); /* the file backend acknowledges at the spool */
}

static void fb_get_stats(void *impl, struct backend_stats *out)
{
    struct file_backend *b = impl;
    pthread_mutex_lock(&b->mu);
    *out = b->stats; /* counters are written by the thread; a torn read only skews a scrape */
    pthread_mutex_unlock(&b->mu);
}

static void fb_stop(void *impl)
{
    struct file_backend *b = impl;
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free_backend(b);
}

const struct backend_ops file_backend_ops = {
    .name = "file",
    .check_config = fb_check_config,
    .start = fb_start,
    .notify = fb_notify,
    .await = fb_await,
    .get_stats = fb_get_stats,
    .stop = fb_stop,
    .cli = NULL,
    .cli_usage = NULL,
    .read = &file_backend_read_ops,
    .commit = &file_commit_ops,
};
