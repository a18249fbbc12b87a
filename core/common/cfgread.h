/* cfgread: the one typed reader of JSON configuration (STYLE.md §9) for core, edge and
 * forwarder. A table says, row by row, which key goes where in the caller's struct, with its
 * type, bounds and default; nested objects, lists of strings, arrays and maps of objects, and
 * objects whose "type" member chooses their table are rows too. Every problem becomes one line
 * "path.key: why" in a struct wbuf, so that --check-config can list them all. Environment
 * variables named in a row win over the file. The only user of cJSON in common; callers never
 * see a cJSON type. */
#ifndef GW_CFGREAD_H
#define GW_CFGREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "wbuf.h"

enum cfgread_type {
    CFGREAD_T_SKIP = 0, /* a known key that is not read here (strict tables accept it) */
    CFGREAD_T_STR,      /* char[size]; with conv: a string of at most size-1 bytes for conv */
    CFGREAD_T_BOOL,     /* bool */
    CFGREAD_T_U32,      /* uint32_t, a whole number in [min, max] */
    CFGREAD_T_U64,      /* uint64_t, a whole number in [min, max] */
    CFGREAD_T_DOUBLE,   /* double in [dmin, dmax] */
    CFGREAD_T_ENUM,     /* one of names[], stored as an int */
    CFGREAD_T_LIST,     /* array of strings, each through conv into an element of size bytes */
    CFGREAD_T_OBJ,      /* nested object, read with sub against the same base */
    CFGREAD_T_INLINE,   /* sub's rows (not its check), read from this same object */
    CFGREAD_T_ARRAY,    /* array of objects: elements calloc'd, read with sub */
    CFGREAD_T_MAP,      /* object of named objects: elements calloc'd, named, read with sub */
    CFGREAD_T_VARIANT,  /* object whose tag member ("type") chooses its table, or its text */
    CFGREAD_T_TEXT,     /* object kept as JSON text for the module that owns it to read */
};

#define CFGREAD_REQUIRED 1u   /* absent is a problem (row msg) */
#define CFGREAD_EMPTY_KEEPS 2u /* ENUM: "" keeps the default */
#define CFGREAD_SKIP 1         /* conv: accepted, nothing stored (a LIST does not count it) */

/* Convert string s (borrowed) into dst, a field of base or (LIST) the next element. Returns 0,
 * CFGREAD_SKIP, or < 0 when s is not valid (the row's item_msg, or msg, names the problem). */
typedef int (*cfgread_conv_cb)(void *base, void *dst, const char *s);
/* Checks across keys, run after a table's rows when its object is present: base is what the
 * rows filled, ctx what the caller gave cfgread_text, path the object's path ("" at the top).
 * Report with cfgread_problem. */
typedef void (*cfgread_check_cb)(void *base, void *ctx, const char *path, struct wbuf *errs);

struct cfgread_table;

/* ENUM: a name and its value. VARIANT: the tag's value, and the table of that kind of object
 * (NULL: the object is kept as JSON text instead). A list ends with a NULL name. */
struct cfgread_enum {
    const char *name;
    int value;
    const struct cfgread_table *sub;
};

/* One row; write rows with the CFGREAD_* macros below, which check each field's type. */
struct cfgread_key {
    const char *name;
    enum cfgread_type type;
    unsigned flags;
    size_t off;                /* the field, from base */
    size_t size;               /* STR: capacity; LIST, ARRAY, MAP: element size */
    size_t count_off;          /* LIST, ARRAY, MAP: size_t count */
    size_t name_off, name_cap; /* MAP: char[name_cap] in the element, for the member name */
    size_t text_off;           /* VARIANT: char * for the JSON text (malloc'd, caller frees) */
    uint64_t min, max;         /* U32, U64: value; LIST, ARRAY, MAP: count */
    double dmin, dmax;         /* DOUBLE */
    uint64_t def;              /* BOOL, U32, U64, ENUM, VARIANT */
    double ddef;               /* DOUBLE */
    const char *sdef;          /* STR (through conv when there is one); NULL: none */
    const char *env;           /* scalars: this environment variable wins over the file */
    const struct cfgread_enum *names;
    const struct cfgread_table *sub;
    cfgread_conv_cb conv;
    const char *msg;      /* a wrong shape, a missing required key, a value conv refused */
    const char *item_msg; /* LIST: an element conv refused; MAP: a bad member name */
    const char *many_msg; /* LIST: more than max elements (default item_msg) */
};

