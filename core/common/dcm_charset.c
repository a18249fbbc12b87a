/* dcm_charset: PS3.5 6.1 for the three sets we support (see dcm_charset.h). */
#include "dcm_charset.h"

#include <string.h>

#define TAG_CHARSET DCM_TAG(0x0008, 0x0005)

static bool control_ok(uint32_t c)
{
    return c == '\n' || c == '\f' || c == '\r' || c == '\t';
}

/* Strict UTF-8 (RFC 3629): shortest form, no surrogates, at most U+10FFFF. */
static int utf8_next(const uint8_t *p, size_t n, size_t *i, uint32_t *cp)
{
    uint8_t b0 = p[*i];
    size_t k;
    uint32_t c, min;
    if (b0 < 0x80) {
        *cp = b0;
        (*i)++;
        return 0;
    } else if ((b0 & 0xE0) == 0xC0) {
        k = 1;
        c = b0 & 0x1Fu;
        min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
        k = 2;
        c = b0 & 0x0Fu;
        min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
        k = 3;
        c = b0 & 0x07u;
        min = 0x10000;
    } else {
        return ERR_MALFORMED;
    }
    if (n - *i - 1 < k)
        return ERR_MALFORMED;
    for (size_t j = 1; j <= k; j++) {
        uint8_t b = p[*i + j];
        if ((b & 0xC0) != 0x80)
            return ERR_MALFORMED;
        c = c << 6 | (b & 0x3Fu);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return ERR_MALFORMED;
    *i += k + 1;
    *cp = c;
    return 0;
}

int dcm_charset_next(enum dcm_charset cs, const uint8_t *p, size_t n, size_t *i, uint32_t *cp)
{
    uint32_t c;
    if (*i >= n)
        return ERR_MALFORMED;
    if (cs == DCM_CS_UTF8) {
        size_t j = *i;
        TRY(utf8_next(p, n, &j, &c));
        if (c == 0x1B)
            return ERR_UNSUPPORTED;
        if ((c < 0x20 && !control_ok(c)) || (c >= 0x7F && c <= 0x9F))
            return ERR_MALFORMED;
        *i = j;
        *cp = c;
        return 0;
    }
    c = p[*i];
    if (c == 0x1B)
        return ERR_UNSUPPORTED; /* ISO 2022 escape: code extensions are not supported */
    if ((c < 0x20 && !control_ok(c)) || c == 0x7F)
        return ERR_MALFORMED;
    if (c >= 0x80 && (cs == DCM_CS_DEFAULT || c <= 0x9F))
        return ERR_MALFORMED; /* outside ISO IR 6; C1 controls in ISO IR 100 */
    (*i)++;
    *cp = c; /* ISO 8859-1 is the first 256 code points */
    return 0;
}

size_t dcm_utf8_put(uint32_t cp, uint8_t b[4])
{
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (uint8_t)(0xC0 | cp >> 6);
        b[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (uint8_t)(0xE0 | cp >> 12);
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (uint8_t)(0xF0 | cp >> 18);
    b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

int dcm_charset_to_utf8(enum dcm_charset cs, const uint8_t *p, size_t n, struct wbuf *out)
{
    size_t start = out->len;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int rc = dcm_charset_next(cs, p, n, &i, &cp);
        if (rc < 0) {
            if (!out->err)
                out->len = start;
            return rc;
        }
        uint8_t b[4];
        wbuf_put(out, b, dcm_utf8_put(cp, b));
    }
    return out->err;
}

int dcm_charset_from_utf8(enum dcm_charset cs, const uint8_t *p, size_t n, struct wbuf *out)
{
    size_t start = out->len;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        size_t at = i;
        uint32_t cp;
        rc = dcm_charset_next(DCM_CS_UTF8, p, n, &i, &cp);
        if (rc < 0)
            break;
        if (cs == DCM_CS_UTF8)
            wbuf_put(out, p + at, i - at);
        else if (cp < 0x80 || (cs == DCM_CS_LATIN1 && cp >= 0xA0 && cp <= 0xFF))
            wbuf_u8(out, (uint8_t)cp);
        else
            rc = ERR_UNSUPPORTED; /* not representable in cs */
    }
    if (rc < 0) {
        if (!out->err)
            out->len = start;
        return rc;
    }
    return out->err;
}

int dcm_charset_from_elem(const struct dcm_elem *e, enum dcm_charset *out)
{
    *out = DCM_CS_DEFAULT;
    if (!e)
        return 0;
    size_t vm = dcm_elem_vm(e);
    if (vm == 0)
        return 0; /* tolerated: PS3.4 C.2.2.2 forbids a zero length, PS3.3 reads it as default */
    if (vm > 1)
        return ERR_UNSUPPORTED; /* code extensions (PS3.5 6.1.2.5) */
    struct slice s;
    if (dcm_elem_str(e, 0, &s) < 0)
        return ERR_UNSUPPORTED;
    if (slice_eq_str(s, "ISO_IR 100"))
        *out = DCM_CS_LATIN1;
    else if (slice_eq_str(s, "ISO_IR 192"))
        *out = DCM_CS_UTF8;
    else if (!slice_eq_str(s, "ISO_IR 6") && s.len > 0)
        return ERR_UNSUPPORTED;
    return 0;
}

int dcm_charset_of(const struct dcm_item *it, enum dcm_charset *out)
{
    return dcm_charset_from_elem(dcm_item_find(it, TAG_CHARSET), out);
}

const char *dcm_charset_term(enum dcm_charset cs)
{
    switch (cs) {
    case DCM_CS_LATIN1:
        return "ISO_IR 100";
    case DCM_CS_UTF8:
        return "ISO_IR 192";
    default:
        return "";
    }
}
