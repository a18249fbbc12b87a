/* The file backend's "backend" object, read through the common config reader. */
#include "file_backend_int.h"

#include <stddef.h>
#include <string.h>

#include "common/cfgread.h"

#define FC struct file_backend_config

static void check(void *base, void *ctx, const char *path, struct wbuf *errs)
{
    const struct file_backend_config *c = base;
    (void)ctx;
    if (c->dir[0] != '/')
        cfgread_problem(errs, path, "dir", "must be an absolute path");
}

static const struct cfgread_key g_keys[] = {
    CFGREAD_SKIPKEY("type"),
    CFGREAD_STR("dir", FC, dir, "/var/lib/dicom-core/store"),
    CFGREAD_STR("prefix", FC, prefix, "dicom"),
    /* HealthImaging's per-job quotas: the batches stand for import jobs */
    CFGREAD_U32("batch_max_objects", FC, batch_max_objects, 1, 5000, 5000),
    CFGREAD_U64("batch_max_bytes", FC, batch_max_bytes, 1, 10ull << 30, 10ull << 30),
    CFGREAD_U32("batch_max_age_ms", FC, batch_max_age_ms, 10, 86400000, 60000),
};
static const struct cfgread_table g_table = CFGREAD_TABLE(g_keys, false, check);

int file_backend_config_parse(const char *json, struct file_backend_config *c, struct wbuf *errs)
{
    memset(c, 0, sizeof *c);
    cfgread_defaults(&g_table, c);
    static const char empty[] = "{}";
    struct cfgread_job job = {.table = &g_table, .base = c, .name = "backend",
                              .prefix = "backend"};
    int rc = cfgread_text(&job, json ? json : empty, json ? strlen(json) : sizeof empty - 1,
                          errs);
    return rc < 0 ? ERR_CONFIG : 0;
}
