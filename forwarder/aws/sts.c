/* sts: the client and AssumeRole. */
#include "sts.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "creds.h"
#include "sigv4.h"
#include "sts_int.h"
#include "xml.h"

#define STS_ANSWER_MAX (64u * 1024u)
#define STS_POLICY_PLAIN_MAX 2048u

int sts_client_new(struct http_client *http, struct creds_provider *creds,
                   const struct sts_opts *o, struct sts_client **out)
{
    *out = NULL;
    if (!o || !aws_endpoint_valid(o->endpoint))
        return ERR_CONFIG;
    struct sts_client *s = calloc(1, sizeof *s);
    if (!s)
        return ERR_NOMEM;
    int rc = aws_client_init(&s->ac, http, creds, o->region, "sts", false);
    if (rc == 0) {
        s->url = aws_endpoint_dup(o->endpoint, "sts", o->region, "/");
        rc = s->url ? 0 : ERR_NOMEM;
    }
    if (rc < 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void sts_client_free(struct sts_client *s)
{
    if (!s)
        return;
    free(s->url);
    free(s);
}

static bool session_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("+=,.@_-", c) != NULL;
}

void sts_session_name(const char *prefix, const char *text, char out[65])
{
    size_t o = 0;
    for (const char *p = prefix; p && *p && o < 64; p++)
        out[o++] = session_char(*p) ? *p : '_';
    for (const char *p = text; p && *p && o < 64; p++)
        out[o++] = session_char(*p) ? *p : '_';
    while (o < 2)
        out[o++] = '_';
    out[o] = '\0';
}

static bool session_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!session_char(s[i]))
            return false;
    }
    return true;
}

/* The characters AssumeRole accepts in a policy: tab, LF, CR, 0x20-0xFF (as code points). */
static bool policy_valid(const char *p)
{
    size_t chars = 0;
    for (const unsigned char *c = (const unsigned char *)p; *c; c++) {
        if (*c < 0x20 && *c != '\t' && *c != '\n' && *c != '\r')
            return false;
        if ((*c & 0xC0) != 0x80) /* count UTF-8 lead bytes only */
            chars++;
    }
    return chars > 0 && chars <= STS_POLICY_PLAIN_MAX;
}

int sts_parse_assume_role(const uint8_t *p, size_t n, struct aws_creds *c, int *packed_pct,
                          char *arn, size_t arn_cap)
{
    memset(c, 0, sizeof *c);
    *packed_pct = -1;
    if (arn_cap)
        arn[0] = '\0';
    char exp[64], pps[16];
    int rc = xml_text(p, n, "AccessKeyId", c->access_key_id, sizeof c->access_key_id);
    if (rc == 0)
        rc = xml_text(p, n, "SecretAccessKey", c->secret_access_key,
                      sizeof c->secret_access_key);
    if (rc == 0)
        rc = xml_text(p, n, "SessionToken", c->session_token, sizeof c->session_token);
    if (rc == 0)
        rc = xml_text(p, n, "Expiration", exp, sizeof exp);
    if (rc == 0)
        rc = creds_parse_iso8601(exp, &c->expires_at);
    if (rc == 0 && (!c->access_key_id[0] || !c->secret_access_key[0] || !c->session_token[0]))
        rc = ERR_MALFORMED;
    if (rc == 0 && xml_text(p, n, "PackedPolicySize", pps, sizeof pps) == 0) {
        long v = 0;
        bool ok = pps[0] != '\0';
        for (const char *q = pps; *q && ok; q++) {
            ok = *q >= '0' && *q <= '9' && v < 100000;
            v = v * 10 + (*q - '0');
        }
        *packed_pct = ok ? (int)v : -1;
    }
    if (rc == 0 && arn_cap && xml_text(p, n, "Arn", arn, arn_cap) < 0)
        arn[0] = '\0';
    if (rc < 0) {
        aws_creds_wipe(c);
        return rc == ERR_NOTFOUND ? ERR_MALFORMED : rc;
    }
    return 0;
}

struct assume_call {
    struct sts_client *s;
    sts_cb cb;
    void *arg;
};

static void on_assumed(void *arg, const struct http_resp *resp)
{
    struct assume_call *call = arg;
    struct sts_client *s = call->s;
    s->busy--;
    struct http_result res = resp->res;
    struct aws_creds c;
    int packed = -1;
    char arn[256] = "";
    if (res.err == 0) {
        int rc = sts_parse_assume_role(resp->body, resp->body_len, &c, &packed, arn, sizeof arn);
        if (rc < 0) {
            res.err = HTTP_ERR_PARSE;
            snprintf(res.message, sizeof res.message, "AssumeRole answer unreadable (%s)",
                     err_str(rc));
        }
    }
    call->cb(call->arg, &res, res.err == 0 ? &c : NULL, packed, arn);
    if (res.err == 0)
        aws_creds_wipe(&c);
    free(call);
}

static void form(struct wbuf *w, const char *name, const char *value)
{
    if (w->len)
        wbuf_u8(w, '&');
    wbuf_str(w, name);
    wbuf_u8(w, '=');
    sigv4_uri_encode(w, value, strlen(value), false);
}

int sts_assume_role(struct sts_client *s, const struct sts_assume *a, sts_cb cb, void *arg)
{
    unsigned dur = a->duration_s ? a->duration_s : 3600;
    if (!a->role_arn || strncmp(a->role_arn, "arn:", 4) != 0 || strlen(a->role_arn) > 2048 ||
        !a->session_name || !session_valid(a->session_name) || dur < 900 || dur > 43200 ||
        (a->policy && !policy_valid(a->policy)))
        return ERR_MALFORMED;
    struct wbuf body;
    wbuf_init(&body, 16384);
    char num[16];
    snprintf(num, sizeof num, "%u", dur);
    form(&body, "Action", "AssumeRole");
    form(&body, "DurationSeconds", num);
    if (a->policy)
        form(&body, "Policy", a->policy);
    form(&body, "RoleArn", a->role_arn);
    form(&body, "RoleSessionName", a->session_name);
    form(&body, "Version", "2011-06-15");
    struct wbuf url;
    wbuf_init(&url, 4096);
    wbuf_str(&url, s->url);
    struct http_req *r = NULL;
    int rc = body.err;
    if (rc == 0)
        rc = aws_client_req("POST", &url, &r);
    else
        wbuf_cleanup(&url);
    if (rc == 0)
        rc = http_req_add_header(r, "Content-Type",
                                 "application/x-www-form-urlencoded; charset=utf-8");
    if (rc == 0)
        rc = http_req_body_mem(r, body.p, body.len);
    wbuf_cleanup(&body);
    struct assume_call *call = calloc(1, sizeof *call);
    if (call) {
        call->s = s;
        call->cb = cb;
        call->arg = arg;
    }
    if (r)
        http_req_set_sensitive(r); /* the answer holds a secret */
    rc = aws_client_send(&s->ac, r, rc, call, STS_ANSWER_MAX, HTTP_PAYLOAD_SIGNED, on_assumed);
    if (rc == 0)
        s->busy++;
    return rc;
}
