/* Tests for the file backend's read index helpers: the attributes taken from a stored dataset's
 * head (by level, text in UTF-8, never Pixel Data, a cut head or an unreadable character set
 * leaving only what can be read) and the shares.json grants (who, which study, until when). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "backend_file/file_backend_int.h"

#define T(g, e) DCM_TAG(0x##g, 0x##e)

static void add(struct dcm_ds *ds, uint32_t tag, uint16_t vr, const char *v)
{
    cr_assert_eq(dcm_ds_add_raw(ds, dcm_ds_root_mut(ds), tag, vr, v, strlen(v)), 0, "%08x", tag);
}

/* A CT instance: latin-1 name, a private element, 64 bytes of pixels. */
static void dataset(struct wbuf *out, const char *charset)
{
    struct dcm_ds *ds = dcm_ds_new(NULL);
    add(ds, T(0008, 0005), DCM_VR_CS, charset);
    add(ds, T(0008, 0016), DCM_VR_UI, "1.2.840.10008.5.1.4.1.1.2");
    add(ds, T(0008, 0018), DCM_VR_UI, "1.2.3.4.5");
    add(ds, T(0008, 0020), DCM_VR_DA, "20200315");
    add(ds, T(0008, 0060), DCM_VR_CS, "CT");
    add(ds, T(0008, 1030), DCM_VR_LO, "HEAD");
    add(ds, T(0009, 0010), DCM_VR_LO, "PRIVATE");
    add(ds, T(0010, 0010), DCM_VR_PN, "M\xdcLLER^HANS");
    add(ds, T(0010, 0020), DCM_VR_LO, "PA1");
    add(ds, T(0018, 0050), DCM_VR_DS, "1.5"); /* Slice Thickness: not a Q/R key */
    add(ds, T(0020, 000D), DCM_VR_UI, "1.2.3");
    add(ds, T(0020, 000E), DCM_VR_UI, "1.2.3.4");
    add(ds, T(0020, 0013), DCM_VR_IS, "7");
    uint8_t px[64] = {0};
    cr_assert_eq(dcm_ds_add_raw(ds, dcm_ds_root_mut(ds), T(7FE0, 0010), DCM_VR_OW, px, 64), 0);
    wbuf_init(out, 1 << 16);
    cr_assert_eq(dcm_ds_write(ds, DCM_TS_EXPLICIT_LE, out), 0);
    dcm_ds_free(ds);
}

static struct dcm_ds *level(const struct fx_attrs *a, enum fx_level l)
{
    struct dcm_ds *ds = NULL;
    cr_assert_eq(dcm_ds_parse(a->blob[l].p, a->blob[l].len, DCM_TS_EXPLICIT_LE, NULL, &ds), 0);
    return ds;
}

static bool has(const struct dcm_ds *ds, uint32_t tag)
{
    return dcm_item_find(dcm_ds_root(ds), tag) != NULL;
}

Test(file_backend_read, attributes_by_level_in_utf8_without_pixels)
{
    struct wbuf in;
    dataset(&in, "ISO_IR 100");
    struct fx_attrs a;
    fx_attrs_init(&a);
    cr_assert_eq(fx_extract_head(in.p, in.len, false, &a), 0);
    struct dcm_ds *st = level(&a, FX_STUDY), *se = level(&a, FX_SERIES), *im = level(&a, FX_IMAGE);
    cr_assert(has(st, T(0010, 0010)) && has(st, T(0020, 000D)) && has(st, T(0008, 0020)));
    cr_assert(has(st, T(0008, 1030)) && !has(st, T(0008, 0060)));
    cr_assert(has(se, T(0008, 0060)) && has(se, T(0020, 000E)) && !has(se, T(0020, 000D)));
    cr_assert(has(im, T(0008, 0018)) && has(im, T(0020, 0013)));
    for (int l = 0; l < FX_LEVELS; l++) {
        struct dcm_ds *d = level(&a, (enum fx_level)l);
        cr_assert(!has(d, T(7FE0, 0010)) && !has(d, T(0018, 0050)) && !has(d, T(0009, 0010)));
        cr_assert(!has(d, T(0008, 0005)));
        dcm_ds_free(d);
    }
    struct slice pn;
    cr_assert_eq(dcm_item_str(dcm_ds_root(st), T(0010, 0010), &pn), 0);
    cr_assert_eq(pn.len, strlen("M\xc3\x9cLLER^HANS"));
    cr_assert_eq(memcmp(pn.p, "M\xc3\x9cLLER^HANS", pn.len), 0);
    cr_assert_str_eq(a.modality, "CT");
    cr_assert_str_eq(a.patient_id, "PA1");
    dcm_ds_free(st);
    dcm_ds_free(se);
    dcm_ds_free(im);
    fx_attrs_cleanup(&a);
    wbuf_cleanup(&in);
}

