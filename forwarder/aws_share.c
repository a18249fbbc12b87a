/* aws_share: `dicom-core share` (aws_share.h). One request (or one Query per page) on a loop of
 * its own, with the standard credentials chain, as the other subcommands of the backend. */
#include "aws_share.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "aws/creds.h"
#include "aws/ddb.h"
#include "aws/http.h"
#include "aws/sts.h"
#include "aws/sts_policy.h"
#include "aws_read.h"
#include "common/dcm_vr.h"
#include "common/log.h"

#define HOURS_MAX (24 * 366)
#define TTL_AFTER_S (30 * 86400) /* a grant's item stays listable this long after its end */

enum share_cmd { SH_GRANT, SH_REVOKE, SH_LIST, SH_CREDS };

struct share {
    enum share_cmd cmd;
    const char *study, *to, *format;
    long hours;
    bool json;
    struct pipeline_config pc;
    struct aws_read_config rc;
    struct ddb_client *ddb;
    struct sts_client *sts;
    cJSON *start_key;
    unsigned pages;
    int exit;
};

static void iso(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "%lld", (long long)t);
}

static bool client_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("._@-", c)))
            return false;
    }
    return true;
}

static bool uid_ok(const char *s)
{
    return s && dcm_uid_valid((const uint8_t *)s, strlen(s));
}

static void report_err(struct share *sh, const char *what, const struct http_result *res)
{
    fprintf(stderr, "dicom-core share: %s failed: %s%s%s %s\n", what, http_err_str(res->err),
            res->error_code[0] ? " " : "", res->error_code, res->message);
    sh->exit = 1;
}

static void audit(const char *ev, const struct share *sh, int64_t expires, const char *key)
{
    struct logb b;
    if (!log_begin(&b, LOG_INFO, ev))
        return;
    if (sh->to)
        log_str(&b, "client_id", sh->to);
    log_str(&b, "study", sh->study);
    if (expires) {
        char t[32];
        iso(expires, t);
        log_str(&b, "expires_at", t);
    }
    if (key)
        log_strn(&b, "access_key_prefix", key, strnlen(key, 4)); /* never the secret */
    log_end(&b);
}

/* ---- grant, revoke ------------------------------------------------------------------------ */

static int add_key(cJSON *o, const char *to, const char *study)
{
    char sk[200];
    snprintf(sk, sizeof sk, "%s#%s", to, study);
    TRY(ddb_add_s(o, "pk", "GRANT"));
    return ddb_add_s(o, "sk", sk);
}

static void on_written(void *arg, const struct http_result *res, const cJSON *out)
{
    (void)out;
    struct share *sh = arg;
    if (res->err == HTTP_ERR_CONDITION) {
        fprintf(stderr, "dicom-core share: no grant of study %s to %s\n", sh->study, sh->to);
        sh->exit = 1;
        return;
    }
    if (res->err < 0) {
        report_err(sh, sh->cmd == SH_GRANT ? "the grant" : "the revocation", res);
        return;
    }
    int64_t now = (int64_t)time(NULL);
    if (sh->cmd == SH_GRANT) {
        char t[32];
        iso(now + sh->hours * 3600, t);
        printf("granted study %s to %s until %s\n", sh->study, sh->to, t);
        audit("share_granted", sh, now + sh->hours * 3600, NULL);
    } else {
        printf("revoked study %s for %s\n", sh->study, sh->to);
        audit("share_revoked", sh, 0, NULL);
    }
    sh->exit = 0;
}

static int grant(struct share *sh)
{
    int64_t now = (int64_t)time(NULL), exp = now + sh->hours * 3600;
    char created[32];
    iso(now, created);
    cJSON *item = cJSON_CreateObject();
    int rc = item ? add_key(item, sh->to, sh->study) : ERR_NOMEM;
    if (rc == 0)
        rc = ddb_add_s(item, "grantee", sh->to);
    if (rc == 0)
        rc = ddb_add_s(item, "grant_study", sh->study);
    if (rc == 0)
        rc = ddb_add_n(item, "expires_at", exp);
    if (rc == 0)
        rc = ddb_add_n(item, "ttl", exp + TTL_AFTER_S);
    if (rc == 0)
        rc = ddb_add_s(item, "created_at", created);
    if (rc == 0)
        rc = ddb_put_item(sh->ddb, sh->pc.ddb.table, item, NULL, NULL, NULL, on_written, sh);
    cJSON_Delete(item);
    return rc;
}

