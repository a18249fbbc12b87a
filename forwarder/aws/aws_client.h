/* aws_client: what every AWS API client shares, so that a new API is a new client file on the
 * same plumbing (s3.c, ddb.c and mi.c are built this way): the http client and credentials it
 * borrows, its region and SigV4 signing name, its endpoint (AWS's, or an override for local
 * emulators), and the tail of every call: cap the answer, sign, send, and free the call's state
 * when sending fails. A client embeds a struct aws_client by value. */
#ifndef GW_AWS_CLIENT_H
#define GW_AWS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/wbuf.h"
#include "http.h"

struct creds_provider;

struct aws_client {
    struct http_client *http;     /* borrowed: outlives the client and its calls */
    struct creds_provider *creds; /* borrowed, idem */
    char region[40];
    const char *service; /* SigV4 signing name, a static string ("s3", "dynamodb") */
    bool s3;             /* S3's signing rules (see http_req_sign) */
};

/* Fill c. 0, or ERR_CONFIG when region is missing, empty or 40 characters or more. */
MUST_CHECK int aws_client_init(struct aws_client *c, struct http_client *http,
                               struct creds_provider *creds, const char *region,
                               const char *service, bool s3);

/* True when an endpoint override is acceptable: NULL or "" (none: AWS's own), or a URL that
 * starts with http:// or https://. */
bool aws_endpoint_valid(const char *url);

/* The base URL of a service, as a new string: the override without its trailing '/'s when one
 * is given (NULL/"" = none), else "https://<host_prefix>.<region>.amazonaws.com"; suffix (may be
 * "") appended. NULL when out of memory or over 4 KiB. */
char *aws_endpoint_dup(const char *override, const char *host_prefix, const char *region,
                       const char *suffix);

/* A new request for the URL built in url (no NUL yet). url is cleaned up in every case. 0, or
 * url's sticky error, or http_req_new's. */
MUST_CHECK int aws_client_req(const char *method, struct wbuf *url, struct http_req **out);

/* Mark r to be signed as c's service (each attempt afresh) with payload. */
void aws_client_sign(const struct aws_client *c, struct http_req *r, enum http_payload payload);

/* The common tail of a call. rc is the outcome of building r (r may be NULL when rc < 0); op is
 * the call's state that done receives (NULL counts as out of memory). On rc 0: caps the answer
 * at cap bytes (0 = the http client's default), signs r with payload and sends it. Takes r and
 * op: when this returns < 0 both are freed (op with free()) and done never runs. */
MUST_CHECK int aws_client_send(const struct aws_client *c, struct http_req *r, int rc, void *op,
                               size_t cap, enum http_payload payload, http_done_cb done);

#endif
