/* p10meta: the File Meta Information of a DICOM Part-10 stream (PS3.10 7.1): the 128-byte
 * preamble, "DICM" and the group 0002 elements in Explicit VR Little Endian, read from bytes
 * that arrive in pieces (a WADO-RS answer), so that what follows, the dataset, can be handed on
 * without it. Pure: no I/O, no allocation, no globals. The meta is capped (P10META_MAX): larger
 * is refused (ERR_LIMIT), as is anything but the layout above (ERR_MALFORMED). */
#ifndef GW_P10META_H
#define GW_P10META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define P10META_MAX 65536u

/* What the meta says about the dataset that follows (UIDs without their padding). */
struct p10meta_info {
    char ts[65];        /* (0002,0010) Transfer Syntax UID */
    char sop_class[65]; /* (0002,0002) Media Storage SOP Class UID */
    char sop[65];       /* (0002,0003) Media Storage SOP Instance UID */
};

/* Parse the meta at the start of p[0..n). Returns its length (preamble and "DICM" included:
 * the dataset starts there) once the first element of another group is in sight; 0 when more
 * bytes are needed; ERR_MALFORMED (no "DICM", a VR or length that breaks the layout, an
 * undefined length, a missing or invalid Transfer Syntax, SOP Class or SOP Instance UID),
 * ERR_LIMIT (a meta over P10META_MAX). */
MUST_CHECK int p10meta_parse(const uint8_t *p, size_t n, struct p10meta_info *out);

enum p10meta_event {
    P10META_EV_NONE = 0, /* more input needed */
    P10META_EV_META,     /* the meta is read: m->info */
    P10META_EV_DATA,     /* ev->data[0..len): dataset bytes */
};

struct p10meta_ev {
    enum p10meta_event type;
    const uint8_t *data;
    size_t len;
};

struct p10meta {
    uint8_t buf[P10META_MAX + 16];
    size_t len;        /* bytes in buf */
    size_t meta_len;   /* > 0 once read */
    size_t given;      /* dataset bytes of buf handed on */
    bool meta_told;
    struct p10meta_info info;
};

void p10meta_init(struct p10meta *m);
/* Read from p[0..n). Returns the bytes used (>= 0) with *ev set, or ERR_MALFORMED / ERR_LIMIT.
 * Call again with the rest (n may be 0) until all of it is used and the event is NONE. The
 * META event comes once, before any DATA; ev->data points into p or into m. */
MUST_CHECK int p10meta_next(struct p10meta *m, const uint8_t *p, size_t n,
                            struct p10meta_ev *ev);
/* True once the meta was read. */
static inline bool p10meta_done(const struct p10meta *m)
{
    return m->meta_len > 0;
}

#endif
