#include "tls_ctx.h"
#include "common/hex.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

/* TLS 1.2 suites per profile (ECDHE + AEAD first); TLS 1.3 suites are all AEAD. */
static const char g_nd[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                           "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";
static const char g_bcp[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                            "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                            "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384";
static const char g_ext[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                            "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                            "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                            "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"
                            "DHE-RSA-CHACHA20-POLY1305";
static const char g_9325[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                             "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                             "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const char g_tls13[] = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                              "TLS_CHACHA20_POLY1305_SHA256";

static const struct {
    const char *name;
    const char *ciphers;
} g_profiles[] = {
    [TLS_PROFILE_BCP195_ND] = {"bcp195-nd", g_nd},
    [TLS_PROFILE_BCP195] = {"bcp195", g_bcp},
    [TLS_PROFILE_BCP195_EXT] = {"bcp195-ext", g_ext},
    [TLS_PROFILE_RFC9325] = {"rfc9325", g_9325},
};

int tls_profile_parse(const char *name, enum tls_profile *out)
{
    for (size_t i = 0; i < ARRAY_LEN(g_profiles); i++) {
        if (strcmp(name, g_profiles[i].name) == 0) {
            *out = (enum tls_profile)i;
            return 0;
        }
    }
    return ERR_CONFIG;
}

const char *tls_profile_name(enum tls_profile p)
{
    return (size_t)p < ARRAY_LEN(g_profiles) ? g_profiles[p].name : "?";
}

/* Put OpenSSL's first queued error (and what we were doing) into err, and clear the queue. */
static int fail(char *err, size_t n, const char *what, const char *path)
{
    unsigned long e = ERR_get_error();
    char lib[160] = "";
    if (e)
        ERR_error_string_n(e, lib, sizeof lib);
    snprintf(err, n, "%s%s%s%s%s", what, path ? " " : "", path ? path : "", e ? ": " : "", lib);
    ERR_clear_error();
    return ERR_TLS;
}

static int ctx_common(SSL_CTX *ctx, enum tls_profile profile, char *err, size_t n)
{
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION))
        return fail(err, n, "protocol versions", NULL);
    if ((size_t)profile >= ARRAY_LEN(g_profiles))
        return ERR_CONFIG;
    if (!SSL_CTX_set_cipher_list(ctx, g_profiles[profile].ciphers) ||
        !SSL_CTX_set_ciphersuites(ctx, g_tls13))
        return fail(err, n, "cipher list", NULL);
    if (!SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384:P-521"))
        return fail(err, n, "groups", NULL);
    if (profile == TLS_PROFILE_BCP195 || profile == TLS_PROFILE_BCP195_EXT)
        SSL_CTX_set_dh_auto(ctx, 1);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
    /* Idle connections keep no record buffers (memory per idle connection stays small). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* No resumption: a resumed session would skip the chain and CRL checks after a reload. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (!SSL_CTX_set_num_tickets(ctx, 0))
        return fail(err, n, "tickets", NULL);
    return 0;
}

static int load_pair(SSL_CTX *ctx, const char *cert, const char *key, char *err, size_t n)
{
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        return fail(err, n, "cannot load certificate", cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        return fail(err, n, "cannot load key", key);
    if (SSL_CTX_check_private_key(ctx) != 1)
        return fail(err, n, "certificate and key do not match:", cert);
    return 0;
}

int tls_ctx_server_new(const struct tls_server_opts *o, SSL_CTX **out, char *err, size_t n)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return fail(err, n, "SSL_CTX_new", NULL);
    int rc = ctx_common(ctx, o->profile, err, n);
    if (rc == 0)
        rc = load_pair(ctx, o->cert, o->key, err, n);
    if (rc == 0 && o->client_ca && o->client_ca[0]) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->client_ca);
        if (!names || SSL_CTX_load_verify_locations(ctx, o->client_ca, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            rc = fail(err, n, "cannot load client CA bundle", o->client_ca);
        } else {
            SSL_CTX_set_client_CA_list(ctx, names); /* takes names */
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
            SSL_CTX_set_verify_depth(ctx, 8);
            if (!SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT))
                rc = fail(err, n, "purpose", NULL);
            if (rc == 0 && o->partial_chain)
                X509_STORE_set_flags(SSL_CTX_get_cert_store(ctx), X509_V_FLAG_PARTIAL_CHAIN);
        }
    }
    if (rc == 0 && o->crl && o->crl[0]) {
        X509_STORE *st = SSL_CTX_get_cert_store(ctx);
        X509_LOOKUP *lu = X509_STORE_add_lookup(st, X509_LOOKUP_file());
        if (!lu || X509_load_crl_file(lu, o->crl, X509_FILETYPE_PEM) <= 0) {
            rc = fail(err, n, "cannot load CRL", o->crl);
        } else {
            unsigned long flags = X509_V_FLAG_CRL_CHECK;
            if (o->crl_mode == TLS_CRL_CHAIN)
                flags |= X509_V_FLAG_CRL_CHECK_ALL;
            X509_STORE_set_flags(st, flags);
        }
    }
    if (rc < 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    /* A fixed context id (session ids are never reused; OpenSSL still wants one with mTLS). */
    static const unsigned char sid[] = "dicom-gw";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
    *out = ctx;
    return 0;
}

int tls_ctx_client_new(const struct tls_client_opts *o, SSL_CTX **out, char *err, size_t n)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return fail(err, n, "SSL_CTX_new", NULL);
    int rc = ctx_common(ctx, o->profile, err, n);
    if (rc == 0 && o->cert && o->cert[0])
        rc = load_pair(ctx, o->cert, o->key ? o->key : o->cert, err, n);
    if (rc == 0) {
        if (!o->ca || !o->ca[0]) {
            snprintf(err, n, "a CA bundle for the server's certificate is required");
            rc = ERR_CONFIG;
        } else if (SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1) {
            rc = fail(err, n, "cannot load CA bundle", o->ca);
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
            if (!SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER))
                rc = fail(err, n, "purpose", NULL);
        }
    }
    if (rc < 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

/* Copy an ASN1 string that must be plain text (no NUL) into out; false if it does not fit. */
static bool copy_asn1_text(const ASN1_STRING *s, char *out, size_t n)
{
    int len = ASN1_STRING_length(s);
    const unsigned char *p = ASN1_STRING_get0_data(s);
    if (len < 0 || (size_t)len >= n || !p || memchr(p, 0, (size_t)len))
        return false;
    memcpy(out, p, (size_t)len);
    out[len] = '\0';
    return true;
}

static void name_oneline(const X509_NAME *nm, char *out, size_t n)
{
    out[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return;
    if (X509_NAME_print_ex(b, nm, 0, XN_FLAG_RFC2253) >= 0) {
        char *p;
        long len = BIO_get_mem_data(b, &p);
        if (len >= 0 && (size_t)len < n && !memchr(p, 0, (size_t)len)) {
            memcpy(out, p, (size_t)len);
            out[len] = '\0';
        }
    }
    BIO_free(b);
}

int tls_cert_id(X509 *x, struct tls_peer_id *id)
{
    memset(id, 0, sizeof *id);
    const X509_NAME *subj = X509_get_subject_name(x);
    name_oneline(subj, id->subject, sizeof id->subject);
    name_oneline(X509_get_issuer_name(x), id->issuer, sizeof id->issuer);
    int last = -1;
    for (int i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1); i >= 0;
         i = X509_NAME_get_index_by_NID(subj, NID_commonName, i))
        last = i;
    if (last >= 0) {
        const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, last));
        unsigned char *utf8 = NULL;
        int len = ASN1_STRING_to_UTF8(&utf8, s);
        if (len > 0 && (size_t)len < sizeof id->cn && !memchr(utf8, 0, (size_t)len)) {
            memcpy(id->cn, utf8, (size_t)len);
            id->cn[len] = '\0';
        }
        OPENSSL_free(utf8);
    }
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    if (bn) {
        char *hex = BN_bn2hex(bn);
        if (hex)
            snprintf(id->serial, sizeof id->serial, "%s", hex);
        OPENSSL_free(hex);
        BN_free(bn);
    }
    unsigned int fl = 0;
    if (!X509_digest(x, EVP_sha256(), id->fp, &fl) || fl != 32)
        return ERR_TLS;
    hex_lower(id->fp, 32, id->fp_hex);
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_DNS && id->n_dns < TLS_MAX_SAN) {
            if (copy_asn1_text(g->d.dNSName, id->dns[id->n_dns], sizeof id->dns[0]))
                id->n_dns++;
        } else if (g->type == GEN_URI && id->n_uri < TLS_MAX_SAN) {
            if (copy_asn1_text(g->d.uniformResourceIdentifier, id->uri[id->n_uri],
                               sizeof id->uri[0]))
                id->n_uri++;
        }
    }
    GENERAL_NAMES_free(sans);
    return 0;
}

