/* The file backend's one step: assign keys (write-ahead), place the data, record, release. */
#include "file_backend_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/uid.h"
#include "net/sha256_file.h"
#include "spool/spool_sidecar.h"

struct entry {
    char id[SPOOL_ID_MAX];
    struct spool_sidecar sc;
    char key[512];
    bool dup;
};

static void open_batch(struct file_backend *b)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(b->batch, sizeof b->batch, "b%04d%02d%02dT%02d%02d%02dZ-%u-%d", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, b->batch_seq++,
             (int)getpid());
    b->batch_objects = 0;
    b->batch_bytes = 0;
    b->batch_opened_ms = file_backend_now_ms();
}

void file_backend_close_batch(struct file_backend *b)
{
    if (!b->batch[0] || b->batch_objects == 0)
        return;
    cJSON *j = cJSON_CreateObject();
    if (j) {
        cJSON_AddStringToObject(j, "ev", "job");
        cJSON_AddStringToObject(j, "batch", b->batch);
        cJSON_AddStringToObject(j, "status", "COMPLETED");
        cJSON_AddNumberToObject(j, "objects", b->batch_objects);
        cJSON_AddNumberToObject(j, "bytes", (double)b->batch_bytes);
        if (spool_journal_append(b->journal, j) == 0 && spool_journal_sync(b->journal) == 0)
            b->stats.batches_closed++;
        cJSON_Delete(j);
    }
    b->batch[0] = '\0';
}

void file_backend_stored_key(const char *sop, const char *sha, const char *crc, char *k,
                             size_t cap)
{
    if (sha && sha[0])
        snprintf(k, cap, "%s|%s", sop, sha);
    else
        snprintf(k, cap, "%s|crc:%s", sop, crc ? crc : "");
}

/* The hash a copy is known by: its SHA-256, or its CRC-64/NVME without one. */
static const char *copy_hash(const struct spool_sidecar *sc)
{
    return sc->sha256[0] ? sc->sha256 : sc->crc64nvme;
}

static void stored_key(const struct spool_sidecar *sc, char *k, size_t cap)
{
    file_backend_stored_key(sc->sop_instance, sc->sha256, sc->crc64nvme, k, cap);
}

/* Does the data file still hold what its sidecar says? 0 yes, 1 no, -ENOENT gone, < 0 error. */
static int data_differs(const char *path, const struct spool_sidecar *sc)
{
    if (sc->sha256[0]) {
        char got[65] = "";
        TRY(sha256_file(path, got));
        return strcmp(got, sc->sha256) != 0;
    }
    uint64_t crc;
    TRY(fileio_crc64nvme(path, &crc));
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)crc);
    return strcmp(hex, sc->crc64nvme) != 0;
}

/* An entry left by a previous run whose data does not match its sidecar: a crash inside the
 * group commit can leave one that was never acknowledged and whose data never reached the disk. */
static bool torn(struct file_backend *b, struct entry *e, const char *side_path)
{
    struct stat sst;
    if (stat(side_path, &sst) < 0 || sst.st_mtime >= b->started ||
        strmap_get(&b->assigned, e->id))
        return false;
    char data[SPOOL_PATH_MAX];
    int vr = spool_path(b->spool, "ready", e->id, ".dcm", data, sizeof data);
    if (vr == 0)
        vr = data_differs(data, &e->sc);
    if (vr != -ENOENT && vr != 1)
        return false;
    struct logb lb;
    if (log_begin(&lb, LOG_WARN, "spool_torn_entry_dropped")) {
        log_str(&lb, "id", e->id);
        log_str(&lb, "sop_instance_uid", e->sc.sop_instance);
        log_end(&lb);
    }
    spool_entry_release(b->spool, e->id, 0);
    return true;
}

