/* test_conf.c -- the settings parser: units, bounds, precedence, and the one-line errors. */
#include "conf.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

TEST(duration_units)
{
    int64_t ms;
    char why[128];
    ASSERT_TRUE(conf_parse_duration("250ms", &ms, why, sizeof why));
    ASSERT_EQ(ms, 250);
    ASSERT_TRUE(conf_parse_duration("30s", &ms, why, sizeof why));
    ASSERT_EQ(ms, 30000);
    ASSERT_TRUE(conf_parse_duration("10m", &ms, why, sizeof why));
    ASSERT_EQ(ms, 600000);
    ASSERT_TRUE(conf_parse_duration("1h", &ms, why, sizeof why));
    ASSERT_EQ(ms, 3600000);
    ASSERT_TRUE(conf_parse_duration("1.5s", &ms, why, sizeof why));
    ASSERT_EQ(ms, 1500);
    ASSERT_TRUE(conf_parse_duration("45", &ms, why, sizeof why)); /* bare number = seconds */
    ASSERT_EQ(ms, 45000);
    ASSERT_FALSE(conf_parse_duration("10 minutes", &ms, why, sizeof why));
    ASSERT_CONTAINS(why, "ms, s, m, h or d");
    ASSERT_FALSE(conf_parse_duration("-1s", &ms, why, sizeof why));
    ASSERT_FALSE(conf_parse_duration("", &ms, why, sizeof why));
}

TEST(size_units)
{
    int64_t b;
    char why[128];
    ASSERT_TRUE(conf_parse_size("4MiB", &b, why, sizeof why));
    ASSERT_EQ(b, 4 << 20);
    ASSERT_TRUE(conf_parse_size("512k", &b, why, sizeof why));
    ASSERT_EQ(b, 512 << 10);
    ASSERT_TRUE(conf_parse_size("1G", &b, why, sizeof why));
    ASSERT_EQ(b, 1LL << 30);
    ASSERT_TRUE(conf_parse_size("100", &b, why, sizeof why));
    ASSERT_EQ(b, 100);
    ASSERT_FALSE(conf_parse_size("4 parsecs", &b, why, sizeof why));
}

TEST(addr_and_ids)
{
    char host[64], why[128];
    int port;
    ASSERT_TRUE(conf_parse_addr("0.0.0.0:50051", host, sizeof host, &port, why, sizeof why));
    ASSERT_STREQ(host, "0.0.0.0");
    ASSERT_EQ(port, 50051);
    ASSERT_TRUE(conf_parse_addr("[::]:0", host, sizeof host, &port, why, sizeof why));
    ASSERT_STREQ(host, "[::]");
    ASSERT_EQ(port, 0);
    ASSERT_FALSE(conf_parse_addr("50051", host, sizeof host, &port, why, sizeof why));
    ASSERT_FALSE(conf_parse_addr("host:65536", host, sizeof host, &port, why, sizeof why));
    ASSERT_CONTAINS(why, "0 to 65535");
    struct conf_idlist l = {0};
    ASSERT_TRUE(conf_parse_idlist("12345, -1001234567890,5000000000", &l, why, sizeof why));
    ASSERT_EQ(l.n, 3);
    ASSERT_TRUE(conf_idlist_has(&l, -1001234567890LL));
    ASSERT_TRUE(conf_idlist_has(&l, 5000000000LL)); /* > 2^32: real Telegram ids */
    ASSERT_FALSE(conf_idlist_has(&l, 1));
    ASSERT_FALSE(conf_parse_idlist("12,abc", &l, why, sizeof why));
    ASSERT_EQ(l.n, 3); /* unchanged on error */
    free(l.ids);
}

static int64_t g_grace, g_count;
static char *g_listen, *g_mode;
static bool g_flag;
static const struct conf_opt table[] = {
    {"grpc-listen", CONF_ADDR, &g_listen, "0.0.0.0:50051", 0, 0, "listen"},
    {"drain-grace", CONF_DURATION, &g_grace, "10s", 0, 3600000, "grace"},
    {"max-count", CONF_INT, &g_count, "5", 1, 100, "count"},
    {"mode", CONF_ENUM, &g_mode, "reject", 0, 0, "mode", "reject|drop-oldest"},
    {"flag", CONF_BOOL, &g_flag, "false", 0, 0, "flag"},
    {0},
};
static const struct conf_opt *const tables[] = {table, NULL};