int tls_peer_id_get(SSL *ssl, struct tls_peer_id *id)
{
    X509 *x = SSL_get0_peer_certificate(ssl);
    if (!x)
        return ERR_NOTFOUND;
    return tls_cert_id(x, id);
}

const char *tls_fail_reason(long vr, unsigned long lib_err)
{
    switch (vr) {
    case X509_V_OK: break;
    case X509_V_ERR_CERT_HAS_EXPIRED: return "expired";
    case X509_V_ERR_CERT_NOT_YET_VALID: return "not_yet_valid";
    case X509_V_ERR_CERT_REVOKED: return "revoked";
    case X509_V_ERR_INVALID_PURPOSE: return "wrong_usage";
    case X509_V_ERR_UNABLE_TO_GET_CRL: return "crl_missing";
    case X509_V_ERR_CRL_HAS_EXPIRED: return "crl_expired";
    case X509_V_ERR_CRL_NOT_YET_VALID: return "crl_not_yet_valid";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE: return "unknown_ca";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH: return "name_mismatch";
    default: return "bad_certificate";
    }
    if (ERR_GET_LIB(lib_err) == ERR_LIB_SSL) {
        switch (ERR_GET_REASON(lib_err)) {
        case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE: return "no_certificate";
        case SSL_R_UNSUPPORTED_PROTOCOL:
        case SSL_R_WRONG_VERSION_NUMBER:
        case SSL_R_VERSION_TOO_LOW:
        case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION: return "protocol_version";
        case SSL_R_NO_SHARED_CIPHER:
        case SSL_R_NO_CIPHERS_AVAILABLE:
        case SSL_R_NO_SHARED_GROUPS: return "no_shared_cipher";
        case SSL_R_HTTP_REQUEST:
        case SSL_R_UNKNOWN_PROTOCOL: return "not_tls";
        case SSL_R_CERTIFICATE_VERIFY_FAILED: return "bad_certificate";
        default: break;
        }
    }
    return "handshake_failed";
}

