/* bench_load.c -- load generator for the whole-pipeline benchmark (bench_gateway.py drives
 * it): injects N user messages into the Bot API emulator from T threads over keep-alive
 * connections, waits until the bot's replies (method M, R per message) have all reached the
 * emulator, and prints one JSON line: throughput and end-to-end latency percentiles (message
 * injected -> reply recorded by the emulator, pairing each chat's i-th message with its i-th
 * reply, which per-chat ordering guarantees).
 *
 * Usage: bench-gateway-load EMU_URL N CHATS THREADS TEXT METHOD REPLIES_PER_MSG TIMEOUT_S [RATE]
 * RATE: messages per second to inject at (paced, so latencies show no backlog); 0 or absent =
 * as fast as the threads can (open loop, for throughput). REPLIES_PER_MSG 0: inject only (the
 * caller measures what it wants, e.g. the gateway's intake), no latencies. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *emu, *text, *method;
static int n_msgs, n_chats, n_threads, per_msg, timeout_s;
static double rate;
static int64_t start_ms;
static atomic_int next_msg, errors;
static int64_t *sent_ms; /* per message: wall ms at injection */
static int *msg_chat;    /* per message: its chat index */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct buf {
    char *p;
    size_t n;
};

static size_t on_write(char *d, size_t s, size_t m, void *ud)
{
    struct buf *b = ud;
    char *np = realloc(b->p, b->n + s * m + 1);
    if (!np)
        abort();
    b->p = np;
    memcpy(b->p + b->n, d, s * m);
    b->n += s * m;
    b->p[b->n] = '\0';
    return s * m;
}

