/* dicom_json: PS3.18 F.2 DICOM JSON into datasets, as hostile input: every VR kind, PN groups,
 * numbers in and out of range, sequences, InlineBinary, what is dropped and what refuses the
 * whole answer, the caps, truncation at every byte, trailing garbage. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forwarder/aws/dicom_json.h"
#include "guard.h"

static int parse(const char *s, struct dicom_json_list *l)
{
    size_t n = strlen(s);
    const uint8_t *p = guard_copy(s, n); /* the byte after the input is unreadable */
    return dicom_json_parse_array(p, n, NULL, l);
}

static const char *str(const struct dcm_ds *ds, uint32_t tag, char *buf, size_t cap)
{
    const struct dcm_elem *e = dcm_item_find(dcm_ds_root(ds), tag);
    if (!e)
        return NULL;
    struct slice v = dcm_elem_raw(e);
    size_t n = v.len < cap - 1 ? v.len : cap - 1;
    memcpy(buf, v.p, n);
    buf[n] = '\0';
    while (n && (buf[n - 1] == ' ' || buf[n - 1] == '\0'))
        buf[--n] = '\0';
    return buf;
}

static const char *g_all =
    "[{\"00080005\":{\"vr\":\"CS\",\"Value\":[\"ISO_IR 100\"]},"
    "\"00080020\":{\"vr\":\"DA\",\"Value\":[\"20260101\"]},"
    "\"00080061\":{\"vr\":\"CS\",\"Value\":[\"CT\",\"MR\"]},"
    "\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"M\u00fcller^Hans\","
    "\"Ideographic\":\"\u5c71\u7530\"}]},"
    "\"00100020\":{\"vr\":\"LO\",\"Value\":[\"ID-1\"]},"
    "\"00201206\":{\"vr\":\"IS\",\"Value\":[3]},"
    "\"00180050\":{\"vr\":\"DS\",\"Value\":[0.625]},"
    "\"00280010\":{\"vr\":\"US\",\"Value\":[512]},"
    "\"00189219\":{\"vr\":\"SS\",\"Value\":[-3]},"
    "\"00209161\":{\"vr\":\"UL\",\"Value\":[4000000000]},"
    "\"00181310\":{\"vr\":\"FD\",\"Value\":[1.5]},"
    "\"00209165\":{\"vr\":\"AT\",\"Value\":[\"0020000D\"]},"
    "\"00400275\":{\"vr\":\"SQ\",\"Value\":[{\"00401001\":{\"vr\":\"SH\",\"Value\":[\"RP1\"]}},{}]},"
    "\"00291010\":{\"vr\":\"OB\",\"InlineBinary\":\"AAECAw==\"},"
    "\"7FE00010\":{\"vr\":\"OW\",\"BulkDataURI\":\"https://x/bulk\"},"
    "\"00081190\":{\"vr\":\"UR\",\"Value\":[\"https://x/studies/1.2\"]},"
    "\"00080030\":{\"vr\":\"TM\"},"
    "\"00100030\":{\"vr\":\"DA\",\"Value\":[null]}}]";

