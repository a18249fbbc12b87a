/* limits: the edge's counters that outlive a policy reload: new connections per source
 * address per minute (a fixed-size table: memory does not grow with hostile sources), and
 * concurrent and per-minute associations per policy client id. One loop: no locking. */
#ifndef GW_LIMITS_H
#define GW_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/err.h"

#define LIMITS_SRC_SLOTS 4096

struct limits_src {
    uint8_t addr[16];
    uint8_t used;
    uint64_t window; /* minute number */
    uint32_t count;
    uint32_t suppressed; /* log lines held back (log table only) */
};

#define LIMITS_LOG_PER_MINUTE 30 /* refusal log lines per source address per minute */

struct limits_client {
    char id[129];
    uint32_t active;
    uint64_t window;
    uint32_t count;
};

struct limits {
    struct limits_src src[LIMITS_SRC_SLOTS];
    struct limits_src logs[LIMITS_SRC_SLOTS];
    struct limits_client *clients;
    size_t n_clients, cap_clients;
};

void limits_init(struct limits *l);
void limits_cleanup(struct limits *l);
/* Count a new connection from sa at now_ms; false when that source is over per_minute
 * (0: no bound). A full table evicts the oldest window in the probed run. */
bool limits_source_allow(struct limits *l, const struct sockaddr *sa, uint64_t now_ms,
                         uint32_t per_minute);
/* Rate-limit refusal log lines per source (STYLE.md §9): -1 when this line is to be
 * suppressed, else how many were suppressed before it (to be reported on it). */
int64_t limits_log_allow(struct limits *l, const struct sockaddr *sa, uint64_t now_ms);
/* Take an association slot for client id: 0; ERR_LIMIT when over max_active or max_per_minute
 * (0: no bound; *why says which); ERR_NOMEM. */
MUST_CHECK int limits_client_take(struct limits *l, const char *id, uint64_t now_ms,
                                  uint32_t max_active, uint32_t max_per_minute,
                                  const char **why);
/* Give back a slot taken with limits_client_take. */
void limits_client_put(struct limits *l, const char *id);

#endif
