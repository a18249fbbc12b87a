/* batch: the pure decisions of the import path (closing, pacing, backoff, batch ids). */
#include <criterion/criterion.h>
#include <string.h>

#include "forwarder/batch.h"

static const struct batch_limits lim = {.max_objects = 3, .max_bytes = 1000, .max_age_ms = 500};

Test(batch, empty_batch_accepts_any_single_object_even_oversized)
{
    struct batch_fill f = {0};
    cr_assert(batch_accepts(&f, &lim, 5000));
}

Test(batch, refuses_past_count_and_bytes_and_overflow)
{
    struct batch_fill f = {.objects = 3, .bytes = 10};
    cr_assert_not(batch_accepts(&f, &lim, 1));
    f.objects = 1;
    f.bytes = 900;
    cr_assert(batch_accepts(&f, &lim, 100));
    cr_assert_not(batch_accepts(&f, &lim, 101));
    f.bytes = UINT64_MAX - 1;
    cr_assert_not(batch_accepts(&f, &lim, 10));
}

Test(batch, due_by_count_bytes_or_age_never_when_empty)
{
    struct batch_fill f = {.objects = 0, .opened_ms = 0};
    cr_assert_not(batch_due(&f, &lim, 1000000));
    cr_assert_eq(batch_ms_until_due(&f, &lim, 0), UINT64_MAX);
    f.objects = 1;
    f.opened_ms = 100;
    cr_assert_not(batch_due(&f, &lim, 599));
    cr_assert_eq(batch_ms_until_due(&f, &lim, 599), 1);
    cr_assert(batch_due(&f, &lim, 600));
    f.objects = 3;
    cr_assert(batch_due(&f, &lim, 100));
    f.objects = 1;
    f.bytes = 1000;
    cr_assert(batch_due(&f, &lim, 100));
}

Test(batch, id_has_the_contract_shape_and_validates)
{
    char id[BATCH_ID_MAX];
    cr_assert_eq(batch_id_make(id, sizeof id, 1795489200, 0xdeadbeef), 0);
    cr_assert_str_eq(id, "b-20261124T030000Z-deadbeef");
    cr_assert(batch_id_valid(id));
    cr_assert_not(batch_id_valid("b-20261125T000000Z-deadbee"));
    cr_assert_not(batch_id_valid("b-20261125T000000Z-deadbeeff"));
    cr_assert_not(batch_id_valid("b-2026112xT000000Z-deadbeef"));
    cr_assert_not(batch_id_valid("../20261125T000000Z-deadbeef"));
    cr_assert_not(batch_id_valid(""));
    char small[10];
    cr_assert_eq(batch_id_make(small, sizeof small, 0, 0), ERR_LIMIT);
}

Test(batch, pacer_allows_one_then_waits_for_the_rate)
{
    struct batch_pacer p;
    batch_pacer_init(&p, 2.0, 1000);
    cr_assert_eq(batch_pacer_take(&p, 1000), 0);
    uint64_t w = batch_pacer_take(&p, 1000);
    cr_assert(w >= 499 && w <= 501, "wait %llu", (unsigned long long)w);
    cr_assert_neq(batch_pacer_take(&p, 1200), 0);
    cr_assert_eq(batch_pacer_take(&p, 1500), 0);
    /* no burst: a long idle time still gives a single token */
    cr_assert_eq(batch_pacer_take(&p, 100000), 0);
    cr_assert_neq(batch_pacer_take(&p, 100000), 0);
}

Test(batch, backoff_is_full_jitter_under_a_growing_capped_ceiling)
{
    cr_assert_eq(batch_backoff_ms(0, 500, 60000, 0), 0);
    cr_assert_eq(batch_backoff_ms(0, 500, 60000, 500), 500);
    cr_assert_eq(batch_backoff_ms(0, 500, 60000, 501), 0);
    cr_assert_eq(batch_backoff_ms(3, 500, 60000, 4000), 4000);
    cr_assert(batch_backoff_ms(50, 500, 60000, UINT32_MAX) <= 60000);
    cr_assert_eq(batch_backoff_ms(2, 0, 100, 7), 0);
}
