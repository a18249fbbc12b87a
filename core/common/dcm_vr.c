/* dcm_vr: PS3.5 6.2 (VRs), 7.1.2 (explicit VR header lengths), 9.1 (UIDs). */
#include "dcm_vr.h"

#include "dcm_dt.h"

#define L DCM_STRIP_LEAD
#define T DCM_STRIP_TRAIL

/* Sorted by vr for the binary search. max: PS3.5 Table 6.2-1 (0: unlimited but 2^32-2). */
static const struct dcm_vr_info vr_table[] = {
    {DCM_VR_AE, DCM_VK_TEXT, false, false, 1, ' ', L | T, 16, false},
    {DCM_VR_AS, DCM_VK_TEXT, false, false, 1, ' ', 0, 4, false},
    {DCM_VR_AT, DCM_VK_BIN, false, false, 4, 0, 0, 0, false},
    {DCM_VR_CS, DCM_VK_TEXT, false, false, 1, ' ', L | T, 16, false},
    {DCM_VR_DA, DCM_VK_TEXT, false, false, 1, ' ', T, 8, false},
    {DCM_VR_DS, DCM_VK_TEXT, false, false, 1, ' ', L | T, 16, false},
    {DCM_VR_DT, DCM_VK_TEXT, false, false, 1, ' ', T, 26, false},
    {DCM_VR_FD, DCM_VK_BIN, false, false, 8, 0, 0, 0, false},
    {DCM_VR_FL, DCM_VK_BIN, false, false, 4, 0, 0, 0, false},
    {DCM_VR_IS, DCM_VK_TEXT, false, false, 1, ' ', L | T, 12, false},
    {DCM_VR_LO, DCM_VK_TEXT, false, true, 1, ' ', L | T, 64, true},
    {DCM_VR_LT, DCM_VK_TEXT1, false, true, 1, ' ', T, 10240, true},
    {DCM_VR_OB, DCM_VK_BYTES, true, false, 1, 0, 0, 0, false},
    {DCM_VR_OD, DCM_VK_BYTES, true, false, 8, 0, 0, 0, false},
    {DCM_VR_OF, DCM_VK_BYTES, true, false, 4, 0, 0, 0, false},
    {DCM_VR_OL, DCM_VK_BYTES, true, false, 4, 0, 0, 0, false},
    {DCM_VR_OV, DCM_VK_BYTES, true, false, 8, 0, 0, 0, false},
    {DCM_VR_OW, DCM_VK_BYTES, true, false, 2, 0, 0, 0, false},
    {DCM_VR_PN, DCM_VK_TEXT, false, true, 1, ' ', T, 64, true}, /* 64 per component group */
    {DCM_VR_SH, DCM_VK_TEXT, false, true, 1, ' ', L | T, 16, true},
    {DCM_VR_SL, DCM_VK_BIN, false, false, 4, 0, 0, 0, false},
    {DCM_VR_SQ, DCM_VK_SQ, true, false, 1, 0, 0, 0, false},
    {DCM_VR_SS, DCM_VK_BIN, false, false, 2, 0, 0, 0, false},
    {DCM_VR_ST, DCM_VK_TEXT1, false, true, 1, ' ', T, 1024, true},
    {DCM_VR_SV, DCM_VK_BIN, true, false, 8, 0, 0, 0, false},
    {DCM_VR_TM, DCM_VK_TEXT, false, false, 1, ' ', T, 14, false},
    {DCM_VR_UC, DCM_VK_TEXT, true, true, 1, ' ', T, 0, true},
    {DCM_VR_UI, DCM_VK_TEXT, false, false, 1, '\0', T, 64, false},
    {DCM_VR_UL, DCM_VK_BIN, false, false, 4, 0, 0, 0, false},
    {DCM_VR_UN, DCM_VK_BYTES, true, false, 1, 0, 0, 0, false},
    {DCM_VR_UR, DCM_VK_TEXT1, true, false, 1, ' ', T, 0, false},
    {DCM_VR_US, DCM_VK_BIN, false, false, 2, 0, 0, 0, false},
    {DCM_VR_UT, DCM_VK_TEXT1, true, true, 1, ' ', T, 0, true},
    {DCM_VR_UV, DCM_VK_BIN, true, false, 8, 0, 0, 0, false},
};

