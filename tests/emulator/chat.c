/* chat.c -- engbot-chat: talk to the bot from a terminal, as a Telegram user, through the Bot
 * API emulator's control API (it never talks to the bot itself).
 *
 * What you type is sent as your message (/start, /help, /search pump ...); the bot's replies
 * are printed as they arrive; inline keyboards are shown as numbered buttons, and "#2" presses
 * button 2 of the last keyboard; documents show as "received file NAME (SIZE)". /group and
 * /private switch between a group chat and the private chat; /quit or Ctrl-D leaves.
 *
 * With stdin not a terminal (or --mode=script) it reads lines, sends each, waits for the
 * bot's answer (--reply-timeout) and for it to go quiet (--settle), prints everything, and
 * exits at EOF: 0 when every line got an answer, 1 otherwise.
 *
 * Threads: main reads input and sends; one poller long-polls /control/transcript and prints. */
#include "conf.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_BUTTONS 100
#define RESP_MAX    (4 << 20)

static struct {
    char *url, *first_name, *username, *group_title, *mode;
    int64_t user_id, group_id, reply_timeout, settle;
    bool color;
} cfg;

static const struct conf_opt opts[] = {
    {"emulator-url", CONF_STR, &cfg.url, "http://127.0.0.1:8081", 0, 0,
     "the Bot API emulator's base URL (its control API is under /control/)"},
    {"user-id", CONF_INT, &cfg.user_id, "1001", 1, 9007199254740991LL,
     "your Telegram user id (your private chat with the bot has the same id)"},
    {"first-name", CONF_STR, &cfg.first_name, "Ada", 0, 0, "your first name"},
    {"username", CONF_STR, &cfg.username, "ada", 0, 0, "your @username"},
    {"group-id", CONF_INT, &cfg.group_id, "-1001", -9007199254740991LL, -1,
     "the group chat /group switches to"},
    {"group-title", CONF_STR, &cfg.group_title, "Engineering team", 0, 0, "its title"},
    {"mode", CONF_ENUM, &cfg.mode, "auto", 0, 0,
     "interactive, or script (read lines, wait for each answer, exit at EOF); auto: script "
     "when stdin is not a terminal",
     "auto|interactive|script"},
    {"reply-timeout", CONF_DURATION, &cfg.reply_timeout, "15s", 100, 600000,
     "script mode: how long to wait for the bot to answer a line"},
    {"settle", CONF_DURATION, &cfg.settle, "800ms", 0, 60000,
     "script mode: the bot has finished answering after this long without a new event"},
    {"color", CONF_BOOL, &cfg.color, "true", 0, 0, "colours when printing to a terminal"},
    {0},
};

/* ---- shared state (mu) ---- */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int64_t events_seen;   /* events of our chats printed so far */
static int64_t last_event_ms; /* monotonic time of the last one */
static bool in_group;
static bool interactive;
static atomic_int quitting; /* set by the signal handler and main, read by the poller */
static struct {
    int64_t chat_id, message_id;
    int n;
    char *data[MAX_BUTTONS]; /* callback_data, or NULL */
    char *url[MAX_BUTTONS];
    char *text[MAX_BUTTONS];
} kb;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *C(const char *code)
{
    return cfg.color && interactive && isatty(STDOUT_FILENO) ? code : "";
}

/* ---- HTTP ---- */
struct buf {
    char *p;
    size_t n;
};

static size_t on_data(char *d, size_t sz, size_t nm, void *ud)
{
    struct buf *b = ud;
    size_t n = sz * nm;
    if (b->n + n > RESP_MAX)
        return 0;
    char *p = realloc(b->p, b->n + n + 1);
    if (!p)
        return 0;
    memcpy(p + b->n, d, n);
    b->p = p;
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

/* GET (body NULL) or POST JSON; returns the parsed JSON answer or NULL (err filled). */
static cJSON *http(CURL *cu, const char *path, const char *body, long timeout_ms, char *err,
                   size_t cap)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", cfg.url, path);
    struct buf b = {0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_reset(cu);
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, &b);
    if (body) {
        curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body);
    }
    CURLcode rc = curl_easy_perform(cu);
    long st = 0;
    curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &st);
    curl_slist_free_all(h);
    cJSON *j = NULL;
    if (rc != CURLE_OK) {
        snprintf(err, cap, "%s", curl_easy_strerror(rc));
    } else {
        j = b.p ? cJSON_Parse(b.p) : NULL;
        if (st != 200) {
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
            snprintf(err, cap, "HTTP %ld: %s", st,
                     cJSON_IsString(e) ? e->valuestring : (b.p ? b.p : ""));
            cJSON_Delete(j);
            j = NULL;
        } else if (!j) {
            snprintf(err, cap, "not JSON: %.100s", b.p ? b.p : "");
        }
    }
    free(b.p);
    return j;
}

