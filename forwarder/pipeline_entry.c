/* pipeline: an entry's steps: its DynamoDB item RECEIVED, the S3 upload (or, in mode "stow",
 * StoreDICOM), STORED (or the final state), then its release at the next flush; duplicates and
 * torn spool copies are dropped on the way. */
#include "pipeline_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aws/mi.h"
#include "aws/s3.h"
#include "common/log.h"
#include "net/sha256_file.h"
#include "net/metrics.h"

static bool is_outage(const struct http_result *res)
{
    return res && (res->err == HTTP_ERR_NETWORK || res->err == HTTP_ERR_THROTTLED ||
                   res->status >= 500);
}

static void ent_retry(struct pipeline *p, struct ent *e, const char *step,
                      const struct http_result *res, int rc)
{
    pl_note_error(p, step, e->id, res, rc);
    if (p->env.ack != PIPELINE_ACK_NONE && !e->ack_reached)
        pl_ack_fail_waiters(p, e, res ? res->err : rc);
    e->next_ms = pl_now_ms() + pl_retry_delay(p, e->attempts);
    e->attempts++;
    if (is_outage(res)) {
        uint64_t *hold = e->step == E_UPLOAD || e->step == E_STOW ? &p->hold_s3 : &p->hold_ddb;
        if (e->next_ms > *hold)
            *hold = e->next_ms;
    }
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
    pl_ack_reach(p, e, durable ? 0 : ERR_WRONG_STATE);
    e->dup = true;
    release_entry(p, e);
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
    pl_ack_reach(p, e, ERR_MISMATCH);
    e->dup = true; /* released without being counted as stored */
    release_entry(p, e);
}

static void on_ddb_entry(void *arg, const struct http_result *res, const cJSON *out)
{
    struct op o;
    if (!pl_op_end(arg, res, PL_BUDGET_DDB, &o))
        return;
    struct pipeline *p = o.p;
    struct ent *e = o.e;
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
                pl_ack_reach(p, e, e->stow_ok ? 0 : ERR_IO);
            if (e->stow_ok) {
                p->st.imported++;
                metric_inc(p->m.imported);
            } else {
                p->st.failed++;
                metric_inc(p->m.failed);
                pl_append_failed(p, &e->o, NULL, e->err_type, e->err_msg);
            }
            release_entry(p, e);
        } else {
            ent_retry(p, e, "ddb_final", res, 0);
        }
        break;
    default:
        break;
    }
    pl_pump(p);
}

static void on_upload(void *arg, const struct http_result *res)
{
    struct op o;
    if (!pl_op_end(arg, res, PL_BUDGET_UPLOADS, &o))
        return;
    struct pipeline *p = o.p;
    struct ent *e = o.e;
    if (res->err == 0) {
        p->hold_s3 = 0;
        p->st.uploaded++;
        p->st.uploaded_bytes += e->o.bytes;
        metric_inc(p->m.uploaded);
        metric_add(p->m.uploaded_bytes, e->o.bytes);
        if (p->env.ack == PIPELINE_ACK_S3)
            pl_ack_reach(p, e, 0);
        e->step = E_STORED;
        e->attempts = 0;
    } else if (strcmp(res->error_code, "BadDigest") == 0 ||
               strcmp(res->error_code, "XAmzContentSHA256Mismatch") == 0 ||
               strcmp(res->error_code, "InvalidDigest") == 0) {
        char path[1200];
        int v = pl_entry_path(p, e->id, ".dcm", path, sizeof path);
        if (v == 0)
            v = verify_sha(path, e->o.sha);
        if (v == ERR_MISMATCH || v == -ENOENT)
            drop_torn(e);
        else
            ent_retry(p, e, "s3_put", res, 0);
    } else {
        ent_retry(p, e, "s3_put", res, 0);
    }
    pl_pump(p);
}

static void on_stow(void *arg, const struct http_result *res, const struct mi_stow_result *out)
{
    struct op o;
    if (!pl_op_end(arg, res, PL_BUDGET_UPLOADS, &o))
        return;
    struct pipeline *p = o.p;
    struct ent *e = o.e;
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
        pl_scpy(e->err_type, sizeof e->err_type,
                res->error_code[0] ? res->error_code : "StowRejected");
        pl_scpy(e->err_msg, sizeof e->err_msg, res->message);
        e->step = E_FINAL;
    } else {
        ent_retry(p, e, "stow", res, 0);
    }
    pl_pump(p);
}

static int ddb_send(struct pipeline *p, cJSON *req, const char *op, struct op *o) /* takes req */
{
    return pl_ddb_send(p, op, req, on_ddb_entry, o);
}

/* An upload (S3 or STOW-RS) of o was sent (rc 0): it counts against max_uploads; else o goes. */
static int uploading(struct pipeline *p, struct op *o, int rc)
{
    if (rc == 0)
        p->uploads++;
    else
        free(o);
    return rc;
}

void pl_run_entry(struct pipeline *p, struct ent *e)
{
    uint64_t t = pl_now_ms();
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
        o = pl_op_new(p, e, NULL, 0, 0);
        rc = ddb_send(p, state_req_received(p->cfg->ddb.table, &e->o, e->o.redrive, now),
                      "PutItem", o);
        break;
    case E_DUPCHECK:
        if (p->ddb >= PL_MAX_DDB)
            return;
        o = pl_op_new(p, e, NULL, 0, 0);
        rc = ddb_send(p, state_req_get(p->cfg->ddb.table, e->o.sop, e->o.sha), "GetItem", o);
        break;
    case E_UPLOAD: {
        if (p->uploads >= p->cfg->max_uploads)
            return;
        char path[1200];
        struct stat st;
        if (pl_entry_path(p, e->id, ".dcm", path, sizeof path) < 0)
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
        o = pl_op_new(p, e, NULL, 0, 0);
        rc = o ? s3_upload_file(p->env.s3, p->cfg->s3.bucket, e->o.s3_key, path, 0, e->o.bytes,
                                e->o.sha, p->cfg->s3.multipart_threshold, p->cfg->s3.part_size,
                                on_upload, o)
               : ERR_NOMEM;
        rc = uploading(p, o, rc);
        break;
    }
    case E_TORN:
        if (p->ddb >= PL_MAX_DDB)
            return;
        o = pl_op_new(p, e, NULL, 0, 0);
        rc = ddb_send(p, state_req_torn(p->cfg->ddb.table, &e->o, now), "UpdateItem", o);
        break;
    case E_STORED: {
        if (p->ddb >= PL_MAX_DDB)
            return;
        o = pl_op_new(p, e, NULL, 0, 0);
        rc = ddb_send(p, state_req_advance(p->cfg->ddb.table, e->o.sop, e->o.sha, STATE_STORED,
                                           NULL, now),
                      "UpdateItem", o);
        break;
    }
    case E_STOW: {
        if (p->uploads >= p->cfg->max_uploads)
            return;
        char path[1200];
        if (pl_entry_path(p, e->id, ".dcm", path, sizeof path) < 0)
            return;
        o = pl_op_new(p, e, NULL, 0, 0);
        /* POST .../studies (action StoreDICOM), not .../studies/{uid} (StoreDICOMStudy): the
         * task policy grants the former */
        rc = o ? mi_store_dicom(p->env.mi, p->cfg->hi.datastore_id, NULL, path, 0, e->o.bytes,
                                on_stow, o)
               : ERR_NOMEM;
        rc = uploading(p, o, rc);
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
        o = pl_op_new(p, e, NULL, 0, 0);
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
