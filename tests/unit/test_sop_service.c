/* What the edge lets through by service (edge/sop_service, issue 15), the policy keys that say
 * it (services, read_scope, return_address, device_tls), the admission of the modalities' path
 * and of the reverse path (edge/admission), and the last hour's refusals (edge/refusals). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "common/grants.h"
#include "refusals.h"
#include "sop_service.h"

#define CT "1.2.840.10008.5.1.4.1.1.2"
#define VERIFICATION "1.2.840.10008.1.1"
#define STUDY_FIND "1.2.840.10008.5.1.4.1.2.2.1"
#define STUDY_MOVE "1.2.840.10008.5.1.4.1.2.2.2"
#define STUDY_GET "1.2.840.10008.5.1.4.1.2.2.3"
#define PATIENT_FIND "1.2.840.10008.5.1.4.1.2.1.1"
#define MWL_FIND "1.2.840.10008.5.1.4.31"

static const char g_policy[] =
    "{ \"clients\": ["
    "  { \"id\": \"ct\", \"match\": { \"subject_cn\": \"ct-room-1\" },"
    "    \"calling_ae\": [\"CT_ROOM1\"], \"called_ae\": [\"DICOM_CORE\"],"
    "    \"return_address\": { \"host\": \"10.1.2.3\", \"port\": 104 } },"
    "  { \"id\": \"ws\", \"match\": { \"subject_cn\": \"ws-1\" },"
    "    \"calling_ae\": [\"WS1\"], \"called_ae\": [\"DICOM_CORE\"],"
    "    \"services\": [\"find\", \"move\", \"echo\"], \"read_scope\": \"own\","
    "    \"return_address\": { \"host\": \"fe80::1\", \"port\": 11113, \"tls\": true } },"
    "  { \"id\": \"pacs\", \"match\": { \"subject_cn\": \"pacs\" },"
    "    \"calling_ae\": [\"PACS\"], \"called_ae\": [\"*\"], \"services\": [\"store\"] },"
    "  { \"id\": \"mod\", \"match\": { \"subject_cn\": \"mod-1\" },"
    "    \"calling_ae\": [\"MOD1\"], \"called_ae\": [\"*\"], \"services\": [\"store\", \"commit\"],"
    "    \"return_address\": { \"host\": \"mod1.lan\", \"port\": 4104 } } ],"
    "  \"device_tls\": { \"ca\": \"/ca.pem\" },"
    "  \"routes\": { \"vpc\": { \"upstream\": \"127.0.0.1:11112\" } } }";

static struct policy *g_pol;

static void setup(void)
{
    struct wbuf errs;
    wbuf_init(&errs, 65536);
    int rc = policy_parse(g_policy, strlen(g_policy), &g_pol, &errs);
    cr_assert_eq(rc, 0, "%.*s", (int)errs.len, errs.p ? (char *)errs.p : "");
    wbuf_cleanup(&errs);
}

static void teardown(void)
{
    policy_free(g_pol);
}

static struct tls_peer_id *id_cn(const char *cn)
{
    static struct tls_peer_id id;
    memset(&id, 0, sizeof id);
    snprintf(id.cn, sizeof id.cn, "%s", cn);
    return &id;
}

struct ctx_spec {
    const char *abstract;
    int scu, scp; /* -1: no role selection item */
};

