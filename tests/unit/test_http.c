#define _GNU_SOURCE /* strcasestr */
/* http + creds on a real libuv loop against a scripted HTTP server running on the same loop
 * (127.0.0.1, port picked by the kernel): retries with backoff on 5xx / throttling / network
 * errors, no retry on other 4xx, response cap, timeouts, file-range bodies, signing headers,
 * cancellation on close, the ECS credentials path with refresh before expiry; and the DynamoDB
 * and HealthImaging clients' requests and their handling of odd answers (condition failure,
 * STOW-RS 409 store response). The S3 client: test_s3.c. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "forwarder/aws/creds.h"
#include "forwarder/aws/http.h"
#include "forwarder/aws/sigv4.h"
#include "http_script.h"

/* ---- client side ------------------------------------------------------------------------- */

struct outcome {
    bool done;
    struct http_result res;
    char body[256];
    size_t body_len;
};

static void on_done(void *arg, const struct http_resp *resp)
{
    struct outcome *o = arg;
    o->done = true;
    o->res = resp->res;
    o->body_len = resp->body_len;
    snprintf(o->body, sizeof(o->body), "%.*s", (int)(resp->body_len < 255 ? resp->body_len : 255),
             resp->body ? (const char *)resp->body : "");
}

#include "http_fixture.h"

static void send_get(struct fixture *f, struct outcome *o)
{
    struct http_req *r;
    cr_assert_eq(http_req_new("GET", f->url, &r), 0);
    cr_assert_eq(http_send(f->http, r, on_done, o), 0);
    cr_assert(!o->done, "callback ran inside http_send");
    fx_run_until(f, &o->done);
}

Test(http, retries_5xx_then_succeeds)
{
    static const struct hs_canned s[] = {{503, NULL, "busy"}, {500, NULL, NULL}, {200, NULL, "ok"}};
    struct fixture f;
    fx_start(&f, s, 3, 5);
    struct outcome o = {0};
    send_get(&f, &o);
    cr_assert_eq(o.res.err, 0);
    cr_assert_eq(o.res.attempts, 3);
    cr_assert_str_eq(o.body, "ok");
    fx_stop(&f);
}

Test(http, gives_up_after_the_attempts_on_5xx)
{
    static const struct hs_canned s[] = {{503, NULL, "<Error><Code>SlowDown</Code></Error>"}};
    struct fixture f;
    fx_start(&f, s, 1, 3);
    struct outcome o = {0};
    send_get(&f, &o);
    cr_assert_eq(o.res.err, HTTP_ERR_THROTTLED);
    cr_assert_eq(o.res.attempts, 3);
    cr_assert_eq(o.res.status, 503);
    cr_assert_str_eq(o.res.error_code, "SlowDown");
    fx_stop(&f);
}

Test(http, throttling_400_is_retried_by_error_type)
{
    static const struct hs_canned s[] = {
        {400, "x-amzn-ErrorType: ThrottlingException:http://internal/\r\n", "{}"},
        {400, NULL, "{\"__type\":\"com.amazonaws#ProvisionedThroughputExceededException\"}"},
        {200, NULL, "{}"}};
    struct fixture f;
    fx_start(&f, s, 3, 5);
    struct outcome o = {0};
    send_get(&f, &o);
    cr_assert_eq(o.res.err, 0);
    cr_assert_eq(o.res.attempts, 3);
    fx_stop(&f);
}

Test(http, other_4xx_fail_at_once_with_the_aws_code)
{
    static const struct hs_canned s[] = {
        {400, "x-amzn-ErrorType: ValidationException:http://internal/\r\nx-amzn-RequestId: r-1\r\n",
         "{\"message\":\"bad input\"}"}};
    struct fixture f;
    fx_start(&f, s, 1, 5);
    struct outcome o = {0};
    send_get(&f, &o);
    cr_assert_eq(o.res.err, HTTP_ERR_STATUS);
    cr_assert_eq(o.res.attempts, 1);
    cr_assert_str_eq(o.res.error_code, "ValidationException");
    cr_assert_str_eq(o.res.message, "bad input");
    cr_assert_str_eq(o.res.request_id, "r-1");
    cr_assert_eq(f.srv.served, 1);
    fx_stop(&f);
}

