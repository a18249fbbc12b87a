#include "file_backend_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static void problem(struct wbuf *errs, const char *key, const char *msg)
{
    wbuf_printf(errs, "backend.%s: %s\n", key, msg);
}

static void get_str(const cJSON *obj, const char *key, char *dst, size_t cap, struct wbuf *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return;
    if (!cJSON_IsString(v) || !v->valuestring) {
        problem(errs, key, "must be a string");
        return;
    }
    int n = snprintf(dst, cap, "%s", v->valuestring);
    if (n < 0 || (size_t)n >= cap)
        problem(errs, key, "too long");
}

static void get_u64(const cJSON *obj, const char *key, uint64_t *dst, uint64_t min, uint64_t max,
                    struct wbuf *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return;
    if (!cJSON_IsNumber(v) || v->valuedouble < (double)min || v->valuedouble > (double)max ||
        v->valuedouble != (double)(uint64_t)v->valuedouble) {
        wbuf_printf(errs, "backend.%s: must be a whole number from %llu to %llu\n", key,
                    (unsigned long long)min, (unsigned long long)max);
        return;
    }
    *dst = (uint64_t)v->valuedouble;
}

int file_backend_config_parse(const char *json, struct file_backend_config *c, struct wbuf *errs)
{
    size_t start = errs->len;
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/var/lib/dicom-core/store");
    snprintf(c->prefix, sizeof c->prefix, "dicom");
    c->batch_max_objects = 5000; /* HealthImaging's per-job file quota */
    c->batch_max_bytes = 10ull << 30;
    c->batch_max_age_ms = 60000;
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    if (json && !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        problem(errs, "type", "the backend object is not valid JSON");
        return ERR_CONFIG;
    }
    if (root) {
        uint64_t objects = c->batch_max_objects, age = c->batch_max_age_ms;
        get_str(root, "dir", c->dir, sizeof c->dir, errs);
        get_str(root, "prefix", c->prefix, sizeof c->prefix, errs);
        get_u64(root, "batch_max_objects", &objects, 1, 5000, errs);
        get_u64(root, "batch_max_bytes", &c->batch_max_bytes, 1, 10ull << 30, errs);
        get_u64(root, "batch_max_age_ms", &age, 10, 86400000, errs);
        c->batch_max_objects = (uint32_t)objects;
        c->batch_max_age_ms = (uint32_t)age;
        cJSON_Delete(root);
    }
    if (c->dir[0] != '/')
        problem(errs, "dir", "must be an absolute path");
    return errs->len > start || errs->err ? ERR_CONFIG : 0;
}
