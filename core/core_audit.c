/* core_audit: audit of the SCP's events (see core_audit.h): the program's part, the association's
 * events, and the one-call events of the read path and Storage Commitment. The transfers'
 * accounting is core_audit_xfer.c. */
#include "core_audit_int.h"

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dcm_ds.h"
#include "common/log.h"
#include "core_ctx.h"
#include "dimse_service.h"
#include "net/tls_ctx.h"

#define DRAIN_DEFAULT_MS 2000u
#define QUERY_MAX (64u * 1024u) /* the library takes at most this much of an identifier */
#define COMMIT_MAX_SOPS 64u     /* SOP classes of one study in one report */

/* ---- the program ----------------------------------------------------------------------------- */

int core_audit_config(const struct core_config *cfg, struct audit_config *out, struct wbuf *errs)
{
    audit_config_defaults(out);
    return audit_config_parse(cfg->audit_json, out, errs);
}

int core_audit_check(const struct core_config *cfg, struct wbuf *errs)
{
    struct audit_config *ac = malloc(sizeof *ac);
    if (!ac) {
        wbuf_printf(errs, "audit: out of memory\n");
        return ERR_CONFIG;
    }
    int rc = core_audit_config(cfg, ac, errs);
    if (rc == 0)
        rc = audit_config_check(ac, errs);
    free(ac);
    return rc;
}

int core_audit_start(struct core_ctx *ctx, char *err, size_t err_len)
{
    ctx->audit = NULL;
    struct audit_config *ac = malloc(sizeof *ac);
    struct core_audit *ca = calloc(1, sizeof *ca);
    struct wbuf errs;
    wbuf_init(&errs, 4096);
    int rc = ac && ca ? core_audit_config(ctx->cfg, ac, &errs) : ERR_NOMEM;
    if (rc < 0) {
        snprintf(err, err_len, "%.*s", (int)errs.len, errs.p ? (const char *)errs.p : "no memory");
    } else if (ac->enabled) {
        struct audit_opts o = {
            .app_name = "dicom-core", .ae_title = ctx->cfg->ae_title, .metrics = ctx->metrics};
        rc = audit_start(ac, &o, &ca->au, err, err_len);
    }
    wbuf_cleanup(&errs);
    free(ac);
    if (rc < 0 || !ca->au) {
        free(ca);
        return rc;
    }
    ctx->audit = ca;
    (void)audit_app_start(ca->au);
    return 0;
}

void core_audit_stop(struct core_ctx *ctx, unsigned drain_ms)
{
    struct core_audit *ca = ctx->audit;
    if (!ca)
        return;
    core_audit_xfer_flush_all(ca); /* associations the loop never closed (none, normally) */
    (void)audit_app_stop(ca->au);
    audit_stop(ca->au, drain_ms ? drain_ms : DRAIN_DEFAULT_MS);
    free(ca);
    ctx->audit = NULL;
}

void core_audit_reloaded(struct core_ctx *ctx, const char *path, bool ok, const char *detail)
{
    if (ctx->audit)
        (void)audit_config_reloaded(ctx->audit->au, path ? path : "(embedded default)", ok,
                                    detail);
}

bool core_audit_changed(const struct core_config *a, const struct core_config *b)
{
    if (!a->audit_json || !b->audit_json)
        return a->audit_json != b->audit_json;
    return strcmp(a->audit_json, b->audit_json) != 0;
}

bool core_audit_blocking(const struct core_ctx *ctx)
{
    return ctx->audit && audit_is_blocking(ctx->audit->au);
}

/* The certificate a client presented, kept on its SSL by the verify callback below: OpenSSL
 * forgets it when verification fails, and a refused handshake is the one an auditor wants named.
 * The ex_data index is process-wide by OpenSSL's design (hence the one static). */
static int g_presented_idx = -1;
static pthread_once_t g_presented_once = PTHREAD_ONCE_INIT;

static void presented_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                           void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    X509_free(ptr);
}

static void presented_index(void)
{
    g_presented_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, presented_free);
}

static int remember_presented(int preverify_ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    if (ssl && leaf && g_presented_idx >= 0 && !SSL_get_ex_data(ssl, g_presented_idx) &&
        X509_up_ref(leaf) == 1 && SSL_set_ex_data(ssl, g_presented_idx, leaf) != 1)
        X509_free(leaf);
    return preverify_ok; /* the verdict stays OpenSSL's */
}

void core_audit_tls_ctx(SSL_CTX *server)
{
    if (!server || pthread_once(&g_presented_once, presented_index) != 0 || g_presented_idx < 0)
        return;
    SSL_CTX_set_verify(server, SSL_CTX_get_verify_mode(server), remember_presented);
}

