#include "proxy_ac.h"

#include <stdlib.h>

#include "common/rd.h"
#include "common/ul.h"

uint32_t proxy_ac_max_body(const uint8_t *pdu, size_t len, uint32_t cap, uint32_t fallback)
{
    if (len < UL_HDR_LEN)
        return fallback;
    struct ul_assoc_ac *ac = calloc(1, sizeof *ac); /* large: not on the stack */
    struct rd body = rd_make(pdu + UL_HDR_LEN, len - UL_HDR_LEN);
    uint32_t out = fallback;
    if (ac && ul_parse_assoc_ac(&body, ac) == 0) {
        uint32_t m = ac->ui.has_max_len ? ac->ui.max_len : 0;
        out = m == 0 || m > cap ? cap : m; /* PS3.8 D.1: 0 is unlimited */
    }
    free(ac);
    return out;
}
