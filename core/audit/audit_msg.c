#include "audit_msg.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

/* Length of the well-formed UTF-8 sequence at p that encodes an XML 1.0 Char, or 0. */
static size_t utf8_char(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0; /* overlong or out of range */
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF)
        return 0; /* surrogates and non-characters are not XML Chars */
    return len;
}

void audit_xml_escape(struct wbuf *out, const char *s, size_t max)
{
    if (!s)
        return;
    const uint8_t *p = (const uint8_t *)s;
    size_t n = strlen(s);
    size_t used = 0;
    while (used < n) {
        size_t len = utf8_char(p + used, n - used);
        size_t step = len ? len : 1;
        if (used + step > max) {
            wbuf_str(out, "...");
            return;
        }
        uint8_t c = p[used];
        if (len == 0) {
            wbuf_u8(out, '?');
        } else if (len > 1) {
            wbuf_put(out, p + used, len);
        } else if (c == '&') {
            wbuf_str(out, "&amp;");
        } else if (c == '<') {
            wbuf_str(out, "&lt;");
        } else if (c == '>') {
            wbuf_str(out, "&gt;");
        } else if (c == '"') {
            wbuf_str(out, "&quot;");
        } else if (c == '\'') {
            wbuf_str(out, "&apos;");
        } else if (c == '\t') {
            wbuf_str(out, "&#9;");
        } else if (c == '\n') {
            wbuf_str(out, "&#10;");
        } else if (c == '\r') {
            wbuf_str(out, "&#13;");
        } else if (c < 0x20 || c == 0x7F) {
            wbuf_u8(out, '?'); /* not an XML 1.0 Char (or DEL, which syslog relays escape) */
        } else {
            wbuf_u8(out, c);
        }
        used += step;
    }
}

void audit_b64(struct wbuf *out, const void *p, size_t n)
{
    /* EVP_EncodeBlock takes an int length: chunks of 3 KiB keep every call small and aligned */
    const uint8_t *in = p;
    while (n > 0) {
        size_t chunk = n > 3072 ? 3072 : n;
        size_t enc = 4 * ((chunk + 2) / 3);
        if (wbuf_reserve(out, enc + 1) < 0)
            return;
        int w = EVP_EncodeBlock(out->p + out->len, in, (int)chunk);
        if (w < 0 || (size_t)w != enc) {
            out->err = ERR_UNEXPECTED;
            return;
        }
        out->len += enc; /* the NUL EVP writes is not part of the output */
        in += chunk;
        n -= chunk;
    }
}

void audit_xml_time(int64_t t_us, char *buf, size_t n)
{
    time_t secs = (time_t)(t_us / 1000000);
    long us = (long)(t_us % 1000000);
    if (us < 0) {
        us += 1000000;
        secs--;
    }
    struct tm tm;
    if (!gmtime_r(&secs, &tm)) {
        snprintf(buf, n, "1970-01-01T00:00:00Z");
        return;
    }
    snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, us);
}

static void attr(struct wbuf *b, const char *name, const char *val)
{
    wbuf_u8(b, ' ');
    wbuf_str(b, name);
    wbuf_str(b, "=\"");
    audit_xml_escape(b, val ? val : "", AUDIT_FIELD_MAX);
    wbuf_u8(b, '"');
}

static void attr_u64(struct wbuf *b, const char *name, uint64_t v)
{
    wbuf_printf(b, " %s=\"%" PRIu64 "\"", name, v);
}

static void code_elem(struct wbuf *b, const char *elem, const struct audit_code *c)
{
    wbuf_u8(b, '<');
    wbuf_str(b, elem);
    attr(b, "csd-code", c->code);
    attr(b, "codeSystemName", c->scheme);
    attr(b, "originalText", c->meaning);
    wbuf_str(b, "/>");
}

static void detail(struct wbuf *b, const char *type, const void *v, size_t len)
{
    wbuf_str(b, "<ParticipantObjectDetail");
    attr(b, "type", type);
    wbuf_str(b, " value=\"");
    audit_b64(b, v, len > AUDIT_FIELD_MAX ? AUDIT_FIELD_MAX : len);
    wbuf_str(b, "\"/>");
}

