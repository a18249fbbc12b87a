/* The edge's first-PDU decision (edge/admission), its PDU follower (edge/pdu_follow) and its
 * limit counters (edge/limits). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "limits.h"
#include "pdu_follow.h"

static const char g_policy[] =
    "{ \"clients\": ["
    "  { \"id\": \"ct\", \"match\": { \"subject_cn\": \"ct-room-1\" },"
    "    \"calling_ae\": [\"CT_ROOM1\"], \"called_ae\": [\"DICOM_CORE\"] },"
    "  { \"id\": \"ct-b\", \"match\": { \"subject_cn\": \"ct-room-1\" },"
    "    \"calling_ae\": [\"CT_B\"], \"called_ae\": [\"OTHER\"] } ],"
    "  \"routes\": { \"vpc\": { \"upstream\": \"127.0.0.1:11112\" } } }";

static struct policy *g_pol;
static struct tls_peer_id g_id;

static void setup(void)
{
    struct wbuf errs;
    wbuf_init(&errs, 65536);
    cr_assert_eq(policy_parse(g_policy, strlen(g_policy), &g_pol, &errs), 0);
    wbuf_cleanup(&errs);
    memset(&g_id, 0, sizeof g_id);
    snprintf(g_id.cn, sizeof g_id.cn, "ct-room-1");
}

static void teardown(void)
{
    policy_free(g_pol);
}

/* A-ASSOCIATE-RQ with one Verification context; caller cleans up b. */
static void make_rq(struct wbuf *b, const char *calling, const char *called, uint32_t max_len)
{
    static struct ul_assoc_rq rq; /* big: not on the stack */
    memset(&rq, 0, sizeof rq);
    rq.protocol_version = 1;
    snprintf(rq.calling, sizeof rq.calling, "%s", calling);
    snprintf(rq.called, sizeof rq.called, "%s", called);
    rq.app_context = (struct slice){(const uint8_t *)UL_APP_CONTEXT, strlen(UL_APP_CONTEXT)};
    rq.n_pctx = 1;
    rq.pctx[0].id = 1;
    rq.pctx[0].abstract = (struct slice){(const uint8_t *)"1.2.840.10008.1.1", 17};
    rq.pctx[0].n_ts = 1;
    rq.pctx[0].ts[0] = (struct slice){(const uint8_t *)"1.2.840.10008.1.2", 17};
    rq.ui.present = true;
    rq.ui.has_max_len = true;
    rq.ui.max_len = max_len;
    rq.ui.impl_uid = (struct slice){(const uint8_t *)"1.2.3.4", 7};
    wbuf_init(b, 1u << 20);
    cr_assert_eq(ul_encode_assoc_rq(b, &rq), 0);
}

/* Decide on an exact-size heap copy, so that ASan sees any over-read. */
static enum adm_verdict decide(const uint8_t *p, size_t n, struct adm_decision *d,
                               const struct tls_peer_id *id)
{
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, p, n);
    enum adm_verdict v = admission_decide(g_pol, id, copy, n, d);
    free(copy);
    return v;
}

TestSuite(edge_admission, .init = setup, .fini = teardown);

Test(edge_admission, admits_a_bound_certificate_and_its_ae_titles)
{
    struct wbuf b;
    make_rq(&b, "CT_ROOM1", "DICOM_CORE", 32768);
    struct adm_decision d;
    cr_assert_eq(decide(b.p, b.len, &d, &g_id), ADM_ADMIT);
    cr_assert_str_eq(d.client->id, "ct");
    cr_assert_eq(d.pdu_len, b.len);
    cr_assert_eq(d.max_len, 32768);
    cr_assert_str_eq(d.calling, "CT_ROOM1");
    wbuf_cleanup(&b);
}

Test(edge_admission, takes_the_entry_whose_titles_fit)
{
    struct wbuf b;
    make_rq(&b, "CT_B", "OTHER", 0);
    struct adm_decision d;
    cr_assert_eq(decide(b.p, b.len, &d, &g_id), ADM_ADMIT);
    cr_assert_str_eq(d.client->id, "ct-b");
    wbuf_cleanup(&b);
}

