/* mpart: a streaming reader of a multipart/related body (RFC 2046 5.1, RFC 2387), as WADO-RS
 * answers with several parts or one (PS3.18 8.7.3.1). Pure: no I/O, no allocation after init,
 * no globals. Bytes go in in pieces of any size; events come out one at a time: a part's headers
 * (its Content-Type), a slice of its body, its end, the closing delimiter. A body slice points
 * either into the caller's input or into the reader's own small buffer (a delimiter candidate
 * that turned out to be data), and is valid until the next call.
 *
 * The body starts with "--boundary" (a preamble before it is skipped), each part is headers,
 * an empty line and the body, and ends at "CRLF--boundary"; "--" after a delimiter closes the
 * body and what follows (the epilogue) is ignored. Caps: 8 KiB of part headers, 64 blanks of
 * transport padding after a delimiter, max_parts parts. */
#ifndef GW_MPART_H
#define GW_MPART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define MPART_BOUNDARY_MAX 70 /* RFC 2046 5.1.1 */
#define MPART_HEADERS_MAX 8192
#define MPART_TYPE_MAX 256

enum mpart_state {
    MPART_PREAMBLE = 0, /* before the first delimiter: bytes dropped */
    MPART_AFTER_DELIM,  /* just after "--boundary": "--", padding, CRLF */
    MPART_AFTER_DASH,   /* one '-' of the closing "--" seen */
    MPART_PADDING,      /* blanks, then CR */
    MPART_LF,           /* CR seen, LF expected */
    MPART_HEADERS,      /* a part's header lines up to the empty line */
    MPART_BODY,         /* a part's body up to "CRLF--boundary" */
    MPART_EPILOGUE,     /* after the closing delimiter: bytes dropped */
};

enum mpart_event {
    MPART_EV_NONE = 0, /* nothing to hand on (more input needed, or bytes were skipped) */
    MPART_EV_HEAD,     /* a part begins: m->part_type is its Content-Type ("" if none) */
    MPART_EV_DATA,     /* ev->data: body bytes of the current part */
    MPART_EV_END,      /* the current part ended */
    MPART_EV_CLOSE,    /* the closing delimiter: the body is complete */
};

struct mpart_ev {
    enum mpart_event type;
    const uint8_t *data; /* MPART_EV_DATA */
    size_t len;
};

struct mpart {
    char delim[MPART_BOUNDARY_MAX + 5]; /* "\r\n--" boundary */
    size_t dlen;
    enum mpart_state st;
    bool in_part;
    unsigned parts, max_parts, padding;
    uint8_t held[MPART_BOUNDARY_MAX + 5]; /* a delimiter's beginning, not yet known to be one */
    size_t nheld;
    uint8_t out[MPART_BOUNDARY_MAX + 5]; /* held bytes that turned out to be body */
    char hdr[MPART_HEADERS_MAX];
    size_t hlen;
    char part_type[MPART_TYPE_MAX];
    bool closed;
};

/* The boundary parameter of a Content-Type header value ("multipart/related;
 * type=\"application/dicom\"; boundary=abc" or boundary="a b"), copied into out (at least
 * MPART_BOUNDARY_MAX + 1 bytes). 0, ERR_NOTFOUND (no boundary parameter), ERR_MALFORMED (empty,
 * too long, a character RFC 2046's bchars do not allow, a broken quoted string). */
MUST_CHECK int mpart_boundary(const char *content_type, char *out, size_t cap);

/* The value of parameter name (case-insensitive) of a header value like the above, unquoted,
 * into out. 0, ERR_NOTFOUND, ERR_MALFORMED, ERR_LIMIT (does not fit). Also for "type" and
 * "transfer-syntax". */
MUST_CHECK int mpart_param(const char *header_value, const char *name, char *out, size_t cap);

/* Start reading a body delimited by boundary (from mpart_boundary); at most max_parts parts
 * (0: no limit). 0 or ERR_MALFORMED (boundary empty or too long). */
MUST_CHECK int mpart_init(struct mpart *m, const char *boundary, unsigned max_parts);

/* Read from p[0..n) (n may be 0: events still held are given). Returns the bytes used (>= 0)
 * with *ev set, or ERR_MALFORMED (a broken delimiter line), ERR_LIMIT (headers, padding or part
 * count over their caps). Bytes after the closing delimiter are used and ignored. Call again
 * with the rest of the input until all of it is used and the event is MPART_EV_NONE: then more
 * input is needed (a body that ends before mpart_closed() is truncated). */
MUST_CHECK int mpart_next(struct mpart *m, const uint8_t *p, size_t n, struct mpart_ev *ev);

/* True once the closing delimiter was read. */
static inline bool mpart_closed(const struct mpart *m)
{
    return m->closed;
}

#endif
