/* dicomweb: HealthImaging's DICOMweb read APIs (docs/testing-aws.md "HealthImaging DICOMweb
 * read APIs: facts we rely on"), on the shared plumbing (aws_client.h, http.h): SigV4 name
 * "medical-imaging", host dicom-medical-imaging.<region>.amazonaws.com (or an override),
 * paths under /datastore/<id>.
 *
 * QIDO-RS search (SearchDICOMStudies, SearchDICOMSeries, SearchDICOMInstances and the
 * study-instances, all-series and all-instances forms): every page is followed with limit and
 * offset; each answer (PS3.18 F.2 DICOM JSON) is converted by dicom_json.h and handed on result
 * by result. HealthImaging returns at most max_results (10,000) matches and says nothing when
 * it cuts: a full page that ends at result max_results ends the search with ERR_LIMIT, as does
 * a PS3.18 "Warning: 299" header. The query string goes out encoded as SigV4 canonicalises it
 * (every byte but RFC 3986's unreserved ones percent-encoded: '*' is %2A).
 *
 * WADO-RS instance retrieval (GetDICOMInstance): the answer is streamed, never held: either the
 * Part-10 file as the body (Content-Type application/dicom, AWS's documented form) or a
 * multipart/related body with one application/dicom part (PS3.18's form); the File Meta
 * Information is read (p10meta.h) and removed, and the dataset bytes are handed on as they
 * arrive. A reader that pauses pauses the transfer (backpressure).
 *
 * Requests that HealthImaging throttles (429, ThrottlingException) or fails (5xx), and transport
 * failures before any byte was handed on, are retried with backoff and jitter for at most the
 * deadline; an expired token is refreshed and retried. Every callback runs on the http client's
 * loop, never inside the call that started the operation. */
#ifndef GW_DICOMWEB_H
#define GW_DICOMWEB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/dcm_ds.h"
#include "common/err.h"
#include "common/wbuf.h"
#include "http.h"

struct dw_client;
struct dw_op;
struct creds_provider;

struct dw_opts {
    const char *region;       /* required */
    const char *endpoint;     /* NULL/"": https://dicom-medical-imaging.<region>.amazonaws.com */
    const char *datastore_id; /* required: letters and digits */
    unsigned page_size;       /* QIDO limit per page, 1..1000; 0: 1000 (AWS's maximum) */
    unsigned max_results;     /* the service's cap on matches; 0: 10,000 (AWS) */
    uint64_t deadline_ms;     /* retries of one request end after this; 0: 30 s */
    size_t max_page_bytes;    /* cap on one QIDO answer; 0: 32 MiB */
};

/* http is borrowed (outlives the client and its operations); strings are copied. 0, ERR_NOMEM,
 * ERR_CONFIG (region, datastore or endpoint invalid, page_size over 1000). */
MUST_CHECK int dw_client_new(struct http_client *http, const struct dw_opts *o,
                             struct dw_client **out);
/* Only when no operation is in flight. NULL is fine. */
void dw_client_free(struct dw_client *d);
/* The data store id it was made for. */
const char *dw_client_datastore_id(const struct dw_client *d);

/* ---- QIDO-RS -------------------------------------------------------------------------------- */

enum dw_level { DW_STUDIES = 0, DW_SERIES = 1, DW_INSTANCES = 2 };

/* A query parameter: a keyword ("PatientID") or tag ("00100020") and its value as DICOM text in
 * UTF-8 (a wild card, a range "a-b", a UID list "u1,u2"), percent-encoded here. */
struct dw_qido_key {
    const char *name;
    const char *value;
};

struct dw_qido {
    enum dw_level level;
    const char *study;  /* NULL, or the study of the path (/studies/{study}/...) */
    const char *series; /* NULL, or the series (needs study; only at DW_INSTANCES) */
    const struct dw_qido_key *keys;
    size_t n_keys;
    const char *const *includefield; /* keywords or tags; at most 50 */
    size_t n_include;
    bool fuzzy; /* fuzzymatching=true */
};

