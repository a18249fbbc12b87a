#include "common/uid.h"

bool uid_valid_n(const uint8_t *p, size_t n)
{
    if (n == 0 || n > UID_MAX)
        return false;
    size_t comp = 0; /* length of the current component */
    for (size_t i = 0; i <= n; i++) {
        if (i == n || p[i] == '.') {
            if (comp == 0 || (comp > 1 && p[i - comp] == '0'))
                return false; /* empty component, or a leading zero */
            comp = 0;
        } else if (p[i] >= '0' && p[i] <= '9') {
            comp++;
        } else {
            return false;
        }
    }
    return true;
}

bool uid_valid(const char *s)
{
    size_t n = 0;
    while (n <= UID_MAX && s[n] != '\0') /* bounded: stop at the 65th character */
        n++;
    return uid_valid_n((const uint8_t *)s, n);
}
