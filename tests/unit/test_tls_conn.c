/* core/net tls_ctx + tls_conn: two streams wired back to back through memory, with a test PKI
 * made here (EC P-256): handshake, data both ways, peer identity, and refusals with reasons. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/wbuf.h"
#include "net/tls_conn.h"
#include "net/tls_ctx.h"

static char g_dir[64];

struct pem_pair {
    EVP_PKEY *key;
    X509 *crt;
};

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    cr_assert_not_null(e);
    cr_assert(X509_add_ext(x, e, -1));
    X509_EXTENSION_free(e);
}

/* A certificate for cn, signed by ca (self-signed when ca is NULL), valid from +from_days to
 * +to_days, with extendedKeyUsage eku (NULL: none, it is a CA). */
static struct pem_pair make_cert(const char *cn, const struct pem_pair *ca, long from_days,
                                 long to_days, const char *eku, long serial)
{
    struct pem_pair p;
    p.key = EVP_EC_gen("P-256");
    cr_assert_not_null(p.key);
    p.crt = X509_new();
    X509_set_version(p.crt, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(p.crt), serial);
    X509_gmtime_adj(X509_getm_notBefore(p.crt), from_days * 86400);
    X509_gmtime_adj(X509_getm_notAfter(p.crt), to_days * 86400);
    X509_NAME *nm = X509_get_subject_name(p.crt);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(p.crt, ca ? X509_get_subject_name(ca->crt) : nm);
    X509_set_pubkey(p.crt, p.key);
    X509 *issuer = ca ? ca->crt : p.crt;
    if (!eku) {
        add_ext(p.crt, issuer, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(p.crt, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(p.crt, issuer, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(p.crt, issuer, NID_ext_key_usage, eku);
        add_ext(p.crt, issuer, NID_subject_alt_name, "DNS:localhost,URI:urn:test:1");
    }
    cr_assert(X509_sign(p.crt, ca ? ca->key : p.key, EVP_sha256()));
    return p;
}

static void save(const struct pem_pair *p, const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s.crt", g_dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    PEM_write_X509(f, p->crt);
    fclose(f);
    snprintf(path, sizeof path, "%s/%s.key", g_dir, name);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    PEM_write_PrivateKey(f, p->key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
}

static const char *path(const char *name, const char *ext)
{
    static char buf[4][128];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s.%s", g_dir, name, ext);
    return buf[i];
}

static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/gw-tls-test.XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
    struct pem_pair ca = make_cert("Test CA", NULL, -1, 3650, NULL, 1);
    struct pem_pair other = make_cert("Other CA", NULL, -1, 3650, NULL, 2);
    struct pem_pair pairs[] = {
        make_cert("localhost", &ca, -1, 30, "serverAuth", 10),
        make_cert("ct-room-1", &ca, -1, 30, "clientAuth", 11),
        make_cert("expired-1", &ca, -60, -30, "clientAuth", 12),
        make_cert("wrongeku-1", &ca, -1, 30, "serverAuth", 13),
        make_cert("ct-room-1", &other, -1, 30, "clientAuth", 14),
    };
    static const char *const names[] = {"server", "client", "expired", "wrongeku", "otherca"};
    save(&ca, "ca");
    for (size_t i = 0; i < 5; i++) {
        save(&pairs[i], names[i]);
        X509_free(pairs[i].crt);
        EVP_PKEY_free(pairs[i].key);
    }
    X509_free(ca.crt);
    EVP_PKEY_free(ca.key);
    X509_free(other.crt);
    EVP_PKEY_free(other.key);
}

static void teardown(void)
{
    static const char *const names[] = {"ca", "server", "client", "expired", "wrongeku",
                                        "otherca"};
    for (size_t i = 0; i < 6; i++) {
        unlink(path(names[i], "crt"));
        unlink(path(names[i], "key"));
    }
    rmdir(g_dir);
}

TestSuite(tls, .init = setup, .fini = teardown);

/* One side of the back-to-back pair: what it sent (ciphertext) and what it received. */
struct side {
    struct wbuf sent, got;
    bool ready;
};

static int on_out(void *arg, uint8_t *buf, size_t n)
{
    struct side *s = arg;
    wbuf_put(&s->sent, buf, n);
    free(buf);
    return s->sent.err;
}

static int on_plain(void *arg, const uint8_t *p, size_t n)
{
    struct side *s = arg;
    wbuf_put(&s->got, p, n);
    return s->got.err;
}

static size_t g_room = SIZE_MAX;

static size_t on_room(void *arg)
{
    (void)arg;
    return g_room;
}

static int on_ready(void *arg)
{
    ((struct side *)arg)->ready = true;
    return 0;
}

struct pair {
    struct side cs, ss;
    struct tls_conn *c, *s;
    int crc, src;
};

static void pair_init(struct pair *p, SSL_CTX *cctx, SSL_CTX *sctx)
{
    memset(p, 0, sizeof *p);
    wbuf_init(&p->cs.sent, 1u << 24);
    wbuf_init(&p->cs.got, 1u << 24);
    wbuf_init(&p->ss.sent, 1u << 24);
    wbuf_init(&p->ss.got, 1u << 24);
    struct tls_conn_cbs cc = {.out = on_out, .plain = on_plain, .ready = on_ready, .arg = &p->cs};
    struct tls_conn_cbs sc = {.out = on_out, .plain = on_plain, .ready = on_ready, .arg = &p->ss};
    p->c = tls_conn_new(cctx, true, "localhost", &cc);
    p->s = tls_conn_new(sctx, false, NULL, &sc);
    cr_assert(p->c && p->s);
    cr_assert_eq(tls_conn_start(p->c), 0);
}

/* Move ciphertext both ways until nothing moves or a side fails. */
static void pump(struct pair *p)
{
    for (int i = 0; i < 100; i++) {
        bool moved = false;
        if (p->cs.sent.len && p->src >= 0) {
            struct wbuf in = p->cs.sent;
            wbuf_init(&p->cs.sent, 1u << 24);
            p->src = tls_conn_feed(p->s, in.p, in.len);
            wbuf_cleanup(&in);
            moved = true;
        }
        if (p->ss.sent.len && p->crc >= 0) {
            struct wbuf in = p->ss.sent;
            wbuf_init(&p->ss.sent, 1u << 24);
            p->crc = tls_conn_feed(p->c, in.p, in.len);
            wbuf_cleanup(&in);
            moved = true;
        }
        if (!moved)
            return;
    }
}

static void pair_cleanup(struct pair *p)
{
    tls_conn_free(p->c);
    tls_conn_free(p->s);
    wbuf_cleanup(&p->cs.sent);
    wbuf_cleanup(&p->cs.got);
    wbuf_cleanup(&p->ss.sent);
    wbuf_cleanup(&p->ss.got);
}

static SSL_CTX *server_ctx(enum tls_profile prof)
{
    struct tls_server_opts o = {path("server", "crt"), path("server", "key"), path("ca", "crt"),
                                NULL, TLS_CRL_LEAF, prof, false};
    SSL_CTX *ctx = NULL;
    char err[256];
    cr_assert_eq(tls_ctx_server_new(&o, &ctx, err, sizeof err), 0, "%s", err);
    return ctx;
}

static SSL_CTX *client_ctx(const char *name)
{
    struct tls_client_opts o = {name ? path(name, "crt") : NULL, name ? path(name, "key") : NULL,
                                path("ca", "crt"), TLS_PROFILE_BCP195_ND};
    SSL_CTX *ctx = NULL;
    char err[256];
    cr_assert_eq(tls_ctx_client_new(&o, &ctx, err, sizeof err), 0, "%s", err);
    return ctx;
}

Test(tls, mutual_handshake_carries_data_both_ways)
{
    static const enum tls_profile profiles[] = {TLS_PROFILE_BCP195_ND, TLS_PROFILE_BCP195,
                                                TLS_PROFILE_BCP195_EXT, TLS_PROFILE_RFC9325};
    for (size_t k = 0; k < 4; k++) {
        SSL_CTX *sctx = server_ctx(profiles[k]), *cctx = client_ctx("client");
        struct pair p;
        pair_init(&p, cctx, sctx);
        pump(&p);
        cr_assert(p.cs.ready && p.ss.ready, "handshake (%s)", tls_profile_name(profiles[k]));
        cr_assert_eq(p.src, 0);
        static uint8_t big[300000];
        for (size_t i = 0; i < sizeof big; i++)
            big[i] = (uint8_t)(i * 7);
        cr_assert_eq(tls_conn_write(p.c, big, sizeof big), 0);
        cr_assert_eq(tls_conn_write(p.s, (const uint8_t *)"pong", 4), 0);
        pump(&p);
        cr_assert_eq(p.ss.got.len, sizeof big);
        cr_assert_eq(memcmp(p.ss.got.p, big, sizeof big), 0);
        cr_assert_eq(p.cs.got.len, 4);
        struct tls_peer_id id;
        cr_assert_eq(tls_peer_id_get(tls_conn_ssl(p.s), &id), 0);
        cr_assert_str_eq(id.cn, "ct-room-1");
        cr_assert_str_eq(id.serial, "0B");
        cr_assert_eq(id.n_dns, 1);
        cr_assert_str_eq(id.dns[0], "localhost");
        cr_assert_str_eq(id.uri[0], "urn:test:1");
        cr_assert_str_eq(id.issuer, "CN=Test CA");
        cr_assert_eq(strlen(id.fp_hex), 64);
        cr_assert_eq(tls_conn_shutdown(p.c), 0);
        pump(&p);
        cr_assert_eq(p.src, TLS_CONN_EOF, "close_notify reaches the server as EOF");
        pair_cleanup(&p);
        SSL_CTX_free(sctx);
        SSL_CTX_free(cctx);
    }
}

static void expect_refusal(const char *client, const char *reason)
{
    SSL_CTX *sctx = server_ctx(TLS_PROFILE_BCP195_ND), *cctx = client_ctx(client);
    struct pair p;
    pair_init(&p, cctx, sctx);
    pump(&p);
    cr_assert_not(p.ss.ready, "%s: the server finished a handshake it should refuse", client);
    cr_assert_eq(p.src, ERR_TLS);
    cr_assert_str_eq(tls_conn_reason(p.s), reason, "%s: %s", client ? client : "(none)",
                     tls_conn_detail(p.s));
    pair_cleanup(&p);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

Test(tls, refuses_each_bad_client_with_its_reason)
{
    expect_refusal(NULL, "no_certificate");
    expect_refusal("expired", "expired");
    expect_refusal("wrongeku", "wrong_usage");
    expect_refusal("otherca", "unknown_ca");
}

Test(tls, refuses_tls_1_1)
{
    SSL_CTX *sctx = server_ctx(TLS_PROFILE_BCP195_ND);
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(cctx, TLS1_1_VERSION);
    SSL_CTX_set_max_proto_version(cctx, TLS1_1_VERSION);
    SSL_CTX_set_security_level(cctx, 0);
    struct pair p;
    pair_init(&p, cctx, sctx);
    pump(&p);
    cr_assert_eq(p.src, ERR_TLS);
    cr_assert_str_eq(tls_conn_reason(p.s), "protocol_version", "%s", tls_conn_detail(p.s));
    pair_cleanup(&p);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

Test(tls, client_checks_the_server_name)
{
    SSL_CTX *sctx = server_ctx(TLS_PROFILE_BCP195_ND), *cctx = client_ctx("client");
    struct pair p;
    memset(&p, 0, sizeof p);
    wbuf_init(&p.cs.sent, 1u << 24);
    wbuf_init(&p.cs.got, 1u << 24);
    wbuf_init(&p.ss.sent, 1u << 24);
    wbuf_init(&p.ss.got, 1u << 24);
    struct tls_conn_cbs cc = {.out = on_out, .plain = on_plain, .ready = on_ready, .arg = &p.cs};
    struct tls_conn_cbs sc = {.out = on_out, .plain = on_plain, .ready = on_ready, .arg = &p.ss};
    p.c = tls_conn_new(cctx, true, "core.example", &cc);
    p.s = tls_conn_new(sctx, false, NULL, &sc);
    cr_assert_eq(tls_conn_start(p.c), 0);
    pump(&p);
    cr_assert_not(p.cs.ready);
    cr_assert_eq(p.crc, ERR_TLS);
    cr_assert_str_eq(tls_conn_reason(p.c), "name_mismatch", "%s", tls_conn_detail(p.c));
    pair_cleanup(&p);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

Test(tls, context_errors_name_the_file)
{
    struct tls_server_opts o = {"/nonexistent.crt", path("server", "key"), NULL, NULL,
                                TLS_CRL_LEAF, TLS_PROFILE_BCP195_ND, false};
    SSL_CTX *ctx = NULL;
    char err[256];
    cr_assert_lt(tls_ctx_server_new(&o, &ctx, err, sizeof err), 0);
    cr_assert_not_null(strstr(err, "/nonexistent.crt"));
    o.cert = path("server", "crt");
    o.key = path("client", "key");
    cr_assert_lt(tls_ctx_server_new(&o, &ctx, err, sizeof err), 0);
    cr_assert_not_null(strstr(err, "match"), "%s", err);
    cr_assert_null(ctx);
    enum tls_profile pr;
    cr_assert_eq(tls_profile_parse("rfc9325", &pr), 0);
    cr_assert_eq(pr, TLS_PROFILE_RFC9325);
    cr_assert_lt(tls_profile_parse("tls1.0", &pr), 0);
    cr_assert_eq(tls_check_cert_file(path("expired", "crt"), NULL, err, sizeof err), ERR_TLS);
    cr_assert_eq(tls_check_cert_file(path("client", "crt"), path("ca", "crt"), err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(tls_check_cert_file(path("otherca", "crt"), path("ca", "crt"), err, sizeof err),
                 ERR_TLS);
}

Test(tls, room_callback_holds_plaintext_back_until_resumed)
{
    SSL_CTX *sctx = server_ctx(TLS_PROFILE_BCP195_ND), *cctx = client_ctx("client");
    struct pair p;
    pair_init(&p, cctx, sctx);
    tls_conn_free(p.s); /* the same server side, with a room callback */
    struct tls_conn_cbs sc = {.out = on_out, .plain = on_plain, .ready = on_ready,
                              .arg = &p.ss, .room = on_room};
    p.s = tls_conn_new(sctx, false, NULL, &sc);
    cr_assert_not_null(p.s);
    pump(&p);
    cr_assert(p.ss.ready && p.cs.ready);
    static uint8_t data[50000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 13);
    g_room = 0;
    cr_assert_eq(tls_conn_write(p.c, data, sizeof data), 0);
    struct wbuf in = p.cs.sent;
    wbuf_init(&p.cs.sent, 1u << 24);
    cr_assert_eq(tls_conn_feed(p.s, in.p, in.len), 0);
    wbuf_cleanup(&in);
    cr_assert_eq(p.ss.got.len, 0, "no room: nothing delivered");
    cr_assert(tls_conn_has_pending(p.s));
    g_room = 777; /* odd sizes: records are split across deliveries */
    cr_assert_eq(tls_conn_resume(p.s), 0);
    cr_assert_eq(p.ss.got.len, sizeof data);
    cr_assert_eq(memcmp(p.ss.got.p, data, sizeof data), 0);
    cr_assert_not(tls_conn_has_pending(p.s));
    g_room = SIZE_MAX;
    pair_cleanup(&p);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}
