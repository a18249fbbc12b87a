#include "cfgread.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_CAP 256

struct reader {
    void *ctx;
    struct wbuf *errs;
    int rc; /* ERR_NOMEM once an allocation failed */
};

static void read_table(struct reader *r, const cJSON *obj, const struct cfgread_table *t,
                       void *base, const char *path);

void cfgread_problem(struct wbuf *errs, const char *path, const char *key, const char *msg)
{
    wbuf_printf(errs, "%s%s%s: %s\n", path, path[0] && key[0] ? "." : "", key, msg);
}

static void *field(void *base, size_t off)
{
    return (char *)base + off;
}

static void put_int(void *base, size_t off, int v)
{
    memcpy(field(base, off), &v, sizeof v);
}

static void put_count(void *base, size_t off, size_t n)
{
    memcpy(field(base, off), &n, sizeof n);
}

/* path.key into out (truncated to fit: it only names things in messages). */
static void join(char out[PATH_CAP], const char *path, const char *key)
{
    if (snprintf(out, PATH_CAP, "%s%s%s", path, path[0] ? "." : "", key) < 0)
        out[0] = '\0';
}

void cfgread_defaults(const struct cfgread_table *t, void *base)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct cfgread_key *k = &t->keys[i];
        void *dst = field(base, k->off);
        switch (k->type) {
        case CFGREAD_T_STR:
            if (k->sdef && k->conv)
                (void)k->conv(base, dst, k->sdef); /* our own defaults convert */
            else if (k->sdef)
                snprintf(dst, k->size, "%s", k->sdef);
            break;
        case CFGREAD_T_BOOL: *(bool *)dst = k->def != 0; break;
        case CFGREAD_T_U32: {
            uint32_t v = (uint32_t)k->def;
            memcpy(dst, &v, sizeof v);
            break;
        }
        case CFGREAD_T_U64: memcpy(dst, &k->def, sizeof k->def); break;
        case CFGREAD_T_DOUBLE: memcpy(dst, &k->ddef, sizeof k->ddef); break;
        case CFGREAD_T_ENUM: put_int(base, k->off, (int)k->def); break;
        case CFGREAD_T_OBJ:
        case CFGREAD_T_INLINE: cfgread_defaults(k->sub, base); break;
        case CFGREAD_T_VARIANT:
            put_int(base, k->off, (int)k->def);
            for (const struct cfgread_enum *e = k->names; e->name; e++) {
                if (e->sub)
                    cfgread_defaults(e->sub, base);
            }
            break;
        default: break;
        }
    }
}

/* 'must be "a", "b" or "c"' into out. */
static void enum_msg(const struct cfgread_enum *names, char *out, size_t cap)
{
    size_t n = 0, used = 0;
    while (names[n].name)
        n++;
    used = (size_t)snprintf(out, cap, "must be");
    for (size_t i = 0; i < n && used < cap; i++) {
        const char *sep = i == 0 ? " " : i + 1 == n ? " or " : ", ";
        used += (size_t)snprintf(out + used, cap - used, "%s\"%s\"", sep, names[i].name);
    }
}

static const struct cfgread_enum *enum_find(const struct cfgread_enum *names, const char *s)
{
    for (const struct cfgread_enum *e = names; e->name; e++) {
        if (strcmp(e->name, s) == 0)
            return e;
    }
    return NULL;
}

/* A whole number in [min, max] (max <= 2^64 - 1; the double test keeps the cast defined). */
static bool whole_in(double d, uint64_t min, uint64_t max)
{
    return d >= (double)min && d <= (double)max && d < 18446744073709551616.0 &&
           d == (double)(uint64_t)d;
}

