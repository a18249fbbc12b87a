/* dcm_ds: a DICOM dataset held in memory as an element tree (PS3.5 7): parse a whole dataset
 * (a C-FIND/C-GET/C-MOVE identifier, an N-ACTION or N-EVENT-REPORT dataset: small, capped by the
 * caller) in Implicit or Explicit VR Little Endian, read it through accessors, build one, and
 * write it back. Pure: libc only; no I/O, no logs, no globals.
 *
 * Ownership: a tree owns all its memory (one capped arena). Parsing copies the input once, so the
 * caller's buffer may be released as soon as dcm_ds_parse() returns; every slice an accessor gives
 * out points into the tree and lives until dcm_ds_free().
 *
 * What the parser enforces (ERR_MALFORMED unless said otherwise):
 *  - tags strictly ascending within each dataset and item, so no duplicates (PS3.5 7.1);
 *  - no data element of groups 0000-0007 (command set, File Meta Information, PS3.5 7.1 and
 *    PS3.10 7.1: group 0002 never belongs in a dataset), none of group FFFE other than the item
 *    and delimitation tags where they belong (PS3.5 7.5), no group FFFF;
 *  - explicit VR: a VR of PS3.5 6.2, with its 2- or 4-byte length (7.1.2); the two reserved bytes
 *    of the 4-byte form are not checked (PS3.5 7.1.2 says receivers ignore them);
 *  - every defined value length even (PS3.5 7.1.1) and within what is left of its container
 *    (else ERR_TRUNCATED at the top level, ERR_MALFORMED inside a defined-length item or
 *    sequence); binary VRs (AT FD FL SL SS SV UL US UV OD OF OL OV OW) a multiple of their size;
 *  - undefined length (FFFFFFFFH) only on SQ, on explicit UN (a sequence whose items are Implicit
 *    VR, PS3.5 6.2.2) and, in Implicit VR, on a tag the dictionary does not know (read as a
 *    sequence); never on any other VR, so no encapsulated pixel data (not an identifier's);
 *  - items only inside sequences, delimiters only where an undefined length is open, with
 *    length 0 (PS3.5 7.5.1-7.5.2); a sequence delimiter inside a defined-length sequence, or an
 *    item delimiter inside a defined-length item, is malformed;
 *  - no trailing bytes: the dataset ends exactly at the end of the input (any leftover bytes
 *    must parse as whole elements);
 *  - ERR_LIMIT over the caps of struct dcm_limits (nesting depth, element count, bytes).
 * Value contents are not checked on parse (a C-FIND key may legitimately break its VR's rules,
 * PS3.4 C.2.2.2); the accessors and dcm_query check what they read.
 *
 * Implicit VR: the VR comes from dcm_dict (Q/R, C-MOVE response and Storage Commitment
 * attributes), UL for group lengths, LO for private creators, UN otherwise.
 *
 * Writing: sequences and items are always written with undefined length and delimiters (PS3.5
 * 7.5.2), so a sequence of an unknown tag reads back as a sequence in Implicit VR too. Odd values
 * are padded (UI with NUL, other text VRs with a space, binary with 0; PS3.5 6.2); a padded value
 * longer than 0xFFFE bytes in a VR with a 2-byte length (PS3.5 7.1.2) fails with ERR_LIMIT. In
 * Implicit VR, a sequence whose tag the dictionary gives another VR (or a value whose tag it
 * gives SQ) fails with ERR_UNSUPPORTED: no reader could parse it back (dcm_dict_seq_conflict). */
#ifndef GW_DCM_DS_H
#define GW_DCM_DS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dcm_dict.h"
#include "dcm_vr.h"
#include "err.h"
#include "rd.h"
#include "wbuf.h"

enum dcm_ts {
    DCM_TS_IMPLICIT_LE = 0, /* 1.2.840.10008.1.2 */
    DCM_TS_EXPLICIT_LE = 1, /* 1.2.840.10008.1.2.1 */
};