struct cfgread_table {
    const struct cfgread_key *keys;
    size_t n;
    bool strict;            /* a member without a row is a problem: "key: unknown key" */
    cfgread_check_cb check; /* may be NULL */
};

#define CFGREAD_TABLE(rows, is_strict, check_cb) {(rows), ARRAY_LEN(rows), (is_strict), (check_cb)}

/* offsetof(T, f), and a build error unless f has type FT. */
#define CFGREAD_OFF(T, f, FT)                                                                      \
    (offsetof(T, f) + 0 * sizeof((FT *)0 == &((T *)0)->f) +                                        \
     0 * sizeof(char[sizeof(((T *)0)->f) == sizeof(FT) ? 1 : -1]))
#define CFGREAD_FSIZE(T, f) sizeof(((T *)0)->f)

#define CFGREAD_SKIPKEY(key) {.name = (key), .type = CFGREAD_T_SKIP}
/* char f[N] in T; dflt: a string or NULL. */
#define CFGREAD_STR(key, T, f, dflt, ...)                                                          \
    {.name = (key), .type = CFGREAD_T_STR, .off = CFGREAD_OFF(T, f[0], char),                      \
     .size = CFGREAD_FSIZE(T, f), .sdef = (dflt), __VA_ARGS__}
/* A string of at most maxlen-1 bytes handed to fn(base, &T.f, s); why: fn refused it. */
#define CFGREAD_CONV(key, T, f, maxlen, fn, dflt, why, ...)                                        \
    {.name = (key), .type = CFGREAD_T_STR, .off = offsetof(T, f), .size = (maxlen), .conv = (fn), \
     .sdef = (dflt), .msg = (why), __VA_ARGS__}
#define CFGREAD_BOOL(key, T, f, dflt, ...)                                                         \
    {.name = (key), .type = CFGREAD_T_BOOL, .off = CFGREAD_OFF(T, f, bool), .def = (dflt),        \
     __VA_ARGS__}
#define CFGREAD_U32(key, T, f, lo, hi, dflt, ...)                                                  \
    {.name = (key), .type = CFGREAD_T_U32, .off = CFGREAD_OFF(T, f, uint32_t), .min = (lo),        \
     .max = (hi), .def = (dflt), __VA_ARGS__}
#define CFGREAD_U64(key, T, f, lo, hi, dflt, ...)                                                  \
    {.name = (key), .type = CFGREAD_T_U64, .off = CFGREAD_OFF(T, f, uint64_t), .min = (lo),        \
     .max = (hi), .def = (dflt), __VA_ARGS__}
#define CFGREAD_DOUBLE(key, T, f, lo, hi, dflt, ...)                                               \
    {.name = (key), .type = CFGREAD_T_DOUBLE, .off = CFGREAD_OFF(T, f, double), .dmin = (lo),      \
     .dmax = (hi), .ddef = (dflt), __VA_ARGS__}
/* f: an enum (int-sized) in T; names: struct cfgread_enum[]. */
#define CFGREAD_ENUM(key, T, f, enum_names, dflt, ...)                                             \
    {.name = (key), .type = CFGREAD_T_ENUM,                                                        \
     .off = offsetof(T, f) + 0 * sizeof(char[CFGREAD_FSIZE(T, f) == sizeof(int) ? 1 : -1]),        \
     .names = (enum_names), .def = (uint64_t)(dflt), __VA_ARGS__}
/* f: an array in T, n: its size_t count; at most hi (and at least lo) elements. */
#define CFGREAD_LIST(key, T, f, n, fn, lo, hi, why, item_why, ...)                                 \
    {.name = (key), .type = CFGREAD_T_LIST, .off = offsetof(T, f),                                 \
     .size = CFGREAD_FSIZE(T, f[0]), .count_off = CFGREAD_OFF(T, n, size_t), .conv = (fn),        \
     .min = (lo),                                                                                  \
     .max = (hi) + 0 * sizeof(char[(hi) <= CFGREAD_FSIZE(T, f) / CFGREAD_FSIZE(T, f[0]) ? 1 : -1]), \
     .msg = (why), .item_msg = (item_why), __VA_ARGS__}
