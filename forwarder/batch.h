/* batch: the pure decisions of the import path, kept free of I/O so that they are unit-tested
 * directly: when a batch (one future HealthImaging import job) must close, how import job
 * starts are paced to the StartDICOMImportJob quota, and how long to back off between attempts
 * (exponential with full jitter). Times are milliseconds on a monotonic clock. */
#ifndef GW_BATCH_H
#define GW_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"

#define BATCH_ID_MAX 48 /* "b-20261124T030000Z-0123abcd" plus room */

struct batch_limits {
    uint32_t max_objects;
    uint64_t max_bytes;
    uint32_t max_age_ms;
};

struct batch_fill {
    uint32_t objects;
    uint64_t bytes;
    uint64_t opened_ms;
};

/* True when an object of obj_bytes may join a batch holding fill without breaking a limit. An
 * empty batch accepts any single object (a lone object larger than max_bytes still needs a
 * job of its own). */
bool batch_accepts(const struct batch_fill *fill, const struct batch_limits *lim,
                   uint64_t obj_bytes);
/* True when the batch must close now: full by count or bytes, or older than max_age_ms with at
 * least one object. */
bool batch_due(const struct batch_fill *fill, const struct batch_limits *lim, uint64_t now_ms);
/* Milliseconds until batch_due turns true through age alone (0 if already due, UINT64_MAX for
 * an empty batch). */
uint64_t batch_ms_until_due(const struct batch_fill *fill, const struct batch_limits *lim,
                            uint64_t now_ms);

/* "b-YYYYMMDDTHHMMSSZ-<8 hex>" (CONTRACTS.md S3 layout) from a UTC time and 32 random bits.
 * It is also the StartDICOMImportJob clientToken and jobName. 0 or ERR_LIMIT. */
MUST_CHECK int batch_id_make(char *out, size_t cap, time_t utc, uint32_t rnd);
/* True when s has the shape batch_id_make produces (journal and CLI input). */
bool batch_id_valid(const char *s);

/* A token bucket of capacity 1 refilled at tps per second: StartDICOMImportJob pacing. */
struct batch_pacer {
    double tps;
    double tokens;
    uint64_t last_ms;
};
void batch_pacer_init(struct batch_pacer *p, double tps, uint64_t now_ms);
/* Take a token if one is there (returns 0), else return the milliseconds to wait (>0). */
uint64_t batch_pacer_take(struct batch_pacer *p, uint64_t now_ms);

/* Full-jitter exponential backoff: a delay uniform in [0, min(cap_ms, base_ms * 2^attempt)],
 * from rnd (any 32 random bits). attempt 0 is the first retry. */
uint64_t batch_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms, uint32_t rnd);

#endif