/* Runs conf_load in a child (it exits on errors); returns the exit status and stderr. */
static int load_in_child(char **argv, int argc, const char *env_k, const char *env_v, char *err,
                         size_t cap)
{
    int fds[2];
    if (pipe(fds) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        dup2(fds[1], 1);
        if (env_k)
            setenv(env_k, env_v, 1);
        conf_load(tables, argc, argv, "prog", "test");
        printf("grace=%lld count=%lld listen=%s mode=%s flag=%d\n", (long long)g_grace,
               (long long)g_count, g_listen, g_mode, g_flag);
        fflush(stdout);
        _exit(0);
    }
    close(fds[1]);
    ssize_t n = read(fds[0], err, cap - 1);
    err[n > 0 ? n : 0] = '\0';
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(defaults_env_and_flags)
{
    char out[1024];
    char *a1[] = {"prog", NULL};
    ASSERT_EQ(load_in_child(a1, 1, NULL, NULL, out, sizeof out), 0);
    ASSERT_CONTAINS(out, "grace=10000 count=5 listen=0.0.0.0:50051 mode=reject flag=0");
    ASSERT_EQ(load_in_child(a1, 1, "DRAIN_GRACE", "2s", out, sizeof out), 0);
    ASSERT_CONTAINS(out, "grace=2000");
    /* the flag wins over the environment */
    char *a2[] = {"prog", "--drain-grace=3s", "--flag", "--mode", "drop-oldest", NULL};
    ASSERT_EQ(load_in_child(a2, 5, "DRAIN_GRACE", "2s", out, sizeof out), 0);
    ASSERT_CONTAINS(out, "grace=3000");
    ASSERT_CONTAINS(out, "mode=drop-oldest flag=1");
}

TEST(bad_values_exit_2_naming_the_setting)
{
    char out[1024];
    char *a1[] = {"prog", "--max-count=500", NULL};
    ASSERT_EQ(load_in_child(a1, 2, NULL, NULL, out, sizeof out), 2);
    ASSERT_CONTAINS(out, "prog: invalid --max-count='500': expected a value from 1 to 100");
    char *a0[] = {"prog", NULL};
    ASSERT_EQ(load_in_child(a0, 1, "DRAIN_GRACE", "soon", out, sizeof out), 2);
    ASSERT_CONTAINS(out, "invalid DRAIN_GRACE='soon'");
    ASSERT_EQ(load_in_child(a0, 1, "MODE", "random", out, sizeof out), 2);
    ASSERT_CONTAINS(out, "expected one of reject|drop-oldest");
    char *a3[] = {"prog", "--nope=1", NULL};
    ASSERT_EQ(load_in_child(a3, 2, NULL, NULL, out, sizeof out), 2);
    ASSERT_CONTAINS(out, "unknown setting '--nope'");
    char *a4[] = {"prog", "--grpc-listen=localhost", NULL};
    ASSERT_EQ(load_in_child(a4, 2, NULL, NULL, out, sizeof out), 2);
    ASSERT_CONTAINS(out, "invalid --grpc-listen='localhost'");
}

TEST(help_lists_every_setting_with_default_and_bounds)
{
    char out[4096];
    char *a[] = {"prog", "--help", NULL};
    ASSERT_EQ(load_in_child(a, 2, NULL, NULL, out, sizeof out), 0);
    ASSERT_CONTAINS(out, "--drain-grace=DURATION  (env DRAIN_GRACE)");
    ASSERT_CONTAINS(out, "default: 10s; allowed: 0s .. 1h");
    ASSERT_CONTAINS(out, "--mode=reject|drop-oldest");
    char *v[] = {"prog", "--version", NULL};
    ASSERT_EQ(load_in_child(v, 2, NULL, NULL, out, sizeof out), 0);
    ASSERT_CONTAINS(out, "prog ");
}
