/* The operator's commands of pipeline.h (status, failed, redrive): files only, no network. */
#include "pipeline.h"
#include "spool/spool.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "pipeline_int.h"

/* obj[key] when it is a string, else dflt. */
static const char *str_or(const cJSON *obj, const char *key, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

int pipeline_cli_status(const char *spool_dir, bool json)
{
    char status[1200];
    snprintf(status, sizeof status, "%s/forwarder/status.json", spool_dir);
    struct spool_peek pk;
    int prc = spool_peek(spool_dir, &pk);
    if (prc < 0) {
        fprintf(stderr, "dicom-core status: cannot read the spool %s: %s\n", spool_dir,
                err_str(prc));
        return prc;
    }
    uint64_t depth = pk.depth, bytes = pk.bytes;
    time_t oldest = (time_t)pk.oldest_unix, now = time(NULL);
    size_t len = 0;
    char *text = NULL;
    if (fileio_read_small(status, 1u << 20, &text, &len) < 0)
        text = NULL;
    cJSON *st = text ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
    struct stat sst;
    long status_age = stat(status, &sst) == 0 ? (long)(now - sst.st_mtime) : -1;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        if (!o) {
            cJSON_Delete(st);
            return ERR_NOMEM;
        }
        cJSON_AddNumberToObject(o, "spool_depth", (double)depth);
        cJSON_AddNumberToObject(o, "spool_bytes", (double)bytes);
        cJSON_AddNumberToObject(o, "spool_oldest_age_s", oldest ? (double)(now - oldest) : 0);
        cJSON_AddNumberToObject(o, "status_age_s", (double)status_age);
        if (st)
            cJSON_AddItemToObject(o, "forwarder", st);
        st = NULL;
        char *s = cJSON_Print(o);
        cJSON_Delete(o);
        if (s)
            printf("%s\n", s);
        cJSON_free(s);
        return 0;
    }
    printf("spool: %llu object(s), %llu bytes, oldest %lld s\n", (unsigned long long)depth,
           (unsigned long long)bytes, oldest ? (long long)(now - oldest) : 0LL);
    if (!st) {
        printf("forwarder: no status (the aws backend has not run on this spool)\n");
        return 0;
    }
    const cJSON *v;
    printf("forwarder: status written %ld s ago%s\n", status_age,
           status_age > 5 ? " (not running?)" : "");
    for (size_t i = 0; i <= pl_n_stat_fields; i++) {
        const char *key = i == 0 ? "mode" : pl_stat_fields[i - 1].name;
        v = cJSON_GetObjectItemCaseSensitive(st, key);
        if (cJSON_IsNumber(v))
            printf("  %-18s %.0f\n", key, v->valuedouble);
        else if (cJSON_IsString(v))
            printf("  %-18s %s\n", key, v->valuestring);
    }
    const cJSON *it;
    v = cJSON_GetObjectItemCaseSensitive(st, "batches");
    cJSON_ArrayForEach(it, v)
    {
        const cJSON *objs = cJSON_GetObjectItemCaseSensitive(it, "objects");
        const char *job = str_or(it, "job_id", "");
        printf("  batch %s %s objects=%.0f job=%s\n", str_or(it, "id", "?"),
               str_or(it, "step", "?"), cJSON_IsNumber(objs) ? objs->valuedouble : 0,
               job[0] ? job : "-");
    }
    v = cJSON_GetObjectItemCaseSensitive(st, "last_errors");
    cJSON_ArrayForEach(it, v)
    {
        printf("  error %s %s %s %s\n", str_or(it, "at", "?"), str_or(it, "step", "?"),
               str_or(it, "code", "?"), str_or(it, "message", ""));
    }
    cJSON_Delete(st);
    return 0;
}

/* The latest failure per "sop|sha" that has not been re-driven since. */
static cJSON *load_failed(const char *spool_dir)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/forwarder/failed.jsonl", spool_dir);
    cJSON *out = cJSON_CreateObject();
    FILE *f = fopen(path, "r");
    if (!f || !out)
        return out;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        cJSON *r = cJSON_ParseWithLength(line, (size_t)n);
        const cJSON *sop = cJSON_GetObjectItemCaseSensitive(r, "sop");
        const cJSON *sha = cJSON_GetObjectItemCaseSensitive(r, "sha");
        if (!cJSON_IsString(sop) || !cJSON_IsString(sha)) {
            cJSON_Delete(r);
            continue;
        }
        char k[200];
        snprintf(k, sizeof k, "%s|%s", sop->valuestring, sha->valuestring);
        cJSON_DeleteItemFromObjectCaseSensitive(out, k);
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "redriven")))
            cJSON_Delete(r);
        else
            cJSON_AddItemToObject(out, k, r);
    }
    free(line);
    fclose(f);
    return out;
}

int pipeline_cli_failed_list(const char *spool_dir, bool json)
{
    cJSON *all = load_failed(spool_dir);
    if (!all)
        return ERR_NOMEM;
    const cJSON *r;
    int n = 0;
    cJSON_ArrayForEach(r, all)
    {
        n++;
        if (json) {
            char *s = cJSON_PrintUnformatted(r);
            if (s)
                printf("%s\n", s);
            cJSON_free(s);
            continue;
        }
        const char *f[] = {"at", "sop", "batch", "job", "error_type", "error_message"};
        for (size_t i = 0; i < ARRAY_LEN(f); i++) {
            const char *v = str_or(r, f[i], "");
            printf("%s%s", i ? "  " : "", v[0] ? v : "-");
        }
        printf("\n");
    }
    if (!json)
        printf("%d FAILED object(s)\n", n);
    cJSON_Delete(all);
    return 0;
}

int pipeline_cli_redrive(const char *spool_dir, const char *sop)
{
    cJSON *all = load_failed(spool_dir);
    if (!all)
        return ERR_NOMEM;
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/forwarder/redrive", spool_dir);
    if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
        int e = -errno;
        cJSON_Delete(all);
        return e;
    }
    int n = 0, rc = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, all)
    {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, "sop");
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(r, "sha");
        if (sop && strcmp(s->valuestring, sop) != 0)
            continue;
        char path[1500], tmp[1600];
        snprintf(path, sizeof path, "%s/%s_%.16s.json", dir, s->valuestring, h->valuestring);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        char *text = cJSON_PrintUnformatted(r);
        int fd = text ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640) : -1;
        bool ok = fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text);
        if (fd >= 0 && (fsync(fd) < 0 || close(fd) < 0))
            ok = false;
        cJSON_free(text);
        if (!ok || rename(tmp, path) < 0) {
            rc = -EIO;
            unlink(tmp);
            break;
        }
        n++;
    }
    cJSON_Delete(all);
    return rc < 0 ? rc : n;
}
