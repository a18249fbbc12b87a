#include "cert_metrics.h"

#include <stdio.h>
#include <string.h>

#include <openssl/asn1.h>
/* openssl/err.h needs INT_MAX from <limits.h>, which edge/limits.h shadows on this target's
 * include path */
#ifndef INT_MAX
#define INT_MAX __INT_MAX__
#endif
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/log.h"

#define NOT_AFTER "dicom_edge_cert_not_after_seconds"
#define NOT_AFTER_HELP "When a certificate the edge uses expires (unix seconds; 0: not configured)"
#define NEXT_UPDATE "dicom_edge_crl_next_update_seconds"
#define NEXT_UPDATE_HELP                                                                           \
    "The earliest nextUpdate of the CRLs the edge checks client certificates against (unix "      \
    "seconds; 0: no CRL configured)"

#define REVERSE_NEXT_UPDATE "dicom_edge_reverse_crl_next_update_seconds"
#define REVERSE_NEXT_UPDATE_HELP                                                                   \
    "The earliest nextUpdate of the CRLs the reverse listener checks the core's certificates "    \
    "against (unix seconds; 0: no CRL configured)"

/* What the last update read, for the status page (loop thread only). */
#define MAX_DATES (8 + POLICY_MAX_ROUTES)
static struct cert_date g_dates[MAX_DATES];
static size_t g_n_dates;

static void remember(const char *what, const char *path, bool crl, int64_t when)
{
    if (g_n_dates >= MAX_DATES || !path || !path[0])
        return;
    struct cert_date *d = &g_dates[g_n_dates++];
    snprintf(d->what, sizeof d->what, "%s", what);
    snprintf(d->path, sizeof d->path, "%s", path);
    d->crl = crl;
    d->when = when;
}

size_t cert_metrics_dates(const struct cert_date **out)
{
    *out = g_dates;
    return g_n_dates;
}

/* Route names whose gauge was set once: a reload that drops a route sets its gauge to 0 (the
 * registry cannot remove a series). Only the edge's loop thread calls cert_metrics_update. */
static char g_routes[POLICY_MAX_ROUTES][64];
static size_t g_n_routes;

/* t as unix seconds (exact: the difference from the epoch as OpenSSL computes it); 0 if t is
 * NULL or unparsable, which no real certificate date is. */
static int64_t asn1_to_unix(const ASN1_TIME *t)
{
    if (!t)
        return 0;
    ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
    int days = 0, secs = 0;
    int ok = epoch && ASN1_TIME_diff(&days, &secs, epoch, t);
    ASN1_TIME_free(epoch);
    return ok ? (int64_t)days * 86400 + secs : 0;
}

static void log_unreadable(const char *what, const char *path)
{
    struct logb lb;
    if (log_begin(&lb, LOG_WARN, "cert_metrics_unreadable")) {
        log_str(&lb, "what", what);
        log_str(&lb, "path", path);
        log_end(&lb);
    }
}

/* The notAfter of the first certificate in the PEM file (first_only) or the earliest of all;
 * 0 with nothing readable. */
static int64_t pem_not_after(const char *path, bool first_only)
{
    BIO *in = BIO_new_file(path, "r");
    int64_t best = 0;
    X509 *x;
    while (in && (x = PEM_read_bio_X509(in, NULL, NULL, NULL)) != NULL) {
        int64_t v = asn1_to_unix(X509_get0_notAfter(x));
        X509_free(x);
        if (v > 0 && (best == 0 || v < best))
            best = v;
        if (first_only)
            break;
    }
    BIO_free(in);
    ERR_clear_error(); /* the read that ends the loop leaves "no start line" behind */
    return best;
}

/* The earliest nextUpdate of the CRLs in the PEM file; 0 with none (or none that has one). */
static int64_t pem_crl_next_update(const char *path)
{
    BIO *in = BIO_new_file(path, "r");
    int64_t best = 0;
    X509_CRL *crl;
    while (in && (crl = PEM_read_bio_X509_CRL(in, NULL, NULL, NULL)) != NULL) {
        int64_t v = asn1_to_unix(X509_CRL_get0_nextUpdate(crl));
        X509_CRL_free(crl);
        if (v > 0 && (best == 0 || v < best))
            best = v;
    }
    BIO_free(in);
    ERR_clear_error();
    return best;
}

/* Set name{labels} to v. ERR_NOMEM when the gauge cannot be registered (out of memory, or
 * labels that are not valid Prometheus syntax, which our label values never are). */
static int set_gauge(struct metrics *m, const char *name, const char *help, const char *labels,
                     int64_t v)
{
    struct metric_gauge *g = metrics_gauge(m, name, help, labels);
    if (!g)
        return ERR_NOMEM;
    metric_gauge_set(g, v);
    return 0;
}

