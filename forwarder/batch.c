#include "batch.h"

#include <stdio.h>
#include <string.h>

#include "aws/http.h"

bool batch_accepts(const struct batch_fill *fill, const struct batch_limits *lim,
                   uint64_t obj_bytes)
{
    if (fill->objects == 0)
        return true;
    if (fill->objects >= lim->max_objects)
        return false;
    uint64_t sum;
    if (__builtin_add_overflow(fill->bytes, obj_bytes, &sum))
        return false;
    return sum <= lim->max_bytes;
}

bool batch_due(const struct batch_fill *fill, const struct batch_limits *lim, uint64_t now_ms)
{
    if (fill->objects == 0)
        return false;
    if (fill->objects >= lim->max_objects || fill->bytes >= lim->max_bytes)
        return true;
    return now_ms >= fill->opened_ms && now_ms - fill->opened_ms >= lim->max_age_ms;
}

uint64_t batch_ms_until_due(const struct batch_fill *fill, const struct batch_limits *lim,
                            uint64_t now_ms)
{
    if (fill->objects == 0)
        return UINT64_MAX;
    if (batch_due(fill, lim, now_ms))
        return 0;
    uint64_t age = now_ms >= fill->opened_ms ? now_ms - fill->opened_ms : 0;
    return lim->max_age_ms - age;
}

int batch_id_make(char *out, size_t cap, time_t utc, uint32_t rnd)
{
    struct tm tm;
    if (!gmtime_r(&utc, &tm))
        return ERR_LIMIT;
    int n = snprintf(out, cap, "b-%04d%02d%02dT%02d%02d%02dZ-%08x", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rnd);
    return n < 0 || (size_t)n >= cap ? ERR_LIMIT : 0;
}

bool batch_id_valid(const char *s)
{
    /* b-YYYYMMDDTHHMMSSZ-hhhhhhhh */
    static const char shape[] = "b-ddddddddTddddddZ-xxxxxxxx";
    size_t i;
    for (i = 0; shape[i]; i++) {
        char c = s[i];
        if (!c)
            return false;
        if (shape[i] == 'd' && !(c >= '0' && c <= '9'))
            return false;
        if (shape[i] == 'x' && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        if (shape[i] != 'd' && shape[i] != 'x' && c != shape[i])
            return false;
    }
    return s[i] == '\0';
}

void batch_pacer_init(struct batch_pacer *p, double tps, uint64_t now_ms)
{
    p->tps = tps > 0 ? tps : 1.0;
    p->tokens = 1.0;
    p->last_ms = now_ms;
}

uint64_t batch_pacer_take(struct batch_pacer *p, uint64_t now_ms)
{
    if (now_ms > p->last_ms) {
        p->tokens += (double)(now_ms - p->last_ms) * p->tps / 1000.0;
        if (p->tokens > 1.0)
            p->tokens = 1.0;
        p->last_ms = now_ms;
    }
    if (p->tokens >= 1.0 - 1e-9) {
        p->tokens -= 1.0;
        return 0;
    }
    double wait = (1.0 - p->tokens) * 1000.0 / p->tps;
    uint64_t w = (uint64_t)wait + 1;
    return w;
}

uint64_t batch_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms, uint32_t rnd)
{
    uint64_t ceil = http_backoff_ceiling_ms(attempt, base_ms, cap_ms);
    return ceil == 0 ? 0 : (uint64_t)rnd % (ceil + 1);
}