/* An A-ASSOCIATE-RQ proposing the contexts given (and their role items); caller cleans up b. */
static void make_rq(struct wbuf *b, const char *calling, const char *called,
                    const struct ctx_spec *ctx, size_t n)
{
    static struct ul_assoc_rq rq; /* big: not on the stack */
    memset(&rq, 0, sizeof rq);
    rq.protocol_version = 1;
    snprintf(rq.calling, sizeof rq.calling, "%s", calling);
    snprintf(rq.called, sizeof rq.called, "%s", called);
    rq.app_context = (struct slice){(const uint8_t *)UL_APP_CONTEXT, strlen(UL_APP_CONTEXT)};
    for (size_t i = 0; i < n; i++) {
        struct ul_pctx_rq *pc = &rq.pctx[rq.n_pctx++];
        pc->id = (uint8_t)(2 * i + 1);
        pc->abstract = (struct slice){(const uint8_t *)ctx[i].abstract, strlen(ctx[i].abstract)};
        pc->n_ts = 1;
        pc->ts[0] = (struct slice){(const uint8_t *)"1.2.840.10008.1.2", 17};
        if (ctx[i].scu >= 0) {
            struct ul_role *r = &rq.ui.roles[rq.ui.n_roles++];
            r->sop = pc->abstract;
            r->scu = (uint8_t)ctx[i].scu;
            r->scp = (uint8_t)ctx[i].scp;
        }
    }
    rq.ui.present = true;
    rq.ui.has_max_len = true;
    rq.ui.max_len = 16384;
    rq.ui.impl_uid = (struct slice){(const uint8_t *)"1.2.3.4", 7};
    wbuf_init(b, 1u << 20);
    cr_assert_eq(ul_encode_assoc_rq(b, &rq), 0);
}

static enum adm_verdict forward(const char *cn, const char *calling, const struct ctx_spec *ctx,
                                size_t n, struct adm_decision *d)
{
    struct wbuf b;
    make_rq(&b, calling, "DICOM_CORE", ctx, n);
    enum adm_verdict v = admission_decide(g_pol, id_cn(cn), b.p, b.len, d);
    wbuf_cleanup(&b);
    return v;
}

static enum adm_verdict reverse(const struct adm_reverse_rules *rules, const char *cn,
                                const char *called, const struct ctx_spec *ctx, size_t n,
                                struct adm_decision *d)
{
    struct wbuf b;
    make_rq(&b, "DICOM_CORE", called, ctx, n);
    /* an exact-size heap copy, so that ASan sees any over-read */
    uint8_t *copy = malloc(b.len);
    memcpy(copy, b.p, b.len);
    enum adm_verdict v = admission_reverse(g_pol, rules, id_cn(cn), copy, b.len, d);
    free(copy);
    wbuf_cleanup(&b);
    return v;
}

TestSuite(sop_service, .init = setup, .fini = teardown);

Test(sop_service, maps_each_model_to_its_service)
{
    cr_assert_eq(sop_service_of(VERIFICATION, true, false), GRANT_ECHO);
    cr_assert_eq(sop_service_of(CT, true, false), GRANT_STORE);
    cr_assert_eq(sop_service_of(STUDY_FIND, true, false), GRANT_FIND);
    cr_assert_eq(sop_service_of(PATIENT_FIND, true, false), GRANT_FIND);
    cr_assert_eq(sop_service_of(STUDY_MOVE, true, false), GRANT_MOVE);
    cr_assert_eq(sop_service_of("1.2.840.10008.5.1.4.1.2.1.2", true, false), GRANT_MOVE);
    cr_assert_eq(sop_service_of(STUDY_GET, true, false), GRANT_GET);
    cr_assert_eq(sop_service_of("1.2.840.10008.5.1.4.1.2.1.3", true, false), GRANT_GET);
    cr_assert_eq(sop_service_of("1.2.840.10008.5.1.4.1.2.4.3", true, false), GRANT_GET);
    cr_assert_eq(sop_service_of(SOP_COMMITMENT_PUSH, true, false), GRANT_COMMIT);
    cr_assert_eq(sop_service_of(SOP_COMMITMENT_PUSH, false, true), GRANT_COMMIT);
    /* a retired storage class is still storage */
    cr_assert_eq(sop_service_of("1.2.840.10008.5.1.4.1.1.3", true, false), GRANT_STORE);
}

