/* sts: the study-scoped session policy (actions, the condition key, the 2,048-character limit),
 * the AssumeRole answer parser, session names, and the provider on a loop against a scripted
 * STS: the form it posts, credentials cached until five minutes before they expire, fetched
 * again after an invalidation (ExpiredToken), and the error code kept (PackedPolicyTooLarge). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "forwarder/aws/creds.h"
#include "forwarder/aws/sts.h"
#include "forwarder/aws/sts_policy.h"
#include "http_script.h"

#define ARN "arn:aws:medical-imaging:us-east-1:123456789012:datastore/0123456789abcdef"

Test(sts_policy, core_policy_is_compact_and_conditions_every_action_on_the_studies)
{
    const char *s[] = {"1.2.3", "1.2.4"};
    char out[STS_POLICY_MAX_CHARS + 1];
    size_t len;
    cr_assert_eq(sts_policy_build(ARN, s, 2, STS_POLICY_CORE, out, sizeof out, &len), 0);
    cr_assert_str_eq(out,
                     "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":["
                     "\"medical-imaging:SearchDICOMSeries\",\"medical-imaging:SearchDICOMInstances\","
                     "\"medical-imaging:GetDICOMInstance\"],\"Resource\":\"" ARN "\","
                     "\"Condition\":{\"StringEquals\":{\"medical-imaging:StudyInstanceUID\":["
                     "\"1.2.3\",\"1.2.4\"]}}}]}");
    cr_assert_eq(len, strlen(out));
    cr_assert_eq(sts_policy_build(ARN, s, 1, STS_POLICY_VIEWER, out, sizeof out, &len), 0);
    cr_assert(strstr(out, "medical-imaging:GetDICOMBulkdata"));
    cr_assert(strstr(out, "medical-imaging:GetDICOMSeriesMetadata"));
    cr_assert_null(strstr(out, "SearchDICOMStudies"), "takes no study key: never in a scoped one");
}

Test(sts_policy, the_plain_text_limit_is_exact)
{
    /* 64-character UIDs until the policy passes 2,048 characters */
    static char uids[40][65];
    const char *p[40];
    for (int i = 0; i < 40; i++) {
        snprintf(uids[i], sizeof uids[i], "1.2.%02d%058d", i + 10, 0);
        p[i] = uids[i];
    }
    char out[STS_POLICY_MAX_CHARS + 1];
    size_t len = 0, n = 0, last_len = 0;
    while (n < 40 && sts_policy_build(ARN, p, n + 1, STS_POLICY_CORE, out, sizeof out, &len) == 0) {
        last_len = len;
        n++;
    }
    cr_assert(n > 20 && n < 40, "%zu studies fit", n);
    cr_assert(last_len <= STS_POLICY_MAX_CHARS);
    cr_assert(last_len + sts_policy_study_cost(uids[n]) > STS_POLICY_MAX_CHARS);
    cr_assert_eq(sts_policy_build(ARN, p, n + 1, STS_POLICY_CORE, out, sizeof out, &len),
                 ERR_LIMIT);
    cr_assert_eq(sts_policy_build(ARN, p, 1, STS_POLICY_CORE, out, 100, &len), ERR_LIMIT);
    const char *bad[] = {"1.2.3\",\"*"};
    cr_assert_eq(sts_policy_build(ARN, bad, 1, STS_POLICY_CORE, out, sizeof out, &len),
                 ERR_MALFORMED); /* never a way out of the JSON string */
    cr_assert_eq(sts_policy_build(ARN, p, 0, STS_POLICY_CORE, out, sizeof out, &len),
                 ERR_MALFORMED);
    cr_assert_eq(sts_policy_build("arn:x\"", p, 1, STS_POLICY_CORE, out, sizeof out, &len),
                 ERR_MALFORMED);
}

static const char *g_answer =
    "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>"
    "<SourceIdentity>x</SourceIdentity><AssumedRoleUser><AssumedRoleId>AROA:s</AssumedRoleId>"
    "<Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn></AssumedRoleUser>"
    "<Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>sec&amp;ret"
    "</SecretAccessKey><SessionToken>tok</SessionToken><Expiration>2036-01-01T00:00:00Z"
    "</Expiration></Credentials><PackedPolicySize>42</PackedPolicySize></AssumeRoleResult>"
    "</AssumeRoleResponse>";

Test(sts, assume_role_answer_parses_and_partial_ones_are_refused)
{
    struct aws_creds c;
    int packed;
    char arn[128];
    cr_assert_eq(sts_parse_assume_role((const uint8_t *)g_answer, strlen(g_answer), &c, &packed,
                                       arn, sizeof arn), 0);
    cr_assert_str_eq(c.access_key_id, "ASIAEXAMPLE");
    cr_assert_str_eq(c.secret_access_key, "sec&ret");
    cr_assert_str_eq(c.session_token, "tok");
    cr_assert_eq(c.expires_at, 2082758400);
    cr_assert_eq(packed, 42);
    cr_assert_str_eq(arn, "arn:aws:sts::123456789012:assumed-role/r/s");
    const char *nok = "<Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>s"
                      "</SecretAccessKey><Expiration>2036-01-01T00:00:00Z</Expiration>"
                      "</Credentials>";
    cr_assert_eq(sts_parse_assume_role((const uint8_t *)nok, strlen(nok), &c, &packed, arn,
                                       sizeof arn), ERR_MALFORMED);
    cr_assert_str_eq(c.access_key_id, "", "wiped");
    size_t exp_end = (size_t)(strstr(g_answer, "</Expiration>") - g_answer);
    for (size_t cut = 0; cut < exp_end; cut += 7) /* cut before the Expiration's end */
        cr_assert_lt(sts_parse_assume_role((const uint8_t *)g_answer, cut, &c, &packed, arn,
                                           sizeof arn), 0);
    char name[65];
    sts_session_name("dicom-core-", "ct room/1 ü", name);
    cr_assert_str_eq(name, "dicom-core-ct_room_1___");
    sts_session_name("", "", name);
    cr_assert_str_eq(name, "__");
}

