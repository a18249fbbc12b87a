#include "hex.h"

#include <limits.h>

void hex_lower(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int hex_decode(const char *hex, size_t hexlen, uint8_t *out, size_t outcap)
{
    if (hexlen % 2 != 0 || hexlen / 2 > outcap || hexlen / 2 > INT_MAX)
        return ERR_MALFORMED;
    for (size_t i = 0; i < hexlen; i += 2) {
        int hi = hex_value(hex[i]); /* checked before the next digit is read (a NUL stops it) */
        if (hi < 0)
            return ERR_MALFORMED;
        int lo = hex_value(hex[i + 1]);
        if (lo < 0)
            return ERR_MALFORMED;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return (int)(hexlen / 2);
}
