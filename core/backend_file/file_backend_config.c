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

/* Reading back (C-FIND, C-GET, C-MOVE): the search's page and cap stand for QIDO-RS's (pages of
 * up to 1000, at most 10,000 results), smaller values let tests cross pages and the cap. */
static const struct cfgread_key g_read_keys[] = {
    CFGREAD_U32("page_size", FC, read.page_size, 1, 100000, 200),
    CFGREAD_U32("max_results", FC, read.max_results, 1, 10000000, 10000),
    CFGREAD_U32("chunk_bytes", FC, read.chunk, 4096, 16u << 20, 256u * 1024u),
    /* a test knob: a pause between pages, standing for a slow QIDO-RS (0: none) */
    CFGREAD_U32("page_delay_ms", FC, read.page_delay_ms, 0, 60000, 0),
};
static const struct cfgread_table g_read = CFGREAD_TABLE(g_read_keys, true, NULL);

static const struct cfgread_key g_keys[] = {
    CFGREAD_SKIPKEY("type"),
    CFGREAD_STR("dir", FC, dir, "/var/lib/dicom-core/store"),
    CFGREAD_STR("prefix", FC, prefix, "dicom"),
    /* HealthImaging's per-job quotas: the batches stand for import jobs */
    CFGREAD_U32("batch_max_objects", FC, batch_max_objects, 1, 5000, 5000),
    CFGREAD_U64("batch_max_bytes", FC, batch_max_bytes, 1, 10ull << 30, 10ull << 30),
    CFGREAD_U32("batch_max_age_ms", FC, batch_max_age_ms, 10, 86400000, 60000),
    CFGREAD_OBJ("read", &g_read),
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
