#include "proxy_audit.h"

#include <stdio.h>
#include <string.h>

#include "proxy_int.h"
#include "sop_service.h"

const char *proxy_audit_status(int status)
{
    return status == UV_EOF ? "closed" : status < 0 && status > -4096 ? uv_strerror(status) :
                                                                        err_str(status);
}

void proxy_audit_conn(struct logb *lb, const struct edge_conn *c)
{
    log_u64(lb, "conn", c->id);
    log_str(lb, "peer", c->peer_s);
}

void proxy_audit_identity(struct logb *lb, const struct edge_conn *c)
{
    log_str(lb, "subject", c->subject);
    log_str(lb, "cn", c->cn);
    log_str(lb, "serial", c->serial);
    log_str(lb, "fingerprint", c->fp_hex);
}

void proxy_audit_count(struct edge *e, const char *name, const char *help, const char *k1,
                       const char *v1, const char *v2)
{
    char labels[160];
    snprintf(labels, sizeof labels, "%s=\"%s\",reason=\"%s\"", k1, v1, v2);
    struct metric_counter *m = metrics_counter_get(e->metrics, name, help, labels);
    if (m)
        metric_inc(m);
}

void proxy_audit_refusal(struct edge *e, bool reverse, const char *reason)
{
    refusals_add(&e->refusals, reverse, reason, uv_now(e->loop));
}

/* The services named, for the log line ("" for none). */
static void log_services(struct logb *lb, const char *key, uint32_t bits)
{
    char names[64];
    sop_service_names(bits, names, sizeof names);
    log_str(lb, key, names);
}

void proxy_audit_decision(struct edge_conn *c, const char *decision, const char *why,
                          const struct adm_decision *d)
{
    struct logb lb;
    bool admit = strcmp(decision, "admit") == 0;
    if (!admit)
        proxy_audit_refusal(c->e, c->reverse, why);
    if (log_begin(&lb, admit ? LOG_INFO : LOG_WARN, "admission")) {
        proxy_audit_conn(&lb, c);
        if (c->reverse)
            log_str(&lb, "path", "reverse");
        proxy_audit_identity(&lb, c);
        log_str(&lb, "calling_ae", c->calling);
        log_str(&lb, "called_ae", c->called);
        log_str(&lb, "decision", decision);
        log_str(&lb, "reason", why);
        if (d && d->verdict == ADM_REJECT) {
            log_u64(&lb, "rj_result", d->result);
            log_u64(&lb, "rj_source", d->source);
            log_u64(&lb, "rj_reason", d->reason);
        }
        if (d && d->asked)
            log_services(&lb, "services_asked", d->asked);
        if (d && d->denied)
            log_services(&lb, "services_denied", d->denied);
        log_str(&lb, "client", c->client_id);
        log_str(&lb, "route", c->route ? c->route->name : "");
        log_end(&lb);
    }
    if (c->reverse)
        proxy_audit_count(c->e, "dicom_edge_reverse_associations_total",
                          "Reverse-path associations (core to device) by decision and reason",
                          "decision", decision, why);
    else
        proxy_audit_count(c->e, "dicom_edge_associations_total",
                          "Associations by decision and reason", "decision", decision, why);
}

void proxy_audit_assoc_end(const struct edge_conn *c)
{
    struct logb lb;
    if (!log_begin(&lb, LOG_INFO, "assoc_end"))
        return;
    proxy_audit_conn(&lb, c);
    if (c->reverse)
        log_str(&lb, "path", "reverse");
    log_str(&lb, "client", c->client_id);
    log_str(&lb, "calling_ae", c->calling);
    log_str(&lb, "called_ae", c->called);
    log_str(&lb, "route", c->route ? c->route->name : "");
    log_u64(&lb, "duration_ms", uv_now(c->e->loop) - c->t_admit);
    log_u64(&lb, "bytes_up", c->bytes_up);
    log_u64(&lb, "bytes_down", c->bytes_down);
    log_u64(&lb, "pdus_up", c->f_up.pdus);
    log_u64(&lb, "pdus_down", c->f_down.pdus);
    log_str(&lb, "end", c->end ? c->end : "closed");
    log_end(&lb);
}

void proxy_audit_listen_failed(const char *ev, const char *addr, const char *err)
{
    struct logb lb;
    if (log_begin(&lb, LOG_ERROR, ev)) {
        log_str(&lb, "addr", addr);
        log_str(&lb, "err", err);
        log_end(&lb);
    }
}

static const char *or_null(const char *s)
{
    return s && s[0] ? s : NULL;
}

/* c as the other node of an audit message (its strings borrowed). */
static struct audit_party party(const struct edge_conn *c)
{
    return (struct audit_party){
        .ip = or_null(c->peer_ip),
        .ae = or_null(c->calling),
        .client_id = or_null(c->client_id),
        .cert = {.subject = or_null(c->subject), .cn = or_null(c->cn),
                 .serial = or_null(c->serial), .fp_sha256 = or_null(c->fp_hex)},
    };
}

/* The audit library logs its own failures (rate-limited); a full fail_closed queue is seen by
 * the next admission through audit_is_blocking. */
void proxy_audit_tls(struct edge_conn *c, bool ok, const char *reason)
{
    struct audit_party p = party(c);
    (void)audit_tls_auth(c->e->audit, &p, ok, reason);
}

void proxy_audit_refused(struct edge_conn *c, const char *why)
{
    struct audit_party p = party(c);
    char desc[160];
    snprintf(desc, sizeof desc, "%s association refused: %s",
             c->reverse ? "reverse-path" : "DICOM", why);
    (void)audit_policy_refused(c->e->audit, &p, desc);
}

void proxy_audit_cert_rejected(struct edge_conn *c, const char *why)
{
    struct audit_party p = party(c);
    (void)audit_cert_rejected(c->e->audit, &p, why);
}
