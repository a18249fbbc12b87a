/* pipeline: an entry's steps. The normal path is one DynamoDB write: the claim (the item as
 * RECEIVED, conditional), then the S3 upload, then the release at the next flush (mode "stow":
 * StoreDICOM and the final state after the upload). A claim that fails reads the item back and
 * state_dup_decide says what this copy does: drop it (a duplicate), wait for the owner's copy,
 * send it again (a resend of a FAILED object), or take the item over (a torn copy gave it up).
 * docs/forwarder.md has the crash analysis. */
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

static bool s3_step(enum ent_step s)
{
    return s == E_UPLOAD || s == E_STOW || s == E_PROBE || s == E_TORN_PROBE;
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
        uint64_t *hold = s3_step(e->step) ? &p->hold_s3 : &p->hold_ddb;
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

static enum state_ack_point ack_point(const struct pipeline *p)
{
    return p->env.ack == PIPELINE_ACK_HI ? STATE_ACK_HI :
           p->env.ack == PIPELINE_ACK_S3 ? STATE_ACK_S3 : STATE_ACK_SPOOL;
}

static void log_dup(const struct ent *e, const char *ev, const char *action)
{
    struct logb lb;
    if (log_begin(&lb, LOG_INFO, ev)) {
        log_str(&lb, "id", e->id);
        log_str(&lb, "sop_instance_uid", e->o.sop);
        log_str(&lb, "sha256", e->o.sha);
        log_str(&lb, "owner_batch", e->got->batch);
        log_str(&lb, "owner_state", state_inst_name(e->got->state));
        if (action)
            log_str(&lb, "action", action);
        log_end(&lb);
    }
}

/* This copy is dropped: the item's owner stands for it at the ack point. */
static void drop_dup(struct pipeline *p, struct ent *e)
{
    log_dup(e, "duplicate_dropped", NULL);
    p->st.duplicates++;
    metric_inc(p->m.dups);
    pl_ack_reach(p, e, 0);
    e->dup = true;
    release_entry(p, e);
}

/* The owner's copy is not at this copy's ack point yet: look again later. The modality is not
 * answered here: its await runs out (0xA700) if the owner takes too long. */
static void dup_wait(struct pipeline *p, struct ent *e)
{
    e->step = E_DUPCHECK;
    uint64_t d = 250u << (e->waits < 5 ? e->waits : 5);
    if (d > p->cfg->retry_max_ms)
        d = p->cfg->retry_max_ms;
    e->next_ms = pl_now_ms() + d;
    e->waits++;
}

/* A replay of this batch's own item that went on before the crash: done. */
static void own_done(struct pipeline *p, struct ent *e)
{
    if (e->got->state == STATE_FAILED && p->env.ack == PIPELINE_ACK_HI) {
        state_refusal_comment(e->refusal, e->got->error_type, -1);
        pl_ack_reach(p, e, ERR_IO);
    } else {
        pl_ack_reach(p, e, 0);
    }
    release_entry(p, e);
}

/* A resend of a FAILED object: a new attempt through the current mode. Its bytes are already
 * in S3 (the item's key): stow sends this copy to StoreDICOM and answers by the outcome; import
 * re-imports the S3 object (a re-drive), and this copy is done at the s3 point. */
static void reattempt(struct pipeline *p, struct ent *e)
{
    log_dup(e, "resend_of_failed", p->cfg->hi.mode == PIPELINE_MODE_STOW ? "stow" : "reimport");
    if (p->env.ack == PIPELINE_ACK_S3)
        pl_ack_reach(p, e, 0); /* its archive copy is in S3 */
    e->attempts = 0;
    e->dup = true; /* not one of its batch's objects: its bytes live at the item's key */
    if (p->cfg->hi.mode == PIPELINE_MODE_STOW) {
        e->reattempt = true;
        e->step = E_STOW;
    } else {
        e->step = E_REIMPORT;
    }
}

static void decide(struct pipeline *p, struct ent *e, int in_s3)
{
    struct state_dup_in in = {.got = e->got,
                              .own = strcmp(e->got->batch, e->o.batch) == 0,
                              .in_s3 = in_s3,
                              .ack = ack_point(p),
                              .stow = p->cfg->hi.mode == PIPELINE_MODE_STOW};
    switch (state_dup_decide(&in)) {
    case STATE_DUP_CLAIM:
        if (e->got->found && strcmp(e->got->batch, STATE_TORN_BATCH) == 0)
            log_dup(e, "duplicate_takes_over", NULL);
        e->step = E_RECEIVE;
        break;
    case STATE_DUP_PROBE:
        e->step = E_PROBE;
        break;
    case STATE_DUP_WAIT:
        dup_wait(p, e);
        break;
    case STATE_DUP_DROP:
        drop_dup(p, e);
        break;
    case STATE_DUP_REATTEMPT:
        reattempt(p, e);
        break;
    case STATE_DUP_OWN_STOW:
        if (p->env.ack == PIPELINE_ACK_S3)
            pl_ack_reach(p, e, 0);
        e->step = E_STOW;
        e->attempts = 0;
        break;
    case STATE_DUP_OWN_DONE:
        own_done(p, e);
        break;
    }
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
 * left it, and it was never acknowledged (the core acknowledges only after the flush). An
 * earlier attempt may have put the good bytes in S3 before the crash (the spool's flush came
 * after): S3 is asked first. */
static void drop_torn(struct ent *e)
{
    e->step = E_TORN_PROBE;
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

/* The object is in S3 at e's key (this attempt's PUT, or an earlier one). */
static void uploaded(struct pipeline *p, struct ent *e)
{
    if (p->env.ack == PIPELINE_ACK_S3)
        pl_ack_reach(p, e, 0);
    e->attempts = 0;
    if (p->cfg->hi.mode == PIPELINE_MODE_STOW)
        e->step = E_STOW;
    else
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
        if (res->err != 0) {
            ent_retry(p, e, "ddb_get", res, 0);
            break;
        }
        if (!e->got && !(e->got = malloc(sizeof *e->got))) {
            ent_retry(p, e, "ddb_get", NULL, ERR_NOMEM);
            break;
        }
        state_got_from(out, e->got);
        decide(p, e, -1);
        break;
    case E_TORN:
        if (res->err == 0 || res->err == HTTP_ERR_CONDITION)
            torn_release(p, e); /* given up, or it was never this copy's */
        else
            ent_retry(p, e, "ddb_torn", res, 0);
        break;
    case E_FINAL:
        if (res->err == 0 || res->err == HTTP_ERR_CONDITION) {
            /* answered by this attempt's outcome (a condition that failed: another attempt
             * of the same bytes finished first, or a replay) */
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
        uploaded(p, e);
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

static void on_head(void *arg, const struct http_result *res, bool found)
{
    struct op o;
    if (!pl_op_end(arg, res, PL_BUDGET_UPLOADS, &o))
        return;
    struct pipeline *p = o.p;
    struct ent *e = o.e;
    if (res->err != 0) {
        ent_retry(p, e, e->step == E_PROBE ? "s3_probe" : "s3_torn_probe", res, 0);
    } else if (e->step == E_PROBE) {
        p->hold_s3 = 0;
        decide(p, e, found ? 1 : 0);
    } else if (found) {
        /* the good bytes reached S3 before the crash that tore the spool copy */
        p->hold_s3 = 0;
        uploaded(p, e);
    } else {
        p->hold_s3 = 0;
        e->step = E_TORN; /* give its RECEIVED item up, so that the resend can take it over */
        e->attempts = 0;
    }
    pl_pump(p);
}

/* FailedSOPSequence (reason >= 0) or a refusal of the whole request (type): the instance is
 * FAILED; a permanent reason is told to the modality as such (it should not send it again). */
static void stow_failed(struct ent *e, int reason, const char *type, const char *msg)
{
    e->stow_ok = false;
    if (reason >= 0) {
        snprintf(e->err_type, sizeof e->err_type, "StowFailure");
        snprintf(e->err_msg, sizeof e->err_msg, "FailureReason 0x%04x", (unsigned)reason);
    } else {
        pl_scpy(e->err_type, sizeof e->err_type, type);
        pl_scpy(e->err_msg, sizeof e->err_msg, msg);
    }
    state_refusal_comment(e->refusal, type, reason);
    e->step = E_FINAL;
    e->attempts = 0;
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
    uint16_t reason = in && in->failure_reason >= 0 ? (uint16_t)in->failure_reason : 0x0110;
    if (in && in->stored) {
        e->stow_ok = true;
        e->step = E_FINAL;
        e->attempts = 0;
    } else if (in && state_stow_reason_permanent(reason)) {
        stow_failed(e, reason, NULL, NULL);
    } else if (in) {
        /* Out of Resources at HealthImaging: a passing trouble, tried again */
        char m[64];
        snprintf(m, sizeof m, "FailureReason 0x%04x", (unsigned)reason);
        struct http_result r2 = *res;
        pl_scpy(r2.error_code, sizeof r2.error_code, "StowFailure");
        pl_scpy(r2.message, sizeof r2.message, m);
        ent_retry(p, e, "stow", &r2, 0);
    } else if (res->err == HTTP_ERR_STATUS && res->status >= 400 && res->status < 500 &&
               res->status != 429 && res->status != 403 && res->status != 408) {
        /* refused as a whole (not throttling, not auth): the object itself is at fault */
        stow_failed(e, -1, res->error_code[0] ? res->error_code : "StowRejected", res->message);
    } else {
        ent_retry(p, e, "stow", res, 0);
    }
    pl_pump(p);
}

static int ddb_send(struct pipeline *p, cJSON *req, const char *op, struct op *o) /* takes req */
{
    return pl_ddb_send(p, op, req, on_ddb_entry, o);
}

/* An S3 or STOW-RS request of o was sent (rc 0): it counts against max_uploads; else o goes. */
static int uploading(struct pipeline *p, struct op *o, int rc)
{
    if (rc == 0)
        p->uploads++;
    else
        free(o);
    return rc;
}

/* S3 requests of an upload of n bytes: one PUT, or a multipart upload's parts and two more. */
static uint64_t s3_requests_of(const struct pipeline *p, uint64_t n)
{
    uint64_t part = p->cfg->s3.part_size < S3_MIN_PART ? S3_MIN_PART : p->cfg->s3.part_size;
    if (n < p->cfg->s3.multipart_threshold || n == 0)
        return 1;
    uint64_t parts = (n + part - 1) / part;
    while (parts > S3_MAX_PARTS) {
        part *= 2;
        parts = (n + part - 1) / part;
    }
    return parts + 2;
}

/* E_UPLOAD: the spool file checked as far as needed, then PUT (or multipart). 1 when the entry
 * moved to another step instead, 0 sent, < 0 not sent. */
static int run_upload(struct pipeline *p, struct ent *e)
{
    char path[1200];
    struct stat st;
    if (pl_entry_path(p, e->id, ".dcm", path, sizeof path) < 0)
        return ERR_LIMIT;
    if (stat(path, &st) < 0 || (uint64_t)st.st_size != e->o.bytes) {
        drop_torn(e);
        return 1;
    }
    bool crc_end_to_end = p->cfg->s3.checksum == PIPELINE_CHECKSUM_CRC64NVME && e->o.crc64[0];
    if (!e->sha_checked && !crc_end_to_end && e->o.bytes >= p->cfg->s3.multipart_threshold) {
        /* a multipart upload's checksum is built from the parts as read, so S3 cannot hold it
         * against the sidecar's SHA-256: check the file here, once (in CRC-64/NVME mode the
         * received bytes' CRC is the full object's checksum, which the parts must combine into
         * and S3 checks: no pass over the file needed) */
        int v = verify_sha(path, e->o.sha);
        if (v == ERR_MISMATCH || v == -ENOENT) {
            drop_torn(e);
            return 1;
        }
        if (v < 0) {
            ent_retry(p, e, "verify", NULL, v);
            return 1;
        }
        e->sha_checked = true;
    }
    struct op *o = pl_op_new(p, e, NULL, 0, 0);
    struct s3_sums sums = {.sha256_hex = e->o.sha, .crc64nvme_hex = e->o.crc64};
    int rc = o ? s3_upload_file(p->env.s3, p->cfg->s3.bucket, e->o.s3_key, path, 0, e->o.bytes,
                                &sums, p->cfg->s3.multipart_threshold, p->cfg->s3.part_size,
                                on_upload, o)
               : ERR_NOMEM;
    if (rc == 0)
        p->st.s3_requests += s3_requests_of(p, e->o.bytes);
    return uploading(p, o, rc);
}

static int run_final(struct pipeline *p, struct ent *e, const char *now)
{
    struct state_extra x = {.is_primary = -1};
    if (!e->stow_ok) {
        x.error_type = e->err_type;
        x.error_message = e->err_msg;
    }
    cJSON *req = e->reattempt
                     ? state_req_reattempt(p->cfg->ddb.table, e->o.sop, e->o.sha, e->stow_ok, &x,
                                           now)
                     : state_req_advance(p->cfg->ddb.table, e->o.sop, e->o.sha,
                                         e->stow_ok ? STATE_IMPORTED : STATE_FAILED, &x, now);
    return ddb_send(p, req, "UpdateItem", pl_op_new(p, e, NULL, 0, 0));
}

void pl_run_entry(struct pipeline *p, struct ent *e)
{
    uint64_t t = pl_now_ms();
    if (t < (s3_step(e->step) ? p->hold_s3 : p->hold_ddb))
        return;
    bool ddb_step = !s3_step(e->step) && e->step != E_REIMPORT && e->step != E_RELEASE;
    if (ddb_step && p->ddb >= PL_MAX_DDB)
        return;
    if (s3_step(e->step) && p->uploads >= p->cfg->max_uploads)
        return;
    char now[40];
    state_now_iso(now);
    const char *tbl = p->cfg->ddb.table;
    int rc = 0;
    switch (e->step) {
    case E_RECEIVE:
        rc = ddb_send(p,
                      state_req_received(tbl, &e->o,
                                         e->o.redrive ? STATE_CLAIM_REDRIVE :
                                         e->got || e->replayed ? STATE_CLAIM_TAKEOVER :
                                                                 STATE_CLAIM_NEW,
                                         now),
                      "PutItem", pl_op_new(p, e, NULL, 0, 0));
        break;
    case E_DUPCHECK:
        rc = ddb_send(p, state_req_get(tbl, e->o.sop, e->o.sha), "GetItem",
                      pl_op_new(p, e, NULL, 0, 0));
        break;
    case E_PROBE:
    case E_TORN_PROBE: {
        const char *key = e->step == E_PROBE && e->got ? e->got->s3_key : e->o.s3_key;
        struct op *o = pl_op_new(p, e, NULL, 0, 0);
        rc = o ? s3_head_object(p->env.s3, p->cfg->s3.bucket, key, on_head, o) : ERR_NOMEM;
        p->st.s3_requests += rc == 0;
        rc = uploading(p, o, rc);
        break;
    }
    case E_UPLOAD:
        rc = run_upload(p, e);
        if (rc > 0)
            return;
        break;
    case E_TORN:
        rc = ddb_send(p, state_req_torn(tbl, &e->o, now), "UpdateItem",
                      pl_op_new(p, e, NULL, 0, 0));
        break;
    case E_STOW: {
        char path[1200];
        if (pl_entry_path(p, e->id, ".dcm", path, sizeof path) < 0)
            return;
        struct op *o = pl_op_new(p, e, NULL, 0, 0);
        /* POST .../studies (action StoreDICOM), not .../studies/{uid} (StoreDICOMStudy): the
         * task policy grants the former */
        rc = o ? mi_store_dicom(p->env.mi, p->cfg->hi.datastore_id, NULL, path, 0, e->o.bytes,
                                on_stow, o)
               : ERR_NOMEM;
        rc = uploading(p, o, rc);
        break;
    }
    case E_FINAL:
        rc = run_final(p, e, now);
        break;
    case E_REIMPORT:
        if (!e->got || !pl_redrive_key_ok(p, e->got->s3_key, e->o.sop)) {
            /* an item whose key is not one of ours (or none): nothing to re-import */
            pl_note_error(p, "reimport", e->id, NULL, ERR_MALFORMED);
            release_entry(p, e);
            return;
        }
        rc = pl_redrive_start(p, e->o.sop, e->o.sha, e->got->s3_key, e->o.bytes);
        if (rc >= 0) {
            release_entry(p, e);
            return;
        }
        break;
    case E_RELEASE:
        return; /* at the next flush */
    }
    if (rc < 0) {
        ent_retry(p, e, "send", NULL, rc);
        return;
    }
    e->busy = true;
}