static int revoke(struct share *sh)
{
    int64_t now = (int64_t)time(NULL);
    char at[32];
    iso(now, at);
    cJSON *key = cJSON_CreateObject(), *names = cJSON_CreateObject(),
          *vals = cJSON_CreateObject();
    int rc = key && names && vals ? add_key(key, sh->to, sh->study) : ERR_NOMEM;
    if (rc == 0 && !cJSON_AddStringToObject(names, "#t", "ttl"))
        rc = ERR_NOMEM;
    if (rc == 0)
        rc = ddb_add_n(vals, ":now", now);
    if (rc == 0)
        rc = ddb_add_s(vals, ":at", at);
    if (rc == 0)
        rc = ddb_add_n(vals, ":ttl", now + TTL_AFTER_S);
    if (rc == 0)
        rc = ddb_update_item(sh->ddb, sh->pc.ddb.table, key,
                             "SET expires_at = :now, revoked_at = :at, #t = :ttl",
                             "attribute_exists(pk)", names, vals, NULL, on_written, sh);
    cJSON_Delete(key);
    cJSON_Delete(names);
    cJSON_Delete(vals);
    return rc;
}

/* ---- list ------------------------------------------------------------------------------------ */

static int list_page(struct share *sh);

static void on_listed(void *arg, const struct http_result *res, const cJSON *out)
{
    struct share *sh = arg;
    if (res->err < 0 || !out) {
        report_err(sh, "the list", res);
        return;
    }
    int64_t now = (int64_t)time(NULL);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(out, "Items"), *it;
    const cJSON *list = cJSON_IsArray(items) ? items : NULL;
    cJSON_ArrayForEach(it, list) {
        const char *who = ddb_get_s(it, "grantee"), *study = ddb_get_s(it, "grant_study");
        int64_t exp = 0;
        if (!who || !study || ddb_get_n(it, "expires_at", &exp) < 0)
            continue;
        if (sh->to && strcmp(who, sh->to) != 0)
            continue;
        const char *state = ddb_get_s(it, "revoked_at") ? "revoked"
                            : exp <= now               ? "expired"
                                                       : "active";
        char t[32];
        iso(exp, t);
        if (sh->json) {
            cJSON *o = cJSON_CreateObject();
            if (o && cJSON_AddStringToObject(o, "client_id", who) &&
                cJSON_AddStringToObject(o, "study", study) &&
                cJSON_AddStringToObject(o, "expires_at", t) &&
                cJSON_AddStringToObject(o, "state", state)) {
                char *s = cJSON_PrintUnformatted(o);
                if (s)
                    printf("%s\n", s);
                free(s);
            }
            cJSON_Delete(o);
        } else {
            printf("%-24s %-64s %s %s\n", who, study, t, state);
        }
    }
    cJSON_Delete(sh->start_key);
    sh->start_key = NULL;
    const cJSON *lek = cJSON_GetObjectItemCaseSensitive(out, "LastEvaluatedKey");
    if (cJSON_IsObject(lek) && ++sh->pages < 10000) {
        sh->start_key = cJSON_Duplicate(lek, true);
        if (sh->start_key && list_page(sh) == 0)
            return;
        fprintf(stderr, "dicom-core share: the next page could not be asked for\n");
        sh->exit = 1;
        return;
    }
    sh->exit = 0;
}

static int list_page(struct share *sh)
{
    cJSON *vals = cJSON_CreateObject();
    char prefix[160];
    snprintf(prefix, sizeof prefix, "%s#", sh->to ? sh->to : "");
    int rc = vals ? ddb_add_s(vals, ":p", "GRANT") : ERR_NOMEM;
    if (rc == 0 && sh->to)
        rc = ddb_add_s(vals, ":s", prefix);
    if (rc == 0)
        rc = ddb_query(sh->ddb, sh->pc.ddb.table, NULL,
                       sh->to ? "pk = :p AND begins_with(sk, :s)" : "pk = :p", NULL, vals,
                       sh->start_key, 0, on_listed, sh);
    cJSON_Delete(vals);
    return rc;
}