#define DCM_MAX_DEPTH_HARD 64u /* no configuration may nest deeper (the code recurses) */

struct dcm_limits {
    size_t max_bytes;   /* memory of the tree: input copy, values and nodes */
    size_t max_elems;   /* data elements plus items in the whole tree */
    unsigned max_depth; /* sequence nesting; the root's elements are at depth 0 */
};

/* 4 MiB of tree, 65536 elements and items, 16 levels of sequences. */
#define DCM_LIMITS_DEFAULT {4u << 20, 65536u, 16u}

struct dcm_ds;   /* the tree and its memory */
struct dcm_item; /* the root dataset or one item of a sequence: elements in ascending tag order */
struct dcm_elem; /* one data element: a value, or (SQ) a list of items */

/* ---- life cycle ---- */

/* An empty tree with the given limits (NULL: DCM_LIMITS_DEFAULT; max_depth is clamped to
 * DCM_MAX_DEPTH_HARD). NULL when malloc fails. Free with dcm_ds_free(). */
struct dcm_ds *dcm_ds_new(const struct dcm_limits *lim);
void dcm_ds_free(struct dcm_ds *ds); /* NULL is fine */

/* Parse exactly p[0..n) as a dataset in ts (the rules above). On success *out is a new tree the
 * caller frees; on failure *out is NULL and the result is ERR_TRUNCATED (the input ends inside
 * an element, item or open sequence), ERR_MALFORMED, ERR_LIMIT or ERR_NOMEM. p is only read
 * during the call. */
MUST_CHECK int dcm_ds_parse(const uint8_t *p, size_t n, enum dcm_ts ts,
                            const struct dcm_limits *lim, struct dcm_ds **out);

/* Append the encoding of the whole tree in ts to out (see "Writing" above). Returns 0, ERR_LIMIT
 * (a value too long for its length field, or out's cap), ERR_UNSUPPORTED (Implicit VR cannot
 * carry an element, see above) or ERR_NOMEM; out's sticky error is set too on a cap or
 * allocation failure. */
MUST_CHECK int dcm_ds_write(const struct dcm_ds *ds, enum dcm_ts ts, struct wbuf *out);

/* ---- reading ---- */

const struct dcm_item *dcm_ds_root(const struct dcm_ds *ds);
const struct dcm_elem *dcm_item_first(const struct dcm_item *it); /* NULL when empty */
const struct dcm_elem *dcm_elem_next(const struct dcm_elem *e);   /* NULL after the last */
size_t dcm_item_count(const struct dcm_item *it);                /* elements in it */
/* The element with this tag directly in it (not inside its sequences), or NULL. */
const struct dcm_elem *dcm_item_find(const struct dcm_item *it, uint32_t tag);

uint32_t dcm_elem_tag(const struct dcm_elem *e);
uint16_t dcm_elem_vr(const struct dcm_elem *e); /* enum dcm_vr */
/* The value bytes as encoded (padding included); empty for a sequence. Borrowed from the tree. */
struct slice dcm_elem_raw(const struct dcm_elem *e);
bool dcm_elem_is_seq(const struct dcm_elem *e);
size_t dcm_elem_nitems(const struct dcm_elem *e); /* 0 unless a sequence */
const struct dcm_item *dcm_elem_first_item(const struct dcm_elem *e); /* NULL: none */
const struct dcm_item *dcm_item_next(const struct dcm_item *it);      /* next item of its seq */

/* Value multiplicity (PS3.5 6.4): text VRs count backslash-separated values (LT ST UR UT: 1),
 * 0 for an empty value; binary VRs length / size; OB OD OF OL OV OW UN: 1 unless empty;
 * sequences their item count. */
size_t dcm_elem_vm(const struct dcm_elem *e);

/* Value idx (0-based) of a text VR, its insignificant padding stripped (dcm_vr_strip), borrowed.
 * Returns 0, ERR_NOTFOUND (idx >= vm) or ERR_MISMATCH (not a text VR). */
MUST_CHECK int dcm_elem_str(const struct dcm_elem *e, size_t idx, struct slice *out);