/* One scalar value v (from the file or the environment) for row k; key names it in problems. */
static void read_scalar(struct reader *r, const cJSON *v, const struct cfgread_key *k,
                        void *base, const char *path, const char *key)
{
    void *dst = field(base, k->off);
    char msg[160];
    switch (k->type) {
    case CFGREAD_T_STR: {
        if (!cJSON_IsString(v) || !v->valuestring) {
            cfgread_problem(r->errs, path, key, "must be a string");
            return;
        }
        size_t len = strnlen(v->valuestring, k->size);
        if (len >= k->size) {
            cfgread_problem(r->errs, path, key, "too long");
            return;
        }
        if (!k->conv)
            memcpy(dst, v->valuestring, len + 1);
        else if (k->conv(base, dst, v->valuestring) < 0)
            cfgread_problem(r->errs, path, key, k->msg ? k->msg : "is not valid");
        return;
    }
    case CFGREAD_T_BOOL:
        if (cJSON_IsBool(v))
            *(bool *)dst = cJSON_IsTrue(v);
        else
            cfgread_problem(r->errs, path, key, "must be true or false");
        return;
    case CFGREAD_T_U32:
    case CFGREAD_T_U64: {
        uint64_t max = k->type == CFGREAD_T_U32 && k->max > UINT32_MAX ? UINT32_MAX : k->max;
        if (!cJSON_IsNumber(v) || !whole_in(v->valuedouble, k->min, max)) {
            snprintf(msg, sizeof msg, "must be a whole number from %llu to %llu",
                     (unsigned long long)k->min, (unsigned long long)max);
            cfgread_problem(r->errs, path, key, msg);
            return;
        }
        if (k->type == CFGREAD_T_U64) {
            uint64_t u = (uint64_t)v->valuedouble;
            memcpy(dst, &u, sizeof u);
        } else {
            uint32_t u = (uint32_t)v->valuedouble;
            memcpy(dst, &u, sizeof u);
        }
        return;
    }
    case CFGREAD_T_DOUBLE:
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= k->dmin && v->valuedouble <= k->dmax)) {
            snprintf(msg, sizeof msg, "must be a number from %.17g to %.17g", k->dmin, k->dmax);
            cfgread_problem(r->errs, path, key, msg);
            return;
        }
        memcpy(dst, &v->valuedouble, sizeof(double));
        return;
    case CFGREAD_T_ENUM: {
        if (!cJSON_IsString(v) || !v->valuestring) {
            cfgread_problem(r->errs, path, key, "must be a string");
            return;
        }
        if (!v->valuestring[0] && (k->flags & CFGREAD_EMPTY_KEEPS))
            return;
        const struct cfgread_enum *e = enum_find(k->names, v->valuestring);
        if (e) {
            put_int(base, k->off, e->value);
            return;
        }
        enum_msg(k->names, msg, sizeof msg);
        cfgread_problem(r->errs, path, key, k->msg ? k->msg : msg);
        return;
    }
    default: return;
    }
}

/* The environment's value for row k as a JSON node (NULL: none, or a problem reported). */
static cJSON *env_value(struct reader *r, const struct cfgread_key *k)
{
    const char *s = k->env ? getenv(k->env) : NULL;
    if (!s)
        return NULL;
    cJSON *v = NULL;
    if (k->type == CFGREAD_T_BOOL) {
        if (strcmp(s, "true") != 0 && strcmp(s, "false") != 0) {
            cfgread_problem(r->errs, "", k->env, "must be true or false");
            return NULL;
        }
        v = cJSON_CreateBool(strcmp(s, "true") == 0);
    } else if (k->type == CFGREAD_T_U32 || k->type == CFGREAD_T_U64 ||
               k->type == CFGREAD_T_DOUBLE) {
        char *end;
        errno = 0;
        double d = strtod(s, &end);
        if (errno || *end || end == s) {
            cfgread_problem(r->errs, "", k->env, "must be a number");
            return NULL;
        }
        v = cJSON_CreateNumber(d);
    } else {
        v = cJSON_CreateString(s);
    }
    if (!v)
        r->rc = ERR_NOMEM;
    return v;
}