/* ---- credentials ---------------------------------------------------------------------------- */

static void on_creds(void *arg, const struct http_result *res, const struct aws_creds *c,
                     int packed_pct, const char *assumed_arn)
{
    (void)packed_pct;
    (void)assumed_arn;
    struct share *sh = arg;
    if (!c) {
        report_err(sh, "AssumeRole of the reader role", res);
        if (strstr(res->message, "chaining"))
            fprintf(stderr, "dicom-core share: credentials that are themselves a role's (an ECS "
                            "task's) can ask for at most 1 hour: use --hours 1\n");
        return;
    }
    char exp[32];
    iso(c->expires_at, exp);
    const char *ep = sh->pc.endpoints.medical_imaging_dicom;
    char url[700];
    if (ep[0])
        snprintf(url, sizeof url, "%s/datastore/%s/studies/%s", ep, sh->pc.hi.datastore_id,
                 sh->study);
    else
        snprintf(url, sizeof url,
                 "https://dicom-medical-imaging.%s.amazonaws.com/datastore/%s/studies/%s",
                 sh->pc.region, sh->pc.hi.datastore_id, sh->study);
    if (sh->format && strcmp(sh->format, "env") == 0) {
        printf("export AWS_ACCESS_KEY_ID=%s\nexport AWS_SECRET_ACCESS_KEY=%s\n"
               "export AWS_SESSION_TOKEN=%s\nexport AWS_REGION=%s\n"
               "# expires %s; study %s at %s\n",
               c->access_key_id, c->secret_access_key, c->session_token, sh->pc.region, exp,
               sh->study, url);
    } else {
        cJSON *o = cJSON_CreateObject();
        char *s = NULL;
        if (o && cJSON_AddStringToObject(o, "AccessKeyId", c->access_key_id) &&
            cJSON_AddStringToObject(o, "SecretAccessKey", c->secret_access_key) &&
            cJSON_AddStringToObject(o, "SessionToken", c->session_token) &&
            cJSON_AddStringToObject(o, "Expiration", exp) &&
            cJSON_AddStringToObject(o, "Region", sh->pc.region) &&
            cJSON_AddStringToObject(o, "StudyInstanceUID", sh->study) &&
            cJSON_AddStringToObject(o, "DICOMwebStudyURL", url))
            s = cJSON_Print(o);
        if (s) {
            printf("%s\n", s);
            OPENSSL_cleanse(s, strlen(s));
        }
        free(s);
        cJSON_Delete(o);
    }
    fflush(stdout);
    audit("share_credentials", sh, c->expires_at, c->access_key_id);
    sh->exit = 0;
}

static int credentials(struct share *sh)
{
    char arn[200], policy[STS_POLICY_MAX_CHARS + 1], session[65];
    size_t len;
    if (aws_read_datastore_arn(&sh->pc, &sh->rc, arn, sizeof arn) < 0) {
        fprintf(stderr, "dicom-core share --credentials: backend.read.reader_role_arn is not "
                        "set (the role whose session the credentials are)\n");
        return ERR_CONFIG;
    }
    const char *studies[1] = {sh->study};
    TRY(sts_policy_build(arn, studies, 1, STS_POLICY_VIEWER, policy, sizeof policy, &len));
    sts_session_name("dicom-core-share-", sh->study, session);
    struct sts_assume a = {.role_arn = sh->rc.reader_role_arn, .session_name = session,
                           .duration_s = (unsigned)(sh->hours * 3600), .policy = policy};
    return sts_assume_role(sh->sts, &a, on_creds, sh);
}

