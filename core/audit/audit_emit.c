/* audit_emit: the one-call events (any thread): each builds its message (audit_events.c) and
 * queues it as a syslog record for the library's thread (audit.c) to deliver. */
#include "audit_int.h"

#include <string.h>

#include "common/log.h"
#include "audit_qrec.h"
#include "syslog_frame.h"

/* ------------------------------------------------------------------ emitting (any thread) */

void audit_log_limited(struct audit *a, const char *ev, const char *what, int rc)
{
    uint64_t now = audit_now_ms(), last = atomic_load(&a->last_log_ms);
    if (last && now - last < LOG_EVERY_MS)
        return;
    if (!atomic_compare_exchange_strong(&a->last_log_ms, &last, now))
        return;
    struct logb b;
    if (log_begin(&b, LOG_ERROR, ev)) {
        log_str(&b, "event", what);
        log_str(&b, "error", rc == ERR_NOSPACE ? "audit queue full" : err_str(rc));
        log_str(&b, "on_full", a->cfg.on_full == AQ_FAIL_CLOSED ? "fail_closed" : "drop_oldest");
        log_end(&b);
    }
}

/* The outcome we rendered (our own output: the first EventOutcomeIndicator). */
static uint8_t outcome_of(const struct wbuf *x)
{
    static const char key[] = "EventOutcomeIndicator=\"";
    const uint8_t *p = x->p;
    size_t kl = sizeof key - 1;
    for (size_t i = 0; p && i + kl + 2 <= x->len; i++) {
        if (memcmp(p + i, key, kl) == 0)
            return p[i + kl] == '0' ? 0 : p[i + kl + 1] == '2' ? 12 : (uint8_t)(p[i + kl] - '0');
    }
    return 0;
}

int audit_frame(const struct audit *a, uint8_t severity, const struct wbuf *x, struct wbuf *m)
{
    struct syslog_hdr h = {.severity = severity,
                           .time_us = audit_wall_us(),
                           .host = a->host,
                           .app = a->app,
                           .procid = a->pid,
                           .msgid = SYSLOG_MSGID_DICOM,
                           .bom = true};
    return syslog_format(m, &h, x->p, x->len);
}

int audit_emit(struct audit *a, const char *what, int rc, struct wbuf *x)
{
    if (rc < 0) {
        audit_log_limited(a, "audit_message_not_built", what, rc);
        wbuf_cleanup(x);
        return rc;
    }
    struct wbuf m;
    wbuf_init(&m, AQ_REC_MAX);
    rc = audit_frame(a, syslog_severity_for_outcome(outcome_of(x)), x, &m);
    wbuf_cleanup(x);
    if (rc == 0)
        rc = aq_append(a->q, m.p, m.len, NULL);
    wbuf_cleanup(&m);
    if (rc < 0) {
        audit_log_limited(a, "audit_message_not_queued", what, rc);
        return rc;
    }
    atomic_fetch_add(&a->appended, 1);
    uv_async_send(&a->wake);
    return 0;
}


int audit_app_start(struct audit *a)
{
    if (!a)
        return 0;
    XML(x);
    return audit_emit(a, "app_start", audit_ev_app(&a->src, true, &x), &x);
}

int audit_app_stop(struct audit *a)
{
    if (!a)
        return 0;
    XML(x);
    return audit_emit(a, "app_stop", audit_ev_app(&a->src, false, &x), &x);
}

int audit_tls_auth(struct audit *a, const struct audit_party *peer, bool ok, const char *reason)
{
    if (!a)
        return 0;
    XML(x);
    int rc = audit_emit(a, "tls_auth", audit_ev_auth(&a->src, peer, ok, reason, &x), &x);
    if (!ok && reason &&
        (strcmp(reason, "revoked") == 0 || strcmp(reason, "expired") == 0 ||
         strcmp(reason, "not_yet_valid") == 0)) {
        char desc[96];
        snprintf(desc, sizeof desc, "certificate %s presented in a TLS handshake", reason);
        int r2 = audit_cert_rejected(a, peer, desc);
        rc = rc < 0 ? rc : r2;
    }
    return rc;
}

