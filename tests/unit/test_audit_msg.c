/* audit_msg: the XML of one audit message (PS3.15 A.5.1). Escaping of every special and
 * control character and of invalid UTF-8, cuts on character boundaries, base64, the time
 * format, refusal of descriptions the schema cannot express, the schema's element order, and
 * the size bound with its truncation rules. (Schema validity of every event: the integration
 * test runs xmllint --relaxng on each.) */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit_msg.h"

static char *esc(const char *s, size_t max)
{
    static char out[4096];
    struct wbuf b;
    wbuf_init(&b, sizeof out - 1);
    audit_xml_escape(&b, s, max);
    cr_assert_eq(b.err, 0);
    memcpy(out, b.p ? (const char *)b.p : "", b.len);
    out[b.len] = '\0';
    wbuf_cleanup(&b);
    return out;
}

Test(audit_msg, escapes_markup_quotes_and_whitespace)
{
    cr_assert_str_eq(esc("a&b<c>d\"e'f", 100), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
    cr_assert_str_eq(esc("t\tn\nr\r", 100), "t&#9;n&#10;r&#13;");
}

Test(audit_msg, replaces_control_characters_and_invalid_utf8)
{
    cr_assert_str_eq(esc("a\x01"
                         "b\x1f"
                         "c\x7f",
                         100),
                     "a?b?c?");
    cr_assert_str_eq(esc("\xc3\xa9", 100), "\xc3\xa9");         /* é kept */
    cr_assert_str_eq(esc("\xe2\x82\xac", 100), "\xe2\x82\xac"); /* € kept */
    cr_assert_str_eq(esc("x\xc3", 100), "x?");                  /* cut sequence */
    cr_assert_str_eq(esc("\xc0\xaf", 100), "??");               /* overlong '/' */
    cr_assert_str_eq(esc("\xed\xa0\x80", 100), "???");          /* a surrogate */
    cr_assert_str_eq(esc("\xef\xbf\xbe", 100), "???");          /* U+FFFE */
    cr_assert_str_eq(esc("\xf4\x90\x80\x80", 100), "????");     /* > U+10FFFF */
    cr_assert_str_eq(esc("\xff\xfe", 100), "??");
}

Test(audit_msg, cuts_long_strings_on_a_character_boundary_with_a_marker)
{
    cr_assert_str_eq(esc("abcdef", 6), "abcdef");
    cr_assert_str_eq(esc("abcdefg", 6), "abcdef...");
    cr_assert_str_eq(esc("ab\xc3\xa9", 3), "ab..."); /* é would cross the cut */
    cr_assert_str_eq(esc("", 0), "");
    struct wbuf b;
    wbuf_init(&b, 16);
    audit_xml_escape(&b, NULL, 10);
    cr_assert_eq(b.len, 0);
    wbuf_cleanup(&b);
}

static char *b64(const char *s, size_t n)
{
    static char out[256];
    struct wbuf b;
    wbuf_init(&b, sizeof out - 1);
    audit_b64(&b, s, n);
    memcpy(out, b.p ? (const char *)b.p : "", b.len);
    out[b.len] = '\0';
    wbuf_cleanup(&b);
    return out;
}

Test(audit_msg, base64_matches_rfc4648_vectors)
{
    cr_assert_str_eq(b64("", 0), "");
    cr_assert_str_eq(b64("f", 1), "Zg==");
    cr_assert_str_eq(b64("fo", 2), "Zm8=");
    cr_assert_str_eq(b64("foo", 3), "Zm9v");
    cr_assert_str_eq(b64("foob", 4), "Zm9vYg==");
    cr_assert_str_eq(b64("fooba", 5), "Zm9vYmE=");
    cr_assert_str_eq(b64("foobar", 6), "Zm9vYmFy");
    cr_assert_str_eq(b64("\0\xff", 2), "AP8=");
}

Test(audit_msg, base64_of_large_input_crosses_chunks_exactly)
{
    size_t n = 10000;
    uint8_t *in = malloc(n);
    for (size_t i = 0; i < n; i++)
        in[i] = (uint8_t)(i * 7);
    struct wbuf b;
    wbuf_init(&b, 20000);
    audit_b64(&b, in, n);
    cr_assert_eq(b.err, 0);
    cr_assert_eq(b.len, 4 * ((n + 2) / 3));
    cr_assert_eq(b.p[b.len - 1], '=');
    wbuf_cleanup(&b);
    free(in);
}

Test(audit_msg, time_is_xsd_datetime_in_utc_with_microseconds)
{
    char t[40];
    audit_xml_time(INT64_C(1735689599123456), t, sizeof t);
    cr_assert_str_eq(t, "2024-12-31T23:59:59.123456Z");
    audit_xml_time(0, t, sizeof t);
    cr_assert_str_eq(t, "1970-01-01T00:00:00.000000Z");
}

static const struct audit_code EV = {"110100", "DCM", "Application Activity"};
static const struct audit_code TY = {"110120", "DCM", "Application Start"};
static const struct audit_code ROLE = {"110150", "DCM", "Application"};
static const struct audit_code IDT = {"110180", "DCM", "Study Instance UID"};

static void base_event(struct audit_event *e, struct audit_ap *ap)
{
    memset(e, 0, sizeof *e);
    memset(ap, 0, sizeof *ap);
    ap->user_id = "app";
    ap->roles[0] = &ROLE;
    ap->n_roles = 1;
    e->event_id = &EV;
    e->types[0] = &TY;
    e->n_types = 1;
    e->action = 'E';
    e->time_us = 1;
    e->aps = ap;
    e->n_aps = 1;
    e->source_id = "src";
    e->source_type = "4";
}

static char *render(const struct audit_event *e, size_t cap, int *rc)
{
    struct wbuf b;
    wbuf_init(&b, cap);
    *rc = audit_msg_render(e, &b);
    char *s = calloc(1, b.len + 1);
    if (b.len)
        memcpy(s, b.p, b.len);
    wbuf_cleanup(&b);
    return s;
}

static void assert_before(const char *s, const char *a, const char *b)
{
    const char *pa = strstr(s, a), *pb = strstr(s, b);
    cr_assert(pa && pb, "missing %s or %s", a, b);
    cr_assert(pa < pb, "%s is not before %s", a, b);
}

Test(audit_msg, renders_elements_in_the_schemas_order)
{
    struct audit_event e;
    struct audit_ap ap;
    base_event(&e, &ap);
    e.outcome = 4;
    e.outcome_desc = "why";
    struct audit_po po = {
        .type = 2, .role = 3, .id_type = &IDT, .id = "1.2.3", .has_desc = true, .encrypted = 1};
    po.details[0] = (struct audit_detail){"K", "v", 1};
    po.n_details = 1;
    e.pos = &po;
    e.n_pos = 1;
    int rc;
    char *s = render(&e, AUDIT_XML_MAX, &rc);
    cr_assert_eq(rc, 0);
    cr_assert(strncmp(s, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><AuditMessage>", 52) == 0);
    cr_assert_null(strchr(s, '\n'));
    assert_before(s, "<EventID ", "<EventTypeCode ");
    assert_before(s, "<EventTypeCode ", "<EventOutcomeDescription>why<");
    assert_before(s, "</EventIdentification>", "<ActiveParticipant ");
    assert_before(s, "</ActiveParticipant>", "<AuditSourceIdentification ");
    assert_before(s, "</AuditSourceIdentification>", "<ParticipantObjectIdentification ");
    assert_before(s, "<ParticipantObjectIDTypeCode ", "<ParticipantObjectName/>");
    assert_before(s, "<ParticipantObjectName/>",
                  "<ParticipantObjectDetail type=\"K\" value=\"dg==\"/>");
    assert_before(s, "<ParticipantObjectDetail ", "<ParticipantObjectDescription>");
    cr_assert_not_null(strstr(s, "EventActionCode=\"E\""));
    cr_assert_not_null(strstr(s, "EventOutcomeIndicator=\"4\""));
    cr_assert_not_null(strstr(s, "UserIsRequestor=\"false\""));
    cr_assert_not_null(strstr(s, "<Encrypted>true</Encrypted>"));
    cr_assert_not_null(strstr(s, "originalText=\"Application Start\""));
    free(s);
}

Test(audit_msg, a_query_object_has_no_name)
{
    struct audit_event e;
    struct audit_ap ap;
    base_event(&e, &ap);
    struct audit_po po = {.id_type = &IDT,
                          .id = "q",
                          .name = "not me",
                          .has_query = true,
                          .query = "abc",
                          .query_len = 3,
                          .encrypted = -1};
    e.pos = &po;
    e.n_pos = 1;
    int rc;
    char *s = render(&e, AUDIT_XML_MAX, &rc);
    cr_assert_eq(rc, 0);
    cr_assert_not_null(strstr(s, "<ParticipantObjectQuery>YWJj</ParticipantObjectQuery>"));
    cr_assert_null(strstr(s, "ParticipantObjectName"));
    free(s);
}

Test(audit_msg, refuses_what_the_schema_cannot_express)
{
    struct audit_event e;
    struct audit_ap ap;
    int rc;
    base_event(&e, &ap);
    e.n_aps = 0;
    free(render(&e, AUDIT_XML_MAX, &rc));
    cr_assert_eq(rc, ERR_MALFORMED);
    base_event(&e, &ap);
    e.outcome = 3;
    free(render(&e, AUDIT_XML_MAX, &rc));
    cr_assert_eq(rc, ERR_MALFORMED);
    base_event(&e, &ap);
    e.action = 'X';
    free(render(&e, AUDIT_XML_MAX, &rc));
    cr_assert_eq(rc, ERR_MALFORMED);
    base_event(&e, &ap);
    e.event_id = NULL;
    free(render(&e, AUDIT_XML_MAX, &rc));
    cr_assert_eq(rc, ERR_MALFORMED);
    base_event(&e, &ap);
    struct audit_po po = {.id = "x", .encrypted = -1}; /* no ID type code */
    e.pos = &po;
    e.n_pos = 1;
    free(render(&e, AUDIT_XML_MAX, &rc));
    cr_assert_eq(rc, ERR_MALFORMED);
}

static char uid_store[6000][40];

Test(audit_msg, a_message_too_large_drops_instance_lists_then_classes_and_stays_bounded)
{
    const char **uids = malloc(6000 * sizeof *uids);
    for (int i = 0; i < 6000; i++) {
        snprintf(uid_store[i], sizeof uid_store[i], "2.25.%030d", i);
        uids[i] = uid_store[i];
    }
    struct audit_sop sops[40];
    for (int i = 0; i < 40; i++)
        sops[i] = (struct audit_sop){.uid = "1.2.840.10008.5.1.4.1.1.2",
                                     .count = 150,
                                     .instances = uids + 150 * i,
                                     .n_instances = 150};
    struct audit_event e;
    struct audit_ap ap;
    base_event(&e, &ap);
    struct audit_po po = {.id_type = &IDT,
                          .id = "1.2.3",
                          .has_desc = true,
                          .sops = sops,
                          .n_sops = 2,
                          .encrypted = -1};
    e.pos = &po;
    e.n_pos = 1;
    int rc;
    char *s = render(&e, AUDIT_XML_MAX, &rc); /* 300 instances fit */
    cr_assert_eq(rc, 0);
    cr_assert_not_null(strstr(s, "<Instance UID=\"2.25."));
    cr_assert_null(strstr(s, "Truncated"));
    free(s);
    po.n_sops = 40; /* 6000 instance UIDs do not */
    s = render(&e, AUDIT_XML_MAX, &rc);
    cr_assert_eq(rc, 0);
    cr_assert(strlen(s) <= AUDIT_XML_MAX);
    cr_assert_null(strstr(s, "<Instance "));
    cr_assert_not_null(strstr(s, "ParticipantObjectDetail type=\"Truncated\""));
    cr_assert_not_null(strstr(s, "NumberOfInstances=\"150\""));
    free(s);
    s = render(&e, 2500, &rc); /* a cap that 40 classes without instances pass: at most 16 */
    cr_assert_eq(rc, 0);
    size_t classes = 0;
    for (const char *p = s; (p = strstr(p, "<SOPClass ")) != NULL; p++)
        classes++;
    cr_assert_eq(classes, 16);
    free(s);
    struct wbuf b;
    wbuf_init(&b, 500);
    wbuf_str(&b, "keep");
    cr_assert_eq(audit_msg_render(&e, &b), ERR_LIMIT);
    cr_assert_eq(b.len, 4, "the output is left as it was");
    cr_assert_eq(b.err, 0);
    wbuf_cleanup(&b);
    free(uids);
}
