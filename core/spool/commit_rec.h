/* commit_rec: a Storage Commitment transaction as it is kept (the core's <spool>/commit/ files,
 * the aws backend's DynamoDB items): the struct and its JSON text, one codec for every store.
 * Never patient data: UIDs, AE titles, times and statuses only. Decoding treats its input as
 * hostile (bounded, type-checked). */
#ifndef GW_COMMIT_REC_H
#define GW_COMMIT_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "spool/backend_commit.h"

#define COMMIT_REFS_HARD_MAX 50000u /* no configuration may allow more references */
#define COMMIT_PENDING 0xFFFFu     /* a reference's result before it is decided */

/* PS3.3 C.14.1.1 Failure Reason values this SCP reports. */
enum commit_failure {
    COMMIT_OK = 0x0000,                  /* committed */
    COMMIT_PROCESSING_FAILURE = 0x0110,  /* import failed, or not at the point by the deadline */
    COMMIT_NO_SUCH_INSTANCE = 0x0112,    /* never received */
    COMMIT_CLASS_CONFLICT = 0x0119,      /* received under another SOP class */
    COMMIT_CLASS_NOT_SUPPORTED = 0x0122, /* not a storage SOP class we accept */
};

enum commit_state { COMMIT_OPEN = 1, COMMIT_DECIDED = 2, COMMIT_REPORTED = 3 };

struct commit_ref {
    char sop_class[65], sop_instance[65];
    uint16_t result; /* COMMIT_PENDING, COMMIT_OK or a failure reason */
};

struct commit_txn {
    char uid[65];                 /* Transaction UID (0008,1195) */
    char calling[17], called[17]; /* the modality's AE title (where the report goes), ours */
    int64_t created_ms, deadline_ms; /* unix ms: the N-ACTION, and when pending refs fail */
    enum backend_copy_state point; /* the commit point: the copy state that counts */
    enum commit_state state;
    uint16_t event;                /* DECIDED: Event Type ID 1 (all committed) or 2 */
    size_t n_refs;
    struct commit_ref *refs;       /* owned (commit_txn_cleanup) */
};

void commit_txn_cleanup(struct commit_txn *t); /* frees refs; t is then empty */
/* A deep copy of src into dst (which is overwritten). 0 or ERR_NOMEM. */
MUST_CHECK int commit_txn_copy(struct commit_txn *dst, const struct commit_txn *src);

const char *commit_state_name(enum commit_state s);
const char *commit_point_name(enum backend_copy_state p); /* "spool", "stored", "healthimaging" */

/* t as one line of JSON (no newline) in a new buffer (*out, free()). refs false leaves the
 * references out (a reported transaction keeps only what duplicate detection needs). The
 * references' SOP classes are listed once and referred to by index, to keep a 5,000-reference
 * transaction within a DynamoDB item. 0 or ERR_NOMEM. */
MUST_CHECK int commit_rec_encode(const struct commit_txn *t, bool refs, char **out, size_t *len);
/* Parse what commit_rec_encode wrote. 0 and *t (caller cleans up), ERR_MALFORMED (not ours,
 * a UID or AE title that is not one, an index out of range), ERR_LIMIT (more references than
 * COMMIT_REFS_HARD_MAX) or ERR_NOMEM. */
MUST_CHECK int commit_rec_decode(const char *json, size_t len, struct commit_txn *t);

/* "2026-11-24T03:00:00.000Z" (the sidecars' and DynamoDB's ISO 8601 UTC) to unix ms; 0 when it
 * is not of that shape. */
int64_t commit_iso_to_ms(const char *iso);

#endif