/* The path under the data store (".../studies/1.2/series") and the query of one page (keys,
 * includefield, fuzzymatching, limit, offset), each appended to its wbuf, the query already in
 * SigV4's canonical encoding. Pure. 0, ERR_MALFORMED (a UID that is not one, a series without
 * its study, a series at another level than instances, a key name that is neither a keyword
 * nor 8 hex digits), ERR_LIMIT (over 50 includefield, or the wbufs' caps). */
MUST_CHECK int dw_qido_build(const struct dw_qido *q, unsigned limit, unsigned offset,
                             struct wbuf *path, struct wbuf *query);

/* Whether a QIDO page ends the search, by what it held: n results asked with limit at offset,
 * under max_results. 0: the last page (fewer than limit); 1: fetch the next page; ERR_LIMIT:
 * the cap was reached (a full page ending at max_results or beyond). Pure. */
MUST_CHECK int dw_qido_page_outcome(size_t n, unsigned limit, unsigned offset,
                                    unsigned max_results);

struct dw_search_cbs {
    /* One match, at the level searched, in the answer's order: a dataset borrowed for the
     * call (the reader may add to it). 0 to go on, 1 to pause (dw_resume), < 0 to stop (done
     * follows with that error). */
    int (*result)(void *arg, struct dcm_ds *ds);
    /* Once: err 0 after the last match; ERR_LIMIT (the cap), ERR_MALFORMED (an answer that is
     * not DICOM JSON), an HTTP_ERR_* with res (the service's status and error code), or the
     * result callback's error. why is a sentence for the log and the SCU (never a value of the
     * data). res may be NULL. */
    void (*done)(void *arg, int err, const struct http_result *res, const char *why);
    void *arg;
};

/* Search with q, signing with creds (borrowed until done). 0 and *op, or < 0 (no callback). */
MUST_CHECK int dw_search(struct dw_client *d, struct creds_provider *creds,
                         const struct dw_qido *q, const struct dw_search_cbs *cbs,
                         struct dw_op **op);

/* ---- WADO-RS -------------------------------------------------------------------------------- */

struct dw_wado {
    const char *study, *series, *sop; /* UIDs */
    const char *transfer_syntax;      /* "*" (as stored), a UID, or NULL (AWS's default, Explicit
                                         VR Little Endian) */
    bool multipart;                   /* ask for multipart/related (PS3.18) */
    const char *image_set_id;         /* NULL: the primary image set */
};

/* The instance as its answer's File Meta Information names it. */
struct dw_instance {
    char ts[65], sop_class[65], sop[65];
    uint64_t bytes; /* the dataset's size when the answer tells it, else 0 */
};

struct dw_wado_cbs {
    /* The meta was read, before the first dataset byte. 0 to go on, < 0 to stop (done follows
     * with that error). */
    int (*begin)(void *arg, const struct dw_instance *inst);
    /* Dataset bytes, in order; all of them are taken. 0 to go on, 1 to pause (nothing more
     * until dw_resume; the transfer is paused), < 0 to stop. */
    int (*data)(void *arg, const uint8_t *p, size_t n);
    /* Once: 0 after the last byte; HTTP_ERR_* with res (a 406 is HTTP_ERR_STATUS with status
     * 406), ERR_MALFORMED (not a Part-10 answer, a broken multipart body, another instance
     * than asked), ERR_TRUNCATED (the body ended early), or a callback's error. */
    void (*done)(void *arg, int err, const struct http_result *res, const char *why);
    void *arg;
};

/* Retrieve one instance, signing with creds (borrowed until done). 0 and *op, or < 0. */
MUST_CHECK int dw_retrieve(struct dw_client *d, struct creds_provider *creds,
                           const struct dw_wado *w, const struct dw_wado_cbs *cbs,
                           struct dw_op **op);

/* ---- both ----------------------------------------------------------------------------------- */

/* After a callback returned 1: go on (later, from the loop). */
void dw_resume(struct dw_op *op);
/* Stop now: no callback follows; the operation frees itself. */
void dw_cancel(struct dw_op *op);

#endif
