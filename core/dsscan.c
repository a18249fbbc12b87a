/* dsscan: streaming walk of a C-STORE dataset to its last byte (PS3.5 section 7, annex A).
 *
 * A byte-driven state machine that never looks back: a header accumulator (up to 12 bytes), a UID
 * value accumulator (up to 65 bytes), a skip counter for values, and a fixed stack of the
 * sequences we are inside, each with the absolute end of its value and of its open item when
 * those have a defined length. Memory is O(DS_MAX_DEPTH), whatever the object.
 *
 * Refused (not well-formed; each with its reason string):
 *   - an unknown VR in explicit VR (PS3.5 6.2, 7.1.2): its length field's size is unknowable;
 *   - a tag not above the previous one in the same data set or item (7.1: ascending, at most
 *     once); group 0002 at top level (PS3.10 7.1: File Meta is not part of the data set); group
 *     FFFF (7.8.1); (FFFE,xxxx) other than item and delimiters (7.5);
 *   - undefined length except on SQ, on UN (6.2.2: implicit VR LE inside) and on Pixel Data
 *     (7FE0,0010) as OB, OW or UN (A.4) (7.1.1-7.1.3);
 *   - items outside a sequence, elements directly in a sequence, delimiters where none is open or
 *     with a non-zero length, an item delimiter in a defined-length item, a sequence delimiter in
 *     a defined-length sequence or inside an item (7.5);
 *   - any element, item or fragment that reaches past the end of its defined-length item or
 *     sequence, or an undefined-length one not closed inside it (7.5.1-7.5.2);
 *   - encapsulated pixel data with anything but items of defined length, or without the offset
 *     table item (A.4);
 *   - a dataset that ends inside an element, an open sequence or encapsulated pixel data; bytes
 *     after the last element (a partial header or garbage after Pixel Data shows as that);
 *   - deflated: a bad or unfinished deflate stream; bytes after it other than one NUL pad (A.5)
 *     (or a gzip trailer, below);
 *   - nesting deeper than DS_MAX_DEPTH, inflated data over the cap (ERR_LIMIT);
 *   - top-level identifying UIDs that are not UIDs (9.1) or longer than 64 characters.
 * Tolerated and counted as glitches (DCMTK and pydicom read all of them; modalities send them):
 *   - odd value lengths (7.1.1 wants even), odd fragments (A.4);
 *   - a length that is not a multiple of a fixed-size VR's value size (6.2);
 *   - non-zero reserved bytes in a 12-byte explicit VR header (7.1.2);
 *   - private groups 0001, 0003, 0005, 0007 (7.8.1);
 *   - encapsulated Pixel Data with VR OW or UN (A.4 says OB); an offset table whose length is not
 *     a multiple of 4 (A.4);
 *   - identifying UIDs padded with spaces (6.2 wants NUL);
 *   - after the deflate stream, a gzip trailer that matches the plaintext (CRC-32 and length).
 * Not checked: values (values are skipped); in implicit VR, and for UN of defined length, the
 * inside of a defined-length value (without a data dictionary a sequence is indistinguishable
 * from any other value).
 *
 * The front (API, deflate) is dsscan_deflate.c; the two share dsscan_int.h. */
#include "dsscan_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/uid.h"

/* Which of the four UIDs tag is (0..3, the order of struct ds_uids), or -1. */
static int uid_slot(uint32_t tag)
{
    static const uint32_t tags[4] = {TAG_SOP_CLASS, TAG_SOP_INSTANCE, TAG_STUDY, TAG_SERIES};
    for (int i = 0; i < 4; i++) {
        if (tag == tags[i])
            return i;
    }
    return -1;
}

static char *uid_field(struct ds_uids *u, unsigned which)
{
    char *const f[4] = {u->sop_class, u->sop_instance, u->study, u->series};
    return f[which & 3];
}

/* PS3.5 6.2 Table 6.2-1, every VR, indexed by its two letters: V_KNOWN, V_LONG for a header
 * with 2 reserved bytes and a 32-bit length (7.1.2), and in the low bits the size of one value
 * for fixed-size binary VRs (else 1). */