int audit_policy_refused(struct audit *a, const struct audit_party *peer, const char *why)
{
    if (!a)
        return 0;
    XML(x);
    return audit_emit(a, "policy_refused",
                audit_ev_alert(&a->src, AUDIT_ALERT_POLICY_REFUSED, peer, NULL, why, 0, &x), &x);
}

int audit_cert_rejected(struct audit *a, const struct audit_party *peer, const char *why)
{
    if (!a)
        return 0;
    XML(x);
    return audit_emit(a, "cert_rejected",
                audit_ev_alert(&a->src, AUDIT_ALERT_CERT_REJECTED, peer, NULL, why, 0, &x), &x);
}

int audit_config_reloaded(struct audit *a, const char *path, bool ok, const char *detail)
{
    if (!a)
        return 0;
    XML(x);
    enum audit_alert k = ok ? AUDIT_ALERT_CONFIG_RELOADED : AUDIT_ALERT_CONFIG_REFUSED;
    const char *d = detail ? detail : ok ? "configuration reloaded" : "reload refused";
    return audit_emit(a, "config_reloaded", audit_ev_alert(&a->src, k, NULL, path, d, 0, &x), &x);
}

int audit_transfer_begin(struct audit *a, const struct audit_xfer *xf)
{
    if (!a)
        return 0;
    XML(x);
    return audit_emit(a, "transfer_begin", audit_ev_begin(&a->src, xf, &x), &x);
}

/* Messages whose outcome is per instance: one for the part that went well (or for nothing at
 * all), one for the part that failed. build(src, what, failed, x) renders one of them. */
typedef int (*split_build)(const struct audit_src *src, const void *what, bool failed,
                           struct wbuf *x);

static int emit_split(struct audit *a, const char *name, const struct audit_sop_count *s,
                      size_t n, split_build build, const void *what)
{
    uint64_t ok = 0, failed = 0;
    for (size_t i = 0; s && i < n; i++) {
        ok += s[i].ok;
        failed += s[i].failed;
    }
    int rc = 0;
    if (ok || !failed) {
        XML(x);
        rc = audit_emit(a, name, build(&a->src, what, false, &x), &x);
    }
    if (failed) {
        XML(x);
        int r2 = audit_emit(a, name, build(&a->src, what, true, &x), &x);
        rc = rc < 0 ? rc : r2;
    }
    return rc;
}

static int build_transferred(const struct audit_src *src, const void *what, bool failed,
                             struct wbuf *x)
{
    return audit_ev_transferred(src, what, failed, x);
}

static int build_commit(const struct audit_src *src, const void *what, bool failed,
                        struct wbuf *x)
{
    return audit_ev_commit(src, what, failed, x);
}

int audit_transfer_end(struct audit *a, const struct audit_xfer *xf)
{
    if (!a)
        return 0;
    return emit_split(a, "transfer_end", xf->sops, xf->n_sops, build_transferred, xf);
}

int audit_query(struct audit *a, const struct audit_query *q)
{
    if (!a)
        return 0;
    XML(x);
    return audit_emit(a, "query", audit_ev_query(&a->src, q, &x), &x);
}

int audit_instances_accessed(struct audit *a, const struct audit_access *acc)
{
    if (!a)
        return 0;
    XML(x);
    return audit_emit(a, "instances_accessed", audit_ev_accessed(&a->src, acc, &x), &x);
}

int audit_commitment(struct audit *a, const struct audit_commit *c)
{
    if (!a)
        return 0;
    return emit_split(a, "commitment", c->sops, c->n_sops, build_commit, c);
}

struct audit_cert audit_cert_from_tls(const struct tls_peer_id *id)
{
    struct audit_cert c = {0};
    if (!id)
        return c;
    c.subject = id->subject[0] ? id->subject : NULL;
    c.issuer = id->issuer[0] ? id->issuer : NULL;
    c.cn = id->cn[0] ? id->cn : NULL;
    c.serial = id->serial[0] ? id->serial : NULL;
    c.fp_sha256 = id->fp_hex[0] ? id->fp_hex : NULL;
    return c;
}

bool audit_is_blocking(struct audit *a)
{
    return a && a->cfg.on_full == AQ_FAIL_CLOSED && aq_is_full(a->q);
}

/* ------------------------------------------------------------------ the audit thread */

