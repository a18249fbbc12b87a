#include "jcfg.h"

#include <stdio.h>
#include <stdlib.h>

void jcfg_problem(struct wbuf *errs, const char *ctx, const char *key, const char *msg)
{
    wbuf_printf(errs, "%s%s%s: %s\n", ctx, ctx[0] ? "." : "", key, msg);
}

void jcfg_str(const cJSON *obj, const char *ctx, const char *key, char *dst, size_t cap,
              struct wbuf *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return;
    if (!cJSON_IsString(v) || !v->valuestring) {
        jcfg_problem(errs, ctx, key, "must be a string");
        return;
    }
    int n = snprintf(dst, cap, "%s", v->valuestring);
    if (n < 0 || (size_t)n >= cap)
        jcfg_problem(errs, ctx, key, "too long");
}

void jcfg_bool(const cJSON *obj, const char *ctx, const char *key, bool *dst, struct wbuf *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return;
    if (cJSON_IsBool(v))
        *dst = cJSON_IsTrue(v);
    else
        jcfg_problem(errs, ctx, key, "must be true or false");
}

void jcfg_u32(const cJSON *obj, const char *ctx, const char *key, uint32_t *dst, uint32_t min,
              uint32_t max, struct wbuf *errs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return;
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1.0;
    if (!(d >= (double)min && d <= (double)max) || d != (double)(uint32_t)d) {
        char msg[96];
        snprintf(msg, sizeof msg, "must be a whole number from %u to %u", min, max);
        jcfg_problem(errs, ctx, key, msg);
        return;
    }
    *dst = (uint32_t)d;
}

char *jcfg_read_file(const char *path, size_t max, struct wbuf *errs)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        wbuf_printf(errs, "%s: cannot open\n", path);
        return NULL;
    }
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    bool err = ferror(f) != 0;
    fclose(f);
    if (!buf || err || n > max) {
        wbuf_printf(errs, "%s: %s\n", path, !buf ? "out of memory" : err ? "read error" :
                                                                         "file too large");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}
