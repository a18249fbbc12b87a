/* backend_read: reading back what a backend holds, for the SCP's C-FIND, C-GET and C-MOVE
 * services (issue 15). A backend that can (aws: HealthImaging's QIDO-RS and WADO-RS; file: its
 * own store) fills a struct backend_read_ops and points its backend_ops.read at it. Everything
 * runs on env->loop (the program's loop): every callback comes back there, never inside the
 * call that started it. Who may read what is decided by the caller (the SCP, from the client's
 * grants) and handed down as a struct backend_read_scope, which a backend enforces again where
 * it can (aws: an STS session policy limited to the studies in scope).
 *
 * Status: the interface the read path is built on. The first implementations land with it. */
#ifndef GW_BACKEND_READ_H
#define GW_BACKEND_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/dcm_ds.h"
#include "common/dcm_query.h"
#include "common/err.h"
#include "common/grants.h"

/* What the client may read (DESIGN.md invariant 6). studies: the Study Instance UIDs it may
 * see when scope is OWN or SHARED (resolved by backend_read_ops.scope_studies), NULL for ALL. */
struct backend_read_scope {
    enum grant_scope scope;
    const char *client_id;
    const char *const *studies;
    size_t n_studies;
};

/* Who "own" refers to (GRANT_SCOPE_OWN), for a reader and for the sender of a stored instance
 * alike: the policy client id the edge vouched for (PROXY v2), else, for a direct connection,
 * "ae:" and the calling AE title (what the core's "clients" grants are keyed by). */
static inline void backend_read_owner(const char *client_id, const char *calling, char *out,
                                      size_t cap)
{
    if (client_id && client_id[0])
        snprintf(out, cap, "%s", client_id);
    else
        snprintf(out, cap, "ae:%s", calling ? calling : "");
}
#define BACKEND_OWNER_MAX 160 /* room for either form */

/* A search or a fetch in progress; its backend owns it until its done callback has run. */
struct backend_read_op;

struct backend_search_cbs {
    /* One candidate at the query's level: the attributes the backend has for it (DICOM JSON
     * turned into a dataset, or the file store's index), including the unique keys of every
     * level above. The caller matches it (dcm_match) and builds the response. Borrowed for the
     * call. Return 0 to go on, 1 to pause (resume with backend_read_ops.resume), < 0 to stop. */
    int (*result)(void *arg, const struct dcm_ds *cand);
    /* The end, exactly once: err 0 when every result was given; ERR_LIMIT when the backend's
     * own cap cut them short (HealthImaging returns at most 10,000), why naming it; any other
     * error (outage, throttled past the deadline, refused) with why. */
    void (*done)(void *arg, int err, const char *why);
    void *arg;
};

/* The identity of one instance as a fetch begins: what the receiver must be told. */
struct backend_instance {
    char study[65], series[65], sop[65], sop_class[65];
    char ts[65];    /* the transfer syntax of the bytes that follow */
    uint64_t bytes; /* of the dataset, 0 when unknown */
};

struct backend_fetch_cbs {
    /* Before the first byte. Return 0 to go on, < 0 to stop. */
    int (*begin)(void *arg, const struct backend_instance *inst);
    /* Dataset bytes (the File Meta Information already removed), in order. Return 0 to go on,
     * 1 to pause (resume with backend_read_ops.resume: a slow receiver slows the download,
     * nothing is buffered), < 0 to stop. */
    int (*data)(void *arg, const uint8_t *p, size_t n);
    /* The end, exactly once: 0 after the last byte, or the failure with why. */
    void (*done)(void *arg, int err, const char *why);
    void *arg;
};

/* The studies a client may read under a scope, for the caller to keep for the association. */
typedef void (*backend_studies_cb)(void *arg, int err, const char *const *studies, size_t n);

struct backend_read_ops {
    /* Search at q's level. 0 and *op (callbacks follow), or < 0 (none will). */
    int (*search)(void *impl, const struct dcm_query *q, const struct backend_read_scope *scope,
                  const struct backend_search_cbs *cbs, struct backend_read_op **op);
    /* Fetch one instance, in one of the transfer syntaxes the receiver accepted (ts[0..n_ts),
     * in preference order; the stored one when it is among them). 0 and *op, or < 0. */
    int (*fetch)(void *impl, const char *study, const char *series, const char *sop,
                 const char *const *ts, size_t n_ts, const struct backend_read_scope *scope,
                 const struct backend_fetch_cbs *cbs, struct backend_read_op **op);
    /* After a callback returned 1. */
    void (*resume)(struct backend_read_op *op);
    /* Stop now; no callback follows (C-CANCEL, the association's end). */
    void (*cancel)(struct backend_read_op *op);
    /* The studies client_id may read under scope (OWN: those its certificate sent; SHARED:
     * those plus the grants made for it that have not expired). cb once. 0 or < 0 (no cb). */
    int (*scope_studies)(void *impl, const char *client_id, enum grant_scope scope,
                         backend_studies_cb cb, void *arg);
};

#endif
