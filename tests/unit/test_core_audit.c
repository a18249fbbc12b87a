/* core_audit: the SCP's audit events as the services and the association report them (the
 * one-call API of core_audit.h), against a real audit trail whose repository is a UDP socket of
 * the test's own: which messages arrive, in which order, with which participants; the Patient ID
 * only as its keyed hash; bounded per-association accounting; every call a no-op without an
 * audit trail. Associations are real ones (assoc_new) closed through assoc_close, so the
 * association's own hook is exercised too. */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "assoc_int.h"
#include "audit/audit_hash.h"
#include "audit/syslog_frame.h"
#include "common/dcm_ds.h"
#include "core_audit.h"
#include "core_audit_int.h"
#include "core_ctx.h"

#define KEY_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define PID "PID-SECRET-42"
#define CT "1.2.840.10008.5.1.4.1.1.2"
#define MR "1.2.840.10008.5.1.4.1.1.4"

static char dir[64];
static int sock = -1;
static uv_loop_t loop;
static struct core_ctx ctx;
static struct core_config *cfg;

static void start_audit(bool with_audit)
{
    snprintf(dir, sizeof dir, "/tmp/gw-core-audit.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char p[128];
    snprintf(p, sizeof p, "%s/key", dir);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(KEY_HEX "\n", f);
    fclose(f);
    chmod(p, 0600);

    sock = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(sock, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    cr_assert_eq(getsockname(sock, (struct sockaddr *)&sa, &sl), 0);
    int rcvbuf = 4 << 20;
    setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);

    cfg = calloc(1, sizeof *cfg);
    struct wbuf errs;
    wbuf_init(&errs, 4096);
    cr_assert_eq(core_config_load(NULL, cfg, &errs), 0);
    wbuf_cleanup(&errs);
    if (with_audit) {
        char json[1024];
        snprintf(json, sizeof json,
                 "{\"repositories\": [{\"transport\": \"udp\", \"host\": \"127.0.0.1\", "
                 "\"port\": %u}], \"queue_dir\": \"%s/q\", \"hash_key_file\": \"%s/key\", "
                 "\"hostname\": \"gw-unit\", \"retry_min_ms\": 50, \"retry_max_ms\": 200}",
                 ntohs(sa.sin_port), dir, dir);
        cfg->audit_json = strdup(json);
    }
    memset(&ctx, 0, sizeof ctx);
    cr_assert_eq(uv_loop_init(&loop), 0);
    ctx.loop = &loop;
    ctx.cfg = cfg;
    ctx.metrics = metrics_new();
    cr_assert_eq(core_metrics_init(&ctx), 0);
    char err[256];
    cr_assert_eq(core_audit_start(&ctx, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ctx.audit != NULL, with_audit);
}

static void setup(void)
{
    start_audit(true);
}

static void teardown(void)
{
    core_audit_stop(&ctx, 100);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    metrics_free(ctx.metrics);
    core_config_cleanup(cfg);
    free(cfg);
    close(sock);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(core_audit, .init = setup, .fini = teardown);

/* An established association from a modality, as the negotiation leaves it. */
static struct assoc *acceptor(const char *calling, const char *peer)
{
    struct assoc *a = assoc_new(&ctx);
    cr_assert_not_null(a);
    a->st = STA6;
    ctx.active++;
    snprintf(a->calling, sizeof a->calling, "%s", calling);
    snprintf(a->called, sizeof a->called, "DICOM_CORE");
    snprintf(a->peer, sizeof a->peer, "%s", peer);
    snprintf(a->cert_cn, sizeof a->cert_cn, "ct-room-1");
    snprintf(a->cert_fp, sizeof a->cert_fp, "%064d", 7);
    snprintf(a->client_id, sizeof a->client_id, "ct-room-1");
    a->proxy_ssl = true;
    return a;
}

/* An association we opened (C-MOVE sub-operations, a commitment report). */
static struct assoc *requestor(const char *called)
{
    struct assoc *a = assoc_new(&ctx);
    cr_assert_not_null(a);
    a->out = calloc(1, sizeof *a->out);
    cr_assert_not_null(a->out);
    a->st = STA6;
    ctx.outbound++;
    snprintf(a->calling, sizeof a->calling, "DICOM_CORE");
    snprintf(a->called, sizeof a->called, "%s", called);
    snprintf(a->peer, sizeof a->peer, "[2001:db8::5]:104");
    return a;
}

static void end(struct assoc *a)
{
    a->end_reason = "released";
    assoc_close(a, "released");
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* The next message's XML (static buffer), or fail after 5 s. */
static const char *next_msg(void)
{
    static char xml[70000];
    static uint8_t buf[70000];
    struct pollfd p = {.fd = sock, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 5000), 1, "no message");
    ssize_t n = recv(sock, buf, sizeof buf, 0);
    cr_assert_gt(n, 0);
    struct syslog_parsed sp;
    cr_assert_eq(syslog_parse(buf, (size_t)n, &sp), 0);
    cr_assert(slice_eq_str(sp.app, "dicom-core"));
    snprintf(xml, sizeof xml, "%.*s", (int)sp.msg.len, (const char *)sp.msg.p);
    return xml;
}

static bool quiet(int ms)
{
    struct pollfd p = {.fd = sock, .events = POLLIN};
    return poll(&p, 1, ms) == 0;
}

static void expect_event(const char *x, const char *id, const char *action, const char *outcome)
{
    char want[96];
    snprintf(want, sizeof want, "<EventID csd-code=\"%s\"", id);
    cr_assert_not_null(strstr(x, want), "want EventID %s in %.300s", id, x);
    snprintf(want, sizeof want, "EventActionCode=\"%s\"", action);
    cr_assert_not_null(strstr(x, want), "want action %s in %.300s", action, x);
    snprintf(want, sizeof want, "EventOutcomeIndicator=\"%s\"", outcome);
    cr_assert_not_null(strstr(x, want), "want outcome %s in %.300s", outcome, x);
}

static void has(const char *x, const char *s)
{
    cr_assert_not_null(strstr(x, s), "want '%s' in %.600s", s, x);
}

static void hasnt(const char *x, const char *s)
{
    cr_assert_null(strstr(x, s), "'%s' must not be in %.600s", s, x);
}

static void skip_app_start(void)
{
    const char *x = next_msg();
    has(x, "csd-code=\"110120\"");
}

static const char *patient_hash(const char *pid)
{
    static char out[65];
    uint8_t key[AUDIT_KEY_MAX];
    size_t klen;
    cr_assert_eq(audit_key_parse((const uint8_t *)KEY_HEX, 64, key, &klen), 0);
    cr_assert_eq(audit_hmac_hex(key, klen, pid, strlen(pid), out), 0);
    return out;
}

Test(core_audit, stores_begin_each_study_at_its_first_object_and_total_it_at_the_end)
{
    skip_app_start();
    struct assoc *a = acceptor("MOD1", "192.0.2.7:4000");
    core_audit_stored(a, CT, "2.25.1", PID, 0x0000, NULL);
    const char *x = next_msg();
    expect_event(x, "110102", "E", "0");
    has(x, "ParticipantObjectID=\"2.25.1\"");
    has(x, "UserID=\"MOD1\"");
    has(x, "AlternativeUserID=\"AETITLES=DICOM_CORE\"");
    has(x, "NetworkAccessPointID=\"192.0.2.7\"");
    has(x, "<Encrypted>true</Encrypted>");
    has(x, patient_hash(PID));
    hasnt(x, PID);
    core_audit_stored(a, MR, "2.25.1", PID, 0xB000, NULL);      /* a warning is stored */
    core_audit_stored(a, CT, "2.25.1", NULL, 0xA700, "spool full"); /* a failure */
    cr_assert(quiet(200), "no second Begin for the same study");
    core_audit_stored(a, CT, "2.25.2", "OTHER-PID", 0x0000, NULL);
    x = next_msg();
    expect_event(x, "110102", "E", "0");
    has(x, "ParticipantObjectID=\"2.25.2\"");
    end(a);
    x = next_msg(); /* study 1, the part stored */
    expect_event(x, "110104", "C", "0");
    has(x, "ParticipantObjectID=\"2.25.1\"");
    has(x, "<SOPClass UID=\"" CT "\" NumberOfInstances=\"1\"");
    has(x, "<SOPClass UID=\"" MR "\" NumberOfInstances=\"1\"");
    has(x, patient_hash(PID));
    x = next_msg(); /* study 1, the part that failed */
    expect_event(x, "110104", "C", "4");
    has(x, "<SOPClass UID=\"" CT "\" NumberOfInstances=\"1\"");
    hasnt(x, MR);
    has(x, "A700 spool full");
    x = next_msg();
    expect_event(x, "110104", "C", "0");
    has(x, "ParticipantObjectID=\"2.25.2\"");
    has(x, patient_hash("OTHER-PID"));
    cr_assert(quiet(200));
}

Test(core_audit, a_store_refused_before_its_dataset_counts_under_an_unknown_study)
{
    skip_app_start();
    struct assoc *a = acceptor("MOD1", "192.0.2.7:4000");
    core_audit_stored(a, CT, NULL, NULL, 0xA700, "spool free space below the configured floor");
    const char *x = next_msg();
    expect_event(x, "110102", "E", "0");
    has(x, "ParticipantObjectID=\"UNKNOWN\"");
    end(a);
    x = next_msg();
    expect_event(x, "110104", "C", "4");
    has(x, "ParticipantObjectID=\"UNKNOWN\"");
}

Test(core_audit, associations_are_accounted_apart)
{
    skip_app_start();
    struct assoc *a = acceptor("MOD1", "192.0.2.7:4000");
    struct assoc *b = acceptor("MOD2", "192.0.2.8:4000");
    core_audit_stored(a, CT, "2.25.1", PID, 0, NULL);
    core_audit_stored(b, CT, "2.25.1", PID, 0, NULL);
    has(next_msg(), "UserID=\"MOD1\"");
    has(next_msg(), "UserID=\"MOD2\""); /* same study, other association: its own Begin */
    end(b);
    const char *x = next_msg();
    has(x, "UserID=\"MOD2\"");
    has(x, "NumberOfInstances=\"1\"");
    cr_assert(quiet(200), "a's totals wait for a's end");
    end(a);
    has(next_msg(), "UserID=\"MOD1\"");
}

Test(core_audit, more_studies_than_held_send_the_oldest_totals_early)
{
    skip_app_start();
    struct assoc *a = acceptor("MOD1", "192.0.2.7:4000");
    char uid[32];
    for (int i = 0; i < 65; i++) {
        snprintf(uid, sizeof uid, "2.25.%d", 100 + i);
        core_audit_stored(a, CT, uid, PID, 0, NULL);
    }
    for (int i = 0; i < 64; i++)
        expect_event(next_msg(), "110102", "E", "0");
    const char *x = next_msg(); /* the 65th study pushes the first one's totals out */
    expect_event(x, "110104", "C", "0");
    has(x, "ParticipantObjectID=\"2.25.100\"");
    x = next_msg();
    expect_event(x, "110102", "E", "0");
    has(x, "ParticipantObjectID=\"2.25.164\"");
    end(a);
    for (int i = 1; i < 65; i++) {
        x = next_msg();
        snprintf(uid, sizeof uid, "\"2.25.%d\"", 100 + i);
        has(x, uid);
    }
    cr_assert(quiet(200));
}

Test(core_audit, more_sop_classes_than_held_send_the_totals_so_far)
{
    skip_app_start();
    struct assoc *a = acceptor("MOD1", "192.0.2.7:4000");
    char cls[40];
    for (int i = 0; i < 17; i++) {
        snprintf(cls, sizeof cls, "1.2.840.10008.5.1.4.1.1.%d", 500 + i);
        core_audit_stored(a, cls, "2.25.1", PID, 0, NULL);
    }
    expect_event(next_msg(), "110102", "E", "0");
    const char *x = next_msg();
    expect_event(x, "110104", "C", "0");
    has(x, "1.2.840.10008.5.1.4.1.1.515\"");
    hasnt(x, "1.2.840.10008.5.1.4.1.1.516\"");
    end(a);
    x = next_msg();
    has(x, "1.2.840.10008.5.1.4.1.1.516\"");
    hasnt(x, "1.2.840.10008.5.1.4.1.1.500\"");
}

Test(core_audit, c_move_sub_operations_name_the_destination_and_the_requestor)
{
    skip_app_start();
    struct assoc *mover = acceptor("MOVER", "192.0.2.9:4000");
    struct assoc *out = requestor("DEST_AE");
    core_audit_sent(out, mover, CT, "2.25.9", PID, 0x0000);
    core_audit_sent(out, mover, CT, "2.25.9", PID, 0xA702);
    const char *x = next_msg();
    expect_event(x, "110102", "E", "0");
    has(x, "UserID=\"DEST_AE\"");
    has(x, "NetworkAccessPointID=\"2001:db8::5\"");
    has(x, "UserID=\"MOVER\"");
    end(out);
    end(mover);
    x = next_msg();
    expect_event(x, "110104", "R", "0");
    has(x, "<RoleIDCode csd-code=\"110152\""); /* the destination */
    has(x, "<RoleIDCode csd-code=\"110153\""); /* we are the source */
    /* the third party is the requestor, the destination is not */
    const char *mv = strstr(x, "UserID=\"MOVER\"");
    cr_assert_not_null(mv);
    cr_assert_not_null(strstr(mv, "UserIsRequestor=\"true\""));
    const char *dst = strstr(x, "UserID=\"DEST_AE\"");
    cr_assert_not_null(dst);
    cr_assert(strncmp(strstr(dst, "UserIsRequestor="), "UserIsRequestor=\"false\"", 23) == 0);
    x = next_msg();
    expect_event(x, "110104", "R", "4");
    cr_assert(quiet(200));
}

Test(core_audit, c_get_sub_operations_go_back_to_the_requestor)
{
    skip_app_start();
    struct assoc *a = acceptor("GETTER", "192.0.2.10:4000");
    core_audit_sent(a, NULL, MR, "2.25.3", PID, 0);
    expect_event(next_msg(), "110102", "E", "0");
    end(a);
    const char *x = next_msg();
    expect_event(x, "110104", "R", "0");
    has(x, "UserID=\"GETTER\"");
    has(x, "UserIsRequestor=\"true\"");
}

static struct dcm_ds *identifier(void)
{
    struct dcm_ds *ds = dcm_ds_new(NULL);
    cr_assert_not_null(ds);
    struct dcm_item *r = dcm_ds_root_mut(ds);
    cr_assert_eq(dcm_ds_add_cstr(ds, r, 0x00080052, DCM_VR_CS, "STUDY"), 0);
    cr_assert_eq(dcm_ds_add_cstr(ds, r, 0x00100010, DCM_VR_PN, "DOE^JANE"), 0);
    cr_assert_eq(dcm_ds_add_cstr(ds, r, 0x00100020, DCM_VR_LO, PID), 0);
    cr_assert_eq(dcm_ds_add_cstr(ds, r, 0x0020000D, DCM_VR_UI, ""), 0);
    return ds;
}

/* The query identifier a message carries, decoded. */
static size_t query_of(const char *x, uint8_t *out, size_t cap)
{
    const char *q = strstr(x, "<ParticipantObjectQuery>");
    cr_assert_not_null(q, "no query in %.400s", x);
    q += strlen("<ParticipantObjectQuery>");
    const char *e = strstr(q, "</ParticipantObjectQuery>");
    cr_assert_not_null(e);
    cr_assert_lt((size_t)(e - q) / 4 * 3, cap);
    int n = EVP_DecodeBlock(out, (const unsigned char *)q, (int)(e - q));
    cr_assert_geq(n, 0);
    return (size_t)n;
}

Test(core_audit, a_query_carries_its_identifier_without_the_patient)
{
    skip_app_start();
    struct assoc *a = acceptor("WS1", "192.0.2.11:4000");
    struct dcm_ds *ds = identifier();
    core_audit_query(a, "1.2.840.10008.5.1.4.1.2.2.1", ds, 0x0000);
    const char *x = next_msg();
    expect_event(x, "110112", "E", "0");
    has(x, "ParticipantObjectID=\"1.2.840.10008.5.1.4.1.2.2.1\"");
    has(x, "QueryRedacted");
    uint8_t raw[4096];
    size_t n = query_of(x, raw, sizeof raw);
    cr_assert_null(memmem(raw, n, PID, strlen(PID)), "the Patient ID itself is in the query");
    cr_assert_null(memmem(raw, n, "DOE^JANE", 8), "the name is in the query");
    cr_assert_not_null(memmem(raw, n, patient_hash(PID), 64), "its hash stands in");
    cr_assert_not_null(memmem(raw, n, "STUDY", 5));
    core_audit_query(a, "1.2.840.10008.5.1.4.1.2.2.1", ds, 0xFE00); /* cancelled: done */
    expect_event(next_msg(), "110112", "E", "0");
    core_audit_query(a, "1.2.840.10008.5.1.4.1.2.2.1", NULL, 0xA900);
    x = next_msg();
    expect_event(x, "110112", "E", "4");
    has(x, "DIMSE status A900");
    dcm_ds_free(ds);
    end(a);
    cr_assert(quiet(200), "a query leaves nothing for the association's end");
}

Test(core_audit, accesses_name_the_study_patient_and_action)
{
    skip_app_start();
    struct assoc *a = acceptor("WS1", "192.0.2.11:4000");
    core_audit_accessed(a, 'D', CT, "2.25.5", PID, 3, 0x0000);
    const char *x = next_msg();
    expect_event(x, "110103", "D", "0");
    has(x, "ParticipantObjectID=\"2.25.5\"");
    has(x, "NumberOfInstances=\"3\"");
    has(x, patient_hash(PID));
    core_audit_accessed(a, 'R', CT, NULL, NULL, 1, 0xC000);
    x = next_msg();
    expect_event(x, "110103", "R", "4");
    has(x, "ParticipantObjectID=\"UNKNOWN\"");
    end(a);
}

Test(core_audit, a_commitment_report_is_one_message_pair_per_study)
{
    skip_app_start();
    struct assoc *a = requestor("MOD1"); /* the report on a new association */
    struct core_audit_commit_ref refs[] = {
        {CT, "2.25.1.1", "2.25.1", PID, true},
        {MR, "2.25.2.1", "2.25.2", "P2", true},
        {CT, "2.25.1.2", "2.25.1", PID, false},
        {CT, "2.25.1.3", "2.25.1", PID, true},
    };
    core_audit_commitment(a, "2.25.77", refs, 4, "not at the commit point");
    const char *x = next_msg();
    expect_event(x, "110104", "R", "0");
    has(x, "csd-code=\"1.2.840.10008.1.20.1\"");
    has(x, "ParticipantObjectID=\"2.25.1\"");
    has(x, "NumberOfInstances=\"2\"");
    has(x, "<Instance UID=\"2.25.1.1\"/>");
    has(x, "<Instance UID=\"2.25.1.3\"/>");
    hasnt(x, "2.25.1.2\"");
    has(x, "UserID=\"MOD1\"");
    has(x, patient_hash(PID));
    x = next_msg();
    expect_event(x, "110104", "R", "4");
    has(x, "<Instance UID=\"2.25.1.2\"/>");
    has(x, "not at the commit point");
    x = next_msg();
    expect_event(x, "110104", "R", "0");
    has(x, "ParticipantObjectID=\"2.25.2\"");
    has(x, patient_hash("P2"));
    cr_assert(quiet(200));
    end(a);
}

Test(core_audit, a_policy_refusal_is_a_security_alert_about_the_peer)
{
    skip_app_start();
    struct assoc *a = acceptor("NOT_BOUND", "192.0.2.12:4000");
    core_audit_refused(a, "calling AE title not recognized");
    const char *x = next_msg();
    expect_event(x, "110113", "E", "4");
    has(x, "csd-code=\"110132\"");
    has(x, "ParticipantObjectID=\"192.0.2.12\"");
    has(x, "UserID=\"NOT_BOUND\"");
    end(a);
}

Test(core_audit, a_reload_is_a_security_configuration_alert)
{
    skip_app_start();
    core_audit_reloaded(&ctx, "/etc/dicom-core.json", true, NULL);
    const char *x = next_msg();
    expect_event(x, "110113", "E", "0");
    has(x, "csd-code=\"110129\"");
    has(x, "file:///etc/dicom-core.json");
    core_audit_reloaded(&ctx, NULL, false, "configuration invalid");
    expect_event(next_msg(), "110113", "E", "4");
}

Test(core_audit, a_tls_authentication_without_a_certificate_names_the_tcp_peer)
{
    skip_app_start();
    struct assoc *a = acceptor("X", "198.51.100.1:4000"); /* PROXY v2 said so */
    core_audit_tls_auth(a, "127.0.0.1:5555", NULL, false, "unknown_ca");
    const char *x = next_msg();
    expect_event(x, "110114", "E", "4");
    has(x, "NetworkAccessPointID=\"127.0.0.1\"");
    hasnt(x, "198.51.100.1");
    has(x, "unknown_ca");
    end(a);
}

Test(core_audit, the_application_stops_after_the_last_totals)
{
    skip_app_start();
    struct assoc *a = acceptor("MOD1", "192.0.2.7:4000");
    core_audit_stored(a, CT, "2.25.1", PID, 0, NULL);
    expect_event(next_msg(), "110102", "E", "0");
    end(a);
    core_audit_stop(&ctx, 2000);
    expect_event(next_msg(), "110104", "C", "0");
    const char *x = next_msg();
    has(x, "csd-code=\"110121\"");
    cr_assert_null(ctx.audit);
}

Test(core_audit, party_addresses_lose_their_port)
{
    char ip[64];
    core_party_ip("192.0.2.1:104", ip, sizeof ip);
    cr_assert_str_eq(ip, "192.0.2.1");
    core_party_ip("[2001:db8::1]:104", ip, sizeof ip);
    cr_assert_str_eq(ip, "2001:db8::1");
    core_party_ip("2001:db8::1", ip, sizeof ip);
    cr_assert_str_eq(ip, "2001:db8::1");
    core_party_ip("?", ip, sizeof ip);
    cr_assert_str_eq(ip, "?");
    core_party_ip(NULL, ip, sizeof ip);
    cr_assert_str_eq(ip, "");
}

Test(core_audit, statuses_that_count_as_done)
{
    cr_assert(core_audit_status_ok(0x0000));
    cr_assert(core_audit_status_ok(0xB000));
    cr_assert(core_audit_status_ok(0xB007));
    cr_assert(core_audit_status_ok(0x0107));
    cr_assert(!core_audit_status_ok(0xA700));
    cr_assert(!core_audit_status_ok(0xC000));
    cr_assert(!core_audit_status_ok(0xFE00));
}

Test(core_audit, a_changed_audit_object_is_noticed)
{
    struct core_config x = {0}, y = {0};
    cr_assert(!core_audit_changed(&x, &y));
    y.audit_json = (char *)"{}";
    cr_assert(core_audit_changed(&x, &y));
    x.audit_json = (char *)"{}";
    cr_assert(!core_audit_changed(&x, &y));
    x.audit_json = (char *)"{\"on_full\": \"fail_closed\"}";
    cr_assert(core_audit_changed(&x, &y));
}

static void setup_off(void)
{
    start_audit(false);
}

/* A suite of its own: Criterion runs the suite's .init before a test's own, which would start
 * (and leak) a trail that this test must not have. */
TestSuite(core_audit_off, .init = setup_off, .fini = teardown);

Test(core_audit_off, every_call_is_a_no_op_without_an_audit_trail)
{
    struct assoc *a = acceptor("MOD1", "192.0.2.7:4000");
    struct assoc *o = requestor("DEST");
    core_audit_stored(a, CT, "2.25.1", PID, 0, NULL);
    core_audit_sent(o, a, CT, "2.25.1", PID, 0);
    core_audit_query(a, CT, NULL, 0);
    core_audit_accessed(a, 'R', CT, "2.25.1", PID, 1, 0);
    struct core_audit_commit_ref r = {CT, "2.25.1.1", "2.25.1", PID, true};
    core_audit_commitment(a, "2.25.77", &r, 1, NULL);
    core_audit_refused(a, "x");
    core_audit_tls_auth(a, "127.0.0.1:1", NULL, true, NULL);
    core_audit_reloaded(&ctx, "/x", true, NULL);
    cr_assert(!core_audit_blocking(&ctx));
    end(o);
    end(a);
    cr_assert(quiet(300), "a message arrived with audit off");
}

Test(core_audit, config_problems_are_reported_by_key)
{
    struct core_config c = {0};
    c.audit_json = (char *)"{\"repositories\": [], \"queue_dir\": \"/tmp/x\", \"bogus\": 1}";
    struct wbuf errs;
    wbuf_init(&errs, 4096);
    struct audit_config *ac = malloc(sizeof *ac);
    cr_assert_eq(core_audit_config(&c, ac, &errs), ERR_CONFIG);
    wbuf_u8(&errs, 0);
    cr_assert_not_null(strstr((const char *)errs.p, "audit.bogus"), "%s", (const char *)errs.p);
    free(ac);
    wbuf_cleanup(&errs);
}
