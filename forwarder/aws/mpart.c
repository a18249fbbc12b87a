#include "mpart.h"

#include <string.h>
#include <strings.h>

#define PADDING_MAX 64

/* ---- header parameters (RFC 2045 5.1: type/subtype *(";" attribute "=" value)) ------------ */

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 2045 tspecials */
static bool is_token_char(char c)
{
    return c > ' ' && c < 0x7f && !strchr("()<>@,;:\\\"/[]?=", c);
}

int mpart_param(const char *v, const char *name, char *out, size_t cap)
{
    const char *p = strchr(v, ';');
    size_t nlen = strlen(name);
    while (p && *p == ';') {
        p++;
        while (is_space(*p))
            p++;
        const char *ns = p;
        while (is_token_char(*p))
            p++;
        size_t len = (size_t)(p - ns);
        while (is_space(*p))
            p++;
        if (*p != '=')
            return ERR_MALFORMED;
        p++;
        while (is_space(*p))
            p++;
        bool match = len == nlen && strncasecmp(ns, name, nlen) == 0;
        size_t o = 0;
        bool fits = true;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                if (o + 1 < cap)
                    out[o++] = *p;
                else
                    fits = false;
                p++;
            }
            if (*p != '"')
                return ERR_MALFORMED;
            p++;
        } else {
            const char *vs = p;
            while (is_token_char(*p))
                p++;
            if (p == vs)
                return ERR_MALFORMED;
            for (const char *q = vs; q < p; q++) {
                if (o + 1 < cap)
                    out[o++] = *q;
                else
                    fits = false;
            }
        }
        if (match) {
            if (!fits || cap == 0)
                return ERR_LIMIT;
            out[o] = '\0';
            return 0;
        }
        while (is_space(*p))
            p++;
        if (*p && *p != ';')
            return ERR_MALFORMED;
    }
    return ERR_NOTFOUND;
}

