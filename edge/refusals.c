#include "refusals.h"

#include <stdio.h>
#include <string.h>

void refusals_init(struct refusals *r)
{
    memset(r, 0, sizeof *r);
}

static struct refusals_row *row_for(struct refusals *r, bool reverse, const char *reason)
{
    char key[REFUSALS_REASON_LEN];
    snprintf(key, sizeof key, "%s", reason ? reason : "unknown");
    for (size_t i = 0; i < r->n_rows; i++) {
        if (r->rows[i].reverse == reverse && strcmp(r->rows[i].reason, key) == 0)
            return &r->rows[i];
    }
    if (r->n_rows == REFUSALS_REASONS - 1 && strcmp(key, "other") != 0)
        return row_for(r, reverse, "other"); /* the last row is kept for the overflow */
    if (r->n_rows == REFUSALS_REASONS)
        return &r->rows[REFUSALS_REASONS - 1];
    struct refusals_row *w = &r->rows[r->n_rows++];
    w->reverse = reverse;
    memcpy(w->reason, key, sizeof key);
    return w;
}

void refusals_add(struct refusals *r, bool reverse, const char *reason, uint64_t now_ms)
{
    struct refusals_row *w = row_for(r, reverse, reason);
    uint64_t minute = now_ms / 60000u + 1;
    size_t b = (size_t)(minute % REFUSALS_MINUTES);
    if (w->minute[b] != minute) { /* a bucket an hour old (or never used) starts again */
        w->minute[b] = minute;
        w->n[b] = 0;
    }
    if (w->n[b] < UINT32_MAX)
        w->n[b]++;
}

uint64_t refusals_last_hour(const struct refusals *r, size_t i, uint64_t now_ms)
{
    if (i >= r->n_rows)
        return 0;
    uint64_t minute = now_ms / 60000u + 1, sum = 0;
    const struct refusals_row *w = &r->rows[i];
    for (size_t b = 0; b < REFUSALS_MINUTES; b++) {
        if (w->minute[b] != 0 && w->minute[b] + REFUSALS_MINUTES > minute)
            sum += w->n[b];
    }
    return sum;
}