Test(edge_admission, rejects_calling_then_called_with_ps38_reasons)
{
    struct wbuf b;
    struct adm_decision d;
    make_rq(&b, "INTRUDER", "DICOM_CORE", 0);
    cr_assert_eq(decide(b.p, b.len, &d, &g_id), ADM_REJECT);
    cr_assert_eq(d.result, UL_RJ_PERMANENT);
    cr_assert_eq(d.source, UL_RJ_SRC_USER);
    cr_assert_eq(d.reason, UL_RJ_USER_CALLING_AE);
    wbuf_cleanup(&b);
    make_rq(&b, "CT_ROOM1", "SOMEONE", 0);
    cr_assert_eq(decide(b.p, b.len, &d, &g_id), ADM_REJECT);
    cr_assert_eq(d.reason, UL_RJ_USER_CALLED_AE);
    cr_assert_str_eq(d.why, "called_ae_not_allowed");
    wbuf_cleanup(&b);
    /* another entry's calling AE with this entry's called AE: still refused */
    make_rq(&b, "CT_B", "DICOM_CORE", 0);
    cr_assert_eq(decide(b.p, b.len, &d, &g_id), ADM_REJECT);
    wbuf_cleanup(&b);
}

Test(edge_admission, rejects_an_unknown_certificate)
{
    struct wbuf b;
    make_rq(&b, "CT_ROOM1", "DICOM_CORE", 0);
    struct tls_peer_id other;
    memset(&other, 0, sizeof other);
    snprintf(other.cn, sizeof other.cn, "ct-room-2");
    struct adm_decision d;
    cr_assert_eq(decide(b.p, b.len, &d, &other), ADM_REJECT);
    cr_assert_eq(d.reason, UL_RJ_USER_CALLING_AE);
    cr_assert_str_eq(d.why, "certificate_not_in_policy");
    cr_assert_eq(decide(b.p, b.len, &d, NULL), ADM_REJECT);
    wbuf_cleanup(&b);
}

Test(edge_admission, needs_more_at_every_cut)
{
    struct wbuf b;
    make_rq(&b, "CT_ROOM1", "DICOM_CORE", 0);
    struct adm_decision d;
    for (size_t cut = 0; cut < b.len; cut++)
        cr_assert_eq(decide(b.p, cut, &d, &g_id), ADM_NEED_MORE, "cut %zu", cut);
    wbuf_cleanup(&b);
}

Test(edge_admission, ignores_bytes_after_the_first_pdu)
{
    struct wbuf b;
    make_rq(&b, "CT_ROOM1", "DICOM_CORE", 0);
    size_t len = b.len;
    wbuf_put(&b, "\x04\x00\xff\xff\xff\xff garbage", 14);
    struct adm_decision d;
    cr_assert_eq(decide(b.p, b.len, &d, &g_id), ADM_ADMIT);
    cr_assert_eq(d.pdu_len, len);
    wbuf_cleanup(&b);
}

Test(edge_admission, aborts_anything_but_an_associate_rq)
{
    struct adm_decision d;
    for (unsigned t = 0; t < 256; t++) {
        if (t == UL_ASSOC_RQ)
            continue;
        uint8_t one = (uint8_t)t;
        cr_assert_eq(decide(&one, 1, &d, &g_id), ADM_ABORT, "type %u", t);
        cr_assert_eq(d.source, UL_ABORT_SRC_PROVIDER);
        cr_assert_eq(d.reason, UL_ABORT_UNEXPECTED_PDU);
    }
}

Test(edge_admission, bounds_the_declared_length)
{
    static const uint32_t lens[] = {0, 1, UL_PRE_ASSOC_MAX, UL_PRE_ASSOC_MAX + 1, 0x7fffffff,
                                    0xffffffff};
    struct adm_decision d;
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint8_t h[6] = {1, 0, (uint8_t)(lens[i] >> 24), (uint8_t)(lens[i] >> 16),
                        (uint8_t)(lens[i] >> 8), (uint8_t)lens[i]};
        enum adm_verdict v = decide(h, sizeof h, &d, &g_id);
        if (lens[i] > UL_PRE_ASSOC_MAX) {
            cr_assert_eq(v, ADM_ABORT, "len %u", lens[i]);
            cr_assert_str_eq(d.why, "rq_too_large");
        } else if (lens[i] == 0) {
            cr_assert_eq(v, ADM_ABORT, "an empty RQ is malformed");
        } else {
            cr_assert_eq(v, ADM_NEED_MORE, "len %u", lens[i]);
        }
    }
}

