#include "sts_policy.h"

#include <stdio.h>
#include <string.h>

#include "common/dcm_vr.h"
#include "common/wbuf.h"

static const char *const g_core[] = {"SearchDICOMSeries", "SearchDICOMInstances",
                                     "GetDICOMInstance"};
static const char *const g_viewer[] = {"SearchDICOMSeries",        "SearchDICOMInstances",
                                       "GetDICOMInstance",         "GetDICOMInstanceMetadata",
                                       "GetDICOMInstanceFrames",   "GetDICOMSeriesMetadata",
                                       "GetDICOMBulkdata"};

static bool arn_ok(const char *a)
{
    if (strncmp(a, "arn:", 4) != 0 || strlen(a) > 256)
        return false;
    for (const char *p = a; *p; p++) {
        if (*p <= ' ' || *p > '~' || *p == '"' || *p == '\\')
            return false;
    }
    return true;
}

size_t sts_policy_study_cost(const char *uid)
{
    return strlen(uid) + 3;
}

int sts_policy_build(const char *datastore_arn, const char *const *studies, size_t n,
                     enum sts_policy_use use, char *out, size_t cap, size_t *len)
{
    *len = 0;
    if (n == 0 || !datastore_arn || !arn_ok(datastore_arn))
        return ERR_MALFORMED;
    for (size_t i = 0; i < n; i++) {
        if (!studies[i] || !dcm_uid_valid((const uint8_t *)studies[i], strlen(studies[i])))
            return ERR_MALFORMED;
    }
    const char *const *acts = use == STS_POLICY_VIEWER ? g_viewer : g_core;
    size_t nacts = use == STS_POLICY_VIEWER ? sizeof g_viewer / sizeof *g_viewer
                                            : sizeof g_core / sizeof *g_core;
    struct wbuf w;
    wbuf_init(&w, STS_POLICY_MAX_CHARS + 1); /* ASCII only: bytes are characters */
    wbuf_str(&w, "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":[");
    for (size_t i = 0; i < nacts; i++)
        wbuf_printf(&w, "%s\"medical-imaging:%s\"", i ? "," : "", acts[i]);
    wbuf_printf(&w, "],\"Resource\":\"%s\",\"Condition\":{\"StringEquals\":{"
                    "\"medical-imaging:StudyInstanceUID\":[",
                datastore_arn);
    for (size_t i = 0; i < n; i++)
        wbuf_printf(&w, "%s\"%s\"", i ? "," : "", studies[i]);
    wbuf_str(&w, "]}}}]}");
    int rc = w.err;
    if (rc == 0 && w.len > STS_POLICY_MAX_CHARS)
        rc = ERR_LIMIT;
    if (rc == 0 && w.len + 1 > cap)
        rc = ERR_LIMIT;
    if (rc == 0) {
        memcpy(out, w.p, w.len);
        out[w.len] = '\0';
        *len = w.len;
    }
    wbuf_cleanup(&w);
    return rc; /* the wbuf's cap gives ERR_LIMIT too */
}