static void render_ap(struct wbuf *b, const struct audit_ap *ap)
{
    wbuf_str(b, "<ActiveParticipant");
    attr(b, "UserID", ap->user_id);
    if (ap->alt_user_id)
        attr(b, "AlternativeUserID", ap->alt_user_id);
    if (ap->user_name)
        attr(b, "UserName", ap->user_name);
    wbuf_str(b, ap->requestor ? " UserIsRequestor=\"true\"" : " UserIsRequestor=\"false\"");
    if (ap->nap_id && ap->nap_id[0] && (ap->nap_type == 1 || ap->nap_type == 2)) {
        attr(b, "NetworkAccessPointID", ap->nap_id);
        wbuf_printf(b, " NetworkAccessPointTypeCode=\"%u\"", (unsigned)ap->nap_type);
    }
    if (ap->n_roles == 0) {
        wbuf_str(b, "/>");
        return;
    }
    wbuf_u8(b, '>');
    for (size_t i = 0; i < ap->n_roles && i < AUDIT_MAX_ROLES; i++)
        code_elem(b, "RoleIDCode", ap->roles[i]);
    wbuf_str(b, "</ActiveParticipant>");
}

/* level 0: everything; 1: no Instance lists; 2: also at most 16 SOP classes, 8 accessions */
static void render_po(struct wbuf *b, const struct audit_po *po, int level)
{
    wbuf_str(b, "<ParticipantObjectIdentification");
    attr(b, "ParticipantObjectID", po->id);
    if (po->type)
        wbuf_printf(b, " ParticipantObjectTypeCode=\"%u\"", (unsigned)po->type);
    if (po->role)
        wbuf_printf(b, " ParticipantObjectTypeCodeRole=\"%u\"", (unsigned)po->role);
    if (po->lifecycle)
        wbuf_printf(b, " ParticipantObjectDataLifeCycle=\"%u\"", (unsigned)po->lifecycle);
    wbuf_u8(b, '>');
    code_elem(b, "ParticipantObjectIDTypeCode", po->id_type);
    if (po->has_query) {
        wbuf_str(b, "<ParticipantObjectQuery>");
        audit_b64(b, po->query, po->query_len > AUDIT_QUERY_MAX ? AUDIT_QUERY_MAX : po->query_len);
        wbuf_str(b, "</ParticipantObjectQuery>");
    } else if (po->name && po->name[0]) {
        wbuf_str(b, "<ParticipantObjectName>");
        audit_xml_escape(b, po->name, AUDIT_FIELD_MAX);
        wbuf_str(b, "</ParticipantObjectName>");
    } else {
        wbuf_str(b, "<ParticipantObjectName/>");
    }
    for (size_t i = 0; i < po->n_details && i < AUDIT_MAX_DETAILS; i++)
        detail(b, po->details[i].type, po->details[i].value, po->details[i].len);

    size_t n_sops = po->n_sops, n_acc = po->n_accessions, inst_cut = 0;
    if (level >= 2 && n_sops > 16)
        n_sops = 16;
    if (level >= 2 && n_acc > 8)
        n_acc = 8;
    for (size_t i = 0; level >= 1 && i < po->n_sops; i++)
        inst_cut += po->sops[i].n_instances;
    if (po->has_query && po->query_len > AUDIT_QUERY_MAX) {
        char t[96];
        int w =
            snprintf(t, sizeof t, "query cut to %u of %zu bytes", AUDIT_QUERY_MAX, po->query_len);
        detail(b, "Truncated", t, w > 0 ? (size_t)w : 0);
    }
    if (po->has_desc && (inst_cut || n_sops < po->n_sops || n_acc < po->n_accessions)) {
        char t[160];
        int w = snprintf(t, sizeof t,
                         "omitted: %zu instance UIDs, %zu SOP classes, %zu accession numbers",
                         inst_cut, po->n_sops - n_sops, po->n_accessions - n_acc);
        detail(b, "Truncated", t, w > 0 ? (size_t)w : 0);
    }
    if (po->has_desc) {
        wbuf_str(b, "<ParticipantObjectDescription>");
        for (size_t i = 0; i < n_acc; i++) {
            wbuf_str(b, "<Accession");
            attr(b, "Number", po->accessions[i]);
            wbuf_str(b, "/>");
        }
        for (size_t i = 0; i < n_sops; i++) {
            const struct audit_sop *s = &po->sops[i];
            wbuf_str(b, "<SOPClass");
            if (s->uid)
                attr(b, "UID", s->uid);
            attr_u64(b, "NumberOfInstances", s->count);
            size_t ni = level >= 1 ? 0 : s->n_instances;
            if (ni == 0) {
                wbuf_str(b, "/>");
                continue;
            }
            wbuf_u8(b, '>');
            for (size_t k = 0; k < ni; k++) {
                wbuf_str(b, "<Instance");
                attr(b, "UID", s->instances[k]);
                wbuf_str(b, "/>");
            }
            wbuf_str(b, "</SOPClass>");
        }
        if (po->contains_study) {
            wbuf_str(b, "<ParticipantObjectContainsStudy><StudyIDs");
            attr(b, "UID", po->contains_study);
            wbuf_str(b, "/></ParticipantObjectContainsStudy>");
        }
        if (po->encrypted >= 0)
            wbuf_str(b, po->encrypted ? "<Encrypted>true</Encrypted>"
                                      : "<Encrypted>false</Encrypted>");
        wbuf_str(b, "</ParticipantObjectDescription>");
    }
    wbuf_str(b, "</ParticipantObjectIdentification>");
}

