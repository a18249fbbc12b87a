/* audit: the library as a program uses it. Events from several threads reach a UDP repository
 * (a socket of the test's own) as RFC 5424 datagrams with the A.6 header, in per-thread order;
 * the metrics count them; fail_closed blocks once the queue is full while the repository is
 * away; a NULL audit trail accepts every call and does nothing. */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "audit/syslog_frame.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/gw-audit-rt.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char p[128];
    snprintf(p, sizeof p, "%s/key", dir);
    FILE *f = fopen(p, "w");
    fputs("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", f);
    fclose(f);
    chmod(p, 0600);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(audit, .init = setup, .fini = teardown);

static void config(struct audit_config *c, const char *transport, unsigned port)
{
    audit_config_defaults(c);
    c->enabled = true;
    c->n_repos = 1;
    struct audit_repo_config *r = &c->repos[0];
    r->transport = strcmp(transport, "udp") == 0 ? AUDIT_TRANSPORT_UDP : AUDIT_TRANSPORT_TLS;
    snprintf(r->host, sizeof r->host, "127.0.0.1");
    r->port = port;
    snprintf(r->name, sizeof r->name, "repo1");
    snprintf(r->tls_profile, sizeof r->tls_profile, "bcp195-nd");
    snprintf(r->ca, sizeof r->ca, "/etc/ssl/certs/ca-certificates.crt");
    snprintf(r->server_name, sizeof r->server_name, "localhost");
    snprintf(c->queue_dir, sizeof c->queue_dir, "%s/q", dir);
    snprintf(c->hash_key_file, sizeof c->hash_key_file, "%s/key", dir);
    snprintf(c->hostname, sizeof c->hostname, "gw-unit");
    c->ack_grace_ms = 0;
    c->retry_min_ms = 50;
    c->retry_max_ms = 200;
}

struct emitter {
    struct audit *a;
    int id;
};

static void *emit_many(void *arg)
{
    struct emitter *e = arg;
    for (int i = 0; i < 50; i++) {
        char subject[64];
        snprintf(subject, sizeof subject, "urn:test:%d:%d", e->id, i);
        cr_assert_eq(audit_config_reloaded(e->a, subject, true, "x"), 0);
    }
    return NULL;
}

