#include "proxy_status.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cert_metrics.h"
#include "proxy_int.h"

#define MAX_CLIENT_ROWS 1024 /* distinct clients listed; the rest are counted in "others" */

/* Whole days from now to when, rounded down (-1 on the day after it passed); 0 for no date. */
static int64_t days_left(int64_t when, int64_t now)
{
    int64_t d = when - now;
    if (when <= 0)
        return 0;
    return d >= 0 ? d / 86400 : -((-d + 86399) / 86400);
}

/* Live associations grouped by client id and path. */
static cJSON *clients_json(const struct edge *e)
{
    cJSON *arr = cJSON_CreateArray();
    unsigned others = 0;
    for (const struct edge_conn *c = e->conns; arr && c; c = c->next) {
        if (!c->in_assoc_count)
            continue;
        const char *path = c->reverse ? "reverse" : "forward";
        cJSON *row = NULL, *it;
        cJSON_ArrayForEach(it, arr) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "client");
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(it, "path");
            if (strcmp(id->valuestring, c->client_id) == 0 && strcmp(p->valuestring, path) == 0) {
                row = it;
                break;
            }
        }
        if (row) {
            cJSON *n = cJSON_GetObjectItemCaseSensitive(row, "associations");
            cJSON_SetNumberValue(n, n->valuedouble + 1);
            continue;
        }
        if (cJSON_GetArraySize(arr) >= MAX_CLIENT_ROWS) {
            others++;
            continue;
        }
        row = cJSON_CreateObject();
        if (!row || !cJSON_AddItemToArray(arr, row) ||
            !cJSON_AddStringToObject(row, "client", c->client_id) ||
            !cJSON_AddStringToObject(row, "path", path) ||
            !cJSON_AddNumberToObject(row, "associations", 1)) {
            cJSON_Delete(arr);
            return NULL;
        }
    }
    if (arr && others) {
        cJSON *row = cJSON_CreateObject();
        if (!row || !cJSON_AddItemToArray(arr, row) ||
            !cJSON_AddStringToObject(row, "client", "(others)") ||
            !cJSON_AddStringToObject(row, "path", "") ||
            !cJSON_AddNumberToObject(row, "associations", others)) {
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

static cJSON *refusals_json(const struct edge *e, uint64_t *total)
{
    cJSON *arr = cJSON_CreateArray();
    uint64_t now = uv_now(e->loop);
    *total = 0;
    for (size_t i = 0; arr && i < e->refusals.n_rows; i++) {
        uint64_t n = refusals_last_hour(&e->refusals, i, now);
        if (n == 0)
            continue;
        *total += n;
        cJSON *row = cJSON_CreateObject();
        if (!row || !cJSON_AddItemToArray(arr, row) ||
            !cJSON_AddStringToObject(row, "path",
                                     e->refusals.rows[i].reverse ? "reverse" : "forward") ||
            !cJSON_AddStringToObject(row, "reason", e->refusals.rows[i].reason) ||
            !cJSON_AddNumberToObject(row, "count", (double)n)) {
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

static cJSON *dates_json(bool crl, int64_t now)
{
    const struct cert_date *d;
    size_t n = cert_metrics_dates(&d);
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < n; i++) {
        if (d[i].crl != crl)
            continue;
        cJSON *row = cJSON_CreateObject();
        if (!row || !cJSON_AddItemToArray(arr, row) ||
            !cJSON_AddStringToObject(row, "what", d[i].what) ||
            !cJSON_AddStringToObject(row, "path", d[i].path) ||
            !cJSON_AddNumberToObject(row, crl ? "next_update" : "not_after", (double)d[i].when) ||
            !cJSON_AddNumberToObject(row, "days_left", (double)days_left(d[i].when, now))) {
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

static cJSON *policy_json(const struct edge *e)
{
    const struct edge_gen *g = e->gen;
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "path", e->cfg->policy) ||
        !cJSON_AddNumberToObject(o, "generation", (double)g->number) ||
        !cJSON_AddNumberToObject(o, "loaded_at", (double)g->loaded_at) ||
        !cJSON_AddStringToObject(o, "sha256", g->policy_sha256) ||
        !cJSON_AddNumberToObject(o, "clients", (double)g->policy->n_clients) ||
        !cJSON_AddNumberToObject(o, "routes", (double)g->policy->n_routes) ||
        !cJSON_AddNumberToObject(o, "devices", (double)g->policy->n_returns)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *audit_json(const struct edge *e)
{
    struct audit_status st;
    audit_get_status(e->audit, &st);
    cJSON *o = cJSON_CreateObject();
    cJSON *repos = cJSON_CreateArray();
    bool ok = o && repos && cJSON_AddItemToObject(o, "repositories", repos);
    if (!ok)
        cJSON_Delete(repos);
    ok = ok && cJSON_AddBoolToObject(o, "enabled", e->audit != NULL) &&
         cJSON_AddNumberToObject(o, "queued", (double)st.queued) &&
         cJSON_AddNumberToObject(o, "dropped", (double)st.dropped) &&
         cJSON_AddNumberToObject(o, "refused", (double)st.refused) &&
         cJSON_AddBoolToObject(o, "blocking", st.blocking);
    for (size_t i = 0; ok && i < st.n_repos; i++) {
        cJSON *r = cJSON_CreateObject();
        ok = r && cJSON_AddItemToArray(repos, r) &&
             cJSON_AddStringToObject(r, "name", st.repos[i].name) &&
             cJSON_AddBoolToObject(r, "up", st.repos[i].up) &&
             cJSON_AddNumberToObject(r, "backlog", (double)st.repos[i].backlog);
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Add item under key, or free it; false when item is NULL or cannot be added. */
static bool add(cJSON *o, const char *key, cJSON *item)
{
    if (item && cJSON_AddItemToObject(o, key, item))
        return true;
    cJSON_Delete(item);
    return false;
}

int proxy_status_render(struct edge *e, struct wbuf *out)
{
    int64_t now = (int64_t)time(NULL);
    uint64_t refused = 0;
    cJSON *o = cJSON_CreateObject();
    cJSON *rev = cJSON_CreateObject();
    bool ok = o && add(o, "reverse", rev);
    ok = ok && cJSON_AddStringToObject(o, "version", GW_VERSION) &&
         cJSON_AddNumberToObject(o, "now", (double)now) &&
         cJSON_AddNumberToObject(o, "started_at", (double)e->started_at) &&
         cJSON_AddBoolToObject(o, "draining", e->draining) &&
         cJSON_AddStringToObject(o, "listen", e->cfg->listen) &&
         cJSON_AddNumberToObject(o, "connections", e->n_conns - e->n_rconns) &&
         cJSON_AddNumberToObject(o, "associations", e->n_assocs - e->n_rassocs) &&
         cJSON_AddBoolToObject(rev, "enabled", e->cfg->reverse.enabled) &&
         cJSON_AddStringToObject(rev, "listen",
                                 e->cfg->reverse.enabled ? e->cfg->reverse.listen : "") &&
         cJSON_AddNumberToObject(rev, "connections", e->n_rconns) &&
         cJSON_AddNumberToObject(rev, "associations", e->n_rassocs) &&
         add(o, "clients", clients_json(e)) &&
         add(o, "refusals_last_hour", refusals_json(e, &refused)) &&
         cJSON_AddNumberToObject(o, "refused_last_hour", (double)refused) &&
         add(o, "policy", policy_json(e)) && add(o, "certificates", dates_json(false, now)) &&
         add(o, "crls", dates_json(true, now)) && add(o, "audit", audit_json(e));
    if (!ok && !o)
        cJSON_Delete(rev);
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!text)
        return ERR_NOMEM;
    wbuf_printf(out, "%s\n", text);
    cJSON_free(text);
    return out->err ? ERR_NOMEM : 0;
}
