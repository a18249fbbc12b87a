/* dicomweb: the QIDO-RS path and query builder (SigV4's strict encoding, paging), the cap, and
 * both operations on a real loop against a scripted HTTP server: every page followed, the cap
 * reported, 204, throttling past the deadline, WADO-RS answers streamed without their File Meta
 * Information (single part and multipart/related), paused and resumed by the reader, refused
 * when malformed, truncated, of another instance or 406, and cancelled without a callback. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "forwarder/aws/creds.h"
#include "forwarder/aws/dicomweb.h"
#include "http_script.h"

/* ---- pure: the query ------------------------------------------------------------------------- */

static void build(const struct dw_qido *q, unsigned limit, unsigned offset, char *path,
                  char *query, int want)
{
    struct wbuf p, qs;
    wbuf_init(&p, 4096);
    wbuf_init(&qs, 65536);
    cr_assert_eq(dw_qido_build(q, limit, offset, &p, &qs), want);
    if (want == 0) {
        wbuf_u8(&p, 0);
        wbuf_u8(&qs, 0);
        snprintf(path, 512, "%s", (const char *)p.p);
        snprintf(query, 2048, "%s", qs.p ? (const char *)qs.p : "");
    }
    wbuf_cleanup(&p);
    wbuf_cleanup(&qs);
}

Test(dicomweb, query_is_encoded_as_sigv4_canonicalises_it_and_sorted)
{
    struct dw_qido_key keys[] = {{"PatientName", "SMITH*^J?"},
                                 {"00080020", "20200101-20201231"},
                                 {"StudyInstanceUID", "1.2.3,1.2.4"},
                                 {"StudyDescription", "a&b=c d/e~f"}};
    const char *incl[] = {"00100030", "StudyID"};
    struct dw_qido q = {.level = DW_STUDIES, .keys = keys, .n_keys = 4, .includefield = incl,
                        .n_include = 2, .fuzzy = true};
    char path[512], query[2048];
    build(&q, 1000, 2000, path, query, 0);
    cr_assert_str_eq(path, "/studies");
    cr_assert_str_eq(query, "00080020=20200101-20201231&PatientName=SMITH%2A%5EJ%3F&"
                            "StudyDescription=a%26b%3Dc%20d%2Fe~f&"
                            "StudyInstanceUID=1.2.3%2C1.2.4&fuzzymatching=true&"
                            "includefield=00100030&includefield=StudyID&limit=1000&"
                            "offset=2000");
}

Test(dicomweb, paths_per_level_and_refusals)
{
    char path[512], query[2048];
    struct dw_qido q = {.level = DW_SERIES, .study = "1.2.3"};
    build(&q, 5, 0, path, query, 0);
    cr_assert_str_eq(path, "/studies/1.2.3/series");
    cr_assert_str_eq(query, "limit=5&offset=0");
    q = (struct dw_qido){.level = DW_INSTANCES, .study = "1.2.3", .series = "1.2.3.4"};
    build(&q, 5, 0, path, query, 0);
    cr_assert_str_eq(path, "/studies/1.2.3/series/1.2.3.4/instances");
    q = (struct dw_qido){.level = DW_INSTANCES, .study = "1.2.3"};
    build(&q, 5, 0, path, query, 0);
    cr_assert_str_eq(path, "/studies/1.2.3/instances");
    q = (struct dw_qido){.level = DW_SERIES};
    build(&q, 5, 0, path, query, 0);
    cr_assert_str_eq(path, "/series");
    q = (struct dw_qido){.level = DW_INSTANCES};
    build(&q, 5, 0, path, query, 0);
    cr_assert_str_eq(path, "/instances");
    /* a series without its study, a study path at the study level, bad UIDs, bad names */
    q = (struct dw_qido){.level = DW_INSTANCES, .series = "1.2"};
    build(&q, 5, 0, path, query, ERR_MALFORMED);
    q = (struct dw_qido){.level = DW_STUDIES, .study = "1.2"};
    build(&q, 5, 0, path, query, ERR_MALFORMED);
    q = (struct dw_qido){.level = DW_SERIES, .study = "1.2/../x"};
    build(&q, 5, 0, path, query, ERR_MALFORMED);
    struct dw_qido_key bad[] = {{"Patient&Name", "x"}};
    q = (struct dw_qido){.level = DW_STUDIES, .keys = bad, .n_keys = 1};
    build(&q, 5, 0, path, query, ERR_MALFORMED);
    const char *incl[51];
    for (int i = 0; i < 51; i++)
        incl[i] = "PatientID";
    q = (struct dw_qido){.level = DW_STUDIES, .includefield = incl, .n_include = 51};
    build(&q, 5, 0, path, query, ERR_LIMIT);
    q.n_include = 50;
    build(&q, 5, 0, path, query, 0);
}

