/* gw-audit: the audit library's driver, for tests and for operators checking an audit
 * repository set-up. It uses the same configuration object as dicom-edge and dicom-core. */
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "audit/audit.h"
#include "audit/audit_events.h"
#include "audit/audit_hash.h"
#include "common/log.h"

static const char usage[] =
    "usage: gw-audit --config FILE [options] COMMAND [ARGS]\n"
    "  check              validate the \"audit\" object of FILE (and the files it names)\n"
    "  xml EVENT          print EVENT's XML message on stdout (no queue, no network)\n"
    "  send EVENT...      queue the events, deliver them, stop\n"
    "  seq N              queue N numbered Security Alerts (subject urn:gw-audit:PREFIX:I),\n"
    "                     printing \"queued I\" or \"refused I\" for each\n"
    "  drain              deliver what the queue holds, stop\n"
    "  status             print the queue's state as JSON\n"
    "EVENT: app-start app-stop auth-ok auth-fail auth-revoked policy cert reload\n"
    "       reload-refused begin transferred transferred-partial query accessed commit\n"
    "       commit-partial, or all (each once)\n"
    "options: --app NAME (dicom-core)  --ae TITLE (DICOM_CORE)  --drain-ms MS (10000)\n"
    "         --prefix P (seq)  --interval-ms MS (seq, 0)  --patient-id ID (GWTEST-PATIENT-1)\n"
    "exit: 0 done (and delivered), 1 not delivered in time or refused, 2 bad usage or config\n";

static const char *const all_events[] = {"app-start",
                                         "auth-ok",
                                         "auth-fail",
                                         "auth-revoked",
                                         "policy",
                                         "cert",
                                         "reload",
                                         "reload-refused",
                                         "begin",
                                         "transferred",
                                         "transferred-partial",
                                         "query",
                                         "accessed",
                                         "commit",
                                         "commit-partial",
                                         "app-stop",
                                         NULL};

struct sample {
    struct audit_party peer;
    const char *patient_id;
    const char *ok_uids[2];
    const char *fail_uids[1];
    const char *acc[1];
    struct audit_sop_count sops_ok[1], sops_partial[1];
    uint8_t ds[256];
    size_t ds_len;
};

/* A C-FIND identifier (implicit VR LE): level, patient name and ID, study UID. Synthetic. */
static void put_el(struct sample *s, uint16_t g, uint16_t e, const char *v)
{
    size_t n = strlen(v);
    uint8_t *p = s->ds + s->ds_len;
    p[0] = (uint8_t)g;
    p[1] = (uint8_t)(g >> 8);
    p[2] = (uint8_t)e;
    p[3] = (uint8_t)(e >> 8);
    p[4] = (uint8_t)n;
    p[5] = (uint8_t)(n >> 8);
    p[6] = p[7] = 0;
    memcpy(p + 8, v, n);
    s->ds_len += 8 + n;
}

