/* core_metrics: the metrics of the SCP (associations, objects, statuses), registered once. */
#include <stdio.h>

#include "core_ctx.h"

void core_count_failure(struct core_ctx *ctx, uint16_t status)
{
    char labels[32];
    snprintf(labels, sizeof labels, "status=\"%04X\"", status);
    struct metric_counter *c = metrics_counter_get(ctx->metrics, "dicom_core_dimse_failures_total",
                                                   "DIMSE responses with a failure status",
                                                   labels);
    if (c)
        metric_inc(c);
}

int core_metrics_init(struct core_ctx *ctx)
{
    struct metrics *m = ctx->metrics;
    struct core_metrics *cm = &ctx->m;
    const char *h_assoc = "Associations by outcome";
    cm->assoc_accepted = metrics_counter(m, "dicom_core_associations_total", h_assoc,
                                         "result=\"accepted\"");
    cm->assoc_rejected = metrics_counter(m, "dicom_core_associations_total", h_assoc,
                                         "result=\"rejected\"");
    cm->assoc_released = metrics_counter(m, "dicom_core_associations_total", h_assoc,
                                         "result=\"released\"");
    cm->assoc_aborted = metrics_counter(m, "dicom_core_associations_total", h_assoc,
                                        "result=\"aborted\"");
    cm->assoc_active = metrics_gauge(m, "dicom_core_associations_active",
                                     "Connections currently open", NULL);
    cm->objects = metrics_counter(m, "dicom_core_objects_stored_total",
                                  "Objects acknowledged with success (durable in the spool)", NULL);
    cm->bytes = metrics_counter(m, "dicom_core_bytes_stored_total",
                                "Bytes of Part-10 files acknowledged", NULL);
    cm->echoes = metrics_counter(m, "dicom_core_echo_total", "C-ECHO requests answered", NULL);
    cm->pdu_aborts_sent = metrics_counter(m, "dicom_core_aborts_sent_total",
                                          "A-ABORT PDUs sent by the core", NULL);
    cm->spool_depth = metrics_gauge(m, "dicom_core_spool_depth",
                                    "Objects in the spool's ready area", NULL);
    cm->spool_bytes = metrics_gauge(m, "dicom_core_spool_bytes",
                                    "Bytes in the spool's ready area", NULL);
    if (!cm->assoc_accepted || !cm->assoc_rejected || !cm->assoc_released ||
        !cm->assoc_aborted || !cm->assoc_active || !cm->objects || !cm->bytes || !cm->echoes ||
        !cm->pdu_aborts_sent || !cm->spool_depth || !cm->spool_bytes)
        return ERR_NOMEM;
    return 0;
}

