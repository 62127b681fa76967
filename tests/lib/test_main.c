/* test_main.c -- runs the TEST()s linked into a unit-test binary. */
#include "test.h"

#define MAX_TESTS 512

int test_failed_;
static struct {
    const char *name;
    test_fn *fn;
} tests[MAX_TESTS];
static int ntests;

void test_register(const char *name, test_fn *fn)
{
    if (ntests < MAX_TESTS)
        tests[ntests++] = (typeof(tests[0])){name, fn};
}

int main(int argc, char **argv)
{
    int failed = 0, ran = 0;
    for (int i = 0; i < ntests; i++) {
        if (argc > 1 && !strstr(tests[i].name, argv[1]))
            continue;
        test_failed_ = 0;
        tests[i].fn();
        ran++;
        printf("%s %s\n", test_failed_ ? "FAIL" : "ok  ", tests[i].name);
        fflush(stdout);
        failed += test_failed_;
    }
    printf("%d tests, %d failed\n", ran, failed);
    return failed ? 1 : (ran ? 0 : 1);
}
