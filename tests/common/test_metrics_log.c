/* test_metrics_log.c -- the Prometheus text output and the log line format/redaction. */
#include "log.h"
#include "metrics.h"
#include "test.h"

#include <unistd.h>

TEST(counter_gauge_histogram_text)
{
    struct metric_family *f = metrics_family("t_requests_total", "Requests by \"kind\"\nsecond",
                                             METRIC_COUNTER, "kind,code", NULL, 0);
    struct metric *a = metrics_child(f, "get", "OK");
    struct metric *b = metrics_child(f, "say \"hi\"\\", "NotFound");
    ASSERT_TRUE(a == metrics_child(f, "get", "OK")); /* same labels, same child */
    metric_inc(a);
    metric_add(a, 2);
    metric_inc(b);
    struct metric *g = metrics_gauge("t_depth", "Depth.");
    metric_set(g, 7.5);
    double bk[] = {0.1, 1};
    struct metric *h = metrics_histogram("t_seconds", "Latency.", bk, 2);
    metric_observe(h, 0.05);
    metric_observe(h, 0.5);
    metric_observe(h, 5);
    size_t len;
    char *t = metrics_render(&len);
    ASSERT_EQ(strlen(t), len);
    ASSERT_CONTAINS(t, "# HELP t_requests_total Requests by \"kind\"\\nsecond\n");
    ASSERT_CONTAINS(t, "# TYPE t_requests_total counter\n");
    ASSERT_CONTAINS(t, "t_requests_total{kind=\"get\",code=\"OK\"} 3\n");
    ASSERT_CONTAINS(t, "t_requests_total{kind=\"say \\\"hi\\\"\\\\\",code=\"NotFound\"} 1\n");
    ASSERT_CONTAINS(t, "t_depth 7.5\n");
    ASSERT_CONTAINS(t, "t_seconds_bucket{le=\"0.1\"} 1\n");
    ASSERT_CONTAINS(t, "t_seconds_bucket{le=\"1\"} 2\n");
    ASSERT_CONTAINS(t, "t_seconds_bucket{le=\"+Inf\"} 3\n");
    ASSERT_CONTAINS(t, "t_seconds_sum 5.55\n");
    ASSERT_CONTAINS(t, "t_seconds_count 3\n");
    ASSERT_CONTAINS(t, "process_resident_memory_bytes ");
    free(t);
}

static double seven(void *arg)
{
    return 7;
}

TEST(gauge_fn_is_evaluated_at_render)
{
    metrics_gauge_fn("t_fn", "Computed.", seven, NULL);
    char *t = metrics_render(NULL);
    ASSERT_CONTAINS(t, "t_fn 7\n");
    free(t);
}

/* Captures the log line emitted by fn. */
static void capture(void (*fn)(void), char *out, size_t cap)
{
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    int saved = dup(2);
    dup2(fds[1], 2);
    fn();
    dup2(saved, 2);
    close(fds[1]);
    ssize_t n = read(fds[0], out, cap - 1);
    out[n > 0 ? n : 0] = '\0';
    close(fds[0]);
    close(saved);
}

static void emit_json(void)
{
    log_setup("unit", LOG_LVL_INFO, false);
    LOG_INFO("hello \"world\"", LF_I64("n", -5), LF_STR("url", "https://x/bot123456:SECRETTOKENabc/getMe"),
             LF_BOOL("ok", true));
    LOG_DEBUG("not shown");
}

TEST(json_line_with_fields_and_redaction)
{
    char out[2048];
    log_add_secret("123456:SECRETTOKENabc");
    capture(emit_json, out, sizeof out);
    ASSERT_CONTAINS(out, "\"level\":\"info\",\"svc\":\"unit\",\"msg\":\"hello \\\"world\\\"\"");
    ASSERT_CONTAINS(out, "\"n\":-5");
    ASSERT_CONTAINS(out, "\"ok\":true");
    ASSERT_CONTAINS(out, "https://x/bot[REDACTED]/getMe");
    ASSERT_TRUE(strstr(out, "SECRETTOKEN") == NULL);
    ASSERT_TRUE(strstr(out, "not shown") == NULL);
    ASSERT_EQ(strchr(out, '\n') - out + 1, (long)strlen(out)); /* exactly one line */
}
