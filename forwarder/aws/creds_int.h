/* creds_int: what the files of the standard credentials chain share (creds.c: the provider's
 * life cycle, cache and refresh; creds_fetch.c: the ECS and IMDS fetches). */
#ifndef GW_CREDS_INT_H
#define GW_CREDS_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "creds.h"
#include "http.h"

struct waiter {
    creds_cb cb;
    void *arg;
    struct waiter *next;
};

/* The chain: a creds_provider (first member) with its cache and its fetch in progress. */
struct creds_chain {
    struct creds_provider base;
    struct http_client *http;
    uv_loop_t *loop;
    struct aws_creds cur;
    bool have;
    char *ecs_url, *ecs_token, *ecs_token_file, *imds_base;
    bool fetching, closing;
    int inflight;      /* http requests of ours not yet called back */
    int live_handles;  /* timers not yet closed */
    struct waiter *waiters;
    uv_timer_t refresh; /* scheduled refresh / retry after failure */
    uv_timer_t kick;    /* delivers callbacks on the next loop turn */
    unsigned failures;
    char imds_token[256];
    char imds_role[256];
};

/* creds.c: a fetch ended with err (0: *nc holds the new credentials, wiped here; else nc is
 * NULL). Stores them, schedules the next refresh and answers the waiters. */
void creds_fetch_done(struct creds_chain *p, int err, struct aws_creds *nc);
/* creds.c: free p once it is closing and nothing of it is in flight. */
void creds_maybe_free(struct creds_chain *p);

/* creds_fetch.c: start a fetch from the ECS endpoint / from IMDSv2; it ends in
 * creds_fetch_done. 0, or < 0 when nothing could be sent (then it never ends). */
MUST_CHECK int creds_fetch_ecs(struct creds_chain *p);
MUST_CHECK int creds_fetch_imds(struct creds_chain *p);

#endif
