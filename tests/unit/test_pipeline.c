/* pipeline: configuration, DynamoDB records, HealthImaging answers and the journal. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forwarder/pipeline_config.h"
#include "forwarder/state.h"

static const char good_cfg[] =
    "{\"type\":\"aws\",\"region\":\"us-east-1\",\"s3\":{\"bucket\":\"my-bucket\"},"
    "\"healthimaging\":{\"datastore_id\":\"0123456789abcdef0123456789abcdef\","
    "\"data_access_role_arn\":\"arn:aws:iam::123456789012:role/hi\"},"
    "\"dynamodb\":{\"table\":\"dicom\"}}";

static int parse(const char *json, struct pipeline_config *c, char *errs, size_t cap)
{
    struct wbuf w;
    wbuf_init(&w, 64 * 1024);
    int rc = pipeline_config_parse(json, c, &w);
    snprintf(errs, cap, "%.*s", (int)w.len, w.p ? (const char *)w.p : "");
    wbuf_cleanup(&w);
    return rc;
}

Test(pipeline_config, minimal_config_gets_the_documented_defaults)
{
    struct pipeline_config c;
    char e[4096];
    cr_assert_eq(parse(good_cfg, &c, e, sizeof e), 0, "%s", e);
    cr_assert_str_eq(c.s3.prefix, "dicom");
    cr_assert_str_eq(c.s3.output_prefix, "import-output");
    cr_assert_eq(c.s3.multipart_threshold, 16u << 20);
    cr_assert_eq(c.s3.part_size, 8u << 20);
    cr_assert_eq(c.hi.batch_max_objects, 5000);
    cr_assert_eq(c.hi.batch_max_bytes, 10737418240ull);
    cr_assert_eq(c.hi.batch_max_age_ms, 60000);
    cr_assert_eq(c.hi.max_concurrent_jobs, 10);
    cr_assert_float_eq(c.hi.start_tps, 1.0, 1e-9);
    cr_assert_eq(c.hi.mode, PIPELINE_MODE_IMPORT);
}

Test(pipeline_config, every_problem_is_reported_with_its_key)
{
    struct pipeline_config c;
    char e[4096];
    cr_assert_eq(parse("{\"type\":\"aws\",\"s3\":{\"bucket\":\"A\",\"part_size\":1,\"sse\":\"x\"},"
                       "\"healthimaging\":{\"mode\":\"fast\",\"batch_max_objects\":5001,"
                       "\"start_tps\":0},\"endpoints\":{\"s3\":\"ftp://x\"},\"typo\":1}",
                       &c, e, sizeof e),
                 ERR_CONFIG);
    const char *want[] = {"backend.region",         "backend.s3.bucket",
                          "backend.s3.part_size",   "backend.s3.sse",
                          "backend.healthimaging.mode", "backend.healthimaging.batch_max_objects",
                          "backend.healthimaging.start_tps", "backend.healthimaging.datastore_id",
                          "backend.dynamodb.table", "backend.endpoints.s3",
                          "backend.typo"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(e, want[i]), "missing %s in:\n%s", want[i], e);
}

Test(pipeline_config, kms_needs_a_key_and_ack_healthimaging_needs_stow)
{
    struct pipeline_config c;
    char e[4096];
    char j[1024];
    snprintf(j, sizeof j, "%.*s,\"s3\":{\"bucket\":\"my-bucket\",\"sse\":\"aws:kms\"}}",
             (int)(strstr(good_cfg, ",\"s3\"") - good_cfg), good_cfg);
    cr_assert_eq(parse(j, &c, e, sizeof e), ERR_CONFIG);
    cr_assert(strstr(e, "kms_key_id"), "%s", e);
    cr_assert_eq(parse(good_cfg, &c, e, sizeof e), 0);
    struct wbuf w;
    wbuf_init(&w, 4096);
    cr_assert_eq(pipeline_config_check_ack(&c, 2, &w), ERR_CONFIG);
    cr_assert_eq(pipeline_config_check_ack(&c, 1, &w), 0);
    c.hi.mode = PIPELINE_MODE_STOW;
    cr_assert_eq(pipeline_config_check_ack(&c, 2, &w), 0);
    wbuf_cleanup(&w);
}

static const char sidecar[] =
    "{\"id\":\"x\",\"sop_class_uid\":\"1.2.840.10008.5.1.4.1.1.2\","
    "\"sop_instance_uid\":\"1.2.3.4\","
    "\"study_instance_uid\":\"1.2.3\",\"series_instance_uid\":\"1.2.3.5\","
    "\"transfer_syntax_uid\":\"1.2.840.10008.1.2.1\",\"calling_ae\":\"CT1\",\"called_ae\":\"CORE\","
    "\"peer\":\"10.0.0.7:5000\",\"cert\":{\"subject_cn\":\"ct1\",\"fingerprint_sha256\":\"ab\","
    "\"client_id\":\"ct-room-1\"},\"bytes\":1234,"
    "\"sha256\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
    "\"received_end\":\"2026-11-24T03:00:00.000Z\"}";

Test(state, sidecar_is_read_and_bad_ones_refused)
{
    struct state_obj o;
    cr_assert_eq(state_obj_from_sidecar(sidecar, strlen(sidecar), &o), 0);
    cr_assert_str_eq(o.sop, "1.2.3.4");
    cr_assert_str_eq(o.cert_cn, "ct1");
    cr_assert_eq(o.bytes, 1234);
    const char *bad[] = {"{}", "[", "{\"sop_instance_uid\":\"1.2\"}",
                         ("{\"sop_instance_uid\":\"1.x\",\"study_instance_uid\":\"1\","
                          "\"series_instance_uid\":\"1\",\"bytes\":1,\"sha256\":\"00\"}")};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(state_obj_from_sidecar(bad[i], strlen(bad[i]), &o), ERR_MALFORMED);
    /* every cut of a valid sidecar is refused, never read past */
    for (size_t n = 0; n < strlen(sidecar) - 1; n++)
        cr_assert_eq(state_obj_from_sidecar(sidecar, n, &o), ERR_MALFORMED, "cut at %zu", n);
}