/* ---- the command ----------------------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr,
            "usage: dicom-core share --study UID --to CLIENT_ID --hours N\n"
            "       dicom-core share --revoke --study UID --to CLIENT_ID\n"
            "       dicom-core share --list [--to CLIENT_ID] [--json]\n"
            "       dicom-core share --credentials --study UID --hours N [--format json|env]\n");
    return 2;
}

static int parse_args(struct share *sh, int argc, char **argv)
{
    sh->cmd = SH_GRANT;
    sh->hours = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--revoke") == 0) {
            sh->cmd = SH_REVOKE;
        } else if (strcmp(a, "--list") == 0) {
            sh->cmd = SH_LIST;
        } else if (strcmp(a, "--credentials") == 0) {
            sh->cmd = SH_CREDS;
        } else if (strcmp(a, "--json") == 0) {
            sh->json = true;
        } else if (v && strcmp(a, "--study") == 0) {
            sh->study = v;
            i++;
        } else if (v && strcmp(a, "--to") == 0) {
            sh->to = v;
            i++;
        } else if (v && strcmp(a, "--format") == 0) {
            sh->format = v;
            i++;
        } else if (v && strcmp(a, "--hours") == 0) {
            char *end;
            sh->hours = strtol(v, &end, 10);
            if (*end || end == v)
                return usage();
            i++;
        } else {
            return usage();
        }
    }
    bool needs_study = sh->cmd != SH_LIST, needs_to = sh->cmd == SH_GRANT || sh->cmd == SH_REVOKE;
    if ((needs_study && !uid_ok(sh->study)) || (needs_to && !client_ok(sh->to)) ||
        (sh->to && !client_ok(sh->to)))
        return usage();
    if (sh->cmd == SH_GRANT && (sh->hours < 1 || sh->hours > HOURS_MAX))
        return usage();
    if (sh->cmd == SH_CREDS && (sh->hours < 1 || sh->hours > 12))
        return usage();
    if (sh->format && strcmp(sh->format, "json") != 0 && strcmp(sh->format, "env") != 0)
        return usage();
    return 0;
}

static void closed(void *arg)
{
    (void)arg;
}

int aws_share_cli(int argc, char **argv, const char *config_json)
{
    struct share sh;
    memset(&sh, 0, sizeof sh);
    sh.exit = 1;
    int rc = parse_args(&sh, argc, argv);
    if (rc)
        return rc;
    struct wbuf errs;
    wbuf_init(&errs, 16384);
    char *rest = NULL;
    rc = aws_read_config_split(config_json, &rest, &sh.rc, &errs);
    if (rc == 0 && rest)
        rc = pipeline_config_parse(rest, &sh.pc, &errs);
    free(rest);
    if (rc < 0) {
        wbuf_u8(&errs, 0);
        fprintf(stderr, "dicom-core share: configuration: %s", errs.p ? (char *)errs.p : "?\n");
        wbuf_cleanup(&errs);
        return 1;
    }
    wbuf_cleanup(&errs);
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return 1;
    struct http_client *http = NULL;
    struct creds_provider *creds = NULL;
    rc = http_client_new(&loop, NULL, &http);
    if (rc == 0)
        rc = creds_provider_new(http, &creds);
    struct ddb_opts dop = {.region = sh.pc.region, .endpoint = sh.pc.endpoints.dynamodb};
    struct sts_opts so = {.region = sh.pc.region, .endpoint = sh.pc.endpoints.sts};
    if (rc == 0)
        rc = ddb_client_new(http, creds, &dop, &sh.ddb);
    if (rc == 0)
        rc = sts_client_new(http, creds, &so, &sh.sts);
    if (rc == 0) {
        switch (sh.cmd) {
        case SH_GRANT: rc = grant(&sh); break;
        case SH_REVOKE: rc = revoke(&sh); break;
        case SH_LIST: rc = list_page(&sh); break;
        default: rc = credentials(&sh); break;
        }
    }
    if (rc < 0) {
        fprintf(stderr, "dicom-core share: %s\n", err_str(rc));
        sh.exit = 1;
    } else {
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    creds_provider_close(creds);
    if (http)
        http_client_close(http, closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ddb_client_free(sh.ddb);
    sts_client_free(sh.sts);
    cJSON_Delete(sh.start_key);
    if (uv_loop_close(&loop) != 0)
        fprintf(stderr, "dicom-core share: loop not empty at exit\n");
    return sh.exit;
}
