/* mi: AWS HealthImaging ("medical-imaging", SigV4 signing name medical-imaging).
 * Control plane (REST-JSON) at https://medical-imaging.<region>.amazonaws.com:
 *   StartDICOMImportJob  POST /startDICOMImportJob/datastore/{datastoreId}
 *   GetDICOMImportJob    GET  /getDICOMImportJob/datastore/{datastoreId}/job/{jobId}
 * Data plane (DICOMweb STOW-RS) at https://dicom-medical-imaging.<region>.amazonaws.com:
 *   StoreDICOM           POST /datastore/{datastoreId}/studies[/{StudyInstanceUID}]
 *   with Content-Type multipart/related; type="application/dicom"; boundary=...; the body is
 *   streamed from the Part-10 file and the answer, a PS3.18 store response in DICOM JSON
 *   (ReferencedSOPSequence 0008,1199 / FailedSOPSequence 0008,1198), is read per instance
 *   whatever the HTTP status. All callbacks run on the http client's loop. */
#ifndef GW_MI_H
#define GW_MI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "http.h"

struct mi_client;
struct creds_provider;

struct mi_opts {
    const char *region;         /* required */
    const char *endpoint;       /* control plane override, NULL/"" = AWS */
    const char *dicom_endpoint; /* data plane override, NULL/"" = AWS */
};

/* http/creds borrowed (outlive the client and its calls); strings copied. 0/ERR_NOMEM/
 * ERR_CONFIG. */
MUST_CHECK int mi_client_new(struct http_client *http, struct creds_provider *creds,
                             const struct mi_opts *opts, struct mi_client **out);
void mi_client_free(struct mi_client *m); /* only when idle; NULL is fine */

struct mi_start_job {
    const char *datastore_id;
    const char *role_arn;      /* dataAccessRoleArn */
    const char *client_token;  /* idempotency: the batch id (1..64 chars) */
    const char *input_s3_uri;  /* "s3://bucket/prefix/batch/" */
    const char *output_s3_uri; /* "s3://bucket/import-output/" */
    const char *job_name;      /* optional (1..64) */
};
/* The fields of a job as the API returns them (strings truncated to fit are an error). */
struct mi_job {
    char job_id[80];
    char datastore_id[80];
    char job_status[24];  /* SUBMITTED | IN_PROGRESS | COMPLETED | FAILED */
    char job_name[80];
    char input_s3_uri[1100];
    char output_s3_uri[1100];
    char message[1024];
    char submitted_at[40], ended_at[40]; /* as sent (epoch seconds or ISO); "" if absent */
};
/* Start: job (borrowed for the callback) has job_id, datastore_id, job_status filled; NULL on
 * failure. ConflictException, ValidationException... are in res->error_code. */
typedef void (*mi_job_cb)(void *arg, const struct http_result *res, const struct mi_job *job);
MUST_CHECK int mi_start_import_job(struct mi_client *m, const struct mi_start_job *req,
                                   mi_job_cb cb, void *arg);
/* Get: the "jobProperties" of the answer. */
MUST_CHECK int mi_get_import_job(struct mi_client *m, const char *datastore_id,
                                 const char *job_id, mi_job_cb cb, void *arg);

/* One instance of a STOW-RS answer. */
struct mi_stow_instance {
    char sop_class_uid[65];
    char sop_instance_uid[65];
    bool stored;             /* in ReferencedSOPSequence (else FailedSOPSequence) */
    int failure_reason;      /* (0008,1197) or -1 */
    int warning_reason;      /* (0008,1196) or -1 */
    char retrieve_url[512];  /* (0008,1190) of the instance, "" if absent */
};
#define MI_STOW_MAX_INSTANCES 64
struct mi_stow_result {
    size_t n;                /* instances listed (at most MI_STOW_MAX_INSTANCES; more = error) */
    struct mi_stow_instance inst[MI_STOW_MAX_INSTANCES];
    char retrieve_url[512];  /* study-level (0008,1190), "" if absent */
};
/* out is borrowed for the callback, NULL when the body was not a store response (transport
 * failure, or an error JSON: then see res). A 2xx with a failed instance still has res->err 0:
 * read out per instance. A 409 whose body is a store response gives res->err HTTP_ERR_STATUS and
 * out. */
typedef void (*mi_stow_cb)(void *arg, const struct http_result *res,
                           const struct mi_stow_result *out);
/* StoreDICOM of the Part-10 file path [off, off+len) as one multipart/related part; study_uid
 * may be NULL (POST .../studies). The body's SHA-256 (payload hash) is computed on the
 * threadpool. */
MUST_CHECK int mi_store_dicom(struct mi_client *m, const char *datastore_id,
                              const char *study_uid, const char *path, uint64_t off,
                              uint64_t len, mi_stow_cb cb, void *arg);

/* Pure parsers (tests, fuzzers). 0, ERR_MALFORMED (not the documented shape), ERR_LIMIT. */
MUST_CHECK int mi_parse_job(const uint8_t *p, size_t len, const char *wrapper,
                            struct mi_job *out); /* wrapper "jobProperties" or NULL (top) */
MUST_CHECK int mi_parse_stow_response(const uint8_t *p, size_t len, struct mi_stow_result *out);

#endif
