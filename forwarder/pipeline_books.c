/* pipeline: the books: batches and their members, the entries being worked on (a hash by spool
 * id), the ring of recently finished ones, the awaited acknowledgements, and the flush that
 * makes each loop pass's journal records durable before anything is released. */
#include "pipeline_int.h"

#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

struct pbatch *pl_batch_find(struct pipeline *p, const char *id)
{
    for (struct pbatch *b = p->batches; b; b = b->next) {
        if (strcmp(b->id, id) == 0)
            return b;
    }
    return NULL;
}

struct pbatch *pl_batch_add(struct pipeline *p, const char *id)
{
    struct pbatch *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    pl_scpy(b->id, sizeof b->id, id);
    b->fill.opened_ms = pl_now_ms();
    b->st = B_OPEN;
    struct pbatch **pp = &p->batches;
    while (*pp)
        pp = &(*pp)->next;
    *pp = b;
    return b;
}

void pl_batch_free(struct pipeline *p, struct pbatch *b)
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

struct member *pl_member_add(struct pbatch *b, const char *id, const char *sop,
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
    pl_scpy(m->id, sizeof m->id, id);
    pl_scpy(m->sop, sizeof m->sop, sop);
    pl_scpy(m->sha, sizeof m->sha, sha);
    m->bytes = bytes;
    m->is_primary = -1;
    b->fill.objects++;
    b->fill.bytes += bytes;
    b->pending++;
    return m;
}

struct member *pl_member_find(struct pbatch *b, const char *id)
{
    for (size_t i = b->n; i-- > 0;) {
        if (strcmp(b->m[i].id, id) == 0)
            return &b->m[i];
    }
    return NULL;
}

bool pl_batch_has_sop(const struct pbatch *b, const char *sop)
{
    for (size_t i = 0; i < b->n; i++) {
        if (!b->m[i].dropped && strcmp(b->m[i].sop, sop) == 0)
            return true;
    }
    return false;
}

int pl_batch_close(struct pipeline *p, struct pbatch *b)
{
    if (b->st != B_OPEN)
        return 0;
    TRY(pl_journal_put(p, pl_rec_id("close", "b", b->id)));
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

int pl_batch_open_new(struct pipeline *p)
{
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
        r = pl_rnd32(p);
    char id[BATCH_ID_MAX];
    TRY(batch_id_make(id, sizeof id, time(NULL), r));
    struct pbatch *b = pl_batch_add(p, id);
    if (!b)
        return ERR_NOMEM;
    p->open = b;
    return 0;
}

const struct batch_limits *pl_limits(const struct pipeline *p, struct batch_limits *l)
{
    l->max_objects = p->cfg->hi.batch_max_objects;
    l->max_bytes = p->cfg->hi.batch_max_bytes;
    l->max_age_ms = p->cfg->hi.batch_max_age_ms;
    return l;
}

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

struct ent *pl_ent_find(struct pipeline *p, const char *id)
{
    for (struct ent *e = p->hash[fnv(id) % ARRAY_LEN(p->hash)]; e; e = e->hnext) {
        if (strcmp(e->id, id) == 0)
            return e;
    }
    return NULL;
}

void pl_ent_insert(struct pipeline *p, struct ent *e)
{
    size_t h = fnv(e->id) % ARRAY_LEN(p->hash);
    e->hnext = p->hash[h];
    p->hash[h] = e;
    *p->ents_tail = e;
    p->ents_tail = &e->next;
    p->n_ents++;
}

void pl_ent_remove(struct pipeline *p, struct ent *e)
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
    free(e->got);
    free(e);
}

bool pl_done_lookup(const struct pipeline *p, const char *id, int *result, const char **refusal)
{
    for (size_t i = 0; i < PL_DONE_RING; i++) {
        if (p->done[i].id[0] && strcmp(p->done[i].id, id) == 0) {
            *result = p->done[i].result;
            *refusal = p->done[i].refusal;
            return true;
        }
    }
    return false;
}

void pl_done_note(struct pipeline *p, const char *id, int result, const char *refusal)
{
    struct done_rec *d = &p->done[p->done_next++ % PL_DONE_RING];
    pl_scpy(d->id, sizeof d->id, id);
    d->result = result;
    pl_scpy(d->refusal, sizeof d->refusal, refusal ? refusal : "");
}

/* Answer (and forget) everyone who awaits spool entry id. */
static void answer_awaiters(struct pipeline *p, const char *id, int result, const char *refusal)
{
    for (struct awaiter **pp = &p->awaiters; *pp;) {
        struct awaiter *a = *pp;
        if (strcmp(a->id, id) == 0) {
            *pp = a->next;
            if (p->env.acked)
                p->env.acked(p->env.acked_arg, a->token, result,
                             result < 0 && refusal && refusal[0] ? refusal : NULL);
            free(a);
        } else {
            pp = &a->next;
        }
    }
}

void pl_ack_reach(struct pipeline *p, struct ent *e, int result)
{
    if (e->ack_reached)
        return;
    e->ack_reached = true;
    e->ack_result = result;
    answer_awaiters(p, e->id, result, e->refusal);
}

void pl_ack_fail_waiters(struct pipeline *p, struct ent *e, int rc)
{
    answer_awaiters(p, e->id, rc < 0 ? rc : ERR_IO, NULL);
}

bool pl_awaited(const struct pipeline *p, const char *id)
{
    for (const struct awaiter *a = p->awaiters; a; a = a->next) {
        if (strcmp(a->id, id) == 0)
            return true;
    }
    return false;
}

void pl_flush(struct pipeline *p)
{
    bool any = false;
    for (struct ent *e = p->ents; e; e = e->next) {
        if (e->step == E_RELEASE) {
            cJSON *r = pl_rec_id(e->dup ? "dup" : "stored", "id", e->id);
            if (pl_journal_put(p, r) < 0) {
                pl_note_error(p, "journal", e->id, NULL, ERR_IO);
                return;
            }
            any = true;
        }
    }
    p->last_flush_ms = pl_now_ms();
    if (p->journal_dirty) {
        int rc = spool_journal_sync(p->journal);
        if (rc < 0) {
            pl_note_error(p, "journal_sync", "-", NULL, rc);
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
        spool_entry_release(p->env.spool, e->id, e->o.bytes);
        struct member *m = e->b ? pl_member_find(e->b, e->id) : NULL;
        if (m) {
            if (e->dup)
                m->dropped = true;
            else
                m->stored = true;
            if (e->b->pending > 0)
                e->b->pending--;
        }
        if (!e->ack_reached)
            pl_ack_reach(p, e, e->dup ? ERR_WRONG_STATE : 0);
        pl_done_note(p, e->id, e->ack_result, e->refusal);
        pl_ent_remove(p, e);
    }
    p->scan_wanted = true; /* room for more */
}
