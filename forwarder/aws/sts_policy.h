/* sts_policy: the STS session policy that narrows HealthImaging's DICOMweb reads to chosen
 * studies (the condition key medical-imaging:StudyInstanceUID), as compact JSON. Pure.
 *
 * Which actions take the key (Service Authorization Reference, AWS HealthImaging; see
 * docs/testing-aws.md): StudyInstanceUID (and SeriesInstanceUID) on GetDICOMInstance,
 * GetDICOMInstanceFrames, GetDICOMInstanceMetadata, GetDICOMSeriesMetadata, GetDICOMBulkdata,
 * SearchDICOMInstances; StudyInstanceUID only on SearchDICOMSeries; neither on
 * SearchDICOMStudies, which such a policy therefore never allows. Grants are per study, so the
 * series key is not used. */
#ifndef GW_STS_POLICY_H
#define GW_STS_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

#define STS_POLICY_MAX_CHARS 2048 /* AssumeRole: plain text, all session policies together */

enum sts_policy_use {
    STS_POLICY_CORE = 0,   /* what the core's reads use: SearchDICOMSeries,
                              SearchDICOMInstances, GetDICOMInstance */
    STS_POLICY_VIEWER = 1, /* a DICOMweb viewer's: those plus GetDICOMInstanceMetadata,
                              GetDICOMInstanceFrames, GetDICOMSeriesMetadata, GetDICOMBulkdata */
};

/* The policy allowing use's actions on datastore_arn only for studies[0..n) (each a UID), into
 * out (cap bytes with the NUL). 0 and *len; ERR_MALFORMED (n == 0, an invalid UID or ARN);
 * ERR_LIMIT (over STS_POLICY_MAX_CHARS characters, or cap). */
MUST_CHECK int sts_policy_build(const char *datastore_arn, const char *const *studies, size_t n,
                                enum sts_policy_use use, char *out, size_t cap, size_t *len);

/* How many more characters each further study costs (its UID, quotes and a comma). */
size_t sts_policy_study_cost(const char *uid);

#endif
