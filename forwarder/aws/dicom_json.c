#include "dicom_json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wbuf.h"

#define INPUT_MAX (64u << 20) /* whatever the caller's cap: never parse more than this */
#define TAG_SPECIFIC_CHARSET 0x00080005u

struct conv {
    struct dcm_ds *ds;
    size_t dropped;
    struct wbuf val; /* the value being built */
};

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Exactly 8 hexadecimal digits (F.2.1.1: "the eight character uppercase hexadecimal
 * representation of a DICOM Tag"; lowercase is tolerated). */
static int parse_hex32(const char *s, uint32_t *out)
{
    if (!s)
        return ERR_MALFORMED;
    uint32_t v = 0;
    for (int i = 0; i < 8; i++) {
        int h = hexval(s[i]); /* s[i] is '\0' at the end at the latest: hexval refuses it */
        if (h < 0)
            return ERR_MALFORMED;
        v = v << 4 | (uint32_t)h;
    }
    if (s[8] != '\0')
        return ERR_MALFORMED;
    *out = v;
    return 0;
}

static int parse_vr(const cJSON *attr, uint16_t *vr)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(attr, "vr");
    if (!cJSON_IsString(v) || !v->valuestring)
        return ERR_MALFORMED;
    const char *s = v->valuestring;
    if (!s[0] || !s[1] || s[2])
        return ERR_MALFORMED;
    uint16_t code = (uint16_t)DCM_VR_CODE((uint8_t)s[0], (uint8_t)s[1]);
    if (!dcm_vr_info(code))
        return ERR_MALFORMED;
    *vr = code;
    return 0;
}

/* RFC 4648 base64 with padding, nothing else (F.2.7). */
static int b64_decode(const char *s, struct wbuf *out)
{
    size_t n = strlen(s);
    if (n % 4 != 0)
        return ERR_MALFORMED;
    if (n / 4 * 3 > DICOM_JSON_VALUE_MAX)
        return ERR_LIMIT;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t acc = 0;
        int pad = 0;
        for (size_t k = 0; k < 4; k++) {
            char ch = s[i + k];
            int v;
            if (ch >= 'A' && ch <= 'Z')
                v = ch - 'A';
            else if (ch >= 'a' && ch <= 'z')
                v = ch - 'a' + 26;
            else if (ch >= '0' && ch <= '9')
                v = ch - '0' + 52;
            else if (ch == '+')
                v = 62;
            else if (ch == '/')
                v = 63;
            else if (ch == '=' && i + 4 == n && k >= 2)
                v = -1;
            else
                return ERR_MALFORMED;
            if (v < 0)
                pad++;
            else if (pad)
                return ERR_MALFORMED; /* data after padding */
            acc = acc << 6 | (uint32_t)(v < 0 ? 0 : v);
        }
        wbuf_u8(out, (uint8_t)(acc >> 16));
        if (pad < 2)
            wbuf_u8(out, (uint8_t)(acc >> 8));
        if (pad < 1)
            wbuf_u8(out, (uint8_t)acc);
    }
    return out->err;
}

/* A JSON number that is a whole number in [lo, hi]. */
static bool whole_in(const cJSON *v, double lo, double hi, double *out)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (!isfinite(d) || d < lo || d > hi || floor(d) != d)
        return false;
    *out = d;
    return true;
}

/* A decimal string of a 64-bit integer (SV/UV as strings, F.2.3.1). */
static bool str_int64(const char *s, bool is_signed, uint64_t *out)
{
    const char *p = s;
    bool neg = false;
    if (is_signed && *p == '-') {
        neg = true;
        p++;
    }
    if (!*p || strlen(p) > 20)
        return false;
    uint64_t v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (is_signed && (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX))
        return false;
    *out = neg ? (uint64_t)0 - v : v;
    return true;
}

static void put_le(struct wbuf *w, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        wbuf_u8(w, (uint8_t)(v >> (8 * i)));
}

