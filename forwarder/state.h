/* state: the DynamoDB records of the pipeline (CONTRACTS.md) and the pure parsers of what
 * HealthImaging answers. Builders return request bodies for UpdateItem / GetItem as JSON text;
 * every state change is conditional so that states never go back and a replay after a crash is
 * harmless. Parsers treat their input as hostile: bounded, type-checked, never trusted. */
#ifndef GW_STATE_H
#define GW_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "spool/spool_sidecar.h"

enum state_inst {
    STATE_RECEIVED = 1,
    STATE_STORED = 2,
    STATE_IMPORTING = 3,
    STATE_IMPORTED = 4,
    STATE_FAILED = 5,
};

enum state_job {
    STATE_JOB_OPEN = 1,
    STATE_JOB_STARTING = 2,
    STATE_JOB_SUBMITTED = 3,
    STATE_JOB_IN_PROGRESS = 4,
    STATE_JOB_COMPLETED = 5,
    STATE_JOB_FAILED = 6,
};

const char *state_inst_name(enum state_inst s);
const char *state_job_name(enum state_job s);
/* "SUBMITTED" etc. (GetDICOMImportJob jobStatus) -> enum; 0 when unknown. */
enum state_job state_job_parse(const char *s);

/* What the core's sidecar says about one object, plus where the pipeline put it. */
struct state_obj {
    char sop[65], sha[65], study[65], series[65], sop_class[65], ts[65];
    char calling[17], called[17], peer[64], cert_cn[257], cert_fp[65], client_id[129];
    uint64_t bytes;
    char crc64[17]; /* the CRC-64/NVME of the bytes received (16 hex digits), "" when unknown */
    char received_at[40];
    char s3_key[600];
    char batch[48];
    bool redrive; /* a re-drive's copy (the received item may take over a FAILED one) */
};

/* Extra attributes set with a state change; empty strings and is_primary < 0 are left out. */
struct state_extra {
    const char *job_id, *image_set_id, *error_type, *error_message;
    int is_primary; /* -1 unknown, 0 false, 1 true */
};

/* PS3.5 9.1: a UID of 1-64 characters, digits and dots. */
bool state_uid_valid(const char *s);
/* A SHA-256 as sidecars, journal records and DynamoDB keys carry it: 64 lowercase hex digits. */
bool state_sha_valid(const char *s);

/* ISO 8601 UTC with milliseconds, "2026-11-24T03:00:00.000Z". */
void state_now_iso(char out[40]);

/* Fill *o from a spool entry's sidecar (the spool library reads and checks it). */
void state_obj_from_spool(const struct spool_sidecar *sc, struct state_obj *o);
/* The same from the sidecar's JSON text: 0, or ERR_MALFORMED when a required field (SOP, Study
 * and Series Instance UIDs, sha256, bytes) is missing or invalid (spool_sidecar_decode). */
MUST_CHECK int state_obj_from_sidecar(const char *json, size_t len, struct state_obj *o);

/* PutItem: the instance item as RECEIVED, the claim of a copy (the one write of the normal
 * path, before the S3 PUT). how says which items it may replace: STATE_CLAIM_NEW only a missing
 * one (the first try: the cheapest condition); STATE_CLAIM_TAKEOVER also this batch's own item
 * still at RECEIVED (a replay after a crash writes the same item) and one a torn copy gave up
 * (batch_id STATE_TORN_BATCH, see state_req_torn); STATE_CLAIM_REDRIVE also a FAILED one. It
 * fails when another batch owns the item (a duplicate of an object already forwarded, or on its
 * way) or when the item went further (state_dup_decide tells what then). NULL when out of
 * memory or o->batch is empty. */
enum state_claim { STATE_CLAIM_NEW = 0, STATE_CLAIM_TAKEOVER, STATE_CLAIM_REDRIVE };
cJSON *state_req_received(const char *table, const struct state_obj *o, enum state_claim how,
                          const char *now);
/* The batch_id of an item whose copy was dropped as torn before it reached S3. */
#define STATE_TORN_BATCH "TORN"
/* UpdateItem: this batch's RECEIVED item gives up its object (batch_id STATE_TORN_BATCH), so
 * that the modality's resend can take it over; conditional on batch and RECEIVED. */
cJSON *state_req_torn(const char *table, const struct state_obj *o, const char *now);
/* UpdateItem: move an instance forward to st (conditional on state_rank < st). */
cJSON *state_req_advance(const char *table, const char *sop, const char *sha, enum state_inst st,
                        const struct state_extra *x, const char *now);
/* UpdateItem for a re-drive: a FAILED instance back to STORED (its object is still in S3),
 * error attributes removed, redrive_batch set; conditional on state FAILED, or on STORED by
 * this same re-drive (its replay). A failed condition: another re-drive has the object. */
cJSON *state_req_redrive(const char *table, const char *sop, const char *sha,
                         const char *redrive_batch, const char *now);