Test(sop_service, storage_as_scp_is_a_c_get_sub_operation)
{
    cr_assert_eq(sop_service_of(CT, false, true), GRANT_GET);
    cr_assert_eq(sop_service_of(CT, true, true), GRANT_STORE | GRANT_GET);
}

Test(sop_service, unknown_classes_ask_for_nothing_we_know)
{
    cr_assert_eq(sop_service_of(MWL_FIND, true, false), 0);
    cr_assert_eq(sop_service_of("1.2.3.4.5", true, false), 0);
    cr_assert_eq(sop_service_of("", true, false), 0);
    cr_assert_eq(sop_service_of("1.2.840.10008.1.1.1", true, false), 0); /* a prefix is not it */
}

Test(sop_service, names_bits_in_a_fixed_order_and_cuts_short)
{
    char out[64];
    sop_service_names(GRANT_COMMIT | GRANT_STORE | GRANT_FIND, out, sizeof out);
    cr_assert_str_eq(out, "store,find,commit");
    sop_service_names(0, out, sizeof out);
    cr_assert_str_eq(out, "");
    char tiny[8];
    sop_service_names(GRANT_STORE | GRANT_ECHO, tiny, sizeof tiny);
    cr_assert_str_eq(tiny, "store");
}

Test(sop_service, policy_services_default_to_store_and_echo)
{
    cr_assert_eq(g_pol->clients[0].grants.services, GRANT_STORE | GRANT_ECHO);
    cr_assert_eq(g_pol->clients[0].grants.scope, GRANT_SCOPE_NONE);
    cr_assert_eq(g_pol->clients[1].grants.services, GRANT_FIND | GRANT_MOVE | GRANT_ECHO);
    cr_assert_eq(g_pol->clients[1].grants.scope, GRANT_SCOPE_OWN);
    char text[GRANTS_TEXT_MAX];
    cr_assert_eq(grants_format(&g_pol->clients[1].grants, text, sizeof text), 0);
    struct grants back;
    cr_assert_eq(grants_parse(text, strlen(text), &back), 0);
    cr_assert_eq(back.services, g_pol->clients[1].grants.services);
    cr_assert_eq(back.scope, GRANT_SCOPE_OWN);
}

Test(sop_service, policy_builds_one_return_route_per_device)
{
    cr_assert_eq(g_pol->n_returns, 3);
    const struct policy_client *ct = policy_device(g_pol, "CT_ROOM1");
    cr_assert_not_null(ct);
    cr_assert_str_eq(ct->id, "ct");
    const struct policy_route *rt = &g_pol->returns[ct->ret_route];
    cr_assert_str_eq(rt->upstream, "10.1.2.3:104");
    cr_assert_not(rt->tls);
    cr_assert_not(rt->proxy_protocol);
    const struct policy_route *ws = &g_pol->returns[policy_device(g_pol, "WS1")->ret_route];
    cr_assert_str_eq(ws->upstream, "[fe80::1]:11113");
    cr_assert(ws->tls);
    cr_assert_str_eq(ws->tls_opts.server_name, "fe80::1");
    cr_assert_null(policy_device(g_pol, "PACS"), "no return address");
    cr_assert_null(policy_device(g_pol, "NOBODY"));
}

static bool fails_with(const char *json, const char *needle)
{
    struct wbuf errs;
    wbuf_init(&errs, 65536);
    struct policy *p = NULL;
    int rc = policy_parse(json, strlen(json), &p, &errs);
    wbuf_u8(&errs, 0);
    bool found = rc < 0 && p == NULL && strstr((char *)errs.p, needle) != NULL;
    if (!found)
        cr_log_error("rc %d, problems: %s", rc, (char *)errs.p);
    wbuf_cleanup(&errs);
    policy_free(p);
    return found;
}