Test(dicomweb, page_outcome_follows_full_pages_and_reports_the_cap)
{
    cr_assert_eq(dw_qido_page_outcome(1000, 1000, 0, 10000), 1);
    cr_assert_eq(dw_qido_page_outcome(999, 1000, 0, 10000), 0);
    cr_assert_eq(dw_qido_page_outcome(0, 1000, 3000, 10000), 0);
    cr_assert_eq(dw_qido_page_outcome(1000, 1000, 9000, 10000), ERR_LIMIT); /* ends at 10,000 */
    cr_assert_eq(dw_qido_page_outcome(5, 1000, 0, 5), ERR_LIMIT); /* a lowered cap */
    cr_assert_eq(dw_qido_page_outcome(4, 1000, 0, 5), 0);
}

/* ---- on a loop ------------------------------------------------------------------------------ */

struct fx {
    uv_loop_t loop;
    struct hs_server srv;
    struct http_client *http;
    struct creds_provider *creds;
    struct dw_client *dw;
    bool closed;
};

static void fx_start_bin(struct fx *f, const struct hs_canned *s, const size_t *lens, size_t n,
                         unsigned page, unsigned max, uint64_t deadline)
{
    memset(f, 0, sizeof *f);
    setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
    cr_assert_eq(uv_loop_init(&f->loop), 0);
    hs_start_bin(&f->loop, &f->srv, s, lens, n);
    struct http_opts o;
    http_opts_default(&o);
    o.base_delay_ms = 5;
    o.max_delay_ms = 40;
    cr_assert_eq(http_client_new(&f->loop, &o, &f->http), 0);
    cr_assert_eq(creds_provider_new(f->http, &f->creds), 0);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", f->srv.port);
    struct dw_opts d = {.region = "us-east-1", .endpoint = ep, .datastore_id = "ds0",
                        .page_size = page, .max_results = max, .deadline_ms = deadline};
    cr_assert_eq(dw_client_new(f->http, &d, &f->dw), 0);
}

static void fx_start(struct fx *f, const struct hs_canned *s, size_t n, unsigned page,
                     unsigned max, uint64_t deadline)
{
    fx_start_bin(f, s, NULL, n, page, max, deadline);
}

static void on_closed(void *arg)
{
    *(bool *)arg = true;
}

static void run_until(struct fx *f, const bool *flag)
{
    for (int i = 0; i < 200000 && !*flag; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    cr_assert(*flag, "the loop ran dry first");
}

static void fx_stop(struct fx *f)
{
    creds_provider_close(f->creds);
    http_client_close(f->http, on_closed, &f->closed);
    run_until(f, &f->closed);
    dw_client_free(f->dw);
    hs_close_all(&f->loop, &f->srv);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&f->loop), 0);
    hs_free(&f->srv);
}

struct sres {
    bool done;
    int err, n;
    long status;
    char why[300];
};

static int on_result(void *arg, struct dcm_ds *ds)
{
    (void)ds;
    ((struct sres *)arg)->n++;
    return 0;
}

static void on_sdone(void *arg, int err, const struct http_result *res, const char *why)
{
    struct sres *r = arg;
    r->done = true;
    r->err = err;
    r->status = res ? res->status : 0;
    snprintf(r->why, sizeof r->why, "%s", why);
}

static void search(struct fx *f, struct sres *r)
{
    struct dw_qido q = {.level = DW_SERIES, .study = "1.2.3"};
    struct dw_search_cbs cbs = {.result = on_result, .done = on_sdone, .arg = r};
    struct dw_op *op;
    cr_assert_eq(dw_search(f->dw, f->creds, &q, &cbs, &op), 0);
    cr_assert(!r->done);
    run_until(f, &r->done);
}

#define OBJ "{\"0020000E\":{\"vr\":\"UI\",\"Value\":[\"1.2.3.4\"]}}"