#define V_KNOWN 0x80u
#define V_LONG 0x40u
#define VI(a, b) (((a) - 'A') * 26 + ((b) - 'A'))
static const uint8_t vr_info[26 * 26] = {
    [VI('A', 'E')] = V_KNOWN | 1, [VI('A', 'S')] = V_KNOWN | 1, [VI('A', 'T')] = V_KNOWN | 4,
    [VI('C', 'S')] = V_KNOWN | 1, [VI('D', 'A')] = V_KNOWN | 1, [VI('D', 'S')] = V_KNOWN | 1,
    [VI('D', 'T')] = V_KNOWN | 1, [VI('F', 'D')] = V_KNOWN | 8, [VI('F', 'L')] = V_KNOWN | 4,
    [VI('I', 'S')] = V_KNOWN | 1, [VI('L', 'O')] = V_KNOWN | 1, [VI('L', 'T')] = V_KNOWN | 1,
    [VI('O', 'B')] = V_KNOWN | V_LONG | 1, [VI('O', 'D')] = V_KNOWN | V_LONG | 8,
    [VI('O', 'F')] = V_KNOWN | V_LONG | 4, [VI('O', 'L')] = V_KNOWN | V_LONG | 4,
    [VI('O', 'V')] = V_KNOWN | V_LONG | 8, [VI('O', 'W')] = V_KNOWN | V_LONG | 2,
    [VI('P', 'N')] = V_KNOWN | 1, [VI('S', 'H')] = V_KNOWN | 1, [VI('S', 'L')] = V_KNOWN | 4,
    [VI('S', 'Q')] = V_KNOWN | V_LONG | 1, [VI('S', 'S')] = V_KNOWN | 2,
    [VI('S', 'T')] = V_KNOWN | 1, [VI('S', 'V')] = V_KNOWN | V_LONG | 8,
    [VI('T', 'M')] = V_KNOWN | 1, [VI('U', 'C')] = V_KNOWN | V_LONG | 1,
    [VI('U', 'I')] = V_KNOWN | 1, [VI('U', 'L')] = V_KNOWN | 4,
    [VI('U', 'N')] = V_KNOWN | V_LONG | 1, [VI('U', 'R')] = V_KNOWN | V_LONG | 1,
    [VI('U', 'S')] = V_KNOWN | 2, [VI('U', 'T')] = V_KNOWN | V_LONG | 1,
    [VI('U', 'V')] = V_KNOWN | V_LONG | 8,
};

/* The VR's vr_info byte, 0 for anything that is not a VR. */
static unsigned vr_lookup(uint8_t a, uint8_t b)
{
    if (a < 'A' || a > 'Z' || b < 'A' || b > 'Z')
        return 0;
    return vr_info[VI(a, b)];
}

static uint16_t le16(const uint8_t *b)
{
    return (uint16_t)(b[0] | b[1] << 8);
}

uint32_t dsscan_le32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

int dsscan_fail(struct ds_scan *s, int code, const char *reason)
{
    if (s->st == ST_ERR)
        return s->err;
    s->st = ST_ERR;
    s->err = code;
    s->reason = reason;
    s->err_pos = s->hdr_pos;
    return code;
}

/* A header-level failure: after the last top-level element (Pixel Data, or anything sorting
 * after it), whatever follows is trailing bytes, and saying so is more useful than the detail. */
static int fail_hdr(struct ds_scan *s, int code, const char *reason)
{
    if (s->after_last)
        return dsscan_fail(s, ERR_MALFORMED, R_JUNK);
    return dsscan_fail(s, code, reason);
}

void dsscan_glitch(struct ds_scan *s, const char *what)
{
    if (s->glitches == 0)
        s->glitch = what;
    if (s->glitches < UINT32_MAX)
        s->glitches++;
}

static struct ds_frame *top(struct ds_scan *s)
{
    return &s->stack[s->depth - 1];
}

static bool ctx_implicit(const struct ds_scan *s)
{
    return s->depth == 0 ? s->top_implicit : s->stack[s->depth - 1].implicit;
}