#define ONE(client, top)                                                                           \
    "{ \"clients\": [ { \"id\": \"a\", \"match\": { \"subject_cn\": \"a\" },"                      \
    " \"calling_ae\": [\"A\"], \"called_ae\": [\"B\"] " client " } ] " top                        \
    ", \"routes\": { \"r\": { \"upstream\": \"127.0.0.1:1\" } } }"
#define RET(x) ", \"return_address\": { \"host\": \"h\", \"port\": 1" x " }"

Test(sop_service, policy_refuses_bad_services_scopes_and_return_addresses)
{
    cr_assert(fails_with(ONE(", \"services\": [\"store\", \"print\"]", ""), "unknown service"));
    cr_assert(fails_with(ONE(", \"services\": []", ""), "non-empty array of services"));
    cr_assert(fails_with(ONE(", \"read_scope\": \"everything\"", ""), "none, own, shared"));
    cr_assert(fails_with(ONE(", \"return_address\": { \"port\": 104 }", ""), "host: required"));
    cr_assert(fails_with(ONE(", \"return_address\": { \"host\": \"h\" }", ""), "port: required"));
    cr_assert(fails_with(ONE(", \"return_address\": { \"host\": \"h\", \"port\": 70000 }", ""),
                         "port"));
    cr_assert(fails_with(ONE(RET(", \"x\": 1"), ""), "unknown key"));
    cr_assert(fails_with(ONE(RET(", \"tls\": true"), ""), "device_tls"));
    cr_assert(fails_with(ONE("", ", \"device_tls\": { \"cert\": \"/c\" }"), "ca: required"));
}

Test(sop_service, policy_refuses_a_return_address_without_named_titles_or_twice_for_one_title)
{
    cr_assert(fails_with("{ \"clients\": [ { \"id\": \"a\", \"match\": { \"subject_cn\": \"a\" },"
                         " \"calling_ae\": [\"*\"], \"called_ae\": [\"B\"],"
                         " \"return_address\": { \"host\": \"h\", \"port\": 1 } } ],"
                         " \"routes\": { \"r\": { \"upstream\": \"127.0.0.1:1\" } } }",
                         "calling_ae titles by name"));
    cr_assert(fails_with("{ \"clients\": ["
                         " { \"id\": \"a\", \"match\": { \"subject_cn\": \"a\" },"
                         "   \"calling_ae\": [\"X\"], \"called_ae\": [\"B\"],"
                         "   \"return_address\": { \"host\": \"h\", \"port\": 1 } },"
                         " { \"id\": \"b\", \"match\": { \"subject_cn\": \"b\" },"
                         "   \"calling_ae\": [\"Y\", \"X\"], \"called_ae\": [\"B\"],"
                         "   \"return_address\": { \"host\": \"h2\", \"port\": 2 } } ],"
                         " \"routes\": { \"r\": { \"upstream\": \"127.0.0.1:1\" } } }",
                         "already has a return address"));
}

Test(sop_service, forward_refuses_a_proposal_of_services_not_granted_only)
{
    struct adm_decision d;
    const struct ctx_spec find[] = {{STUDY_FIND, -1, -1}};
    cr_assert_eq(forward("ct-room-1", "CT_ROOM1", find, 1, &d), ADM_REJECT);
    cr_assert_eq(d.result, UL_RJ_PERMANENT);
    cr_assert_eq(d.source, UL_RJ_SRC_USER);
    cr_assert_eq(d.reason, UL_RJ_USER_NO_REASON);
    cr_assert_str_eq(d.why, "service_not_allowed");
    cr_assert_eq(d.asked, GRANT_FIND);
    cr_assert_eq(d.denied, GRANT_FIND);
    cr_assert_str_eq(d.client->id, "ct");
    const struct ctx_spec echo[] = {{VERIFICATION, -1, -1}};
    cr_assert_eq(forward("pacs", "PACS", echo, 1, &d), ADM_REJECT, "pacs has store only");
    cr_assert_eq(forward("ws-1", "WS1", find, 1, &d), ADM_ADMIT);
}

