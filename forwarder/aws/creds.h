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

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "creds_provider.h"

struct http_client;

/* The chain as a provider that fetches through http (its loop is the provider's loop). The
 * chain is chosen now from the environment: env keys if both are set, else ECS if either URI
 * variable is set, else IMDS unless disabled. 0, ERR_NOMEM, ERR_CONFIG (nothing in the chain
 * applies, or the FULL URI is neither https:// nor http:// to loopback / 169.254.170.2 /
 * 169.254.170.23, as the SDKs require). Close with creds_provider_close. */
MUST_CHECK int creds_provider_new(struct http_client *http, struct creds_provider **out);

/* Pure helper (tests, fuzzers): parse an ECS/IMDS credentials JSON document
 * {"AccessKeyId","SecretAccessKey","Token","Expiration":"2026-11-24T03:00:00Z"} into *c.
 * 0, ERR_MALFORMED (not JSON, wrong types, missing keys, bad time), ERR_LIMIT (field too long). */
MUST_CHECK int creds_parse_json(const uint8_t *p, size_t len, struct aws_creds *c);
/* "YYYY-MM-DDTHH:MM:SS[.fff]Z" (or "+00:00") to unix seconds. 0 or ERR_MALFORMED. */
MUST_CHECK int creds_parse_iso8601(const char *s, int64_t *out);

#endif