/* The nearest defined end that bounds what comes next. */
static uint64_t cur_limit(const struct ds_scan *s)
{
    if (s->depth == 0)
        return DS_NO_END;
    const struct ds_frame *f = &s->stack[s->depth - 1];
    return f->in_item ? f->item_lim : f->lim;
}

/* Close every defined-length item and sequence whose end we have reached, innermost first, then
 * start the next header. An undefined-length one still open at an inherited end cannot close. */
int dsscan_next_header(struct ds_scan *s)
{
    while (s->depth > 0) {
        struct ds_frame *f = top(s);
        if (f->in_item && f->item_end == s->pos) {
            f->in_item = false;
        } else if (!f->in_item && f->seq_end == s->pos) {
            s->depth--;
        } else {
            break;
        }
    }
    s->st = ST_HDR;
    s->hdr_have = 0;
    s->hdr_need = 4;
    s->hdr_pos = s->pos;
    s->after_last = s->depth == 0 && s->top_next > TAG_PIXEL_DATA;
    if (s->depth > 0 && cur_limit(s) == s->pos)
        return dsscan_fail(s, ERR_MALFORMED, "sequence or item not delimited within its parent");
    return 0;
}

static int start_skip(struct ds_scan *s, uint32_t len)
{
    if (len == 0)
        return dsscan_next_header(s);
    s->st = ST_SKIP;
    s->skip = len;
    return 0;
}

/* Enter a sequence whose value starts here; len is its length or DS_UNDEF. */
static int push(struct ds_scan *s, enum ds_frame_kind kind, bool implicit, uint32_t len)
{
    if (s->depth >= DS_MAX_DEPTH)
        return dsscan_fail(s, ERR_LIMIT, "sequences nested too deep");
    uint64_t lim = cur_limit(s);
    struct ds_frame *f = &s->stack[s->depth++];
    memset(f, 0, sizeof(*f));
    f->kind = (uint8_t)kind;
    f->implicit = implicit;
    f->seq_end = len == DS_UNDEF ? DS_NO_END : s->pos + len;
    f->lim = f->seq_end < lim ? f->seq_end : lim;
    f->item_end = f->item_lim = DS_NO_END;
    return dsscan_next_header(s);
}

/* (FFFE,xxxx) item and delimitation tags: they carry no VR in any syntax (PS3.5 7.5). */
static int on_item_tag(struct ds_scan *s, uint32_t len)
{
    if (s->depth == 0)
        return fail_hdr(s, ERR_MALFORMED, "item or delimiter outside a sequence");
    struct ds_frame *f = top(s);
    switch (s->tag) {
    case TAG_ITEM:
        if (f->in_item)
            return dsscan_fail(s, ERR_MALFORMED, "item where an element was expected");
        if (f->kind == FR_PIXEL) {
            if (len == DS_UNDEF)
                return dsscan_fail(s, ERR_MALFORMED, "pixel data fragment of undefined length");
            if (len > f->lim - s->pos)
                return dsscan_fail(s, ERR_MALFORMED, "pixel data fragment past the end of its item");
            if (!f->had_item && len % 4 != 0)
                dsscan_glitch(s, "offset table length not a multiple of 4");
            else if (len & 1)
                dsscan_glitch(s, "odd value length");
            f->had_item = true;
            return start_skip(s, len); /* a fragment's bytes are opaque */
        }
        f->had_item = true;
        f->in_item = true;
        f->item_next = 0;
        if (len == DS_UNDEF) {
            f->item_end = DS_NO_END;
            f->item_lim = f->lim;
        } else {
            if (len > f->lim - s->pos)
                return dsscan_fail(s, ERR_MALFORMED, "item past the end of its sequence");
            f->item_end = f->item_lim = s->pos + len;
        }
        return dsscan_next_header(s);
    case TAG_ITEM_DELIM:
        if (len != 0)
            return dsscan_fail(s, ERR_MALFORMED, "delimiter with a non-zero length");
        if (!f->in_item)
            return dsscan_fail(s, ERR_MALFORMED, "item delimiter outside an item");
        if (f->item_end != DS_NO_END)
            return dsscan_fail(s, ERR_MALFORMED, "item delimiter in a defined-length item");
        f->in_item = false;
        return dsscan_next_header(s);
    case TAG_SEQ_DELIM:
        if (len != 0)
            return dsscan_fail(s, ERR_MALFORMED, "delimiter with a non-zero length");
        if (f->in_item)
            return dsscan_fail(s, ERR_MALFORMED, "sequence delimiter inside an item");
        if (f->seq_end != DS_NO_END)
            return dsscan_fail(s, ERR_MALFORMED, "sequence delimiter in a defined-length sequence");
        if (f->kind == FR_PIXEL && !f->had_item)
            return dsscan_fail(s, ERR_MALFORMED, "encapsulated pixel data without offset table item");
        s->depth--;
        return dsscan_next_header(s);
    default:
        return dsscan_fail(s, ERR_MALFORMED, "(FFFE,xxxx) tag that is not an item or delimiter");
    }
}

