/* pipeline_config: the "backend" object of type "aws" in core.json, parsed and checked as a
 * whole (every problem reported, naming its key), then frozen. docs/configuration.md documents
 * every key. */
#ifndef GW_PIPELINE_CONFIG_H
#define GW_PIPELINE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "common/wbuf.h"

enum pipeline_mode { PIPELINE_MODE_IMPORT = 0, PIPELINE_MODE_STOW = 1 };
enum pipeline_sse { PIPELINE_SSE_AES256 = 0, PIPELINE_SSE_KMS = 1 };
/* s3.checksum: what S3 verifies and keeps with each object (the DynamoDB key and the dedupe rule
 * stay on the core's SHA-256 either way). */
enum pipeline_checksum { PIPELINE_CHECKSUM_SHA256 = 0, PIPELINE_CHECKSUM_CRC64NVME = 1 };

/* HealthImaging quotas (FACTS.md): 5,000 files and 10 GB per import job, 100 concurrent jobs;
 * CONTRACTS.md fixes the byte bound (and default) at 10 GiB. */
#define PIPELINE_JOB_MAX_OBJECTS 5000u
#define PIPELINE_JOB_MAX_BYTES 10737418240ull
#define PIPELINE_MAX_JOBS 100u
/* S3: parts are 5 MiB .. 5 GiB, at most 10,000 of them. */
#define PIPELINE_PART_MIN (5ull << 20)
#define PIPELINE_PART_MAX (5ull << 30)

struct pipeline_config {
    char region[32];
    struct {
        char bucket[64];
        char prefix[256];
        char output_prefix[256];
        enum pipeline_sse sse;
        char kms_key_id[256];
        uint64_t multipart_threshold;
        uint64_t part_size;
        enum pipeline_checksum checksum;
    } s3;
    struct {
        enum pipeline_mode mode;
        char datastore_id[64];
        char data_access_role_arn[256];
        uint32_t batch_max_objects;
        uint64_t batch_max_bytes;
        uint32_t batch_max_age_ms;
        uint32_t max_concurrent_jobs;
        double start_tps;
        uint32_t poll_initial_ms;
        uint32_t poll_max_ms;
    } hi;
    struct {
        char table[256];
    } ddb;
    struct {
        char s3[512], dynamodb[512], medical_imaging[512], medical_imaging_dicom[512], sts[512];
    } endpoints;
    uint32_t max_uploads;     /* objects in flight at once (S3 PUTs) */
    uint32_t ack_timeout_ms;  /* ack "s3"/"healthimaging": answer 0xA700 after this long */
    uint32_t retry_max_ms;    /* cap of the pipeline's own backoff between attempts of a step */
};

/* Parse json (the "backend" object as text). Fills *out with defaults first; appends one line
 * per problem to errs ("backend.<key>: <why>"). Returns 0 or ERR_CONFIG. */
MUST_CHECK int pipeline_config_parse(const char *json, struct pipeline_config *out,
                                     struct wbuf *errs);

/* Check the combination with the core's ack mode (0 spool, 1 s3, 2 healthimaging). */
MUST_CHECK int pipeline_config_check_ack(const struct pipeline_config *c, int ack,
                                         struct wbuf *errs);

#endif