Test(http, conditional_check_failed_is_distinct)
{
    static const struct hs_canned s[] = {
        {400, NULL,
         "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException\"}"}};
    struct fixture f;
    fx_start(&f, s, 1, 5);
    struct outcome o = {0};
    send_get(&f, &o);
    cr_assert_eq(o.res.err, HTTP_ERR_CONDITION);
    cr_assert_eq(o.res.attempts, 1);
    fx_stop(&f);
}

Test(http, response_over_the_cap_fails_without_retry)
{
    static char big[5000];
    memset(big, 'a', sizeof(big) - 1);
    static const struct hs_canned s[] = {{200, NULL, big}};
    struct fixture f;
    fx_start(&f, s, 1, 5);
    struct outcome o = {0};
    struct http_req *r;
    cr_assert_eq(http_req_new("GET", f.url, &r), 0);
    http_req_set_response_cap(r, 100);
    cr_assert_eq(http_send(f.http, r, on_done, &o), 0);
    fx_run_until(&f, &o.done);
    cr_assert_eq(o.res.err, HTTP_ERR_TOO_BIG);
    cr_assert_eq(o.res.attempts, 1);
    fx_stop(&f);
}

Test(http, a_silent_server_times_out_and_is_retried)
{
    static const struct hs_canned s[] = {{0, NULL, NULL}, {-1, NULL, NULL}, {200, NULL, "late"}};
    struct fixture f;
    fx_start(&f, s, 3, 3);
    struct outcome o = {0};
    struct http_req *r;
    cr_assert_eq(http_req_new("GET", f.url, &r), 0);
    http_req_set_timeouts(r, 1000, 300);
    cr_assert_eq(http_send(f.http, r, on_done, &o), 0);
    fx_run_until(&f, &o.done);
    cr_assert_eq(o.res.err, 0, "%s", o.res.message);
    cr_assert_eq(o.res.attempts, 3);
    cr_assert_str_eq(o.body, "late");
    fx_stop(&f);
}

Test(http, connection_refused_is_a_network_error_after_retries)
{
    static const struct hs_canned s[] = {{200, NULL, NULL}};
    struct fixture f;
    fx_start(&f, s, 1, 2);
    uv_close((uv_handle_t *)&f.srv.listener, NULL);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    struct outcome o = {0};
    send_get(&f, &o);
    cr_assert_eq(o.res.err, HTTP_ERR_NETWORK);
    cr_assert_eq(o.res.attempts, 2);
    fx_stop(&f);
}

Test(http, signed_put_streams_a_file_range_between_memory_segments)
{
    static const struct hs_canned s[] = {{200, "ETag: \"e\"\r\n", NULL}};
    struct fixture f;
    fx_start(&f, s, 1, 1);
    char *path = fx_temp_file("0123456789abcdef", 16);
    setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
    setenv("AWS_SESSION_TOKEN", "session-token", 1);
    struct creds_provider *cp;
    cr_assert_eq(creds_provider_new(f.http, &cp), 0);
    cr_assert_eq(creds_provider_source(cp), CREDS_ENV);
    struct http_req *r;
    cr_assert_eq(http_req_new("PUT", f.url, &r), 0);
    cr_assert_eq(http_req_set_query(r, "uploads"), 0);
    cr_assert_eq(http_req_body_mem(r, "<", 1), 0);
    cr_assert_eq(http_req_body_file(r, path, 4, 6), 0);
    cr_assert_eq(http_req_body_mem(r, ">", 1), 0);
    http_req_sign(r, cp, "us-east-1", "s3", true, HTTP_PAYLOAD_SIGNED);
    struct outcome o = {0};
    cr_assert_eq(http_send(f.http, r, on_done, &o), 0);
    fx_run_until(&f, &o.done);
    cr_assert_eq(o.res.err, 0, "%s", http_err_str(o.res.err));
    cr_assert_eq(f.srv.n_seen, 1);
    cr_assert_eq(f.srv.seen_body_len[0], 8);
    cr_assert_eq(memcmp(f.srv.seen_body[0], "<456789>", 8), 0);
    const char *h = f.srv.seen_head[0];
    cr_assert(strstr(h, "PUT /x?uploads= HTTP/1.1"), "%s", h);
    char hex[65], want[100];
    sigv4_sha256_hex("<456789>", 8, hex);
    snprintf(want, sizeof(want), "X-Amz-Content-Sha256: %s", hex);
    cr_assert(strstr(h, want), "%s", h);
    cr_assert(strstr(h, "X-Amz-Security-Token: session-token"), "%s", h);
    cr_assert(strstr(h, "Authorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/"), "%s", h);
    cr_assert(strstr(h, "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token"),
              "%s", h);
    cr_assert_null(strcasestr(h, "Expect:"), "%s", h);
    creds_provider_close(cp);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    unlink(path);
    free(path);
    fx_stop(&f);
}