/* ---- the provider against a scripted STS ------------------------------------------------------ */

struct got {
    bool done;
    int err;
    char key[130];
};

static void on_creds(void *arg, int err, const struct aws_creds *c)
{
    struct got *g = arg;
    g->done = true;
    g->err = err;
    snprintf(g->key, sizeof g->key, "%s", c ? c->access_key_id : "");
}

static void on_closed(void *arg)
{
    *(bool *)arg = true;
}

/* UV_RUN_NOWAIT: UV_RUN_ONCE runs a due timer and then blocks in the poll. */
static void run_until(uv_loop_t *l, const bool *f)
{
    for (int i = 0; i < 10000 && !*f; i++) {
        if (uv_run(l, UV_RUN_NOWAIT) == 0)
            break;
        if (!*f)
            uv_sleep(1);
    }
    cr_assert(*f);
}

Test(sts, provider_caches_refetches_after_invalidate_and_keeps_the_error)
{
    char later[64], answer2[800];
    time_t t = time(NULL) + 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(later, sizeof later, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(answer2, sizeof answer2,
             "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIA2"
             "</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken>"
             "<Expiration>%.40s</Expiration></Credentials></AssumeRoleResult>"
             "</AssumeRoleResponse>",
             later);
    char answer1[800];
    snprintf(answer1, sizeof answer1, "%s", answer2);
    memcpy(strstr(answer1, "ASIA2"), "ASIA1", 5);
    struct hs_canned s[] = {
        {200, NULL, answer1},
        {200, NULL, answer2},
        {400, NULL,
         "<ErrorResponse><Error><Type>Sender</Type><Code>PackedPolicyTooLarge</Code><Message>"
         "Packed policy consumes 120% of allotted space</Message></Error></ErrorResponse>"}};
    setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    struct hs_server srv;
    hs_start(&loop, &srv, s, 3);
    struct http_client *http;
    struct http_opts o;
    http_opts_default(&o);
    o.max_attempts = 1;
    cr_assert_eq(http_client_new(&loop, &o, &http), 0);
    struct creds_provider *chain, *p, *p2;
    cr_assert_eq(creds_provider_new(http, &chain), 0);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", srv.port);
    struct sts_opts so = {.region = "us-east-1", .endpoint = ep};
    struct sts_client *sts;
    cr_assert_eq(sts_client_new(http, chain, &so, &sts), 0);
    struct sts_assume a = {.role_arn = "arn:aws:iam::123456789012:role/reader",
                           .session_name = "dicom-core-x", .duration_s = 900,
                           .policy = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"};
    cr_assert_eq(sts_provider_new(sts, &a, &p), 0);
    cr_assert(sts_provider_is(p) && !sts_provider_is(chain));
    cr_assert_null(creds_peek(p));
    struct got g = {0};
    cr_assert_eq(creds_get(p, on_creds, &g), 0);
    cr_assert(!g.done);
    run_until(&loop, &g.done);
    cr_assert_eq(g.err, 0);
    cr_assert_str_eq(g.key, "ASIA1");
    cr_assert_str_eq(creds_peek(p)->access_key_id, "ASIA1");
    cr_assert(strstr(srv.seen_head[0], "POST / HTTP/1.1"));
    cr_assert(strstr(srv.seen_head[0], "/us-east-1/sts/aws4_request"));
    const char *form = "Action=AssumeRole&DurationSeconds=900&Policy=%7B%22Version%22%3A%222012-"
                       "10-17%22%2C%22Statement%22%3A%5B%5D%7D&RoleArn=arn%3Aaws%3Aiam%3A%3A12345"
                       "6789012%3Arole%2Freader&RoleSessionName=dicom-core-x&Version=2011-06-15";
    cr_assert_eq(srv.seen_body_len[0], strlen(form));
    cr_assert_eq(memcmp(srv.seen_body[0], form, strlen(form)), 0);
    struct got g2 = {0}; /* fresh: answered from the cache, later */
    cr_assert_eq(creds_get(p, on_creds, &g2), 0);
    cr_assert(!g2.done);
    run_until(&loop, &g2.done);
    cr_assert_str_eq(g2.key, "ASIA1");
    cr_assert_eq(srv.n_seen, 1);
    creds_invalidate(p); /* ExpiredToken from a service */
    cr_assert_null(creds_peek(p));
    struct got g3 = {0};
    cr_assert_eq(creds_get(p, on_creds, &g3), 0);
    run_until(&loop, &g3.done);
    cr_assert_str_eq(g3.key, "ASIA2");
    cr_assert_eq(sts_provider_new(sts, &a, &p2), 0);
    struct got g4 = {0};
    cr_assert_eq(creds_get(p2, on_creds, &g4), 0);
    run_until(&loop, &g4.done);
    cr_assert_eq(g4.err, HTTP_ERR_CREDS);
    cr_assert_str_eq(sts_provider_last_error(p2)->error_code, "PackedPolicyTooLarge");
    creds_provider_close(p);
    creds_provider_close(p2);
    creds_provider_close(chain);
    bool closed = false;
    http_client_close(http, on_closed, &closed);
    run_until(&loop, &closed);
    sts_client_free(sts);
    hs_close_all(&loop, &srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    hs_free(&srv);
}