Test(file_backend_read, a_cut_head_gives_what_comes_before_the_cut)
{
    struct wbuf in;
    dataset(&in, "ISO_IR 100");
    /* cut inside Patient ID's value: everything before it is taken, nothing after */
    const uint8_t *at = NULL;
    for (size_t i = 0; i + 3 <= in.len && !at; i++)
        at = memcmp(in.p + i, "PA1", 3) == 0 ? in.p + i : NULL;
    cr_assert_not_null(at);
    struct fx_attrs a;
    fx_attrs_init(&a);
    cr_assert_eq(fx_extract_head(in.p, (size_t)(at - in.p) + 1, false, &a), 0);
    struct dcm_ds *st = level(&a, FX_STUDY);
    cr_assert(has(st, T(0010, 0010)) && !has(st, T(0010, 0020)) && !has(st, T(0020, 000D)));
    dcm_ds_free(st);
    fx_attrs_cleanup(&a);
    wbuf_cleanup(&in);
}

Test(file_backend_read, an_unreadable_character_set_keeps_only_what_does_not_depend_on_it)
{
    struct wbuf in;
    dataset(&in, "\\ISO 2022 IR 87");
    struct fx_attrs a;
    fx_attrs_init(&a);
    cr_assert_eq(fx_extract_head(in.p, in.len, false, &a), 0);
    struct dcm_ds *st = level(&a, FX_STUDY);
    cr_assert(!has(st, T(0010, 0010)) && !has(st, T(0010, 0020)));
    cr_assert(has(st, T(0020, 000D)) && has(st, T(0008, 0020)));
    dcm_ds_free(st);
    fx_attrs_cleanup(&a);
    wbuf_cleanup(&in);
}

Test(file_backend_read, garbage_gives_no_attributes_and_no_crash)
{
    static const uint8_t junk[] = {0x08, 0x00, 0x05, 0x00, 'Z', 'Z', 0xff, 0xff, 1, 2, 3};
    struct fx_attrs a;
    fx_attrs_init(&a);
    int rc = fx_extract_head(junk, sizeof junk, false, &a);
    cr_assert(rc == 0 || rc < 0); /* either way: nothing taken */
    cr_assert_eq(a.blob[FX_STUDY].len, 0);
    fx_attrs_cleanup(&a);
}

static size_t shares(const char *json, const char *client, int64_t now, char ***out, int *rc)
{
    struct strmap seen = {0};
    size_t n = 0;
    *out = NULL;
    *rc = fb_shares_for(json, strlen(json), client, now, &seen, out, &n);
    strmap_free(&seen);
    return n;
}

static void free_list(char **l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

Test(file_backend_read, shares_grant_until_they_expire_and_only_to_whom_they_name)
{
    const char *j = "{\"shares\": ["
                    "{\"study\": \"1.2.1\", \"to\": \"ct-room-1\", \"expires\": \"2030-01-01T00:00:00Z\"},"
                    "{\"study\": \"1.2.2\", \"to\": \"ct-room-1\", \"expires\": \"2020-01-01T00:00:00Z\"},"
                    "{\"study\": \"1.2.3\", \"to\": \"mr-room-2\", \"expires\": \"2030-01-01T00:00:00Z\"},"
                    "{\"study\": \"1.2.4\", \"to\": \"ct-room-1\", \"expires\": \"tomorrow\"},"
                    "{\"study\": 5, \"to\": \"ct-room-1\", \"expires\": \"2030-01-01T00:00:00Z\"},"
                    "{\"study\": \"1.2.1\", \"to\": \"ct-room-1\", \"expires\": \"2031-01-01T00:00:00Z\"}]}";
    char **l;
    int rc;
    size_t n = shares(j, "ct-room-1", 1700000000, &l, &rc); /* 2023-11 */
    cr_assert_eq(rc, 0);
    cr_assert_eq(n, 1); /* 1.2.1 once; 1.2.2 expired; 1.2.3 someone else's; bad rows nothing */
    cr_assert_str_eq(l[0], "1.2.1");
    free_list(l, n);
    n = shares(j, "ct-room-1", 2000000000, &l, &rc); /* 2033: all expired */
    cr_assert_eq(n, 0);
    free_list(l, n);
    n = shares("[1,2]", "ct-room-1", 0, &l, &rc);
    cr_assert_eq(rc, ERR_MALFORMED);
    free_list(l, n);
}
