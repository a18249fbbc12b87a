/* store: one object being received. It writes the Part-10 file (preamble, File Meta Information,
 * then the dataset bytes exactly as received) into the spool (spool_obj_create) through two capped
 * buffers: the loop thread fills one while a threadpool worker writes the other and hashes it
 * (SHA-256 of the whole file). The dataset scanner reads the UIDs on the way. At the end the
 * object is checked and handed to the group committer; the callback gets the DIMSE status. */
#ifndef GW_STORE_H
#define GW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "dsscan.h"
#include "spool/spool_commit.h"
#include "ts.h"

struct backend;

#define GW_IMPL_CLASS_UID "2.25.75036562285429820899189332740951902123"
#define GW_IMPL_VERSION "DICOMGW_010"

struct store_params {
    const char *sop_class;    /* from the command, validated */
    const char *sop_instance; /* from the command, validated */
    const struct ts_info *ts;
    const char *calling_ae, *called_ae;
    const char *peer;         /* "addr:port" of the modality (PROXY v2 source when present) */
    const char *cert_cn, *cert_fingerprint, *client_id; /* from PROXY v2; may be "" */
    uint64_t assoc_id;
    size_t buf_cap;           /* each of the two buffers; >= the largest single append */
    bool early_sync;          /* fsync mode: start writeback while receiving */
    bool sha256;              /* compute the SHA-256 too (spool_checksum "sha256"); the
                                 CRC-64/NVME is always computed */
    struct backend *ack_via;  /* ack "s3"/"healthimaging": success waits for this backend's
                                 backend_await (NULL: success once durable in the spool) */
};

struct store_obj;

/* Called on the loop thread once the object is durable in ready/ (status 0x0000) or has failed
 * (0xA700 out of resources, 0xA900 SOP class mismatch, 0xC000 cannot understand). comment is a
 * short reason for the Error Comment, or NULL. The object is freed right after cb returns. */
typedef void (*store_done_cb)(void *arg, uint16_t status, const char *comment,
                              const struct store_obj *o);

/* Open the tmp file and queue the File Meta Information. Returns 0 and *out, or a negative
 * code (the caller answers 0xA700). */
MUST_CHECK int store_begin(uv_loop_t *loop, struct spool *spool,
                           struct spool_committer *committer, const struct store_params *p,
                           struct store_obj **out);
/* True when n more bytes can be appended now without waiting for the disk. */
bool store_can_accept(const struct store_obj *o, size_t n);
/* Ask for cb(arg) once store_can_accept would be true again (one-shot). */
void store_on_room(struct store_obj *o, void (*cb)(void *arg), void *arg);
/* Append dataset bytes (copied). The caller checked store_can_accept. Failures are recorded
 * and reported by the final status; the bytes are then discarded. */
void store_write(struct store_obj *o, const uint8_t *p, size_t n);
/* The last fragment arrived: flush, check, commit; cb fires exactly once. */
void store_end(struct store_obj *o, store_done_cb cb, void *arg);
/* The association is gone: nothing will be acknowledged; the object deletes its tmp file and
 * frees itself when its in-flight work ends. No callback fires after this. */
void store_abort(struct store_obj *o);

/* Free the idle receive buffers kept for reuse (at shutdown). */
void store_release_buffers(void);

/* Accessors for logs and metrics. */
uint64_t store_bytes(const struct store_obj *o);
const char *store_sha256_hex(const struct store_obj *o); /* "" without spool_checksum sha256 */
const char *store_crc64_hex(const struct store_obj *o);  /* 16 lowercase hex digits */
const struct ds_uids *store_uids(const struct store_obj *o);
const char *store_id(const struct store_obj *o);
/* The object's Patient ID (ds_scan_patient_id), for the audit trail only (core_audit_stored):
 * never into logs, sidecars or tables. "" when unknown. Lives as long as o. */
const char *store_patient_id(const struct store_obj *o);

#endif
