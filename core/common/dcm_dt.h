/* dcm_dt: DICOM dates and times (PS3.5 6.2 DA, TM, DT) as spans of microseconds, so that query
 * matching compares them by meaning (PS3.4 C.2.2.2.1.3, C.2.2.2.5): "2230" is the whole minute
 * 22:30:00.000000..22:30:59.999999, "2020" the whole year. Pure: libc only. */
#ifndef GW_DCM_DT_H
#define GW_DCM_DT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define DCM_US_PER_DAY 86400000000LL

/* An inclusive interval [lo, hi]. DA and DT: microseconds on one fixed UTC scale of the proleptic
 * Gregorian calendar (comparable with each other; DA + TM gives the DT of that date and time);
 * TM: microseconds since midnight. */
struct dcm_span {
    int64_t lo, hi;
};

/* DA: exactly YYYYMMDD, a real calendar day (PS3.5 6.2). The span is the whole day. Returns 0 or
 * ERR_MALFORMED. Input is the value without padding. */
MUST_CHECK int dcm_da_parse(const uint8_t *p, size_t n, struct dcm_span *out);

/* TM: HH[MM[SS[.F{1,6}]]], HH 00-23, MM 00-59, SS 00-60 (PS3.5 6.2; the ACR-NEMA "HH:MM:SS"
 * form is refused). The span covers the precision given. Returns 0 or ERR_MALFORMED. */
MUST_CHECK int dcm_tm_parse(const uint8_t *p, size_t n, struct dcm_span *out);

/* DT: YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX] (PS3.5 6.2), & being + or -, offset -1200..+1400.
 * The span covers the precision given and is shifted to UTC by the offset; a value without an
 * offset is taken as UTC (we do not negotiate Timezone query adjustment, PS3.4 C.2.2.2.1.3).
 * Returns 0 or ERR_MALFORMED. */
MUST_CHECK int dcm_dt_parse(const uint8_t *p, size_t n, struct dcm_span *out);

/* One of the three above by vr (DCM_VR_DA, DCM_VR_TM or DCM_VR_DT); ERR_MALFORMED for another
 * VR. */
MUST_CHECK int dcm_dt_span(uint16_t vr, const uint8_t *p, size_t n, struct dcm_span *out);

#endif
