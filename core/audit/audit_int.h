/* audit_int: what the audit library's own files share: the struct behind struct audit
 * (audit.c: its thread, queue and transports; audit_emit.c: the one-call events, on any thread).
 * Not for other modules. */
#ifndef GW_AUDIT_INT_H
#define GW_AUDIT_INT_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "audit.h"
#include "audit_hash.h"
#include "audit_msg.h"
#include "audit_queue.h"
#include "audit_tx.h"

#define TICK_MS 100u
#define LOG_EVERY_MS 10000u /* rate limit of the emit-side error log */

struct audit {
    struct audit_config cfg;
    char app[49], ae[17], prefix[64], host[256], source[256];
    uint8_t key[AUDIT_KEY_MAX];
    size_t key_len;
    struct audit_src src;
    uint32_t pid;
    struct aq *q;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t tick;
    uv_thread_t thread;
    bool thread_started, shutting_down;
    struct audit_tx *tx[AUDIT_MAX_REPOS];
    size_t n_tx, tx_open;
    atomic_bool up[AUDIT_MAX_REPOS];
    atomic_bool stopping;
    uint64_t stop_deadline_ms;
    atomic_uint_fast64_t appended;
    uint64_t synced;
    atomic_uint_fast64_t last_log_ms;
    struct aq_stats last;
    struct metric_gauge *m_depth, *m_bytes, *m_blocking;
    struct metric_counter *m_dropped, *m_refused;
};

#define XML(x)                                                                                     \
    struct wbuf x;                                                                                 \
    wbuf_init(&x, AUDIT_XML_MAX)

uint64_t audit_now_ms(void);
/* An error log line about what, at most one every LOG_EVERY_MS (any thread). */
void audit_log_limited(struct audit *a, const char *ev, const char *what, int rc);
int64_t audit_wall_us(void);
/* The syslog record (RFC 5424, MSGID DICOM, BOM) of the XML in x, appended to m. 0 or < 0. */
int audit_frame(const struct audit *a, uint8_t severity, const struct wbuf *x, struct wbuf *m);
/* Build-and-queue: the XML in x (freed here) becomes one syslog record in the queue; the
 * thread is woken. rc: the builder's result (< 0: nothing to queue). 0 or < 0 (logged, rate
 * limited). */
int audit_emit(struct audit *a, const char *what, int rc, struct wbuf *x);

#endif
