/* http: the pure half of the retry policy: what AWS's error answers say, which failures are
 * worth another attempt, how long to wait, and the server's clock from its Date header. */
#include "http.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <string.h>
#include <time.h>

#include "http_int.h"
#include "xml.h"

const char *http_err_str(int code)
{
    switch (code) {
    case HTTP_ERR_NETWORK: return "network error";
    case HTTP_ERR_STATUS: return "service error";
    case HTTP_ERR_THROTTLED: return "throttled or unavailable";
    case HTTP_ERR_CREDS: return "no credentials";
    case HTTP_ERR_CONDITION: return "condition failed";
    case HTTP_ERR_TOO_BIG: return "response too big";
    case HTTP_ERR_CANCELED: return "canceled";
    case HTTP_ERR_PARSE: return "unexpected response";
    default: return err_str(code);
    }
}

void http_copy(char *dst, size_t sz, const char *src, size_t n)
{
    if (sz == 0)
        return;
    if (n >= sz)
        n = sz - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void http_parse_aws_error(const char *errtype_header, const uint8_t *body, size_t len,
                          char *code, size_t code_sz, char *msg, size_t msg_sz)
{
    code[0] = '\0';
    msg[0] = '\0';
    if (errtype_header && *errtype_header) {
        const char *colon = strchr(errtype_header, ':');
        size_t n = colon ? (size_t)(colon - errtype_header) : strlen(errtype_header);
        http_copy(code, code_sz, errtype_header, n);
    }
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
        i++;
    if (i < len && body[i] == '{') {
        cJSON *j = cJSON_ParseWithLength((const char *)body, len);
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            return;
        }
        if (!code[0]) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "__type");
            if (!cJSON_IsString(t))
                t = cJSON_GetObjectItemCaseSensitive(j, "code");
            if (!cJSON_IsString(t))
                t = cJSON_GetObjectItemCaseSensitive(j, "Code");
            if (cJSON_IsString(t)) {
                const char *s = t->valuestring, *hash = strrchr(s, '#');
                if (hash)
                    s = hash + 1;
                const char *colon = strchr(s, ':');
                http_copy(code, code_sz, s, colon ? (size_t)(colon - s) : strlen(s));
            }
        }
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
        if (!cJSON_IsString(m))
            m = cJSON_GetObjectItemCaseSensitive(j, "Message");
        if (cJSON_IsString(m))
            http_copy(msg, msg_sz, m->valuestring, strlen(m->valuestring));
        cJSON_Delete(j);
    } else if (i < len && body[i] == '<') {
        if (!code[0] && xml_text(body, len, "Code", code, code_sz) < 0)
            code[0] = '\0';
        if (xml_text(body, len, "Message", msg, msg_sz) < 0)
            msg[0] = '\0';
    }
}

static bool code_in(const char *code, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(code, list[i]) == 0)
            return true;
    }
    return false;
}

/* botocore's standard retry mode lists, plus the expired-token codes (we refresh and retry). */
static const char *const g_throttle_codes[] = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
    "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException"};
static const char *const g_transient_codes[] = {"RequestTimeout", "RequestTimeoutException",
                                                "InternalError", "InternalFailure",
                                                "InternalServerError", "ServiceUnavailable"};
static const char *const g_expired_codes[] = {"ExpiredToken", "ExpiredTokenException",
                                              "RequestExpired"};

bool http_is_retryable(int curl_code, long status, const char *error_code)
{
    if (curl_code != CURLE_OK) {
        switch (curl_code) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_WEIRD_SERVER_REPLY:
            return true;
        default:
            return false;
        }
    }
    if (status >= 500 || status == 429)
        return true;
    if (error_code && *error_code &&
        (code_in(error_code, g_throttle_codes, ARRAY_LEN(g_throttle_codes)) ||
         code_in(error_code, g_transient_codes, ARRAY_LEN(g_transient_codes)) ||
         code_in(error_code, g_expired_codes, ARRAY_LEN(g_expired_codes))))
        return true;
    return false;
}

bool http_is_expired_code(const char *code)
{
    return code_in(code, g_expired_codes, ARRAY_LEN(g_expired_codes));
}

uint64_t http_backoff_ceiling_ms(unsigned n, uint64_t base_ms, uint64_t max_ms)
{
    uint64_t cap = base_ms;
    for (unsigned i = 0; i < n && cap < max_ms; i++)
        cap *= 2;
    return cap > max_ms ? max_ms : cap;
}

uint64_t http_backoff_ms(unsigned n, unsigned base_ms, unsigned max_ms, double rnd)
{
    uint64_t cap = http_backoff_ceiling_ms(n, base_ms, max_ms);
    if (rnd < 0 || rnd >= 1)
        rnd = 0;
    return (uint64_t)(rnd * (double)cap);
}

int http_parse_http_date(const char *s, int64_t *out)
{
    /* IMF-fixdate (RFC 9110 5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT" */
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    if (strnlen(s, 30) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
        s[16] != ' ' || s[19] != ':' || s[22] != ':' || strcmp(s + 25, " GMT") != 0)
        return ERR_MALFORMED;
    int v[5];
    static const int at[5][2] = {{5, 2}, {12, 4}, {17, 2}, {20, 2}, {23, 2}};
    for (int k = 0; k < 5; k++) {
        v[k] = 0;
        for (int i = 0; i < at[k][1]; i++) {
            char ch = s[at[k][0] + i];
            if (ch < '0' || ch > '9')
                return ERR_MALFORMED;
            v[k] = v[k] * 10 + (ch - '0');
        }
    }
    int mon = -1;
    for (int m = 0; m < 12; m++) {
        if (memcmp(s + 8, months + 3 * m, 3) == 0)
            mon = m;
    }
    if (mon < 0 || v[0] < 1 || v[0] > 31 || v[1] < 1970 || v[2] > 23 || v[3] > 59 || v[4] > 60)
        return ERR_MALFORMED;
    struct tm tm = {.tm_year = v[1] - 1900, .tm_mon = mon, .tm_mday = v[0], .tm_hour = v[2],
                    .tm_min = v[3], .tm_sec = v[4]};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return ERR_MALFORMED;
    *out = (int64_t)t;
    return 0;
}
