/* aws_read (the aws backend's read side), its pure parts: the "read" configuration split off the
 * backend object, a C-FIND query planned as a QIDO-RS search (what goes as a parameter, what is
 * left to the core, includefield, the path of upper levels, the scope's studies as a UID list or
 * an empty plan), sorted scopes, and the error mapping the core sees. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/dcm_query.h"
#include "forwarder/aws_read_int.h"

Test(aws_read, config_split_takes_read_out_and_checks_it)
{
    struct aws_read_config rc;
    struct wbuf errs;
    wbuf_init(&errs, 4096);
    char *rest = NULL;
    const char *j = "{\"type\":\"aws\",\"region\":\"us-east-1\",\"read\":{\"reader_role_arn\":"
                    "\"arn:aws:iam::123456789012:role/r\",\"page_size\":50,\"multipart\":true}}";
    cr_assert_eq(aws_read_config_split(j, &rest, &rc, &errs), 0);
    cr_assert_str_eq(rest, "{\"type\":\"aws\",\"region\":\"us-east-1\"}");
    cr_assert_str_eq(rc.reader_role_arn, "arn:aws:iam::123456789012:role/r");
    cr_assert_eq(rc.page_size, 50);
    cr_assert(rc.multipart);
    cr_assert_eq(rc.max_results, 10000);
    cr_assert_eq(rc.session_duration_s, 3600);
    cr_assert_eq(rc.deadline_ms, 30000);
    free(rest);
    cr_assert_eq(aws_read_config_split("{\"type\":\"aws\"}", &rest, &rc, &errs), 0);
    cr_assert_str_eq(rc.reader_role_arn, "");
    free(rest);
    const char *bad = "{\"read\":{\"reader_role_arn\":\"arn:aws:s3:::b\",\"page_size\":1001,"
                      "\"nope\":1}}";
    cr_assert_eq(aws_read_config_split(bad, &rest, &rc, &errs), ERR_CONFIG);
    wbuf_u8(&errs, 0);
    cr_assert(strstr((char *)errs.p, "backend.read.reader_role_arn"), "%s", errs.p);
    cr_assert(strstr((char *)errs.p, "backend.read.page_size"), "%s", errs.p);
    cr_assert(strstr((char *)errs.p, "backend.read.nope"), "%s", errs.p);
    free(rest);
    wbuf_cleanup(&errs);
    wbuf_init(&errs, 4096);
    cr_assert_eq(aws_read_config_split("[1]", &rest, &rc, &errs), 0);
    cr_assert_str_eq(rest, "[1]", "not an object: the pipeline's parser says why");
    free(rest);
    wbuf_cleanup(&errs);
}

struct kv {
    uint32_t tag;
    const char *v;
};

/* A query from (tag, value) pairs at level in model. */
static struct dcm_query *query(const char *level, bool patient_root, const struct kv *k,
                               size_t n)
{
    struct dcm_ds *ds = dcm_ds_new(NULL);
    struct dcm_item *root = dcm_ds_root_mut(ds);
    cr_assert_eq(dcm_ds_add_cstr(ds, root, 0x00080052u, DCM_VR_CS, level), 0);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(dcm_ds_add_raw(ds, root, k[i].tag, dcm_dict_vr(k[i].tag), k[i].v,
                                    strlen(k[i].v)), 0);
    struct dcm_query_opts o = {.model = patient_root ? DCM_QR_PATIENT_ROOT : DCM_QR_STUDY_ROOT,
                               .op = DCM_QOP_FIND};
    struct dcm_query *q;
    struct dcm_query_error e;
    cr_assert_eq(dcm_query_parse(ds, &o, &q, &e), 0, "%s", e.comment ? e.comment : "");
    dcm_ds_free(ds);
    return q;
}

static const char *param(const struct read_plan *p, const char *name)
{
    for (size_t i = 0; i < p->qido.n_keys; i++) {
        if (strcmp(p->keys[i].name, name) == 0)
            return p->keys[i].value;
    }
    return NULL;
}

static bool included(const struct read_plan *p, const char *name)
{
    for (size_t i = 0; i < p->qido.n_include; i++) {
        if (strcmp(p->include[i], name) == 0)
            return true;
    }
    return false;
}

