/* spool_sidecar: the JSON record that travels with every spool entry (<id>.json): what the
 * object is (UIDs, transfer syntax, size, SHA-256), who sent it (AE titles, peer, certificate
 * identity) and when. One struct, one writer (the SCP's store), one reader (every backend).
 * Never patient data: UIDs, AE titles, certificate identity, sizes and hashes only. */
#ifndef GW_SPOOL_SIDECAR_H
#define GW_SPOOL_SIDECAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/err.h"

#define SIDECAR_MAX (16u * 1024u) /* a sidecar file larger than this is not ours */

struct spool_sidecar {
    char id[48];
    char sop_class[65], sop_instance[65], study[65], series[65], ts[65];
    char calling[17], called[17], peer[64];
    char cert_cn[257], cert_fp[65], client_id[129]; /* all "" without a client certificate */
    uint64_t bytes;
    char sha256[65];    /* "" when the spool was told to skip it (spool_checksum crc64nvme) */
    char crc64nvme[17]; /* CRC-64/NVME, 16 hex digits: always written since 2026-12 */
    uint64_t assoc;
    char received_start[40], received_end[40]; /* ISO 8601 UTC, milliseconds */
};

/* The sidecar as a JSON object (caller's, cJSON_Delete), e.g. to copy into a journal record.
 * NULL when out of memory. Fields that cJSON could not add are missing. */
cJSON *spool_sidecar_json(const struct spool_sidecar *sc);
/* The sidecar as one line of JSON (no newline), NUL-terminated in a new buffer (*out, free()).
 * 0 or ERR_NOMEM. */
MUST_CHECK int spool_sidecar_encode(const struct spool_sidecar *sc, char **out, size_t *len);
/* Parse a sidecar (untrusted: type-checked and bounded). 0, or ERR_MALFORMED when it is not a
 * JSON object, or a required field is missing or invalid: SOP Instance, Study and Series
 * Instance UIDs (PS3.5 9.1), a checksum (sha256: 64 hex digits, or crc64nvme: 16, at least one,
 * each valid when present), bytes (a whole number). Optional text fields that are absent, of the
 * wrong type or too long are left "". */
MUST_CHECK int spool_sidecar_decode(const char *json, size_t len, struct spool_sidecar *sc);
/* Read and decode <spool ready>/<id>.json given its full path. 0, -errno, ERR_LIMIT,
 * ERR_MALFORMED. */
MUST_CHECK int spool_sidecar_load(const char *path, struct spool_sidecar *sc);

#endif