static char *text(cJSON *j)
{
    cr_assert_not_null(j);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

Test(state, received_is_a_conditional_put_that_lets_in_only_new_or_own_replays)
{
    struct state_obj o;
    cr_assert_eq(state_obj_from_sidecar(sidecar, strlen(sidecar), &o), 0);
    snprintf(o.batch, sizeof o.batch, "b-20261124T030000Z-0123abcd");
    snprintf(o.s3_key, sizeof o.s3_key, "dicom/%s/1.2.3.4.dcm", o.batch);
    /* the first claim: only a new item */
    char *s = text(state_req_received("t", &o, STATE_CLAIM_NEW, "2026-11-24T03:00:01.000Z"));
    cr_assert(strstr(s, "\"ConditionExpression\":\"attribute_not_exists(pk)\""), "%s", s);
    cr_assert_null(strstr(s, "ExpressionAttributeValues"), "%s", s);
    free(s);
    s = text(state_req_received("t", &o, STATE_CLAIM_TAKEOVER, "2026-11-24T03:00:01.000Z"));
    cr_assert(strstr(s, "\"pk\":{\"S\":\"INSTANCE#1.2.3.4\"}"), "%s", s);
    cr_assert(strstr(s, "SHA256#0123456789abcdef"), "%s", s);
    /* new; or this batch's own item (a replay); or one a torn copy gave up */
    cr_assert(strstr(s, "\"ConditionExpression\":\"attribute_not_exists(pk) OR ((#b = :b OR #b = "
                        ":torn) AND #r = :one)\""), "%s", s);
    cr_assert(strstr(s, "\":torn\":{\"S\":\"TORN\"}"), "%s", s);
    cr_assert(strstr(s, "\"state_rank\":{\"N\":\"1\"}"), "%s", s);
    cr_assert(strstr(s, "\"cert_cn\":{\"S\":\"ct1\"}"), "%s", s);
    cr_assert_null(strstr(s, "Patient"), "%s", s);
    free(s);
    s = text(state_req_received("t", &o, STATE_CLAIM_REDRIVE, "2026-11-24T03:00:01.000Z"));
    cr_assert(strstr(s, "FAILED"), "%s", s);
    free(s);
    o.batch[0] = '\0';
    cr_assert_null(state_req_received("t", &o, STATE_CLAIM_NEW, "now"));
}

Test(state, a_torn_copy_gives_up_only_its_own_received_item)
{
    struct state_obj o;
    cr_assert_eq(state_obj_from_sidecar(sidecar, strlen(sidecar), &o), 0);
    snprintf(o.batch, sizeof o.batch, "b-1");
    char *s = text(state_req_torn("t", &o, "now"));
    cr_assert(strstr(s, "\"batch_id\""), "%s", s);
    cr_assert(strstr(s, "{\"S\":\"TORN\"}"), "%s", s);
    cr_assert(strstr(s, "{\"S\":\"b-1\"}"), "%s", s);
    cr_assert(strstr(s, "\"ConditionExpression\":\"#a0 = :v2 AND #a3 = :v4\""), "%s", s);
    cr_assert(strstr(s, "\":v2\":{\"S\":\"b-1\"}"), "%s", s);
    cr_assert(strstr(s, "\":v4\":{\"N\":\"1\"}"), "%s", s);
    cr_assert(strstr(s, "\"#a3\":\"state_rank\""), "%s", s);
    free(s);
    o.batch[0] = '\0';
    cr_assert_null(state_req_torn("t", &o, "now"));
}

Test(state, advance_never_goes_back)
{
    struct state_extra x = {.job_id = "j1", .image_set_id = "is1", .is_primary = 0};
    char *s = text(state_req_advance("t", "1.2", "ab", STATE_IMPORTED, &x, "now"));
    cr_assert(strstr(s, "attribute_exists(pk) AND #a1 < :v1"), "%s", s);
    cr_assert(strstr(s, "\":v1\":{\"N\":\"4\"}"), "%s", s);
    cr_assert(strstr(s, "{\"BOOL\":false}"), "%s", s);
    free(s);
    /* FAILED: only from below IMPORTED (an imported object never fails afterwards) */
    struct state_extra f = {.is_primary = -1, .error_type = "E", .error_message = "m"};
    s = text(state_req_advance("t", "1.2", "ab", STATE_FAILED, &f, "now"));
    cr_assert(strstr(s, "\":v1\":{\"N\":\"5\"}"), "%s", s);
    const char *c = strstr(s, "\"ConditionExpression\":\"attribute_exists(pk) AND #a1 < :v");
    cr_assert(c, "%s", s);
    char ph[16];
    cr_assert_eq(sscanf(c + strlen("\"ConditionExpression\":\"attribute_exists(pk) AND #a1 < "),
                        "%15[^\"]", ph), 1);
    char want[40];
    snprintf(want, sizeof want, "\"%s\":{\"N\":\"4\"}", ph);
    cr_assert(strstr(s, want), "%s (%s)", s, want);
    free(s);
}

Test(state, redrive_takes_only_a_failed_item_back_and_clears_its_error)
{
    char *s = text(state_req_redrive("t", "1.2", "ab", "b-1", "now"));
    cr_assert(strstr(s, " REMOVE #a"), "%s", s);
    cr_assert(strstr(s, "\"error_type\""), "%s", s);
    cr_assert(strstr(s, "\"S\":\"FAILED\""), "%s", s);
    cr_assert(strstr(s, "\"redrive_batch\""), "%s", s);
    cr_assert(strstr(s, "\"S\":\"b-1\""), "%s", s);
    /* FAILED, or STORED by this same re-drive (a replay): never another re-drive's object */
    cr_assert(strstr(s, "\"ConditionExpression\":\"#a0 = :v"), "%s", s);
    cr_assert(strstr(s, " OR (#a0 = :v"), "%s", s);
    free(s);
    cr_assert_null(state_req_redrive("t", "1.2", "ab", "", "now"));
}

Test(state, job_item_moves_forward_only_and_final_states_stay)
{
    struct state_job_rec j = {.batch = "b-20261124T030000Z-0123abcd", .job_id = "j1",
                              .datastore_id = "d", .objects = 3, .imported = 2, .failed = 1};
    char *s = text(state_req_job("t", &j, STATE_JOB_SUBMITTED, "now"));
    cr_assert(strstr(s, "\"pk\":{\"S\":\"JOB#b-20261124T030000Z-0123abcd\"}"), "%s", s);
    cr_assert(strstr(s, "\"sk\":{\"S\":\"JOB\"}"), "%s", s);
    cr_assert(strstr(s, "<= :v1"), "%s", s);
    cr_assert_null(strstr(s, "imported"), "%s", s);
    free(s);
    s = text(state_req_job("t", &j, STATE_JOB_COMPLETED, "now"));
    cr_assert(strstr(s, "< :v1"), "%s", s);
    cr_assert(strstr(s, "imported"), "%s", s);
    free(s);
}

Test(state, job_answers_are_parsed_and_checked)
{
    char id[80];
    const char ok[] = "{\"jobId\":\"abc123\",\"jobStatus\":\"SUBMITTED\"}";
    cr_assert_eq(state_parse_start_job(ok, strlen(ok), id, sizeof id), 0);
    cr_assert_str_eq(id, "abc123");
    const char bad[] = "{\"jobId\":\"../x\"}";
    cr_assert_eq(state_parse_start_job(bad, strlen(bad), id, sizeof id), ERR_MALFORMED);
    struct state_job_info ji;
    const char g[] = "{\"jobProperties\":{\"jobStatus\":\"COMPLETED\",\"message\":\"m\"}}";
    cr_assert_eq(state_parse_get_job(g, strlen(g), &ji), 0);
    cr_assert_eq(ji.status, STATE_JOB_COMPLETED);
    const char g2[] = "{\"jobProperties\":{\"jobStatus\":\"BOGUS\"}}";
    cr_assert_eq(state_parse_get_job(g2, strlen(g2), &ji), ERR_MALFORMED);
}

Test(state, ndjson_lines_name_the_object_by_its_file)
{
    struct state_result r;
    const char s[] = "{\"inputFile\":\"dicom/b-1/1.2.3.dcm\",\"importResponse\":"
                     "{\"imageSetId\":\"is9\",\"isPrimary\":false}}";
    cr_assert_eq(state_parse_result_line(s, strlen(s), true, &r), 0);
    cr_assert_str_eq(r.sop, "1.2.3");
    cr_assert_str_eq(r.image_set_id, "is9");
    cr_assert_eq(r.is_primary, 0);
    const char f[] = "{\"inputFile\":\"s3://b/dicom/b-1/1.2.4.dcm\",\"exception\":"
                     "{\"exceptionType\":\"ValidationException\",\"message\":\"bad\"}}";
    cr_assert_eq(state_parse_result_line(f, strlen(f), false, &r), 0);
    cr_assert_str_eq(r.sop, "1.2.4");
    cr_assert_str_eq(r.error_type, "ValidationException");
    cr_assert_str_eq(r.error_message, "bad");
    const char *bad[] = {"{\"inputFile\":\"x.txt\"}", "{\"inputFile\":\"a/../.dcm\"}", "[]",
                         "{\"inputFile\":\"/1.2.3.x.dcm\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(state_parse_result_line(bad[i], strlen(bad[i]), true, &r), ERR_MALFORMED,
                     "%s", bad[i]);
}

Test(state, stow_response_per_instance)
{
    const char b[] = "{\"00081199\":{\"vr\":\"SQ\",\"Value\":[{\"00081155\":{\"vr\":\"UI\","
                     "\"Value\":[\"1.2.3\"]}}]},\"00081198\":{\"vr\":\"SQ\",\"Value\":[{"
                     "\"00081155\":{\"vr\":\"UI\",\"Value\":[\"1.2.4\"]},\"00081197\":{\"vr\":"
                     "\"US\",\"Value\":[272]}}]}}";
    uint16_t why = 0;
    cr_assert_eq(state_parse_stow(b, strlen(b), "1.2.3", &why), 1);
    cr_assert_eq(state_parse_stow(b, strlen(b), "1.2.4", &why), 0);
    cr_assert_eq(why, 272);
    cr_assert_eq(state_parse_stow(b, strlen(b), "1.2.5", &why), ERR_NOTFOUND);
    cr_assert_eq(state_parse_stow("x", 1, "1", &why), ERR_MALFORMED);
}

