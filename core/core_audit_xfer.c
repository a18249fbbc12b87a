/* core_audit_xfer: the instances each association moved, per study, for Begin Transferring DICOM
 * Instances (PS3.15 A.5.3.3: queued at a study's first instance on the association) and DICOM
 * Instances Transferred (A.5.3.7: the study's totals, queued when the association ends). Kept in
 * memory only, bounded per association (XFER_MAX_STUDIES, XFER_MAX_SOPS: past them a study's
 * totals so far are sent early), and the Patient IDs wiped as soon as their message is built. */
#include "core_audit_int.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_ctx.h"
#include "dimse_service.h"

#define XFER_MAX_STUDIES 64u /* studies of one association held at once */
#define XFER_MAX_SOPS 16u    /* SOP classes of one study held (the library lists 16 at most) */
#define PATIENT_ID_MAX 64u   /* VR LO */

struct xfer_sop {
    char uid[65];
    uint64_t ok, failed;
};

struct xfer_study {
    char study[65];
    char patient[PATIENT_ID_MAX + 1]; /* the first non-empty one received; wiped at the end */
    bool sent;                        /* we sent them (C-GET, C-MOVE); else the peer did */
    size_t n_sops;
    struct xfer_sop sops[XFER_MAX_SOPS];
    char failure[80]; /* the first failure's reason */
};

/* A copy of a party (the association may be gone when its totals are sent at stop). */
struct party_copy {
    char ip[64], ae[17], our_ae[17], client_id[129], cn[257], fp[65];
    bool tls;
};

struct xfer_acct {
    struct xfer_acct *next;
    uint64_t assoc_id;
    struct party_copy peer;
    bool has_requestor; /* C-MOVE: the association that asked */
    struct party_copy requestor;
    struct xfer_study *studies;
    size_t n, cap;
};

static void copy_party(struct party_copy *dst, const struct core_party *cp)
{
    snprintf(dst->ip, sizeof dst->ip, "%s", cp->p.ip ? cp->p.ip : "");
    snprintf(dst->ae, sizeof dst->ae, "%s", cp->p.ae ? cp->p.ae : "");
    snprintf(dst->our_ae, sizeof dst->our_ae, "%s", cp->our_ae ? cp->our_ae : "");
    snprintf(dst->client_id, sizeof dst->client_id, "%s", cp->p.client_id ? cp->p.client_id : "");
    snprintf(dst->cn, sizeof dst->cn, "%s", cp->p.cert.cn ? cp->p.cert.cn : "");
    snprintf(dst->fp, sizeof dst->fp, "%s", cp->p.cert.fp_sha256 ? cp->p.cert.fp_sha256 : "");
    dst->tls = cp->tls;
}

static const char *opt(const char *s)
{
    return s[0] ? s : NULL;
}

static struct audit_party party_of_copy(const struct party_copy *c)
{
    return (struct audit_party){.ip = opt(c->ip),
                                .ae = opt(c->ae),
                                .client_id = opt(c->client_id),
                                .cert = {.cn = opt(c->cn), .fp_sha256 = opt(c->fp)}};
}

/* The message of st as acc saw it; begin: Begin Transferring, else Transferred (both parts). */
static void send_study(struct audit *au, const struct xfer_acct *acc, const struct xfer_study *st,
                       bool begin)
{
    struct audit_sop_count sops[XFER_MAX_SOPS];
    memset(sops, 0, sizeof sops);
    for (size_t i = 0; i < st->n_sops; i++) {
        sops[i].uid = st->sops[i].uid;
        sops[i].ok = st->sops[i].ok;
        sops[i].failed = st->sops[i].failed;
    }
    struct audit_party req = party_of_copy(&acc->requestor);
    struct audit_xfer x = {
        .peer = party_of_copy(&acc->peer),
        .peer_sends = !st->sent,
        .requestor = acc->has_requestor ? &req : NULL,
        .called_ae = opt(acc->peer.our_ae),
        .study_uid = opt(st->study),
        .patient_id = opt(st->patient),
        .sops = sops,
        .n_sops = st->n_sops,
        .tls = acc->peer.tls,
        .failure = opt(st->failure),
    };
    if (begin)
        (void)audit_transfer_begin(au, &x);
    else
        (void)audit_transfer_end(au, &x);
}

static void wipe_study(struct xfer_study *st)
{
    OPENSSL_cleanse(st->patient, sizeof st->patient);
}

static void acct_free(struct xfer_acct *acc)
{
    for (size_t i = 0; i < acc->n; i++)
        wipe_study(&acc->studies[i]);
    free(acc->studies);
    free(acc);
}

/* Unlink and return a's account, or NULL. */
static struct xfer_acct *acct_take(struct core_audit *ca, uint64_t id)
{
    for (struct xfer_acct **pp = &ca->accts; *pp; pp = &(*pp)->next) {
        if ((*pp)->assoc_id == id) {
            struct xfer_acct *acc = *pp;
            *pp = acc->next;
            return acc;
        }
    }
    return NULL;
}

static struct xfer_acct *acct_get(struct core_audit *ca, const struct assoc *a)
{
    struct assoc_who w;
    assoc_who(a, &w);
    for (struct xfer_acct *acc = ca->accts; acc; acc = acc->next) {
        if (acc->assoc_id == w.id)
            return acc;
    }
    struct xfer_acct *acc = calloc(1, sizeof *acc);
    if (!acc)
        return NULL;
    acc->assoc_id = w.id;
    struct core_party cp;
    core_party_of(a, &cp);
    copy_party(&acc->peer, &cp);
    acc->next = ca->accts;
    ca->accts = acc;
    return acc;
}

