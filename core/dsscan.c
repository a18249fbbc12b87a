/* dsscan: streaming scan of a C-STORE dataset for its four identifying UIDs (PS3.5 section 7).
 *
 * The scanner is a byte-driven state machine that never looks back: a header accumulator (up to
 * 12 bytes), a UID value accumulator (up to 65 bytes), a skip counter for every other value and a
 * fixed stack of the undefined-length sequences we are inside. Defined-length values, including
 * defined-length sequences and items, are skipped as opaque bytes: only top-level UIDs count, so
 * nothing inside them matters. */
#include "dsscan.h"

#include <stdlib.h>
#include <string.h>

#define ZLIB_CONST /* next_in is const: zlib only reads our input */
#include <zlib.h>

#define DS_UNDEF 0xFFFFFFFFu
#define DS_INFLATE_CHUNK 16384u              /* plaintext window for deflated datasets */
#define DS_INFLATE_CAP (64u * 1024u * 1024u) /* decompression-bomb guard: stop scanning here */

#define TAG(g, e) ((uint32_t)(g) << 16 | (uint32_t)(e))
#define TAG_SOP_CLASS TAG(0x0008, 0x0016)
#define TAG_SOP_INSTANCE TAG(0x0008, 0x0018)
#define TAG_STUDY TAG(0x0020, 0x000D)
#define TAG_SERIES TAG(0x0020, 0x000E)
#define TAG_PIXEL_DATA TAG(0x7FE0, 0x0010)
#define TAG_ITEM TAG(0xFFFE, 0xE000)
#define TAG_ITEM_DELIM TAG(0xFFFE, 0xE00D)
#define TAG_SEQ_DELIM TAG(0xFFFE, 0xE0DD)

#define VR(a, b) ((uint16_t)((unsigned)(a) << 8 | (unsigned)(b)))

enum ds_state {
    ST_HDR,  /* accumulating an element header */
    ST_SKIP, /* skipping the rest of a value */
    ST_UID,  /* accumulating a top-level UID value */
    ST_DONE, /* finished: later bytes cannot change the result */
    ST_ERR,  /* sticky failure, s->err holds the code */
};

enum ds_frame_kind {
    FR_SEQ,   /* SQ (or implicit VR element, or UN) of undefined length: items of any length */
    FR_PIXEL, /* encapsulated pixel data: defined-length fragment items only (PS3.5 A.4) */
};

/* One undefined-length sequence we are inside. in_item: an undefined-length item of it is open. */
struct ds_frame {
    uint8_t kind;
    bool implicit; /* encoding of the elements inside its items */
    bool in_item;
};

struct ds_scan {
    enum ds_state st;
    int err;
    bool top_implicit; /* encoding of the top-level elements */

    /* current element header */
    uint8_t hdr[12];
    uint8_t hdr_have, hdr_need;
    uint32_t tag;

    uint32_t skip; /* ST_SKIP: bytes of the value left */

    /* ST_UID: the value so far and where it goes */
    uint8_t uid_buf[DS_UID_MAX + 1];
    uint8_t uid_have, uid_need;
    uint8_t uid_which; /* index into the four UIDs, see uid_slot() */
    uint8_t seen;      /* bit per UID: its element appeared at top level */

    unsigned depth;
    struct ds_frame stack[DS_MAX_DEPTH];

    struct ds_uids uids;

    /* DS_DEFLATED_LE only */
    bool deflated;
    bool z_ready;
    bool z_end;
    uint64_t inflated;
    uint8_t *zout;
    z_stream z;
};

/* Which of the four UIDs tag is (0..3), or -1. */
static int uid_slot(uint32_t tag)
{
    switch (tag) {
    case TAG_SOP_CLASS:
        return 0;
    case TAG_SOP_INSTANCE:
        return 1;
    case TAG_STUDY:
        return 2;
    case TAG_SERIES:
        return 3;
    default:
        return -1;
    }
}

static char *uid_field(struct ds_uids *u, unsigned which)
{
    switch (which) {
    case 0:
        return u->sop_class;
    case 1:
        return u->sop_instance;
    case 2:
        return u->study;
    default:
        return u->series;
    }
}