#undef L
#undef T

const struct dcm_vr_info *dcm_vr_info(uint16_t vr)
{
    size_t lo = 0, hi = ARRAY_LEN(vr_table);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (vr_table[mid].vr == vr)
            return &vr_table[mid];
        if (vr_table[mid].vr < vr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void dcm_vr_name(uint16_t vr, char out[3])
{
    out[0] = (char)(vr >> 8);
    out[1] = (char)(vr & 0xFF);
    out[2] = '\0';
}

void dcm_vr_strip(uint16_t vr, const uint8_t **p, size_t *n)
{
    const struct dcm_vr_info *vi = dcm_vr_info(vr);
    const uint8_t *s = *p;
    size_t len = *n;
    if (!vi || (vi->kind != DCM_VK_TEXT && vi->kind != DCM_VK_TEXT1))
        return;
    while (len > 0 && (s[len - 1] == '\0' || (s[len - 1] == ' ' && (vi->strip & DCM_STRIP_TRAIL))))
        len--;
    if (vi->strip & DCM_STRIP_LEAD) {
        while (len > 0 && s[0] == ' ') {
            s++;
            len--;
        }
    }
    *p = s;
    *n = len;
}

bool dcm_uid_valid(const uint8_t *s, size_t n)
{
    if (n == 0 || n > 64)
        return false;
    size_t comp = 0; /* length of the current component */
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (comp == 0)
                return false;
            comp = 0;
        } else if (s[i] >= '0' && s[i] <= '9') {
            if (comp == 1 && s[i - 1] == '0')
                return false; /* leading zero */
            comp++;
        } else {
            return false;
        }
    }
    return comp > 0;
}

/* Characters of a value: UTF-8 code points (continuation bytes not counted) or bytes. */
static size_t char_count(const uint8_t *p, size_t n, bool utf8)
{
    if (!utf8)
        return n;
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += (p[i] & 0xC0) != 0x80;
    return c;
}

/* A digit string with optional sign and surrounding spaces; for IS within 32 bits. */
static bool is_ok(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n && p[i] == ' ')
        i++;
    bool neg = false;
    if (i < n && (p[i] == '+' || p[i] == '-'))
        neg = p[i++] == '-';
    int64_t v = 0;
    size_t nd = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        v = v * 10 + (p[i++] - '0');
        if (++nd > 10)
            return false;
    }
    while (i < n && p[i] == ' ')
        i++;
    if (nd == 0 || i != n)
        return false;
    return neg ? v <= 2147483648LL : v <= 2147483647LL;
}

/* Decimal string: [spaces][sign]digits[.digits][(e|E)[sign]digits][spaces], a digit before or
 * after the point. */
static bool ds_ok(const uint8_t *p, size_t n)
{
    size_t i = 0, nd = 0;
    while (i < n && p[i] == ' ')
        i++;
    if (i < n && (p[i] == '+' || p[i] == '-'))
        i++;
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        i++;
        nd++;
    }
    if (i < n && p[i] == '.') {
        i++;
        while (i < n && p[i] >= '0' && p[i] <= '9') {
            i++;
            nd++;
        }
    }
    if (nd == 0)
        return false;
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        size_t ne = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9') {
            i++;
            ne++;
        }
        if (ne == 0)
            return false;
    }
    while (i < n && p[i] == ' ')
        i++;
    return i == n;
}

static bool as_ok(const uint8_t *p, size_t n)
{
    if (n != 4)
        return false;
    for (size_t i = 0; i < 3; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
    }
    return p[3] == 'D' || p[3] == 'W' || p[3] == 'M' || p[3] == 'Y';
}

