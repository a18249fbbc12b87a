/* addr: numeric socket addresses as written in configuration ("0.0.0.0:11112", "[::1]:9112"). */
#ifndef GW_ADDR_H
#define GW_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

#include "common/err.h"

/* Parse "IPv4:port", "[IPv6]:port" (numeric hosts only; names are resolved by the caller with
 * uv_getaddrinfo; "[1.2.3.4]:p" is accepted as IPv4). Port 0..65535, 0 meaning any free port.
 * Returns 0 or ERR_CONFIG. */
MUST_CHECK int addr_parse(const char *s, struct sockaddr_storage *out);
/* Split "host:port" / "[host]:port" into host (any name) and port. 0 or ERR_CONFIG. */
MUST_CHECK int addr_split(const char *s, char *host, size_t host_len, unsigned *port);
/* Format an AF_INET/AF_INET6 address as "a.b.c.d:port" or "[v6]:port" ("?" otherwise). */
void addr_format(const struct sockaddr *sa, char *buf, size_t n);

#endif