/* PS3.5 6.2 Table 6.2-1: every VR. long_form: PS3.5 7.1.2, 2 reserved bytes then a 32-bit len. */
static bool vr_known(uint16_t vr, bool *long_form)
{
    switch (vr) {
    case VR('O', 'B'):
    case VR('O', 'D'):
    case VR('O', 'F'):
    case VR('O', 'L'):
    case VR('O', 'V'):
    case VR('O', 'W'):
    case VR('S', 'Q'):
    case VR('S', 'V'):
    case VR('U', 'C'):
    case VR('U', 'N'):
    case VR('U', 'R'):
    case VR('U', 'T'):
    case VR('U', 'V'):
        *long_form = true;
        return true;
    case VR('A', 'E'):
    case VR('A', 'S'):
    case VR('A', 'T'):
    case VR('C', 'S'):
    case VR('D', 'A'):
    case VR('D', 'S'):
    case VR('D', 'T'):
    case VR('F', 'D'):
    case VR('F', 'L'):
    case VR('I', 'S'):
    case VR('L', 'O'):
    case VR('L', 'T'):
    case VR('P', 'N'):
    case VR('S', 'H'):
    case VR('S', 'L'):
    case VR('S', 'S'):
    case VR('S', 'T'):
    case VR('T', 'M'):
    case VR('U', 'I'):
    case VR('U', 'L'):
    case VR('U', 'S'):
        *long_form = false;
        return true;
    default:
        return false;
    }
}

static uint16_t le16(const uint8_t *b)
{
    return (uint16_t)(b[0] | b[1] << 8);
}

static uint32_t le32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static int fail(struct ds_scan *s, int code)
{
    s->st = ST_ERR;
    s->err = code;
    return code;
}

static bool ctx_implicit(const struct ds_scan *s)
{
    return s->depth == 0 ? s->top_implicit : s->stack[s->depth - 1].implicit;
}

static void next_header(struct ds_scan *s)
{
    s->st = ST_HDR;
    s->hdr_have = 0;
    s->hdr_need = 4;
}

static void start_skip(struct ds_scan *s, uint32_t len)
{
    if (len == 0) {
        next_header(s);
    } else {
        s->st = ST_SKIP;
        s->skip = len;
    }
}

static int push(struct ds_scan *s, enum ds_frame_kind kind, bool implicit)
{
    if (s->depth >= DS_MAX_DEPTH)
        return ERR_MALFORMED;
    s->stack[s->depth].kind = (uint8_t)kind;
    s->stack[s->depth].implicit = implicit;
    s->stack[s->depth].in_item = false;
    s->depth++;
    next_header(s);
    return 0;
}

/* (FFFE,xxxx) item and delimitation tags: they carry no VR in any syntax (PS3.5 7.5). */
static int on_item_tag(struct ds_scan *s, uint32_t len)
{
    if (s->depth == 0)
        return ERR_MALFORMED; /* unreachable: top-level tags above (0020,000E) end the scan */
    struct ds_frame *f = &s->stack[s->depth - 1];
    switch (s->tag) {
    case TAG_ITEM:
        if (f->in_item)
            return ERR_MALFORMED;
        if (len != DS_UNDEF) {
            start_skip(s, len); /* defined-length item or fragment: opaque */
            return 0;
        }
        if (f->kind == FR_PIXEL)
            return ERR_MALFORMED; /* PS3.5 A.4: fragments have defined length */
        f->in_item = true;
        next_header(s);
        return 0;
    case TAG_ITEM_DELIM:
        if (!f->in_item || len != 0)
            return ERR_MALFORMED;
        f->in_item = false;
        next_header(s);
        return 0;
    case TAG_SEQ_DELIM:
        if (f->in_item || len != 0)
            return ERR_MALFORMED;
        s->depth--;
        next_header(s);
        return 0;
    default:
        return ERR_MALFORMED;
    }
}

static int on_uid(struct ds_scan *s);

/* PS3.5 9.1 over exactly n bytes (so an embedded NUL is just a bad character). */
static bool uid_valid_n(const uint8_t *p, size_t n)
{
    if (n == 0 || n > DS_UID_MAX)
        return false;
    size_t comp = 0; /* length of the current component */
    for (size_t i = 0; i <= n; i++) {
        if (i == n || p[i] == '.') {
            if (comp == 0 || (comp > 1 && p[i - comp] == '0'))
                return false; /* empty component, or a leading zero */
            comp = 0;
        } else if (p[i] >= '0' && p[i] <= '9') {
            comp++;
        } else {
            return false;
        }
    }
    return true;
}