int tls_peer_reverify(SSL *ssl, SSL_CTX *ctx, long *verify_result)
{
    X509 *leaf = SSL_get0_peer_certificate(ssl);
    X509_STORE_CTX *sc = X509_STORE_CTX_new();
    *verify_result = X509_V_ERR_UNSPECIFIED;
    int rc = ERR_TLS;
    X509_STORE *st = SSL_CTX_get_cert_store(ctx);
    if (leaf && sc && X509_STORE_CTX_init(sc, st, leaf, SSL_get_peer_cert_chain(ssl)) == 1 &&
        X509_STORE_CTX_set_purpose(sc, X509_PURPOSE_SSL_CLIENT) == 1) {
        rc = X509_verify_cert(sc) == 1 ? 0 : ERR_TLS;
        *verify_result = X509_STORE_CTX_get_error(sc);
    }
    X509_STORE_CTX_free(sc);
    return rc;
}

int tls_check_cert_file(const char *path, const char *ca, char *err, size_t n)
{
    ERR_clear_error();
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, n, "cannot open %s", path);
        return ERR_TLS;
    }
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!x)
        return fail(err, n, "not a PEM certificate:", path);
    int rc = 0;
    if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
        snprintf(err, n, "certificate %s has expired", path);
        rc = ERR_TLS;
    } else if (X509_cmp_current_time(X509_get0_notBefore(x)) >= 0) {
        snprintf(err, n, "certificate %s is not yet valid", path);
        rc = ERR_TLS;
    }
    if (rc == 0 && ca && ca[0]) {
        X509_STORE *st = X509_STORE_new();
        X509_STORE_CTX *sc = X509_STORE_CTX_new();
        if (!st || !sc || X509_STORE_load_file(st, ca) != 1 ||
            X509_STORE_CTX_init(sc, st, x, NULL) != 1) {
            rc = fail(err, n, "cannot load CA bundle", ca);
        } else if (X509_verify_cert(sc) != 1) {
            snprintf(err, n, "certificate %s does not verify against %s: %s", path, ca,
                     X509_verify_cert_error_string(X509_STORE_CTX_get_error(sc)));
            rc = ERR_TLS;
        }
        X509_STORE_CTX_free(sc);
        X509_STORE_free(st);
    }
    X509_free(x);
    return rc;
}
