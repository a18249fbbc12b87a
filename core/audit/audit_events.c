#include "audit_events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "audit_dsredact.h"
#include "audit_hash.h"
#include "audit_msg.h"

/* PS3.16 CID 400 (event IDs), 401 (event types), 402 (roles), 403 (security alert types),
 * 404 (participant object ID types) and the RFC 3881 codes A.5.3 names. */
static const struct audit_code EV_APP = {"110100", "DCM", "Application Activity"};
static const struct audit_code EV_BEGIN = {"110102", "DCM", "Begin Transferring DICOM Instances"};
static const struct audit_code EV_ACCESSED = {"110103", "DCM", "DICOM Instances Accessed"};
static const struct audit_code EV_TRANSFERRED = {"110104", "DCM", "DICOM Instances Transferred"};
static const struct audit_code EV_QUERY = {"110112", "DCM", "Query"};
static const struct audit_code EV_ALERT = {"110113", "DCM", "Security Alert"};
static const struct audit_code EV_AUTH = {"110114", "DCM", "User Authentication"};
static const struct audit_code T_APP_START = {"110120", "DCM", "Application Start"};
static const struct audit_code T_APP_STOP = {"110121", "DCM", "Application Stop"};
static const struct audit_code T_LOGIN = {"110122", "DCM", "Login"};
static const struct audit_code T_NODE_AUTH = {"110126", "DCM", "Node Authentication"};
static const struct audit_code T_SEC_CONFIG = {"110129", "DCM", "Security Configuration"};
static const struct audit_code T_RESTRICTED = {"110132", "DCM", "Use of Restricted Function"};
static const struct audit_code T_AUDIT_STOPPED = {"110133", "DCM", "Audit Recording Stopped"};
static const struct audit_code R_APPLICATION = {"110150", "DCM", "Application"};
static const struct audit_code R_DEST = {"110152", "DCM", "Destination Role ID"};
static const struct audit_code R_SOURCE = {"110153", "DCM", "Source Role ID"};
static const struct audit_code ID_STUDY = {"110180", "DCM", "Study Instance UID"};
static const struct audit_code ID_SOP_CLASS = {"110181", "DCM", "SOP Class UID"};
static const struct audit_code ID_NODE = {"110182", "DCM", "Node ID"};
static const struct audit_code ID_PATIENT = {"2", "RFC-3881", "Patient Number"};
static const struct audit_code ID_URI = {"12", "RFC-3881", "URI"};
/* Extensions (A.5: schema-valid, listed in docs/audit.md): a local coding scheme ("99" prefix,
 * PS3.16 8.2) for the certificate, and a DICOM UID as a code (DCMUID) for Storage Commitment. */
static const struct audit_code ID_CERT = {"CERT-SHA256", "99DICOMGW",
                                          "X.509 Certificate SHA-256 Fingerprint"};
static const struct audit_code T_COMMIT = {"1.2.840.10008.1.20.1", "DCMUID",
                                           "Storage Commitment Push Model SOP Class"};

#define MAX_SOPS 1024u /* SOP classes taken from a caller; more would be cut when rendering */

struct build {
    struct audit_event ev;
    struct audit_ap aps[AUDIT_MAX_APS];
    struct audit_po pos[AUDIT_MAX_POS];
    char alt[AUDIT_MAX_APS][40];
    char pid[65];
    char uri[AUDIT_FIELD_MAX + 8];
    char text[2][160];
    struct audit_sop *sops; /* heap, freed by finish() */
};

static void begin(struct build *b, const struct audit_src *src, const struct audit_code *id,
                  char action, uint8_t outcome)
{
    memset(b, 0, sizeof *b);
    int64_t now = src->now_us;
    if (now == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    }
    b->ev.event_id = id;
    b->ev.action = action;
    b->ev.outcome = outcome;
    b->ev.time_us = now;
    b->ev.aps = b->aps;
    b->ev.pos = b->pos;
    b->ev.source_id = src->source_id ? src->source_id : src->host;
    b->ev.site_id = src->site_id;
    b->ev.source_type = "4"; /* A.5.1.2.1: application server process */
}

