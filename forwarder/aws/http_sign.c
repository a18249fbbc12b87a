/* http: the headers of one attempt, SigV4-signed (sigv4.h) with a provider's credentials. */
#include "http.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <time.h>

#include "http_int.h"

static struct curl_slist *slist_add(struct curl_slist *l, const char *name, const char *value,
                                    bool *ok)
{
    char line[HTTP_MAX_HEADER_BYTES + 256];
    int n = snprintf(line, sizeof(line), "%s: %s", name, value);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        *ok = false;
        return l;
    }
    struct curl_slist *nl = curl_slist_append(l, line);
    OPENSSL_cleanse(line, (size_t)n); /* may hold a session token */
    if (!nl) {
        *ok = false;
        return l;
    }
    return nl;
}

int http_sign_headers(const struct http_req *r, const struct aws_creds *cr, int64_t skew_s,
                      struct curl_slist **out)
{
    bool ok = true;
    struct curl_slist *l = NULL;
    char amz_date[17] = "";
    struct sigv4_out so;
    const char *payload = r->payload == HTTP_PAYLOAD_UNSIGNED ? SIGV4_UNSIGNED_PAYLOAD
                                                               : r->payload_hex;
    *out = NULL;
    l = slist_add(l, "Host", r->host, &ok);
    for (size_t i = 0; i < r->nh; i++)
        l = slist_add(l, r->hname[i], r->hval[i], &ok);
    if (cr) {
        struct sigv4_header sh[HTTP_MAX_HEADERS + 4];
        size_t n = 0;
        time_t now = time(NULL) + (time_t)skew_s;
        sigv4_amz_date(now, amz_date); /* the header and the signature use the same second */
        sh[n++] = (struct sigv4_header){"host", r->host};
        for (size_t i = 0; i < r->nh; i++)
            sh[n++] = (struct sigv4_header){r->hname[i], r->hval[i]};
        sh[n++] = (struct sigv4_header){"x-amz-date", amz_date};
        if (cr->session_token[0])
            sh[n++] = (struct sigv4_header){"x-amz-security-token", cr->session_token};
        if (r->s3)
            sh[n++] = (struct sigv4_header){"x-amz-content-sha256", payload};
        struct sigv4_request sr = {
            .method = r->method,
            .path = r->path,
            .query = r->query,
            .headers = sh,
            .n_headers = n,
            .payload_hash = payload,
            .region = r->region,
            .service = r->service,
            .s3_path = r->s3,
            .now = now,
        };
        int rc = sigv4_sign(&sr, cr, &so, NULL, NULL);
        if (rc < 0) {
            curl_slist_free_all(l);
            return rc;
        }
        l = slist_add(l, "X-Amz-Date", so.amz_date, &ok);
        if (cr->session_token[0])
            l = slist_add(l, "X-Amz-Security-Token", cr->session_token, &ok);
        if (r->s3)
            l = slist_add(l, "X-Amz-Content-Sha256", payload, &ok);
        l = slist_add(l, "Authorization", so.authorization, &ok);
        OPENSSL_cleanse(&so, sizeof(so));
    }
    l = slist_add(l, "Expect", "", &ok); /* no 100-continue round trip */
    if (!ok) {
        curl_slist_free_all(l);
        return ERR_NOMEM;
    }
    *out = l;
    return 0;
}