Test(aws_read, study_query_sends_what_qido_matches_as_dicom_does)
{
    const struct kv k[] = {{0x00080020u, "20260101-20261231"}, /* range: sent */
             {0x00080030u, "1000-1200"},         /* TM: left to the core */
             {0x00080050u, "ACC*"},              /* wild card: sent */
             {0x00080061u, "CT\\MR"},            /* several values: left */
             {0x00100010u, "DOE^J*"},            /* PN wild card: sent */
             {0x00100020u, "A,B"},               /* a comma: left */
             {0x0020000Du, ""},                  /* return key */
             {0x00201206u, ""}};
    struct dcm_query *q = query("STUDY", false, k, sizeof k / sizeof *k);
    struct read_scope all = {.scope = GRANT_SCOPE_ALL};
    struct read_plan p;
    cr_assert_eq(read_plan_make(q, &all, &p), 0);
    cr_assert_eq(p.qido.level, DW_STUDIES);
    cr_assert_str_eq(param(&p, "00080020"), "20260101-20261231");
    cr_assert_str_eq(param(&p, "00080050"), "ACC*");
    cr_assert_str_eq(param(&p, "00100010"), "DOE^J*");
    cr_assert_null(param(&p, "00080030"));
    cr_assert_null(param(&p, "00080061"));
    cr_assert_null(param(&p, "00100020"));
    cr_assert_null(param(&p, "0020000D"));
    cr_assert(included(&p, "00201206") && included(&p, "0020000D") && included(&p, "00080030"));
    cr_assert(!included(&p, "00080052"), "control attributes are not asked for");
    cr_assert(!p.empty);
    read_plan_cleanup(&p);
    dcm_query_free(q);
}

Test(aws_read, the_scope_narrows_the_study_search_or_empties_it)
{
    const struct kv k[] = {{0x0020000Du, "1.2.3\\1.2.9"}};
    struct dcm_query *q = query("STUDY", false, k, 1);
    char studies[2][AWS_READ_UID_MAX] = {"1.2.3", "1.2.4"};
    struct read_scope own = {.scope = GRANT_SCOPE_OWN, .studies = studies, .n = 2};
    struct read_plan p;
    cr_assert_eq(read_plan_make(q, &own, &p), 0);
    cr_assert_str_eq(param(&p, "0020000D"), "1.2.3", "the query's UIDs in scope only");
    read_plan_cleanup(&p);
    char other[1][AWS_READ_UID_MAX] = {"1.2.5"};
    struct read_scope none_match = {.scope = GRANT_SCOPE_SHARED, .studies = other, .n = 1};
    cr_assert_eq(read_plan_make(q, &none_match, &p), 0);
    cr_assert(p.empty);
    read_plan_cleanup(&p);
    dcm_query_free(q);
    const struct kv k2[] = {{0x00100020u, "X"}};
    q = query("STUDY", false, k2, 1);
    cr_assert_eq(read_plan_make(q, &own, &p), 0);
    cr_assert_str_eq(param(&p, "0020000D"), "1.2.3,1.2.4", "the scope as a UID list");
    read_plan_cleanup(&p);
    struct read_scope empty = {.scope = GRANT_SCOPE_OWN};
    cr_assert_eq(read_plan_make(q, &empty, &p), 0);
    cr_assert(p.empty);
    read_plan_cleanup(&p);
    dcm_query_free(q);
}

Test(aws_read, lower_levels_put_the_upper_keys_in_the_path)
{
    const struct kv k[] = {{0x00080018u, "1.2.3.4.5\\1.2.3.4.6"},
                           {0x00100020u, "PID-1"},
                           {0x0020000Du, "1.2.3"},
                           {0x0020000Eu, "1.2.3.4"},
                           {0x00200013u, "7"}};
    struct dcm_query *q = query("IMAGE", true, k, sizeof k / sizeof *k);
    char studies[1][AWS_READ_UID_MAX] = {"1.2.3"};
    struct read_scope own = {.scope = GRANT_SCOPE_OWN, .studies = studies, .n = 1};
    struct read_plan p;
    cr_assert_eq(read_plan_make(q, &own, &p), 0);
    dcm_query_free(q);
    cr_assert_eq(p.qido.level, DW_INSTANCES);
    cr_assert_str_eq(p.qido.study, "1.2.3");
    cr_assert_str_eq(p.qido.series, "1.2.3.4");
    cr_assert_str_eq(p.patient_id, "PID-1");
    cr_assert(p.patient_root);
    cr_assert_str_eq(param(&p, "00080018"), "1.2.3.4.5,1.2.3.4.6");
    cr_assert_null(param(&p, "00200013"), "InstanceNumber is not an AWS key: the core's");
    cr_assert(!p.empty);
    read_plan_cleanup(&p);
    char other[1][AWS_READ_UID_MAX] = {"1.2.9"};
    struct read_scope not_it = {.scope = GRANT_SCOPE_OWN, .studies = other, .n = 1};
    const struct kv k3[] = {{0x0020000Du, "1.2.3"}, {0x0020000Eu, ""}};
    q = query("SERIES", false, k3, 2);
    cr_assert_eq(read_plan_make(q, &not_it, &p), 0);
    cr_assert(p.empty, "a study outside the scope is never asked for");
    read_plan_cleanup(&p);
    dcm_query_free(q);
}

