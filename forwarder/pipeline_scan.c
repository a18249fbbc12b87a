/* pipeline: intake. Ready spool entries, read through the spool library (spool/spool.h, its
 * sidecars through spool_sidecar.h), are admitted into batches (write-ahead: journaled before
 * any request); members whose entry vanished are dropped; the operator's re-drive requests
 * (<spool>/forwarder/redrive/) are taken. */
#include "pipeline_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"

int pl_layout(struct pipeline *p, char *jpath, size_t cap)
{
    TRY(spool_area_dir(p->env.spool, "forwarder", p->own_dir, sizeof p->own_dir));
    snprintf(p->redrive_dir, sizeof p->redrive_dir, "%s/redrive", p->own_dir);
    snprintf(p->failed_path, sizeof p->failed_path, "%s/failed.jsonl", p->own_dir);
    snprintf(p->status_path, sizeof p->status_path, "%s/status.json", p->own_dir);
    snprintf(jpath, cap, "%s/journal.jsonl", p->own_dir);
    return 0;
}

int pl_entry_path(const struct pipeline *p, const char *id, const char *ext, char *out,
                  size_t cap)
{
    return spool_path(p->env.spool, "ready", id, ext, out, cap);
}

void pl_s3_key_of(const struct pipeline *p, const char *batch, const char *sop, char *out,
                  size_t cap)
{
    snprintf(out, cap, "%s/%s/%s.dcm", p->cfg->s3.prefix, batch, sop);
}