Test(sop_service, forward_passes_mixed_and_unknown_proposals_to_the_core)
{
    struct adm_decision d;
    const struct ctx_spec mixed[] = {{CT, -1, -1}, {SOP_COMMITMENT_PUSH, -1, -1}};
    cr_assert_eq(forward("pacs", "PACS", mixed, 2, &d), ADM_ADMIT);
    cr_assert_eq(d.asked, GRANT_STORE | GRANT_COMMIT);
    cr_assert_eq(d.denied, GRANT_COMMIT);
    const struct ctx_spec unknown[] = {{MWL_FIND, -1, -1}};
    cr_assert_eq(forward("pacs", "PACS", unknown, 1, &d), ADM_ADMIT, "left to the core");
}

Test(sop_service, forward_counts_storage_as_scp_as_get)
{
    struct adm_decision d;
    /* a C-GET client that may not get: the GET model and storage as SCP, both refused */
    const struct ctx_spec get[] = {{STUDY_GET, -1, -1}, {CT, 0, 1}};
    cr_assert_eq(forward("ws-1", "WS1", get, 2, &d), ADM_REJECT);
    cr_assert_eq(d.denied, GRANT_GET);
}

Test(sop_service, reverse_relays_to_the_device_the_called_title_names)
{
    struct adm_decision d;
    const struct ctx_spec echo[] = {{VERIFICATION, -1, -1}};
    cr_assert_eq(reverse(NULL, "dicom-core", "CT_ROOM1", echo, 1, &d), ADM_ADMIT);
    cr_assert_str_eq(d.client->id, "ct");
    cr_assert_not_null(d.route);
    cr_assert_str_eq(d.route->upstream, "10.1.2.3:104");
    const struct ctx_spec report[] = {{SOP_COMMITMENT_PUSH, 0, 1}};
    cr_assert_eq(reverse(NULL, "dicom-core", "MOD1", report, 1, &d), ADM_ADMIT);
    cr_assert_str_eq(d.route->upstream, "mod1.lan:4104");
    const struct ctx_spec sub_ops[] = {{CT, -1, -1}, {"1.2.840.10008.5.1.4.1.1.4", -1, -1}};
    cr_assert_eq(reverse(NULL, "dicom-core", "MOD1", sub_ops, 2, &d), ADM_ADMIT);
}

Test(sop_service, reverse_refuses_unknown_devices_and_services_not_granted)
{
    struct adm_decision d;
    const struct ctx_spec echo[] = {{VERIFICATION, -1, -1}};
    cr_assert_eq(reverse(NULL, "dicom-core", "NOBODY", echo, 1, &d), ADM_REJECT);
    cr_assert_eq(d.reason, UL_RJ_USER_CALLED_AE);
    cr_assert_str_eq(d.why, "called_ae_not_recognized");
    cr_assert_eq(reverse(NULL, "dicom-core", "PACS", echo, 1, &d), ADM_REJECT, "no return address");
    cr_assert_eq(reverse(NULL, "dicom-core", "DICOM_CORE", echo, 1, &d), ADM_REJECT);
    /* ct has store and echo: a commitment report is not for it */
    const struct ctx_spec report[] = {{SOP_COMMITMENT_PUSH, 0, 1}};
    cr_assert_eq(reverse(NULL, "dicom-core", "CT_ROOM1", report, 1, &d), ADM_REJECT);
    cr_assert_eq(d.reason, UL_RJ_USER_CALLED_AE);
    cr_assert_str_eq(d.why, "reverse_service_not_allowed");
    /* mixed is not enough on this path: the device cannot tell contexts apart by grants */
    const struct ctx_spec mixed[] = {{VERIFICATION, -1, -1}, {SOP_COMMITMENT_PUSH, 0, 1}};
    cr_assert_eq(reverse(NULL, "dicom-core", "CT_ROOM1", mixed, 2, &d), ADM_REJECT);
    const struct ctx_spec unknown[] = {{VERIFICATION, -1, -1}, {MWL_FIND, -1, -1}};
    cr_assert_eq(reverse(NULL, "dicom-core", "CT_ROOM1", unknown, 2, &d), ADM_REJECT);
    cr_assert_str_eq(d.why, "reverse_service_unknown");
}