static void read_list(struct reader *r, const cJSON *v, const struct cfgread_key *k, void *base,
                      const char *path)
{
    int size = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    put_count(base, k->count_off, 0); /* present: the list replaces the default */
    if (size < 0 || (uint64_t)size < k->min) {
        cfgread_problem(r->errs, path, "", k->msg ? k->msg : "must be an array of strings");
        if (size < 0)
            return;
    }
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        if (!cJSON_IsString(it) || !it->valuestring) {
            cfgread_problem(r->errs, path, "", "entries must be strings");
            continue;
        }
        if (n >= k->max) {
            cfgread_problem(r->errs, path, "", k->many_msg ? k->many_msg : k->item_msg);
            break;
        }
        int rc = k->conv(base, field(base, k->off + n * k->size), it->valuestring);
        if (rc < 0)
            cfgread_problem(r->errs, path, "", k->item_msg);
        else if (rc != CFGREAD_SKIP)
            put_count(base, k->count_off, ++n);
    }
}

/* ARRAY and MAP: calloc the elements, then read each with k->sub. */
static void read_elements(struct reader *r, const cJSON *v, const struct cfgread_key *k,
                          void *base, const char *path)
{
    bool map = k->type == CFGREAD_T_MAP;
    int size = (map ? cJSON_IsObject(v) : cJSON_IsArray(v)) ? cJSON_GetArraySize(v) : -1;
    if (size < 0 || (uint64_t)size < k->min || (uint64_t)size > k->max) {
        cfgread_problem(r->errs, path, "", k->msg);
        return;
    }
    void *elems = calloc(size > 0 ? (size_t)size : 1, k->size);
    if (!elems) {
        cfgread_problem(r->errs, path, "", "out of memory");
        r->rc = ERR_NOMEM;
        return;
    }
    memcpy(field(base, k->off), &elems, sizeof elems);
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        void *e = (char *)elems + n * k->size;
        char sub[PATH_CAP];
        cfgread_defaults(k->sub, e);
        if (map) {
            char *name = field(e, k->name_off);
            int len = snprintf(name, k->name_cap, "%s", it->string ? it->string : "");
            if (len <= 0 || (size_t)len >= k->name_cap)
                cfgread_problem(r->errs, path, "", k->item_msg);
            join(sub, path, name);
        } else {
            if (snprintf(sub, sizeof sub, "%s[%zu]", path, n) < 0)
                sub[0] = '\0';
        }
        if (cJSON_IsObject(it))
            read_table(r, it, k->sub, e, sub);
        else
            cfgread_problem(r->errs, sub, "", "must be an object");
        put_count(base, k->count_off, ++n);
    }
}

static void keep_text(struct reader *r, const cJSON *v, const struct cfgread_key *k, void *base,
                      const char *path);

static void read_variant(struct reader *r, const cJSON *v, const struct cfgread_key *k,
                         void *base, const char *path)
{
    const cJSON *tag = cJSON_GetObjectItemCaseSensitive(v, CFGREAD_TAG);
    if (!cJSON_IsObject(v) || !cJSON_IsString(tag) || !tag->valuestring) {
        cfgread_problem(r->errs, path, "", k->msg ? k->msg : "must be an object with a type");
        return;
    }
    const struct cfgread_enum *e = enum_find(k->names, tag->valuestring);
    if (!e) {
        char msg[160];
        enum_msg(k->names, msg, sizeof msg);
        cfgread_problem(r->errs, path, CFGREAD_TAG, msg);
        return;
    }
    put_int(base, k->off, e->value);
    if (e->sub) {
        read_table(r, v, e->sub, base, path);
        return;
    }
    keep_text(r, v, k, base, path);
}

/* v's JSON text into the row's char * field (ours, so that the caller frees with free()). */
static void keep_text(struct reader *r, const cJSON *v, const struct cfgread_key *k, void *base,
                      const char *path)
{
    char *text = cJSON_PrintUnformatted(v);
    size_t len = text ? strlen(text) : 0;
    char *copy = text ? malloc(len + 1) : NULL; /* ours, so that the caller frees with free() */
    if (copy)
        memcpy(copy, text, len + 1);
    cJSON_free(text);
    if (!copy) {
        cfgread_problem(r->errs, path, "", "out of memory");
        r->rc = ERR_NOMEM;
        return;
    }
    char *old;
    memcpy(&old, field(base, k->text_off), sizeof old);
    free(old);
    memcpy(field(base, k->text_off), &copy, sizeof copy);
}

