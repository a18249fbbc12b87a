/* The file backend's read scope (spool/backend_read.h scope_studies): the studies a client may
 * read, its own (the senders the journal records for each study, file_backend_index.c) and, for
 * the scope "shared", those shared with it in <dir>/shares.json that have not expired. Worked out
 * on the threadpool under the index's read lock; the shares file is read again every time, so
 * that a revoked or expired share stops the next request. */
#include "file_backend_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"

#define SHARES_FILE "shares.json"
#define SHARES_MAX (4u << 20)

bool fb_scope_has(const struct backend_read_scope *scope, const char *study)
{
    if (scope->scope == GRANT_SCOPE_ALL)
        return true;
    for (size_t i = 0; i < scope->n_studies; i++) {
        if (strcmp(scope->studies[i], study) == 0)
            return true;
    }
    return false;
}

struct fb_scope_job {
    uv_work_t work;
    struct file_backend *b;
    char client[BACKEND_OWNER_MAX];
    enum grant_scope scope;
    backend_studies_cb cb;
    void *arg;
    char **studies;
    size_t n;
    int err;
};

static int push(struct fb_scope_job *j, struct strmap *seen, const char *uid)
{
    if (strmap_get(seen, uid))
        return 0;
    TRY(strmap_put(seen, uid, NULL));
    char **n = realloc(j->studies, (j->n + 1) * sizeof *n);
    if (!n)
        return ERR_NOMEM;
    j->studies = n;
    if (!(n[j->n] = strdup(uid)))
        return ERR_NOMEM;
    j->n++;
    return 0;
}

/* "YYYY-MM-DDTHH:MM:SSZ" (UTC) to unix seconds; -1 when it is not that. */
static int64_t parse_utc(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
    if (!s || strlen(s) != sizeof shape - 1)
        return -1;
    int v[6] = {0}, f = 0;
    for (size_t i = 0; shape[i]; i++) {
        if (shape[i] == 'd') {
            if (s[i] < '0' || s[i] > '9')
                return -1;
            v[f] = v[f] * 10 + (s[i] - '0');
        } else if (s[i] != shape[i]) {
            return -1;
        } else if (shape[i] != 'Z') {
            f++;
        }
    }
    struct tm tm = {.tm_year = v[0] - 1900, .tm_mon = v[1] - 1, .tm_mday = v[2],
                    .tm_hour = v[3], .tm_min = v[4], .tm_sec = v[5]};
    if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 60)
        return -1;
    return (int64_t)timegm(&tm);
}

int fb_shares_for(const char *text, size_t len, const char *client, int64_t now,
                  struct strmap *seen, char ***studies, size_t *n)
{
    cJSON *root = cJSON_ParseWithLength(text, len);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "shares");
    int rc = cJSON_IsArray(list) ? 0 : ERR_MALFORMED;
    const cJSON *g;
    struct fb_scope_job j = {.studies = *studies, .n = *n};
    const cJSON *walk = rc == 0 ? list : NULL;
    cJSON_ArrayForEach(g, walk)
    {
        const cJSON *study = cJSON_GetObjectItemCaseSensitive(g, "study");
        const cJSON *to = cJSON_GetObjectItemCaseSensitive(g, "to");
        const cJSON *exp = cJSON_GetObjectItemCaseSensitive(g, "expires");
        if (!cJSON_IsString(study) || !cJSON_IsString(to) || !cJSON_IsString(exp) ||
            strlen(study->valuestring) > 64)
            continue; /* a malformed grant grants nothing */
        int64_t until = parse_utc(exp->valuestring);
        if (strcmp(to->valuestring, client) != 0 || until < 0 || until <= now)
            continue;
        if ((rc = push(&j, seen, study->valuestring)) < 0)
            break;
    }
    *studies = j.studies;
    *n = j.n;
    cJSON_Delete(root);
    return rc;
}


static void scope_work(uv_work_t *w)
{
    struct fb_scope_job *j = w->data;
    struct fx_index *x = &j->b->index;
    struct strmap seen = {0};
    int rc = 0;
    pthread_rwlock_rdlock(&x->lock);
    for (size_t i = 0; rc == 0 && i < x->n; i++) {
        if (j->scope == GRANT_SCOPE_ALL || fx_study_owned_by(x->studies[i], j->client))
            rc = push(j, &seen, x->studies[i]->uid);
    }
    pthread_rwlock_unlock(&x->lock);
    if (rc == 0 && j->scope == GRANT_SCOPE_SHARED) {
        char path[1100], *text = NULL;
        size_t len = 0;
        snprintf(path, sizeof path, "%s/%s", j->b->cfg.dir, SHARES_FILE);
        int r = fileio_read_small(path, SHARES_MAX, &text, &len);
        if (r == 0)
            rc = fb_shares_for(text, len, j->client, time(NULL), &seen, &j->studies, &j->n);
        else if (r != -ENOENT) /* no file: nothing shared */
            rc = r;
        free(text);
    }
    strmap_free(&seen);
    j->err = rc;
}

static void scope_done(uv_work_t *w, int status)
{
    struct fb_scope_job *j = w->data;
    int err = status < 0 ? status : j->err;
    j->cb(j->arg, err, err < 0 ? NULL : (const char *const *)j->studies, err < 0 ? 0 : j->n);
    for (size_t i = 0; i < j->n; i++)
        free(j->studies[i]);
    free(j->studies);
    free(j);
}

int fb_scope_studies(void *impl, const char *client_id, enum grant_scope scope,
                            backend_studies_cb cb, void *arg)
{
    struct file_backend *b = impl;
    if (!b->index.ready)
        return ERR_WRONG_STATE;
    struct fb_scope_job *j = calloc(1, sizeof *j);
    if (!j)
        return ERR_NOMEM;
    j->b = b;
    snprintf(j->client, sizeof j->client, "%s", client_id ? client_id : "");
    j->scope = scope;
    j->cb = cb;
    j->arg = arg;
    j->work.data = j;
    if (scope == GRANT_SCOPE_NONE)
        j->client[0] = '\0';
    int rc = uv_queue_work(b->loop, &j->work, scope_work, scope_done);
    if (rc < 0)
        free(j);
    return rc;
}
