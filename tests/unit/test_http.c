#define _GNU_SOURCE /* strcasestr */
/* http + creds on a real libuv loop against a scripted HTTP server running on the same loop
 * (127.0.0.1, port picked by the kernel): retries with backoff on 5xx / throttling / network
 * errors, no retry on other 4xx, response cap, timeouts, file-range bodies, signing headers,
 * cancellation on close, and the ECS credentials path with refresh before expiry. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "forwarder/creds.h"
#include "forwarder/http.h"
#include "forwarder/sigv4.h"

/* ---- scripted server ---------------------------------------------------------------------- */

struct canned {
    int status;         /* 0 = hang (never answer), -1 = close the connection at once */
    const char *headers; /* extra header lines, each ending in \r\n */
    const char *body;
};

#define MAX_SEEN 16
struct server {
    uv_tcp_t listener;
    int port;
    const struct canned *script;
    size_t n_script;
    size_t served;
    char seen_head[MAX_SEEN][4096];
    char *seen_body[MAX_SEEN];
    size_t seen_body_len[MAX_SEEN];
    size_t n_seen;
    int live;
};

struct sconn {
    uv_tcp_t tcp;
    struct server *s;
    char *buf;
    size_t len, cap;
};

static void sconn_closed(uv_handle_t *h)
{
    struct sconn *c = h->data;
    c->s->live--;
    free(c->buf);
    free(c);
}

static void on_write_done(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
    free(w);
}

static void respond(struct sconn *c, const struct canned *k)
{
    if (k->status < 0) {
        uv_close((uv_handle_t *)&c->tcp, sconn_closed);
        return;
    }
    if (k->status == 0)
        return; /* hang */
    const char *body = k->body ? k->body : "";
    size_t bl = strlen(body);
    size_t cap = bl + 1024;
    char *out = malloc(cap);
    int n = snprintf(out, cap, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n", k->status, bl,
                     k->headers ? k->headers : "");
    memcpy(out + n, body, bl);
    uv_write_t *w = malloc(sizeof(*w));
    w->data = out;
    uv_buf_t b = uv_buf_init(out, (unsigned)(n + (int)bl));
    uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_write_done);
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(sz);
    b->len = sz;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    struct sconn *c = st->data;
    if (nread < 0) {
        free(b->base);
        if (!uv_is_closing((uv_handle_t *)st))
            uv_close((uv_handle_t *)st, sconn_closed);
        return;
    }
    if (c->len + (size_t)nread > c->cap) {
        c->cap = (c->len + (size_t)nread) * 2;
        c->buf = realloc(c->buf, c->cap + 1);
    }
    memcpy(c->buf + c->len, b->base, (size_t)nread);
    c->len += (size_t)nread;
    free(b->base);
    for (;;) {
        c->buf[c->len] = '\0';
        char *end = strstr(c->buf, "\r\n\r\n");
        if (!end)
            return;
        size_t head = (size_t)(end - c->buf) + 4;
        size_t clen = 0;
        const char *cl = strcasestr(c->buf, "\r\ncontent-length:");
        if (cl && cl < end)
            clen = strtoul(cl + 17, NULL, 10);
        if (c->len < head + clen)
            return;
        struct server *s = c->s;
        if (s->n_seen < MAX_SEEN) {
            snprintf(s->seen_head[s->n_seen], sizeof(s->seen_head[0]), "%.*s", (int)head, c->buf);
            s->seen_body[s->n_seen] = malloc(clen + 1);
            memcpy(s->seen_body[s->n_seen], c->buf + head, clen);
            s->seen_body_len[s->n_seen] = clen;
            s->n_seen++;
        }
        size_t i = s->served < s->n_script ? s->served : s->n_script - 1;
        s->served++;
        memmove(c->buf, c->buf + head + clen, c->len - head - clen);
        c->len -= head + clen;
        respond(c, &s->script[i]);
        if (s->script[i].status < 0)
            return;
    }
}

static void on_conn(uv_stream_t *l, int status)
{
    cr_assert_eq(status, 0);
    struct server *s = l->data;
    struct sconn *c = calloc(1, sizeof(*c));
    c->s = s;
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    s->live++;
    cr_assert_eq(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void server_start(uv_loop_t *loop, struct server *s, const struct canned *script, size_t n)
{
    memset(s, 0, sizeof(*s));
    s->script = script;
    s->n_script = n;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    cr_assert_eq(uv_tcp_bind(&s->listener, (const struct sockaddr *)&a, 0), 0);
    cr_assert_eq(uv_listen((uv_stream_t *)&s->listener, 16, on_conn), 0);
    struct sockaddr_in b;
    int bl = sizeof(b);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&b, &bl);
    s->port = ntohs(b.sin_port);
    s->live = 1;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    struct server *s = arg;
    if (uv_is_closing(h))
        return;
    if (h == (uv_handle_t *)&s->listener || h->type != UV_TCP)
        uv_close(h, NULL);
    else
        uv_close(h, sconn_closed);
}

static void server_free(struct server *s)
{
    for (size_t i = 0; i < s->n_seen; i++)
        free(s->seen_body[i]);
}

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

struct fixture {
    uv_loop_t loop;
    struct server srv;
    struct http_client *http;
    char url[128];
    bool closed;
};

static void on_closed(void *arg)
{
    *(bool *)arg = true;
}

static void fx_start(struct fixture *f, const struct canned *script, size_t n, unsigned attempts)
{
    memset(f, 0, sizeof(*f));
    cr_assert_eq(uv_loop_init(&f->loop), 0);
    server_start(&f->loop, &f->srv, script, n);
    struct http_opts o;
    http_opts_default(&o);
    o.base_delay_ms = 5;
    o.max_delay_ms = 20;
    o.max_attempts = attempts;
    o.connect_timeout_ms = 2000;
    o.request_timeout_ms = 5000;
    cr_assert_eq(http_client_new(&f->loop, &o, &f->http), 0);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/x", f->srv.port);
}

static void run_until(struct fixture *f, const bool *flag)
{
    for (int i = 0; i < 100000 && !*flag; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    cr_assert(*flag, "loop ran dry before the outcome");
}

static void fx_stop(struct fixture *f)
{
    if (f->http)
        http_client_close(f->http, on_closed, &f->closed);
    run_until(f, &f->closed);
    uv_walk(&f->loop, close_walk, &f->srv);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&f->loop), 0, "handles left on the loop");
    server_free(&f->srv);
}

