/* audit_hash: the keyed hash that stands for a Patient ID in audit messages (HMAC-SHA256 with a
 * site key, lowercase hex), so that an auditor holding the key can correlate events about one
 * patient without the gateway exporting the identifier. */
#ifndef GW_AUDIT_HASH_H
#define GW_AUDIT_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define AUDIT_KEY_MIN 16u /* bytes */
#define AUDIT_KEY_MAX 64u

/* out (65 bytes) gets the lowercase hex HMAC-SHA256 of msg[0..n) under key[0..klen). 0, or
 * ERR_UNEXPECTED when OpenSSL fails. */
MUST_CHECK int audit_hmac_hex(const uint8_t *key, size_t klen, const void *msg, size_t n,
                              char out[65]);

/* Parse a key file's bytes: hex (an even number of hex digits, 32..128 of them) or, failing
 * that, the raw bytes themselves, with trailing whitespace ignored in both cases. The key must
 * be AUDIT_KEY_MIN..AUDIT_KEY_MAX bytes. 0 and *len, or ERR_CONFIG. */
MUST_CHECK int audit_key_parse(const uint8_t *p, size_t n, uint8_t key[AUDIT_KEY_MAX], size_t *len);

/* Read and parse the key file at path (at most 4 KiB; a file readable by group or others is
 * refused, as ssh refuses such private keys). 0, ERR_CONFIG or -errno; err gets the reason. */
MUST_CHECK int audit_key_load(const char *path, uint8_t key[AUDIT_KEY_MAX], size_t *len, char *err,
                              size_t err_len);

#endif
