/* audit_events: each gateway event as its PS3.15 A.5.3 message: the event ID, type codes,
 * action, outcome and participants each table prescribes; the Patient ID replaced by its keyed
 * hash unless the site chose "include"; the query identifier redacted; partial failures as a
 * second message. */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit_events.h"
#include "audit/audit_hash.h"
#include "audit/audit_msg.h"

static const uint8_t KEY[32] = "0123456789abcdef0123456789abcdef";
#define PID "PAT^SECRET-42"

static struct audit_src src(bool include)
{
    return (struct audit_src){.app_name = "dicom-core",
                              .host = "gw.test",
                              .source_id = "gw",
                              .site_id = "Site",
                              .ae_title = "DICOM_CORE",
                              .patient_include = include,
                              .key = KEY,
                              .key_len = sizeof KEY,
                              .now_us = INT64_C(1700000000000000)};
}

static const struct audit_party PEER = {
    .ip = "192.0.2.7",
    .ae = "CT1",
    .client_id = "ct-room-1",
    .cert = {.subject = "CN=ct-room-1,O=T",
             .issuer = "CN=CA",
             .cn = "ct-room-1",
             .serial = "10",
             .fp_sha256 = "aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00"}};

static char *out_of(struct wbuf *b)
{
    char *s = calloc(1, b->len + 1);
    memcpy(s, b->p, b->len);
    wbuf_cleanup(b);
    return s;
}

