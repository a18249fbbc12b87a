#include "xml.h"

#include <string.h>

#include <stdbool.h>

#include "common/rd.h"

/* Does xml[pos..) start with "<" [slash] tag ">"? */
static size_t tag_at(const uint8_t *xml, size_t len, size_t pos, const char *tag, size_t tlen,
                     bool end)
{
    size_t need = 2 + tlen + (end ? 1 : 0);
    if (need > len - pos)
        return 0;
    const uint8_t *p = xml + pos;
    if (p[0] != '<')
        return 0;
    size_t i = 1;
    if (end) {
        if (p[1] != '/')
            return 0;
        i = 2;
    }
    if (memcmp(p + i, tag, tlen) != 0 || p[i + tlen] != '>')
        return 0;
    return need;
}

static int put(char *out, size_t out_sz, size_t *o, char c)
{
    if (*o + 1 >= out_sz)
        return ERR_LIMIT;
    out[(*o)++] = c;
    return 0;
}

static int entity(struct rd *r, char *c)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
    for (size_t i = 0; i < ARRAY_LEN(named); i++) {
        size_t n = strlen(named[i].name);
        if (rd_left(r) >= n && memcmp(rd_cur(r), named[i].name, n) == 0) {
            r->pos += n;
            *c = named[i].c;
            return 0;
        }
    }
    if (rd_left(r) < 3 || rd_cur(r)[0] != '#')
        return ERR_MALFORMED;
    size_t i = 1;
    unsigned base = 10, v = 0, digits = 0;
    if (rd_cur(r)[1] == 'x' || rd_cur(r)[1] == 'X') {
        base = 16;
        i = 2;
    }
    for (; i < rd_left(r) && rd_cur(r)[i] != ';'; i++) {
        uint8_t ch = rd_cur(r)[i];
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (base == 16 && ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10u;
        else if (base == 16 && ch >= 'A' && ch <= 'F')
            d = ch - 'A' + 10u;
        else
            return ERR_MALFORMED;
        v = v * base + d;
        if (++digits > 6 || v > 0x7f)
            return ERR_MALFORMED; /* only ASCII: S3 codes and messages need no more */
    }
    if (i >= rd_left(r) || digits == 0 || v == 0)
        return ERR_MALFORMED;
    r->pos += i + 1;
    *c = (char)v;
    return 0;
}

int xml_text(const uint8_t *xml, size_t len, const char *tag, char *out, size_t out_sz)
{
    size_t tlen = strlen(tag); /* tag is our own constant */
    if (out_sz == 0)
        return ERR_LIMIT;
    out[0] = '\0';
    for (size_t pos = 0; pos < len; pos++) {
        size_t n = tag_at(xml, len, pos, tag, tlen, false);
        if (!n)
            continue;
        struct rd r = rd_make(xml, len);
        r.pos = pos + n;
        size_t o = 0;
        while (rd_left(&r) > 0) {
            if (tag_at(xml, len, r.pos, tag, tlen, true)) {
                out[o] = '\0';
                return 0;
            }
            uint8_t c = *rd_cur(&r);
            if (c == '<') {
                out[0] = '\0';
                return ERR_MALFORMED;
            }
            r.pos++;
            char ch = (char)c;
            if (c == '&') {
                int rc = entity(&r, &ch);
                if (rc < 0) {
                    out[0] = '\0';
                    return rc;
                }
            }
            int rc = put(out, out_sz, &o, ch);
            if (rc < 0) {
                out[0] = '\0';
                return rc;
            }
        }
        out[0] = '\0';
        return ERR_MALFORMED;
    }
    return ERR_NOTFOUND;
}