Test(sop_service, reverse_checks_the_callers_cn_when_listed)
{
    static const char allow[][257] = {"dicom-core", "dicom-core-2"};
    struct adm_reverse_rules rules = {.allow_cn = allow, .n_allow_cn = 2};
    struct adm_decision d;
    const struct ctx_spec echo[] = {{VERIFICATION, -1, -1}};
    cr_assert_eq(reverse(&rules, "dicom-core-2", "CT_ROOM1", echo, 1, &d), ADM_ADMIT);
    cr_assert_eq(reverse(&rules, "dicom-edge", "CT_ROOM1", echo, 1, &d), ADM_REJECT);
    cr_assert_eq(d.reason, UL_RJ_USER_CALLING_AE);
    cr_assert_str_eq(d.why, "reverse_identity_not_allowed");
    cr_assert_null(d.client, "no device is named to a caller that may not call");
}

Test(sop_service, reverse_aborts_what_is_not_an_associate_rq)
{
    struct adm_decision d;
    const uint8_t release[] = {0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0};
    cr_assert_eq(admission_reverse(g_pol, NULL, id_cn("dicom-core"), release, sizeof release, &d),
                 ADM_ABORT);
    const uint8_t part[] = {0x01, 0, 0, 0};
    cr_assert_eq(admission_reverse(g_pol, NULL, id_cn("dicom-core"), part, sizeof part, &d),
                 ADM_NEED_MORE);
}

Test(refusals, counts_by_path_and_reason_over_the_last_hour)
{
    struct refusals *r = calloc(1, sizeof *r);
    refusals_init(r);
    uint64_t t0 = 10u * 3600u * 1000u;
    refusals_add(r, false, "unknown_ca", t0);
    refusals_add(r, false, "unknown_ca", t0 + 1000);
    refusals_add(r, true, "unknown_ca", t0 + 2000);
    refusals_add(r, false, "calling_ae_not_allowed", t0 + 30u * 60000u);
    cr_assert_eq(r->n_rows, 3);
    cr_assert_eq(refusals_last_hour(r, 0, t0 + 30u * 60000u), 2);
    cr_assert_eq(refusals_last_hour(r, 1, t0 + 30u * 60000u), 1);
    cr_assert(r->rows[1].reverse);
    /* an hour and a minute later the first ones are gone, the later one stays */
    cr_assert_eq(refusals_last_hour(r, 0, t0 + 61u * 60000u), 0);
    cr_assert_eq(refusals_last_hour(r, 2, t0 + 61u * 60000u), 1);
    /* a bucket reused an hour later starts again */
    refusals_add(r, false, "unknown_ca", t0 + 60u * 60000u);
    cr_assert_eq(refusals_last_hour(r, 0, t0 + 60u * 60000u), 1);
    cr_assert_eq(refusals_last_hour(r, 99, t0), 0);
    free(r);
}

Test(refusals, a_full_table_counts_the_rest_as_other)
{
    struct refusals *r = calloc(1, sizeof *r);
    refusals_init(r);
    char reason[32];
    for (int i = 0; i < REFUSALS_REASONS + 10; i++) {
        snprintf(reason, sizeof reason, "reason_%d", i);
        refusals_add(r, false, reason, 1000);
    }
    cr_assert_eq(r->n_rows, REFUSALS_REASONS);
    cr_assert_str_eq(r->rows[REFUSALS_REASONS - 1].reason, "other");
    cr_assert_eq(refusals_last_hour(r, REFUSALS_REASONS - 1, 1000), 11);
    free(r);
}