Test(edge_admission, aborts_a_malformed_rq_and_rejects_a_bad_version)
{
    struct wbuf b;
    make_rq(&b, "CT_ROOM1", "DICOM_CORE", 0);
    struct adm_decision d;
    /* first variable item's length overruns the PDU */
    size_t item = UL_HDR_LEN + 68;
    b.p[item + 2] = 0xff;
    b.p[item + 3] = 0xff;
    cr_assert_eq(decide(b.p, b.len, &d, &g_id), ADM_ABORT);
    cr_assert_str_eq(d.why, "malformed_rq");
    wbuf_cleanup(&b);
    make_rq(&b, "CT_ROOM1", "DICOM_CORE", 0);
    b.p[UL_HDR_LEN + 1] = 2; /* protocol version without bit 0 */
    cr_assert_eq(decide(b.p, b.len, &d, &g_id), ADM_REJECT);
    cr_assert_eq(d.source, UL_RJ_SRC_ACSE);
    cr_assert_eq(d.reason, UL_RJ_ACSE_PROTOCOL_VERSION);
    wbuf_cleanup(&b);
}

Test(edge_admission, rejects_ae_titles_with_forbidden_characters)
{
    struct wbuf b;
    make_rq(&b, "CT_ROOM1", "DICOM_CORE", 0);
    b.p[UL_HDR_LEN + 4 + 16 + 2] = '\\'; /* in the calling AE title */
    struct adm_decision d;
    cr_assert_eq(decide(b.p, b.len, &d, &g_id), ADM_REJECT);
    cr_assert_eq(d.reason, UL_RJ_USER_CALLING_AE);
    wbuf_cleanup(&b);
}

Test(pdu_follow, follows_headers_split_anywhere_and_counts)
{
    /* three PDUs: P-DATA (10 bytes), RELEASE-RP, ABORT */
    static const uint8_t s[] = {4, 0, 0, 0, 0, 10, 0, 0, 0, 6, 1, 3, 1, 2, 3, 4,
                                6, 0, 0, 0, 0, 4, 0, 0, 0, 0,
                                7, 0, 0, 0, 0, 4, 0, 0, 2, 0};
    for (size_t step = 1; step <= sizeof s; step++) {
        struct pdu_follow f;
        pdu_follow_init(&f, 1000, PDU_FROM_ACCEPTOR, false);
        for (size_t at = 0; at < sizeof s; at += step) {
            size_t n = sizeof s - at < step ? sizeof s - at : step;
            cr_assert_eq(pdu_follow_feed(&f, s + at, n), 0);
        }
        cr_assert_eq(f.pdus, 3);
        cr_assert(f.saw_release_rp && f.saw_abort);
        cr_assert(pdu_follow_at_boundary(&f));
        pdu_follow_cleanup(&f);
    }
}

Test(pdu_follow, refuses_a_pdu_over_the_limit_and_unknown_types)
{
    struct pdu_follow f;
    pdu_follow_init(&f, 16, PDU_FROM_ACCEPTOR, false);
    static const uint8_t ok[] = {4, 0, 0, 0, 0, 16};
    static const uint8_t big[] = {4, 0, 0, 0, 0, 17};
    cr_assert_eq(pdu_follow_feed(&f, ok, sizeof ok), 0);
    cr_assert_not(pdu_follow_at_boundary(&f));
    uint8_t body[16] = {0};
    cr_assert_eq(pdu_follow_feed(&f, body, sizeof body), 0);
    cr_assert_eq(pdu_follow_feed(&f, big, sizeof big), ERR_LIMIT);
    pdu_follow_cleanup(&f);
    pdu_follow_init(&f, 16, PDU_FROM_ACCEPTOR, false);
    static const uint8_t bad[] = {9, 0, 0, 0, 0, 0};
    cr_assert_eq(pdu_follow_feed(&f, bad, sizeof bad), ERR_MALFORMED);
    pdu_follow_cleanup(&f);
}

