/* audit_dsredact: a C-FIND identifier for an audit message without the patient's identity. The
 * Query message carries the query dataset itself (PS3.15 A.5.3.10); where patient identifiers
 * must not leave the gateway, its Patient module values are replaced. Pure; the dataset is
 * untrusted and read through bounds-checked cursors only. */
#ifndef GW_AUDIT_DSREDACT_H
#define GW_AUDIT_DSREDACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wbuf.h"

#define AUDIT_DS_MAX_DEPTH 8u     /* nested sequences */
#define AUDIT_DS_MAX_INPUT 65536u /* bytes of dataset accepted */

/* Copy the little-endian dataset ds[0..n) (explicit or implicit VR) to out, with every element of
 * group 0010 (the Patient module) at any depth emptied, except a non-empty Patient ID
 * (0010,0020), whose value (padding trimmed) becomes its keyed hash (audit_hmac_hex under
 * key[0..klen); klen 0 empties it too), so that queries about one patient still correlate.
 * Sequences and items are written with undefined length and delimiters, group length elements
 * (gggg,0000) are dropped, everything else is copied as it was. In implicit VR a defined-length
 * value that starts with an Item tag is taken for a sequence. Returns 0; ERR_TRUNCATED or
 * ERR_MALFORMED for a dataset that does not parse; ERR_LIMIT past AUDIT_DS_MAX_INPUT or
 * AUDIT_DS_MAX_DEPTH; or out's error. out is left as it was on failure. */
MUST_CHECK int audit_ds_redact(const uint8_t *ds, size_t n, bool explicit_vr, const uint8_t *key,
                               size_t klen, struct wbuf *out);

#endif
