/* jcfg: typed reads of cJSON configuration nodes; every problem becomes one line "key: why" in
 * an error buffer, so that --check-config can list them all. */
#ifndef GW_JCFG_H
#define GW_JCFG_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wbuf.h"

/* Append "ctx.key: msg\n" (ctx may be ""). */
void jcfg_problem(struct wbuf *errs, const char *ctx, const char *key, const char *msg);
/* Each reader leaves *dst unchanged when the key is absent, and reports a wrong type or range. */
void jcfg_str(const cJSON *obj, const char *ctx, const char *key, char *dst, size_t cap,
              struct wbuf *errs);
void jcfg_bool(const cJSON *obj, const char *ctx, const char *key, bool *dst, struct wbuf *errs);
void jcfg_u32(const cJSON *obj, const char *ctx, const char *key, uint32_t *dst, uint32_t min,
              uint32_t max, struct wbuf *errs);
/* Read a whole file (at most max bytes) as a NUL-terminated string; NULL with a problem. */
char *jcfg_read_file(const char *path, size_t max, struct wbuf *errs);

#endif
