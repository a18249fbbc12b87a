#include "net/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

int addr_split(const char *s, char *host, size_t host_len, unsigned *port)
{
    if (!s || !*s)
        return ERR_CONFIG;
    size_t n = strnlen(s, 300);
    if (n >= 300)
        return ERR_CONFIG;
    const char *colon;
    const char *h;
    size_t hl;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close || close[1] != ':')
            return ERR_CONFIG;
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return ERR_CONFIG; /* v6 literals need brackets */
        h = s;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= host_len)
        return ERR_CONFIG;
    unsigned long p = 0;
    const char *d = colon + 1;
    if (!*d)
        return ERR_CONFIG;
    for (; *d; d++) {
        if (*d < '0' || *d > '9')
            return ERR_CONFIG;
        p = p * 10 + (unsigned long)(*d - '0');
        if (p > 65535)
            return ERR_CONFIG;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (unsigned)p;
    return 0;
}

int addr_parse(const char *s, struct sockaddr_storage *out)
{
    char host[256];
    unsigned port;
    TRY(addr_split(s, host, sizeof host, &port));
    memset(out, 0, sizeof *out);
    struct sockaddr_in *s4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        return 0;
    }
    return ERR_CONFIG;
}

void addr_format(const struct sockaddr *sa, char *buf, size_t n)
{
    char host[INET6_ADDRSTRLEN];
    if (n == 0)
        return;
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        if (inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host)) {
            snprintf(buf, n, "%s:%u", host, (unsigned)ntohs(s4->sin_port));
            return;
        }
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        if (inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host)) {
            snprintf(buf, n, "[%s]:%u", host, (unsigned)ntohs(s6->sin6_port));
            return;
        }
    }
    snprintf(buf, n, "?");
}
