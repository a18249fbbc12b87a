/* assoc_negotiate: AE-6, an A-ASSOCIATE-RQ answered with A-ASSOCIATE-AC or -RJ. Which abstract
 * syntaxes are accepted, in which transfer syntax and with which roles, the service table
 * decides (dimse_service.h). */
#include "assoc_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core_audit.h"
#include "core_ctx.h"
#include "store.h"

void assoc_reject(struct assoc *a, uint8_t result, uint8_t source, uint8_t reason,
                  const char *why)
{
    struct wbuf b;
    wbuf_init(&b, 16);
    if (ul_encode_assoc_rj(&b, result, source, reason) == 0)
        (void)assoc_send_wbuf(a, &b);
    else
        wbuf_cleanup(&b);
    metric_inc(a->ctx->m.assoc_rejected);
    struct logb lb;
    if (log_begin(&lb, LOG_WARN, "assoc_reject")) {
        log_u64(&lb, "assoc", a->id);
        log_str(&lb, "peer", a->peer);
        log_str(&lb, "calling_ae", a->calling);
        log_str(&lb, "called_ae", a->called);
        log_u64(&lb, "result", result);
        log_u64(&lb, "source", source);
        log_u64(&lb, "reason", reason);
        log_str(&lb, "why", why);
        log_end(&lb);
    }
    a->end_reason = "rejected";
    a->st = STA13;
    assoc_arm(a, a->cfg->artim_ms);
}

static bool ts_offered(const struct ul_pctx_rq *pc, const char *uid)
{
    for (uint8_t i = 0; i < pc->n_ts; i++) {
        if (slice_eq_str(pc->ts[i], uid))
            return true;
    }
    return false;
}

/* Our preference order, within what the peer offered. Contexts that carry no pixel data
 * (commands, query identifiers) take uncompressed syntaxes only, and always the default one. */
static const struct ts_info *choose_ts(const struct core_config *cfg, const struct ul_pctx_rq *pc,
                                       bool uncompressed_only)
{
    for (size_t t = 0; t < cfg->n_ts; t++) {
        if (uncompressed_only && cfg->ts[t]->enc != DS_IMPLICIT_LE &&
            strcmp(cfg->ts[t]->uid, TS_EXPLICIT_LE) != 0) /* deflated is compressed too */
            continue;
        if (ts_offered(pc, cfg->ts[t]->uid))
            return cfg->ts[t];
    }
    if (uncompressed_only && ts_offered(pc, TS_IMPLICIT_LE))
        return ts_find(TS_IMPLICIT_LE); /* always: the default transfer syntax */
    return NULL;
}

/* The RQ's own checks, in the order PS3.8 and our policy put them. true: rejected. */
static bool refuse(struct assoc *a, const struct ul_assoc_rq *rq)
{
    const struct core_config *cfg = a->cfg;
    if (!(rq->protocol_version & 1)) {
        assoc_reject(a, UL_RJ_PERMANENT, UL_RJ_SRC_ACSE, UL_RJ_ACSE_PROTOCOL_VERSION,
                     "protocol version not supported");
        return true;
    }
    if (!slice_eq_str(rq->app_context, UL_APP_CONTEXT)) {
        assoc_reject(a, UL_RJ_PERMANENT, UL_RJ_SRC_USER, UL_RJ_USER_APP_CONTEXT,
                     "application context not supported");
        return true;
    }
    if (rq->called_bad || (cfg->check_called_ae && strcmp(rq->called, cfg->ae_title) != 0)) {
        assoc_reject(a, UL_RJ_PERMANENT, UL_RJ_SRC_USER, UL_RJ_USER_CALLED_AE,
                     "called AE title not recognized");
        core_audit_refused(a, "called AE title not recognized");
        return true;
    }
    bool calling_ok = !rq->calling_bad;
    if (calling_ok && cfg->n_calling_allow > 0) {
        calling_ok = false;
        for (size_t i = 0; i < cfg->n_calling_allow; i++)
            calling_ok = calling_ok || strcmp(cfg->calling_allow[i], rq->calling) == 0;
    }
    if (!calling_ok) {
        assoc_reject(a, UL_RJ_PERMANENT, UL_RJ_SRC_USER, UL_RJ_USER_CALLING_AE,
                     "calling AE title not recognized");
        core_audit_refused(a, "calling AE title not recognized");
        return true;
    }
    if (rq->ui.has_max_len && rq->ui.max_len != 0 && rq->ui.max_len < UL_MIN_PDV_PDU) {
        /* PS3.8 D.1: a P-DATA-TF of that length cannot hold one PDV (6 bytes of header and at
         * least one of data): nothing could ever be sent within it */
        assoc_reject(a, UL_RJ_PERMANENT, UL_RJ_SRC_USER, UL_RJ_USER_NO_REASON,
                     "maximum PDU length too small to carry a PDV");
        return true;
    }
    if (a->ctx->draining) {
        assoc_reject(a, UL_RJ_TRANSIENT, UL_RJ_SRC_PRES, UL_RJ_PRES_CONGESTION, "shutting down");
        return true;
    }
    if (core_audit_blocking(a->ctx)) { /* fail_closed: nothing that cannot be audited */
        assoc_reject(a, UL_RJ_TRANSIENT, UL_RJ_SRC_PRES, UL_RJ_PRES_LOCAL_LIMIT,
                     "audit queue full (on_full fail_closed)");
        return true;
    }
    if (a->ctx->established >= cfg->max_associations) {
        assoc_reject(a, UL_RJ_TRANSIENT, UL_RJ_SRC_PRES, UL_RJ_PRES_LOCAL_LIMIT,
                     "association limit reached");
        return true;
    }
    return false;
}

