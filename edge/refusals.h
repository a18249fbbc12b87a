/* refusals: how many connections and associations the edge refused in the last hour, by path
 * (the modalities' listener or the reverse one) and reason, for `dicom-edge status`. A fixed
 * table of one-minute buckets: memory does not grow with hostile traffic (reasons beyond the
 * table's size are counted as "other"). One loop: no locking. Pure (time is passed in). */
#ifndef GW_REFUSALS_H
#define GW_REFUSALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REFUSALS_REASONS 48
#define REFUSALS_MINUTES 60
#define REFUSALS_REASON_LEN 48

struct refusals_row {
    bool reverse;
    char reason[REFUSALS_REASON_LEN];
    uint32_t n[REFUSALS_MINUTES];
    uint64_t minute[REFUSALS_MINUTES]; /* which minute n[i] counts (minute number + 1; 0 unused) */
};

struct refusals {
    size_t n_rows;
    struct refusals_row rows[REFUSALS_REASONS];
};

void refusals_init(struct refusals *r);
/* One refusal for reason (a short token; cut at 47 bytes) on the reverse path or not, at now_ms
 * (a monotonic clock in milliseconds). */
void refusals_add(struct refusals *r, bool reverse, const char *reason, uint64_t now_ms);
/* The number refused for row i in the hour before now_ms (0 when i is past the rows). */
uint64_t refusals_last_hour(const struct refusals *r, size_t i, uint64_t now_ms);

#endif