static bool valid_event(const struct audit_event *e)
{
    if (!e->event_id || e->n_aps == 0 || e->n_aps > AUDIT_MAX_APS || e->n_pos > AUDIT_MAX_POS ||
        e->n_types > 2)
        return false;
    if (e->outcome != 0 && e->outcome != 4 && e->outcome != 8 && e->outcome != 12)
        return false;
    if (e->action && !strchr("CRUDE", e->action))
        return false;
    for (size_t i = 0; i < e->n_types; i++) {
        if (!e->types[i])
            return false;
    }
    for (size_t i = 0; i < e->n_aps; i++) {
        if (e->aps[i].n_roles > AUDIT_MAX_ROLES)
            return false;
        for (size_t k = 0; k < e->aps[i].n_roles; k++) {
            if (!e->aps[i].roles[k])
                return false;
        }
    }
    for (size_t i = 0; i < e->n_pos; i++) {
        const struct audit_po *po = &e->pos[i];
        if (!po->id_type || po->n_details > AUDIT_MAX_DETAILS)
            return false;
        if ((po->n_sops && !po->sops) || (po->n_accessions && !po->accessions))
            return false;
        for (size_t k = 0; k < po->n_sops; k++) {
            if (po->sops[k].n_instances && !po->sops[k].instances)
                return false;
        }
    }
    return true;
}

static void render(const struct audit_event *e, struct wbuf *b, int level)
{
    char when[40];
    audit_xml_time(e->time_us, when, sizeof when);
    wbuf_str(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><AuditMessage><EventIdentification");
    if (e->action)
        wbuf_printf(b, " EventActionCode=\"%c\"", e->action);
    wbuf_printf(b, " EventDateTime=\"%s\" EventOutcomeIndicator=\"%u\">", when,
                (unsigned)e->outcome);
    code_elem(b, "EventID", e->event_id);
    for (size_t i = 0; i < e->n_types; i++)
        code_elem(b, "EventTypeCode", e->types[i]);
    if (e->outcome_desc) {
        wbuf_str(b, "<EventOutcomeDescription>");
        audit_xml_escape(b, e->outcome_desc, AUDIT_FIELD_MAX);
        wbuf_str(b, "</EventOutcomeDescription>");
    }
    wbuf_str(b, "</EventIdentification>");
    for (size_t i = 0; i < e->n_aps; i++)
        render_ap(b, &e->aps[i]);
    wbuf_str(b, "<AuditSourceIdentification");
    if (e->site_id && e->site_id[0])
        attr(b, "AuditEnterpriseSiteID", e->site_id);
    attr(b, "AuditSourceID", e->source_id);
    if (e->source_type) {
        wbuf_str(b, "><AuditSourceTypeCode");
        attr(b, "csd-code", e->source_type);
        wbuf_str(b, "/></AuditSourceIdentification>");
    } else {
        wbuf_str(b, "/>");
    }
    for (size_t i = 0; i < e->n_pos; i++)
        render_po(b, &e->pos[i], level);
    wbuf_str(b, "</AuditMessage>");
}

int audit_msg_render(const struct audit_event *e, struct wbuf *out)
{
    if (!valid_event(e))
        return ERR_MALFORMED;
    if (out->err)
        return out->err;
    size_t start = out->len;
    for (int level = 0; level <= 2; level++) {
        render(e, out, level);
        if (out->err == 0)
            return 0;
        if (out->err != ERR_LIMIT)
            break;
        out->len = start;
        out->err = 0;
    }
    int rc = out->err ? out->err : ERR_LIMIT;
    out->len = start;
    out->err = 0;
    return rc;
}
