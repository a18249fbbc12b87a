/* The file backend's answers to Storage Commitment (spool/backend_commit.h): an index, SOP
 * Instance UID -> the copies the backend has seen (content hash, SOP class, receipt time,
 * state: SPOOL when its step takes the entry, STORED once the journal records it in the store).
 * The backend thread writes it (journal replay, each step), the core's loop reads it; one mutex.
 * It holds one slot per instance the journal knows (about 250 bytes each). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "file_backend_int.h"
#include "spool/commit_rec.h"

struct slot {
    char sop[65];
    size_t n;
    struct backend_copy *copies; /* newest first */
};

struct file_commit_index {
    pthread_mutex_t mu;
    struct slot *slots; /* open addressing; sop[0] == 0: empty */
    size_t cap, n;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static struct slot *find(struct file_commit_index *ix, const char *sop, bool add)
{
    if (ix->cap == 0 && !add)
        return NULL;
    if (add && (ix->n + 1) * 4 > ix->cap * 3) { /* grow at 75% */
        size_t ncap = ix->cap ? ix->cap * 2 : 1024;
        struct slot *ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return NULL;
        for (size_t i = 0; i < ix->cap; i++) {
            if (!ix->slots[i].sop[0])
                continue;
            size_t j = hash(ix->slots[i].sop) & (ncap - 1);
            while (ns[j].sop[0])
                j = (j + 1) & (ncap - 1);
            ns[j] = ix->slots[i];
        }
        free(ix->slots);
        ix->slots = ns;
        ix->cap = ncap;
    }
    size_t j = hash(sop) & (ix->cap - 1);
    while (ix->slots[j].sop[0]) {
        if (strcmp(ix->slots[j].sop, sop) == 0)
            return &ix->slots[j];
        j = (j + 1) & (ix->cap - 1);
    }
    if (!add)
        return NULL;
    snprintf(ix->slots[j].sop, sizeof ix->slots[j].sop, "%s", sop);
    ix->n++;
    return &ix->slots[j];
}

int file_commit_new(struct file_commit_index **out)
{
    struct file_commit_index *ix = calloc(1, sizeof *ix);
    if (!ix)
        return ERR_NOMEM;
    pthread_mutex_init(&ix->mu, NULL);
    *out = ix;
    return 0;
}

void file_commit_free(struct file_commit_index *ix)
{
    if (!ix)
        return;
    for (size_t i = 0; i < ix->cap; i++)
        free(ix->slots[i].copies);
    free(ix->slots);
    pthread_mutex_destroy(&ix->mu);
    free(ix);
}

static void note_locked(struct file_commit_index *ix, const char *sop, const char *sha,
                        const char *sop_class, int64_t received_ms, enum backend_copy_state st)
{
    struct slot *s = find(ix, sop, true);
    if (!s)
        return; /* out of memory: the instance stays unknown (reported pending, never wrong) */
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->copies[i].sha256, sha) == 0) {
            if (st > s->copies[i].state)
                s->copies[i].state = st;
            return;
        }
    }
    if (s->n >= BACKEND_COPIES_MAX)
        s->n = BACKEND_COPIES_MAX - 1; /* the oldest copy goes */
    struct backend_copy *nc = realloc(s->copies, (s->n + 1) * sizeof *nc);
    if (!nc)
        return;
    s->copies = nc;
    size_t at = 0; /* newest first: by receipt time */
    while (at < s->n && s->copies[at].received_ms > received_ms)
        at++;
    memmove(&s->copies[at + 1], &s->copies[at], (s->n - at) * sizeof *nc);
    struct backend_copy *c = &s->copies[at];
    memset(c, 0, sizeof *c);
    snprintf(c->sha256, sizeof c->sha256, "%s", sha);
    snprintf(c->sop_class, sizeof c->sop_class, "%s", sop_class ? sop_class : "");
    c->state = st;
    c->received_ms = received_ms;
    s->n++;
}

void file_commit_note(struct file_commit_index *ix, const char *sop, const char *sha,
                      const char *sop_class, const char *received_iso,
                      enum backend_copy_state st)
{
    if (!ix || !sop || !sop[0] || !sha || strnlen(sop, 65) > 64)
        return;
    pthread_mutex_lock(&ix->mu);
    note_locked(ix, sop, sha, sop_class, commit_iso_to_ms(received_iso), st);
    pthread_mutex_unlock(&ix->mu);
}

static int locate(void *impl, const char *sop, backend_locate_cb cb, void *arg)
{
    struct file_backend *b = impl;
    struct backend_copy copies[BACKEND_COPIES_MAX];
    size_t n = 0;
    pthread_mutex_lock(&b->commit_ix->mu);
    struct slot *s = find(b->commit_ix, sop, false);
    if (s) {
        n = s->n;
        memcpy(copies, s->copies, n * sizeof *copies);
    }
    pthread_mutex_unlock(&b->commit_ix->mu);
    cb(arg, 0, copies, n); /* in memory: answered at once */
    return 0;
}

const struct backend_commit_ops file_commit_ops = {
    .locate = locate,
    .txn = NULL, /* the core keeps transactions in its spool */
    .strongest = COPY_STORED,
    .requests = NULL,
    .close = NULL,
};