/* One certificate file's gauge (0 when path is unset; logged when it yields no date). */
static int cert_gauge(struct metrics *m, const char *labels, const char *what, const char *path,
                      bool first_only)
{
    int64_t v = 0;
    if (path && path[0]) {
        v = pem_not_after(path, first_only);
        if (v == 0)
            log_unreadable(what, path);
    }
    remember(what, path, false, v);
    return set_gauge(m, NOT_AFTER, NOT_AFTER_HELP, labels, v);
}

static bool route_in(const struct policy *pol, const char *name)
{
    for (size_t i = 0; pol && i < pol->n_routes; i++) {
        if (strcmp(pol->routes[i].name, name) == 0)
            return true;
    }
    return false;
}

static int route_gauges(struct metrics *m, const struct policy *pol)
{
    char labels[128];
    /* routes that a reload dropped: 0, "not configured" */
    for (size_t i = 0; i < g_n_routes; i++) {
        if (route_in(pol, g_routes[i]))
            continue;
        snprintf(labels, sizeof labels, "cert=\"route_client\",route=\"%s\"", g_routes[i]);
        TRY(set_gauge(m, NOT_AFTER, NOT_AFTER_HELP, labels, 0));
    }
    for (size_t i = 0; pol && i < pol->n_routes; i++) {
        const struct policy_route *rt = &pol->routes[i];
        /* a route name with a quote or backslash would need escaping; policy names are plain
         * words, and such a name only loses its gauge (metrics_gauge refuses the labels) */
        if (strpbrk(rt->name, "\"\\\n"))
            continue;
        int n = snprintf(labels, sizeof labels, "cert=\"route_client\",route=\"%s\"", rt->name);
        if (n < 0 || (size_t)n >= sizeof labels)
            continue;
        char what[80];
        snprintf(what, sizeof what, "routes.%.50s.tls.cert", rt->name);
        TRY(cert_gauge(m, labels, what, rt->tls ? rt->tls_opts.cert : NULL, true));
        bool seen = false;
        for (size_t j = 0; j < g_n_routes && !seen; j++)
            seen = strcmp(g_routes[j], rt->name) == 0;
        if (!seen && g_n_routes < POLICY_MAX_ROUTES)
            snprintf(g_routes[g_n_routes++], sizeof g_routes[0], "%s", rt->name);
    }
    return 0;
}

/* A CRL file's gauge (0 when path is unset; logged when it yields no date). */
static int crl_gauge(struct metrics *m, const char *name, const char *help, const char *what,
                     const char *path)
{
    int64_t next = 0;
    if (path[0]) {
        next = pem_crl_next_update(path);
        if (next == 0)
            log_unreadable(what, path);
    }
    remember(what, path, true, next);
    return set_gauge(m, name, help, NULL, next);
}

/* The reverse listener's files (cfg->reverse) and the edge's client certificate toward devices;
 * every gauge 0 when not configured. */
static int reverse_gauges(struct metrics *m, const struct edge_config *cfg,
                          const struct policy *pol)
{
    bool on = cfg->reverse.enabled;
    bool own = on && strcmp(cfg->reverse.tls.cert, cfg->tls.cert) != 0;
    TRY(cert_gauge(m, "cert=\"reverse_server\"", "reverse.tls.cert",
                   own ? cfg->reverse.tls.cert : NULL, true));
    TRY(cert_gauge(m, "cert=\"reverse_client_ca\"", "reverse.tls.client_ca",
                   on ? cfg->reverse.tls.client_ca : NULL, false));
    TRY(crl_gauge(m, REVERSE_NEXT_UPDATE, REVERSE_NEXT_UPDATE_HELP, "reverse.tls.crl",
                  on ? cfg->reverse.tls.crl : ""));
    const char *dev = pol && pol->device_tls.given ? pol->device_tls.cert : NULL;
    return cert_gauge(m, "cert=\"device_client\"", "device_tls.cert", dev, true);
}

static int update(struct metrics *m, const struct edge_config *cfg, const struct policy *pol)
{
    g_n_dates = 0;
    /* an unreadable file is logged where it is met, and the other gauges go on */
    TRY(cert_gauge(m, "cert=\"server\"", "tls.cert", cfg->tls.cert, true));
    TRY(cert_gauge(m, "cert=\"client_ca\"", "tls.client_ca", cfg->tls.client_ca, false));
    TRY(crl_gauge(m, NEXT_UPDATE, NEXT_UPDATE_HELP, "tls.crl", cfg->tls.crl));
    TRY(reverse_gauges(m, cfg, pol));
    return route_gauges(m, pol);
}

void cert_metrics_update(struct metrics *m, const struct edge_config *cfg,
                         const struct policy *pol)
{
    int rc = m && cfg ? update(m, cfg, pol) : ERR_WRONG_STATE;
    if (rc < 0) {
        struct logb lb;
        if (log_begin(&lb, LOG_ERROR, "cert_metrics_failed")) {
            log_str(&lb, "err", err_str(rc));
            log_end(&lb);
        }
    }
}