/* GetItem of an instance (consistent read). */
cJSON *state_req_get(const char *table, const char *sop, const char *sha);
/* UpdateItem: the job item of a batch, moved forward to st with its counters. */
struct state_job_rec {
    const char *batch, *job_id, *datastore_id, *input_uri, *output_uri;
    uint32_t objects, imported, failed;
    uint64_t bytes;
};
cJSON *state_req_job(const char *table, const struct state_job_rec *j, enum state_job st,
                    const char *now);

/* Read "Item": state, batch_id, s3_key and error_type of a GetItem answer. found=false when no
 * item. */
struct state_got {
    bool found;
    enum state_inst state; /* 0 when the item names no state we know */
    char batch[48];
    char s3_key[600];
    char error_type[65];
};
MUST_CHECK int state_parse_get(const char *body, size_t len, struct state_got *out);
/* The same from an already parsed GetItem answer (NULL: no item). */
void state_got_from(const cJSON *answer, struct state_got *out);

/* ---- a copy meets an item that is not free (state_dup.c) ---------------------------------- */

/* When the claim (state_req_received) of a copy fails, the item is read back and this says what
 * the copy does. The rules, one place for the pipeline and the tests (docs/forwarder.md has the
 * table): */
enum state_dup_action {
    STATE_DUP_CLAIM = 1, /* no item, or one given up by a torn copy: claim it again */
    STATE_DUP_PROBE,     /* the owner's item is RECEIVED: ask S3 whether its object is there */
    STATE_DUP_WAIT,      /* the owner's copy has not reached this copy's ack point: look later */
    STATE_DUP_DROP,      /* the owner's copy stands for this one: drop it, answered success */
    STATE_DUP_REATTEMPT, /* FAILED: a new attempt through the current mode (STOW-RS of this
                            copy, or a re-import of the object already in S3) */
    STATE_DUP_OWN_STOW,  /* this batch's own item, in S3 but not yet sent (mode stow): send */
    STATE_DUP_OWN_DONE,  /* this batch's own item went on (a replay): release as stored */
};
enum state_ack_point { STATE_ACK_SPOOL = 0, STATE_ACK_S3 = 1, STATE_ACK_HI = 2 };
struct state_dup_in {
    const struct state_got *got; /* the item read back */
    bool own;                    /* got->batch is this copy's batch */
    int in_s3;                   /* the owner's object at got->s3_key: -1 not asked, 0 no, 1 yes */
    enum state_ack_point ack;
    bool stow; /* healthimaging.mode "stow" */
};
enum state_dup_action state_dup_decide(const struct state_dup_in *in);
const char *state_dup_name(enum state_dup_action a);

/* A HealthImaging refusal of these bytes: STOW-RS FailureReason (a DICOM status, PS3.18 10.5)
 * that says the object itself is at fault. Out of Resources (0xA7xx) and Resource Limitation
 * (0x0213) are passing troubles; every other failure reason is permanent. */
bool state_stow_reason_permanent(uint16_t reason);
/* The Error Comment of a permanent refusal (at most 64 characters, no data values):
 * "HealthImaging refused: FailureReason 0xA900" or "HealthImaging refused: <type>". */
void state_refusal_comment(char out[65], const char *error_type, int failure_reason);

/* UpdateItem: the outcome of a new attempt for a FAILED item (a resend through STOW-RS):
 * IMPORTED (ok) or FAILED again with x's error, conditional on the item being FAILED (another
 * attempt that finished first wins; a replay is a no-op). */
cJSON *state_req_reattempt(const char *table, const char *sop, const char *sha, bool ok,
                           const struct state_extra *x, const char *now);

/* StartDICOMImportJob answer: jobId (1-32 of [0-9a-z]). */
MUST_CHECK int state_parse_start_job(const char *body, size_t len, char *job_id, size_t cap);
/* GetDICOMImportJob answer. */
struct state_job_info {
    enum state_job status;
    char message[256];
    char output_uri[600];
};
MUST_CHECK int state_parse_get_job(const char *body, size_t len, struct state_job_info *out);

/* One line of SUCCESS/success.ndjson or FAILURE/failure.ndjson. The object is named by the
 * SOP Instance UID its input file is named after (<prefix>/<batch>/<SOP>.dcm). */
struct state_result {
    char sop[65];
    bool ok;
    char image_set_id[65];
    int is_primary; /* -1 when not given */
    char error_type[65];
    char error_message[256];
};
/* 0, ERR_MALFORMED (not a JSON object or no usable input file). */
MUST_CHECK int state_parse_result_line(const char *line, size_t len, bool success,
                                       struct state_result *out);

/* A PS3.18 store response (DICOM JSON): the outcome for sop. Returns 1 when sop is in the
 * ReferencedSOPSequence (stored), 0 when in FailedSOPSequence (reason in *failure), and
 * ERR_NOTFOUND / ERR_MALFORMED otherwise. */
MUST_CHECK int state_parse_stow(const char *body, size_t len, const char *sop,
                                uint16_t *failure);

#endif