/* The value of a top-level UID element is complete. */
static int on_uid(struct ds_scan *s)
{
    size_t n = s->uid_have;
    bool space = false;
    while (n > 0 && (s->uid_buf[n - 1] == '\0' || s->uid_buf[n - 1] == ' ')) {
        space |= s->uid_buf[n - 1] == ' ';
        n--; /* PS3.5 6.2: UI is padded with a trailing NUL */
    }
    if (space)
        dsscan_glitch(s, "UID padded with spaces");
    if (n > 0) {
        if (!uid_valid_n(s->uid_buf, n))
            return dsscan_fail(s, ERR_MALFORMED, "identifying UID is not a valid UID");
        char *dst = uid_field(&s->uids, s->uid_which);
        memcpy(dst, s->uid_buf, n);
        dst[n] = '\0';
    }
    s->seen |= (uint8_t)(1u << s->uid_which);
    if (s->seen == 0x0F)
        s->uids_final = true;
    return dsscan_next_header(s);
}

/* The top-level Patient ID's value is complete (in uid_buf): kept for the audit trail when it
 * is a plausible LO (PS3.5 6.2: no control character but ESC, no backslash in a VM-1 value),
 * leading and trailing spaces (and NUL padding) dropped; otherwise left unknown. Never an error:
 * the dataset's validity does not depend on a value. */
static int on_patient_id(struct ds_scan *s)
{
    size_t b = 0, n = s->uid_have;
    while (n > 0 && (s->uid_buf[n - 1] == '\0' || s->uid_buf[n - 1] == ' '))
        n--;
    while (b < n && s->uid_buf[b] == ' ')
        b++;
    bool ok = true;
    for (size_t i = b; i < n && ok; i++)
        ok = (s->uid_buf[i] >= 0x20 || s->uid_buf[i] == 0x1B) && s->uid_buf[i] != '\\' &&
             s->uid_buf[i] != 0x7F;
    if (ok && n > b) {
        memcpy(s->patient_id, s->uid_buf + b, n - b);
        s->patient_id[n - b] = '\0';
    }
    memset(s->uid_buf, 0, sizeof s->uid_buf); /* no copy of it stays behind */
    return dsscan_next_header(s);
}

/* The tag of an element (not an item) is known: where it stands, and in what order. */
static int on_element_tag(struct ds_scan *s)
{
    uint16_t group = (uint16_t)(s->tag >> 16);
    uint64_t *next = &s->top_next;
    if (s->depth > 0) {
        struct ds_frame *f = top(s);
        if (f->kind == FR_PIXEL)
            return dsscan_fail(s, ERR_MALFORMED, "encapsulated pixel data holds only items");
        if (!f->in_item)
            return dsscan_fail(s, ERR_MALFORMED, "element outside an item in a sequence");
        next = &f->item_next;
    }
    if (s->tag < *next) /* PS3.5 7.1 */
        return fail_hdr(s, ERR_MALFORMED,
                        (uint64_t)s->tag + 1 == *next ? "element repeated" : "tags out of order");
    if (group == 0xFFFF) /* PS3.5 7.8.1; 0xFF fill after the last element shows as this */
        return fail_hdr(s, ERR_MALFORMED, "invalid tag group FFFF");
    if (s->depth == 0 && group == 0x0002)
        return fail_hdr(s, ERR_MALFORMED, "group 0002 (file meta) inside the dataset");
    if (group == 0x0001 || group == 0x0003 || group == 0x0005 || group == 0x0007)
        dsscan_glitch(s, "private group 0001-0007");
    *next = (uint64_t)s->tag + 1;
    if (s->depth == 0 && s->tag > TAG_SERIES)
        s->uids_final = true;
    return 0;
}