#define BUILD(call)                                                                                \
    ({                                                                                             \
        struct wbuf b_;                                                                            \
        wbuf_init(&b_, AUDIT_XML_MAX);                                                             \
        struct wbuf *out = &b_;                                                                    \
        int rc_ = (call);                                                                          \
        cr_assert_eq(rc_, 0, "%s failed: %d", #call, rc_);                                         \
        out_of(&b_);                                                                               \
    })

static void has(const char *s, const char *needle)
{
    cr_assert_not_null(strstr(s, needle), "missing %s in %s", needle, s);
}

static void hasnt(const char *s, const char *needle)
{
    cr_assert_null(strstr(s, needle), "unexpected %s", needle);
}

Test(audit_events, application_start_and_stop)
{
    struct audit_src s = src(false);
    char *x = BUILD(audit_ev_app(&s, true, out));
    has(x, "<EventID csd-code=\"110100\" codeSystemName=\"DCM\" originalText=\"Application "
           "Activity\"/>");
    has(x, "<EventTypeCode csd-code=\"110120\"");
    has(x, "EventActionCode=\"E\"");
    has(x, "EventDateTime=\"2023-11-14T22:13:20.000000Z\"");
    has(x, "UserID=\"dicom-core\" AlternativeUserID=\"AETITLES=DICOM_CORE\"");
    has(x, "<RoleIDCode csd-code=\"110150\"");
    has(x, "AuditEnterpriseSiteID=\"Site\" AuditSourceID=\"gw\"");
    hasnt(x, "ParticipantObjectIdentification");
    free(x);
    x = BUILD(audit_ev_app(&s, false, out));
    has(x, "<EventTypeCode csd-code=\"110121\"");
    free(x);
}

Test(audit_events, tls_authentication_carries_the_certificate)
{
    struct audit_src s = src(false);
    char *x = BUILD(audit_ev_auth(&s, &PEER, true, NULL, out));
    has(x, "csd-code=\"110114\"");
    has(x, "csd-code=\"110122\"");
    has(x, "EventOutcomeIndicator=\"0\"");
    has(x, "UserID=\"ct-room-1\" UserName=\"CN=ct-room-1,O=T\" UserIsRequestor=\"true\" "
           "NetworkAccessPointID=\"192.0.2.7\" NetworkAccessPointTypeCode=\"2\"");
    has(x,
        "ParticipantObjectID=\"aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00\"");
    has(x, "codeSystemName=\"99DICOMGW\"");
    has(x, "<ParticipantObjectDetail type=\"SerialNumber\" value=\"MTA=\"/>"); /* "10" */
    free(x);
    x = BUILD(audit_ev_auth(&s, &PEER, false, "revoked", out));
    has(x, "EventOutcomeIndicator=\"8\"");
    has(x, "<EventOutcomeDescription>revoked</EventOutcomeDescription>");
    free(x);
    x = BUILD(audit_ev_auth(&s, &PEER, false, "unknown_ca", out));
    has(x, "EventOutcomeIndicator=\"4\"");
    free(x);
    struct audit_party anon = {.ip = "192.0.2.9"}; /* no certificate at all */
    x = BUILD(audit_ev_auth(&s, &anon, false, "no_certificate", out));
    has(x, "UserID=\"192.0.2.9\"");
    hasnt(x, "99DICOMGW");
    free(x);
}

Test(audit_events, security_alerts_by_kind)
{
    struct audit_src s = src(false);
    char *x =
        BUILD(audit_ev_alert(&s, AUDIT_ALERT_POLICY_REFUSED, &PEER, NULL, "not bound", 0, out));
    has(x, "csd-code=\"110113\"");
    has(x, "<EventTypeCode csd-code=\"110132\"");
    has(x, "EventOutcomeIndicator=\"4\"");
    has(x, "<ParticipantObjectIDTypeCode csd-code=\"110182\"");
    has(x, "ParticipantObjectID=\"192.0.2.7\"");
    has(x, "type=\"Alert Description\" value=\"bm90IGJvdW5k\""); /* "not bound" */
    free(x);
    x = BUILD(audit_ev_alert(&s, AUDIT_ALERT_CERT_REJECTED, &PEER, NULL, "revoked cert", 0, out));
    has(x, "<EventTypeCode csd-code=\"110126\"");
    has(x, "EventOutcomeIndicator=\"8\"");
    free(x);
    x = BUILD(audit_ev_alert(&s, AUDIT_ALERT_CONFIG_RELOADED, NULL, "/etc/p.json", "ok", 0, out));
    has(x, "<EventTypeCode csd-code=\"110129\"");
    has(x, "EventOutcomeIndicator=\"0\"");
    has(x, "ParticipantObjectID=\"file:///etc/p.json\"");
    has(x, "ParticipantObjectTypeCodeRole=\"5\"");
    free(x);
    x = BUILD(audit_ev_alert(&s, AUDIT_ALERT_CONFIG_REFUSED, NULL, "urn:x:y", "bad", 0, out));
    has(x, "EventOutcomeIndicator=\"4\"");
    has(x, "ParticipantObjectID=\"urn:x:y\"");
    free(x);
    x = BUILD(audit_ev_alert(&s, AUDIT_ALERT_MESSAGES_LOST, NULL, "file:///q", "lost", 15, out));
    has(x, "<EventTypeCode csd-code=\"110133\"");
    has(x, "type=\"MessagesLost\" value=\"MTU=\""); /* "15" */
    free(x);
}

static const char *UIDS[] = {"2.25.1", "2.25.2"};
static const char *FAILED[] = {"2.25.3"};
static const struct audit_sop_count SOPS[] = {{.uid = "1.2.840.10008.5.1.4.1.1.2",
                                               .ok = 2,
                                               .failed = 1,
                                               .ok_uids = UIDS,
                                               .n_ok_uids = 2,
                                               .failed_uids = FAILED,
                                               .n_failed_uids = 1},
                                              {.uid = "1.2.840.10008.5.1.4.1.1.4", .ok = 3}};

static struct audit_xfer xfer(void)
{
    return (struct audit_xfer){.peer = PEER,
                               .peer_sends = true,
                               .study_uid = "1.2.3",
                               .patient_id = PID,
                               .sops = SOPS,
                               .n_sops = 2,
                               .tls = true,
                               .failure = "A700"};
}

Test(audit_events, transfers_hash_the_patient_id_by_default)
{
    struct audit_src s = src(false);
    struct audit_xfer xf = xfer();
    char want[65];
    cr_assert_eq(audit_hmac_hex(KEY, sizeof KEY, PID, strlen(PID), want), 0);
    char *x = BUILD(audit_ev_transferred(&s, &xf, false, out));
    has(x, "csd-code=\"110104\"");
    has(x, "EventActionCode=\"C\"");
    has(x, "EventOutcomeIndicator=\"0\"");
    has(x, "<RoleIDCode csd-code=\"110153\""); /* the modality sent */
    has(x, "<RoleIDCode csd-code=\"110152\""); /* we received */
    has(x, "<ParticipantObjectIDTypeCode csd-code=\"110180\"");
    has(x, "<SOPClass UID=\"1.2.840.10008.5.1.4.1.1.2\" NumberOfInstances=\"2\"><Instance "
           "UID=\"2.25.1\"/>");
    has(x, "NumberOfInstances=\"3\"");
    has(x, "<Encrypted>true</Encrypted>");
    has(x, "ParticipantObjectTypeCode=\"1\" ParticipantObjectTypeCodeRole=\"1\"");
    has(x, want);
    hasnt(x, "SECRET");
    free(x);
    x = BUILD(audit_ev_transferred(&s, &xf, true, out)); /* the failed part */
    has(x, "EventOutcomeIndicator=\"4\"");
    has(x, "<EventOutcomeDescription>A700</EventOutcomeDescription>");
    has(x, "NumberOfInstances=\"1\"><Instance UID=\"2.25.3\"/>");
    hasnt(x, "NumberOfInstances=\"3\""); /* nothing of that class failed */
    free(x);
    x = BUILD(audit_ev_begin(&s, &xf, out));
    has(x, "csd-code=\"110102\"");
    has(x, "EventActionCode=\"E\"");
    free(x);
}

Test(audit_events, include_mode_sends_the_patient_id_itself)
{
    struct audit_src s = src(true);
    struct audit_xfer xf = xfer();
    char *x = BUILD(audit_ev_transferred(&s, &xf, false, out));
    has(x, "ParticipantObjectID=\"PAT^SECRET-42\"");
    hasnt(x, "PatientIDHash");
    free(x);
}

Test(audit_events, hash_mode_without_a_key_is_refused)
{
    struct audit_src s = src(false);
    s.key = NULL;
    s.key_len = 0;
    struct audit_xfer xf = xfer();
    struct wbuf b;
    wbuf_init(&b, AUDIT_XML_MAX);
    cr_assert_eq(audit_ev_transferred(&s, &xf, false, &b), ERR_CONFIG);
    cr_assert_eq(b.len, 0);
    wbuf_cleanup(&b);
}

Test(audit_events, retrieve_direction_swaps_roles_and_reads)
{
    struct audit_src s = src(false);
    struct audit_xfer xf = xfer();
    xf.peer_sends = false;
    char *x = BUILD(audit_ev_transferred(&s, &xf, false, out));
    has(x, "EventActionCode=\"R\"");
    const char *src_role = strstr(x, "110153");
    const char *self = strstr(x, "UserID=\"dicom-core\"");
    cr_assert(self && src_role && self < src_role, "we are the source when we send");
    free(x);
}

Test(audit_events, query_carries_the_redacted_identifier)
{
    /* implicit VR LE: (0008,0052) "STUDY ", (0010,0010) "DOE^J", (0010,0020) PID */
    uint8_t ds[128];
    size_t n = 0;
    const struct {
        uint16_t g, e;
        const char *v;
    } els[] = {{0x0008, 0x0052, "STUDY "}, {0x0010, 0x0010, "DOE^J "}, {0x0010, 0x0020, PID " "}};
    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(els[i].v);
        uint8_t h[8] = {(uint8_t)els[i].g,
                        (uint8_t)(els[i].g >> 8),
                        (uint8_t)els[i].e,
                        (uint8_t)(els[i].e >> 8),
                        (uint8_t)l,
                        0,
                        0,
                        0};
        memcpy(ds + n, h, 8);
        memcpy(ds + n + 8, els[i].v, l);
        n += 8 + l;
    }
    struct audit_src s = src(false);
    struct audit_query q = {.peer = PEER,
                            .sop_class = "1.2.840.10008.5.1.4.1.2.2.1",
                            .transfer_syntax = "1.2.840.10008.1.2",
                            .dataset = ds,
                            .len = n,
                            .ok = true};
    char *x = BUILD(audit_ev_query(&s, &q, out));
    has(x, "csd-code=\"110112\"");
    has(x, "<ParticipantObjectIDTypeCode csd-code=\"110181\"");
    has(x, "ParticipantObjectID=\"1.2.840.10008.5.1.4.1.2.2.1\"");
    has(x, "<ParticipantObjectQuery>");
    has(x, "type=\"TransferSyntax\"");
    has(x, "type=\"QueryRedacted\"");
    const char *q0 = strstr(x, "<ParticipantObjectQuery>") + 24;
    const char *q1 = strstr(q0, "</ParticipantObjectQuery>");
    uint8_t dec[512];
    int dn = EVP_DecodeBlock(dec, (const uint8_t *)q0, (int)(q1 - q0));
    cr_assert_gt(dn, 0);
    char want[65];
    cr_assert_eq(audit_hmac_hex(KEY, sizeof KEY, PID, strlen(PID), want), 0);
    cr_assert_null(memmem(dec, (size_t)dn, "DOE", 3), "the patient's name left the gateway");
    cr_assert_null(memmem(dec, (size_t)dn, "SECRET", 6), "the Patient ID left the gateway");
    cr_assert_not_null(memmem(dec, (size_t)dn, want, 64), "no keyed hash in the identifier");
    cr_assert_not_null(memmem(dec, (size_t)dn, "STUDY", 5), "the query level was lost");
    free(x);
    s = src(true);
    x = BUILD(audit_ev_query(&s, &q, out));
    hasnt(x, "QueryRedacted");
    free(x);
    s = src(false);
    q.len = 5; /* cut: does not parse, left out */
    x = BUILD(audit_ev_query(&s, &q, out));
    has(x, "<ParticipantObjectQuery></ParticipantObjectQuery>");
    has(x, "type=\"QueryRedacted\"");
    free(x);
}

