/* cert_metrics: when the edge's certificates and CRL stop being valid, as Prometheus gauges in
 * unix seconds, so that an alert fires weeks before a handshake starts failing. Read from the
 * files of the configuration in force (at start and after each accepted SIGHUP reload):
 *
 *   dicom_edge_cert_not_after_seconds{cert="server"}                 tls.cert (our leaf)
 *   dicom_edge_cert_not_after_seconds{cert="client_ca"}              tls.client_ca (the earliest
 *                                                                    CA of the bundle)
 *   dicom_edge_cert_not_after_seconds{cert="route_client",route=R}   routes.R.tls.cert (leaf)
 *   dicom_edge_crl_next_update_seconds                               tls.crl (the earliest
 *                                                                    nextUpdate of its CRLs)
 *   dicom_edge_cert_not_after_seconds{cert="reverse_client_ca"}      reverse.tls.client_ca
 *   dicom_edge_cert_not_after_seconds{cert="reverse_server"}         reverse.tls.cert, when it
 *                                                                    is not tls.cert
 *   dicom_edge_cert_not_after_seconds{cert="device_client"}          the policy's device_tls.cert
 *   dicom_edge_reverse_crl_next_update_seconds                       reverse.tls.crl
 *
 * 0 means "not configured" (no CRL, a route without a client certificate, or one that a reload
 * dropped: a registry cannot remove a series) and is never a date; alerts skip it. */
#ifndef GW_CERT_METRICS_H
#define GW_CERT_METRICS_H

#include "common/err.h"
#include "edge_config.h"
#include "net/metrics.h"
#include "policy.h"

/* Set the gauges above from cfg's files and pol's routes (pol may be NULL). Failures are
 * reported, never fatal: the edge has just loaded the same files, so they only lose a gauge. A
 * file that cannot be read or holds no certificate (or CRL) leaves its gauge at 0 and logs a
 * `cert_metrics_unreadable` warning; a gauge that cannot be registered (out of memory) logs
 * `cert_metrics_failed`. Call from the edge's loop thread only (it remembers route names). */
void cert_metrics_update(struct metrics *m, const struct edge_config *cfg,
                         const struct policy *pol);

/* One date the last update read, for `dicom-edge status`. */
struct cert_date {
    char what[80];  /* "tls.cert", "routes.vpc.tls.cert", "tls.crl" ... */
    char path[EDGE_PATH_MAX];
    bool crl;       /* a CRL's nextUpdate (else a certificate's notAfter) */
    int64_t when;   /* unix seconds; 0: unreadable */
};

/* The dates the last cert_metrics_update read (loop thread only): their number, and *out
 * pointing at a table that the next update rewrites. */
size_t cert_metrics_dates(const struct cert_date **out);

#endif