static bool is_scalar(enum cfgread_type t)
{
    return t == CFGREAD_T_STR || t == CFGREAD_T_BOOL || t == CFGREAD_T_U32 ||
           t == CFGREAD_T_U64 || t == CFGREAD_T_DOUBLE || t == CFGREAD_T_ENUM;
}

static void read_rows(struct reader *r, const cJSON *obj, const struct cfgread_table *t,
                      void *base, const char *path)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct cfgread_key *k = &t->keys[i];
        if (k->type == CFGREAD_T_INLINE) {
            read_rows(r, obj, k->sub, base, path);
            continue;
        }
        if (k->type == CFGREAD_T_SKIP)
            continue;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, k->name);
        char sub[PATH_CAP];
        join(sub, path, k->name);
        if (is_scalar(k->type)) {
            cJSON *ev = env_value(r, k);
            if (ev) {
                read_scalar(r, ev, k, base, "", k->env);
                cJSON_Delete(ev);
            } else if (v) {
                read_scalar(r, v, k, base, path, k->name);
            }
            continue;
        }
        if (!v) {
            if (k->flags & CFGREAD_REQUIRED)
                cfgread_problem(r->errs, sub, "", k->msg ? k->msg : "required");
            continue;
        }
        switch (k->type) {
        case CFGREAD_T_LIST: read_list(r, v, k, base, sub); break;
        case CFGREAD_T_OBJ:
            if (cJSON_IsObject(v))
                read_table(r, v, k->sub, base, sub);
            else
                cfgread_problem(r->errs, sub, "", k->msg ? k->msg : "must be an object");
            break;
        case CFGREAD_T_ARRAY:
        case CFGREAD_T_MAP: read_elements(r, v, k, base, sub); break;
        case CFGREAD_T_VARIANT: read_variant(r, v, k, base, sub); break;
        case CFGREAD_T_TEXT:
            if (cJSON_IsObject(v))
                keep_text(r, v, k, base, sub);
            else
                cfgread_problem(r->errs, sub, "", k->msg ? k->msg : "must be an object");
            break;
        default: break;
        }
    }
}

static bool has_row(const struct cfgread_table *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct cfgread_key *k = &t->keys[i];
        if (k->type == CFGREAD_T_INLINE ? has_row(k->sub, name) : strcmp(k->name, name) == 0)
            return true;
    }
    return false;
}

static void read_table(struct reader *r, const cJSON *obj, const struct cfgread_table *t,
                       void *base, const char *path)
{
    if (t->strict) {
        for (const cJSON *it = obj->child; it; it = it->next) {
            if (!it->string || !has_row(t, it->string))
                cfgread_problem(r->errs, path, it->string ? it->string : "?", "unknown key");
        }
    }
    read_rows(r, obj, t, base, path);
    if (t->check)
        t->check(base, r->ctx, path, r->errs);
}

int cfgread_text(const struct cfgread_job *j, const char *text, size_t len, struct wbuf *errs)
{
    size_t before = errs->len;
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(root)) {
        const char *at = root ? NULL : cJSON_GetErrorPtr();
        long near = at && at >= text && at <= text + len ? (long)(at - text) : 0L;
        wbuf_printf(errs, "%s: not a JSON object (error near byte %ld)\n", j->name, near);
        cJSON_Delete(root);
        return errs->err ? ERR_NOMEM : ERR_MALFORMED;
    }
    struct reader r = {.ctx = j->ctx, .errs = errs};
    read_table(&r, root, j->table, j->base, j->prefix);
    cJSON_Delete(root);
    if (errs->err || r.rc < 0)
        return ERR_NOMEM;
    return errs->len > before ? ERR_CONFIG : 0;
}

char *cfgread_file(const char *path, size_t max, size_t *len, struct wbuf *errs)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        wbuf_printf(errs, "%s: cannot open: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = max < SIZE_MAX ? malloc(max + 1) : NULL;
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
    if (len)
        *len = n;
    return buf;
}