Test(dicom_json, every_vr_kind_becomes_its_element)
{
    struct dicom_json_list l;
    cr_assert_eq(parse(g_all, &l), 0);
    cr_assert_eq(l.n, 1);
    cr_assert_eq(l.dropped, 1); /* the bulk data */
    const struct dcm_ds *ds = l.ds[0];
    char b[256];
    cr_assert_str_eq(str(ds, 0x00080005, b, sizeof b), "ISO_IR 192"); /* JSON is UTF-8 */
    cr_assert_str_eq(str(ds, 0x00080061, b, sizeof b), "CT\\MR");
    cr_assert_str_eq(str(ds, 0x00100010, b, sizeof b), "M\xc3\xbcller^Hans=\xe5\xb1\xb1\xe7\x94\xb0");
    cr_assert_str_eq(str(ds, 0x00201206, b, sizeof b), "3");
    cr_assert_str_eq(str(ds, 0x00180050, b, sizeof b), "0.625");
    const struct dcm_item *root = dcm_ds_root(ds);
    uint64_t u;
    int64_t i;
    cr_assert_eq(dcm_elem_uint(dcm_item_find(root, 0x00280010), 0, &u), 0);
    cr_assert_eq(u, 512);
    cr_assert_eq(dcm_elem_int(dcm_item_find(root, 0x00189219), 0, &i), 0);
    cr_assert_eq(i, -3);
    cr_assert_eq(dcm_elem_uint(dcm_item_find(root, 0x00209161), 0, &u), 0);
    cr_assert_eq(u, 4000000000u);
    struct slice at = dcm_elem_raw(dcm_item_find(root, 0x00209165));
    cr_assert_eq(at.len, 4);
    cr_assert_eq(memcmp(at.p, "\x20\x00\x0d\x00", 4), 0);
    const struct dcm_elem *sq = dcm_item_find(root, 0x00400275);
    cr_assert(dcm_elem_is_seq(sq));
    cr_assert_eq(dcm_elem_nitems(sq), 2);
    struct slice ob = dcm_elem_raw(dcm_item_find(root, 0x00291010));
    cr_assert_eq(ob.len, 4);
    cr_assert_eq(memcmp(ob.p, "\x00\x01\x02\x03", 4), 0);
    cr_assert_null(dcm_item_find(root, 0x7FE00010));
    cr_assert_not_null(dcm_item_find(root, 0x00080030)); /* present, empty */
    cr_assert_eq(dcm_elem_raw(dcm_item_find(root, 0x00100030)).len, 0);
    dicom_json_list_free(&l);
    cr_assert_eq(l.n, 0);
}

Test(dicom_json, empty_answers_are_no_match)
{
    struct dicom_json_list l;
    cr_assert_eq(dicom_json_parse_array((const uint8_t *)"", 0, NULL, &l), 0);
    cr_assert_eq(l.n, 0);
    cr_assert_eq(parse(" \r\n", &l), 0);
    cr_assert_eq(parse("[]", &l), 0);
    cr_assert_eq(l.n, 0);
    dicom_json_list_free(&l);
}

Test(dicom_json, values_their_vr_refuses_are_dropped_not_fatal)
{
    static const char *cases[] = {
        "[{\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"1.2.x\"]}}]",       /* not a UID */
        "[{\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"1.2\\\\1.3\"]}}]",   /* a separator inside */
        "[{\"00080020\":{\"vr\":\"DA\",\"Value\":[\"2026-01-01\"]}}]",   /* DA syntax */
        "[{\"00280010\":{\"vr\":\"US\",\"Value\":[70000]}}]",            /* out of range */
        "[{\"00280010\":{\"vr\":\"US\",\"Value\":[1.5]}}]",              /* not whole */
        "[{\"00201206\":{\"vr\":\"IS\",\"Value\":[3000000000]}}]",       /* IS range */
        "[{\"00020010\":{\"vr\":\"UI\",\"Value\":[\"1.2\"]}}]",          /* File Meta group */
        "[{\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"a=b\"}]}}]",
        "[{\"00100020\":{\"vr\":\"LO\",\"Value\":[\"x\"]},\"00100020\":{\"vr\":\"LO\"}}]",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct dicom_json_list l;
        cr_assert_eq(parse(cases[i], &l), 0, "case %zu", i);
        cr_assert_eq(l.n, 1);
        cr_assert_eq(l.dropped, 1, "case %zu dropped %zu", i, l.dropped);
        dicom_json_list_free(&l);
    }
}