Test(dicomweb, search_follows_every_page)
{
    static const struct hs_canned s[] = {{200, NULL, "[" OBJ "," OBJ "]"},
                                         {200, NULL, "[" OBJ "]"}};
    struct fx f;
    fx_start(&f, s, 2, 2, 10000, 0);
    struct sres r = {0};
    search(&f, &r);
    cr_assert_eq(r.err, 0, "%s", r.why);
    cr_assert_eq(r.n, 3);
    cr_assert_eq(f.srv.n_seen, 2);
    cr_assert(strstr(f.srv.seen_head[0], "GET /datastore/ds0/studies/1.2.3/series?limit=2&offset=0 "));
    cr_assert(strstr(f.srv.seen_head[1], "limit=2&offset=2 "));
    cr_assert(strstr(f.srv.seen_head[0], "Accept: application/dicom+json"));
    cr_assert(strstr(f.srv.seen_head[0], "Credential=AKIDEXAMPLE/"));
    cr_assert(strstr(f.srv.seen_head[0], "/us-east-1/medical-imaging/aws4_request"));
    fx_stop(&f);
}

Test(dicomweb, search_reports_the_cap_instead_of_truncating)
{
    static const struct hs_canned s[] = {{200, NULL, "[" OBJ "," OBJ "]"}};
    struct fx f;
    fx_start(&f, s, 1, 2, 4, 0);
    struct sres r = {0};
    search(&f, &r);
    cr_assert_eq(r.err, ERR_LIMIT);
    cr_assert_eq(r.n, 4);
    cr_assert(strstr(r.why, "at most 4 results"), "%s", r.why);
    fx_stop(&f);
}

Test(dicomweb, no_content_is_no_match_and_a_bad_answer_is_malformed)
{
    static const struct hs_canned s[] = {{204, NULL, NULL}, {200, NULL, "{\"x\":1}"}};
    struct fx f;
    fx_start(&f, s, 2, 2, 100, 0);
    struct sres r = {0};
    search(&f, &r);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.n, 0);
    struct sres r2 = {0};
    search(&f, &r2);
    cr_assert_eq(r2.err, ERR_MALFORMED);
    fx_stop(&f);
}

Test(dicomweb, throttling_is_retried_within_the_deadline_then_fails)
{
    static const struct hs_canned s[] = {
        {429, "x-amzn-ErrorType: ThrottlingException:http://x\r\n", "{\"message\":\"slow\"}"},
        {200, NULL, "[" OBJ "]"},
        {503, NULL, "{}"}};
    struct fx f;
    fx_start(&f, s, 3, 10, 100, 300);
    struct sres r = {0};
    search(&f, &r);
    cr_assert_eq(r.err, 0, "%s", r.why);
    cr_assert_eq(r.n, 1);
    struct sres r2 = {0};
    uint64_t t0 = uv_now(&f.loop);
    search(&f, &r2); /* 503 for ever: the deadline ends it */
    cr_assert_eq(r2.err, HTTP_ERR_THROTTLED);
    cr_assert(uv_now(&f.loop) - t0 < 5000);
    cr_assert(strstr(r2.why, "throttled or unavailable"), "%s", r2.why);
    fx_stop(&f);
}

/* ---- WADO-RS ---------------------------------------------------------------------------------- */

static const char *SOP = "1.2.3.4.5";

/* A Part-10 file: preamble, DICM, meta (explicit VR LE), dataset of n bytes (a pattern with
 * CR LF, dashes and near-delimiters "--bnd-y" in it, to tease the multipart reader). */
static uint8_t *p10(const char *sop, const char *ts, size_t n, size_t *len, size_t *meta)
{
    uint8_t *b = calloc(1, 1024 + n);
    size_t o = 132;
    memcpy(b + 128, "DICM", 4);
    const struct {
        uint16_t e;
        const char *v;
    } el[] = {{2, "1.2.840.10008.5.1.4.1.1.7"}, {3, sop}, {0x10, ts}};
    b[o++] = 2, b[o++] = 0, b[o++] = 1, b[o++] = 0, b[o++] = 'O', b[o++] = 'B', o += 2;
    b[o++] = 2, o += 3, b[o++] = 0, b[o++] = 1;
    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(el[i].v), pl = l + (l & 1);
        b[o++] = 2, b[o++] = 0, b[o++] = (uint8_t)el[i].e, b[o++] = 0, b[o++] = 'U', b[o++] = 'I';
        b[o++] = (uint8_t)pl, b[o++] = 0;
        memcpy(b + o, el[i].v, l);
        o += pl;
    }
    *meta = o;
    for (size_t i = 0; i < n; i++)
        b[o + i] = (uint8_t)("\r\n--bnd-y\r\n"[i % 11] + (i / 11 % 3 == 0 ? 0 : 1));
    *len = o + n;
    return b;
}

