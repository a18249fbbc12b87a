#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *g_comp = "gw";
static enum log_level g_min = LOG_INFO;
static const char *const g_names[] = {"debug", "info", "warn", "error"};

void log_setup(const char *comp, enum log_level min)
{
    g_comp = comp;
    g_min = min;
}

void log_set_level(enum log_level min)
{
    g_min = min;
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, g_names[i]) == 0)
            return i;
    }
    return -1;
}

bool log_enabled(enum log_level lvl)
{
    return lvl >= g_min;
}

static void put_raw(struct logb *b, const char *s, size_t n)
{
    /* keep room for the closing "}\n" */
    if (b->trunc || n > sizeof b->buf - 3 - b->len) {
        b->trunc = true;
        return;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
}

static void put_escaped(struct logb *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    put_raw(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put_raw(b, e, 2);
        } else if (c < 0x20 || c >= 0x7f) {
            /* control and non-ASCII bytes: never trust them to be valid UTF-8 */
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put_raw(b, e, 6);
        } else {
            put_raw(b, (const char *)&c, 1);
        }
    }
    put_raw(b, "\"", 1);
}

static void put_key(struct logb *b, const char *key)
{
    put_raw(b, ",", 1);
    put_escaped(b, key, strlen(key));
    put_raw(b, ":", 1);
}

bool log_begin(struct logb *b, enum log_level lvl, const char *ev)
{
    if (!log_enabled(lvl))
        return false;
    b->len = 0;
    b->trunc = false;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    int n = snprintf(ts, sizeof ts, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000));
    if (n > 0 && (size_t)n < sizeof ts)
        put_raw(b, ts, (size_t)n);
    log_str(b, "lvl", g_names[lvl]);
    log_str(b, "comp", g_comp);
    log_str(b, "ev", ev);
    return true;
}

void log_str(struct logb *b, const char *key, const char *val)
{
    log_strn(b, key, val ? val : "", val ? strlen(val) : 0);
}

/* A field that does not fit is dropped whole, so the line stays valid JSON. */
static void field_done(struct logb *b, size_t start)
{
    if (b->trunc)
        b->len = start;
}

void log_strn(struct logb *b, const char *key, const char *val, size_t n)
{
    size_t start = b->len;
    put_key(b, key);
    put_escaped(b, val, n);
    field_done(b, start);
}

void log_u64(struct logb *b, const char *key, uint64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%" PRIu64, v);
    size_t start = b->len;
    put_key(b, key);
    put_raw(b, t, (size_t)n);
    field_done(b, start);
}

void log_i64(struct logb *b, const char *key, int64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%" PRId64, v);
    size_t start = b->len;
    put_key(b, key);
    put_raw(b, t, (size_t)n);
    field_done(b, start);
}

void log_hex16(struct logb *b, const char *key, uint16_t v)
{
    char t[8];
    int n = snprintf(t, sizeof t, "%04X", v);
    log_strn(b, key, t, (size_t)n);
}

void log_bool(struct logb *b, const char *key, bool v)
{
    size_t start = b->len;
    put_key(b, key);
    put_raw(b, v ? "true" : "false", v ? 4 : 5);
    field_done(b, start);
}

void log_end(struct logb *b)
{
    static const char mark[] = ",\"trunc\":true";
    if (b->trunc && b->len + sizeof mark + 1 <= sizeof b->buf) {
        memcpy(b->buf + b->len, mark, sizeof mark - 1);
        b->len += sizeof mark - 1;
    }
    b->buf[b->len++] = '}';
    b->buf[b->len++] = '\n';
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = write(STDERR_FILENO, b->buf + off, b->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* nowhere left to report a logging failure */
        off += (size_t)w;
    }
}

void log_msg(enum log_level lvl, const char *ev, const char *msg)
{
    struct logb b;
    if (!log_begin(&b, lvl, ev))
        return;
    log_str(&b, "msg", msg);
    log_end(&b);
}