/* The record of (study, sent) in acc, made when new (*fresh). NULL: out of memory. */
static struct xfer_study *study_get(struct audit *au, struct xfer_acct *acc, const char *study,
                                    bool sent, bool *fresh)
{
    *fresh = false;
    for (size_t i = 0; i < acc->n; i++) {
        if (acc->studies[i].sent == sent && strcmp(acc->studies[i].study, study) == 0)
            return &acc->studies[i];
    }
    if (acc->n == XFER_MAX_STUDIES) { /* the oldest study's totals go now, to make room */
        send_study(au, acc, &acc->studies[0], false);
        wipe_study(&acc->studies[0]);
        memmove(&acc->studies[0], &acc->studies[1], (acc->n - 1) * sizeof acc->studies[0]);
        acc->n--;
    }
    if (acc->n == acc->cap) {
        size_t cap = acc->cap ? acc->cap * 2 : 4;
        cap = cap > XFER_MAX_STUDIES ? XFER_MAX_STUDIES : cap;
        struct xfer_study *ns = calloc(cap, sizeof *ns); /* no realloc: old copies get wiped */
        if (!ns)
            return NULL;
        if (acc->n)
            memcpy(ns, acc->studies, acc->n * sizeof *ns);
        for (size_t i = 0; i < acc->n; i++)
            wipe_study(&acc->studies[i]);
        free(acc->studies);
        acc->studies = ns;
        acc->cap = cap;
    }
    struct xfer_study *st = &acc->studies[acc->n++];
    memset(st, 0, sizeof *st);
    snprintf(st->study, sizeof st->study, "%s", study);
    st->sent = sent;
    *fresh = true;
    return st;
}

static void count(struct audit *au, struct assoc *a, const struct assoc *requestor, bool sent,
                  const char *sop_class, const char *study_uid, const char *patient_id,
                  uint16_t status, const char *comment)
{
    struct core_audit *ca = assoc_ctx(a)->audit;
    struct xfer_acct *acc = acct_get(ca, a);
    if (!acc)
        return;
    if (requestor && requestor != a && !acc->has_requestor) {
        struct core_party rp;
        core_party_of(requestor, &rp);
        copy_party(&acc->requestor, &rp);
        acc->has_requestor = true;
    }
    bool fresh;
    struct xfer_study *st = study_get(au, acc, study_uid ? study_uid : "", sent, &fresh);
    if (!st)
        return;
    if (!st->patient[0] && patient_id && patient_id[0])
        snprintf(st->patient, sizeof st->patient, "%.*s", (int)PATIENT_ID_MAX, patient_id);
    const char *cls = sop_class ? sop_class : "";
    struct xfer_sop *sop = NULL;
    for (size_t i = 0; i < st->n_sops && !sop; i++) {
        if (strcmp(st->sops[i].uid, cls) == 0)
            sop = &st->sops[i];
    }
    if (!sop && st->n_sops == XFER_MAX_SOPS) { /* the totals so far go now; the study goes on */
        send_study(au, acc, st, false);
        st->n_sops = 0;
        st->failure[0] = '\0';
    }
    if (!sop) {
        sop = &st->sops[st->n_sops++];
        memset(sop, 0, sizeof *sop);
        snprintf(sop->uid, sizeof sop->uid, "%s", cls);
    }
    bool ok = core_audit_status_ok(status);
    if (ok) {
        sop->ok++;
    } else {
        sop->failed++;
        if (!st->failure[0])
            snprintf(st->failure, sizeof st->failure, "%04X %s", status,
                     comment && comment[0] ? comment : "failed");
    }
    if (fresh)
        send_study(au, acc, st, true);
}

void core_audit_stored(struct assoc *a, const char *sop_class, const char *study_uid,
                       const char *patient_id, uint16_t status, const char *comment)
{
    struct audit *au = core_audit_of(a);
    if (au)
        count(au, a, NULL, false, sop_class, study_uid, patient_id, status, comment);
}

void core_audit_sent(struct assoc *a, const struct assoc *requestor, const char *sop_class,
                     const char *study_uid, const char *patient_id, uint16_t status)
{
    struct audit *au = core_audit_of(a);
    if (au)
        count(au, a, requestor, true, sop_class, study_uid, patient_id, status, NULL);
}

static void acct_end(struct audit *au, struct xfer_acct *acc)
{
    for (size_t i = 0; i < acc->n; i++)
        send_study(au, acc, &acc->studies[i], false);
    acct_free(acc);
}

void core_audit_assoc_end(struct assoc *a)
{
    struct core_audit *ca = assoc_ctx(a)->audit;
    if (!ca)
        return;
    struct assoc_who w;
    assoc_who(a, &w);
    struct xfer_acct *acc = acct_take(ca, w.id);
    if (acc)
        acct_end(ca->au, acc);
}

void core_audit_xfer_flush_all(struct core_audit *ca)
{
    while (ca->accts) {
        struct xfer_acct *acc = ca->accts;
        ca->accts = acc->next;
        acct_end(ca->au, acc);
    }
}