struct wres {
    struct fx *f;
    bool done, begun, pause;
    int err;
    long status;
    struct dw_instance inst;
    uint8_t *got;
    size_t n, cap, calls;
    struct dw_op *op;
    uv_timer_t t;
    char why[300];
};

static void on_resume(uv_timer_t *t)
{
    struct wres *w = t->data;
    dw_resume(w->op);
}

static int on_begin(void *arg, const struct dw_instance *i)
{
    struct wres *w = arg;
    w->begun = true;
    w->inst = *i;
    return 0;
}

static int on_data(void *arg, const uint8_t *p, size_t n)
{
    struct wres *w = arg;
    cr_assert(w->begun);
    cr_assert(w->n + n <= w->cap);
    memcpy(w->got + w->n, p, n);
    w->n += n;
    w->calls++;
    if (w->pause) {
        uv_timer_start(&w->t, on_resume, 1, 0);
        return 1;
    }
    return 0;
}

static void on_wdone(void *arg, int err, const struct http_result *res, const char *why)
{
    struct wres *w = arg;
    w->done = true;
    w->err = err;
    w->status = res ? res->status : 0;
    snprintf(w->why, sizeof w->why, "%s", why);
}

static void timer_closed(uv_handle_t *h)
{
    *(bool *)h->data = true;
}

static void wado(struct fx *f, struct wres *w, bool multipart, const char *ts, size_t cap)
{
    w->f = f;
    w->cap = cap;
    w->got = malloc(cap);
    uv_timer_init(&f->loop, &w->t);
    w->t.data = w;
    struct dw_wado q = {.study = "1.2.3", .series = "1.2.3.4", .sop = SOP,
                        .transfer_syntax = ts, .multipart = multipart};
    struct dw_wado_cbs cbs = {.begin = on_begin, .data = on_data, .done = on_wdone, .arg = w};
    cr_assert_eq(dw_retrieve(f->dw, f->creds, &q, &cbs, &w->op), 0);
    run_until(f, &w->done);
    bool closed = false;
    w->t.data = &closed;
    uv_close((uv_handle_t *)&w->t, timer_closed);
    run_until(f, &closed);
}

Test(dicomweb, wado_streams_the_dataset_without_its_meta_paused_at_every_piece)
{
    size_t len, meta, n = 300000;
    uint8_t *file = p10(SOP, "1.2.840.10008.1.2.1", n, &len, &meta);
    struct hs_canned s[] = {
        {200, "Content-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1\r\n",
         (const char *)file}};
    struct fx f;
    size_t lens[] = {len};
    fx_start_bin(&f, s, lens, 1, 0, 0, 0);
    struct wres w = {.pause = true};
    wado(&f, &w, false, "*", n);
    cr_assert_eq(w.err, 0, "%s", w.why);
    cr_assert_eq(w.n, n);
    cr_assert(w.calls > 3, "paused pieces: %zu", w.calls);
    cr_assert_eq(memcmp(w.got, file + meta, n), 0);
    cr_assert_str_eq(w.inst.ts, "1.2.840.10008.1.2.1");
    cr_assert_str_eq(w.inst.sop, SOP);
    cr_assert_eq(w.inst.bytes, n);
    cr_assert(strstr(f.srv.seen_head[0],
                     "GET /datastore/ds0/studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.5 "));
    cr_assert(strstr(f.srv.seen_head[0], "Accept: application/dicom; transfer-syntax=*"));
    free(w.got);
    free(file);
    fx_stop(&f);
}

static char *multipart(const uint8_t *file, size_t len, const char *tail, size_t *out_len)
{
    const char *head = "--bnd-x\r\nContent-Type: application/dicom\r\n\r\n";
    size_t hl = strlen(head), tl = strlen(tail);
    char *b = malloc(hl + len + tl);
    memcpy(b, head, hl);
    memcpy(b + hl, file, len);
    memcpy(b + hl + len, tail, tl);
    *out_len = hl + len + tl;
    return b;
}

