/* tls_ctx: OpenSSL contexts for the edge and the core (STYLE.md §8): cipher profiles after
 * DICOM PS3.15 Annex B, mutual authentication with CRLs, and the peer identity a policy
 * matches on. Contexts are built once and shared read-only; a reload builds new ones. */
#ifndef GW_TLS_CTX_H
#define GW_TLS_CTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "common/err.h"

/* PS3.15 B.9 (BCP 195 non-downgrading, the default), B.10 (BCP 195), B.11 (extended BCP 195)
 * and RFC 9325. Every profile here refuses TLS < 1.2, even where the profile would allow it. */
enum tls_profile {
    TLS_PROFILE_BCP195_ND = 0,
    TLS_PROFILE_BCP195 = 1,
    TLS_PROFILE_BCP195_EXT = 2,
    TLS_PROFILE_RFC9325 = 3,
};

/* "bcp195-nd", "bcp195", "bcp195-ext", "rfc9325". 0 or ERR_CONFIG. */
MUST_CHECK int tls_profile_parse(const char *name, enum tls_profile *out);
const char *tls_profile_name(enum tls_profile p);

enum tls_crl_mode { TLS_CRL_LEAF = 0, TLS_CRL_CHAIN = 1 };

struct tls_server_opts {
    const char *cert;      /* PEM chain: our certificate first */
    const char *key;       /* PEM private key */
    const char *client_ca; /* PEM bundle of CAs that sign client certificates; NULL: no mTLS */
    const char *crl;       /* PEM file with one or more CRLs; NULL or "": no revocation check */
    enum tls_crl_mode crl_mode;
    enum tls_profile profile;
    /* Every CA in client_ca is a trust anchor even when it is not self-signed (partial chain):
     * the core trusts the edges' issuing CA alone, so that certificates from sibling CAs under
     * the same root (the modalities') cannot reach it around the edge's policy. */
    bool partial_chain;
};

/* Build a server context: TLS 1.2-1.3, the profile's ciphers, no renegotiation, no session
 * resumption (every connection is verified against the current CRL), client certificate
 * required when client_ca is set (checked for the clientAuth purpose). Returns 0 and *out
 * (caller frees with SSL_CTX_free), or ERR_TLS / ERR_CONFIG with a reason in err. */
MUST_CHECK int tls_ctx_server_new(const struct tls_server_opts *o, SSL_CTX **out, char *err,
                                  size_t err_len);

struct tls_client_opts {
    const char *cert; /* our client certificate chain (PEM), or NULL */
    const char *key;
    const char *ca;   /* CAs that sign the server's certificate (PEM); required */
    enum tls_profile profile;
};

/* Build a client context (verifies the server's chain for the serverAuth purpose; the host
 * name is checked per connection, see tls_conn_new). 0 or ERR_TLS / ERR_CONFIG with err. */
MUST_CHECK int tls_ctx_client_new(const struct tls_client_opts *o, SSL_CTX **out, char *err,
                                  size_t err_len);

#define TLS_MAX_SAN 16

/* What a policy can match on, read from a verified peer certificate. */
struct tls_peer_id {
    char subject[512]; /* RFC 2253 one-line */
    char issuer[512];
    char cn[257];      /* last CN of the subject, "" if none */
    char serial[96];   /* hex */
    uint8_t fp[32];    /* SHA-256 of the DER certificate */
    char fp_hex[65];
    uint8_t n_dns, n_uri;
    char dns[TLS_MAX_SAN][256];
    char uri[TLS_MAX_SAN][256];
};

/* Fill *id from the peer certificate of ssl. 0, or ERR_NOTFOUND without one. Strings with
 * embedded NULs or over-long values are dropped (never truncated into a different name). */
MUST_CHECK int tls_peer_id_get(SSL *ssl, struct tls_peer_id *id);
/* The same from a certificate. */
MUST_CHECK int tls_cert_id(X509 *x, struct tls_peer_id *id);

/* A short reason for a failed handshake: "no_certificate", "unknown_ca", "expired",
 * "not_yet_valid", "revoked", "wrong_usage", "crl_missing", "crl_expired", "protocol_version",
 * "no_shared_cipher", "bad_certificate", "handshake_failed". verify_result is
 * SSL_get_verify_result(); lib_err the first error on OpenSSL's queue. */
const char *tls_fail_reason(long verify_result, unsigned long lib_err);

/* Verify the peer's certificate chain of a finished handshake again, against ctx's trust store
 * (CA bundle, CRLs and their flags) for client authentication: for a connection accepted
 * before a reload and judged after it. 0, or ERR_TLS with *verify_result the X509_V_ERR. */
MUST_CHECK int tls_peer_reverify(SSL *ssl, SSL_CTX *ctx, long *verify_result);

/* Checks for --check-config: the certificate at path is readable, not expired and not yet
 * valid, and (when ca is not NULL) verifies against ca. 0 or ERR_TLS with err. */
MUST_CHECK int tls_check_cert_file(const char *path, const char *ca, char *err, size_t err_len);

#endif