Test(dicom_json, shapes_the_model_does_not_allow_refuse_the_answer)
{
    static const char *cases[] = {
        "{}",                                                          /* not an array */
        "[1]",                                                         /* not an object */
        "[{\"0020000\":{\"vr\":\"UI\"}}]",                             /* 7 hex digits */
        "[{\"0020000G\":{\"vr\":\"UI\"}}]",
        "[{\"0020000D\":1}]",                                          /* not an object */
        "[{\"0020000D\":{\"Value\":[\"1.2\"]}}]",                      /* no vr */
        "[{\"0020000D\":{\"vr\":\"ZZ\"}}]",                            /* unknown vr */
        "[{\"0020000D\":{\"vr\":\"UI\",\"Value\":\"1.2\"}}]",          /* Value not an array */
        "[{\"0020000D\":{\"vr\":\"UI\",\"Value\":[12]}}]",             /* wrong type */
        "[{\"00280010\":{\"vr\":\"US\",\"Value\":[\"12\"]}}]",
        "[{\"00280010\":{\"vr\":\"US\",\"Value\":[null]}}]",
        "[{\"00081190\":{\"vr\":\"UR\",\"Value\":[\"a\",\"b\"]}}]",    /* one value only */
        "[{\"00291010\":{\"vr\":\"OB\",\"InlineBinary\":\"AAE\"}}]",   /* base64 length */
        "[{\"00291010\":{\"vr\":\"OB\",\"InlineBinary\":\"A=EC\"}}]",  /* data after padding */
        "[{\"00291010\":{\"vr\":\"OB\",\"Value\":[1]}}]",              /* OB has no Value */
        "[{\"00400275\":{\"vr\":\"SQ\",\"Value\":[1]}}]",              /* item not an object */
        "[{\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"1\"],\"BulkDataURI\":\"x\"}}]",
        "[{}] x",                                                      /* trailing garbage */
        "[{\"00100010\":{\"vr\":\"PN\",\"Value\":[\"plain\"]}}]",      /* PN is an object */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct dicom_json_list l;
        int rc = parse(cases[i], &l);
        cr_assert_eq(rc, ERR_MALFORMED, "case %zu: %d", i, rc);
        cr_assert_eq(l.n, 0);
        cr_assert_null(l.ds);
    }
}

Test(dicom_json, caps_on_objects_depth_and_elements)
{
    struct dicom_json_opts o = {.max_objects = 2};
    struct dicom_json_list l;
    const char *three = "[{},{},{}]";
    cr_assert_eq(dicom_json_parse_array((const uint8_t *)three, strlen(three), &o, &l),
                 ERR_LIMIT);
    /* nesting past the depth cap */
    struct wbuf w;
    wbuf_init(&w, 1 << 20);
    wbuf_str(&w, "[");
    for (int i = 0; i < 12; i++)
        wbuf_str(&w, "{\"00400275\":{\"vr\":\"SQ\",\"Value\":[");
    wbuf_str(&w, "{}");
    for (int i = 0; i < 12; i++)
        wbuf_str(&w, "]}}");
    wbuf_str(&w, "]");
    wbuf_u8(&w, 0);
    cr_assert_eq(parse((const char *)w.p, &l), ERR_LIMIT);
    /* elements past the cap */
    wbuf_reset(&w);
    wbuf_str(&w, "[{");
    for (int i = 0; i < 5000; i++)
        wbuf_printf(&w, "%s\"0011%04X\":{\"vr\":\"LO\",\"Value\":[\"x\"]}", i ? "," : "",
                    (unsigned)(0x1000 + i));
    wbuf_str(&w, "}]");
    wbuf_u8(&w, 0);
    cr_assert_eq(parse((const char *)w.p, &l), ERR_LIMIT);
    wbuf_cleanup(&w);
}

Test(dicom_json, a_cut_at_every_byte_is_refused_or_read_never_beyond)
{
    size_t n = strlen(g_all);
    for (size_t cut = 1; cut < n; cut++) {
        struct dicom_json_list l;
        const uint8_t *p = guard_copy(g_all, cut);
        int rc = dicom_json_parse_array(p, cut, NULL, &l);
        cr_assert(rc == ERR_MALFORMED, "cut %zu gave %d", cut, rc);
    }
}

Test(dicom_json, one_object)
{
    const char *o = "{\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"1.2.3\"]},"
                    "\"7FE00010\":{\"vr\":\"OW\",\"BulkDataURI\":\"x\"}}";
    struct dcm_ds *ds;
    size_t dropped;
    cr_assert_eq(dicom_json_parse_object((const uint8_t *)o, strlen(o), NULL, &ds, &dropped), 0);
    cr_assert_eq(dropped, 1);
    char b[80];
    cr_assert_str_eq(str(ds, 0x0020000D, b, sizeof b), "1.2.3");
    dcm_ds_free(ds);
    cr_assert_eq(dicom_json_parse_object((const uint8_t *)"[]", 2, NULL, &ds, NULL),
                 ERR_MALFORMED);
    cr_assert_null(ds);
}