/* A whole header is in s->hdr and passed its checks: decide what its value is. vr is 0 in
 * implicit VR (and for the inside of UN of undefined length). */
static int on_element(struct ds_scan *s, uint16_t vr, uint32_t len)
{
    bool pixel = s->tag == TAG_PIXEL_DATA;
    if (s->depth == 0 && pixel)
        s->pixel = len == DS_UNDEF ? DS_PIXEL_ENCAPSULATED : DS_PIXEL_NATIVE;
    if (len == DS_UNDEF) {
        if (pixel && (vr == 0 || vr == VR('O', 'B') || vr == VR('O', 'W') || vr == VR('U', 'N'))) {
            if (vr != 0 && vr != VR('O', 'B'))
                dsscan_glitch(s, "encapsulated pixel data not OB");
            return push(s, FR_PIXEL, false, DS_UNDEF); /* PS3.5 A.4 */
        }
        if (s->depth == 0 && uid_slot(s->tag) >= 0)
            return dsscan_fail(s, ERR_MALFORMED, "identifying UID too long or not a UID");
        if (vr == 0)
            return push(s, FR_SEQ, true, DS_UNDEF); /* implicit VR: undefined length is SQ */
        if (vr == VR('S', 'Q'))
            return push(s, FR_SEQ, ctx_implicit(s), DS_UNDEF);
        if (vr == VR('U', 'N'))
            return push(s, FR_SEQ, true, DS_UNDEF); /* PS3.5 6.2.2: implicit VR LE inside */
        return fail_hdr(s, ERR_MALFORMED, "undefined length not allowed for this VR");
    }
    if (len & 1)
        dsscan_glitch(s, "odd value length");
    if (len > cur_limit(s) - s->pos)
        return dsscan_fail(s, ERR_MALFORMED, "element past the end of its item");
    int slot = s->depth == 0 ? uid_slot(s->tag) : -1;
    if (slot >= 0) {
        if (vr == VR('S', 'Q') || len > DS_UID_MAX + 1)
            return dsscan_fail(s, ERR_MALFORMED, "identifying UID too long or not a UID");
        s->uid_which = (uint8_t)slot;
        s->uid_have = 0;
        s->uid_need = (uint8_t)len;
        s->st = ST_UID;
        return len == 0 ? on_uid(s) : 0; /* empty: the element is present, the UID absent */
    }
    if (s->depth == 0 && s->tag == TAG_PATIENT_ID && vr != VR('S', 'Q') && len > 0 &&
        len <= DS_PATIENT_ID_MAX) {
        s->uid_which = SLOT_PATIENT_ID; /* the same bounded accumulator as the UIDs */
        s->uid_have = 0;
        s->uid_need = (uint8_t)len;
        s->st = ST_UID;
        return 0;
    }
    if (vr == VR('S', 'Q') && len > 0)
        return push(s, FR_SEQ, ctx_implicit(s), len); /* walk its items too */
    return start_skip(s, len);
}