Test(aws_read, many_return_keys_ask_for_all)
{
    /* keys the dictionary does not know count as optional keys of the level (dcm_query.h) */
    struct kv k[56];
    size_t n = 0;
    for (uint32_t t = 0x00189000u; n < 55; t += 2) {
        if (!dcm_dict_find(t))
            k[n++] = (struct kv){t, ""};
    }
    k[n++] = (struct kv){0x0020000Du, ""};
    struct dcm_query *q = query("STUDY", false, k, n);
    struct read_scope all = {.scope = GRANT_SCOPE_ALL};
    struct read_plan p;
    cr_assert_eq(read_plan_make(q, &all, &p), 0);
    cr_assert_eq(p.qido.n_include, 1);
    cr_assert_str_eq(p.include[0], "all");
    read_plan_cleanup(&p);
    dcm_query_free(q);
}

Test(aws_read, scopes_are_sorted_and_checked)
{
    const char *s[] = {"1.2.9", "1.2.3", "1.2.9", "1.2.10"};
    struct backend_read_scope in = {.scope = GRANT_SCOPE_SHARED, .client_id = "c",
                                    .studies = s, .n_studies = 4};
    struct read_scope r;
    cr_assert_eq(read_scope_copy(&in, &r), 0);
    cr_assert_eq(r.n, 3);
    cr_assert(read_scope_has(&r, "1.2.9") && read_scope_has(&r, "1.2.10"));
    cr_assert(!read_scope_has(&r, "1.2.4") && !read_scope_has(&r, NULL));
    read_scope_free(&r);
    const char *bad[] = {"1.2.3\",\"x"};
    in.studies = bad;
    in.n_studies = 1;
    cr_assert_eq(read_scope_copy(&in, &r), ERR_MALFORMED);
    struct backend_read_scope all = {.scope = GRANT_SCOPE_ALL};
    cr_assert_eq(read_scope_copy(&all, &r), 0);
    cr_assert(read_scope_has(&r, "9.9"));
    struct backend_read_scope none = {.scope = GRANT_SCOPE_NONE};
    cr_assert_eq(read_scope_copy(&none, &r), 0);
    cr_assert(!read_scope_has(&r, "9.9"));
}

Test(aws_read, errors_the_core_sees)
{
    struct http_result r = {.status = 403};
    cr_assert_eq(aws_read_map_err(HTTP_ERR_STATUS, &r), -EACCES);
    r.status = 404;
    cr_assert_eq(aws_read_map_err(HTTP_ERR_STATUS, &r), ERR_NOTFOUND);
    r.status = 406;
    cr_assert_eq(aws_read_map_err(HTTP_ERR_STATUS, &r), ERR_UNSUPPORTED);
    cr_assert_eq(aws_read_map_err(HTTP_ERR_THROTTLED, &r), ERR_IO);
    cr_assert_eq(aws_read_map_err(HTTP_ERR_NETWORK, NULL), ERR_IO);
    cr_assert_eq(aws_read_map_err(HTTP_ERR_CREDS, NULL), ERR_IO);
    cr_assert_eq(aws_read_map_err(HTTP_ERR_PARSE, NULL), ERR_MALFORMED);
    cr_assert_eq(aws_read_map_err(ERR_LIMIT, NULL), ERR_LIMIT);
    cr_assert_eq(aws_read_map_err(0, NULL), 0);
}
