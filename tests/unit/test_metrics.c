/* metrics: get-or-create registry, atomic updates from many threads, and the Prometheus text
 * exposition format 0.0.4 (one HELP and TYPE per family, series in registration order). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "net/metrics.h"

static char *render(struct metrics *m, struct wbuf *w)
{
    wbuf_init(w, 1 << 20);
    cr_assert_eq(metrics_render(m, w), 0);
    wbuf_u8(w, 0);
    cr_assert_eq(w->err, 0);
    return (char *)w->p;
}

Test(metrics, get_or_create_returns_the_same_series)
{
    struct metrics *m = metrics_new();
    cr_assert_not_null(m);
    struct metric_counter *a = metrics_counter(m, "x_total", "help", "k=\"v\"");
    struct metric_counter *b = metrics_counter_get(m, "x_total", "other help", "k=\"v\"");
    struct metric_counter *c = metrics_counter(m, "x_total", NULL, "k=\"w\"");
    cr_assert_not_null(a);
    cr_assert_eq(a, b);
    cr_assert_neq(a, c);
    metric_inc(a);
    metric_add(b, 41);
    cr_assert_eq(metric_counter_value(a), 42);
    cr_assert_eq(metric_counter_value(c), 0);
    metrics_free(m);
}

Test(metrics, a_name_is_either_a_counter_or_a_gauge)
{
    struct metrics *m = metrics_new();
    cr_assert_not_null(metrics_counter(m, "things", NULL, NULL));
    cr_assert_null(metrics_gauge(m, "things", NULL, NULL));
    cr_assert_not_null(metrics_gauge(m, "level", NULL, NULL));
    cr_assert_null(metrics_counter(m, "level", NULL, "a=\"b\""));
    metrics_free(m);
}

Test(metrics, invalid_names_and_labels_are_refused)
{
    struct metrics *m = metrics_new();
    const char *names[] = {"", "9lives", "with-dash", "with space", "é", "a\nb"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        cr_assert_null(metrics_counter(m, names[i], NULL, NULL), "name \"%s\"", names[i]);
    char longname[200];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    cr_assert_null(metrics_counter(m, longname, NULL, NULL));
    cr_assert_not_null(metrics_counter(m, "ok:name_2", NULL, NULL));
    cr_assert_null(metrics_counter(m, "ok", NULL, "a=\"b\"\nevil 1"), "newline in labels");
    cr_assert_not_null(metrics_counter(m, "ok", NULL, "a=\"}\""), "a brace inside a value is legal");
    const char *bad[] = {"k=v", "a=\"b", "a=\"b\",", "=\"b\"", "a=\"b\"c=\"d\"", "a=\"\\x\"",
                         "1a=\"b\"", "a=\"b\"}{c=\"d\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_null(metrics_counter(m, "ok2", NULL, bad[i]), "labels %s", bad[i]);
    cr_assert_not_null(metrics_counter(m, "ok2", NULL, "a=\"b\",c_1=\"x\\\"y\""));
    cr_assert_null(metrics_counter(NULL, "ok", NULL, NULL));
    cr_assert_null(metrics_counter(m, NULL, NULL, NULL));
    metrics_free(m);
}

Test(metrics, gauges_go_up_and_down)
{
    struct metrics *m = metrics_new();
    struct metric_gauge *g = metrics_gauge(m, "depth", "spool depth", NULL);
    metric_gauge_set(g, 10);
    metric_gauge_add(g, -15);
    cr_assert_eq(metric_gauge_value(g), -5);
    metric_gauge_add(g, 5);
    cr_assert_eq(metric_gauge_value(g), 0);
    metrics_free(m);
}

Test(metrics, null_series_are_ignored)
{
    metric_inc(NULL);
    metric_add(NULL, 5);
    metric_gauge_set(NULL, 1);
    metric_gauge_add(NULL, 1);
    cr_assert_eq(metric_counter_value(NULL), 0);
    cr_assert_eq(metric_gauge_value(NULL), 0);
    metrics_free(NULL);
}

Test(metrics, render_is_the_text_exposition_format)
{
    struct metrics *m = metrics_new();
    struct metric_counter *acc =
        metrics_counter(m, "dicom_core_associations_total", "Associations", "result=\"accepted\"");
    struct metric_counter *rej =
        metrics_counter(m, "dicom_core_associations_total", "Associations", "result=\"rejected\"");
    struct metric_gauge *g = metrics_gauge(m, "dicom_core_spool_depth", "Objects\nwaiting", NULL);
    struct metric_counter *nohelp = metrics_counter(m, "bare_total", NULL, NULL);
    metric_add(acc, 3);
    metric_inc(rej);
    metric_gauge_set(g, -2);
    metric_add(nohelp, 18446744073709551615ull);
    struct wbuf w;
    const char *text = render(m, &w);
    const char *want = "# HELP dicom_core_associations_total Associations\n"
                       "# TYPE dicom_core_associations_total counter\n"
                       "dicom_core_associations_total{result=\"accepted\"} 3\n"
                       "dicom_core_associations_total{result=\"rejected\"} 1\n"
                       "# HELP dicom_core_spool_depth Objects waiting\n"
                       "# TYPE dicom_core_spool_depth gauge\n"
                       "dicom_core_spool_depth -2\n"
                       "# TYPE bare_total counter\n"
                       "bare_total 18446744073709551615\n";
    cr_assert_str_eq(text, want);
    wbuf_cleanup(&w);
    metrics_free(m);
}

Test(metrics, render_into_a_full_buffer_reports_the_error)
{
    struct metrics *m = metrics_new();
    cr_assert_not_null(metrics_counter(m, "a_rather_long_metric_name_total", "help text", NULL));
    struct wbuf w;
    wbuf_init(&w, 16);
    cr_assert_eq(metrics_render(m, &w), ERR_LIMIT);
    wbuf_cleanup(&w);
    metrics_free(m);
}

struct worker {
    struct metrics *m;
    int id;
};

static void *hammer(void *arg)
{
    struct worker *wk = arg;
    for (int i = 0; i < 50000; i++) {
        metric_inc(metrics_counter_get(wk->m, "shared_total", NULL, NULL));
        metric_gauge_add(metrics_gauge(wk->m, "shared_gauge", NULL, NULL), wk->id % 2 ? 1 : -1);
        if (i % 1000 == 0) {
            char lab[32];
            snprintf(lab, sizeof lab, "w=\"%d\"", wk->id);
            metric_inc(metrics_counter(wk->m, "per_worker_total", NULL, lab));
        }
    }
    return NULL;
}

Test(metrics, updates_from_many_threads_are_not_lost)
{
    struct metrics *m = metrics_new();
    pthread_t t[4];
    struct worker wk[4];
    for (int i = 0; i < 4; i++) {
        wk[i] = (struct worker){m, i};
        cr_assert_eq(pthread_create(&t[i], NULL, hammer, &wk[i]), 0);
    }
    struct wbuf w;
    for (int i = 0; i < 20; i++) { /* rendering while others register and update */
        wbuf_init(&w, 1 << 20);
        cr_assert_eq(metrics_render(m, &w), 0);
        wbuf_cleanup(&w);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(metric_counter_value(metrics_counter(m, "shared_total", NULL, NULL)), 200000);
    cr_assert_eq(metric_gauge_value(metrics_gauge(m, "shared_gauge", NULL, NULL)), 0);
    for (int i = 0; i < 4; i++) {
        char lab[32];
        snprintf(lab, sizeof lab, "w=\"%d\"", i);
        cr_assert_eq(metric_counter_value(metrics_counter(m, "per_worker_total", NULL, lab)), 50);
    }
    metrics_free(m);
}
