/* Parsers of AWS answers (S3 XML text, AWS error bodies, HealthImaging job and STOW-RS store
 * responses, DynamoDB attribute values, container credentials): the valid case, a cut at every
 * byte offset, oversize fields and garbage. Inputs sit against a guard page (guard_copy). */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "forwarder/aws/creds.h"
#include "forwarder/aws/ddb.h"
#include "forwarder/aws/http.h"
#include "forwarder/aws/mi.h"
#include "forwarder/aws/xml.h"
#include "guard.h"

static const char k_create[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult "
    "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>b</Bucket><Key>a&amp;b.dcm</Key>"
    "<UploadId>VXBsb2FkIElE&#x2F;x&lt;y</UploadId></InitiateMultipartUploadResult>";

Test(xml, text_of_an_element_with_entities)
{
    const uint8_t *in = guard_copy(k_create, sizeof(k_create) - 1);
    char out[64];
    cr_assert_eq(xml_text(in, sizeof(k_create) - 1, "UploadId", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "VXBsb2FkIElE/x<y");
    cr_assert_eq(xml_text(in, sizeof(k_create) - 1, "Key", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "a&b.dcm");
    cr_assert_eq(xml_text(in, sizeof(k_create) - 1, "Code", out, sizeof(out)), ERR_NOTFOUND);
    guard_free(in, sizeof(k_create) - 1);
}

Test(xml, every_cut_gives_an_error_or_a_whole_value)
{
    size_t n = sizeof(k_create) - 1;
    for (size_t cut = 0; cut < n; cut++) {
        const uint8_t *in = guard_copy(k_create, cut);
        char out[64];
        int rc = xml_text(in, cut, "UploadId", out, sizeof(out));
        if (rc == 0) { /* the element itself was whole */
            cr_assert_str_eq(out, "VXBsb2FkIElE/x<y", "cut %zu", cut);
        } else {
            cr_assert(rc == ERR_NOTFOUND || rc == ERR_MALFORMED, "cut %zu", cut);
            cr_assert_eq(out[0], '\0');
        }
        guard_free(in, cut);
    }
}

Test(xml, refuses_too_long_text_bad_entities_and_nested_elements)
{
    char out[4];
    const char *a = "<Code>LongerThanOut</Code>";
    cr_assert_eq(xml_text((const uint8_t *)a, strlen(a), "Code", out, sizeof(out)), ERR_LIMIT);
    const char *bad[] = {"<Code>a&bogus;</Code>", "<Code>&#0;</Code>", "<Code>&#x100;</Code>",
                         "<Code>&#;</Code>", "<Code>a<b/></Code>", "<Code>&amp"};
    char big[64];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(xml_text((const uint8_t *)bad[i], strlen(bad[i]), "Code", big, sizeof(big)),
                     ERR_MALFORMED, "%s", bad[i]);
    const char *attr = "<Code x=\"1\">A</Code><CodeX>B</CodeX>";
    cr_assert_eq(xml_text((const uint8_t *)attr, strlen(attr), "Code", big, sizeof(big)),
                 ERR_NOTFOUND);
}

Test(aws_error, header_suffix_json_type_and_s3_xml)
{
    char code[96], msg[128];
    http_parse_aws_error("ThrottlingException:http://internal.amazon.com/coral/", NULL, 0, code,
                         sizeof(code), msg, sizeof(msg));
    cr_assert_str_eq(code, "ThrottlingException");
    const char *j = "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"
                    "\",\"message\":\"The conditional request failed\"}";
    http_parse_aws_error(NULL, (const uint8_t *)j, strlen(j), code, sizeof(code), msg,
                         sizeof(msg));
    cr_assert_str_eq(code, "ConditionalCheckFailedException");
    cr_assert_str_eq(msg, "The conditional request failed");
    const char *x = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>The key &lt;k&gt;"
                    "</Message><RequestId>1</RequestId></Error>";
    http_parse_aws_error(NULL, (const uint8_t *)x, strlen(x), code, sizeof(code), msg,
                         sizeof(msg));
    cr_assert_str_eq(code, "NoSuchKey");
    cr_assert_str_eq(msg, "The key <k>");
    const char *rj = "{\"Message\":\"m\"}";
    http_parse_aws_error("ValidationException", (const uint8_t *)rj, strlen(rj), code,
                         sizeof(code), msg, sizeof(msg));
    cr_assert_str_eq(code, "ValidationException");
    cr_assert_str_eq(msg, "m");
}

Test(aws_error, garbage_and_cuts_leave_fields_empty_or_whole)
{
    const char *j = "{\"__type\":\"x#Y\",\"message\":\"hello\"}";
    size_t n = strlen(j);
    for (size_t cut = 0; cut <= n; cut++) {
        const uint8_t *in = guard_copy(j, cut);
        char code[8], msg[8];
        http_parse_aws_error(NULL, in, cut, code, sizeof(code), msg, sizeof(msg));
        cr_assert(code[0] == '\0' || strcmp(code, "Y") == 0);
        cr_assert(msg[0] == '\0' || strcmp(msg, "hello") == 0);
        guard_free(in, cut);
    }
    char code[8], msg[8];
    const char *g = "{\"__type\":5,\"message\":[1]}";
    http_parse_aws_error(NULL, (const uint8_t *)g, strlen(g), code, sizeof(code), msg,
                         sizeof(msg));
    cr_assert_str_eq(code, "");
    cr_assert_str_eq(msg, "");
    /* longer than the destination: truncated, still terminated */
    const char *l = "{\"__type\":\"VeryLongExceptionName\"}";
    http_parse_aws_error(NULL, (const uint8_t *)l, strlen(l), code, sizeof(code), msg,
                         sizeof(msg));
    cr_assert_eq(strlen(code), sizeof(code) - 1);
}

Test(retry, classification_and_backoff_bounds)
{
    cr_assert(http_is_retryable(7 /* CURLE_COULDNT_CONNECT */, 0, NULL));
    cr_assert(http_is_retryable(28 /* CURLE_OPERATION_TIMEDOUT */, 0, NULL));
    cr_assert(!http_is_retryable(60 /* CURLE_PEER_FAILED_VERIFICATION */, 0, NULL));
    cr_assert(http_is_retryable(0, 503, ""));
    cr_assert(http_is_retryable(0, 500, "InternalError"));
    cr_assert(http_is_retryable(0, 429, ""));
    cr_assert(http_is_retryable(0, 400, "ThrottlingException"));
    cr_assert(http_is_retryable(0, 400, "ProvisionedThroughputExceededException"));
    cr_assert(http_is_retryable(0, 503, "SlowDown"));
    cr_assert(http_is_retryable(0, 400, "RequestTimeout"));
    cr_assert(http_is_retryable(0, 400, "ExpiredTokenException"));
    cr_assert(!http_is_retryable(0, 400, "ValidationException"));
    cr_assert(!http_is_retryable(0, 400, "ConditionalCheckFailedException"));
    cr_assert(!http_is_retryable(0, 403, "SignatureDoesNotMatch"));
    cr_assert(!http_is_retryable(0, 404, "NoSuchKey"));
    cr_assert_eq(http_backoff_ms(0, 100, 20000, 0.999), 99);
    cr_assert_eq(http_backoff_ms(3, 100, 20000, 0.5), 400);
    cr_assert_eq(http_backoff_ms(40, 100, 20000, 0.5), 10000); /* capped, no overflow */
    cr_assert_eq(http_backoff_ms(5, 100, 20000, 0.0), 0);      /* full jitter reaches 0 */
    cr_assert_eq(http_backoff_ms(2, 100, 20000, 7.0), 0);      /* out-of-range rnd */
}

static const char k_job[] =
    "{\"jobProperties\":{\"jobId\":\"5b2f\",\"jobName\":\"b-1\",\"jobStatus\":\"COMPLETED\","
    "\"datastoreId\":\"ds1\",\"dataAccessRoleArn\":\"arn:aws:iam::1:role/r\","
    "\"submittedAt\":1.7E9,\"endedAt\":\"2026-11-24T03:00:00Z\",\"inputS3Uri\":\"s3://b/i/\","
    "\"outputS3Uri\":\"s3://b/o/\",\"message\":\"done\"}}";

Test(mi, parses_a_job_and_survives_every_cut)
{
    struct mi_job job;
    const uint8_t *in = guard_copy(k_job, sizeof(k_job) - 1);
    cr_assert_eq(mi_parse_job(in, sizeof(k_job) - 1, "jobProperties", &job), 0);
    cr_assert_str_eq(job.job_id, "5b2f");
    cr_assert_str_eq(job.job_status, "COMPLETED");
    cr_assert_str_eq(job.output_s3_uri, "s3://b/o/");
    cr_assert_str_eq(job.submitted_at, "1700000000.000");
    cr_assert_str_eq(job.ended_at, "2026-11-24T03:00:00Z");
    guard_free(in, sizeof(k_job) - 1);
    for (size_t cut = 0; cut < sizeof(k_job) - 1; cut++) {
        in = guard_copy(k_job, cut);
        cr_assert_lt(mi_parse_job(in, cut, "jobProperties", &job), 0, "cut %zu", cut);
        cr_assert_eq(job.job_id[0], '\0');
        guard_free(in, cut);
    }
}

Test(mi, job_with_wrong_types_or_missing_fields_is_malformed)
{
    struct mi_job job;
    const char *bad[] = {"{\"jobId\":1,\"jobStatus\":\"X\"}", "{\"jobStatus\":\"X\"}",
                         "{\"jobId\":\"\",\"jobStatus\":\"X\"}", "[]", "null", "garbage",
                         "{\"jobId\":\"a\",\"jobStatus\":\"X\",\"message\":{}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_lt(mi_parse_job((const uint8_t *)bad[i], strlen(bad[i]), NULL, &job), 0, "%s",
                     bad[i]);
    char big[4096];
    int n = snprintf(big, sizeof(big), "{\"jobId\":\"%0200d\",\"jobStatus\":\"X\"}", 1);
    cr_assert_eq(mi_parse_job((const uint8_t *)big, (size_t)n, NULL, &job), ERR_LIMIT);
}

static const char k_stow[] =
    "{\"00081190\":{\"vr\":\"UR\",\"Value\":[\"https://h/datastore/d/studies/1.2\"]},"
    "\"00081199\":{\"vr\":\"SQ\",\"Value\":[{\"00081150\":{\"vr\":\"UI\",\"Value\":[\"1.2.840.10008.5.1.4.1.1.2\"]},"
    "\"00081155\":{\"vr\":\"UI\",\"Value\":[\"1.2.3.4\"]},\"00081190\":{\"vr\":\"UR\",\"Value\":[\"u\"]}}]},"
    "\"00081198\":{\"vr\":\"SQ\",\"Value\":[{\"00081150\":{\"vr\":\"UI\",\"Value\":[\"1.2\"]},"
    "\"00081155\":{\"vr\":\"UI\",\"Value\":[\"1.2.3.5\"]},\"00081197\":{\"vr\":\"US\",\"Value\":[272]}}]}}";

Test(mi, parses_a_store_response_per_instance_and_survives_every_cut)
{
    struct mi_stow_result r;
    const uint8_t *in = guard_copy(k_stow, sizeof(k_stow) - 1);
    cr_assert_eq(mi_parse_stow_response(in, sizeof(k_stow) - 1, &r), 0);
    guard_free(in, sizeof(k_stow) - 1);
    cr_assert_eq(r.n, 2);
    cr_assert(r.inst[0].stored);
    cr_assert_str_eq(r.inst[0].sop_instance_uid, "1.2.3.4");
    cr_assert_eq(r.inst[0].failure_reason, -1);
    cr_assert(!r.inst[1].stored);
    cr_assert_str_eq(r.inst[1].sop_instance_uid, "1.2.3.5");
    cr_assert_eq(r.inst[1].failure_reason, 272);
    cr_assert_str_eq(r.retrieve_url, "https://h/datastore/d/studies/1.2");
    for (size_t cut = 0; cut < sizeof(k_stow) - 1; cut++) {
        in = guard_copy(k_stow, cut);
        cr_assert_lt(mi_parse_stow_response(in, cut, &r), 0, "cut %zu", cut);
        cr_assert_eq(r.n, 0);
        guard_free(in, cut);
    }
}

Test(mi, store_response_garbage_and_limits)
{
    struct mi_stow_result r;
    const char *bad[] = {
        "{}", "{\"00081199\":[]}", "{\"00081199\":{\"Value\":{}}}",
        "{\"00081199\":{\"Value\":[1]}}",
        "{\"00081199\":{\"Value\":[{}]}}", /* no SOP Instance UID */
        "{\"00081198\":{\"Value\":[{\"00081155\":{\"Value\":[\"1\"]},\"00081197\":{\"Value\":[70000]}}]}}",
        "{\"00081198\":{\"Value\":[{\"00081155\":{\"Value\":[\"1\"]},\"00081197\":{\"Value\":[1.5]}}]}}",
        "{\"00081198\":{\"Value\":[{\"00081155\":{\"Value\":[7]}}]}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_lt(mi_parse_stow_response((const uint8_t *)bad[i], strlen(bad[i]), &r), 0,
                     "%s", bad[i]);
    /* an empty sequence is a valid (empty) answer */
    const char *empty = "{\"00081199\":{\"vr\":\"SQ\"}}";
    cr_assert_eq(mi_parse_stow_response((const uint8_t *)empty, strlen(empty), &r), 0);
    cr_assert_eq(r.n, 0);
    /* more instances than we keep */
    char big[16384] = "{\"00081199\":{\"Value\":[";
    size_t off = strlen(big);
    for (int i = 0; i <= MI_STOW_MAX_INSTANCES; i++)
        off += (size_t)snprintf(big + off, sizeof(big) - off,
                                "%s{\"00081155\":{\"Value\":[\"1.%d\"]}}", i ? "," : "", i);
    off += (size_t)snprintf(big + off, sizeof(big) - off, "]}}");
    cr_assert_eq(mi_parse_stow_response((const uint8_t *)big, off, &r), ERR_LIMIT);
}

Test(ddb, attribute_value_builders_and_readers_check_types)
{
    cJSON *item = cJSON_CreateObject();
    cr_assert_eq(ddb_add_s(item, "state", "STORED"), 0);
    cr_assert_eq(ddb_add_n(item, "bytes", 525466), 0);
    cr_assert_eq(ddb_add_n(item, "neg", -3), 0);
    cr_assert_eq(ddb_add_bool(item, "is_primary", true), 0);
    cr_assert_str_eq(ddb_get_s(item, "state"), "STORED");
    int64_t n = 0;
    cr_assert_eq(ddb_get_n(item, "bytes", &n), 0);
    cr_assert_eq(n, 525466);
    cr_assert_eq(ddb_get_n(item, "neg", &n), 0);
    cr_assert_eq(n, -3);
    bool b = false;
    cr_assert_eq(ddb_get_bool(item, "is_primary", &b), 0);
    cr_assert(b);
    cr_assert_null(ddb_get_s(item, "bytes"));
    cr_assert_null(ddb_get_s(item, "missing"));
    cr_assert_eq(ddb_get_n(item, "missing", &n), ERR_NOTFOUND);
    cr_assert_eq(ddb_get_n(item, "state", &n), ERR_MALFORMED);
    cr_assert_eq(ddb_get_bool(item, "state", &b), ERR_MALFORMED);
    cJSON_Delete(item);
    const char *odd[] = {"{\"x\":{\"N\":\"1.5\"}}", "{\"x\":{\"N\":\"\"}}", "{\"x\":{\"N\":\"-\"}}",
                         "{\"x\":{\"N\":\"1234567890123456789\"}}", "{\"x\":{\"N\":7}}",
                         "{\"x\":\"7\"}"};
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        cJSON *j = cJSON_Parse(odd[i]);
        cr_expect_eq(ddb_get_n(j, "x", &n), ERR_MALFORMED, "%s", odd[i]);
        cJSON_Delete(j);
    }
    cr_assert_null(ddb_get_s(NULL, "x"));
}

static const char k_creds[] =
    "{\"Code\":\"Success\",\"LastUpdated\":\"2026-11-24T02:00:00Z\",\"Type\":\"AWS-HMAC\","
    "\"AccessKeyId\":\"ASIAEXAMPLE\",\"SecretAccessKey\":\"secret/+=\",\"Token\":\"tok==\","
    "\"Expiration\":\"2026-11-24T03:00:00Z\"}";

Test(creds, parses_imds_and_ecs_documents_and_every_cut_fails)
{
    struct aws_creds c;
    const uint8_t *in = guard_copy(k_creds, sizeof(k_creds) - 1);
    cr_assert_eq(creds_parse_json(in, sizeof(k_creds) - 1, &c), 0);
    guard_free(in, sizeof(k_creds) - 1);
    cr_assert_str_eq(c.access_key_id, "ASIAEXAMPLE");
    cr_assert_str_eq(c.secret_access_key, "secret/+=");
    cr_assert_str_eq(c.session_token, "tok==");
    cr_assert_eq(c.expires_at, 1795489200); /* 2026-11-24T03:00:00Z */
    for (size_t cut = 0; cut < sizeof(k_creds) - 1; cut++) {
        in = guard_copy(k_creds, cut);
        cr_assert_lt(creds_parse_json(in, cut, &c), 0, "cut %zu", cut);
        cr_assert_eq(c.secret_access_key[0], '\0');
        guard_free(in, cut);
    }
}

Test(creds, refuses_failures_wrong_types_missing_expiry_and_oversize)
{
    struct aws_creds c;
    const char *bad[] = {
        "{\"Code\":\"Failure\",\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"s\"}",
        "{\"AccessKeyId\":\"a\"}",
        "{\"AccessKeyId\":5,\"SecretAccessKey\":\"s\"}",
        "{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"s\",\"Token\":\"t\"}", /* no Expiration */
        "{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"s\",\"Token\":\"t\",\"Expiration\":\"soon\"}",
        "{\"AccessKeyId\":\"\",\"SecretAccessKey\":\"s\"}", "[]", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_lt(creds_parse_json((const uint8_t *)bad[i], strlen(bad[i]), &c), 0, "%s",
                     bad[i]);
    static char big[8000];
    int n = snprintf(big, sizeof(big), "{\"AccessKeyId\":\"%0200d\",\"SecretAccessKey\":\"s\"}", 1);
    cr_assert_eq(creds_parse_json((const uint8_t *)big, (size_t)n, &c), ERR_LIMIT);
}

Test(creds, iso8601_forms)
{
    int64_t t;
    cr_assert_eq(creds_parse_iso8601("1970-01-01T00:00:00Z", &t), 0);
    cr_assert_eq(t, 0);
    cr_assert_eq(creds_parse_iso8601("2026-11-24T03:00:00.123Z", &t), 0);
    cr_assert_eq(t, 1795489200);
    cr_assert_eq(creds_parse_iso8601("2026-11-24T03:00:00+00:00", &t), 0);
    const char *bad[] = {"2026-11-24T03:00:00", "2026-11-24 03:00Z", "2026-13-24T03:00:00Z",
                         "2026-11-24T03:00:00.Z", "2026-11-24T03:00:00+01:00", "x", "",
                         "2026-11-24T25:00:00Z", "1969-12-31T23:59:59Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(creds_parse_iso8601(bad[i], &t), ERR_MALFORMED, "%s", bad[i]);
}