static void sample_init(struct sample *s, const char *patient_id)
{
    memset(s, 0, sizeof *s);
    s->peer = (struct audit_party){
        .ip = "192.0.2.10",
        .ae = "CT_ROOM1",
        .client_id = "ct-room-1",
        .cert = {.subject = "CN=ct-room-1,O=Test",
                 .issuer = "CN=Test Modality CA,O=Test",
                 .cn = "ct-room-1",
                 .serial = "1002",
                 .fp_sha256 = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"}};
    s->patient_id = patient_id;
    s->ok_uids[0] = "2.25.1001";
    s->ok_uids[1] = "2.25.1002";
    s->fail_uids[0] = "2.25.1003";
    s->acc[0] = "ACC-0001";
    s->sops_ok[0] = (struct audit_sop_count){
        .uid = "1.2.840.10008.5.1.4.1.1.2", .ok = 2, .ok_uids = s->ok_uids, .n_ok_uids = 2};
    s->sops_partial[0] = s->sops_ok[0];
    s->sops_partial[0].failed = 1;
    s->sops_partial[0].failed_uids = s->fail_uids;
    s->sops_partial[0].n_failed_uids = 1;
    put_el(s, 0x0008, 0x0052, "STUDY ");
    put_el(s, 0x0010, 0x0010, "TEST^PATIENT");
    put_el(s, 0x0010, 0x0020, patient_id);
    put_el(s, 0x0020, 0x000D, "");
}

static struct audit_xfer xfer_of(const struct sample *s, bool partial)
{
    return (struct audit_xfer){.peer = s->peer,
                               .peer_sends = true,
                               .study_uid = "2.25.1000",
                               .patient_id = s->patient_id,
                               .accessions = s->acc,
                               .n_accessions = 1,
                               .sops = partial ? s->sops_partial : s->sops_ok,
                               .n_sops = 1,
                               .tls = true,
                               .failure = "0xA700 out of resources"};
}

/* Emit one event through the library (a) or, with a NULL a, render it with src into out. */
static int event(struct audit *a, const struct audit_src *src, const char *name,
                 const struct sample *s, struct wbuf *out)
{
    struct audit_xfer x = xfer_of(s, strstr(name, "partial") != NULL);
    struct audit_query q = {.peer = s->peer,
                            .sop_class = "1.2.840.10008.5.1.4.1.2.2.1",
                            .transfer_syntax = "1.2.840.10008.1.2",
                            .dataset = s->ds,
                            .len = s->ds_len,
                            .ok = true};
    struct audit_access acc = {.peer = s->peer,
                               .action = 'R',
                               .study_uid = "2.25.1000",
                               .patient_id = s->patient_id,
                               .sops = s->sops_ok,
                               .n_sops = 1,
                               .ok = true};
    struct audit_commit c = {.peer = s->peer,
                             .transaction_uid = "2.25.2000",
                             .study_uid = "2.25.1000",
                             .patient_id = s->patient_id,
                             .sops = x.sops,
                             .n_sops = 1,
                             .failure = "not stored"};
    const char *cfg = "/etc/dicom-gw/policy.json";
    bool two = strstr(name, "partial") != NULL; /* xml: the failed part */
    if (strcmp(name, "app-start") == 0)
        return a ? audit_app_start(a) : audit_ev_app(src, true, out);
    if (strcmp(name, "app-stop") == 0)
        return a ? audit_app_stop(a) : audit_ev_app(src, false, out);
    if (strcmp(name, "auth-ok") == 0)
        return a ? audit_tls_auth(a, &s->peer, true, NULL)
                 : audit_ev_auth(src, &s->peer, true, NULL, out);
    if (strcmp(name, "auth-fail") == 0)
        return a ? audit_tls_auth(a, &s->peer, false, "unknown_ca")
                 : audit_ev_auth(src, &s->peer, false, "unknown_ca", out);
    if (strcmp(name, "auth-revoked") == 0)
        return a ? audit_tls_auth(a, &s->peer, false, "revoked")
                 : audit_ev_auth(src, &s->peer, false, "revoked", out);
    if (strcmp(name, "policy") == 0) {
        const char *why = "calling AE CT_ROOM9 is not bound to certificate ct-room-1";
        return a ? audit_policy_refused(a, &s->peer, why)
                 : audit_ev_alert(src, AUDIT_ALERT_POLICY_REFUSED, &s->peer, NULL, why, 0, out);
    }
    if (strcmp(name, "cert") == 0) {
        const char *why = "revoked certificate presented";
        return a ? audit_cert_rejected(a, &s->peer, why)
                 : audit_ev_alert(src, AUDIT_ALERT_CERT_REJECTED, &s->peer, NULL, why, 0, out);
    }
    if (strcmp(name, "reload") == 0)
        return a ? audit_config_reloaded(a, cfg, true, "policy generation 7 in force")
                 : audit_ev_alert(src, AUDIT_ALERT_CONFIG_RELOADED, NULL, cfg,
                                  "policy generation 7 in force", 0, out);
    if (strcmp(name, "reload-refused") == 0)
        return a ? audit_config_reloaded(a, cfg, false, "policy.json: clients[2].match: empty")
                 : audit_ev_alert(src, AUDIT_ALERT_CONFIG_REFUSED, NULL, cfg,
                                  "policy.json: clients[2].match: empty", 0, out);
    if (strcmp(name, "begin") == 0)
        return a ? audit_transfer_begin(a, &x) : audit_ev_begin(src, &x, out);
    if (strcmp(name, "transferred") == 0 || strcmp(name, "transferred-partial") == 0)
        return a ? audit_transfer_end(a, &x) : audit_ev_transferred(src, &x, two, out);
    if (strcmp(name, "query") == 0)
        return a ? audit_query(a, &q) : audit_ev_query(src, &q, out);
    if (strcmp(name, "accessed") == 0)
        return a ? audit_instances_accessed(a, &acc) : audit_ev_accessed(src, &acc, out);
    if (strcmp(name, "commit") == 0 || strcmp(name, "commit-partial") == 0) {
        c.sops = two ? s->sops_partial : s->sops_ok;
        return a ? audit_commitment(a, &c) : audit_ev_commit(src, &c, two, out);
    }
    return ERR_NOTFOUND;
}

static cJSON *load_audit_object(const char *path, cJSON **root)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!buf)
        return NULL;
    *root = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!*root)
        return NULL;
    cJSON *au = cJSON_GetObjectItemCaseSensitive(*root, "audit");
    return au ? au : *root;
}