/* PS3.8 D.3.3.4: the role the peer proposed for abstract, if it did. */
static const struct ul_role *proposed_role(const struct ul_assoc_rq *rq, struct slice abstract)
{
    for (uint16_t i = 0; i < rq->ui.n_roles; i++) {
        struct slice s = ul_uid_trim(rq->ui.roles[i].sop);
        if (s.len == abstract.len && memcmp(s.p, abstract.p, s.len) == 0)
            return &rq->ui.roles[i];
    }
    return NULL;
}

static unsigned accept_contexts(struct assoc *a, const struct ul_assoc_rq *rq,
                                struct ul_assoc_ac *ac)
{
    unsigned accepted = 0, not_granted = 0;
    for (uint16_t i = 0; i < rq->n_pctx; i++) {
        const struct ul_pctx_rq *pc = &rq->pctx[i];
        struct ul_pctx_ac *out = &ac->pctx[ac->n_pctx++];
        struct pctx_entry *e = &a->pctx[pc->id];
        out->id = pc->id;
        memcpy(e->abstract, pc->abstract.p, pc->abstract.len);
        e->abstract[pc->abstract.len] = '\0';
        const struct ul_role *role = proposed_role(rq, pc->abstract);
        e->svc = services_serving(a->cfg, e->abstract);
        /* the peer as SCP (we the SCU: C-GET sub-operations) where it asks and a service
         * wants it; then the context is accepted for that role even if no service serves it */
        e->peer_scp = role && role->scp && services_peer_scp(a->cfg, e->abstract, a->grants);
        if (!e->svc && !e->peer_scp) {
            out->result = UL_PCTX_ABSTRACT_NOT_SUPPORTED;
            out->ts = pc->ts[0];
            continue;
        }
        if (e->svc && !e->peer_scp && !(a->grants.services & e->svc->grant)) {
            /* PS3.8 9.3.3.2: a context this client may not use is refused by the user */
            out->result = UL_PCTX_USER_REJECT;
            out->ts = pc->ts[0];
            e->svc = NULL;
            not_granted++;
            continue;
        }
        const struct ts_info *chosen =
            choose_ts(a->cfg, pc, e->svc && !e->peer_scp && e->svc->uncompressed_only);
        if (!chosen) {
            out->result = UL_PCTX_TS_NOT_SUPPORTED;
            out->ts = pc->ts[0];
            continue;
        }
        out->result = UL_PCTX_ACCEPT;
        out->ts = (struct slice){(const uint8_t *)chosen->uid, strlen(chosen->uid)};
        e->accepted = true;
        e->ts = chosen;
        accepted++;
    }
    if (not_granted)
        core_audit_refused(a, "presentation context refused: service not granted");
    return accepted;
}

/* User information: our limits, and the answer to each role selection item. */
static void user_info(struct assoc *a, const struct ul_assoc_rq *rq, struct ul_assoc_ac *ac)
{
    ac->ui.max_len = a->our_max;
    ac->ui.impl_uid = (struct slice){(const uint8_t *)GW_IMPL_CLASS_UID,
                                     sizeof GW_IMPL_CLASS_UID - 1};
    ac->ui.impl_version = (struct slice){(const uint8_t *)GW_IMPL_VERSION,
                                         sizeof GW_IMPL_VERSION - 1};
    if (rq->ui.has_async) {
        ac->ui.has_async = true; /* PS3.7 D.3.3.3: we perform operations one at a time */
        ac->ui.ops_invoked = 1;
        ac->ui.ops_performed = 1;
    }
    for (uint16_t i = 0; i < rq->ui.n_roles; i++) {
        struct ul_role *r = &ac->ui.roles[ac->ui.n_roles++];
        *r = rq->ui.roles[i];
        char uid[65];
        struct slice s = ul_uid_trim(r->sop);
        size_t n = s.len < 64 ? s.len : 64;
        memcpy(uid, s.p, n);
        uid[n] = '\0';
        /* the SCU role as proposed; the SCP role only where a service wants to send the peer
         * requests on that class (PS3.8 D.3.3.4) */
        r->scp = r->scp && services_peer_scp(a->cfg, uid, a->grants) ? 1 : 0;
    }
}

