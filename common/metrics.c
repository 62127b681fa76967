/* metrics.c -- Prometheus registry and text rendering. */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_LABELS 4

const double metrics_latency_buckets[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                          0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                          0.5,     1,      2.5,     5,      10};
const int metrics_latency_nbuckets = sizeof metrics_latency_buckets / sizeof(double);

struct metric {
    struct metric *next;
    char *values[MAX_LABELS];
    _Atomic uint64_t bits; /* counter/gauge value (double bits) or histogram sum */
    _Atomic uint64_t incs; /* metric_inc() calls: an integer add, cheaper than a CAS loop */
    _Atomic uint64_t count;
    _Atomic uint64_t *buckets; /* histogram: per bucket (not cumulative), nbounds + 1 (+Inf) */
    const double *bounds;      /* histogram: the family's upper bounds */
    int nbounds;
};

struct metric_family {
    struct metric_family *next;
    char *name, *help;
    enum metric_kind kind;
    int nlabels;
    char *labels[MAX_LABELS];
    double *bounds;
    int nbounds;
    struct metric *children; /* newest first; rendered in creation order */
    double (*fn)(void *);
    void *fn_arg;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct metric_family *g_families; /* newest first */
static double g_start_time;

__attribute__((constructor)) static void record_start_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    g_start_time = (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *xcalloc(size_t n, size_t s)
{
    void *p = calloc(n, s);
    if (!p)
        abort();
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p)
        abort();
    return p;
}

static double bits_to_d(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static uint64_t d_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

struct metric_family *metrics_family(const char *name, const char *help, enum metric_kind kind,
                                     const char *labels, const double *buckets, int nbuckets)
{
    pthread_mutex_lock(&g_mu);
    for (struct metric_family *f = g_families; f; f = f->next) {
        if (strcmp(f->name, name) == 0) {
            pthread_mutex_unlock(&g_mu);
            return f;
        }
    }
    struct metric_family *f = xcalloc(1, sizeof *f);
    f->name = xstrdup(name);
    f->help = xstrdup(help);
    f->kind = kind;
    if (labels && *labels) {
        char *copy = xstrdup(labels), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t && f->nlabels < MAX_LABELS;
             t = strtok_r(NULL, ",", &save))
            f->labels[f->nlabels++] = xstrdup(t);
        free(copy);
    }
    if (kind == METRIC_HISTOGRAM) {
        if (!buckets) {
            buckets = metrics_latency_buckets;
            nbuckets = metrics_latency_nbuckets;
        }
        f->bounds = xcalloc((size_t)nbuckets, sizeof(double));
        memcpy(f->bounds, buckets, (size_t)nbuckets * sizeof(double));
        f->nbounds = nbuckets;
    }
    f->next = g_families;
    g_families = f;
    pthread_mutex_unlock(&g_mu);
    return f;
}

struct metric *metrics_childv(struct metric_family *f, const char *const *values)
{
    pthread_mutex_lock(&g_mu);
    for (struct metric *m = f->children; m; m = m->next) {
        int i = 0;
        while (i < f->nlabels && strcmp(m->values[i], values[i]) == 0)
            i++;
        if (i == f->nlabels) {
            pthread_mutex_unlock(&g_mu);
            return m;
        }
    }
    struct metric *m = xcalloc(1, sizeof *m);
    for (int i = 0; i < f->nlabels; i++)
        m->values[i] = xstrdup(values[i]);
    if (f->kind == METRIC_HISTOGRAM)
    {
        m->buckets = xcalloc((size_t)f->nbounds + 1, sizeof(uint64_t));
        m->bounds = f->bounds;
        m->nbounds = f->nbounds;
    }
    m->next = f->children;
    f->children = m;
    pthread_mutex_unlock(&g_mu);
    return m;
}

struct metric *metrics_child(struct metric_family *f, ...)
{
    const char *vals[MAX_LABELS] = {0};
    va_list ap;
    va_start(ap, f);
    for (int i = 0; i < f->nlabels; i++)
        vals[i] = va_arg(ap, const char *);
    va_end(ap);
    return metrics_childv(f, vals);
}

struct metric *metrics_counter(const char *name, const char *help)
{
    return metrics_childv(metrics_family(name, help, METRIC_COUNTER, NULL, NULL, 0), NULL);
}

struct metric *metrics_gauge(const char *name, const char *help)
{
    return metrics_childv(metrics_family(name, help, METRIC_GAUGE, NULL, NULL, 0), NULL);
}

struct metric *metrics_histogram(const char *name, const char *help, const double *buckets,
                                 int nbuckets)
{
    return metrics_childv(metrics_family(name, help, METRIC_HISTOGRAM, NULL, buckets, nbuckets),
                          NULL);
}

void metrics_gauge_fn(const char *name, const char *help, double (*fn)(void *arg), void *arg)
{
    struct metric_family *f = metrics_family(name, help, METRIC_GAUGE, NULL, NULL, 0);
    pthread_mutex_lock(&g_mu);
    f->fn = fn;
    f->fn_arg = arg;
    pthread_mutex_unlock(&g_mu);
}

void metric_add(struct metric *m, double v)
{
    uint64_t old = atomic_load_explicit(&m->bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&m->bits, &old, d_to_bits(bits_to_d(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void metric_inc(struct metric *m)
{
    atomic_fetch_add_explicit(&m->incs, 1, memory_order_relaxed);
}

void metric_set(struct metric *m, double v)
{
    atomic_store_explicit(&m->incs, 0, memory_order_relaxed);
    atomic_store_explicit(&m->bits, d_to_bits(v), memory_order_relaxed);
}

void metric_observe(struct metric *m, double v)
{
    int i = 0;
    while (i < m->nbounds && v > m->bounds[i])
        i++;
    atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
    metric_add(m, v);
}

double metric_value(const struct metric *m)
{
    return bits_to_d(atomic_load_explicit(&m->bits, memory_order_relaxed)) +
           (double)atomic_load_explicit(&m->incs, memory_order_relaxed);
}

unsigned long long metric_count(const struct metric *m)
{
    return atomic_load_explicit(&m->count, memory_order_relaxed);
}

/* ---- rendering ---------------------------------------------------------------------------- */

struct out {
    char *buf;
    size_t len, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 16384;
        while (nc < o->len + n + 1)
            nc *= 2;
        char *b = realloc(o->buf, nc);
        if (!b)
            abort();
        o->buf = b;
        o->cap = nc;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void putf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct out *o, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Escapes a label value or help text: backslash, newline and (for label values) quote. */
static void put_escaped(struct out *o, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            puts_(o, "\\\\");
        else if (*s == '\n')
            puts_(o, "\\n");
        else if (quote && *s == '"')
            puts_(o, "\\\"");
        else
            put(o, s, 1);
    }
}

static void put_num(struct out *o, double v)
{
    if (isnan(v))
        puts_(o, "NaN");
    else if (isinf(v))
        puts_(o, v > 0 ? "+Inf" : "-Inf");
    else if (v == (double)(long long)v && fabs(v) < 9e15)
        putf(o, "%lld", (long long)v);
    else {
        /* The shortest text that reads back as the same double. */
        char tmp[40];
        snprintf(tmp, sizeof tmp, "%.15g", v);
        if (strtod(tmp, NULL) != v)
            snprintf(tmp, sizeof tmp, "%.17g", v);
        puts_(o, tmp);
    }
}

/* name{l1="v1",l2="v2"[,extra]} */
static void put_series(struct out *o, const struct metric_family *f, const struct metric *m,
                       const char *suffix, const char *extra)
{
    puts_(o, f->name);
    puts_(o, suffix);
    if (f->nlabels || extra) {
        puts_(o, "{");
        for (int i = 0; i < f->nlabels; i++) {
            if (i)
                puts_(o, ",");
            puts_(o, f->labels[i]);
            puts_(o, "=\"");
            put_escaped(o, m->values[i], 1);
            puts_(o, "\"");
        }
        if (extra) {
            if (f->nlabels)
                puts_(o, ",");
            puts_(o, extra);
        }
        puts_(o, "}");
    }
    puts_(o, " ");
}

static void render_child(struct out *o, const struct metric_family *f, const struct metric *m)
{
    if (m->next)
        render_child(o, f, m->next); /* creation order */
    if (f->kind != METRIC_HISTOGRAM) {
        put_series(o, f, m, "", NULL);
        put_num(o, metric_value(m));
        puts_(o, "\n");
        return;
    }
    uint64_t cum = 0;
    char le[64];
    for (int i = 0; i <= f->nbounds; i++) {
        cum += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
        if (i < f->nbounds) {
            char num[40];
            snprintf(num, sizeof num, "%g", f->bounds[i]);
            snprintf(le, sizeof le, "le=\"%s\"", num);
        } else {
            snprintf(le, sizeof le, "le=\"+Inf\"");
        }
        put_series(o, f, m, "_bucket", le);
        putf(o, "%llu\n", (unsigned long long)cum);
    }
    put_series(o, f, m, "_sum", NULL);
    put_num(o, metric_value(m));
    puts_(o, "\n");
    put_series(o, f, m, "_count", NULL);
    /* _count equals the +Inf bucket so a scrape is self-consistent. */
    putf(o, "%llu\n", (unsigned long long)cum);
}

static void render_family(struct out *o, const struct metric_family *f)
{
    if (f->next)
        render_family(o, f->next); /* creation order */
    if (!f->children && !f->fn)
        return;
    static const char *const types[] = {"counter", "gauge", "histogram"};
    puts_(o, "# HELP ");
    puts_(o, f->name);
    puts_(o, " ");
    put_escaped(o, f->help, 0);
    puts_(o, "\n# TYPE ");
    puts_(o, f->name);
    puts_(o, " ");
    puts_(o, types[f->kind]);
    puts_(o, "\n");
    if (f->fn) {
        puts_(o, f->name);
        puts_(o, " ");
        put_num(o, f->fn(f->fn_arg));
        puts_(o, "\n");
    } else if (f->children) {
        render_child(o, f, f->children);
    }
}

double metrics_process_rss(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    unsigned long size = 0, rss = 0;
    if (fp) {
        if (fscanf(fp, "%lu %lu", &size, &rss) != 2)
            rss = 0;
        fclose(fp);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE);
}

static void render_process(struct out *o)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    puts_(o, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
             "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes ");
    put_num(o, metrics_process_rss());
    puts_(o, "\n# HELP process_cpu_seconds_total Total user and system CPU time spent in "
             "seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ");
    putf(o, "%.6f", (double)ts.tv_sec + ts.tv_nsec / 1e9);
    puts_(o, "\n# HELP process_start_time_seconds Start time of the process since unix epoch in "
             "seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds ");
    putf(o, "%.3f", g_start_time);
    puts_(o, "\n");
}

char *metrics_render(size_t *len)
{
    struct out o = {0};
    pthread_mutex_lock(&g_mu);
    if (g_families)
        render_family(&o, g_families);
    pthread_mutex_unlock(&g_mu);
    render_process(&o);
    if (len)
        *len = o.len;
    return o.buf;
}