/* Choose the entry's key in the open batch and journal it before anything is placed. */
static int assign(struct file_backend *b, struct entry *e)
{
    const char *prev = strmap_get(&b->assigned, e->id);
    if (prev) {
        snprintf(e->key, sizeof e->key, "%s", prev);
        return 0;
    }
    uint64_t sz = e->sc.bytes;
    if (!b->batch[0] || b->batch_objects >= b->cfg.batch_max_objects ||
        b->batch_bytes + sz > b->cfg.batch_max_bytes) {
        file_backend_close_batch(b);
        open_batch(b);
    }
    snprintf(e->key, sizeof e->key, "%s/%s/%s.dcm", b->cfg.prefix, b->batch, e->sc.sop_instance);
    char full[1600];
    snprintf(full, sizeof full, "%s/%s", b->cfg.dir, e->key);
    struct stat st;
    if (stat(full, &st) == 0) { /* same SOP, other content, same batch: next batch */
        file_backend_close_batch(b);
        open_batch(b);
        snprintf(e->key, sizeof e->key, "%s/%s/%s.dcm", b->cfg.prefix, b->batch,
                 e->sc.sop_instance);
    }
    b->batch_objects++;
    b->batch_bytes += sz;
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return ERR_NOMEM;
    cJSON_AddStringToObject(j, "ev", "assign");
    cJSON_AddStringToObject(j, "id", e->id);
    cJSON_AddStringToObject(j, "key", e->key);
    cJSON_AddStringToObject(j, "batch", b->batch);
    int rc = spool_journal_append(b->journal, j);
    cJSON_Delete(j);
    TRY(rc);
    return strmap_put(&b->assigned, e->id, e->key);
}

/* 1. read sidecars; assign keys (write-ahead). Returns how many entries to carry on with. */
static int take(struct file_backend *b, char (*ids)[SPOOL_ID_MAX], int n, struct entry *es)
{
    int count = 0;
    for (int i = 0; i < n; i++) {
        struct entry *e = &es[count];
        memset(e, 0, sizeof *e);
        snprintf(e->id, sizeof e->id, "%s", ids[i]);
        char path[SPOOL_PATH_MAX];
        if (spool_path(b->spool, "ready", e->id, ".json", path, sizeof path) < 0)
            continue;
        if (spool_sidecar_load(path, &e->sc) < 0) {
            file_backend_fail(b, "sidecar", e->id, ERR_MALFORMED);
            continue; /* left in ready/ for an operator; never deleted unread */
        }
        char k[200];
        stored_key(&e->sc, k, sizeof k);
        if (strmap_get(&b->stored, k)) {
            /* this object is in the store already: a duplicate, or an entry whose release a
             * crash cut between unlinking its data and its sidecar. Either way it is released
             * as a duplicate (its data, if any, is not needed), not reported as torn. */
            e->dup = true;
            count++;
            continue;
        }
        if (torn(b, e, path))
            continue;
        file_commit_note(b->commit_ix, e->sc.sop_instance, copy_hash(&e->sc), e->sc.sop_class,
                         e->sc.received_end, COPY_SPOOL);
        TRY(assign(b, e));
        count++;
    }
    return count;
}

/* 2. place the data: a hard link where the store shares the spool's filesystem. */
static void place(struct file_backend *b, struct entry *es, int count)
{
    char last_dir[1600] = "";
    for (int i = 0; i < count; i++) {
        struct entry *e = &es[i];
        if (e->dup)
            continue;
        char from[SPOOL_PATH_MAX], to[1600], dir[1600];
        if (spool_path(b->spool, "ready", e->id, ".dcm", from, sizeof from) < 0)
            continue;
        snprintf(to, sizeof to, "%s/%s", b->cfg.dir, e->key);
        snprintf(dir, sizeof dir, "%s", to);
        char *slash = strrchr(dir, '/');
        *slash = '\0';
        const char *what = "place";
        int r = fileio_mkdir_p(dir);
        if (r == 0 && link(from, to) < 0) {
            r = -errno;
            if (r == -EEXIST)
                r = 0; /* placed before a crash: the key is ours (write-ahead assign) */
            else if (r == -EXDEV || r == -EPERM)
                r = fileio_copy(from, to);
        }
        if (r == 0 && b->fsync && strcmp(dir, last_dir) != 0) {
            what = "fsync";
            r = fileio_fsync_dir(dir);
            if (r == 0)
                snprintf(last_dir, sizeof last_dir, "%s", dir);
        }
        if (r < 0) {
            file_backend_fail(b, what, e->id, r);
            e->key[0] = '\0';
        }
    }
}