/* A whole header is in s->hdr: decide what its value is. vr is 0 in implicit VR. */
static int on_element(struct ds_scan *s, uint16_t vr, uint32_t len)
{
    if ((s->tag >> 16) == 0xFFFE)
        return on_item_tag(s, len);
    if (s->depth > 0 && !s->stack[s->depth - 1].in_item)
        return ERR_MALFORMED; /* a sequence holds only items (PS3.5 7.5.1) */

    int slot = s->depth == 0 ? uid_slot(s->tag) : -1;
    if (slot >= 0) {
        if (vr == VR('S', 'Q') || len > DS_UID_MAX + 1) /* also catches undefined length */
            return ERR_MALFORMED;
        /* Two copies of an identifying UID leave the object ambiguous: refuse, don't pick. */
        if (s->seen & (1u << slot))
            return ERR_MALFORMED;
        s->uid_which = (uint8_t)slot;
        s->uid_have = 0;
        s->uid_need = (uint8_t)len;
        s->st = ST_UID;
        return len == 0 ? on_uid(s) : 0; /* empty: the element is present, the UID absent */
    }

    if (len != DS_UNDEF) {
        start_skip(s, len); /* defined-length sequences too: nothing inside them counts */
        return 0;
    }
    if (vr == 0)
        return push(s, FR_SEQ, true); /* implicit VR: undefined length means SQ (PS3.5 7.5) */
    if (vr == VR('S', 'Q'))
        return push(s, FR_SEQ, ctx_implicit(s));
    if (vr == VR('U', 'N'))
        return push(s, FR_SEQ, true); /* PS3.5 6.2.2 (CP-246): implicit VR LE inside */
    if (vr == VR('O', 'B') && s->tag == TAG_PIXEL_DATA)
        return push(s, FR_PIXEL, false); /* PS3.5 A.4 encapsulation */
    return ERR_MALFORMED;
}

/* The value of a top-level UID element is complete. */
static int on_uid(struct ds_scan *s)
{
    size_t n = s->uid_have;
    while (n > 0 && (s->uid_buf[n - 1] == '\0' || s->uid_buf[n - 1] == ' '))
        n--; /* PS3.5 6.2: UI is padded with a trailing NUL; tolerate space padding too */
    if (n > 0) {
        if (!uid_valid_n(s->uid_buf, n))
            return ERR_MALFORMED;
        char *dst = uid_field(&s->uids, s->uid_which);
        memcpy(dst, s->uid_buf, n);
        dst[n] = '\0';
    }
    s->seen |= (uint8_t)(1u << s->uid_which);
    if (s->seen == 0x0F) {
        s->st = ST_DONE;
        return 1;
    }
    next_header(s);
    return 0;
}

/* s->hdr holds hdr_need bytes: either extend the header or act on it. Returns 1 when the scan
 * ends here, 0 to go on, <0 on error. */
static int on_header_bytes(struct ds_scan *s)
{
    const uint8_t *h = s->hdr;
    if (s->hdr_have == 4) {
        s->tag = TAG(le16(h), le16(h + 2));
        /* PS3.5 7.1: ascending tag order, so nothing after this can be one of ours. */
        if (s->depth == 0 && s->tag > TAG_SERIES) {
            s->st = ST_DONE;
            return 1;
        }
        s->hdr_need = ((s->tag >> 16) == 0xFFFE || ctx_implicit(s)) ? 8 : 6;
        return 0;
    }
    if (s->hdr_have == 6) { /* explicit VR: the VR decides the header's length */
        bool long_form = false;
        if (!vr_known(VR(h[4], h[5]), &long_form))
            return ERR_MALFORMED;
        s->hdr_need = long_form ? 12 : 8;
        return 0;
    }
    if (s->hdr_have == 8 && ((s->tag >> 16) == 0xFFFE || ctx_implicit(s)))
        return on_element(s, 0, le32(h + 4));
    uint16_t vr = VR(h[4], h[5]);
    if (s->hdr_have == 8)
        return on_element(s, vr, le16(h + 6));
    return on_element(s, vr, le32(h + 8)); /* the 2 reserved bytes are not checked */
}

/* The element stream state machine over plaintext. 1 done, 0 need more, <0 error. */
static int scan_plain(struct ds_scan *s, const uint8_t *p, size_t n)
{
    size_t pos = 0;
    while (pos < n) {
        size_t left = n - pos;
        switch (s->st) {
        case ST_HDR: {
            size_t k = (size_t)(s->hdr_need - s->hdr_have);
            if (k > left)
                k = left;
            memcpy(s->hdr + s->hdr_have, p + pos, k);
            s->hdr_have = (uint8_t)(s->hdr_have + k);
            pos += k;
            if (s->hdr_have < s->hdr_need)
                return 0;
            int rc = on_header_bytes(s);
            if (rc < 0)
                return fail(s, rc);
            if (rc > 0)
                return 1;
            break;
        }
        case ST_SKIP: {
            size_t k = left < s->skip ? left : s->skip;
            s->skip -= (uint32_t)k;
            pos += k;
            if (s->skip == 0)
                next_header(s);
            break;
        }
        case ST_UID: {
            size_t k = (size_t)(s->uid_need - s->uid_have);
            if (k > left)
                k = left;
            memcpy(s->uid_buf + s->uid_have, p + pos, k);
            s->uid_have = (uint8_t)(s->uid_have + k);
            pos += k;
            if (s->uid_have < s->uid_need)
                return 0;
            int rc = on_uid(s);
            if (rc < 0)
                return fail(s, rc);
            if (rc > 0)
                return 1;
            break;
        }
        case ST_DONE:
            return 1;
        case ST_ERR:
            return s->err;
        }
    }
    return 0;
}

