/* SigV4 against the AWS SigV4 test-suite requests (expected values by botocore, see
 * tests/support/gen_sigv4_vectors.py) plus the forwarder's own request shapes. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forwarder/aws/sigv4.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_geq(n, 0);
    rewind(f);
    char *p = malloc((size_t)n + 1);
    cr_assert_not_null(p);
    cr_assert_eq(fread(p, 1, (size_t)n, f), (size_t)n);
    p[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return p;
}

static cJSON *load_vectors(void)
{
    char src[4096];
    snprintf(src, sizeof(src), "%s", __FILE__);
    char path[4200];
    snprintf(path, sizeof(path), "%s/data/sigv4/vectors.json", dirname(src));
    size_t n;
    char *text = slurp(path, &n);
    cJSON *doc = cJSON_ParseWithLength(text, n);
    free(text);
    cr_assert_not_null(doc);
    return doc;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(cJSON_IsString(v), "key %s", k);
    return v->valuestring;
}

static void sign_vector(const cJSON *doc, const cJSON *v, struct sigv4_out *out,
                        struct wbuf *creq, struct wbuf *sts)
{
    struct aws_creds cr = {0};
    snprintf(cr.access_key_id, sizeof(cr.access_key_id), "%s", jstr(doc, "access_key_id"));
    snprintf(cr.secret_access_key, sizeof(cr.secret_access_key), "%s",
             jstr(doc, "secret_access_key"));
    snprintf(cr.session_token, sizeof(cr.session_token), "%s", jstr(v, "token"));
    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(v, "headers");
    struct sigv4_header h[32];
    size_t nh = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, hs)
    {
        cr_assert_lt(nh, 32);
        h[nh].name = cJSON_GetArrayItem(e, 0)->valuestring;
        h[nh].value = cJSON_GetArrayItem(e, 1)->valuestring;
        nh++;
    }
    struct sigv4_request rq = {
        .method = jstr(v, "method"),
        .path = jstr(v, "path"),
        .query = jstr(v, "query"),
        .headers = h,
        .n_headers = nh,
        .payload_hash = jstr(v, "payload_hash"),
        .region = jstr(v, "region"),
        .service = jstr(v, "service"),
        .s3_path = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "s3")),
        .now = (time_t)cJSON_GetObjectItemCaseSensitive(doc, "time_unix")->valuedouble,
    };
    cr_assert_eq(sigv4_sign(&rq, &cr, out, creq, sts), 0, "%s", jstr(v, "name"));
    aws_creds_wipe(&cr);
}

Test(sigv4, matches_botocore_on_every_suite_and_forwarder_vector)
{
    cJSON *doc = load_vectors();
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(doc, "vectors");
    int count = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, vs)
    {
        struct sigv4_out out;
        struct wbuf creq, sts;
        wbuf_init(&creq, 1 << 20);
        wbuf_init(&sts, 1 << 20);
        sign_vector(doc, v, &out, &creq, &sts);
        wbuf_u8(&creq, 0);
        wbuf_u8(&sts, 0);
        const char *name = jstr(v, "name");
        cr_expect_str_eq((const char *)creq.p, jstr(v, "creq"), "%s: canonical request", name);
        cr_expect_str_eq((const char *)sts.p, jstr(v, "sts"), "%s: string to sign", name);
        cr_expect_str_eq(out.authorization, jstr(v, "authorization"), "%s: authorization", name);
        cr_expect_str_eq(out.amz_date, "20150830T123600Z");
        wbuf_cleanup(&creq);
        wbuf_cleanup(&sts);
        count++;
    }
    cr_assert_geq(count, 30);
    cJSON_Delete(doc);
}

Test(sigv4, a_changed_secret_changes_the_signature)
{
    struct aws_creds a = {.access_key_id = "AKID", .secret_access_key = "s1"};
    struct aws_creds b = {.access_key_id = "AKID", .secret_access_key = "s2"};
    struct sigv4_header h[] = {{"Host", "x"}, {"X-Amz-Date", "20150830T123600Z"}};
    struct sigv4_request rq = {"GET", "/", NULL, h, 2, SIGV4_EMPTY_SHA256, "us-east-1", "s3",
                               true, 1440938160};
    struct sigv4_out oa, ob;
    cr_assert_eq(sigv4_sign(&rq, &a, &oa, NULL, NULL), 0);
    cr_assert_eq(sigv4_sign(&rq, &b, &ob, NULL, NULL), 0);
    cr_assert_str_neq(oa.signature, ob.signature);
    cr_assert_eq(strlen(oa.signature), 64);
}

static char *canon(const char *raw, int *rc)
{
    struct wbuf w;
    wbuf_init(&w, 4096);
    *rc = sigv4_canonical_query(raw, &w);
    wbuf_u8(&w, 0);
    return (char *)w.p;
}

Test(sigv4, canonical_query_sorts_gives_valueless_keys_an_equals_and_reencodes)
{
    int rc;
    char *s = canon("uploads", &rc);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(s, "uploads=");
    free(s);
    s = canon("maxResults=5&jobStatus=IN_PROGRESS", &rc);
    cr_assert_str_eq(s, "jobStatus=IN_PROGRESS&maxResults=5");
    free(s);
    s = canon("a=b c&a=%41&z=%2f&&", &rc);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(s, "a=A&a=b%20c&z=%2F");
    free(s);
    s = canon("k=a+b~", &rc);
    cr_assert_str_eq(s, "k=a%2Bb~");
    free(s);
}

Test(sigv4, canonical_query_refuses_bad_percent_escapes)
{
    const char *bad[] = {"a=%", "a=%4", "a=%zz", "%g1=x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc;
        char *s = canon(bad[i], &rc);
        cr_expect_eq(rc, ERR_MALFORMED, "%s", bad[i]);
        free(s);
    }
}

Test(sigv4, canonical_query_caps_pair_count)
{
    char raw[64 * 4 + 16] = "";
    size_t off = 0;
    for (int i = 0; i < 65; i++)
        off += (size_t)snprintf(raw + off, sizeof(raw) - off, "a%d&", i % 10);
    int rc;
    char *s = canon(raw, &rc);
    cr_assert_eq(rc, ERR_LIMIT);
    free(s);
}

Test(sigv4, uri_encode_keeps_unreserved_and_optionally_slash)
{
    struct wbuf w;
    wbuf_init(&w, 256);
    sigv4_uri_encode(&w, "a b/c+d~é", 10, true);
    wbuf_u8(&w, 0);
    cr_assert_str_eq((const char *)w.p, "a%20b/c%2Bd~%C3%A9");
    wbuf_reset(&w);
    sigv4_uri_encode(&w, "a/b", 3, false);
    wbuf_u8(&w, 0);
    cr_assert_str_eq((const char *)w.p, "a%2Fb");
    wbuf_cleanup(&w);
}

Test(sigv4, hex_and_base64_of_the_empty_hash)
{
    uint8_t bin[32];
    cr_assert_eq(sigv4_hex_to_bin32(SIGV4_EMPTY_SHA256, bin), 0);
    char b64[45];
    sigv4_base64_32(bin, b64);
    cr_assert_str_eq(b64, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    cr_assert_eq(sigv4_hex_to_bin32("abc", bin), ERR_MALFORMED);
    cr_assert_eq(sigv4_hex_to_bin32(SIGV4_EMPTY_SHA256 "0", bin), ERR_MALFORMED);
    char hex[65];
    sigv4_sha256_hex("", 0, hex);
    cr_assert_str_eq(hex, SIGV4_EMPTY_SHA256);
}

Test(sigv4, oversized_header_name_is_refused)
{
    char name[200];
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    struct sigv4_header h[] = {{name, "v"}};
    struct aws_creds c = {.access_key_id = "A", .secret_access_key = "S"};
    struct sigv4_request rq = {"GET", "/", NULL, h, 1, SIGV4_EMPTY_SHA256, "r", "s", false, 0};
    struct sigv4_out o;
    cr_assert_eq(sigv4_sign(&rq, &c, &o, NULL, NULL), ERR_LIMIT);
}
