/* pipeline: intake. The core's spool layout as the pipeline reads it (<spool>/ready/<id>.dcm
 * and its sidecar <id>.json, read through state_obj_from_sidecar), admitting entries into
 * batches (write-ahead: journaled before any request), dropping members whose entry vanished,
 * and the operator's re-drive requests (<spool>/forwarder/redrive/). */
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

#include "common/log.h"

void pl_layout(struct pipeline *p, const char *spool_dir, char *jpath, size_t cap)
{
    snprintf(p->ready_dir, sizeof p->ready_dir, "%s/ready", spool_dir);
    snprintf(p->own_dir, sizeof p->own_dir, "%s/forwarder", spool_dir);
    snprintf(p->redrive_dir, sizeof p->redrive_dir, "%s/redrive", p->own_dir);
    snprintf(p->failed_path, sizeof p->failed_path, "%s/failed.jsonl", p->own_dir);
    snprintf(p->status_path, sizeof p->status_path, "%s/status.json", p->own_dir);
    snprintf(jpath, cap, "%s/journal.jsonl", p->own_dir);
}

int pl_entry_path(const struct pipeline *p, const char *id, const char *ext, char *out,
                  size_t cap)
{
    int n = snprintf(out, cap, "%s/%s%s", p->ready_dir, id, ext);
    return n < 0 || (size_t)n >= cap ? ERR_LIMIT : 0;
}

void pl_s3_key_of(const struct pipeline *p, const char *batch, const char *sop, char *out,
                  size_t cap)
{
    snprintf(out, cap, "%s/%s/%s.dcm", p->cfg->s3.prefix, batch, sop);
}

static int json_filter(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 5 && n - 5 < SPOOL_ID_LEN && strcmp(d->d_name + n - 5, ".json") == 0;
}

char *pl_read_small(const char *path, size_t max, size_t *len)
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
    if (pl_ent_find(p, id) || pl_done_lookup(p, id, &dummy))
        return 1;
    if (p->n_ents >= PL_MAX_ENTRIES && !pl_awaited(p, id))
        return 1; /* a backlog waits in ready/; an object a modality waits for goes first */
    char path[1200];
    size_t slen = 0;
    char *side = pl_entry_path(p, id, ".json", path, sizeof path) == 0
                     ? pl_read_small(path, 64u * 1024u, &slen)
                     : NULL;
    if (!side && errno == ENOENT)
        return 1; /* not (yet, or any more) in ready/ */
    struct ent *e = calloc(1, sizeof *e);
    if (!e) {
        free(side);
        return ERR_NOMEM;
    }
    pl_scpy(e->id, sizeof e->id, id);
    int rc = side ? state_obj_from_sidecar(side, slen, &e->o) : ERR_MALFORMED;
    free(side);
    if (rc < 0) {
        /* left in ready/ for an operator; never deleted unread */
        pl_note_error(p, "sidecar", id, NULL, rc);
        pl_done_note(p, id, ERR_MALFORMED);
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
        char d[1200];
        if (pl_entry_path(p, id, ".dcm", d, sizeof d) == 0)
            unlink(d);
        unlink(path);
        if (p->env.spool_depth)
            atomic_fetch_sub(p->env.spool_depth, 1);
        if (p->env.spool_bytes)
            atomic_fetch_sub(p->env.spool_bytes, (int64_t)e->o.bytes);
        pl_done_note(p, id, 0);
        free(e);
        return 0;
    }
    if (m) {
        e->b = owner;
        e->journaled = true; /* its assign was replayed from the journal */
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

void pl_scan(struct pipeline *p)
{
    p->scan_wanted = false;
    p->last_scan_ms = pl_now_ms();
    struct dirent **names = NULL;
    int n = scandir(p->ready_dir, &names, json_filter, alphasort);
    if (n < 0) {
        pl_note_error(p, "scan", p->ready_dir, NULL, -errno);
        return;
    }
    int rc = 0;
    for (int i = 0; i < n && rc >= 0; i++) {
        char id[SPOOL_ID_LEN];
        size_t len = strlen(names[i]->d_name) - 5;
        memcpy(id, names[i]->d_name, len);
        id[len] = '\0';
        rc = pl_admit(p, id);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc >= 0)
        reconcile_missing(p);
    pl_flush(p); /* the new assign records durable before any request for them */
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
    char *text = pl_read_small(path, 64u * 1024u, &len);
    cJSON *r = text ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
    const cJSON *sop = cJSON_GetObjectItemCaseSensitive(r, "sop");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(r, "sha");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(r, "key");
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(r, "bytes");
    int rc = ERR_MALFORMED;
    if (cJSON_IsString(sop) && cJSON_IsString(sha) && cJSON_IsString(key) &&
        strlen(sop->valuestring) <= 64 && state_sha_valid(sha->valuestring) &&
        redrive_key_ok(p, key->valuestring, sop->valuestring)) {
        uint32_t rnd = 0;
        if (RAND_bytes((unsigned char *)&rnd, sizeof rnd) != 1)
            rnd = pl_rnd32(p);
        char id[BATCH_ID_MAX];
        struct pbatch *b = NULL;
        struct member *m = NULL;
        rc = batch_id_make(id, sizeof id, time(NULL), rnd);
        if (rc == 0 && !(b = pl_batch_add(p, id)))
            rc = ERR_NOMEM;
        if (rc == 0 &&
            !(m = pl_member_add(b, "-", sop->valuestring, sha->valuestring,
                                cJSON_IsNumber(bytes) ? (uint64_t)bytes->valuedouble : 0)))
            rc = ERR_NOMEM;
        if (rc == 0) {
            m->stored = true;
            b->pending = 0;
            pl_scpy(b->input_key, sizeof b->input_key, key->valuestring);
            b->st = B_REDRIVE;
            rc = pl_journal_put(p, pl_rec_rbatch(b));
            if (rc == 0)
                rc = pipeline_journal_sync(p->journal);
        }
        if (rc < 0 && b)
            pl_batch_free(p, b);
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