/* PN: at most 3 component groups ('='), each at most 5 components ('^') and 64 characters. */
static bool pn_ok(const uint8_t *p, size_t n, bool utf8)
{
    size_t groups = 1, carets = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || p[i] == '=') {
            if (char_count(p + start, i - start, utf8) > 64)
                return false;
            if (i < n && ++groups > 3)
                return false;
            carets = 0;
            start = i + 1;
        } else if (p[i] == '^' && ++carets > 4) {
            return false;
        }
    }
    return true;
}

/* Control characters allowed in text of this VR: LF, FF, CR and TAB in the free-text VRs only
 * (PS3.5 6.1.3 and 6.2). ESC is refused everywhere: we do not support ISO 2022 code extensions. */
static bool byte_ok(const struct dcm_vr_info *vi, uint8_t c)
{
    if (c == 0x7F)
        return false;
    if (c < 0x20) {
        return vi->kind == DCM_VK_TEXT1 && vi->vr != DCM_VR_UR &&
               (c == '\n' || c == '\f' || c == '\r' || c == '\t');
    }
    if (c >= 0x80)
        return vi->charset;
    return true;
}

static int check_one(const struct dcm_vr_info *vi, const uint8_t *p, size_t n, bool utf8)
{
    for (size_t i = 0; i < n; i++) {
        if (!byte_ok(vi, p[i]))
            return ERR_MALFORMED;
    }
    size_t len = vi->max_chars ? char_count(p, n, utf8) : n;
    if (vi->max && vi->vr != DCM_VR_PN && len > vi->max)
        return ERR_MALFORMED;
    if (n == 0)
        return 0; /* an empty value of a multi-valued element (PS3.5 6.4) */
    struct dcm_span sp;
    switch (vi->vr) {
    case DCM_VR_AE:
        for (size_t i = 0; i < n; i++) {
            if (p[i] != ' ')
                return 0;
        }
        return ERR_MALFORMED; /* "a value consisting solely of spaces shall not be used" */
    case DCM_VR_AS:
        return as_ok(p, n) ? 0 : ERR_MALFORMED;
    case DCM_VR_CS:
        for (size_t i = 0; i < n; i++) {
            uint8_t c = p[i];
            if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ' || c == '_'))
                return ERR_MALFORMED;
        }
        return 0;
    case DCM_VR_DA:
        return dcm_da_parse(p, n, &sp);
    case DCM_VR_TM:
        return dcm_tm_parse(p, n, &sp);
    case DCM_VR_DT:
        return dcm_dt_parse(p, n, &sp);
    case DCM_VR_IS:
        return is_ok(p, n) ? 0 : ERR_MALFORMED;
    case DCM_VR_DS:
        return ds_ok(p, n) ? 0 : ERR_MALFORMED;
    case DCM_VR_UI:
        return dcm_uid_valid(p, n) ? 0 : ERR_MALFORMED;
    case DCM_VR_PN:
        return pn_ok(p, n, utf8) ? 0 : ERR_MALFORMED;
    case DCM_VR_UR:
        return p[0] == ' ' ? ERR_MALFORMED : 0; /* leading spaces are not allowed in UR */
    default:
        return 0;
    }
}

int dcm_vr_check(uint16_t vr, const uint8_t *p, size_t n, bool utf8)
{
    const struct dcm_vr_info *vi = dcm_vr_info(vr);
    if (!vi || vi->kind == DCM_VK_SQ)
        return ERR_UNSUPPORTED;
    if (n > 0xFFFFFFFEu)
        return ERR_MALFORMED;
    if (vi->kind == DCM_VK_BIN || vi->kind == DCM_VK_BYTES)
        return n % vi->unit == 0 ? 0 : ERR_MALFORMED;
    if (vi->kind == DCM_VK_TEXT1)
        return check_one(vi, p, n, utf8);
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || p[i] == '\\') {
            int rc = check_one(vi, p + start, i - start, utf8);
            if (rc < 0)
                return rc;
            start = i + 1;
        }
    }
    return 0;
}
