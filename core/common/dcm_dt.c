#include "dcm_dt.h"

#include <stdbool.h>


#define US_PER_SEC 1000000LL

/* Read k decimal digits at p[*i]; false if fewer are there or one is not a digit. */
static bool digits(const uint8_t *p, size_t n, size_t *i, size_t k, int *out)
{
    if (n - *i < k)
        return false;
    int v = 0;
    for (size_t j = 0; j < k; j++) {
        uint8_t c = p[*i + j];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *i += k;
    *out = v;
    return true;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : d[m - 1];
}

/* A day count of the proleptic Gregorian calendar: the usual shift of the year start to March so
 * that the leap day falls at the end, and 400 years (one full cycle) added so that every division
 * sees a non-negative year, year 0000 included. Only differences and order matter. */
static int64_t day_number(int y, int m, int d)
{
    int64_t yy = (int64_t)y - (m <= 2) + 400;
    int64_t mm = m <= 2 ? m + 9 : m - 3;
    return 365 * yy + yy / 4 - yy / 100 + yy / 400 + (153 * mm + 2) / 5 + (d - 1);
}

/* Fraction: '.' then 1..6 digits, as microseconds; *prec_us is the unit of the last digit. */
static bool fraction(const uint8_t *p, size_t n, size_t *i, int64_t *us, int64_t *prec_us)
{
    if (*i >= n || p[*i] != '.')
        return false;
    size_t j = *i + 1;
    int64_t v = 0, unit = US_PER_SEC;
    size_t k = 0;
    while (j < n && p[j] >= '0' && p[j] <= '9' && k < 6) {
        unit /= 10;
        v += (p[j] - '0') * unit;
        j++;
        k++;
    }
    if (k == 0)
        return false;
    *i = j;
    *us = v;
    *prec_us = unit;
    return true;
}

/* HH[MM[SS[.F]]] from p[*i]; lo and span length in microseconds. */
static bool time_part(const uint8_t *p, size_t n, size_t *i, int64_t *lo, int64_t *len)
{
    int hh, mm = 0, ss = 0;
    if (!digits(p, n, i, 2, &hh) || hh > 23)
        return false;
    *len = 3600 * US_PER_SEC;
    if (*i < n && p[*i] >= '0' && p[*i] <= '9') {
        if (!digits(p, n, i, 2, &mm) || mm > 59)
            return false;
        *len = 60 * US_PER_SEC;
        if (*i < n && p[*i] >= '0' && p[*i] <= '9') {
            if (!digits(p, n, i, 2, &ss) || ss > 60)
                return false;
            *len = US_PER_SEC;
        }
    }
    *lo = ((int64_t)hh * 3600 + (int64_t)mm * 60 + ss) * US_PER_SEC;
    if (*i < n && p[*i] == '.') {
        if (*len != US_PER_SEC) /* a fraction needs the seconds */
            return false;
        int64_t f, prec;
        if (!fraction(p, n, i, &f, &prec))
            return false;
        *lo += f;
        *len = prec;
    }
    return true;
}

int dcm_da_parse(const uint8_t *p, size_t n, struct dcm_span *out)
{
    size_t i = 0;
    int y, m, d;
    if (n != 8 || !digits(p, n, &i, 4, &y) || !digits(p, n, &i, 2, &m) ||
        !digits(p, n, &i, 2, &d))
        return ERR_MALFORMED;
    if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        return ERR_MALFORMED;
    int64_t day = day_number(y, m, d);
    out->lo = day * DCM_US_PER_DAY;
    out->hi = out->lo + DCM_US_PER_DAY - 1;
    return 0;
}

int dcm_tm_parse(const uint8_t *p, size_t n, struct dcm_span *out)
{
    size_t i = 0;
    int64_t lo, len;
    if (!time_part(p, n, &i, &lo, &len) || i != n)
        return ERR_MALFORMED;
    out->lo = lo;
    out->hi = lo + len - 1;
    return 0;
}

int dcm_dt_parse(const uint8_t *p, size_t n, struct dcm_span *out)
{
    size_t i = 0;
    int y, m = 1, d = 1;
    int64_t tod = 0, len;
    bool have_m = false, have_d = false;
    if (!digits(p, n, &i, 4, &y))
        return ERR_MALFORMED;
    if (i < n && p[i] >= '0' && p[i] <= '9') {
        if (!digits(p, n, &i, 2, &m) || m < 1 || m > 12)
            return ERR_MALFORMED;
        have_m = true;
        if (i < n && p[i] >= '0' && p[i] <= '9') {
            if (!digits(p, n, &i, 2, &d) || d < 1 || d > days_in_month(y, m))
                return ERR_MALFORMED;
            have_d = true;
        }
    }
    int64_t start = day_number(y, m, d) * DCM_US_PER_DAY;
    if (!have_m) {
        len = day_number(y + 1, 1, 1) * DCM_US_PER_DAY - start;
    } else if (!have_d) {
        len = (int64_t)days_in_month(y, m) * DCM_US_PER_DAY;
    } else if (i < n && p[i] >= '0' && p[i] <= '9') {
        if (!time_part(p, n, &i, &tod, &len))
            return ERR_MALFORMED;
    } else {
        len = DCM_US_PER_DAY;
    }
    int64_t off_us = 0;
    if (i < n && (p[i] == '+' || p[i] == '-')) {
        bool neg = p[i] == '-';
        int oh, om;
        i++;
        if (!digits(p, n, &i, 2, &oh) || !digits(p, n, &i, 2, &om) || om > 59)
            return ERR_MALFORMED;
        int mins = oh * 60 + om;
        if ((neg && mins > 12 * 60) || (!neg && mins > 14 * 60))
            return ERR_MALFORMED;
        off_us = (neg ? -mins : mins) * 60 * US_PER_SEC;
    }
    if (i != n)
        return ERR_MALFORMED;
    out->lo = start + tod - off_us; /* local = UTC + offset */
    out->hi = out->lo + len - 1;
    return 0;
}

/* The VR codes of dcm_vr.h ('D' << 8 | 'A' ...), spelled out here: dcm_vr validates with this
 * module, so this one must not include it back. */
int dcm_dt_span(uint16_t vr, const uint8_t *p, size_t n, struct dcm_span *out)
{
    switch (vr) {
    case 'D' << 8 | 'A':
        return dcm_da_parse(p, n, out);
    case 'T' << 8 | 'M':
        return dcm_tm_parse(p, n, out);
    case 'D' << 8 | 'T':
        return dcm_dt_parse(p, n, out);
    default:
        return ERR_MALFORMED;
    }
}
