#include "syslog_frame.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

uint8_t syslog_severity_for_outcome(uint8_t outcome)
{
    switch (outcome) {
    case 0:
        return 5;
    case 4:
        return 4;
    case 8:
        return 3;
    default:
        return 2;
    }
}

/* An RFC 5424 header field: 1..max PRINTUSASCII, or the NILVALUE. */
static void field(struct wbuf *out, const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0) {
        wbuf_u8(out, '-');
        return;
    }
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        wbuf_u8(out, c >= 33 && c <= 126 ? c : '_');
    }
}

int syslog_format(struct wbuf *out, const struct syslog_hdr *h, const void *msg, size_t n)
{
    time_t secs = (time_t)(h->time_us / 1000000);
    long us = (long)(h->time_us % 1000000);
    if (us < 0) {
        us += 1000000;
        secs--;
    }
    struct tm tm;
    if (!gmtime_r(&secs, &tm))
        memset(&tm, 0, sizeof tm);
    wbuf_printf(out, "<%u>1 %04d-%02d-%02dT%02d:%02d:%02d.%06ldZ ",
                SYSLOG_FACILITY_AUTHPRIV * 8u + (h->severity & 7u), tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, us);
    field(out, h->host, 255);
    wbuf_u8(out, ' ');
    field(out, h->app, 48);
    if (h->procid)
        wbuf_printf(out, " %u ", (unsigned)h->procid);
    else
        wbuf_str(out, " - ");
    field(out, h->msgid, 32);
    wbuf_str(out, " -"); /* STRUCTURED-DATA: none (PS3.15 A.6 asks us to declare any) */
    if (n > 0 || h->bom)
        wbuf_u8(out, ' ');
    if (h->bom)
        wbuf_put(out, "\xEF\xBB\xBF", 3);
    wbuf_put(out, msg, n);
    return out->err;
}

int syslog_frame_octet(struct wbuf *out, const void *msg, size_t n)
{
    wbuf_printf(out, "%zu ", n);
    wbuf_put(out, msg, n);
    return out->err;
}

int syslog_frame_parse(const uint8_t *p, size_t n, size_t max, struct slice *msg)
{
    size_t i = 0;
    uint64_t len = 0;
    if (n == 0)
        return 0;
    if (p[0] < '1' || p[0] > '9')
        return ERR_MALFORMED; /* NONZERO-DIGIT first */
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        if (i >= SYSLOG_FRAME_DIGITS)
            return ERR_LIMIT;
        len = len * 10 + (uint64_t)(p[i] - '0');
        i++;
    }
    if (len > max)
        return ERR_LIMIT;
    if (i == n)
        return 0;
    if (p[i] != ' ')
        return ERR_MALFORMED;
    i++;
    if ((size_t)len > n - i)
        return 0;
    msg->p = p + i;
    msg->len = (size_t)len;
    return (int)(i + (size_t)len);
}

/* A header field up to the next SP: 1..max PRINTUSASCII. */
static int take_field(struct rd *r, size_t max, struct slice *out)
{
    size_t start = r->pos;
    while (rd_left(r) > 0 && rd_cur(r)[0] != ' ') {
        uint8_t c = rd_cur(r)[0];
        if (c < 33 || c > 126 || r->pos - start >= max)
            return ERR_MALFORMED;
        r->pos++;
    }
    if (r->pos == start)
        return ERR_MALFORMED;
    if (rd_left(r) == 0)
        return ERR_TRUNCATED;
    out->p = r->p + start;
    out->len = r->pos - start;
    r->pos++; /* the SP */
    return 0;
}

/* STRUCTURED-DATA: "-" or 1*SD-ELEMENT; PARAM-VALUE escapes '"', '\' and ']' with '\'. */
static int take_sd(struct rd *r, struct slice *out)
{
    size_t start = r->pos;
    if (rd_left(r) == 0)
        return ERR_TRUNCATED;
    if (rd_cur(r)[0] == '-') {
        r->pos++;
    } else {
        while (rd_left(r) > 0 && rd_cur(r)[0] == '[') {
            bool quoted = false;
            r->pos++;
            for (;;) {
                if (rd_left(r) == 0)
                    return ERR_TRUNCATED;
                uint8_t c = rd_cur(r)[0];
                r->pos++;
                if (quoted && c == '\\') {
                    if (rd_left(r) == 0)
                        return ERR_TRUNCATED;
                    r->pos++;
                } else if (c == '"') {
                    quoted = !quoted;
                } else if (!quoted && c == ']') {
                    break;
                }
            }
        }
        if (r->pos == start)
            return ERR_MALFORMED;
    }
    out->p = r->p + start;
    out->len = r->pos - start;
    return 0;
}

int syslog_parse(const uint8_t *p, size_t n, struct syslog_parsed *out)
{
    memset(out, 0, sizeof *out);
    struct rd r = rd_make(p, n);
    uint8_t c;
    TRY(rd_u8(&r, &c));
    if (c != '<')
        return ERR_MALFORMED;
    unsigned pri = 0, digits = 0;
    for (;;) {
        TRY(rd_u8(&r, &c));
        if (c == '>')
            break;
        if (c < '0' || c > '9' || ++digits > 3)
            return ERR_MALFORMED;
        pri = pri * 10 + (unsigned)(c - '0');
    }
    if (digits == 0 || pri > 191 || (digits > 1 && p[1] == '0'))
        return ERR_MALFORMED;
    unsigned ver = 0;
    digits = 0;
    for (;;) {
        TRY(rd_u8(&r, &c));
        if (c == ' ')
            break;
        if (c < '0' || c > '9' || ++digits > 3 || (digits == 1 && c == '0'))
            return ERR_MALFORMED;
        ver = ver * 10 + (unsigned)(c - '0');
    }
    if (digits == 0)
        return ERR_MALFORMED;
    out->pri = pri;
    out->version = ver;
    TRY(take_field(&r, 64, &out->timestamp)); /* FULL-DATE "T" FULL-TIME is at most 32 */
    TRY(take_field(&r, 255, &out->host));
    TRY(take_field(&r, 48, &out->app));
    TRY(take_field(&r, 128, &out->procid));
    TRY(take_field(&r, 32, &out->msgid));
    TRY(take_sd(&r, &out->sd));
    if (rd_left(&r) > 0) {
        TRY(rd_u8(&r, &c));
        if (c != ' ')
            return ERR_MALFORMED;
        if (rd_left(&r) >= 3 && memcmp(rd_cur(&r), "\xEF\xBB\xBF", 3) == 0) {
            out->bom = true;
            r.pos += 3;
        }
    }
    out->msg.p = rd_cur(&r);
    out->msg.len = rd_left(&r);
    return 0;
}