Test(dicomweb, wado_reads_a_multipart_related_answer)
{
    size_t len, meta, n = 100000, blen;
    uint8_t *file = p10(SOP, "1.2.840.10008.1.2.4.50", n, &len, &meta);
    char *body = multipart(file, len, "\r\n--bnd-x--\r\nepilogue", &blen);
    struct hs_canned s[] = {
        {200, "Content-Type: multipart/related; type=\"application/dicom\"; boundary=bnd-x\r\n",
         body}};
    struct fx f;
    size_t lens[] = {blen};
    fx_start_bin(&f, s, lens, 1, 0, 0, 0);
    struct wres w = {.pause = true};
    wado(&f, &w, true, NULL, n);
    cr_assert_eq(w.err, 0, "%s", w.why);
    cr_assert_eq(w.n, n);
    cr_assert_eq(memcmp(w.got, file + meta, n), 0);
    cr_assert_str_eq(w.inst.ts, "1.2.840.10008.1.2.4.50");
    cr_assert_eq(w.inst.bytes, 0); /* unknown in a multipart answer */
    cr_assert(strstr(f.srv.seen_head[0], "Accept: multipart/related; type=\"application/dicom\""));
    free(w.got);
    free(body);
    free(file);
    fx_stop(&f);
}

Test(dicomweb, wado_refuses_what_is_not_the_instance_asked_for)
{
    size_t len, meta, blen;
    uint8_t *file = p10("1.2.3.4.6", "1.2.840.10008.1.2.1", 1000, &len, &meta);
    uint8_t *good = p10(SOP, "1.2.840.10008.1.2.1", 1000, &len, &meta);
    char *cut = multipart(good, len, "", &blen); /* no closing delimiter */
    struct hs_canned s[] = {
        {200, "Content-Type: application/dicom\r\n", (const char *)file},
        {200, "Content-Type: application/dicom\r\n", "not a dicom file at all"},
        {200, "Content-Type: text/plain\r\n", "x"},
        {200, "Content-Type: multipart/related; boundary=bnd-x\r\n", cut},
        {406, "x-amzn-ErrorType: NotAcceptableException\r\n", "{\"message\":\"retry with *\"}"},
    };
    struct fx f;
    size_t lens[] = {len, 0, 0, blen, 0};
    fx_start_bin(&f, s, lens, 5, 0, 0, 0);
    int want[] = {ERR_MALFORMED, ERR_TRUNCATED, ERR_MALFORMED, ERR_TRUNCATED, HTTP_ERR_STATUS};
    for (size_t i = 0; i < 5; i++) {
        struct wres w = {0};
        wado(&f, &w, false, NULL, 4096);
        cr_assert_eq(w.err, want[i], "answer %zu: %d %s", i, w.err, w.why);
        cr_assert(i != 0 || strstr(w.why, "another instance"), "%s", w.why);
        cr_assert(i != 4 || w.status == 406);
        free(w.got);
    }
    free(cut);
    free(good);
    free(file);
    fx_stop(&f);
}

static int pause_once(void *arg, const uint8_t *p, size_t n)
{
    (void)p;
    struct wres *w = arg;
    w->n += n;
    return 1; /* and nobody resumes: the test cancels */
}

Test(dicomweb, cancel_mid_stream_ends_without_a_callback)
{
    size_t len, meta;
    uint8_t *file = p10(SOP, "1.2.840.10008.1.2.1", 500000, &len, &meta);
    struct hs_canned s[] = {{200, "Content-Type: application/dicom\r\n", (const char *)file}};
    struct fx f;
    size_t lens[] = {len};
    fx_start_bin(&f, s, lens, 1, 0, 0, 0);
    struct wres w = {0};
    struct dw_wado q = {.study = "1.2.3", .series = "1.2.3.4", .sop = SOP};
    struct dw_wado_cbs cbs = {.begin = on_begin, .data = pause_once, .done = on_wdone, .arg = &w};
    cr_assert_eq(dw_retrieve(f.dw, f.creds, &q, &cbs, &w.op), 0);
    for (int i = 0; i < 100000 && w.n == 0; i++)
        uv_run(&f.loop, UV_RUN_ONCE);
    cr_assert(w.n > 0 && w.n < 500000);
    dw_cancel(w.op);
    for (int i = 0; i < 1000 && http_client_pending(f.http) > 0; i++)
        uv_run(&f.loop, UV_RUN_NOWAIT);
    cr_assert_eq(http_client_pending(f.http), 0);
    cr_assert(!w.done, "a callback after cancel");
    free(file);
    fx_stop(&f);
}