Test(http, a_body_file_shorter_than_declared_fails_without_retry)
{
    static const struct hs_canned s[] = {{200, NULL, NULL}};
    struct fixture f;
    fx_start(&f, s, 1, 4);
    char *path = fx_temp_file("abc", 3);
    struct http_req *r;
    cr_assert_eq(http_req_new("PUT", f.url, &r), 0);
    cr_assert_eq(http_req_body_file(r, path, 0, 100), 0);
    struct outcome o = {0};
    cr_assert_eq(http_send(f.http, r, on_done, &o), 0);
    fx_run_until(&f, &o.done);
    cr_assert_eq(o.res.err, ERR_TRUNCATED, "%s", http_err_str(o.res.err));
    cr_assert_eq(o.res.attempts, 1);
    unlink(path);
    free(path);
    fx_stop(&f);
}

Test(http, close_cancels_requests_in_flight_and_leaves_the_loop_empty)
{
    static const struct hs_canned s[] = {{0, NULL, NULL}};
    struct fixture f;
    fx_start(&f, s, 1, 3);
    struct outcome o1 = {0}, o2 = {0};
    struct http_req *r;
    cr_assert_eq(http_req_new("GET", f.url, &r), 0);
    cr_assert_eq(http_send(f.http, r, on_done, &o1), 0);
    cr_assert_eq(http_req_new("GET", f.url, &r), 0);
    cr_assert_eq(http_send(f.http, r, on_done, &o2), 0);
    for (int i = 0; i < 50 && f.srv.served < 2; i++)
        uv_run(&f.loop, UV_RUN_ONCE);
    cr_assert_eq(http_client_pending(f.http), 2);
    http_client_close(f.http, fx_on_closed, &f.closed);
    f.http = NULL;
    cr_assert(o1.done && o2.done);
    cr_assert_eq(o1.res.err, HTTP_ERR_CANCELED);
    cr_assert_eq(o2.res.err, HTTP_ERR_CANCELED);
    fx_stop(&f);
}

Test(http, bad_urls_and_headers_are_refused)
{
    struct http_req *r;
    cr_assert_eq(http_req_new("GET", "no-scheme", &r), ERR_MALFORMED);
    cr_assert_eq(http_req_new("GET", "http://h/x?q=1", &r), ERR_MALFORMED);
    cr_assert_eq(http_req_new("GET", "http:///x", &r), ERR_MALFORMED);
    cr_assert_eq(http_req_new("GET", "http://user@h/x", &r), ERR_MALFORMED);
    cr_assert_eq(http_req_new("GET", "http://h/x", &r), 0);
    cr_assert_eq(http_req_add_header(r, "Bad Name", "v"), ERR_MALFORMED);
    cr_assert_eq(http_req_add_header(r, "X", "a\r\nInjected: 1"), ERR_MALFORMED);
    cr_assert_eq(http_req_set_query(r, "a=%zz"), ERR_MALFORMED);
    for (int i = 0; i < 32; i++)
        cr_assert_eq(http_req_add_header(r, "X-N", "v"), 0);
    cr_assert_eq(http_req_add_header(r, "X-N", "v"), ERR_LIMIT);
    http_req_free(r);
}

/* ---- credentials from the ECS endpoint, refreshed before expiry --------------------------- */

struct creds_seen {
    bool done;
    int err;
    char key[160];
};

static void on_creds(void *arg, int err, const struct aws_creds *c)
{
    struct creds_seen *s = arg;
    s->done = true;
    s->err = err;
    if (c)
        snprintf(s->key, sizeof(s->key), "%s", c->access_key_id);
}

