/* metrics: Prometheus counters and gauges, safe to update from any thread (atomics), rendered
 * in the text exposition format 0.0.4. Registration takes a mutex; updates never do. */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stdint.h>

#include "common/wbuf.h"

struct metrics;
struct metric_counter;
struct metric_gauge;

/* A registry; NULL when out of memory. metrics_free(NULL) does nothing. */
struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* Get or create the counter name{labels} (labels: NULL or a preformatted `k="v",k2="v2"`).
 * The registry owns it; it lives until metrics_free. NULL when out of memory, when name or
 * labels are not valid Prometheus syntax, or when name is already a gauge. */
struct metric_counter *metrics_counter(struct metrics *m, const char *name, const char *help,
                                       const char *labels);
/* The same as metrics_counter (get or create); named for call sites that look up lazily. */
struct metric_counter *metrics_counter_get(struct metrics *m, const char *name, const char *help,
                                           const char *labels);
struct metric_gauge *metrics_gauge(struct metrics *m, const char *name, const char *help,
                                   const char *labels);

void metric_inc(struct metric_counter *c);
void metric_add(struct metric_counter *c, uint64_t n);
uint64_t metric_counter_value(const struct metric_counter *c);
void metric_gauge_set(struct metric_gauge *g, int64_t v);
void metric_gauge_add(struct metric_gauge *g, int64_t delta);
int64_t metric_gauge_value(const struct metric_gauge *g);

/* Append every metric, grouped by name with one HELP and TYPE line each. 0 or the wbuf error. */
MUST_CHECK int metrics_render(struct metrics *m, struct wbuf *out);

#endif