static int finish(struct build *b, struct wbuf *out)
{
    int rc = audit_msg_render(&b->ev, out);
    free(b->sops);
    OPENSSL_cleanse(b->pid, sizeof b->pid);
    return rc;
}

static struct audit_ap *add_ap(struct build *b)
{
    return &b->aps[b->ev.n_aps++];
}

static struct audit_po *add_po(struct build *b)
{
    struct audit_po *po = &b->pos[b->ev.n_pos++];
    po->encrypted = -1;
    return po;
}

static const char *aetitles(struct build *b, size_t slot, const char *ae)
{
    if (!ae || !ae[0])
        return NULL;
    snprintf(b->alt[slot], sizeof b->alt[slot], "AETITLES=%.16s", ae);
    return b->alt[slot];
}

/* Our own process (A.5.2.1: the identifier our JSON logs use, the component name). */
static void ap_self(struct build *b, const struct audit_src *src, const char *ae,
                    const struct audit_code *role)
{
    size_t slot = b->ev.n_aps;
    struct audit_ap *ap = add_ap(b);
    ap->user_id = src->app_name;
    ap->alt_user_id = aetitles(b, slot, ae ? ae : src->ae_title);
    ap->user_name = src->app_name;
    ap->nap_id = src->host;
    ap->nap_type = 1;
    if (role) {
        ap->roles[0] = role;
        ap->n_roles = 1;
    }
}

static const char *first(const char *a, const char *b, const char *c, const char *d)
{
    if (a && a[0])
        return a;
    if (b && b[0])
        return b;
    if (c && c[0])
        return c;
    if (d && d[0])
        return d;
    return "unknown";
}

static void ap_peer(struct build *b, const struct audit_party *p, const struct audit_code *role,
                    bool requestor)
{
    size_t slot = b->ev.n_aps;
    struct audit_ap *ap = add_ap(b);
    ap->user_id = first(p->ae, p->client_id, p->cert.cn, p->ip);
    ap->alt_user_id = aetitles(b, slot, p->ae);
    ap->user_name = p->client_id && p->client_id[0] ? p->client_id : p->cert.cn;
    ap->requestor = requestor;
    ap->nap_id = p->ip;
    ap->nap_type = 2;
    if (role) {
        ap->roles[0] = role;
        ap->n_roles = 1;
    }
}

static void detail_str(struct audit_po *po, const char *type, const char *v)
{
    if (!v || !v[0] || po->n_details >= AUDIT_MAX_DETAILS)
        return;
    po->details[po->n_details++] = (struct audit_detail){type, v, strlen(v)};
}

/* The client certificate as a participant object (an extension: A.5.3 has no place for it). */
static void po_cert(struct build *b, const struct audit_party *p)
{
    const struct audit_cert *c = &p->cert;
    if (!c->fp_sha256 || !c->fp_sha256[0])
        return;
    struct audit_po *po = add_po(b);
    po->type = 2;
    po->role = 13; /* security resource */
    po->id_type = &ID_CERT;
    po->id = c->fp_sha256;
    po->name = c->subject && c->subject[0] ? c->subject : c->cn;
    detail_str(po, "SerialNumber", c->serial);
    detail_str(po, "Issuer", c->issuer);
    detail_str(po, "ClientID", p->client_id);
}

static int po_patient(struct build *b, const struct audit_src *src, const char *patient_id)
{
    struct audit_po *po = add_po(b);
    po->type = 1;
    po->role = 1;
    po->id_type = &ID_PATIENT;
    if (!patient_id) {
        po->id = "UNKNOWN";
    } else if (src->patient_include) {
        po->id = patient_id;
    } else {
        if (!src->key || src->key_len == 0)
            return ERR_CONFIG;
        TRY(audit_hmac_hex(src->key, src->key_len, patient_id, strlen(patient_id), b->pid));
        po->id = b->pid;
        detail_str(po, "PatientIDHash", "HMAC-SHA256");
    }
    return 0;
}