/* ---- printing ---- */
static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

static void prompt(void)
{
    if (interactive) {
        out("%syou%s> ", C("\033[1;32m"), C("\033[0m"));
        fflush(stdout);
    }
}

static void human_size(double n, char *b, size_t cap)
{
    if (n < 1024)
        snprintf(b, cap, "%.0f B", n);
    else if (n < 1024 * 1024)
        snprintf(b, cap, "%.1f KB", n / 1024);
    else if (n < 1024.0 * 1024 * 1024)
        snprintf(b, cap, "%.1f MB", n / (1024 * 1024));
    else
        snprintf(b, cap, "%.1f GB", n / (1024.0 * 1024 * 1024));
}

/* Prints text with continuation lines indented under the first. */
static void print_text(const char *who, const char *text)
{
    out("%s%s%s ", C("\033[1;36m"), who, C("\033[0m"));
    for (const char *p = text; *p; p++) {
        putchar(*p);
        if (*p == '\n' && p[1] && p[1] != '\n')
            out("     ");
    }
    putchar('\n');
}

static void clear_keyboard(void)
{
    for (int i = 0; i < kb.n; i++) {
        free(kb.data[i]);
        free(kb.url[i]);
        free(kb.text[i]);
    }
    kb.n = 0;
}

static void print_keyboard(int64_t chat_id, int64_t message_id, const cJSON *markup)
{
    const cJSON *ik = cJSON_GetObjectItemCaseSensitive(markup, "inline_keyboard");
    if (!cJSON_IsArray(ik))
        return;
    clear_keyboard();
    kb.chat_id = chat_id;
    kb.message_id = message_id;
    for (const cJSON *row = ik->child; row; row = row->next) {
        out("     ");
        for (const cJSON *b = row->child; b && kb.n < MAX_BUTTONS; b = b->next) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "text");
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(b, "callback_data");
            const cJSON *u = cJSON_GetObjectItemCaseSensitive(b, "url");
            int i = kb.n++;
            kb.text[i] = strdup(cJSON_IsString(t) ? t->valuestring : "?");
            kb.data[i] = cJSON_IsString(d) ? strdup(d->valuestring) : NULL;
            kb.url[i] = cJSON_IsString(u) ? strdup(u->valuestring) : NULL;
            out("%s%s[%d]%s %s", b == row->child ? "" : "   ", C("\033[1;33m"), i + 1,
                C("\033[0m"), kb.text[i]);
        }
        out("\n");
    }
    if (kb.n)
        out("     %s(type #N to press a button)%s\n", C("\033[2m"), C("\033[0m"));
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* Prints one transcript event; false when it is not about our chats. */
static bool show(const cJSON *ev)
{
    int64_t chat = (int64_t)num(ev, "chat_id");
    if (chat != cfg.user_id && chat != cfg.group_id)
        return false;
    const char *m = str(ev, "method");
    if (!m)
        return false;
    const char *plain = str(ev, "plain") ? str(ev, "plain") : str(ev, "text");
    int64_t mid = (int64_t)num(ev, "message_id");
    const cJSON *markup = cJSON_GetObjectItemCaseSensitive(ev, "reply_markup");
    char who[64];
    snprintf(who, sizeof who, "%sbot%s", chat == cfg.group_id ? "[group] " : "", "");
    if (interactive)
        out("\r\033[K");
    if (strcmp(m, "sendMessage") == 0) {
        char w[80];
        snprintf(w, sizeof w, "%s:", who);
        print_text(w, plain ? plain : "");
        print_keyboard(chat, mid, markup);
    } else if (strcmp(m, "editMessageText") == 0) {
        char w[80];
        snprintf(w, sizeof w, "%s (edited):", who);
        print_text(w, plain ? plain : "");
        print_keyboard(chat, mid, markup);
    } else if (strcmp(m, "editMessageReplyMarkup") == 0) {
        out("%s (new buttons):\n", who);
        print_keyboard(chat, mid, markup);
    } else if (strcmp(m, "sendDocument") == 0) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(ev, "document");
        char sz[32];
        human_size(num(d, "file_size"), sz, sizeof sz);
        out("%s%s:%s received file %s (%s)\n", C("\033[1;36m"), who, C("\033[0m"),
            str(d, "file_name") ? str(d, "file_name") : "?", sz);
        if (plain)
            print_text("    ", plain);
        print_keyboard(chat, mid, markup);
    } else if (strcmp(m, "answerCallbackQuery") == 0) {
        const char *t = str(ev, "text");
        if (!t)
            return true; /* answered silently: nothing to show */
        out("%s%s (%s):%s %s\n", C("\033[1;36m"), who,
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ev, "show_alert")) ? "alert" : "notice",
            C("\033[0m"), t);
    } else if (strcmp(m, "sendChatAction") == 0) {
        if (!interactive)
            return true;
        const char *a = str(ev, "action");
        out("%s(%s is %s...)%s\n", C("\033[2m"), who,
            a && strcmp(a, "upload_document") == 0 ? "sending a file" : "typing", C("\033[0m"));
    } else if (strcmp(m, "deleteMessage") == 0) {
        out("%s(%s deleted a message)%s\n", C("\033[2m"), who, C("\033[0m"));
    } else {
        out("%s(%s: %s)%s\n", C("\033[2m"), who, m, C("\033[0m"));
    }
    return true;
}

