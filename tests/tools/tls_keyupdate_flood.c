/* A hostile TLS 1.3 client for the edge's tests: it completes the handshake with a client
 * certificate, then asks for KeyUpdate after KeyUpdate (each one makes the server answer with
 * one of its own) and never reads, with a small receive buffer. A server that queues its
 * answers without bound grows until it runs out of memory.
 *
 *   tls_keyupdate_flood PORT CERT KEY SECONDS [CALLING CALLED]
 *
 * With CALLING and CALLED it first asks for an association (Verification) and waits for the
 * A-ASSOCIATE-AC, so that the flood comes from an admitted client (no admission timeout then
 * ends it). Exit 0 when the server closed the connection within SECONDS, 1 when it was still
 * open, 2 on a set-up error. Prints how many KeyUpdates were sent. Loopback only. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static size_t item(uint8_t *p, uint8_t type, const void *body, size_t n)
{
    p[0] = type;
    p[1] = 0;
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
    memcpy(p + 4, body, n);
    return n + 4;
}

static void ae(uint8_t *dst, const char *s)
{
    size_t n = strlen(s);
    memset(dst, ' ', 16);
    memcpy(dst, s, n < 16 ? n : 16);
}

/* An A-ASSOCIATE-RQ (PS3.8 9.3.2) for Verification in implicit VR little endian. */
static size_t assoc_rq(uint8_t *out, const char *calling, const char *called)
{
    uint8_t *b = out + 6, *p = b;
    *p++ = 0;
    *p++ = 1; /* protocol version */
    *p++ = 0;
    *p++ = 0;
    ae(p, called);
    ae(p + 16, calling);
    memset(p + 32, 0, 32);
    p += 64;
    p += item(p, 0x10, "1.2.840.10008.3.1.1.1", 21);
    uint8_t pc[64], *q = pc;
    memcpy(q, "\x01\0\0\0", 4);
    q += 4;
    q += item(q, 0x30, "1.2.840.10008.1.1", 17);
    q += item(q, 0x40, "1.2.840.10008.1.2", 17);
    p += item(p, 0x20, pc, (size_t)(q - pc));
    uint8_t ui[32], *u = ui;
    u += item(u, 0x51, "\0\0\x40\0", 4); /* maximum length 16384 */
    u += item(u, 0x52, "1.2.3.4", 7);
    p += item(p, 0x50, ui, (size_t)(u - ui));
    size_t n = (size_t)(p - b);
    out[0] = 1;
    out[1] = 0;
    out[2] = (uint8_t)(n >> 24);
    out[3] = (uint8_t)(n >> 16);
    out[4] = (uint8_t)(n >> 8);
    out[5] = (uint8_t)n;
    return n + 6;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 5 && argc != 7) {
        fprintf(stderr, "usage: %s PORT CERT KEY SECONDS [CALLING CALLED]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int port = atoi(argv[1]);
    double limit = atof(argv[4]);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || SSL_CTX_use_certificate_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1) {
        ERR_print_errors_fp(stderr);
        return 2;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* the server's identity is not under test */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int rcvbuf = 4096;
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("connect");
        return 2;
    }
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, s);
    if (SSL_connect(ssl) != 1) {
        ERR_print_errors_fp(stderr);
        return 2;
    }
    if (argc == 7) {
        uint8_t rq[512], ac[4096];
        size_t n = assoc_rq(rq, argv[5], argv[6]);
        if (SSL_write(ssl, rq, (int)n) != (int)n || SSL_read(ssl, ac, sizeof ac) < 1 ||
            ac[0] != 2) {
            fprintf(stderr, "no A-ASSOCIATE-AC\n");
            return 2;
        }
    }
    struct timeval tv = {.tv_sec = 2};
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    double t0 = now_s();
    long sent = 0;
    int closed = 0;
    while (now_s() - t0 < limit) {
        if (SSL_key_update(ssl, SSL_KEY_UPDATE_REQUESTED) != 1) {
            closed = 1;
            break;
        }
        int rc = SSL_do_handshake(ssl);
        if (rc != 1) {
            int e = SSL_get_error(ssl, rc);
            if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_SSL || e == SSL_ERROR_ZERO_RETURN) {
                closed = 1;
                break;
            }
        }
        sent++;
    }
    printf("%ld KeyUpdates sent in %.1f s; %s\n", sent, now_s() - t0,
           closed ? "the server closed the connection" : "the connection is still open");
    SSL_free(ssl);
    close(s);
    SSL_CTX_free(ctx);
    return closed ? 0 : 1;
}