Test(pdu_follow, the_limit_bounds_p_data_only)
{
    /* PS3.8 D.1: an A-ASSOCIATE-AC longer than the requestor's maximum is fine */
    struct pdu_follow f;
    pdu_follow_init(&f, 16, PDU_FROM_ACCEPTOR, false);
    static const uint8_t ac[] = {2, 0, 0, 0, 0, 200};
    cr_assert_eq(pdu_follow_feed(&f, ac, sizeof ac), 0);
    uint8_t body[200] = {0};
    cr_assert_eq(pdu_follow_feed(&f, body, sizeof body), 0);
    static const uint8_t huge_ac[] = {2, 0, 0, 1, 0, 1}; /* 64 KiB + 1 */
    cr_assert_eq(pdu_follow_feed(&f, huge_ac, sizeof huge_ac), ERR_LIMIT);
    pdu_follow_cleanup(&f);
}

Test(pdu_follow, each_side_sends_only_its_own_pdus)
{
    static const uint8_t rq[] = {1, 0, 0, 0, 0, 0};
    static const uint8_t ac[] = {2, 0, 0, 0, 0, 0};
    static const uint8_t rj[] = {3, 0, 0, 0, 0, 0};
    struct pdu_follow f;
    /* the requestor: one A-ASSOCIATE-RQ, first; never an AC or RJ */
    pdu_follow_init(&f, 16, PDU_FROM_REQUESTOR, false);
    cr_assert_eq(pdu_follow_feed(&f, rq, sizeof rq), 0);
    cr_assert_eq(pdu_follow_feed(&f, rq, sizeof rq), ERR_MALFORMED);
    pdu_follow_cleanup(&f);
    pdu_follow_init(&f, 16, PDU_FROM_REQUESTOR, false);
    cr_assert_eq(pdu_follow_feed(&f, ac, sizeof ac), ERR_MALFORMED);
    pdu_follow_cleanup(&f);
    pdu_follow_init(&f, 16, PDU_FROM_REQUESTOR, false);
    cr_assert_eq(pdu_follow_feed(&f, rj, sizeof rj), ERR_MALFORMED);
    pdu_follow_cleanup(&f);
    /* the acceptor: never an A-ASSOCIATE-RQ */
    pdu_follow_init(&f, 16, PDU_FROM_ACCEPTOR, false);
    cr_assert_eq(pdu_follow_feed(&f, rq, sizeof rq), ERR_MALFORMED);
    pdu_follow_cleanup(&f);
}

Test(pdu_follow, keeps_the_first_pdu_whole)
{
    struct pdu_follow f;
    pdu_follow_init(&f, 1000, PDU_FROM_ACCEPTOR, true);
    static const uint8_t s[] = {2, 0, 0, 0, 0, 3, 'a', 'b', 'c', 4, 0, 0, 0, 0, 1, 'x'};
    for (size_t i = 0; i < sizeof s; i++) {
        cr_assert_eq(pdu_follow_feed(&f, s + i, 1), 0);
        if (i < 8)
            cr_assert_not(pdu_follow_first_done(&f), "at %zu", i);
        else
            cr_assert(pdu_follow_first_done(&f), "at %zu", i);
    }
    cr_assert_eq(f.first.len, 9);
    cr_assert_eq(memcmp(f.first.p, s, 9), 0);
    cr_assert(f.saw_ac);
    pdu_follow_cleanup(&f);
}