Test(audit, events_from_several_threads_reach_a_udp_repository)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    cr_assert_eq(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
    int rcvbuf = 4 << 20;
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);

    struct audit_config c;
    config(&c, "udp", ntohs(sa.sin_port));
    struct metrics *m = metrics_new();
    struct audit *a = NULL;
    char err[256];
    cr_assert_eq(
        audit_start(&c,
                    &(struct audit_opts){.app_name = "dicom-core", .ae_title = "AE1", .metrics = m},
                    &a, err, sizeof err),
        0, "%s", err);
    cr_assert_eq(audit_app_start(a), 0);
    pthread_t th[4];
    struct emitter em[4];
    for (int i = 0; i < 4; i++) {
        em[i] = (struct emitter){a, i};
        pthread_create(&th[i], NULL, emit_many, &em[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(audit_wait_drained(a, 10000), 0);
    struct audit_status st;
    audit_get_status(a, &st);
    cr_assert_eq(st.queued, 0);
    cr_assert_eq(st.repos[0].backlog, 0);
    cr_assert(!st.blocking);

    int next[4] = {0};
    int got = 0;
    static uint8_t buf[70000];
    while (got < 201) {
        struct pollfd p = {.fd = s, .events = POLLIN};
        cr_assert_eq(poll(&p, 1, 5000), 1, "only %d datagrams", got);
        ssize_t n = recv(s, buf, sizeof buf, 0);
        cr_assert_gt(n, 0);
        struct syslog_parsed sp;
        cr_assert_eq(syslog_parse(buf, (size_t)n, &sp), 0);
        cr_assert(sp.pri == 85 || sp.pri == 84);
        cr_assert(slice_eq_str(sp.app, "dicom-core"));
        cr_assert(slice_eq_str(sp.host, "gw-unit"));
        cr_assert(slice_eq_str(sp.msgid, "DICOM+RFC3881"));
        cr_assert(slice_eq_str(sp.sd, "-"));
        cr_assert(sp.bom);
        got++;
        const char *u = memmem(sp.msg.p, sp.msg.len, "urn:test:", 9);
        if (!u)
            continue; /* the application start */
        int id = u[9] - '0', i = (int)strtol(u + 11, NULL, 10);
        cr_assert_eq(i, next[id], "thread %d: %d after %d", id, i, next[id] - 1);
        next[id]++;
    }
    for (int i = 0; i < 4; i++)
        cr_assert_eq(next[i], 50);

    struct wbuf out;
    wbuf_init(&out, 1 << 20);
    /* the tick that updates the metrics runs every 100 ms */
    usleep(300000);
    cr_assert_eq(metrics_render(m, &out), 0);
    wbuf_u8(&out, 0);
    const char *txt = (const char *)out.p;
    cr_assert_not_null(
        strstr(txt, "dicom_core_audit_messages_sent_total{repository=\"repo1\"} 201"), "%s", txt);
    cr_assert_not_null(strstr(txt, "dicom_core_audit_repository_up{repository=\"repo1\"} 1"));
    cr_assert_not_null(strstr(txt, "dicom_core_audit_queue_messages 0"));
    wbuf_cleanup(&out);
    audit_stop(a, 1000);
    metrics_free(m);
    close(s);
}

Test(audit, fail_closed_blocks_while_the_repository_is_away)
{
    struct audit_config c;
    config(&c, "tls", 1); /* nothing listens on port 1 */
    c.queue_max_messages = 3;
    c.on_full = AQ_FAIL_CLOSED;
    struct audit *a = NULL;
    char err[256];
    cr_assert_eq(
        audit_start(&c, &(struct audit_opts){.app_name = "dicom-edge"}, &a, err, sizeof err), 0,
        "%s", err);
    cr_assert(!audit_is_blocking(a));
    for (int i = 0; i < 3; i++)
        cr_assert_eq(audit_app_start(a), 0);
    cr_assert(audit_is_blocking(a));
    cr_assert_eq(audit_app_start(a), ERR_NOSPACE);
    struct audit_status st;
    audit_get_status(a, &st);
    cr_assert_eq(st.queued, 3);
    cr_assert_eq(st.refused, 1);
    cr_assert_eq(st.pending_lost, 1);
    cr_assert(st.blocking);
    cr_assert(!st.repos[0].up);
    cr_assert_eq(audit_wait_drained(a, 200), ERR_WRONG_STATE);
    audit_stop(a, 100);
}

Test(audit, a_null_audit_trail_does_nothing)
{
    struct audit_party p = {0};
    struct audit_xfer x = {0};
    cr_assert_eq(audit_app_start(NULL), 0);
    cr_assert_eq(audit_tls_auth(NULL, &p, false, "revoked"), 0);
    cr_assert_eq(audit_transfer_end(NULL, &x), 0);
    cr_assert(!audit_is_blocking(NULL));
    cr_assert_eq(audit_wait_drained(NULL, 1), 0);
    audit_stop(NULL, 0);
}

Test(audit, start_refuses_a_missing_key)
{
    struct audit_config c;
    config(&c, "udp", 9);
    snprintf(c.hash_key_file, sizeof c.hash_key_file, "%s/nokey", dir);
    struct audit *a = NULL;
    char err[256] = "";
    cr_assert_lt(audit_start(&c, &(struct audit_opts){.app_name = "x"}, &a, err, sizeof err), 0);
    cr_assert_null(a);
    cr_assert_not_null(strstr(err, "hash_key_file"));
}

Test(audit, certificate_identity_from_a_tls_peer_id)
{
    struct tls_peer_id id = {0};
    snprintf(id.subject, sizeof id.subject, "CN=x");
    snprintf(id.cn, sizeof id.cn, "x");
    snprintf(id.fp_hex, sizeof id.fp_hex, "ab");
    struct audit_cert c = audit_cert_from_tls(&id);
    cr_assert_str_eq(c.subject, "CN=x");
    cr_assert_str_eq(c.cn, "x");
    cr_assert_str_eq(c.fp_sha256, "ab");
    cr_assert_null(c.serial);
    cr_assert_null(c.issuer);
}