/* failed: take the failed counts and UIDs instead of the ok ones; skip empty classes. */
static int take_sops(struct build *b, const struct audit_sop_count *in, size_t n, bool failed,
                     struct audit_po *po)
{
    if (n > MAX_SOPS)
        n = MAX_SOPS;
    if (n == 0)
        return 0;
    b->sops = calloc(n, sizeof *b->sops);
    if (!b->sops)
        return ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t cnt = failed ? in[i].failed : in[i].ok;
        if (cnt == 0)
            continue;
        struct audit_sop *s = &b->sops[k++];
        s->uid = in[i].uid;
        s->count = cnt;
        s->instances = failed ? in[i].failed_uids : in[i].ok_uids;
        s->n_instances = failed ? in[i].n_failed_uids : in[i].n_ok_uids;
        if (!s->instances)
            s->n_instances = 0;
    }
    po->sops = b->sops;
    po->n_sops = k;
    return 0;
}

static struct audit_po *po_study(struct build *b, const char *study_uid)
{
    struct audit_po *po = add_po(b);
    po->type = 2;
    po->role = 3; /* report */
    po->id_type = &ID_STUDY;
    po->id = study_uid && study_uid[0] ? study_uid : "UNKNOWN";
    po->has_desc = true;
    return po;
}

int audit_ev_app(const struct audit_src *src, bool start, struct wbuf *out)
{
    struct build b;
    begin(&b, src, &EV_APP, 'E', 0);
    b.ev.types[b.ev.n_types++] = start ? &T_APP_START : &T_APP_STOP;
    ap_self(&b, src, NULL, &R_APPLICATION);
    return finish(&b, out);
}

int audit_ev_auth(const struct audit_src *src, const struct audit_party *peer, bool ok,
                  const char *reason, struct wbuf *out)
{
    struct build b;
    uint8_t outcome = ok ? 0 : (reason && strcmp(reason, "revoked") == 0 ? 8 : 4);
    begin(&b, src, &EV_AUTH, 'E', outcome);
    b.ev.types[b.ev.n_types++] = &T_LOGIN;
    if (!ok)
        b.ev.outcome_desc = reason ? reason : "refused";
    struct audit_ap *ap = add_ap(&b);
    ap->user_id = first(peer->client_id, peer->cert.cn, peer->cert.fp_sha256, peer->ip);
    ap->user_name = peer->cert.subject;
    ap->requestor = true;
    ap->nap_id = peer->ip && peer->ip[0] ? peer->ip : "unknown";
    ap->nap_type = peer->ip && peer->ip[0] ? 2 : 1; /* M for the authenticated participant */
    ap_self(&b, src, NULL, NULL);
    po_cert(&b, peer);
    return finish(&b, out);
}