/* ---- who is at the other end ----------------------------------------------------------------- */

struct audit *core_audit_of(const struct assoc *a)
{
    const struct core_ctx *ctx = assoc_ctx(a);
    return ctx->audit ? ctx->audit->au : NULL;
}

void core_party_ip(const char *peer, char *out, size_t cap)
{
    const char *p = peer ? peer : "";
    size_t n = strlen(p);
    if (p[0] == '[') { /* [v6]:port */
        const char *end = strchr(p, ']');
        p++;
        n = end ? (size_t)(end - p) : strlen(p);
    } else {
        const char *colon = strrchr(p, ':');
        if (colon && strchr(p, ':') == colon) /* one colon: v4:port; more: a bare v6 address */
            n = (size_t)(colon - p);
    }
    snprintf(out, cap, "%.*s", (int)n, p);
}

void core_party_of(const struct assoc *a, struct core_party *out)
{
    struct assoc_who w;
    assoc_who(a, &w);
    memset(out, 0, sizeof *out);
    core_party_ip(w.peer, out->ip, sizeof out->ip);
    out->p.ip = out->ip[0] && strcmp(out->ip, "?") != 0 ? out->ip : NULL;
    const char *theirs = w.requestor ? w.called : w.calling;
    const char *ours = w.requestor ? w.calling : w.called;
    out->p.ae = theirs && theirs[0] ? theirs : NULL;
    out->our_ae = ours && ours[0] ? ours : NULL;
    out->p.client_id = w.client_id && w.client_id[0] ? w.client_id : NULL;
    out->p.cert.cn = w.cert_cn && w.cert_cn[0] ? w.cert_cn : NULL;
    out->p.cert.fp_sha256 = w.cert_fp && w.cert_fp[0] ? w.cert_fp : NULL;
    out->tls = w.tls;
}

bool core_audit_status_ok(uint16_t status)
{
    return status == 0x0000 || status == 0x0001 || status == 0x0107 || status == 0x0116 ||
           (status & 0xF000) == 0xB000;
}

/* The audit trail of a's program with the peer described in *cp, or NULL (audit off). */
static struct audit *event_of(const struct assoc *a, struct core_party *cp)
{
    struct audit *au = core_audit_of(a);
    if (au)
        core_party_of(a, cp);
    return au;
}

/* ---- the association ------------------------------------------------------------------------- */

void core_audit_tls_auth(struct assoc *a, const char *tcp_peer, SSL *ssl, bool ok,
                         const char *reason)
{
    struct audit *au = core_audit_of(a);
    if (!au)
        return;
    struct tls_peer_id *id = calloc(1, sizeof *id);
    char ip[64];
    core_party_ip(tcp_peer, ip, sizeof ip);
    struct audit_party p = {.ip = ip[0] ? ip : NULL};
    X509 *shown = ssl && g_presented_idx >= 0 ? SSL_get_ex_data(ssl, g_presented_idx) : NULL;
    if (id && ssl &&
        (tls_peer_id_get(ssl, id) == 0 || (shown && tls_cert_id(shown, id) == 0)))
        p.cert = audit_cert_from_tls(id);
    (void)audit_tls_auth(au, &p, ok, ok ? NULL : reason ? reason : "handshake_failed");
    free(id);
}

void core_audit_refused(struct assoc *a, const char *why)
{
    struct core_party cp;
    struct audit *au = event_of(a, &cp);
    if (!au)
        return;
    (void)audit_policy_refused(au, &cp.p, why);
}

/* ---- queries and accesses -------------------------------------------------------------------- */

static const char *status_text(uint16_t status, char *buf, size_t cap)
{
    snprintf(buf, cap, "DIMSE status %04X", status);
    return buf;
}

void core_audit_query(struct assoc *a, const char *sop_class, const struct dcm_ds *identifier,
                      uint16_t status)
{
    struct core_party cp;
    struct audit *au = event_of(a, &cp);
    if (!au)
        return;
    struct wbuf ds;
    wbuf_init(&ds, QUERY_MAX);
    bool have = identifier && dcm_ds_write(identifier, DCM_TS_EXPLICIT_LE, &ds) == 0;
    char why[40];
    bool ok = status == 0x0000 || status == 0xFE00; /* done, or cancelled as asked */
    struct audit_query q = {
        .peer = cp.p,
        .called_ae = cp.our_ae,
        .sop_class = sop_class,
        .transfer_syntax = "1.2.840.10008.1.2.1",
        .dataset = have ? ds.p : NULL,
        .len = have ? ds.len : 0,
        .ok = ok,
        .failure = ok ? NULL : status_text(status, why, sizeof why),
    };
    (void)audit_query(au, &q);
    if (ds.p)
        OPENSSL_cleanse(ds.p, ds.len); /* it may name a patient */
    wbuf_cleanup(&ds);
}

