#include "ts.h"

#include <string.h>

/* Preference order = table order. */
static const struct ts_info g_ts[] = {
    {"1.2.840.10008.1.2.4.80", "JPEG-LS Lossless", DS_EXPLICIT_LE, false},
    {"1.2.840.10008.1.2.4.90", "JPEG 2000 (Lossless Only)", DS_EXPLICIT_LE, false},
    {"1.2.840.10008.1.2.4.201", "HTJ2K (Lossless Only)", DS_EXPLICIT_LE, false},
    {"1.2.840.10008.1.2.4.202", "HTJ2K with RPCL Options (Lossless Only)", DS_EXPLICIT_LE, false},
    {"1.2.840.10008.1.2.4.70", "JPEG Lossless, First-Order Prediction", DS_EXPLICIT_LE, false},
    {"1.2.840.10008.1.2.4.57", "JPEG Lossless, Non-Hierarchical", DS_EXPLICIT_LE, false},
    {"1.2.840.10008.1.2.5", "RLE Lossless", DS_EXPLICIT_LE, false},
    {"1.2.840.10008.1.2.4.92", "JPEG 2000 Part 2 Multi-component (Lossless Only)", DS_EXPLICIT_LE,
     false},
    {TS_DEFLATED_LE, "Deflated Explicit VR Little Endian", DS_DEFLATED_LE, false},
    {TS_EXPLICIT_LE, "Explicit VR Little Endian", DS_EXPLICIT_LE, false},
    {TS_IMPLICIT_LE, "Implicit VR Little Endian", DS_IMPLICIT_LE, false},
    {"1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)", DS_EXPLICIT_LE, true},
    {"1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 & 4)", DS_EXPLICIT_LE, true},
    {"1.2.840.10008.1.2.4.81", "JPEG-LS Lossy (Near-Lossless)", DS_EXPLICIT_LE, true},
    {"1.2.840.10008.1.2.4.91", "JPEG 2000", DS_EXPLICIT_LE, true},
    {"1.2.840.10008.1.2.4.93", "JPEG 2000 Part 2 Multi-component", DS_EXPLICIT_LE, true},
    {"1.2.840.10008.1.2.4.203", "HTJ2K", DS_EXPLICIT_LE, true},
};

const struct ts_info *ts_find(const char *uid)
{
    for (size_t i = 0; i < ARRAY_LEN(g_ts); i++) {
        if (strcmp(g_ts[i].uid, uid) == 0)
            return &g_ts[i];
    }
    return NULL;
}

size_t ts_default_count(void)
{
    return ARRAY_LEN(g_ts);
}

const struct ts_info *ts_default_at(size_t i)
{
    return i < ARRAY_LEN(g_ts) ? &g_ts[i] : NULL;
}