int audit_ev_alert(const struct audit_src *src, enum audit_alert kind,
                   const struct audit_party *peer, const char *subject, const char *desc,
                   uint64_t count, struct wbuf *out)
{
    const struct audit_code *type;
    uint8_t outcome = 4;
    switch (kind) {
    case AUDIT_ALERT_POLICY_REFUSED:
        type = &T_RESTRICTED;
        break;
    case AUDIT_ALERT_CERT_REJECTED:
        type = &T_NODE_AUTH;
        if (desc && strstr(desc, "revoked"))
            outcome = 8;
        break;
    case AUDIT_ALERT_CONFIG_RELOADED:
        type = &T_SEC_CONFIG;
        outcome = 0; /* success: an informative alert */
        break;
    case AUDIT_ALERT_CONFIG_REFUSED:
        type = &T_SEC_CONFIG;
        break;
    case AUDIT_ALERT_MESSAGES_LOST:
        type = &T_AUDIT_STOPPED;
        outcome = 8;
        break;
    default:
        return ERR_MALFORMED;
    }
    if (!desc)
        desc = "";
    struct build b;
    begin(&b, src, &EV_ALERT, 'E', outcome);
    b.ev.types[b.ev.n_types++] = type;
    ap_self(&b, src, NULL, NULL); /* the reporting process */
    if (peer)
        ap_peer(&b, peer, NULL, false); /* performing: UserIsRequestor shall be false */
    struct audit_po *po = add_po(&b);
    po->type = 2;
    if (peer && !subject) {
        po->role = 13;
        po->id_type = &ID_NODE;
        po->id = first(peer->ip, peer->cert.cn, peer->ae, NULL);
        po->name = first(peer->client_id, peer->cert.cn, peer->ae, peer->ip);
    } else {
        po->role = kind == AUDIT_ALERT_MESSAGES_LOST ? 13 : 5; /* master file: a configuration */
        po->id_type = &ID_URI;
        const char *s = subject ? subject : "";
        bool is_uri = strstr(s, "://") != NULL || strncmp(s, "urn:", 4) == 0;
        snprintf(b.uri, sizeof b.uri, "%s%s", is_uri || !s[0] ? "" : "file://", s);
        po->id = b.uri;
        po->name = kind == AUDIT_ALERT_MESSAGES_LOST ? "audit queue" : "configuration";
    }
    detail_str(po, "Alert Description", desc[0] ? desc : "-");
    if (kind == AUDIT_ALERT_MESSAGES_LOST) {
        snprintf(b.text[0], sizeof b.text[0], "%llu", (unsigned long long)count);
        detail_str(po, "MessagesLost", b.text[0]);
    }
    if (peer)
        po_cert(&b, peer);
    return finish(&b, out);
}

/* Begin and Transferred share their participants (A.5.3.3 and A.5.3.7). */
static int xfer(const struct audit_src *src, const struct audit_xfer *x, bool is_begin,
                bool failed_part, struct wbuf *out)
{
    struct build b;
    char action = is_begin ? 'E' : (x->action ? x->action : (x->peer_sends ? 'C' : 'R'));
    begin(&b, src, is_begin ? &EV_BEGIN : &EV_TRANSFERRED, action, failed_part ? 4 : 0);
    if (failed_part)
        b.ev.outcome_desc = x->failure ? x->failure : "not all instances were transferred";
    bool third = x->requestor != NULL;
    if (x->peer_sends) {
        ap_peer(&b, &x->peer, &R_SOURCE, !third);
        ap_self(&b, src, x->called_ae, &R_DEST);
    } else {
        ap_self(&b, src, x->called_ae, &R_SOURCE);
        ap_peer(&b, &x->peer, &R_DEST, !third);
    }
    if (third)
        ap_peer(&b, x->requestor, NULL, true);
    struct audit_po *st = po_study(&b, x->study_uid);
    st->accessions = x->accessions;
    st->n_accessions = x->accessions ? x->n_accessions : 0;
    st->encrypted = x->tls ? 1 : 0;
    int rc = take_sops(&b, x->sops, x->sops ? x->n_sops : 0, failed_part, st);
    if (rc == 0)
        rc = po_patient(&b, src, x->patient_id);
    if (rc == 0)
        po_cert(&b, &x->peer);
    if (rc < 0) {
        b.ev.n_aps = 0; /* render refuses: nothing is written */
        (void)finish(&b, out);
        return rc;
    }
    return finish(&b, out);
}

int audit_ev_begin(const struct audit_src *src, const struct audit_xfer *x, struct wbuf *out)
{
    return xfer(src, x, true, false, out);
}

int audit_ev_transferred(const struct audit_src *src, const struct audit_xfer *x, bool failed_part,
                         struct wbuf *out)
{
    return xfer(src, x, false, failed_part, out);
}