Test(limits, an_ipv6_source_counts_by_its_64)
{
    static struct limits l;
    limits_init(&l);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "2001:db8:1:2::1", &a.sin6_addr);
    for (int i = 0; i < 3; i++) {
        a.sin6_addr.s6_addr[15] = (uint8_t)(i + 1); /* other addresses, same /64 */
        cr_assert(limits_source_allow(&l, (struct sockaddr *)&a, 1000, 3));
    }
    a.sin6_addr.s6_addr[8] = 0x77;
    cr_assert_not(limits_source_allow(&l, (struct sockaddr *)&a, 1000, 3), "same /64");
    inet_pton(AF_INET6, "2001:db8:1:3::1", &a.sin6_addr);
    cr_assert(limits_source_allow(&l, (struct sockaddr *)&a, 1000, 3), "another /64");
    inet_pton(AF_INET6, "::ffff:10.0.0.1", &a.sin6_addr);
    cr_assert(limits_source_allow(&l, (struct sockaddr *)&a, 1000, 1), "v4-mapped: per host");
    inet_pton(AF_INET6, "::ffff:10.0.0.2", &a.sin6_addr);
    cr_assert(limits_source_allow(&l, (struct sockaddr *)&a, 1000, 1), "v4-mapped: per host");
    limits_cleanup(&l);
}

Test(limits, counts_per_source_per_minute)
{
    static struct limits l; /* 4096 slots: static, not on the stack */
    limits_init(&l);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000001)};
    struct sockaddr_in b = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000002)};
    for (int i = 0; i < 3; i++)
        cr_assert(limits_source_allow(&l, (struct sockaddr *)&a, 1000, 3));
    cr_assert_not(limits_source_allow(&l, (struct sockaddr *)&a, 2000, 3));
    cr_assert(limits_source_allow(&l, (struct sockaddr *)&b, 2000, 3), "other source unaffected");
    cr_assert(limits_source_allow(&l, (struct sockaddr *)&a, 61000, 3), "next minute");
    cr_assert(limits_source_allow(&l, (struct sockaddr *)&a, 61000, 0), "0 is no bound");
    /* many sources never grow the table, and never crash */
    for (uint32_t i = 0; i < 20000; i++) {
        struct sockaddr_in x = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(i)};
        (void)limits_source_allow(&l, (struct sockaddr *)&x, 3000, 1);
    }
    limits_cleanup(&l);
}

Test(limits, bounds_client_associations_and_rate)
{
    static struct limits l;
    limits_init(&l);
    const char *why = NULL;
    cr_assert_eq(limits_client_take(&l, "ct", 0, 2, 0, &why), 0);
    cr_assert_eq(limits_client_take(&l, "ct", 0, 2, 0, &why), 0);
    cr_assert_eq(limits_client_take(&l, "ct", 0, 2, 0, &why), ERR_LIMIT);
    cr_assert_str_eq(why, "max_associations");
    cr_assert_eq(limits_client_take(&l, "mr", 0, 2, 0, &why), 0, "per client");
    limits_client_put(&l, "ct");
    cr_assert_eq(limits_client_take(&l, "ct", 0, 2, 0, &why), 0);
    cr_assert_eq(limits_client_take(&l, "rate", 0, 0, 2, &why), 0);
    limits_client_put(&l, "rate");
    cr_assert_eq(limits_client_take(&l, "rate", 0, 0, 2, &why), 0);
    limits_client_put(&l, "rate");
    cr_assert_eq(limits_client_take(&l, "rate", 0, 0, 2, &why), ERR_LIMIT);
    cr_assert_str_eq(why, "max_per_minute");
    cr_assert_eq(limits_client_take(&l, "rate", 60000, 0, 2, &why), 0);
    limits_cleanup(&l);
}

Test(limits, holds_back_refusal_lines_per_source_and_reports_them)
{
    static struct limits l;
    limits_init(&l);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000001)};
    struct sockaddr_in b = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000002)};
    for (int i = 0; i < LIMITS_LOG_PER_MINUTE; i++)
        cr_assert_eq(limits_log_allow(&l, (struct sockaddr *)&a, 1000), 0);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(limits_log_allow(&l, (struct sockaddr *)&a, 2000), -1);
    cr_assert_eq(limits_log_allow(&l, (struct sockaddr *)&b, 2000), 0, "other source unaffected");
    cr_assert_eq(limits_log_allow(&l, (struct sockaddr *)&a, 61000), 5,
                 "the next minute's first line reports what was held back");
    cr_assert_eq(limits_log_allow(&l, (struct sockaddr *)&a, 61000), 0);
    limits_cleanup(&l);
}
