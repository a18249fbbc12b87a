/* The operator's commands of pipeline.h (status, failed, redrive): files only, no network. */
#include "pipeline.h"

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

static char *slurp(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    fclose(f);
    if (!buf || n > max) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int pipeline_cli_status(const char *spool_dir, bool json)
{
    char ready[1200], status[1200];
    snprintf(ready, sizeof ready, "%s/ready", spool_dir);
    snprintf(status, sizeof status, "%s/forwarder/status.json", spool_dir);
    DIR *d = opendir(ready);
    if (!d) {
        fprintf(stderr, "dicom-core status: cannot read %s: %s\n", ready, strerror(errno));
        return -errno;
    }
    uint64_t depth = 0, bytes = 0;
    time_t oldest = 0, now = time(NULL);
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n <= 4 || strcmp(de->d_name + n - 4, ".dcm") != 0)
            continue;
        char p[1500];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", ready, de->d_name);
        if (stat(p, &st) < 0)
            continue;
        depth++;
        bytes += (uint64_t)st.st_size;
        if (!oldest || st.st_mtime < oldest)
            oldest = st.st_mtime;
    }
    closedir(d);
    size_t len = 0;
    char *text = slurp(status, 1u << 20, &len);
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
    static const char *const keys[] = {"mode",        "entries_inflight", "uploads_inflight",
                                       "batches_open", "batches_closing", "jobs_inflight",
                                       "uploaded",    "duplicates",      "imported",
                                       "failed",      "jobs_started",    "jobs_completed",
                                       "jobs_failed", "retries"};
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        v = cJSON_GetObjectItemCaseSensitive(st, keys[i]);
        if (cJSON_IsNumber(v))
            printf("  %-18s %.0f\n", keys[i], v->valuedouble);
        else if (cJSON_IsString(v))
            printf("  %-18s %s\n", keys[i], v->valuestring);
    }
    const cJSON *it;
    v = cJSON_GetObjectItemCaseSensitive(st, "batches");
    cJSON_ArrayForEach(it, v)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *step = cJSON_GetObjectItemCaseSensitive(it, "step");
        const cJSON *objs = cJSON_GetObjectItemCaseSensitive(it, "objects");
        const cJSON *job = cJSON_GetObjectItemCaseSensitive(it, "job_id");
        printf("  batch %s %s objects=%.0f job=%s\n", cJSON_IsString(id) ? id->valuestring : "?",
               cJSON_IsString(step) ? step->valuestring : "?",
               cJSON_IsNumber(objs) ? objs->valuedouble : 0,
               cJSON_IsString(job) && job->valuestring[0] ? job->valuestring : "-");
    }
    v = cJSON_GetObjectItemCaseSensitive(st, "last_errors");
    cJSON_ArrayForEach(it, v)
    {
        const cJSON *at = cJSON_GetObjectItemCaseSensitive(it, "at");
        const cJSON *step = cJSON_GetObjectItemCaseSensitive(it, "step");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(it, "code");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(it, "message");
        printf("  error %s %s %s %s\n", cJSON_IsString(at) ? at->valuestring : "?",
               cJSON_IsString(step) ? step->valuestring : "?",
               cJSON_IsString(code) ? code->valuestring : "?",
               cJSON_IsString(msg) ? msg->valuestring : "");
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
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, f[i]);
            printf("%s%s", i ? "  " : "", cJSON_IsString(v) && v->valuestring[0] ? v->valuestring :
                                                                                  "-");
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