int audit_ev_query(const struct audit_src *src, const struct audit_query *q, struct wbuf *out)
{
    struct build b;
    begin(&b, src, &EV_QUERY, 'E', q->ok ? 0 : 4);
    if (!q->ok)
        b.ev.outcome_desc = q->failure ? q->failure : "query failed";
    ap_peer(&b, &q->peer, &R_SOURCE, true);
    ap_self(&b, src, q->called_ae, &R_DEST);
    struct audit_po *po = add_po(&b);
    po->type = 2;
    po->role = 3; /* A.5.3.10: report */
    po->id_type = &ID_SOP_CLASS;
    po->id = q->sop_class ? q->sop_class : "";
    po->has_query = true;
    struct wbuf red;
    wbuf_init(&red, AUDIT_DS_MAX_INPUT + 4096);
    const char *ts = q->transfer_syntax ? q->transfer_syntax : "1.2.840.10008.1.2";
    if (src->patient_include || !q->dataset) {
        po->query = q->dataset;
        po->query_len = q->dataset ? q->len : 0;
    } else {
        bool explicit_vr = strcmp(ts, "1.2.840.10008.1.2") != 0;
        int rc = ERR_CONFIG;
        if (src->key && src->key_len)
            rc = audit_ds_redact(q->dataset, q->len, explicit_vr, src->key, src->key_len, &red);
        if (rc == 0) {
            po->query = red.p;
            po->query_len = red.len;
            detail_str(po, "QueryRedacted", "Patient module emptied, Patient ID hashed");
        } else {
            po->query = NULL;
            po->query_len = 0;
            detail_str(po, "QueryRedacted", "identifier left out: it does not parse");
        }
    }
    detail_str(po, "TransferSyntax", ts);
    po_cert(&b, &q->peer);
    int rc = finish(&b, out);
    wbuf_cleanup(&red);
    return rc;
}

int audit_ev_accessed(const struct audit_src *src, const struct audit_access *a, struct wbuf *out)
{
    struct build b;
    char action = a->action && strchr("CRUD", a->action) ? a->action : 'R';
    begin(&b, src, &EV_ACCESSED, action, a->ok ? 0 : 4);
    if (!a->ok)
        b.ev.outcome_desc = a->failure ? a->failure : "access failed";
    ap_peer(&b, &a->peer, NULL, true);
    ap_self(&b, src, NULL, NULL);
    struct audit_po *st = po_study(&b, a->study_uid);
    int rc = take_sops(&b, a->sops, a->sops ? a->n_sops : 0, !a->ok, st);
    if (rc == 0)
        rc = po_patient(&b, src, a->patient_id);
    if (rc < 0) {
        b.ev.n_aps = 0;
        (void)finish(&b, out);
        return rc;
    }
    po_cert(&b, &a->peer);
    return finish(&b, out);
}

int audit_ev_commit(const struct audit_src *src, const struct audit_commit *c, bool failed_part,
                    struct wbuf *out)
{
    struct build b;
    begin(&b, src, &EV_TRANSFERRED, 'R', failed_part ? 4 : 0);
    b.ev.types[b.ev.n_types++] = &T_COMMIT;
    if (failed_part)
        b.ev.outcome_desc = c->failure ? c->failure : "instances not committed";
    ap_peer(&b, &c->peer, &R_SOURCE, true);
    ap_self(&b, src, c->called_ae, &R_DEST);
    struct audit_po *st = po_study(&b, c->study_uid);
    detail_str(st, "TransactionUID", c->transaction_uid);
    int rc = take_sops(&b, c->sops, c->sops ? c->n_sops : 0, failed_part, st);
    if (rc == 0)
        rc = po_patient(&b, src, c->patient_id);
    if (rc < 0) {
        b.ev.n_aps = 0;
        (void)finish(&b, out);
        return rc;
    }
    po_cert(&b, &c->peer);
    return finish(&b, out);
}