/* Put a new entry into a batch (write-ahead: journaled before any request). */
static int assign(struct pipeline *p, struct ent *e)
{
    struct batch_limits l;
    pl_limits(p, &l);
    if (p->open && (!batch_accepts(&p->open->fill, &l, e->o.bytes) ||
                    pl_batch_has_sop(p->open, e->o.sop)))
        TRY(pl_batch_close(p, p->open));
    if (!p->open)
        TRY(pl_batch_open_new(p));
    struct pbatch *b = p->open;
    struct member *m = pl_member_add(b, e->id, e->o.sop, e->o.sha, e->o.bytes);
    if (!m)
        return ERR_NOMEM;
    int rc = pl_journal_put(p, pl_rec_assign(m, b->id, e->o.redrive));
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

/* Take spool entry id into the pipeline. 0 taken (or finished off), 1 skipped (known, over the
 * cap, or unusable: left for an operator), < 0 a journal failure: stop for now. */
int pl_admit(struct pipeline *p, const char *id)
{
    int dummy;
    const char *why;
    if (pl_ent_find(p, id) || pl_done_lookup(p, id, &dummy, &why))
        return 1;
    if (p->n_ents >= PL_MAX_ENTRIES && !pl_awaited(p, id))
        return 1; /* a backlog waits in ready/; an object a modality waits for goes first */
    char path[SPOOL_PATH_MAX];
    struct spool_sidecar sc;
    int rc = pl_entry_path(p, id, ".json", path, sizeof path);
    if (rc == 0)
        rc = spool_sidecar_load(path, &sc);
    if (rc == -ENOENT)
        return 1; /* not (yet, or any more) in ready/ */
    struct ent *e = calloc(1, sizeof *e);
    if (!e)
        return ERR_NOMEM;
    pl_scpy(e->id, sizeof e->id, id);
    if (rc == 0)
        state_obj_from_spool(&sc, &e->o);
    if (rc < 0) {
        /* left in ready/ for an operator; never deleted unread */
        pl_note_error(p, "sidecar", id, NULL, rc);
        pl_done_note(p, id, ERR_MALFORMED, NULL);
        free(e);
        return 1;
    }
    /* assigned before a crash? the journal replay put it in its batch */
    struct pbatch *owner = NULL;
    struct member *m = NULL;
    for (struct pbatch *b = p->batches; b && !m; b = b->next) {
        m = pl_member_find(b, id);
        owner = b;
    }
    if (m && (m->stored || m->dropped)) {
        /* released before the crash but not unlinked: finish that */
        spool_entry_release(p->env.spool, id, e->o.bytes);
        pl_done_note(p, id, 0, NULL);
        free(e);
        return 0;
    }
    if (m) {
        e->b = owner;
        e->journaled = true; /* its assign was replayed from the journal */
        e->replayed = true;  /* its claim may have been written: claim with the takeover */
    } else if ((rc = assign(p, e)) < 0) {
        pl_note_error(p, "journal", id, NULL, rc);
        free(e);
        return rc;
    }
    pl_scpy(e->o.batch, sizeof e->o.batch, e->b->id);
    pl_s3_key_of(p, e->b->id, e->o.sop, e->o.s3_key, sizeof e->o.s3_key);
    e->step = E_RECEIVE;
    pl_ent_insert(p, e);
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
            if (m->stored || m->dropped || pl_ent_find(p, m->id) ||
                pl_entry_path(p, m->id, ".json", path, sizeof path) < 0 ||
                stat(path, &st) == 0 || errno != ENOENT)
                continue;
            if (pl_journal_put(p, pl_rec_id("dup", "id", m->id)) < 0)
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

struct scan_job {
    struct pipeline *p;
    int admit_rc; /* the last pl_admit's: < 0 stopped the walk */
};

static int admit_one(void *arg, const char *id)
{
    struct scan_job *j = arg;
    j->admit_rc = pl_admit(j->p, id);
    return j->admit_rc < 0 ? j->admit_rc : 0;
}

void pl_scan(struct pipeline *p)
{
    p->scan_wanted = false;
    p->last_scan_ms = pl_now_ms();
    struct scan_job j = {.p = p};
    int rc = spool_ready_each(p->env.spool, admit_one, &j);
    if (rc < 0 && j.admit_rc >= 0) { /* ready/ itself could not be read */
        pl_note_error(p, "scan", p->env.spool->ready_dir, NULL, rc);
        return;
    }
    if (rc >= 0)
        reconcile_missing(p);
    pl_flush(p); /* the new assign records durable before any request for them */
}

/* The key a request names must be one of ours: <prefix>/<batch>/<SOP>.dcm. */
bool pl_redrive_key_ok(const struct pipeline *p, const char *key, const char *sop)
{
    size_t pl = strlen(p->cfg->s3.prefix), kl = strlen(key), sl = strlen(sop);
    if (kl >= 600 || kl < pl + 1 + sl + 5 || strncmp(key, p->cfg->s3.prefix, pl) != 0 ||
        key[pl] != '/')
        return false;
    const char *tail = key + kl - sl - 5;
    return tail[0] == '/' && strncmp(tail + 1, sop, sl) == 0 && strcmp(tail + 1 + sl, ".dcm") == 0;
}

int pl_redrive_start(struct pipeline *p, const char *sop, const char *sha, const char *key,
                     uint64_t bytes)
{
    for (struct pbatch *b = p->batches; b; b = b->next) {
        if (b->input_key[0] && b->n == 1 && strcmp(b->m[0].sop, sop) == 0 &&
            strcmp(b->m[0].sha, sha) == 0 && b->st != B_DONE)
            return 1; /* one re-import of an object at a time */
    }
    uint32_t rnd = 0;
    if (RAND_bytes((unsigned char *)&rnd, sizeof rnd) != 1)
        rnd = pl_rnd32(p);
    char id[BATCH_ID_MAX];
    struct pbatch *b = NULL;
    struct member *m = NULL;
    int rc = batch_id_make(id, sizeof id, time(NULL), rnd);
    if (rc == 0 && !(b = pl_batch_add(p, id)))
        rc = ERR_NOMEM;
    if (rc == 0 && !(m = pl_member_add(b, "-", sop, sha, bytes)))
        rc = ERR_NOMEM;
    if (rc == 0) {
        m->stored = true;
        b->pending = 0;
        pl_scpy(b->input_key, sizeof b->input_key, key);
        b->st = B_REDRIVE;
        rc = pl_journal_put(p, pl_rec_rbatch(b));
        if (rc == 0)
            rc = spool_journal_sync(p->journal);
    }
    if (rc < 0 && b)
        pl_batch_free(p, b);
    struct logb lb;
    if (rc == 0 && log_begin(&lb, LOG_INFO, "redrive_started")) {
        log_str(&lb, "sop_instance_uid", sop);
        log_str(&lb, "key", key);
        log_str(&lb, "batch", id);
        log_end(&lb);
    }
    return rc;
}

static int redrive_one(struct pipeline *p, const char *path)
{
    size_t len = 0;
    char *text = NULL;
    if (fileio_read_small(path, 64u * 1024u, &text, &len) < 0)
        text = NULL;
    cJSON *r = text ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
    const cJSON *sop = cJSON_GetObjectItemCaseSensitive(r, "sop");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(r, "sha");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(r, "key");
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(r, "bytes");
    int rc = ERR_MALFORMED;
    if (cJSON_IsString(sop) && cJSON_IsString(sha) && cJSON_IsString(key) &&
        strlen(sop->valuestring) <= 64 && state_sha_valid(sha->valuestring) &&
        pl_redrive_key_ok(p, key->valuestring, sop->valuestring)) {
        rc = pl_redrive_start(p, sop->valuestring, sha->valuestring, key->valuestring,
                              cJSON_IsNumber(bytes) ? (uint64_t)bytes->valuedouble : 0);
        if (rc > 0)
            rc = 0; /* already under way */
    }
    cJSON_Delete(r);
    if (rc == ERR_MALFORMED)
        pl_note_error(p, "redrive_request", path, NULL, rc);
    if (rc == 0 || rc == ERR_MALFORMED)
        unlink(path); /* taken (journaled), or unusable */
    return rc;
}

void pl_take_redrives(struct pipeline *p)
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