/* Inflate the next compressed bytes and scan the plaintext until the input is used up or the
 * scan ends. Bytes after the end of the deflate stream are ignored. */
static int scan_deflated(struct ds_scan *s, const uint8_t *p, size_t n)
{
    if (s->z_end)
        return 0;
    /* z_stream counts in uInt; feed in pieces so a huge n cannot wrap it. */
    while (n > 0) {
        uInt piece = n > 0x40000000u ? 0x40000000u : (uInt)n;
        s->z.next_in = p;
        s->z.avail_in = piece;
        for (;;) {
            s->z.next_out = s->zout;
            s->z.avail_out = DS_INFLATE_CHUNK;
            int zrc = inflate(&s->z, Z_NO_FLUSH);
            size_t got = DS_INFLATE_CHUNK - s->z.avail_out;
            bool capped = false;
            if (got > DS_INFLATE_CAP - s->inflated) {
                got = (size_t)(DS_INFLATE_CAP - s->inflated);
                capped = true;
            }
            s->inflated += got;
            /* Scan what came out before judging zrc, so a chunking-independent prefix decides. */
            int rc = scan_plain(s, s->zout, got);
            if (rc != 0)
                return rc;
            if (capped) {
                s->st = ST_DONE; /* decompression bomb: keep whatever UIDs were found */
                return 1;
            }
            if (zrc == Z_STREAM_END) {
                s->z_end = true;
                return 0;
            }
            if (zrc == Z_MEM_ERROR)
                return fail(s, ERR_NOMEM);
            if (zrc != Z_OK && zrc != Z_BUF_ERROR)
                return fail(s, ERR_MALFORMED);
            if (s->z.avail_out != 0 || zrc == Z_BUF_ERROR)
                break; /* input used up (or no progress possible) and no output pending */
        }
        p += piece;
        n -= piece;
    }
    return 0;
}

struct ds_scan *ds_scan_new(enum ds_encoding enc)
{
    if (enc != DS_IMPLICIT_LE && enc != DS_EXPLICIT_LE && enc != DS_DEFLATED_LE)
        return NULL;
    struct ds_scan *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->top_implicit = enc == DS_IMPLICIT_LE;
    next_header(s);
    if (enc == DS_DEFLATED_LE) {
        s->deflated = true;
        s->zout = malloc(DS_INFLATE_CHUNK);
        if (!s->zout)
            goto fail;
        /* PS3.5 A.5: raw deflate (RFC 1951), no zlib header */
        if (inflateInit2(&s->z, -15) != Z_OK)
            goto fail;
        s->z_ready = true;
    }
    return s;
fail:
    FREE_NULL(s->zout);
    free(s);
    return NULL;
}

void ds_scan_free(struct ds_scan *s)
{
    if (!s)
        return;
    if (s->z_ready)
        (void)inflateEnd(&s->z);
    FREE_NULL(s->zout);
    free(s);
}

int ds_scan_feed(struct ds_scan *s, const uint8_t *p, size_t n)
{
    if (s->st == ST_DONE)
        return 1;
    if (s->st == ST_ERR)
        return s->err;
    if (n == 0)
        return 0;
    return s->deflated ? scan_deflated(s, p, n) : scan_plain(s, p, n);
}

int ds_scan_finish(struct ds_scan *s)
{
    if (s->st == ST_DONE)
        return 1;
    if (s->st == ST_ERR)
        return s->err;
    if (s->deflated && !s->z_end)
        return ERR_TRUNCATED; /* the compressed stream itself was cut */
    /* Clean only between top-level elements; a cut value or open sequence is a cut dataset. */
    if (s->st != ST_HDR || s->hdr_have != 0 || s->depth != 0)
        return ERR_TRUNCATED;
    return 1;
}

const struct ds_uids *ds_scan_uids(const struct ds_scan *s)
{
    return &s->uids;
}

bool ds_uid_valid(const char *s)
{
    size_t n = 0;
    while (n <= DS_UID_MAX && s[n] != '\0') /* bounded: stop at the 65th character */
        n++;
    return uid_valid_n((const uint8_t *)s, n);
}