static void send_get(struct fixture *f, struct outcome *o)
{
    struct http_req *r;
    cr_assert_eq(http_req_new("GET", f->url, &r), 0);
    cr_assert_eq(http_send(f->http, r, on_done, o), 0);
    cr_assert(!o->done, "callback ran inside http_send");
    run_until(f, &o->done);
}

Test(http, retries_5xx_then_succeeds)
{
    static const struct canned s[] = {{503, NULL, "busy"}, {500, NULL, NULL}, {200, NULL, "ok"}};
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
    static const struct canned s[] = {{503, NULL, "<Error><Code>SlowDown</Code></Error>"}};
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
    static const struct canned s[] = {
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
    static const struct canned s[] = {
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
    static const struct canned s[] = {
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
    static const struct canned s[] = {{200, NULL, big}};
    struct fixture f;
    fx_start(&f, s, 1, 5);
    struct outcome o = {0};
    struct http_req *r;
    cr_assert_eq(http_req_new("GET", f.url, &r), 0);
    http_req_set_response_cap(r, 100);
    cr_assert_eq(http_send(f.http, r, on_done, &o), 0);
    run_until(&f, &o.done);
    cr_assert_eq(o.res.err, HTTP_ERR_TOO_BIG);
    cr_assert_eq(o.res.attempts, 1);
    fx_stop(&f);
}

Test(http, a_silent_server_times_out_and_is_retried)
{
    static const struct canned s[] = {{0, NULL, NULL}, {-1, NULL, NULL}, {200, NULL, "late"}};
    struct fixture f;
    fx_start(&f, s, 3, 3);
    struct outcome o = {0};
    struct http_req *r;
    cr_assert_eq(http_req_new("GET", f.url, &r), 0);
    http_req_set_timeouts(r, 1000, 300);
    cr_assert_eq(http_send(f.http, r, on_done, &o), 0);
    run_until(&f, &o.done);
    cr_assert_eq(o.res.err, 0, "%s", o.res.message);
    cr_assert_eq(o.res.attempts, 3);
    cr_assert_str_eq(o.body, "late");
    fx_stop(&f);
}

Test(http, connection_refused_is_a_network_error_after_retries)
{
    static const struct canned s[] = {{200, NULL, NULL}};
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

static char *temp_file(const char *content, size_t n)
{
    char *path = strdup("/tmp/gw-http-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, content, n), (ssize_t)n);
    close(fd);
    return path;
}

Test(http, signed_put_streams_a_file_range_between_memory_segments)
{
    static const struct canned s[] = {{200, "ETag: \"e\"\r\n", NULL}};
    struct fixture f;
    fx_start(&f, s, 1, 1);
    char *path = temp_file("0123456789abcdef", 16);
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
    run_until(&f, &o.done);
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
    static const struct canned s[] = {{200, NULL, NULL}};
    struct fixture f;
    fx_start(&f, s, 1, 4);
    char *path = temp_file("abc", 3);
    struct http_req *r;
    cr_assert_eq(http_req_new("PUT", f.url, &r), 0);
    cr_assert_eq(http_req_body_file(r, path, 0, 100), 0);
    struct outcome o = {0};
    cr_assert_eq(http_send(f.http, r, on_done, &o), 0);
    run_until(&f, &o.done);
    cr_assert_eq(o.res.err, ERR_TRUNCATED, "%s", http_err_str(o.res.err));
    cr_assert_eq(o.res.attempts, 1);
    unlink(path);
    free(path);
    fx_stop(&f);
}

Test(http, close_cancels_requests_in_flight_and_leaves_the_loop_empty)
{
    static const struct canned s[] = {{0, NULL, NULL}};
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
    http_client_close(f.http, on_closed, &f.closed);
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
    static const struct canned s[] = {{500, NULL, NULL}, {200, NULL, body}};
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
    run_until(&f, &cs.done);
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
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "file:///etc/passwd", 1);
    cr_assert_eq(creds_provider_new(h, &cp), ERR_CONFIG);
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    unsetenv("AWS_EC2_METADATA_DISABLED");
    bool closed = false;
    http_client_close(h, on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert(closed);
    cr_assert_eq(uv_loop_close(&loop), 0);
}