Test(creds, ecs_endpoint_with_token_and_refresh_before_expiry)
{
    /* Expiration 301 s ahead: the refresh (5 minutes before) is due about a second later. */
    static char body[512];
    time_t exp = time(NULL) + 301;
    struct tm tm;
    gmtime_r(&exp, &tm);
    char iso[32];
    strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(body, sizeof(body),
             "{\"AccessKeyId\":\"ASIAECS\",\"SecretAccessKey\":\"s\",\"Token\":\"t\","
             "\"Expiration\":\"%s\"}",
             iso);
    static const struct hs_canned s[] = {{500, NULL, NULL}, {200, NULL, body}};
    struct fixture f;
    fx_start(&f, s, 2, 3);
    char host[64];
    snprintf(host, sizeof(host), "127.0.0.1:%d", f.srv.port);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/t", 1);
    setenv("DICOM_CORE_ECS_CREDENTIALS_HOST", host, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "auth-tok", 1);
    struct creds_provider *cp;
    cr_assert_eq(creds_provider_new(f.http, &cp), 0);
    cr_assert_eq(creds_provider_source(cp), CREDS_ECS);
    cr_assert_null(creds_peek(cp));
    struct creds_seen cs = {0};
    cr_assert_eq(creds_get(cp, on_creds, &cs), 0);
    cr_assert(!cs.done);
    fx_run_until(&f, &cs.done);
    cr_assert_eq(cs.err, 0);
    cr_assert_str_eq(cs.key, "ASIAECS");
    cr_assert_not_null(creds_peek(cp));
    cr_assert(strstr(f.srv.seen_head[0], "GET /v2/credentials/t HTTP/1.1"));
    cr_assert(strstr(f.srv.seen_head[0], "Authorization: auth-tok"));
    /* the refresh timer fetches again on its own */
    for (int i = 0; i < 20000 && creds_fetch_count(cp) < 2; i++)
        uv_run(&f.loop, UV_RUN_ONCE);
    cr_assert_geq(creds_fetch_count(cp), 2);
    creds_provider_close(cp);
    unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    unsetenv("DICOM_CORE_ECS_CREDENTIALS_HOST");
    unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    fx_stop(&f);
}

