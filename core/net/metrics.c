#include "net/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define METRIC_NAME_MAX 128
#define METRIC_LABELS_MAX 512
#define METRIC_HELP_MAX 256

enum metric_type { MT_COUNTER, MT_GAUGE };

struct series {
    struct series *next;
    char *labels; /* "" when none */
    union {
        _Atomic uint64_t u;
        _Atomic int64_t i;
    } v;
};

/* Both public types are a series; the distinct names keep counters and gauges apart at compile
 * time. */
struct metric_counter {
    struct series s;
};
struct metric_gauge {
    struct series s;
};

struct family {
    struct family *next;
    char name[METRIC_NAME_MAX];
    char help[METRIC_HELP_MAX];
    enum metric_type type;
    struct series *head, **tail; /* in registration order */
};

struct metrics {
    pthread_mutex_t lock;
    struct family *head, **tail;
};

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    m->tail = &m->head;
    return m;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    struct family *f = m->head;
    while (f) {
        struct family *fn = f->next;
        struct series *s = f->head;
        while (s) {
            struct series *sn = s->next;
            free(s->labels);
            free(s); /* the series is the first member of its counter/gauge allocation */
            s = sn;
        }
        free(f);
        f = fn;
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static bool name_ok(const char *n)
{
    size_t len = strnlen(n, METRIC_NAME_MAX);
    if (len == 0 || len >= METRIC_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

/* `name="value"(,name="value")*` with \\, \" and \n escapes in values (exposition format). */
static bool labels_ok(const char *l)
{
    size_t len = strnlen(l, METRIC_LABELS_MAX);
    if (len >= METRIC_LABELS_MAX)
        return false;
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && ((l[i] >= 'a' && l[i] <= 'z') || (l[i] >= 'A' && l[i] <= 'Z') ||
                           l[i] == '_' || (i > start && l[i] >= '0' && l[i] <= '9')))
            i++;
        if (i == start || i + 1 >= len || l[i] != '=' || l[i + 1] != '"')
            return false;
        for (i += 2; i < len && l[i] != '"'; i++) {
            if (l[i] == '\n')
                return false;
            if (l[i] == '\\') {
                if (i + 1 >= len || (l[i + 1] != '\\' && l[i + 1] != '"' && l[i + 1] != 'n'))
                    return false;
                i++;
            }
        }
        if (i >= len)
            return false; /* unterminated value */
        i++;
        if (i < len && l[i++] != ',')
            return false;
        if (i == len && l[i - 1] == ',')
            return false;
    }
    return true;
}

static struct series *get_series(struct metrics *m, const char *name, const char *help,
                                 const char *labels, enum metric_type type)
{
    if (!m || !name || !name_ok(name))
        return NULL;
    if (!labels)
        labels = "";
    if (!labels_ok(labels))
        return NULL;
    struct series *found = NULL;
    pthread_mutex_lock(&m->lock);
    struct family *f = m->head;
    while (f && strcmp(f->name, name) != 0)
        f = f->next;
    if (f && f->type != type)
        goto out;
    if (!f) {
        f = calloc(1, sizeof *f);
        if (!f)
            goto out;
        memcpy(f->name, name, strlen(name) + 1);
        if (help) {
            size_t hl = strnlen(help, METRIC_HELP_MAX - 1);
            memcpy(f->help, help, hl);
            for (size_t i = 0; i < hl; i++) {
                if (f->help[i] == '\n' || f->help[i] == '\\')
                    f->help[i] = ' ';
            }
        }
        f->type = type;
        f->tail = &f->head;
        *m->tail = f;
        m->tail = &f->next;
    }
    for (struct series *s = f->head; s; s = s->next) {
        if (strcmp(s->labels, labels) == 0) {
            found = s;
            goto out;
        }
    }
    /* counters and gauges have the same layout: one series */
    struct metric_counter *c = calloc(1, sizeof *c);
    char *lab = strdup(labels);
    if (!c || !lab) {
        free(c);
        free(lab);
        goto out;
    }
    c->s.labels = lab;
    *f->tail = &c->s;
    f->tail = &c->s.next;
    found = &c->s;
out:
    pthread_mutex_unlock(&m->lock);
    return found;
}

struct metric_counter *metrics_counter(struct metrics *m, const char *name, const char *help,
                                       const char *labels)
{
    struct series *s = get_series(m, name, help, labels, MT_COUNTER);
    return s ? (struct metric_counter *)(void *)s : NULL;
}

struct metric_counter *metrics_counter_get(struct metrics *m, const char *name, const char *help,
                                           const char *labels)
{
    return metrics_counter(m, name, help, labels);
}

struct metric_gauge *metrics_gauge(struct metrics *m, const char *name, const char *help,
                                   const char *labels)
{
    struct series *s = get_series(m, name, help, labels, MT_GAUGE);
    return s ? (struct metric_gauge *)(void *)s : NULL;
}

void metric_inc(struct metric_counter *c)
{
    if (c)
        atomic_fetch_add_explicit(&c->s.v.u, 1, memory_order_relaxed);
}

void metric_add(struct metric_counter *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->s.v.u, n, memory_order_relaxed);
}

uint64_t metric_counter_value(const struct metric_counter *c)
{
    return c ? atomic_load_explicit(&c->s.v.u, memory_order_relaxed) : 0;
}

void metric_gauge_set(struct metric_gauge *g, int64_t v)
{
    if (g)
        atomic_store_explicit(&g->s.v.i, v, memory_order_relaxed);
}

void metric_gauge_add(struct metric_gauge *g, int64_t delta)
{
    if (g)
        atomic_fetch_add_explicit(&g->s.v.i, delta, memory_order_relaxed);
}

int64_t metric_gauge_value(const struct metric_gauge *g)
{
    return g ? atomic_load_explicit(&g->s.v.i, memory_order_relaxed) : 0;
}

int metrics_render(struct metrics *m, struct wbuf *out)
{
    pthread_mutex_lock(&m->lock);
    for (const struct family *f = m->head; f; f = f->next) {
        if (f->help[0])
            wbuf_printf(out, "# HELP %s %s\n", f->name, f->help);
        wbuf_printf(out, "# TYPE %s %s\n", f->name, f->type == MT_COUNTER ? "counter" : "gauge");
        for (const struct series *s = f->head; s; s = s->next) {
            const char *open = s->labels[0] ? "{" : "", *close = s->labels[0] ? "}" : "";
            if (f->type == MT_COUNTER)
                wbuf_printf(out, "%s%s%s%s %llu\n", f->name, open, s->labels, close,
                            (unsigned long long)atomic_load(&s->v.u));
            else
                wbuf_printf(out, "%s%s%s%s %lld\n", f->name, open, s->labels, close,
                            (long long)atomic_load(&s->v.i));
        }
    }
    pthread_mutex_unlock(&m->lock);
    return out->err;
}