/* One value of a binary-number VR into c->val. 0, 1 (out of range: drop), ERR_MALFORMED. */
static int bin_value(struct conv *c, uint16_t vr, const cJSON *v)
{
    double d;
    uint64_t u;
    switch (vr) {
    case DCM_VR_US:
        if (!cJSON_IsNumber(v))
            return ERR_MALFORMED;
        if (!whole_in(v, 0, 65535, &d))
            return 1;
        put_le(&c->val, (uint64_t)d, 2);
        return 0;
    case DCM_VR_SS:
        if (!cJSON_IsNumber(v))
            return ERR_MALFORMED;
        if (!whole_in(v, -32768, 32767, &d))
            return 1;
        put_le(&c->val, (uint64_t)(int64_t)d, 2);
        return 0;
    case DCM_VR_UL:
        if (!cJSON_IsNumber(v))
            return ERR_MALFORMED;
        if (!whole_in(v, 0, 4294967295.0, &d))
            return 1;
        put_le(&c->val, (uint64_t)d, 4);
        return 0;
    case DCM_VR_SL:
        if (!cJSON_IsNumber(v))
            return ERR_MALFORMED;
        if (!whole_in(v, -2147483648.0, 2147483647.0, &d))
            return 1;
        put_le(&c->val, (uint64_t)(int64_t)d, 4);
        return 0;
    case DCM_VR_SV:
    case DCM_VR_UV: {
        bool sgn = vr == DCM_VR_SV;
        if (cJSON_IsString(v) && v->valuestring) {
            if (!str_int64(v->valuestring, sgn, &u))
                return 1;
        } else if (cJSON_IsNumber(v)) {
            /* beyond 2^53 a JSON number is no longer exact: refuse rather than guess */
            if (!whole_in(v, sgn ? -9007199254740992.0 : 0, 9007199254740992.0, &d))
                return 1;
            u = sgn ? (uint64_t)(int64_t)d : (uint64_t)d;
        } else {
            return ERR_MALFORMED;
        }
        put_le(&c->val, u, 8);
        return 0;
    }
    case DCM_VR_FL: {
        if (!cJSON_IsNumber(v))
            return ERR_MALFORMED;
        d = v->valuedouble;
        if (!isfinite(d) || fabs(d) > 3.4028234663852886e38)
            return 1;
        float f = (float)d;
        uint32_t bits;
        memcpy(&bits, &f, 4);
        put_le(&c->val, bits, 4);
        return 0;
    }
    case DCM_VR_FD: {
        if (!cJSON_IsNumber(v))
            return ERR_MALFORMED;
        d = v->valuedouble;
        if (!isfinite(d))
            return 1;
        uint64_t bits;
        memcpy(&bits, &d, 8);
        put_le(&c->val, bits, 8);
        return 0;
    }
    case DCM_VR_AT: {
        uint32_t tag;
        if (!cJSON_IsString(v))
            return ERR_MALFORMED;
        if (parse_hex32(v->valuestring, &tag) < 0)
            return 1;
        put_le(&c->val, tag >> 16, 2);
        put_le(&c->val, tag & 0xFFFFu, 2);
        return 0;
    }
    default:
        return ERR_MALFORMED;
    }
}

/* Append s as one text value; 1 when it cannot be one (a separator inside). */
static int text_piece(struct conv *c, const char *s, bool multi, const char *forbid)
{
    if (multi && strchr(s, '\\'))
        return 1;
    if (forbid && strpbrk(s, forbid))
        return 1;
    size_t n = strlen(s);
    if (n > DICOM_JSON_VALUE_MAX)
        return ERR_LIMIT;
    wbuf_put(&c->val, s, n);
    return 0;
}

