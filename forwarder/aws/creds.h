/* creds: the AWS credentials chain, asynchronous on the client's loop (CONTRACTS.md):
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (optional);
 *   2. ECS container endpoint: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI against
 *      http://169.254.170.2 (host overridable for tests with DICOM_CORE_ECS_CREDENTIALS_HOST=
 *      127.0.0.1:PORT) or AWS_CONTAINER_CREDENTIALS_FULL_URI, with the Authorization header from
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN or the file named by
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (re-read on every fetch);
 *   3. EC2 instance metadata with IMDSv2: PUT /latest/api/token, then GET
 *      /latest/meta-data/iam/security-credentials/ and .../<role> (endpoint from
 *      AWS_EC2_METADATA_SERVICE_ENDPOINT, default http://169.254.169.254; skipped when
 *      AWS_EC2_METADATA_DISABLED=true).
 * The environment is read once, at creation. Temporary credentials are refreshed 5 minutes
 * before their Expiration by a timer, and on demand when expired or invalidated. A failed
 * refresh keeps still-valid credentials and retries with backoff. Secrets are wiped with
 * OPENSSL_cleanse and never logged. */
#ifndef GW_CREDS_H
#define GW_CREDS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "sigv4.h"

struct http_client;
struct creds_provider;

enum creds_source { CREDS_NONE = 0, CREDS_ENV, CREDS_ECS, CREDS_IMDS };

/* A provider that fetches through http (its loop is the provider's loop). The chain is chosen
 * now from the environment: env keys if both are set, else ECS if either URI variable is set,
 * else IMDS unless disabled. 0, ERR_NOMEM, ERR_CONFIG (nothing in the chain applies, or the FULL
 * URI is neither https:// nor http:// to loopback / 169.254.170.2 / 169.254.170.23, as the
 * SDKs require). */
MUST_CHECK int creds_provider_new(struct http_client *http, struct creds_provider **out);

/* Callback: err 0 and c (borrowed: copy what you keep) or err < 0 (HTTP_ERR_CREDS,
 * HTTP_ERR_CANCELED) and c NULL. */
typedef void (*creds_cb)(void *arg, int err, const struct aws_creds *c);

/* Credentials valid for at least another minute, or NULL (then call creds_get). Borrowed: valid
 * until the next return to the loop. */
const struct aws_creds *creds_peek(struct creds_provider *p);
/* Ask for credentials; cb runs later on the loop (never inside this call). Concurrent callers
 * share one fetch. 0 or ERR_NOMEM / ERR_WRONG_STATE (closing). */
MUST_CHECK int creds_get(struct creds_provider *p, creds_cb cb, void *arg);
/* Forget the cached credentials (after an ExpiredToken answer); the next get fetches anew. */
void creds_invalidate(struct creds_provider *p);
enum creds_source creds_provider_source(const struct creds_provider *p);
/* Number of successful fetches so far (env counts once). */
uint64_t creds_fetch_count(const struct creds_provider *p);

/* Stop: waiting callbacks run with HTTP_ERR_CANCELED, the refresh timer closes, and the provider
 * frees itself once its timer's close callback and any fetch in flight are done. Call before
 * http_client_close on the same client. NULL is fine. */
void creds_provider_close(struct creds_provider *p);

/* Pure helper (tests, fuzzers): parse an ECS/IMDS credentials JSON document
 * {"AccessKeyId","SecretAccessKey","Token","Expiration":"2026-11-24T03:00:00Z"} into *c.
 * 0, ERR_MALFORMED (not JSON, wrong types, missing keys, bad time), ERR_LIMIT (field too long). */
MUST_CHECK int creds_parse_json(const uint8_t *p, size_t len, struct aws_creds *c);
/* "YYYY-MM-DDTHH:MM:SS[.fff]Z" (or "+00:00") to unix seconds. 0 or ERR_MALFORMED. */
MUST_CHECK int creds_parse_iso8601(const char *s, int64_t *out);

#endif
