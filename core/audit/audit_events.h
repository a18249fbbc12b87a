/* audit_events: the gateway's audit events as DICOM audit messages (PS3.15 A.5.3, codes from
 * PS3.16 CID 400-404). Pure builders: a description of what happened in, one XML message out
 * (audit_msg_render). docs/audit.md lists what each message carries. */
#ifndef GW_AUDIT_EVENTS_H
#define GW_AUDIT_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wbuf.h"

/* The reporting process; fixed for a run. */
struct audit_src {
    const char *app_name;  /* "dicom-edge", "dicom-core": UserID and UserName of our process */
    const char *host;      /* our NetworkAccessPointID (machine name) */
    const char *source_id; /* AuditSourceID */
    const char *site_id;   /* AuditEnterpriseSiteID or NULL */
    const char *ae_title;  /* our AE title (AlternativeUserID "AETITLES=") or NULL */
    bool patient_include;  /* true: the real Patient ID; false: its keyed hash */
    const uint8_t *key;    /* the site key for the hash (required unless patient_include) */
    size_t key_len;
    int64_t now_us; /* EventDateTime; 0: the current time */
};

/* A certificate identity, as tls_peer_id has it (every member may be NULL). */
struct audit_cert {
    const char *subject; /* RFC 2253 */
    const char *issuer;
    const char *cn;
    const char *serial;    /* hex */
    const char *fp_sha256; /* 64 lowercase hex */
};

/* The other node (a modality, a PACS, the edge): every member may be NULL. */
struct audit_party {
    const char *ip;        /* numeric address */
    const char *ae;        /* its AE title on this association */
    const char *client_id; /* the edge policy's client id */
    struct audit_cert cert;
};

/* Per SOP class: instances that made it (ok) and those that did not (failed). The UID lists
 * are optional (listed in the message when given, within its size bound). */
struct audit_sop_count {
    const char *uid;
    uint64_t ok, failed;
    const char *const *ok_uids;
    size_t n_ok_uids;
    const char *const *failed_uids;
    size_t n_failed_uids;
};

/* Instances of one study exchanged with peer on one association. */
struct audit_xfer {
    struct audit_party peer;
    bool peer_sends; /* true: peer sends to us (C-STORE); false: we send (C-GET, C-MOVE) */
    const struct audit_party *requestor; /* a third party that asked (C-MOVE), or NULL */
    const char *called_ae; /* the AE title the peer addressed (ours), or NULL: src->ae_title */
    const char *study_uid;
    const char *patient_id; /* as received; hashed unless patient_include; NULL: "UNKNOWN" */
    const char *const *accessions;
    size_t n_accessions;
    const struct audit_sop_count *sops;
    size_t n_sops;
    char action;         /* EventActionCode of the Transferred message; 0: 'C' when the peer
                          * sends, 'R' otherwise (A.5.3.7) */
    bool tls;            /* Encrypted */
    const char *failure; /* EventOutcomeDescription of the failed part */
};

struct audit_query {
    struct audit_party peer; /* the node that asked */
    const char *called_ae;
    const char *sop_class;       /* the Query/Retrieve information model's SOP Class UID */
    const char *transfer_syntax; /* the identifier's transfer syntax UID */
    const uint8_t *dataset;      /* the C-FIND identifier as received */
    size_t len;
    bool ok;
    const char *failure;
};

/* Instances of one study of one patient viewed, used, changed or deleted (A.5.3.6). */
struct audit_access {
    struct audit_party peer; /* who did it */
    char action;             /* 'C', 'R', 'U' or 'D' */
    const char *study_uid;
    const char *patient_id;
    const struct audit_sop_count *sops;
    size_t n_sops;
    bool ok;
    const char *failure;
};

/* One study's part of a Storage Commitment report (N-EVENT-REPORT) to peer. */
struct audit_commit {
    struct audit_party peer;
    const char *called_ae;
    const char *transaction_uid;
    const char *study_uid;              /* NULL: "UNKNOWN" */
    const char *patient_id;             /* NULL: "UNKNOWN" */
    const struct audit_sop_count *sops; /* ok = committed, failed = not committed */
    size_t n_sops;
    const char *failure;
};

enum audit_alert {
    AUDIT_ALERT_POLICY_REFUSED = 1, /* 110132 Use of Restricted Function */
    AUDIT_ALERT_CERT_REJECTED,      /* 110126 Node Authentication (revoked, expired...) */
    AUDIT_ALERT_CONFIG_RELOADED,    /* 110129 Security Configuration, outcome 0 */
    AUDIT_ALERT_CONFIG_REFUSED,     /* 110129 Security Configuration, outcome 4 */
    AUDIT_ALERT_MESSAGES_LOST,      /* 110133 Audit Recording Stopped, outcome 8 */
};

/* Application Activity (A.5.3.1): start or stop of this process. */
MUST_CHECK int audit_ev_app(const struct audit_src *src, bool start, struct wbuf *out);

/* User Authentication (A.5.3.12), EventTypeCode Login: a TLS client authentication by peer,
 * accepted (ok) or refused for reason (tls_fail_reason's words). The certificate travels as an
 * extra participant object (docs/audit.md). Outcome 0, 8 for "revoked", 4 otherwise. */
MUST_CHECK int audit_ev_auth(const struct audit_src *src, const struct audit_party *peer, bool ok,
                             const char *reason, struct wbuf *out);

/* Security Alert (A.5.3.11) of kind. peer: the node concerned (or NULL); subject: the file or
 * resource concerned as a path or URI (or NULL); desc: free text (required); count: the
 * number of messages lost (AUDIT_ALERT_MESSAGES_LOST). */
MUST_CHECK int audit_ev_alert(const struct audit_src *src, enum audit_alert kind,
                              const struct audit_party *peer, const char *subject, const char *desc,
                              uint64_t count, struct wbuf *out);

/* Begin Transferring DICOM Instances (A.5.3.3); counts are the sops' ok. */
MUST_CHECK int audit_ev_begin(const struct audit_src *src, const struct audit_xfer *x,
                              struct wbuf *out);

/* DICOM Instances Transferred (A.5.3.7): the successful part (failed_part false, counts ok,
 * outcome 0) or the failed part (counts failed, outcome 4): one message each, as A.5.2 asks. */
MUST_CHECK int audit_ev_transferred(const struct audit_src *src, const struct audit_xfer *x,
                                    bool failed_part, struct wbuf *out);

/* Query (A.5.3.10): the identifier base64 in ParticipantObjectQuery; unless patient_include,
 * its Patient module values are replaced (audit_ds_redact; an identifier that does not parse is
 * left out and a detail says so). */
MUST_CHECK int audit_ev_query(const struct audit_src *src, const struct audit_query *q,
                              struct wbuf *out);

/* DICOM Instances Accessed (A.5.3.6). */
MUST_CHECK int audit_ev_accessed(const struct audit_src *src, const struct audit_access *a,
                                 struct wbuf *out);

/* Storage Commitment report: PS3.15 A.5.3 has no message of its own; we send DICOM Instances
 * Transferred (action R) with EventTypeCode (1.2.840.10008.1.20.1, DCMUID, "Storage Commitment
 * Push Model SOP Class") and the Transaction UID as a detail: the committed part (outcome 0) or
 * the failed part (outcome 4). docs/audit.md says why. */
MUST_CHECK int audit_ev_commit(const struct audit_src *src, const struct audit_commit *c,
                               bool failed_part, struct wbuf *out);

#endif