#define CFGREAD_OBJ(key, table, ...)                                                               \
    {.name = (key), .type = CFGREAD_T_OBJ, .sub = (table), __VA_ARGS__}
#define CFGREAD_INLINE(table) {.name = "", .type = CFGREAD_T_INLINE, .sub = (table)}
/* f: ET * in T, NULL before (calloc'd here, freed by the caller), n: its size_t count. */
#define CFGREAD_ARRAY(key, T, f, n, ET, table, lo, hi, why, ...)                                   \
    {.name = (key), .type = CFGREAD_T_ARRAY, .off = CFGREAD_OFF(T, f, ET *), .size = sizeof(ET),  \
     .count_off = CFGREAD_OFF(T, n, size_t), .sub = (table), .min = (lo), .max = (hi),            \
     .msg = (why), __VA_ARGS__}
/* As ARRAY; each member's name goes to ET's char namef[]; name_why: empty or too long. */
#define CFGREAD_MAP(key, T, f, n, ET, namef, table, lo, hi, why, name_why, ...)                    \
    {.name = (key), .type = CFGREAD_T_MAP, .off = CFGREAD_OFF(T, f, ET *), .size = sizeof(ET),    \
     .count_off = CFGREAD_OFF(T, n, size_t), .name_off = CFGREAD_OFF(ET, namef[0], char),         \
     .name_cap = CFGREAD_FSIZE(ET, namef), .sub = (table), .min = (lo), .max = (hi),              \
     .msg = (why), .item_msg = (name_why), __VA_ARGS__}
/* f: an enum in T set from the "type" member; textf: char * in T for kinds kept as text. */
#define CFGREAD_VARIANT(key, T, f, kinds, textf, dflt, why, ...)                                   \
    {.name = (key), .type = CFGREAD_T_VARIANT,                                                     \
     .off = offsetof(T, f) + 0 * sizeof(char[CFGREAD_FSIZE(T, f) == sizeof(int) ? 1 : -1]),        \
     .names = (kinds), .text_off = CFGREAD_OFF(T, textf, char *), .def = (uint64_t)(dflt),        \
     .msg = (why), __VA_ARGS__}

/* textf: char * in T (NULL when absent; malloc'd, the caller frees) for an object that another
 * module reads with its own table (e.g. "audit", read by core/audit's audit_config_parse). */
#define CFGREAD_TEXT(key, T, textf, ...)                                                           \
    {.name = (key), .type = CFGREAD_T_TEXT, .text_off = CFGREAD_OFF(T, textf, char *),             \
     __VA_ARGS__}

/* The member of a VARIANT object that names its kind. */
#define CFGREAD_TAG "type"

/* Set every row's default in base, nested tables (and every VARIANT kind's table) included.
 * Rows without a default, lists and arrays are left as they are (the caller zeroes base). */
void cfgread_defaults(const struct cfgread_table *t, void *base);

struct cfgread_job {
    const struct cfgread_table *table;
    void *base;         /* the struct the rows point into (defaults already set) */
    void *ctx;          /* handed to the check callbacks */
    const char *name;   /* what the text is (a file name), for "name: not a JSON object" */
    const char *prefix; /* the path before every key: "" or e.g. "backend" */
};

/* Parse text (len bytes, need not be NUL-terminated) as a JSON object and read it with j's
 * table; environment overrides are applied. One line per problem is appended to errs. Returns
 * 0 when none was added, ERR_CONFIG, ERR_MALFORMED (not a JSON object: nothing was read), or
 * ERR_NOMEM (errs could not take a line, or out of memory). What ARRAY, MAP and VARIANT rows allocate belongs to the caller, even on failure. */
MUST_CHECK int cfgread_text(const struct cfgread_job *j, const char *text, size_t len,
                            struct wbuf *errs);

/* Read the file at path (at most max bytes) as a NUL-terminated malloc'd string (*len set when
 * len is not NULL); NULL with a line "path: why" in errs. */
char *cfgread_file(const char *path, size_t max, size_t *len, struct wbuf *errs);

/* Append "path.key: msg\n"; path or key may be "" (then no dot). */
void cfgread_problem(struct wbuf *errs, const char *path, const char *key, const char *msg);

#endif