int main(int argc, char **argv)
{
    const char *config = NULL, *app = "dicom-core", *ae = "DICOM_CORE", *prefix = "t";
    const char *patient = "GWTEST-PATIENT-1";
    unsigned drain_ms = 10000, interval_ms = 0;
    int i = 1;
    while (i < argc && argv[i][0] == '-') { /* each option takes a value: i moves by two */
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (!v) {
            fputs(usage, stderr);
            return 2;
        }
        if (strcmp(o, "--config") == 0)
            config = v;
        else if (strcmp(o, "--app") == 0)
            app = v;
        else if (strcmp(o, "--ae") == 0)
            ae = v;
        else if (strcmp(o, "--prefix") == 0)
            prefix = v;
        else if (strcmp(o, "--patient-id") == 0)
            patient = v;
        else if (strcmp(o, "--drain-ms") == 0)
            drain_ms = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(o, "--interval-ms") == 0)
            interval_ms = (unsigned)strtoul(v, NULL, 10);
        else {
            fputs(usage, stderr);
            return 2;
        }
        i += 2;
    }
    if (!config || i >= argc) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[i++];
    signal(SIGPIPE, SIG_IGN);
    log_setup("gw-audit", LOG_INFO);

    cJSON *root = NULL;
    cJSON *obj = load_audit_object(config, &root);
    struct audit_config cfg;
    audit_config_defaults(&cfg);
    struct wbuf errs;
    wbuf_init(&errs, 16384);
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL; /* the object alone, for the reader */
    int rc = text ? audit_config_parse(text, &cfg, &errs) : ERR_CONFIG;
    cJSON_free(text);
    if (rc == 0 && strcmp(cmd, "check") == 0)
        rc = audit_config_check(&cfg, &errs);
    cJSON_Delete(root);
    if (!obj)
        fprintf(stderr, "gw-audit: cannot read %s as JSON\n", config);
    if (rc < 0) {
        fprintf(stderr, "%.*s", (int)errs.len, errs.p ? (const char *)errs.p : "");
        wbuf_cleanup(&errs);
        return 2;
    }
    wbuf_cleanup(&errs);
    if (strcmp(cmd, "check") == 0) {
        puts("ok");
        return 0;
    }

    struct sample s;
    sample_init(&s, patient);
    if (strcmp(cmd, "xml") == 0) {
        uint8_t key[AUDIT_KEY_MAX];
        size_t klen = 0;
        char err[512];
        if (!cfg.patient_include &&
            audit_key_load(cfg.hash_key_file, key, &klen, err, sizeof err) < 0) {
            fprintf(stderr, "gw-audit: %s\n", err);
            return 2;
        }
        struct audit_src src = {.app_name = app,
                                .host = "gw.test",
                                .source_id = "gw.test",
                                .ae_title = ae,
                                .patient_include = cfg.patient_include,
                                .key = klen ? key : NULL,
                                .key_len = klen};
        int bad = 0;
        for (; i < argc; i++) {
            const char *const one[] = {argv[i], NULL};
            const char *const *list = strcmp(argv[i], "all") == 0 ? all_events : one;
            for (size_t k = 0; list[k]; k++) {
                struct wbuf x;
                wbuf_init(&x, 60000);
                int r = event(NULL, &src, list[k], &s, &x);
                if (r < 0) {
                    fprintf(stderr, "gw-audit: %s: %s\n", list[k], err_str(r));
                    bad = 1;
                } else {
                    fwrite(x.p, 1, x.len, stdout);
                    fputc('\n', stdout);
                }
                wbuf_cleanup(&x);
            }
        }
        return bad ? 2 : 0;
    }

    struct audit *a = NULL;
    char err[512];
    if (audit_start(&cfg, &(struct audit_opts){.app_name = app, .ae_title = ae}, &a, err,
                    sizeof err) < 0) {
        fprintf(stderr, "gw-audit: %s\n", err);
        return 2;
    }
    int status = 0;
    if (strcmp(cmd, "send") == 0) {
        for (; i < argc; i++) {
            const char *const one[] = {argv[i], NULL};
            const char *const *list = strcmp(argv[i], "all") == 0 ? all_events : one;
            for (size_t k = 0; list[k]; k++) {
                int r = event(a, NULL, list[k], &s, NULL);
                if (r < 0) {
                    fprintf(stderr, "gw-audit: %s: %s\n", list[k], err_str(r));
                    status = r == ERR_NOTFOUND ? 2 : 1;
                }
            }
        }
    } else if (strcmp(cmd, "seq") == 0 && i < argc) {
        unsigned long n = strtoul(argv[i], NULL, 10);
        for (unsigned long k = 1; k <= n; k++) {
            char subject[128], desc[64];
            snprintf(subject, sizeof subject, "urn:gw-audit:%s:%lu", prefix, k);
            snprintf(desc, sizeof desc, "test message %lu", k);
            int r = audit_config_reloaded(a, subject, true, desc);
            printf("%s %lu\n", r == 0 ? "queued" : "refused", k);
            fflush(stdout);
            if (r < 0)
                status = 1;
            if (interval_ms)
                uv_sleep(interval_ms);
        }
    } else if (strcmp(cmd, "status") == 0) {
        struct audit_status st;
        audit_get_status(a, &st);
        printf("{\"queued\":%llu,\"bytes\":%llu,\"pending_lost\":%llu,\"blocking\":%s,"
               "\"repositories\":[",
               (unsigned long long)st.queued, (unsigned long long)st.bytes,
               (unsigned long long)st.pending_lost, st.blocking ? "true" : "false");
        for (size_t k = 0; k < st.n_repos; k++)
            printf("%s{\"name\":\"%s\",\"backlog\":%llu}", k ? "," : "", st.repos[k].name,
                   (unsigned long long)st.repos[k].backlog);
        printf("]}\n");
        drain_ms = 0;
    } else if (strcmp(cmd, "drain") != 0) {
        fputs(usage, stderr);
        status = 2;
        drain_ms = 0;
    }
    if (drain_ms && audit_wait_drained(a, drain_ms) < 0) {
        fprintf(stderr, "gw-audit: not every message was delivered within %u ms\n", drain_ms);
        if (status == 0)
            status = 1;
    }
    audit_stop(a, 0);
    return status;
}