/* RFC 2046 5.1.1 bchars, and no blank at the end */
static bool boundary_valid(const char *b)
{
    size_t n = strlen(b);
    if (n == 0 || n > MPART_BOUNDARY_MAX || b[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  strchr("'()+_,-./:=? ", c) != NULL;
        if (!ok)
            return false;
    }
    return true;
}

int mpart_boundary(const char *content_type, char *out, size_t cap)
{
    char b[MPART_BOUNDARY_MAX + 2];
    int rc = mpart_param(content_type, "boundary", b, sizeof b);
    if (rc == ERR_LIMIT)
        return ERR_MALFORMED;
    TRY(rc);
    if (!boundary_valid(b) || strlen(b) + 1 > cap)
        return ERR_MALFORMED;
    memcpy(out, b, strlen(b) + 1);
    return 0;
}

/* ---- the body -------------------------------------------------------------------------------- */

int mpart_init(struct mpart *m, const char *boundary, unsigned max_parts)
{
    memset(m, 0, sizeof *m);
    if (!boundary_valid(boundary))
        return ERR_MALFORMED;
    m->dlen = strlen(boundary) + 4;
    memcpy(m->delim, "\r\n--", 4);
    memcpy(m->delim + 4, boundary, m->dlen - 4);
    m->max_parts = max_parts;
    m->st = MPART_PREAMBLE;
    /* the first delimiter needs no CRLF before it: pretend one was read */
    memcpy(m->held, "\r\n", 2);
    m->nheld = 2;
    return 0;
}

static void delimiter_found(struct mpart *m, struct mpart_ev *ev)
{
    if (m->in_part) {
        m->in_part = false;
        ev->type = MPART_EV_END;
    }
    m->st = MPART_AFTER_DELIM;
    m->padding = 0;
}

static void give(struct mpart *m, struct mpart_ev *ev, const uint8_t *p, size_t n)
{
    if (m->st == MPART_BODY && n > 0) {
        ev->type = MPART_EV_DATA;
        ev->data = p;
        ev->len = n;
    } /* the preamble's bytes are dropped */
}

/* Body or preamble: hand on everything up to "CRLF--boundary". */
static int scan(struct mpart *m, const uint8_t *p, size_t n, struct mpart_ev *ev)
{
    if (m->nheld > 0) { /* a delimiter's beginning from before: does the input complete it? */
        size_t k = m->dlen - m->nheld < n ? m->dlen - m->nheld : n;
        memcpy(m->held + m->nheld, p, k);
        m->nheld += k;
        if (memcmp(m->held, m->delim, m->nheld) == 0) {
            if (m->nheld == m->dlen) {
                m->nheld = 0;
                delimiter_found(m, ev);
            }
            return (int)k; /* else still a beginning: k == n, wait for more */
        }
        /* not a delimiter: its bytes up to the next CR are data, the rest is looked at again */
        size_t j = 1;
        while (j < m->nheld && m->held[j] != '\r')
            j++;
        memcpy(m->out, m->held, j);
        memmove(m->held, m->held + j, m->nheld - j);
        m->nheld -= j;
        give(m, ev, m->out, j);
        return (int)k;
    }
    size_t i = 0;
    while (i < n) {
        const uint8_t *cr = memchr(p + i, '\r', n - i);
        if (!cr)
            break;
        i = (size_t)(cr - p);
        size_t avail = n - i, cmp = avail < m->dlen ? avail : m->dlen;
        if (memcmp(p + i, m->delim, cmp) == 0) {
            if (i > 0) { /* the data before it first */
                give(m, ev, p, i);
                return (int)i;
            }
            if (cmp == m->dlen) {
                delimiter_found(m, ev);
                return (int)m->dlen;
            }
            memcpy(m->held, p, n); /* n < dlen here */
            m->nheld = n;
            return (int)n;
        }
        i++;
    }
    give(m, ev, p, n);
    return (int)n;
}

/* A part's header lines, then its Content-Type. */
static int headers_done(struct mpart *m)
{
    m->part_type[0] = '\0';
    size_t i = 0;
    while (i < m->hlen) {
        size_t e = i;
        while (e + 1 < m->hlen && !(m->hdr[e] == '\r' && m->hdr[e + 1] == '\n'))
            e++;
        if (e + 1 >= m->hlen)
            break;
        const char *line = m->hdr + i;
        size_t len = e - i;
        if (len > 13 && strncasecmp(line, "Content-Type:", 13) == 0) {
            const char *v = line + 13;
            size_t vl = len - 13;
            while (vl && is_space(*v)) {
                v++;
                vl--;
            }
            while (vl && is_space(v[vl - 1]))
                vl--;
            if (vl >= sizeof m->part_type || memchr(v, '\0', vl))
                return ERR_LIMIT;
            memcpy(m->part_type, v, vl);
            m->part_type[vl] = '\0';
        }
        i = e + 2;
    }
    return 0;
}

static int headers(struct mpart *m, const uint8_t *p, size_t n, struct mpart_ev *ev)
{
    for (size_t i = 0; i < n; i++) {
        if (m->hlen == sizeof m->hdr)
            return ERR_LIMIT;
        m->hdr[m->hlen++] = (char)p[i];
        bool empty = m->hlen == 2 && memcmp(m->hdr, "\r\n", 2) == 0;
        bool end = m->hlen >= 4 && memcmp(m->hdr + m->hlen - 4, "\r\n\r\n", 4) == 0;
        if (empty || end) {
            TRY(headers_done(m));
            m->st = MPART_BODY;
            m->in_part = true;
            ev->type = MPART_EV_HEAD;
            return (int)(i + 1);
        }
    }
    return (int)n;
}

/* After "--boundary": "--" (the end), or blanks and CRLF (a part follows). One byte. */
static int delimiter_line(struct mpart *m, uint8_t c, struct mpart_ev *ev)
{
    switch (m->st) {
    case MPART_AFTER_DELIM:
        if (c == '-')
            m->st = MPART_AFTER_DASH;
        else if (c == ' ' || c == '\t')
            m->st = MPART_PADDING;
        else if (c == '\r')
            m->st = MPART_LF;
        else
            return ERR_MALFORMED;
        return 1;
    case MPART_AFTER_DASH:
        if (c != '-')
            return ERR_MALFORMED;
        m->st = MPART_EPILOGUE;
        m->closed = true;
        ev->type = MPART_EV_CLOSE;
        return 1;
    case MPART_PADDING:
        if (c == '\r') {
            m->st = MPART_LF;
        } else if (c == ' ' || c == '\t') {
            if (++m->padding > PADDING_MAX)
                return ERR_LIMIT;
        } else {
            return ERR_MALFORMED;
        }
        return 1;
    default: /* MPART_LF */
        if (c != '\n')
            return ERR_MALFORMED;
        if (m->max_parts && m->parts == m->max_parts)
            return ERR_LIMIT;
        m->parts++;
        m->hlen = 0;
        m->st = MPART_HEADERS;
        return 1;
    }
}

int mpart_next(struct mpart *m, const uint8_t *p, size_t n, struct mpart_ev *ev)
{
    ev->type = MPART_EV_NONE;
    ev->data = NULL;
    ev->len = 0;
    if (n > (size_t)INT32_MAX)
        n = INT32_MAX; /* the result is an int: the caller comes back for the rest */
    switch (m->st) {
    case MPART_PREAMBLE:
    case MPART_BODY:
        return scan(m, p, n, ev);
    case MPART_HEADERS:
        return headers(m, p, n, ev);
    case MPART_EPILOGUE:
        return (int)n;
    default:
        return n == 0 ? 0 : delimiter_line(m, p[0], ev);
    }
}
