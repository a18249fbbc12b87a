/* A hostile TLS 1.3 client for the edge's tests: it completes the handshake with a client
 * certificate, then asks for KeyUpdate after KeyUpdate (each one makes the server answer with
 * one of its own) and never reads, with a small receive buffer. A server that queues its
 * answers without bound grows until it runs out of memory.
 *
 *   tls_keyupdate_flood PORT CERT KEY SECONDS
 *
 * Exit 0 when the server closed the connection within SECONDS, 1 when it was still open,
 * 2 on a set-up error. Prints how many KeyUpdates were sent. Loopback only. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s PORT CERT KEY SECONDS\n", argv[0]);
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
