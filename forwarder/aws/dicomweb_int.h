/* dicomweb_int: what the files of the dicomweb module share (dicomweb.h is the public side).
 *   dicomweb.c       the client, the query and path builder, resume/cancel
 *   dicomweb_qido.c  QIDO-RS: pages, the cap, results handed on
 *   dicomweb_wado.c  WADO-RS: the streamed answer, multipart, the File Meta Information */
#ifndef GW_DICOMWEB_INT_H
#define GW_DICOMWEB_INT_H

#include "aws_client.h"
#include "dicom_json.h"
#include "dicomweb.h"
#include "mpart.h"
#include "p10meta.h"

struct dw_client {
    struct aws_client ac;
    char *base; /* "<endpoint>/datastore/<id>" */
    char datastore_id[64];
    unsigned page_size, max_results;
    uint64_t deadline_ms;
    size_t max_page_bytes;
};

enum dw_kind { DW_OP_SEARCH = 1, DW_OP_WADO = 2 };

struct dw_op {
    enum dw_kind kind;
    struct dw_client *d;
    struct creds_provider *creds;
    struct http_req *req;    /* in flight, else NULL */
    struct http_defer defer; /* resume, and the end of a search, from the loop */
    bool cancelled, paused, finished;
    bool in_cb; /* inside a user callback: a dw_cancel there only marks the op */
    /* search */
    struct dw_search_cbs scbs;
    struct dw_qido q;        /* deep copy: the strings live in qbuf */
    struct dw_qido_key *keys;
    const char **incl;
    char *qbuf;
    unsigned offset;
    struct dicom_json_list page;
    size_t next;             /* next result of page to hand on */
    int page_outcome;        /* dw_qido_page_outcome of the page being handed on */
    /* wado */
    struct dw_wado_cbs wcbs;
    bool multipart, told_begin, http_done, part_seen;
    uint64_t content_length; /* of a single-part answer, 0 when unknown */
    char want_sop[65];       /* the SOP Instance UID asked for */
    struct mpart *mp;
    struct p10meta *p10;
    uint8_t carry[MPART_BOUNDARY_MAX + 8]; /* dataset bytes not yet taken (see dicomweb_wado.c) */
    size_t ncarry;
    int end_err;             /* the outcome waiting for the pending bytes to be taken */
    struct http_result end_res;
    char why[256];
};

/* dicomweb.c: a new GET request for path (under the data store) and query (canonical). The
 * request is signed with creds and retried within the client's deadline. 0 or < 0. */
MUST_CHECK int dw_request(struct dw_client *d, struct creds_provider *creds, const char *path,
                          const char *query, struct http_req **out);
/* dicomweb.c: free op (its request already ended or was cancelled). */
void dw_op_free(struct dw_op *op);
/* dicomweb.c: a sentence for done's why from an http outcome ("HealthImaging answered 403
 * AccessDeniedException: ..."). */
void dw_why_http(const struct http_result *res, const char *what, char *out, size_t cap);

/* dicomweb_qido.c / dicomweb_wado.c: go on after a pause (from the loop). */
void dw_search_resume(struct dw_op *op);
void dw_wado_resume(struct dw_op *op);

#endif