Test(audit_events, accessed_and_commitment)
{
    struct audit_src s = src(false);
    struct audit_access acc = {.peer = PEER,
                               .action = 'D',
                               .study_uid = "1.2.3",
                               .patient_id = PID,
                               .sops = SOPS,
                               .n_sops = 2,
                               .ok = true};
    char *x = BUILD(audit_ev_accessed(&s, &acc, out));
    has(x, "csd-code=\"110103\"");
    has(x, "EventActionCode=\"D\"");
    free(x);
    struct audit_commit c = {.peer = PEER,
                             .transaction_uid = "2.25.99",
                             .study_uid = "1.2.3",
                             .patient_id = NULL,
                             .sops = SOPS,
                             .n_sops = 2};
    x = BUILD(audit_ev_commit(&s, &c, false, out));
    has(x, "csd-code=\"110104\"");
    has(x, "<EventTypeCode csd-code=\"1.2.840.10008.1.20.1\" codeSystemName=\"DCMUID\"");
    has(x, "EventActionCode=\"R\"");
    has(x, "type=\"TransactionUID\" value=\"Mi4yNS45OQ==\""); /* "2.25.99" */
    has(x, "ParticipantObjectID=\"UNKNOWN\"");                /* no patient ID known */
    free(x);
    x = BUILD(audit_ev_commit(&s, &c, true, out));
    has(x, "EventOutcomeIndicator=\"4\"");
    free(x);
}

Test(audit_events, hostile_strings_are_escaped_everywhere)
{
    struct audit_src s = src(false);
    struct audit_party p = PEER;
    p.ae = "<x\"&'>";
    p.cert.subject = "CN=\x01\xff<script>";
    char *x = BUILD(audit_ev_auth(&s, &p, false, "a<b", out));
    hasnt(x, "<script>");
    hasnt(x, "<x");
    has(x, "&lt;script&gt;");
    has(x, "CN=??&lt;");
    free(x);
}
