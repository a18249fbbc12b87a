/* sts: AWS STS AssumeRole (query protocol: POST / with a form body, SigV4 name "sts", XML
 * answers) on the shared plumbing, and a credentials provider (creds_provider.h) whose
 * credentials come from it: a role assumed with an optional session policy, cached until five
 * minutes before they expire and fetched again on the next use, dropped when a service answers
 * ExpiredToken (creds_invalidate). The STS endpoint is the region's own
 * (https://sts.<region>.amazonaws.com, which a VPC interface endpoint serves privately) unless
 * overridden. Callers sign STS requests with credentials of their own (the task role).
 *
 * Facts (AWS STS API reference, AssumeRole): DurationSeconds 900 up to the role's maximum, and
 * at most 3600 when the caller is itself an assumed role (role chaining: an ECS task's
 * credentials are); a session policy of at most 2,048 plain-text characters, whose packed form
 * has a limit of its own that AWS reports as PackedPolicyTooLarge ("Packed policy consumes n%
 * of allotted space"). The session's permissions are the intersection of the role's policy and
 * the session policy. */
#ifndef GW_STS_H
#define GW_STS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "creds_provider.h"
#include "http.h"

struct sts_client;

struct sts_opts {
    const char *region;   /* required */
    const char *endpoint; /* NULL/"": https://sts.<region>.amazonaws.com */
};

/* http and creds (the caller's own credentials, which sign the AssumeRole calls) are borrowed
 * and outlive the client; strings copied. 0, ERR_NOMEM, ERR_CONFIG. */
MUST_CHECK int sts_client_new(struct http_client *http, struct creds_provider *creds,
                              const struct sts_opts *o, struct sts_client **out);
/* Only when nothing is in flight (no AssumeRole, no provider fetching). NULL is fine. */
void sts_client_free(struct sts_client *s);

struct sts_assume {
    const char *role_arn;     /* "arn:aws:iam::123456789012:role/name" */
    const char *session_name; /* 2-64 of [A-Za-z0-9+=,.@_-] */
    unsigned duration_s;      /* 900..43200 (3600 when chaining roles); 0: 3600 */
    const char *policy;       /* a session policy (JSON text), or NULL */
};

/* The answer: c (borrowed for the call; wipe nothing, copy what you keep) and the packed policy
 * size in percent (-1 when absent) when res->err is 0; else c is NULL and res says why
 * (error_code "AccessDenied", "PackedPolicyTooLarge", "ValidationError", "ExpiredToken" ...). */
typedef void (*sts_cb)(void *arg, const struct http_result *res, const struct aws_creds *c,
                       int packed_pct, const char *assumed_arn);

/* AssumeRole. 0 (cb runs once, later) or < 0 (ERR_MALFORMED: a field out of its documented
 * range; cb never runs). */
MUST_CHECK int sts_assume_role(struct sts_client *s, const struct sts_assume *a, sts_cb cb,
                               void *arg);

/* Pure (tests, fuzzers): an AssumeRoleResponse XML into *c (expiry from Expiration), the packed
 * size and the assumed role's ARN (arn_cap bytes, may be 0). 0, ERR_MALFORMED, ERR_LIMIT. */
MUST_CHECK int sts_parse_assume_role(const uint8_t *p, size_t n, struct aws_creds *c,
                                     int *packed_pct, char *arn, size_t arn_cap);
/* A session name from free text: the allowed characters kept, others as '_', cut to 64 and
 * padded to 2. out has 65 bytes. */
void sts_session_name(const char *prefix, const char *text, char out[65]);

/* ---- the provider --------------------------------------------------------------------------- */

/* A provider of the credentials of a (role_arn, policy) session; a fetch is one AssumeRole.
 * s is borrowed (outlives the provider); strings copied. 0, ERR_NOMEM, ERR_MALFORMED (as
 * sts_assume_role). Close with creds_provider_close: a fetch in flight finishes first. */
MUST_CHECK int sts_provider_new(struct sts_client *s, const struct sts_assume *a,
                                struct creds_provider **out);
/* The outcome of p's last fetch that failed ("" code when none): why a creds_get answered
 * HTTP_ERR_CREDS (a caller falls back on PackedPolicyTooLarge, for instance). Borrowed. */
const struct http_result *sts_provider_last_error(const struct creds_provider *p);
/* True when p is one of this module's providers. */
bool sts_provider_is(const struct creds_provider *p);

#endif