/* ---- the poller ---- */
static int64_t since;

static void *poller(void *arg)
{
    CURL *cu = curl_easy_init();
    int failures = 0;
    while (!quitting) {
        char path[128], err[256];
        snprintf(path, sizeof path, "/control/transcript?since=%lld&wait_ms=20000",
                 (long long)since);
        cJSON *j = http(cu, path, NULL, 30000, err, sizeof err);
        if (!j) {
            if (++failures == 3)
                fprintf(stderr, "engbot-chat: the emulator does not answer (%s); retrying\n",
                        err);
            usleep(500000);
            continue;
        }
        failures = 0;
        const cJSON *evs = cJSON_GetObjectItemCaseSensitive(j, "events");
        pthread_mutex_lock(&mu);
        bool printed = false;
        for (const cJSON *ev = evs ? evs->child : NULL; ev; ev = ev->next) {
            if (show(ev)) {
                events_seen++;
                last_event_ms = mono_ms();
                printed = true;
            }
        }
        since = (int64_t)num(j, "next");
        if (printed) {
            prompt();
            fflush(stdout);
            pthread_cond_broadcast(&cv);
        }
        pthread_mutex_unlock(&mu);
        cJSON_Delete(j);
    }
    curl_easy_cleanup(cu);
    return NULL;
}

/* ---- sending ---- */
static cJSON *actor(void)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "user_id", (double)cfg.user_id);
    cJSON_AddStringToObject(o, "first_name", cfg.first_name);
    if (cfg.username && *cfg.username)
        cJSON_AddStringToObject(o, "username", cfg.username);
    if (in_group) {
        cJSON_AddNumberToObject(o, "chat_id", (double)cfg.group_id);
        cJSON_AddStringToObject(o, "chat_type", "group");
        cJSON_AddStringToObject(o, "title", cfg.group_title);
    } else {
        cJSON_AddNumberToObject(o, "chat_id", (double)cfg.user_id);
        cJSON_AddStringToObject(o, "chat_type", "private");
    }
    return o;
}

static bool post(CURL *cu, const char *path, cJSON *o)
{
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char err[256];
    cJSON *r = http(cu, path, body, 10000, err, sizeof err);
    free(body);
    if (!r) {
        fprintf(stderr, "engbot-chat: %s failed: %s\n", path, err);
        return false;
    }
    cJSON_Delete(r);
    return true;
}

/* Handles one input line; returns 1 when something was sent to the bot, 0 for a local
 * command, -1 to quit. */
