/* dsscan_int: what the dataset walk's two files share: the walker (dsscan.c, the element
 * stream over plaintext) and the front (dsscan_deflate.c: the API, and inflating deflated
 * datasets into the walker). Not for other modules. */
#ifndef GW_DSSCAN_INT_H
#define GW_DSSCAN_INT_H

#include <stdbool.h>
#include <stdint.h>

#define ZLIB_CONST /* next_in is const: zlib only reads our input */
#include <zlib.h>

#include "dsscan.h"

#define DS_UNDEF 0xFFFFFFFFu
#define DS_NO_END UINT64_MAX
#define DS_INFLATE_CHUNK 16384u /* plaintext window for deflated datasets */

#define TAG(g, e) ((uint32_t)(g) << 16 | (uint32_t)(e))
#define TAG_SOP_CLASS TAG(0x0008, 0x0016)
#define TAG_SOP_INSTANCE TAG(0x0008, 0x0018)
#define TAG_STUDY TAG(0x0020, 0x000D)
#define TAG_SERIES TAG(0x0020, 0x000E)
#define TAG_PATIENT_ID TAG(0x0010, 0x0020)
#define TAG_PIXEL_DATA TAG(0x7FE0, 0x0010)
#define TAG_ITEM TAG(0xFFFE, 0xE000)
#define TAG_ITEM_DELIM TAG(0xFFFE, 0xE00D)
#define TAG_SEQ_DELIM TAG(0xFFFE, 0xE0DD)

#define VR(a, b) ((uint16_t)((unsigned)(a) << 8 | (unsigned)(b)))

#define SLOT_PATIENT_ID 4 /* uid_which: the value accumulated is the Patient ID */

#define R_JUNK "bytes after the last element"

enum ds_state {
    ST_HDR,  /* accumulating an element header */
    ST_SKIP, /* skipping the rest of a value */
    ST_UID,  /* accumulating a top-level UID value */
    ST_ERR,  /* sticky failure: s->err and s->reason */
};

enum ds_frame_kind {
    FR_SEQ,   /* a sequence: items holding data sets */
    FR_PIXEL, /* encapsulated pixel data: defined-length items only (PS3.5 A.4) */
};

/* One sequence we are inside. Ends are absolute plaintext offsets, DS_NO_END when undefined;
 * lim and item_lim are the nearest defined end that applies (own or inherited). */
struct ds_frame {
    uint64_t seq_end, lim;
    uint64_t item_end, item_lim;
    uint64_t item_next; /* the next tag in the open item must be at least this */
    uint8_t kind;
    bool implicit; /* encoding of the elements inside its items */
    bool in_item;
    bool had_item;
};

struct ds_scan {
    enum ds_state st;
    int err;
    const char *reason;
    uint64_t err_pos;
    uint32_t glitches;
    const char *glitch;
    bool top_implicit; /* encoding of the top-level elements */

    uint64_t pos;      /* plaintext bytes consumed */
    uint64_t hdr_pos;  /* where the current element header began */
    uint64_t top_next; /* the next top-level tag must be at least this */
    bool after_last;   /* this header follows a complete top-level Pixel Data (or later) */

    /* current element header */
    uint8_t hdr[12];
    uint8_t hdr_have, hdr_need;
    uint8_t vr_unit; /* explicit VR: size of one value of a fixed-size VR, else 1 */
    uint32_t tag;

    uint32_t skip; /* ST_SKIP: bytes of the value left */

    /* ST_UID: the value so far and where it goes */
    uint8_t uid_buf[DS_UID_MAX + 1];
    uint8_t uid_have, uid_need;
    uint8_t uid_which; /* index into the four UIDs (uid_slot()), or SLOT_PATIENT_ID */
    uint8_t seen;      /* bit per UID: its element appeared at top level */
    bool uids_final;
    uint8_t pixel; /* enum ds_pixel */

    unsigned depth;
    struct ds_frame stack[DS_MAX_DEPTH];

    struct ds_uids uids;
    char patient_id[DS_PATIENT_ID_MAX + 1]; /* for the audit trail only; wiped at free */

    /* DS_DEFLATED_LE only */
    bool deflated;
    bool z_ready;
    bool z_end;
    uint8_t z_trail;    /* bytes seen after the end of the deflate stream, */
    uint8_t z_tail[9];  /* the first of them */
    uint32_t z_crc;     /* CRC-32 of the plaintext, to recognise a gzip trailer */
    bool z_judged;      /* finish accepted what follows the stream */
    uint64_t inflated;
    uint64_t inflate_cap;
    uint8_t *zout;
    z_stream z;
};

/* dsscan.c: the walker */
/* Record a failure (sticky) and return code. */
int dsscan_fail(struct ds_scan *s, int code, const char *reason);
void dsscan_glitch(struct ds_scan *s, const char *what);
uint32_t dsscan_le32(const uint8_t *b);
/* Close what ended and start the next header (also the initial state). */
int dsscan_next_header(struct ds_scan *s);
/* The element stream state machine over plaintext. 0 need more, <0 error. */
int dsscan_plain(struct ds_scan *s, const uint8_t *p, size_t n);
/* The plaintext ended here: 1 if between two top-level elements, else fail with why. */
int dsscan_end_of_plain(struct ds_scan *s);

#endif
