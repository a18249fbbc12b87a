#include "hex.h"

void hex_lower(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The value of one hex digit, or -1. */
static int digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hex_decode(const char *s, size_t n, uint8_t *out)
{
    if (n % 2 != 0)
        return ERR_MALFORMED;
    for (size_t i = 0; i < n; i += 2) {
        int hi = digit(s[i]);
        if (hi < 0)
            return ERR_MALFORMED;
        int lo = digit(s[i + 1]);
        if (lo < 0)
            return ERR_MALFORMED;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}