static void log_accept(struct assoc *a, const struct ul_assoc_rq *rq, unsigned accepted)
{
    struct logb lb;
    if (!log_begin(&lb, LOG_INFO, "assoc_accept"))
        return;
    log_u64(&lb, "assoc", a->id);
    log_str(&lb, "peer", a->peer);
    log_str(&lb, "calling_ae", a->calling);
    log_str(&lb, "called_ae", a->called);
    if (a->cert_cn[0])
        log_str(&lb, "cert_cn", a->cert_cn);
    if (a->client_id[0])
        log_str(&lb, "client_id", a->client_id);
    log_u64(&lb, "contexts", rq->n_pctx);
    log_u64(&lb, "accepted", accepted);
    log_u64(&lb, "peer_max_pdu", a->peer_max);
    if (rq->ui.impl_version.len)
        log_strn(&lb, "peer_impl_version", (const char *)rq->ui.impl_version.p,
                 rq->ui.impl_version.len);
    if (rq->ui.has_user_identity)
        log_u64(&lb, "user_identity_type", rq->ui.user_identity_type);
    if (rq->ui.n_ext_neg)
        log_u64(&lb, "ext_neg_items", rq->ui.n_ext_neg);
    log_end(&lb);
}

void assoc_handle_rq(struct assoc *a, struct rd *body)
{
    assoc_preassoc_leave(a); /* whatever the answer, this is no longer a pending connection */
    struct ul_assoc_rq *rq = malloc(sizeof *rq);
    struct ul_assoc_ac *ac = malloc(sizeof *ac);
    if (!rq || !ac) {
        free(rq);
        free(ac);
        assoc_reject(a, UL_RJ_TRANSIENT, UL_RJ_SRC_PRES, UL_RJ_PRES_LOCAL_LIMIT, "out of memory");
        return;
    }
    uint8_t reason = 0;
    if (ul_parse_assoc_rq(body, rq, &reason) < 0) {
        assoc_violation(a, reason, "malformed A-ASSOCIATE-RQ");
        goto out;
    }
    a->glitches += rq->glitches;
    if (a->glitches > GLITCH_MAX) { /* STYLE §6: legal but hostile-looking input, in bulk */
        assoc_violation(a, UL_ABORT_NOT_SPECIFIED, "too many odd items in A-ASSOCIATE-RQ");
        goto out;
    }
    snprintf(a->calling, sizeof a->calling, "%s", rq->calling);
    snprintf(a->called, sizeof a->called, "%s", rq->called);
    if (refuse(a, rq))
        goto out;

    if (!a->proxy_grants)
        core_config_grants(a->cfg, a->calling, &a->grants);
    memset(ac, 0, sizeof *ac);
    ac->protocol_version = 1;
    snprintf(ac->called, sizeof ac->called, "%s", rq->called);
    snprintf(ac->calling, sizeof ac->calling, "%s", rq->calling);
    ac->app_context = (struct slice){(const uint8_t *)UL_APP_CONTEXT, sizeof UL_APP_CONTEXT - 1};
    unsigned accepted = accept_contexts(a, rq, ac);
    a->peer_max = rq->ui.has_max_len ? rq->ui.max_len : 0;
    user_info(a, rq, ac);
    struct wbuf b;
    wbuf_init(&b, 64u * 1024u);
    if (ul_encode_assoc_ac(&b, ac) < 0 || assoc_send_wbuf(a, &b) < 0) {
        wbuf_cleanup(&b);
        if (!a->closing)
            assoc_close(a, "cannot send A-ASSOCIATE-AC");
        goto out;
    }
    a->st = STA6;
    a->established = true;
    a->ctx->established++;
    assoc_arm(a, a->cfg->idle_ms);
    metric_inc(a->ctx->m.assoc_accepted);
    log_accept(a, rq, accepted);
    /* after acceptance, PDUs are bounded by the maximum we announced */
    if (a->rcap < (size_t)a->our_max + UL_HDR_LEN) {
        uint8_t *nb = realloc(a->rbuf, (size_t)a->our_max + UL_HDR_LEN);
        if (!nb) {
            assoc_send_abort(a, UL_ABORT_SRC_PROVIDER, UL_ABORT_NOT_SPECIFIED, "out of memory");
            goto out;
        }
        a->rbuf = nb;
        a->rcap = (size_t)a->our_max + UL_HDR_LEN;
    }
out:
    free(rq);
    free(ac);
}
