/* creds: the pure parsers of the credentials documents that ECS and IMDS answer with. */
#include "creds.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return ERR_MALFORMED;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int creds_parse_iso8601(const char *s, int64_t *out)
{
    /* YYYY-MM-DDTHH:MM:SS then optional .fraction, then Z or +00:00 */
    if (strnlen(s, 21) < 20)
        return ERR_MALFORMED;
    int y, mo, d, h, mi, sec;
    if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        return ERR_MALFORMED;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        int nd = 0;
        while (*p >= '0' && *p <= '9' && nd < 12) {
            p++;
            nd++;
        }
        if (nd == 0)
            return ERR_MALFORMED;
    }
    if (!((p[0] == 'Z' && p[1] == '\0') || strcmp(p, "+00:00") == 0))
        return ERR_MALFORMED;
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
        sec > 60)
        return ERR_MALFORMED;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return ERR_MALFORMED;
    *out = (int64_t)t;
    return 0;
}

static int take_str(const cJSON *j, const char *key, char *dst, size_t sz, bool required)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) {
        if (required)
            return ERR_MALFORMED;
        dst[0] = '\0';
        return 0;
    }
    if (!cJSON_IsString(v) || !v->valuestring)
        return ERR_MALFORMED;
    size_t n = strlen(v->valuestring);
    if (n >= sz)
        return ERR_LIMIT;
    if (required && n == 0)
        return ERR_MALFORMED;
    memcpy(dst, v->valuestring, n + 1);
    return 0;
}

/* Wipe every string in the tree before it is freed (it holds a secret). */
static void json_wipe(cJSON *j)
{
    for (; j; j = j->next) {
        if (j->valuestring)
            OPENSSL_cleanse(j->valuestring, strlen(j->valuestring));
        json_wipe(j->child);
    }
}

int creds_parse_json(const uint8_t *p, size_t len, struct aws_creds *c)
{
    memset(c, 0, sizeof(*c));
    cJSON *j = cJSON_ParseWithLength((const char *)p, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ERR_MALFORMED;
    }
    int rc = 0;
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "Code"); /* IMDS: "Success" */
    if (code && (!cJSON_IsString(code) || strcmp(code->valuestring, "Success") != 0))
        rc = ERR_MALFORMED;
    if (rc == 0)
        rc = take_str(j, "AccessKeyId", c->access_key_id, sizeof(c->access_key_id), true);
    if (rc == 0)
        rc = take_str(j, "SecretAccessKey", c->secret_access_key, sizeof(c->secret_access_key),
                      true);
    if (rc == 0)
        rc = take_str(j, "Token", c->session_token, sizeof(c->session_token), false);
    if (rc == 0) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "Expiration");
        if (!e)
            rc = c->session_token[0] ? ERR_MALFORMED : 0; /* temporary keys always expire */
        else if (!cJSON_IsString(e))
            rc = ERR_MALFORMED;
        else
            rc = creds_parse_iso8601(e->valuestring, &c->expires_at);
    }
    json_wipe(j);
    cJSON_Delete(j);
    if (rc < 0)
        aws_creds_wipe(c);
    return rc;
}