Test(creds, nothing_in_the_chain_is_a_config_error)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct http_client *h;
    cr_assert_eq(http_client_new(&loop, NULL, &h), 0);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    struct creds_provider *cp;
    cr_assert_eq(creds_provider_new(h, &cp), ERR_CONFIG);
    const char *bad_full[] = {"file:///etc/passwd", "http://10.0.0.1/creds",
                              "http://127.0.0.1.evil.example/creds", "http://[::2]/c"};
    for (size_t i = 0; i < sizeof(bad_full) / sizeof(bad_full[0]); i++) {
        setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", bad_full[i], 1);
        cr_expect_eq(creds_provider_new(h, &cp), ERR_CONFIG, "%s", bad_full[i]);
    }
    const char *good_full[] = {"https://creds.example/x", "http://127.0.0.1:8080/c",
                               "http://169.254.170.23/v1/credentials", "http://[::1]:9/c",
                               "http://localhost/c"};
    for (size_t i = 0; i < sizeof(good_full) / sizeof(good_full[0]); i++) {
        setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", good_full[i], 1);
        cr_expect_eq(creds_provider_new(h, &cp), 0, "%s", good_full[i]);
        cr_assert_eq(creds_provider_source(cp), CREDS_ECS);
        creds_provider_close(cp);
    }
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    unsetenv("AWS_EC2_METADATA_DISABLED");
    bool closed = false;
    http_client_close(h, fx_on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert(closed);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

/* ---- S3, DynamoDB and HealthImaging clients over the scripted server ---------------------- */

#include "forwarder/aws/ddb.h"
#include "forwarder/aws/mi.h"


struct ddb_outcome {
    bool done;
    int err;
    char state[32];
};

static void on_ddb(void *arg, const struct http_result *res, const cJSON *out)
{
    struct ddb_outcome *o = arg;
    o->done = true;
    o->err = res->err;
    const char *st = ddb_get_s(out, "state");
    snprintf(o->state, sizeof(o->state), "%s", st ? st : "");
}

Test(ddb, condition_failure_is_distinct_and_carries_the_old_item)
{
    static const struct hs_canned s[] = {
        {400, NULL,
         "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException\","
         "\"message\":\"The conditional request failed\",\"Item\":{\"state\":{\"S\":\"IMPORTED\"}}}"}};
    struct fixture f;
    fx_start(&f, s, 1, 3);
    struct creds_provider *cp = fx_env_provider(&f);
    char ep[64];
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", f.srv.port);
    struct ddb_opts o = {.region = "us-east-1", .endpoint = ep};
    struct ddb_client *d;
    cr_assert_eq(ddb_client_new(f.http, cp, &o, &d), 0);
    cJSON *item = cJSON_CreateObject();
    cr_assert_eq(ddb_add_s(item, "pk", "INSTANCE#1"), 0);
    struct ddb_outcome out = {0};
    cr_assert_eq(ddb_put_item(d, "t", item, "attribute_not_exists(pk)", NULL, NULL, on_ddb, &out),
                 0);
    cJSON_Delete(item);
    fx_run_until(&f, &out.done);
    cr_assert_eq(out.err, HTTP_ERR_CONDITION);
    cr_assert_str_eq(out.state, "IMPORTED");
    cr_assert_eq(f.srv.served, 1, "a failed condition must not be retried");
    const char *h = f.srv.seen_head[0];
    cr_assert(strstr(h, "X-Amz-Target: DynamoDB_20120810.PutItem"), "%s", h);
    cr_assert(strstr(h, "Content-Type: application/x-amz-json-1.0"), "%s", h);
    cr_assert(strstr(f.srv.seen_body[0], "\"ConditionExpression\":\"attribute_not_exists(pk)\""));
    creds_provider_close(cp);
    ddb_client_free(d);
    fx_stop(&f);
}

struct stow_outcome {
    bool done;
    int err;
    size_t n;
    bool stored0;
};

static void on_stow(void *arg, const struct http_result *res, const struct mi_stow_result *r)
{
    struct stow_outcome *o = arg;
    o->done = true;
    o->err = res->err;
    o->n = r ? r->n : 0;
    o->stored0 = r && r->n && r->inst[0].stored;
}

Test(mi, stow_streams_a_multipart_related_body_and_reads_a_409_store_response)
{
    static const struct hs_canned s[] = {
        {409, "Content-Type: application/dicom+json\r\n",
         "{\"00081198\":{\"vr\":\"SQ\",\"Value\":[{\"00081155\":{\"vr\":\"UI\",\"Value\":[\"1.2.3\"]},"
         "\"00081197\":{\"vr\":\"US\",\"Value\":[272]}}]}}"}};
    struct fixture f;
    fx_start(&f, s, 1, 3);
    struct creds_provider *cp = fx_env_provider(&f);
    char ep[64];
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", f.srv.port);
    struct mi_opts o = {.region = "us-east-1", .endpoint = ep, .dicom_endpoint = ep};
    struct mi_client *m;
    cr_assert_eq(mi_client_new(f.http, cp, &o, &m), 0);
    char *path = fx_temp_file("PREAMBLE+DICM", 13);
    struct stow_outcome out = {0};
    cr_assert_eq(mi_store_dicom(m, "ds1", NULL, path, 0, 13, on_stow, &out), 0);
    fx_run_until(&f, &out.done);
    cr_assert_eq(out.err, HTTP_ERR_STATUS);
    cr_assert_eq(out.n, 1);
    cr_assert(!out.stored0);
    cr_assert_eq(f.srv.served, 1);
    const char *h = f.srv.seen_head[0];
    cr_assert(strstr(h, "POST /datastore/ds1/studies HTTP/1.1"), "%s", h);
    const char *ct = strstr(h, "Content-Type: multipart/related; type=\"application/dicom\"; "
                               "boundary=");
    cr_assert(ct, "%s", h);
    char boundary[64];
    cr_assert_eq(sscanf(ct, "Content-Type: multipart/related; type=\"application/dicom\"; "
                            "boundary=%63[^\r]",
                        boundary),
                 1);
    char want[256];
    int n = snprintf(want, sizeof(want),
                     "--%s\r\nContent-Type: application/dicom\r\n\r\nPREAMBLE+DICM\r\n--%s--\r\n",
                     boundary, boundary);
    cr_assert_eq(f.srv.seen_body_len[0], (size_t)n);
    cr_assert_eq(memcmp(f.srv.seen_body[0], want, (size_t)n), 0);
    cr_assert(strstr(h, "Authorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/"), "%s", h);
    cr_assert(strstr(h, "/medical-imaging/aws4_request"), "%s", h);
    creds_provider_close(cp);
    mi_client_free(m);
    unlink(path);
    free(path);
    fx_stop(&f);
}

Test(creds, a_request_waits_out_a_metadata_endpoint_failure)
{
    static char cbody[512];
    time_t exp = time(NULL) + 3600;
    struct tm tm;
    gmtime_r(&exp, &tm);
    char iso[32];
    strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(cbody, sizeof(cbody),
             "{\"AccessKeyId\":\"ASIAX\",\"SecretAccessKey\":\"s\",\"Token\":\"t\","
             "\"Expiration\":\"%s\"}",
             iso);
    /* the credentials fetch (2 attempts) fails twice, the request backs off, fetches again */
    static const struct hs_canned s[] = {
        {500, NULL, NULL}, {500, NULL, NULL}, {200, NULL, cbody}, {200, NULL, "ok"}};
    struct fixture f;
    fx_start(&f, s, 4, 4);
    char host[64];
    snprintf(host, sizeof(host), "127.0.0.1:%d", f.srv.port);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/c", 1);
    setenv("DICOM_CORE_ECS_CREDENTIALS_HOST", host, 1);
    struct creds_provider *cp;
    cr_assert_eq(creds_provider_new(f.http, &cp), 0);
    struct http_req *r;
    cr_assert_eq(http_req_new("GET", f.url, &r), 0);
    http_req_sign(r, cp, "us-east-1", "execute-api", false, HTTP_PAYLOAD_SIGNED);
    struct outcome o = {0};
    cr_assert_eq(http_send(f.http, r, on_done, &o), 0);
    fx_run_until(&f, &o.done);
    cr_assert_eq(o.res.err, 0, "%s", http_err_str(o.res.err));
    cr_assert_str_eq(o.body, "ok");
    cr_assert(strstr(f.srv.seen_head[3], "X-Amz-Security-Token: t"), "%s", f.srv.seen_head[3]);
    creds_provider_close(cp);
    unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    unsetenv("DICOM_CORE_ECS_CREDENTIALS_HOST");
    fx_stop(&f);
}

Test(http, clock_skew_is_learnt_from_the_date_header_and_the_request_retried_once)
{
    static char hdr[128];
    time_t ahead = time(NULL) + 3600;
    struct tm tm;
    gmtime_r(&ahead, &tm);
    strftime(hdr, sizeof(hdr), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    static const struct hs_canned s[] = {
        {403, hdr, "<Error><Code>RequestTimeTooSkewed</Code></Error>"}, {200, NULL, "ok"}};
    struct fixture f;
    fx_start(&f, s, 2, 1); /* one attempt: the skew retry is extra */
    struct creds_provider *cp = fx_env_provider(&f);
    struct http_req *r;
    cr_assert_eq(http_req_new("GET", f.url, &r), 0);
    http_req_sign(r, cp, "us-east-1", "s3", true, HTTP_PAYLOAD_SIGNED);
    struct outcome o = {0};
    cr_assert_eq(http_send(f.http, r, on_done, &o), 0);
    fx_run_until(&f, &o.done);
    cr_assert_eq(o.res.err, 0, "%s %s", http_err_str(o.res.err), o.res.error_code);
    char want[32];
    strftime(want, sizeof(want), "X-Amz-Date: %Y%m%dT%H", &tm);
    cr_assert(strstr(f.srv.seen_head[1], want), "%s", f.srv.seen_head[1]);
    cr_assert_null(strstr(f.srv.seen_head[0], want));
    creds_provider_close(cp);
    fx_stop(&f);
}

Test(http, http_dates)
{
    int64_t t;
    cr_assert_eq(http_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", &t), 0);
    cr_assert_eq(t, 784111777);
    const char *bad[] = {"Sun, 06 Nov 1994 08:49:37 UTC", "Sunday, 06-Nov-94 08:49:37 GMT",
                         "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 36 Nov 1994 08:49:37 GMT",
                         "Sun, 06 Nov 1994 08:49:3x GMT", "", "Sun, 06 Nov 1994 08:49:37 GMTX"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(http_parse_http_date(bad[i], &t), ERR_MALFORMED, "%s", bad[i]);
}