/* A PN value (F.2.2): {"Alphabetic", "Ideographic", "Phonetic"} joined with '='. */
static int pn_value(struct conv *c, const cJSON *v)
{
    if (!cJSON_IsObject(v))
        return ERR_MALFORMED;
    static const char *const groups[3] = {"Alphabetic", "Ideographic", "Phonetic"};
    const char *g[3] = {"", "", ""};
    int last = -1;
    for (int i = 0; i < 3; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(v, groups[i]);
        if (!x || cJSON_IsNull(x))
            continue;
        if (!cJSON_IsString(x) || !x->valuestring)
            return ERR_MALFORMED;
        g[i] = x->valuestring;
        if (g[i][0])
            last = i;
    }
    for (int i = 0; i <= last; i++) {
        if (i)
            wbuf_u8(&c->val, '=');
        int rc = text_piece(c, g[i], true, "=");
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* IS and DS: a JSON number written as DICOM text, or a string (F.2.3.1). 1: not representable */
static int number_text(struct conv *c, uint16_t vr, const cJSON *v)
{
    if (cJSON_IsString(v) && v->valuestring)
        return text_piece(c, v->valuestring, true, NULL);
    if (!cJSON_IsNumber(v))
        return ERR_MALFORMED;
    char buf[40];
    double d;
    if (vr == DCM_VR_IS) {
        if (!whole_in(v, -2147483648.0, 2147483647.0, &d))
            return 1;
        snprintf(buf, sizeof buf, "%lld", (long long)d);
    } else {
        d = v->valuedouble;
        if (!isfinite(d))
            return 1;
        int prec = 16, k = 0;
        do { /* DS holds at most 16 characters (PS3.5 6.2) */
            k = snprintf(buf, sizeof buf, "%.*g", prec--, d);
        } while (k > 16 && prec > 0);
        if (k < 0 || k > 16)
            return 1;
    }
    wbuf_str(&c->val, buf);
    return 0;
}

/* The value of a non-sequence attribute into c->val. 0, 1 (drop it), < 0 fatal. */
static int build_value(struct conv *c, uint16_t vr, const cJSON *value)
{
    const struct dcm_vr_info *vi = dcm_vr_info(vr);
    if (!cJSON_IsArray(value))
        return ERR_MALFORMED;
    if (vi->kind == DCM_VK_BYTES || vi->kind == DCM_VK_SQ)
        return ERR_MALFORMED; /* OB OW ... come as InlineBinary; SQ handled by the caller */
    int count = cJSON_GetArraySize(value);
    if (vi->kind == DCM_VK_TEXT1 && count > 1)
        return ERR_MALFORMED;
    int i = 0, drop = 0;
    for (const cJSON *v = value->child; v; v = v->next, i++) {
        if (vi->kind == DCM_VK_BIN) {
            if (cJSON_IsNull(v))
                return ERR_MALFORMED; /* binary values have no "empty" member */
            int rc = bin_value(c, vr, v);
            if (rc < 0)
                return rc;
            drop |= rc;
            continue;
        }
        if (i > 0)
            wbuf_u8(&c->val, '\\');
        if (cJSON_IsNull(v))
            continue;
        int rc;
        if (vr == DCM_VR_PN)
            rc = pn_value(c, v);
        else if (vr == DCM_VR_IS || vr == DCM_VR_DS)
            rc = number_text(c, vr, v);
        else if (cJSON_IsString(v) && v->valuestring)
            rc = text_piece(c, v->valuestring, vi->kind == DCM_VK_TEXT, NULL);
        else
            return ERR_MALFORMED;
        if (rc < 0)
            return rc;
        drop |= rc;
        if (c->val.len > DICOM_JSON_VALUE_MAX)
            return ERR_LIMIT;
    }
    if (c->val.err)
        return c->val.err;
    return drop ? 1 : 0;
}

static int conv_item(struct conv *c, struct dcm_item *it, const cJSON *obj, bool root);

/* A dcm_ds add's outcome: what the dataset refuses is dropped; caps and memory are fatal. */
static int added(struct conv *c, int rc)
{
    if (rc == ERR_MALFORMED || rc == ERR_UNSUPPORTED) {
        c->dropped++;
        return 0;
    }
    return rc;
}

static int conv_seq(struct conv *c, struct dcm_item *it, uint32_t tag, const cJSON *value)
{
    if (value && !cJSON_IsArray(value))
        return ERR_MALFORMED;
    struct dcm_elem *seq;
    int rc = dcm_ds_add_seq(c->ds, it, tag, &seq);
    if (rc < 0)
        return added(c, rc);
    for (const cJSON *x = value ? value->child : NULL; x; x = x->next) {
        if (!cJSON_IsObject(x))
            return ERR_MALFORMED;
        struct dcm_item *sub;
        TRY(dcm_ds_add_item(c->ds, seq, &sub)); /* ERR_LIMIT past the depth cap */
        TRY(conv_item(c, sub, x, false));
    }
    return 0;
}

static int conv_attr(struct conv *c, struct dcm_item *it, const cJSON *attr, bool root)
{
    uint32_t tag;
    uint16_t vr;
    TRY(parse_hex32(attr->string, &tag));
    if (!cJSON_IsObject(attr))
        return ERR_MALFORMED;
    TRY(parse_vr(attr, &vr));
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(attr, "Value");
    const cJSON *inl = cJSON_GetObjectItemCaseSensitive(attr, "InlineBinary");
    const cJSON *bulk = cJSON_GetObjectItemCaseSensitive(attr, "BulkDataURI");
    if (!!value + !!inl + !!bulk > 1)
        return ERR_MALFORMED;
    if (root && tag == TAG_SPECIFIC_CHARSET)
        return 0; /* the JSON model is UTF-8 whatever it says; ours is set already */
    if (DCM_TAG_GROUP(tag) < 0x0008) {
        c->dropped++;
        return 0;
    }
    if (vr == DCM_VR_SQ) {
        if (inl || bulk)
            return ERR_MALFORMED;
        return conv_seq(c, it, tag, value);
    }
    if (bulk) {
        if (!cJSON_IsString(bulk))
            return ERR_MALFORMED;
        c->dropped++; /* bulk data is not fetched for a search */
        return 0;
    }
    wbuf_reset(&c->val);
    const struct dcm_vr_info *vi = dcm_vr_info(vr);
    if (inl) {
        if (!cJSON_IsString(inl) || !inl->valuestring || vi->kind != DCM_VK_BYTES)
            return ERR_MALFORMED;
        TRY(b64_decode(inl->valuestring, &c->val));
        const uint8_t *b = c->val.p ? c->val.p : (const uint8_t *)""; /* never NULL + 0 */
        return added(c, dcm_ds_add_raw(c->ds, it, tag, vr, b, c->val.len));
    }
    if (value) {
        int rc = build_value(c, vr, value);
        if (rc < 0)
            return rc;
        if (rc > 0) {
            c->dropped++;
            return 0;
        }
    }
    const uint8_t *v = c->val.p ? c->val.p : (const uint8_t *)""; /* empty: never NULL + 0 */
    if (vi->kind == DCM_VK_TEXT || vi->kind == DCM_VK_TEXT1)
        return added(c, dcm_ds_add_str(c->ds, it, tag, vr, (const char *)v, c->val.len));
    return added(c, dcm_ds_add_raw(c->ds, it, tag, vr, v, c->val.len));
}

static int conv_item(struct conv *c, struct dcm_item *it, const cJSON *obj, bool root)
{
    for (const cJSON *attr = obj->child; attr; attr = attr->next)
        TRY(conv_attr(c, it, attr, root));
    return 0;
}

static void limits_or_default(const struct dcm_limits *in, struct dcm_limits *out)
{
    if (in && (in->max_bytes || in->max_elems || in->max_depth)) {
        *out = *in;
        return;
    }
    out->max_bytes = 1u << 20;
    out->max_elems = 4096;
    out->max_depth = 8;
}

static int conv_object(const cJSON *obj, const struct dcm_limits *lim, struct conv *c,
                       struct dcm_ds **out)
{
    *out = NULL;
    if (!cJSON_IsObject(obj))
        return ERR_MALFORMED;
    c->ds = dcm_ds_new(lim);
    if (!c->ds)
        return ERR_NOMEM;
    struct dcm_item *root = dcm_ds_root_mut(c->ds);
    int rc = dcm_ds_add_cstr(c->ds, root, TAG_SPECIFIC_CHARSET, DCM_VR_CS, "ISO_IR 192");
    if (rc == 0)
        rc = conv_item(c, root, obj, true);
    if (rc < 0) {
        dcm_ds_free(c->ds);
        c->ds = NULL;
        return rc;
    }
    *out = c->ds;
    c->ds = NULL;
    return 0;
}

static cJSON *parse_json(const uint8_t *p, size_t n, int *rc)
{
    *rc = 0;
    if (n > INPUT_MAX) {
        *rc = ERR_LIMIT;
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts((const char *)p, n, &end, 0);
    if (!j) {
        *rc = ERR_MALFORMED; /* cJSON does not tell syntax from memory: count it as malformed */
        return NULL;
    }
    size_t used = end ? (size_t)(end - (const char *)p) : n;
    for (size_t i = used; i < n; i++) { /* trailing bytes after the value: only white space */
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n') {
            cJSON_Delete(j);
            *rc = ERR_MALFORMED;
            return NULL;
        }
    }
    return j;
}

void dicom_json_list_free(struct dicom_json_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        dcm_ds_free(l->ds[i]);
    free(l->ds);
    memset(l, 0, sizeof *l);
}

int dicom_json_parse_array(const uint8_t *p, size_t n, const struct dicom_json_opts *opts,
                           struct dicom_json_list *out)
{
    memset(out, 0, sizeof *out);
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    if (i == n)
        return 0; /* no body (204), or only white space: no match */
    int rc;
    cJSON *j = parse_json(p, n, &rc);
    if (!j)
        return rc;
    struct dcm_limits lim;
    limits_or_default(opts ? &opts->limits : NULL, &lim);
    size_t max = opts && opts->max_objects ? opts->max_objects : 10000;
    struct conv c = {0};
    wbuf_init(&c.val, DICOM_JSON_VALUE_MAX + 64);
    rc = cJSON_IsArray(j) ? 0 : ERR_MALFORMED;
    size_t count = 0;
    for (const cJSON *x = rc == 0 ? j->child : NULL; x; x = x->next)
        count++;
    if (rc == 0 && count > max)
        rc = ERR_LIMIT;
    if (rc == 0 && count > 0) {
        out->ds = calloc(count, sizeof *out->ds);
        if (!out->ds)
            rc = ERR_NOMEM;
    }
    for (const cJSON *x = rc == 0 ? j->child : NULL; x && rc == 0; x = x->next) {
        rc = conv_object(x, &lim, &c, &out->ds[out->n]);
        if (rc == 0)
            out->n++;
    }
    out->dropped = c.dropped;
    wbuf_cleanup(&c.val);
    cJSON_Delete(j);
    if (rc < 0)
        dicom_json_list_free(out);
    return rc;
}

int dicom_json_parse_object(const uint8_t *p, size_t n, const struct dcm_limits *lim,
                            struct dcm_ds **out, size_t *dropped)
{
    *out = NULL;
    int rc;
    cJSON *j = parse_json(p, n, &rc);
    if (!j)
        return rc;
    struct dcm_limits l;
    limits_or_default(lim, &l);
    struct conv c = {0};
    wbuf_init(&c.val, DICOM_JSON_VALUE_MAX + 64);
    rc = conv_object(j, &l, &c, out);
    if (dropped)
        *dropped = c.dropped;
    wbuf_cleanup(&c.val);
    cJSON_Delete(j);
    return rc;
}