static cJSON *request(CURL *h, const char *path, const char *body)
{
    char url[512];
    struct buf b = {0};
    snprintf(url, sizeof url, "%s%s", emu, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    struct curl_slist *hd = NULL;
    if (body) {
        hd = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    CURLcode rc = curl_easy_perform(h);
    long st = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hd);
    cJSON *j = rc == CURLE_OK && st == 200 && b.p ? cJSON_Parse(b.p) : NULL;
    free(b.p);
    return j;
}

static int64_t chat_id(int idx)
{
    return 500000 + idx;
}

static void *injector(void *arg)
{
    CURL *h = curl_easy_init();
    for (;;) {
        int i = atomic_fetch_add(&next_msg, 1);
        if (i >= n_msgs)
            break;
        int c = i % n_chats;
        if (rate > 0) {
            int64_t due = start_ms + (int64_t)((double)i * 1000.0 / rate);
            int64_t now = now_ms();
            if (due > now)
                usleep((useconds_t)((due - now) * 1000));
        }
        char body[512];
        snprintf(body, sizeof body,
                 "{\"chat_id\":%" PRId64 ",\"chat_type\":\"private\",\"user_id\":%" PRId64
                 ",\"text\":\"%s\"}",
                 chat_id(c), chat_id(c), text);
        msg_chat[i] = c;
        sent_ms[i] = now_ms();
        cJSON *j = request(h, "/control/message", body);
        if (!j)
            atomic_fetch_add(&errors, 1);
        cJSON_Delete(j);
    }
    curl_easy_cleanup(h);
    return NULL;
}

static long calls_ok(CURL *h)
{
    char path[128];
    snprintf(path, sizeof path, "/control/calls?method=%s", method);
    cJSON *j = request(h, path, NULL);
    long n = 0;
    const cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "calls"), method);
    const cJSON *ok = cJSON_GetObjectItem(c, "ok");
    if (cJSON_IsNumber(ok))
        n = (long)ok->valuedouble;
    cJSON_Delete(j);
    return n;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 9 && argc != 10) {
        fprintf(stderr,
                "usage: %s EMU_URL N CHATS THREADS TEXT METHOD REPLIES_PER_MSG TIMEOUT_S [RATE]\n",
                argv[0]);
        return 2;
    }
    emu = argv[1];
    n_msgs = atoi(argv[2]);
    n_chats = atoi(argv[3]);
    n_threads = atoi(argv[4]);
    text = argv[5];
    method = argv[6];
    per_msg = atoi(argv[7]);
    timeout_s = atoi(argv[8]);
    rate = argc == 10 ? atof(argv[9]) : 0;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sent_ms = calloc((size_t)n_msgs, sizeof *sent_ms);
    msg_chat = calloc((size_t)n_msgs, sizeof *msg_chat);
    CURL *h = curl_easy_init();
    cJSON *t = request(h, "/control/transcript?since=0&wait_ms=0", NULL);
    int64_t since = (int64_t)cJSON_GetObjectItem(t, "next")->valuedouble;
    cJSON_Delete(t);
    long base = calls_ok(h);
    int64_t t0 = now_ms();
    start_ms = t0;
    pthread_t th[64];
    for (int i = 0; i < n_threads && i < 64; i++)
        pthread_create(&th[i], NULL, injector, NULL);
    for (int i = 0; i < n_threads && i < 64; i++)
        pthread_join(th[i], NULL);
    int64_t t_inj = now_ms();
    long want = base + (long)n_msgs * per_msg, got = base;
    while ((got = calls_ok(h)) < want && now_ms() - t0 < timeout_s * 1000LL)
        usleep(20000);
    int64_t t1 = now_ms();
    /* Pair replies with messages per chat, in order. */
    int64_t *lat = calloc((size_t)n_msgs, sizeof *lat), last_reply = t0;
    int nlat = 0;
    int *next_of_chat = calloc((size_t)n_chats, sizeof *next_of_chat);
    int *seen_of_chat = calloc((size_t)n_chats, sizeof *seen_of_chat);
    /* index of the k-th message of chat c: messages are assigned round-robin */
    while (per_msg > 0) {
        char path[128];
        snprintf(path, sizeof path, "/control/transcript?since=%" PRId64 "&wait_ms=0", since);
        cJSON *tr = request(h, path, NULL);
        const cJSON *evs = cJSON_GetObjectItem(tr, "events"), *ev;
        int count = 0;
        cJSON_ArrayForEach(ev, evs)
        {
            count++;
            const cJSON *m = cJSON_GetObjectItem(ev, "method");
            int64_t chat = (int64_t)cJSON_GetObjectItem(ev, "chat_id")->valuedouble;
            int c = (int)(chat - 500000);
            if (!cJSON_IsString(m) || strcmp(m->valuestring, method) != 0 || c < 0 || c >= n_chats)
                continue;
            int64_t ts = (int64_t)cJSON_GetObjectItem(ev, "ts_ms")->valuedouble;
            if (ts > last_reply)
                last_reply = ts;
            /* The reply that completes a message is its per_msg-th. */
            if (++seen_of_chat[c] % per_msg != 0)
                continue;
            int k = next_of_chat[c]++;
            int idx = c + k * n_chats;
            if (idx < n_msgs)
                lat[nlat++] = ts - sent_ms[idx];
        }
        const cJSON *nx = cJSON_GetObjectItem(tr, "next");
        int64_t nsince = cJSON_IsNumber(nx) ? (int64_t)nx->valuedouble : since;
        cJSON_Delete(tr);
        if (count == 0 || nsince == since)
            break;
        since = nsince;
    }
    qsort(lat, (size_t)nlat, sizeof *lat, cmp64);
    double secs = (double)((last_reply > t0 ? last_reply : t1) - t0) / 1000.0;
    printf("{\"messages\":%d,\"replies\":%ld,\"complete\":%s,\"inject_errors\":%d,"
           "\"seconds\":%.3f,\"inject_seconds\":%.3f,\"updates_per_s\":%.1f,"
           "\"e2e_p50_ms\":%" PRId64 ",\"e2e_p99_ms\":%" PRId64 ",\"e2e_max_ms\":%" PRId64 "}\n",
           n_msgs, got - base, got >= want ? "true" : "false", atomic_load(&errors), secs,
           (double)(t_inj - t0) / 1000.0, secs > 0 ? n_msgs / secs : 0.0, nlat ? lat[nlat / 2] : -1,
           nlat ? lat[(nlat * 99) / 100 < nlat ? (nlat * 99) / 100 : nlat - 1] : -1,
           nlat ? lat[nlat - 1] : -1);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    return got >= want ? 0 : 1;
}
