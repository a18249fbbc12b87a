/* pipeline: what the journal holds. Each choice (an entry's batch and key, a batch closed, a
 * job started, an entry released) is a JSON record appended before it is acted on; after a
 * crash the replay rebuilds the books from them and the compaction rewrites the file with the
 * live state only. The file itself (append, sync, replay, compaction) is the spool library's spool_journal. */
#include "pipeline_int.h"

#include <stdlib.h>
#include <string.h>

static cJSON *rec_new(const char *t)
{
    cJSON *r = cJSON_CreateObject();
    if (r && !cJSON_AddStringToObject(r, "t", t)) {
        cJSON_Delete(r);
        r = NULL;
    }
    return r;
}

int pl_journal_put(struct pipeline *p, cJSON *r) /* takes r */
{
    if (!r)
        return ERR_NOMEM;
    int rc = spool_journal_append(p->journal, r);
    cJSON_Delete(r);
    if (rc == 0)
        p->journal_dirty = true;
    return rc;
}

cJSON *pl_rec_assign(const struct member *m, const char *batch, bool redrive)
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

cJSON *pl_rec_rbatch(const struct pbatch *b)
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

cJSON *pl_rec_id(const char *t, const char *key, const char *val)
{
    cJSON *r = rec_new(t);
    if (r && !cJSON_AddStringToObject(r, key, val)) {
        cJSON_Delete(r);
        r = NULL;
    }
    return r;
}

int pl_replay(void *arg, const cJSON *rec)
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
    if (id && strlen(id) >= SPOOL_ID_MAX)
        return 0;
    if (strcmp(t->valuestring, "assign") == 0 && bid && id) {
        const cJSON *sop = cJSON_GetObjectItemCaseSensitive(rec, "sop");
        const cJSON *sha = cJSON_GetObjectItemCaseSensitive(rec, "sha");
        const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(rec, "bytes");
        if (!cJSON_IsString(sop) || !cJSON_IsString(sha) || !cJSON_IsNumber(bytes) ||
            strlen(sop->valuestring) > 64 || strlen(sha->valuestring) != 64)
            return 0;
        struct pbatch *b = pl_batch_find(p, bid);
        if (!b && !(b = pl_batch_add(p, bid)))
            return ERR_NOMEM;
        if (!pl_member_add(b, id, sop->valuestring, sha->valuestring,
                           (uint64_t)bytes->valuedouble))
            return ERR_NOMEM;
    } else if ((strcmp(t->valuestring, "stored") == 0 || strcmp(t->valuestring, "dup") == 0) &&
               id) {
        for (struct pbatch *b = p->batches; b; b = b->next) {
            struct member *m = pl_member_find(b, id);
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
        struct pbatch *b = pl_batch_find(p, bid);
        if (b)
            return 0;
        if (!(b = pl_batch_add(p, bid)))
            return ERR_NOMEM;
        struct member *m = pl_member_add(b, "-", sop->valuestring, sha->valuestring,
                                         (uint64_t)bytes->valuedouble);
        if (!m)
            return ERR_NOMEM;
        m->stored = true;
        b->pending = 0;
        pl_scpy(b->input_key, sizeof b->input_key, key->valuestring);
        b->st = B_REDRIVE;
    } else if (strcmp(t->valuestring, "close") == 0 && bid) {
        struct pbatch *b = pl_batch_find(p, bid);
        if (b && b->st == B_OPEN)
            b->st = B_CLOSED;
    } else if (strcmp(t->valuestring, "job") == 0 && bid) {
        struct pbatch *b = pl_batch_find(p, bid);
        const cJSON *job = cJSON_GetObjectItemCaseSensitive(rec, "job");
        if (b && cJSON_IsString(job) && strlen(job->valuestring) < sizeof b->job_id) {
            pl_scpy(b->job_id, sizeof b->job_id, job->valuestring);
            b->st = B_SUBMITTED;
        }
    } else if (strcmp(t->valuestring, "done") == 0 && bid) {
        struct pbatch *b = pl_batch_find(p, bid);
        if (b)
            pl_batch_free(p, b);
    }
    return 0;
}

/* After replay: every batch left open by the previous run closes now (its members keep their
 * keys); the journal is rewritten with the live state only. */
int pl_compact(struct pipeline *p)
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
            recs[n] = pl_rec_rbatch(b);
            if (!recs[n++])
                rc = ERR_NOMEM;
        }
        for (size_t i = 0; i < b->n && rc == 0 && !b->input_key[0]; i++) {
            struct member *m = &b->m[i];
            if (m->dropped)
                continue;
            recs[n] = pl_rec_assign(m, b->id, false);
            if (!recs[n++])
                rc = ERR_NOMEM;
            if (m->stored && rc == 0) {
                recs[n] = pl_rec_id("stored", "id", m->id);
                if (!recs[n++])
                    rc = ERR_NOMEM;
            }
        }
        if (rc == 0) {
            recs[n] = pl_rec_id("close", "b", b->id);
            if (!recs[n++])
                rc = ERR_NOMEM;
        }
        if (rc == 0 && b->job_id[0]) {
            recs[n] = pl_rec_id("job", "b", b->id);
            if (!recs[n] || !cJSON_AddStringToObject(recs[n], "job", b->job_id))
                rc = ERR_NOMEM;
            n++;
        }
    }
    if (rc == 0)
        rc = spool_journal_compact(p->journal, recs, n);
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