void core_audit_accessed(struct assoc *a, char action, const char *sop_class,
                         const char *study_uid, const char *patient_id, uint64_t n,
                         uint16_t status)
{
    struct core_party cp;
    struct audit *au = event_of(a, &cp);
    if (!au)
        return;
    bool ok = core_audit_status_ok(status);
    struct audit_sop_count sop = {.uid = sop_class, .ok = ok ? n : 0, .failed = ok ? 0 : n};
    char why[40];
    struct audit_access acc = {
        .peer = cp.p,
        .action = action,
        .study_uid = study_uid && study_uid[0] ? study_uid : NULL,
        .patient_id = patient_id && patient_id[0] ? patient_id : NULL,
        .sops = sop_class ? &sop : NULL,
        .n_sops = sop_class ? 1 : 0,
        .ok = ok,
        .failure = ok ? NULL : status_text(status, why, sizeof why),
    };
    (void)audit_instances_accessed(au, &acc);
}

/* ---- Storage Commitment ---------------------------------------------------------------------- */

static bool same(const char *x, const char *y)
{
    return strcmp(x ? x : "", y ? y : "") == 0;
}

/* One message pair for the study of refs[first] (every ref of that study from first on). */
static void commit_study(struct audit *au, const struct core_party *cp, const char *tuid,
                         const struct core_audit_commit_ref *refs, size_t n, size_t first,
                         const char *failure)
{
    const char *study = refs[first].study_uid;
    struct audit_sop_count sops[COMMIT_MAX_SOPS];
    size_t n_sops = 0;
    const char **uids = calloc(n ? 2 * n : 1, sizeof *uids); /* ok and failed lists, per class */
    if (!uids)
        return;
    size_t used = 0;
    memset(sops, 0, sizeof sops);
    const char *patient = NULL;
    /* class by class, so that each class's UIDs are contiguous in uids */
    for (size_t i = first; i < n; i++) {
        if (!same(refs[i].study_uid, study))
            continue;
        if (!patient && refs[i].patient_id && refs[i].patient_id[0])
            patient = refs[i].patient_id;
        bool seen = false;
        for (size_t k = 0; k < n_sops && !seen; k++)
            seen = same(sops[k].uid, refs[i].sop_class);
        if (seen || n_sops == COMMIT_MAX_SOPS)
            continue; /* counted with its class, or past the cap (the library cuts at 16) */
        struct audit_sop_count *s = &sops[n_sops++];
        s->uid = refs[i].sop_class ? refs[i].sop_class : "";
        for (int pass = 0; pass < 2; pass++) { /* committed, then failed */
            const char **list = uids + used;
            size_t cnt = 0;
            for (size_t j = i; j < n; j++) {
                if (!same(refs[j].study_uid, study) || !same(refs[j].sop_class, s->uid) ||
                    refs[j].committed != (pass == 0))
                    continue;
                if (refs[j].sop_instance && refs[j].sop_instance[0])
                    list[cnt++] = refs[j].sop_instance;
                if (pass == 0)
                    s->ok++;
                else
                    s->failed++;
            }
            used += cnt;
            if (pass == 0) {
                s->ok_uids = list;
                s->n_ok_uids = cnt;
            } else {
                s->failed_uids = list;
                s->n_failed_uids = cnt;
            }
        }
    }
    struct audit_commit c = {
        .peer = cp->p,
        .called_ae = cp->our_ae,
        .transaction_uid = tuid,
        .study_uid = study && study[0] ? study : NULL,
        .patient_id = patient,
        .sops = sops,
        .n_sops = n_sops,
        .failure = failure ? failure : "instances not committed",
    };
    (void)audit_commitment(au, &c);
    free(uids);
}

void core_audit_commitment(struct assoc *a, const char *transaction_uid,
                           const struct core_audit_commit_ref *refs, size_t n,
                           const char *failure)
{
    struct core_party cp;
    struct audit *au = refs ? event_of(a, &cp) : NULL;
    if (!au)
        return;
    for (size_t i = 0; i < n; i++) {
        bool earlier = false; /* this study was reported with an earlier ref */
        for (size_t j = 0; j < i && !earlier; j++)
            earlier = same(refs[j].study_uid, refs[i].study_uid);
        if (!earlier)
            commit_study(au, &cp, transaction_uid, refs, n, i, failure);
    }
}
