/* ts: the transfer syntaxes the core knows, and the default accepted set (those AWS
 * HealthImaging imports, in our preference order). */
#ifndef GW_TS_H
#define GW_TS_H

#include <stdbool.h>
#include <stddef.h>

#include "dsscan.h"

#define TS_IMPLICIT_LE "1.2.840.10008.1.2"
#define TS_EXPLICIT_LE "1.2.840.10008.1.2.1"
#define TS_DEFLATED_LE "1.2.840.10008.1.2.1.99"

struct ts_info {
    const char *uid;
    const char *name;
    enum ds_encoding enc;
    bool lossy;
};

/* Known transfer syntax by UID (no padding), NULL if unknown or not readable by the scanner
 * (big endian is retired and not supported). */
const struct ts_info *ts_find(const char *uid);
/* The default preference order: lossless compressed syntaxes first (kept as sent), then the
 * uncompressed ones, lossy last so that a modality offering both is never asked to go lossy. */
size_t ts_default_count(void);
const struct ts_info *ts_default_at(size_t i);

#endif