/* dcm_elem_str() copied into buf as a NUL-terminated string. Also ERR_LIMIT when it does not fit
 * in cap bytes (NUL included) and ERR_MALFORMED when the value holds a NUL byte. */
MUST_CHECK int dcm_elem_cstr(const struct dcm_elem *e, size_t idx, char *buf, size_t cap);

/* Value idx as an integer: US UL UV SS SL SV (little endian), or IS (text, PS3.5 6.2). Returns 0,
 * ERR_NOTFOUND (idx >= vm), ERR_MISMATCH (another VR, or a negative value for the unsigned
 * reader) or ERR_MALFORMED (an IS that is not an integer). */
MUST_CHECK int dcm_elem_uint(const struct dcm_elem *e, size_t idx, uint64_t *out);
MUST_CHECK int dcm_elem_int(const struct dcm_elem *e, size_t idx, int64_t *out);

/* The first value of tag in it: ERR_NOTFOUND when the element is absent; an empty slice (and 0)
 * when it is present with no value; else as dcm_elem_str(). */
MUST_CHECK int dcm_item_str(const struct dcm_item *it, uint32_t tag, struct slice *out);

/* ---- building ---- */

/* The root, writable: for building, or for adding to a parsed tree. */
struct dcm_item *dcm_ds_root_mut(struct dcm_ds *ds);

/* Every add below inserts the element into it at its place in ascending tag order (it must belong
 * to ds) and copies what it is given. They return 0, ERR_MALFORMED (tag already present in it, or
 * not a data element tag: groups 0000-0007, FFFE, FFFF), ERR_UNSUPPORTED (vr unknown, or SQ
 * where a value is expected), ERR_LIMIT (the element cap or the tree's byte cap) or ERR_NOMEM. */

/* A text value of s[0..n): several values separated by backslash, without padding. Validated
 * with dcm_vr_check() (characters counted as UTF-8 code points once the root holds a Specific
 * Character Set of ISO_IR 192): ERR_MALFORMED when the value breaks its VR's rules. */
MUST_CHECK int dcm_ds_add_str(struct dcm_ds *ds, struct dcm_item *it, uint32_t tag, uint16_t vr,
                              const char *s, size_t n);
/* As dcm_ds_add_str() for a NUL-terminated string of our own (never raw input). */
MUST_CHECK int dcm_ds_add_cstr(struct dcm_ds *ds, struct dcm_item *it, uint32_t tag, uint16_t vr,
                               const char *s);
/* Bytes as given, not validated (a query key, a copied value); only a binary VR's length must be
 * a multiple of its size (else ERR_MALFORMED). Odd lengths are padded when written. */
MUST_CHECK int dcm_ds_add_raw(struct dcm_ds *ds, struct dcm_item *it, uint32_t tag, uint16_t vr,
                              const void *p, size_t n);
/* One US value / one UL value. */
MUST_CHECK int dcm_ds_add_u16(struct dcm_ds *ds, struct dcm_item *it, uint32_t tag, uint16_t v);
MUST_CHECK int dcm_ds_add_u32(struct dcm_ds *ds, struct dcm_item *it, uint32_t tag, uint32_t v);
/* An empty sequence; *seq (owned by ds) receives items with dcm_ds_add_item(). */
MUST_CHECK int dcm_ds_add_seq(struct dcm_ds *ds, struct dcm_item *it, uint32_t tag,
                              struct dcm_elem **seq);
/* Append an empty item to seq (an SQ of ds). ERR_LIMIT past max_depth or the element cap;
 * ERR_MISMATCH when seq is not a sequence. */
MUST_CHECK int dcm_ds_add_item(struct dcm_ds *ds, struct dcm_elem *seq, struct dcm_item **item);
/* A deep copy of src (from any tree) into it, with src's tag and VR. */
MUST_CHECK int dcm_ds_copy_elem(struct dcm_ds *ds, struct dcm_item *it, const struct dcm_elem *src);

#endif
