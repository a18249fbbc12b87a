/* log: one JSON object per line on stderr (STYLE.md §9). Callers build a line field by field;
 * values are escaped, the line is written with one write(2). Never log dataset values (PHI). */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Set the component name ("core", "edge") and the lowest level written. Call once at start. */
void log_setup(const char *comp, enum log_level min);
void log_set_level(enum log_level min);
/* Parses "debug|info|warn|error"; returns -1 for anything else. */
int log_level_parse(const char *s);
bool log_enabled(enum log_level lvl);

struct logb {
    char buf[2048];
    size_t len;
    bool trunc;
};

/* Start a line; false (and nothing to end) when the level is filtered out. */
bool log_begin(struct logb *b, enum log_level lvl, const char *ev);
void log_str(struct logb *b, const char *key, const char *val);
/* A string of known length that may hold any bytes (escaped; non-UTF-8 bytes as \u00XX). */
void log_strn(struct logb *b, const char *key, const char *val, size_t n);
void log_u64(struct logb *b, const char *key, uint64_t v);
void log_i64(struct logb *b, const char *key, int64_t v);
void log_hex16(struct logb *b, const char *key, uint16_t v);
void log_bool(struct logb *b, const char *key, bool v);
void log_end(struct logb *b);

/* One-shot: {"ev":ev,"msg":msg}. */
void log_msg(enum log_level lvl, const char *ev, const char *msg);

#endif