/* 3. record them. */
static int record(struct file_backend *b, const struct entry *es, int count)
{
    for (int i = 0; i < count; i++) {
        const struct entry *e = &es[i];
        if (!e->dup && !e->key[0])
            continue;
        cJSON *j = spool_sidecar_json(&e->sc);
        if (!j)
            return ERR_NOMEM;
        cJSON_DeleteItemFromObjectCaseSensitive(j, "id");
        cJSON_AddStringToObject(j, "ev", e->dup ? "duplicate" : "stored");
        cJSON_AddStringToObject(j, "id", e->id);
        if (!e->dup)
            cJSON_AddStringToObject(j, "key", e->key);
        int rc = spool_journal_append(b->journal, j);
        cJSON_Delete(j);
        TRY(rc);
    }
    return spool_journal_sync(b->journal);
}

/* 5. the read index learns of it (after the journal: a crash in between is reconciled at
 * start from the journal) */
static void index_entry(struct file_backend *b, const struct entry *e)
{
    struct fx_known k = {.bytes = e->sc.bytes, .duplicate = e->dup};
    snprintf(k.key, sizeof k.key, "%s", e->key);
    memcpy(k.sop, e->sc.sop_instance, sizeof k.sop);
    memcpy(k.sop_class, e->sc.sop_class, sizeof k.sop_class);
    memcpy(k.study, e->sc.study, sizeof k.study);
    memcpy(k.series, e->sc.series, sizeof k.series);
    backend_read_owner(e->sc.client_id, e->sc.calling, k.owner, sizeof k.owner);
    fx_index_stored(b, &k);
}

int file_backend_step(struct file_backend *b)
{
    char(*ids)[SPOOL_ID_MAX] = calloc(FILE_BACKEND_STEP, sizeof *ids);
    struct entry *es = calloc(FILE_BACKEND_STEP, sizeof *es);
    int rc = 0, done = 0;
    if (!ids || !es) {
        rc = ERR_NOMEM;
        goto out;
    }
    int n = spool_ready_list(b->spool, ids, FILE_BACKEND_STEP);
    if (n <= 0) {
        rc = n;
        goto out;
    }
    int count = take(b, ids, n, es);
    if (count <= 0) {
        rc = count;
        goto out;
    }
    if ((rc = spool_journal_sync(b->journal)) < 0)
        goto out;
    place(b, es, count);
    if ((rc = record(b, es, count)) < 0)
        goto out;
    /* 4. only then release the spool entries */
    for (int i = 0; i < count; i++) {
        struct entry *e = &es[i];
        if (!e->dup && !e->key[0])
            continue;
        char k[200];
        stored_key(&e->sc, k, sizeof k);
        if ((rc = strmap_put(&b->stored, k, NULL)) < 0)
            goto out;
        if (!e->dup)
            file_commit_note(b->commit_ix, e->sc.sop_instance, copy_hash(&e->sc),
                             e->sc.sop_class, e->sc.received_end, COPY_STORED);
        spool_entry_release(b->spool, e->id, e->sc.bytes);
        if (e->dup)
            b->stats.duplicates++;
        else
            b->stats.stored++;
        done++;
        index_entry(b, e);
    }
    if (done > 0)
        fx_index_sync(b);
out:
    free(ids);
    free(es);
    return rc < 0 ? rc : done;
}
