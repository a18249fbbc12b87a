/* edge proxy_ac: the maximum P-DATA length the edge lets the modality send, read from the
 * core's A-ASSOCIATE-AC. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/ul.h"
#include "guard.h"
#include "proxy_ac.h"

/* A whole A-ASSOCIATE-AC into b; max_len < 0: no maximum length item. */
static void make_ac(struct wbuf *b, long max_len)
{
    struct ul_assoc_ac *ac = calloc(1, sizeof *ac);
    cr_assert_not_null(ac);
    ac->protocol_version = 1;
    memcpy(ac->called, "CORE", 5);
    memcpy(ac->calling, "MOD", 4);
    ac->app_context = (struct slice){(const uint8_t *)"1.2.840.10008.3.1.1.1", 21};
    ac->n_pctx = 1;
    ac->pctx[0].id = 1;
    ac->pctx[0].ts = (struct slice){(const uint8_t *)"1.2.840.10008.1.2.1", 19};
    ac->ui.present = true;
    ac->ui.has_max_len = max_len >= 0;
    ac->ui.max_len = max_len >= 0 ? (uint32_t)max_len : 0;
    ac->ui.impl_uid = (struct slice){(const uint8_t *)"1.2.3", 5};
    wbuf_init(b, 1 << 16);
    cr_assert_eq(ul_encode_assoc_ac(b, ac), 0);
    free(ac);
}

static uint32_t max_body_of(long max_len, uint32_t cap, uint32_t fallback)
{
    struct wbuf b;
    make_ac(&b, max_len);
    const uint8_t *g = guard_copy(b.p, b.len);
    uint32_t r = proxy_ac_max_body(g, b.len, cap, fallback);
    guard_free(g, b.len);
    wbuf_cleanup(&b);
    return r;
}

Test(proxy_ac, the_acceptors_maximum_length_below_the_cap)
{
    cr_assert_eq(max_body_of(16384, 1u << 20, 7), 16384);
    cr_assert_eq(max_body_of((1 << 20) + 1, 1u << 20, 7), 1u << 20);
}

Test(proxy_ac, zero_or_no_maximum_is_the_cap)
{
    cr_assert_eq(max_body_of(0, 65536, 7), 65536, "PS3.8 D.1: 0 is unlimited");
    cr_assert_eq(max_body_of(-1, 65536, 7), 65536);
}

Test(proxy_ac, an_ac_that_does_not_parse_keeps_the_fallback)
{
    struct wbuf b;
    make_ac(&b, 16384);
    for (size_t cut = 0; cut < b.len; cut++) {
        const uint8_t *g = guard_copy(b.p, cut);
        uint32_t r = proxy_ac_max_body(g, cut, 1u << 20, 7);
        guard_free(g, cut);
        cr_assert(r == 7 || r == 16384 || r == 1u << 20, "cut at %zu: %u", cut, r);
        if (cut < 6)
            cr_assert_eq(r, 7, "no body at all: cut at %zu", cut);
    }
    wbuf_cleanup(&b);
}
