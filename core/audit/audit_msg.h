/* audit_msg: renders one DICOM audit message (PS3.15 A.5.1, the schema's element order) from a
 * plain description. Pure: no I/O, no clock, no globals. Every string is XML-escaped, invalid
 * UTF-8 and control characters are replaced, and every size is bounded (see the caps below and
 * "Truncation" in docs/audit.md). */
#ifndef GW_AUDIT_MSG_H
#define GW_AUDIT_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wbuf.h"

#define AUDIT_XML_MAX 60000u   /* a rendered message; fits a UDP datagram with its header */
#define AUDIT_FIELD_MAX 1024u  /* any one string, in bytes, before escaping */
#define AUDIT_QUERY_MAX 16384u /* ParticipantObjectQuery bytes before base64 */
#define AUDIT_MAX_APS 4u       /* ActiveParticipant elements */
#define AUDIT_MAX_POS 16u      /* ParticipantObjectIdentification elements */
#define AUDIT_MAX_DETAILS 8u   /* ParticipantObjectDetail per object */
#define AUDIT_MAX_ROLES 2u

/* A coded value (csd-code, codeSystemName, originalText): every one needs originalText. */
struct audit_code {
    const char *code;
    const char *scheme;
    const char *meaning;
};

/* ActiveParticipant. NULL strings are omitted (user_id is mandatory: NULL renders ""). */
struct audit_ap {
    const char *user_id;
    const char *alt_user_id;
    const char *user_name;
    bool requestor;
    const char *nap_id; /* NetworkAccessPointID */
    uint8_t nap_type;   /* 0 omitted, 1 machine name, 2 IP address */
    const struct audit_code *roles[AUDIT_MAX_ROLES];
    size_t n_roles;
};

/* ParticipantObjectDetail: type and any bytes (rendered base64, as the schema wants). */
struct audit_detail {
    const char *type;
    const void *value;
    size_t len;
};

/* One SOPClass of a ParticipantObjectDescription. */
struct audit_sop {
    const char *uid;
    uint64_t count;               /* NumberOfInstances */
    const char *const *instances; /* Instance UIDs listed (may be fewer than count) */
    size_t n_instances;
};

/* ParticipantObjectIdentification. Exactly one of name (NULL renders an empty
 * ParticipantObjectName) or query (has_query) is rendered, as the schema requires. */
struct audit_po {
    uint8_t type, role, lifecycle; /* 0 omits the attribute */
    const struct audit_code *id_type;
    const char *id;
    const char *name;
    bool has_query;
    const void *query; /* at most AUDIT_QUERY_MAX bytes are rendered */
    size_t query_len;
    struct audit_detail details[AUDIT_MAX_DETAILS];
    size_t n_details;
    /* ParticipantObjectDescription, rendered when has_desc */
    bool has_desc;
    const char *const *accessions;
    size_t n_accessions;
    const struct audit_sop *sops;
    size_t n_sops;
    const char *contains_study; /* ParticipantObjectContainsStudy/StudyIDs, or NULL */
    int encrypted;              /* -1 omitted, 0 false, 1 true */
};

struct audit_event {
    const struct audit_code *event_id;
    const struct audit_code *types[2]; /* EventTypeCode */
    size_t n_types;
    char action;              /* 'C', 'R', 'U', 'D', 'E' or 0 (omitted) */
    int64_t time_us;          /* EventDateTime, microseconds since the epoch, UTC */
    uint8_t outcome;          /* 0, 4, 8 or 12 */
    const char *outcome_desc; /* EventOutcomeDescription or NULL */
    const struct audit_ap *aps;
    size_t n_aps;            /* 1..AUDIT_MAX_APS */
    const char *source_id;   /* AuditSourceID */
    const char *site_id;     /* AuditEnterpriseSiteID or NULL */
    const char *source_type; /* AuditSourceTypeCode csd-code ("1".."9") or NULL */
    const struct audit_po *pos;
    size_t n_pos; /* 0..AUDIT_MAX_POS */
};

/* Render e as one XML document (declaration + AuditMessage, no newlines) appended to out (whose
 * cap the caller sets; AUDIT_XML_MAX is the usual). When the full rendering does not fit, it is
 * rendered again without Instance lists, then with at most 16 SOP classes and 8 accession
 * numbers per object; each shortened object gets a ParticipantObjectDetail "Truncated" saying
 * what was left out. Returns 0, ERR_MALFORMED for a description the schema cannot express (no
 * participant, bad outcome or action, too many elements) or ERR_LIMIT when even the shortest
 * form does not fit (out is then left as it was). */
MUST_CHECK int audit_msg_render(const struct audit_event *e, struct wbuf *out);

/* Append s XML-escaped (attribute- and text-safe): & < > " ' as entities, tab/LF/CR as character
 * references, other control characters and invalid UTF-8 as '?'. At most max input bytes are
 * used, cut on a character boundary and marked with "..." when cut. NULL appends nothing. */
void audit_xml_escape(struct wbuf *out, const char *s, size_t max);

/* Append the base64 (RFC 4648, padded) of p[0..n). */
void audit_b64(struct wbuf *out, const void *p, size_t n);

/* Write the xsd:dateTime of t_us (UTC, microseconds, "Z") into buf (>= 28 bytes). */
void audit_xml_time(int64_t t_us, char *buf, size_t n);

#endif