/* s->hdr holds hdr_need bytes: either extend the header or act on it. 0 or <0. */
static int on_header_bytes(struct ds_scan *s)
{
    const uint8_t *h = s->hdr;
    if (s->hdr_have == 4) {
        s->tag = TAG(le16(h), le16(h + 2));
        bool item_tag = (s->tag >> 16) == 0xFFFE;
        if (!item_tag && on_element_tag(s) < 0)
            return s->err;
        s->hdr_need = (item_tag || ctx_implicit(s)) ? 8 : 6;
        return 0;
    }
    if (s->hdr_have == 6) { /* explicit VR: the VR decides the header's length */
        unsigned info = vr_lookup(h[4], h[5]);
        if (!info)
            return fail_hdr(s, ERR_MALFORMED, "invalid VR");
        s->hdr_need = (info & V_LONG) ? 12 : 8;
        s->vr_unit = (uint8_t)(info & 0x0F);
        return 0;
    }
    /* the whole header is in: it must end inside whatever holds it */
    if (s->pos > cur_limit(s)) {
        bool in_seq = s->depth > 0 && !top(s)->in_item;
        return dsscan_fail(s, ERR_MALFORMED, in_seq ? "item past the end of its sequence"
                                             : "element past the end of its item");
    }
    if ((s->tag >> 16) == 0xFFFE)
        return on_item_tag(s, dsscan_le32(h + 4));
    if (ctx_implicit(s))
        return on_element(s, 0, dsscan_le32(h + 4));
    bool long_form = s->hdr_need == 12;
    uint32_t len = long_form ? dsscan_le32(h + 8) : le16(h + 6);
    if (long_form && (h[6] | h[7]) != 0)
        dsscan_glitch(s, "reserved bytes of a header not zero");
    if (len != DS_UNDEF && len % s->vr_unit != 0 && (len & 1) == 0)
        dsscan_glitch(s, "value length not a multiple of its VR's size");
    return on_element(s, VR(h[4], h[5]), len);
}

/* The element stream state machine over plaintext. 0 need more, <0 error. */
int dsscan_plain(struct ds_scan *s, const uint8_t *p, size_t n)
{
    size_t pos = 0;
    while (pos < n) {
        size_t left = n - pos;
        int rc = 0;
        switch (s->st) {
        case ST_HDR: {
            if (s->hdr_have == 0 && left >= 12) {
                /* the whole header is here (no header is longer): take its stages at once */
                memcpy(s->hdr, p + pos, 12);
                do {
                    size_t k = (size_t)(s->hdr_need - s->hdr_have);
                    s->hdr_have = s->hdr_need;
                    pos += k;
                    s->pos += k;
                    rc = on_header_bytes(s);
                } while (rc == 0 && s->st == ST_HDR && s->hdr_have > 0 &&
                         s->hdr_have < s->hdr_need);
                break;
            }
            size_t k = (size_t)(s->hdr_need - s->hdr_have);
            if (k > left)
                k = left;
            memcpy(s->hdr + s->hdr_have, p + pos, k);
            s->hdr_have = (uint8_t)(s->hdr_have + k);
            pos += k;
            s->pos += k;
            if (s->hdr_have == s->hdr_need)
                rc = on_header_bytes(s);
            break;
        }
        case ST_SKIP: {
            size_t k = left < s->skip ? left : s->skip;
            s->skip -= (uint32_t)k;
            pos += k;
            s->pos += k;
            if (s->skip == 0)
                rc = dsscan_next_header(s);
            break;
        }
        case ST_UID: {
            size_t k = (size_t)(s->uid_need - s->uid_have);
            if (k > left)
                k = left;
            memcpy(s->uid_buf + s->uid_have, p + pos, k);
            s->uid_have = (uint8_t)(s->uid_have + k);
            pos += k;
            s->pos += k;
            if (s->uid_have == s->uid_need)
                rc = s->uid_which == SLOT_PATIENT_ID ? on_patient_id(s) : on_uid(s);
            break;
        }
        case ST_ERR:
            return s->err;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The plaintext ended here: 1 if between two top-level elements, else fail with why. */
int dsscan_end_of_plain(struct ds_scan *s)
{
    if (s->st == ST_ERR)
        return s->err;
    if (s->st == ST_HDR && s->hdr_have == 0 && s->depth == 0)
        return 1;
    if (s->st == ST_HDR && s->after_last)
        return dsscan_fail(s, ERR_MALFORMED, R_JUNK);
    if (s->st == ST_HDR && s->hdr_have > 0)
        return dsscan_fail(s, ERR_TRUNCATED, "dataset ends inside an element header");
    if (s->st != ST_HDR)
        return dsscan_fail(s, ERR_TRUNCATED, "dataset ends inside an element value");
    if (top(s)->kind == FR_PIXEL)
        return dsscan_fail(s, ERR_TRUNCATED, "dataset ends inside encapsulated pixel data");
    return dsscan_fail(s, ERR_TRUNCATED, "dataset ends inside a sequence");
}