static int handle(CURL *cu, char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (!n)
        return 0;
    if (strcmp(line, "/quit") == 0 || strcmp(line, "/exit") == 0)
        return -1;
    if (strcmp(line, "/group") == 0 || strcmp(line, "/private") == 0) {
        pthread_mutex_lock(&mu);
        in_group = strcmp(line, "/group") == 0;
        pthread_mutex_unlock(&mu);
        if (in_group)
            out("(now in the group \"%s\" (%lld); /private goes back)\n", cfg.group_title,
                (long long)cfg.group_id);
        else
            out("(now in your private chat with the bot)\n");
        return 0;
    }
    if (line[0] == '#' && n > 1) {
        char *end;
        long i = strtol(line + 1, &end, 10);
        pthread_mutex_lock(&mu);
        if (*end || i < 1 || i > kb.n) {
            pthread_mutex_unlock(&mu);
            out("(no button %s: the last keyboard has %d)\n", line, kb.n);
            return 0;
        }
        if (!kb.data[i - 1]) {
            out("(button \"%s\" opens %s)\n", kb.text[i - 1], kb.url[i - 1] ? kb.url[i - 1] : "?");
            pthread_mutex_unlock(&mu);
            return 0;
        }
        bool was_group = in_group;
        in_group = kb.chat_id == cfg.group_id;
        cJSON *o = actor();
        in_group = was_group;
        cJSON_AddNumberToObject(o, "message_id", (double)kb.message_id);
        cJSON_AddStringToObject(o, "data", kb.data[i - 1]);
        if (!interactive)
            out("you pressed [%ld] %s\n", i, kb.text[i - 1]);
        pthread_mutex_unlock(&mu);
        return post(cu, "/control/callback", o) ? 1 : 0;
    }
    pthread_mutex_lock(&mu);
    cJSON *o = actor();
    pthread_mutex_unlock(&mu);
    cJSON_AddStringToObject(o, "text", line);
    if (!interactive)
        out("you: %s\n", line);
    return post(cu, "/control/message", o) ? 1 : 0;
}

/* Script mode: waits for an answer after `before` events, then for quiet. */
static bool wait_answer(int64_t before)
{
    int64_t deadline = mono_ms() + cfg.reply_timeout;
    pthread_mutex_lock(&mu);
    for (;;) {
        int64_t now = mono_ms();
        if (events_seen > before && now - last_event_ms >= cfg.settle)
            break;
        if (events_seen == before && now >= deadline)
            break;
        pthread_mutex_unlock(&mu);
        usleep(20000);
        pthread_mutex_lock(&mu);
    }
    bool got = events_seen > before;
    pthread_mutex_unlock(&mu);
    return got;
}

static void on_signal(int sig)
{
    quitting = 1;
}

int main(int argc, char **argv)
{
    const struct conf_opt *tables[] = {opts, NULL};
    conf_load(tables, argc, argv, "engbot-chat",
              "chat with the bot from a terminal through the Bot API emulator");
    interactive = strcmp(cfg.mode, "interactive") == 0 ||
                  (strcmp(cfg.mode, "auto") == 0 && isatty(STDIN_FILENO));
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *cu = curl_easy_init();
    char err[256];
    /* Start from the current end of the transcript: only new answers are shown. */
    cJSON *j = http(cu, "/control/transcript?since=9223372036854775807", NULL, 5000, err,
                    sizeof err);
    if (!j) {
        fprintf(stderr, "engbot-chat: cannot reach the emulator at %s: %s\n", cfg.url, err);
        curl_easy_cleanup(cu);
        return 2;
    }
    since = (int64_t)num(j, "next");
    cJSON_Delete(j);
    if (interactive)
        out("%sYou are %s (user %lld), in a private chat with the bot.%s\n"
            "Type a message (try /start or /help). #N presses button N of the last keyboard;\n"
            "/group and /private switch chats; /quit or Ctrl-D leaves.\n\n",
            C("\033[1m"), cfg.first_name, (long long)cfg.user_id, C("\033[0m"));
    /* SIGTERM must interrupt main's read, so only main may take it. */
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, NULL);
    pthread_t th;
    pthread_create(&th, NULL, poller, NULL);
    pthread_sigmask(SIG_UNBLOCK, &term, NULL);
    prompt();
    char *line = NULL;
    size_t cap = 0;
    int missed = 0;
    while (!quitting && getline(&line, &cap, stdin) > 0) {
        pthread_mutex_lock(&mu);
        int64_t before = events_seen;
        pthread_mutex_unlock(&mu);
        int r = handle(cu, line);
        if (r < 0)
            break;
        if (r > 0 && !interactive && !wait_answer(before)) {
            out("(no answer within %lld ms)\n", (long long)cfg.reply_timeout);
            missed++;
        }
        if (interactive && r == 0)
            prompt();
    }
    free(line);
    if (interactive)
        out("\nbye\n");
    quitting = 1;
    /* The poller may be inside a long poll: don't wait for it. */
    curl_easy_cleanup(cu);
    fflush(stdout);
    _exit(missed ? 1 : 0);
}
