/* Tests for common/dcm_dt: DA, TM and DT values as spans of microseconds (PS3.5 6.2), the basis
 * of matching dates and times by meaning (PS3.4 C.2.2.2.1.3, C.2.2.2.5). */
#include <criterion/criterion.h>
#include <string.h>

#include "common/dcm_dt.h"
#include "common/dcm_vr.h"

#define US 1000000LL

static struct dcm_span span(uint16_t vr, const char *s)
{
    struct dcm_span sp = {0, 0};
    cr_assert_eq(dcm_dt_span(vr, (const uint8_t *)s, strlen(s), &sp), 0, "'%s'", s);
    return sp;
}

static int bad(uint16_t vr, const char *s)
{
    struct dcm_span sp;
    return dcm_dt_span(vr, (const uint8_t *)s, strlen(s), &sp);
}

Test(dcm_dt, a_date_is_a_whole_day_and_days_follow_each_other)
{
    struct dcm_span a = span(DCM_VR_DA, "20200228"), b = span(DCM_VR_DA, "20200229"),
                    c = span(DCM_VR_DA, "20200301");
    cr_assert_eq(a.hi - a.lo + 1, DCM_US_PER_DAY);
    cr_assert_eq(b.lo, a.hi + 1, "2020 is a leap year");
    cr_assert_eq(c.lo, b.hi + 1);
    struct dcm_span d = span(DCM_VR_DA, "21000228"), e = span(DCM_VR_DA, "21000301");
    cr_assert_eq(e.lo, d.hi + 1, "2100 is not");
    struct dcm_span y0 = span(DCM_VR_DA, "00000101"), y1 = span(DCM_VR_DA, "00001231");
    cr_assert_eq(y1.lo - y0.lo, 365 * DCM_US_PER_DAY, "year 0000 is leap (proleptic)");
    cr_assert_lt(span(DCM_VR_DA, "19991231").lo, span(DCM_VR_DA, "20000101").lo);
    cr_assert_eq(bad(DCM_VR_DA, "20210229"), ERR_MALFORMED);
    cr_assert_eq(bad(DCM_VR_DA, "20201131"), ERR_MALFORMED);
    cr_assert_eq(bad(DCM_VR_DA, "20200001"), ERR_MALFORMED);
    cr_assert_eq(bad(DCM_VR_DA, "2020010a"), ERR_MALFORMED);
    cr_assert_eq(bad(DCM_VR_DA, "202001011"), ERR_MALFORMED);
    cr_assert_eq(bad(DCM_VR_DA, ""), ERR_MALFORMED);
}

Test(dcm_dt, a_time_covers_its_precision)
{
    struct dcm_span h = span(DCM_VR_TM, "22");
    cr_assert_eq(h.lo, 22 * 3600 * US);
    cr_assert_eq(h.hi, 23 * 3600 * US - 1);
    struct dcm_span m = span(DCM_VR_TM, "2230");
    cr_assert_eq(m.lo, (22 * 3600 + 30 * 60) * US);
    cr_assert_eq(m.hi, m.lo + 60 * US - 1);
    struct dcm_span f = span(DCM_VR_TM, "223000.5");
    cr_assert_eq(f.lo, m.lo + US / 2);
    cr_assert_eq(f.hi, f.lo + US / 10 - 1);
    struct dcm_span u = span(DCM_VR_TM, "235959.999999");
    cr_assert_eq(u.hi, DCM_US_PER_DAY - 1);
    cr_assert_eq(u.lo, u.hi);
    const char *bad_tm[] = {"2", "24", "2260", "223", "22:30", "2230.5", "223000.", "223061",
                            "223000.1234567", "223000,5"};
    for (size_t i = 0; i < sizeof(bad_tm) / sizeof(bad_tm[0]); i++)
        cr_assert_eq(bad(DCM_VR_TM, bad_tm[i]), ERR_MALFORMED, "'%s'", bad_tm[i]);
    span(DCM_VR_TM, "235960"); /* a leap second */
}

Test(dcm_dt, a_datetime_covers_its_precision_and_honours_its_offset)
{
    struct dcm_span y = span(DCM_VR_DT, "2020");
    cr_assert_eq(y.lo, span(DCM_VR_DA, "20200101").lo);
    cr_assert_eq(y.hi, span(DCM_VR_DA, "20201231").hi);
    struct dcm_span feb = span(DCM_VR_DT, "202002");
    cr_assert_eq(feb.hi, span(DCM_VR_DA, "20200229").hi);
    struct dcm_span day = span(DCM_VR_DT, "20200229");
    cr_assert_eq(day.lo, span(DCM_VR_DA, "20200229").lo);
    struct dcm_span t = span(DCM_VR_DT, "20200229103000");
    cr_assert_eq(t.lo, day.lo + span(DCM_VR_TM, "103000").lo);
    /* PS3.4 C.2.2.2.1.3 note 1: 07:30 at -0300 is 10:30 UTC */
    cr_assert_eq(span(DCM_VR_DT, "19980128073000-0300").lo, span(DCM_VR_DT, "19980128103000").lo);
    cr_assert_eq(span(DCM_VR_DT, "19980128113000+0100").lo, span(DCM_VR_DT, "19980128103000").lo);
    cr_assert_eq(span(DCM_VR_DT, "19980128103000.0000").lo,
                 span(DCM_VR_DT, "19980128103000").lo);
    const char *bad_dt[] = {"202",       "20201",          "20201301",         "20200230",
                            "2020022910", /* HH is fine */ "20200229103000+1401",
                            "20200229103000-1201", "20200229103000+01", "2020+0100x"};
    for (size_t i = 0; i < sizeof(bad_dt) / sizeof(bad_dt[0]); i++) {
        if (i == 4) {
            span(DCM_VR_DT, bad_dt[i]);
            continue;
        }
        cr_assert_eq(bad(DCM_VR_DT, bad_dt[i]), ERR_MALFORMED, "'%s'", bad_dt[i]);
    }
    span(DCM_VR_DT, "2020+1400");
    span(DCM_VR_DT, "2020-1200");
    cr_assert_eq(bad(DCM_VR_LO, "2020"), ERR_MALFORMED);
}
