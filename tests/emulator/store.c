/* store.c -- what Telegram knows about the bot's world: chats, users, messages (so edits and
 * callback queries can refer to them), callback queries and uploaded files, each table capped
 * by evicting its oldest entry. Callers hold e->mu. */
#include "clock.h"
#include "emu.h"
#include "sha256.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static void free_chat(void *p)
{
    struct chat *c = p;
    free(c->title);
    free(c->username);
    free(c->first_name);
    free(c);
}

static void free_user(void *p)
{
    struct user *u = p;
    free(u->first_name);
    free(u->username);
    free(u);
}

static void free_msg(void *p)
{
    struct message *m = p;
    free(m->text);
    free(m->parse_mode);
    free(m->markup);
    cJSON_Delete(m->obj);
    free(m);
}

static void free_file(void *p)
{
    struct file *f = p;
    free(f->file_id);
    free(f->unique_id);
    free(f->name);
    free(f->mime);
    free(f->path);
    free(f->bytes);
    free(f);
}

void store_init(struct emu *e)
{
    hmap_init(&e->chats, free_chat);
    hmap_init(&e->users, free_user);
    hmap_init(&e->messages, free_msg);
    hmap_init(&e->cbqs, free);
    hmap_init(&e->files, free_file);
    hmap_init(&e->file_paths, NULL); /* borrowed pointers into files */
    e->next_cbq_id = 0;
}

void store_clear(struct emu *e)
{
    hmap_clear(&e->file_paths);
    hmap_clear(&e->files);
    hmap_clear(&e->cbqs);
    hmap_clear(&e->messages);
    hmap_clear(&e->users);
    /* Chats keep their message counters so message ids never repeat; the rest goes. */
    for (struct hmap_entry *it = e->chats.oldest; it; it = it->newer) {
        struct chat *c = it->val;
        c->migrated_to = 0;
        c->blocked = false;
    }
    e->files_bytes = 0;
}

void store_free(struct emu *e)
{
    store_clear(e);
    hmap_clear(&e->chats);
}

static char *xdup(const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

static void set_str(char **dst, const char *v)
{
    if (!v || !*v)
        return;
    free(*dst);
    *dst = xdup(v);
}

struct chat *store_chat(struct emu *e, int64_t id)
{
    return hmap_geti(&e->chats, id);
}

struct chat *store_chat_put(struct emu *e, int64_t id, const char *type, const char *title,
                            const char *username, const char *first_name)
{
    struct chat *c = store_chat(e, id);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c)
            abort();
        c->id = id;
        c->next_msg_id = 1;
        hmap_puti(&e->chats, id, c);
    }
    if (type && *type)
        snprintf(c->type, sizeof c->type, "%s", type);
    set_str(&c->title, title);
    set_str(&c->username, username);
    set_str(&c->first_name, first_name);
    return c;
}

struct user *store_user_put(struct emu *e, int64_t id, const char *first_name,
                            const char *username)
{
    struct user *u = hmap_geti(&e->users, id);
    if (!u) {
        u = calloc(1, sizeof *u);
        if (!u)
            abort();
        u->id = id;
        hmap_puti(&e->users, id, u);
    }
    set_str(&u->first_name, first_name);
    set_str(&u->username, username);
    if (!u->first_name)
        u->first_name = xdup("User");
    return u;
}

int64_t store_next_msg_id(struct chat *ch)
{
    return ch->next_msg_id++;
}

cJSON *store_chat_json(const struct chat *ch)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)ch->id);
    if (strcmp(ch->type, "private") == 0) {
        cJSON_AddStringToObject(o, "first_name", ch->first_name ? ch->first_name : "User");
        if (ch->username)
            cJSON_AddStringToObject(o, "username", ch->username);
    } else {
        cJSON_AddStringToObject(o, "title", ch->title ? ch->title : "Group");
        if (ch->username)
            cJSON_AddStringToObject(o, "username", ch->username);
    }
    cJSON_AddStringToObject(o, "type", ch->type);
    if (strcmp(ch->type, "group") == 0)
        cJSON_AddBoolToObject(o, "all_members_are_administrators", false);
    return o;
}

cJSON *store_user_json(const struct user *u)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)u->id);
    cJSON_AddBoolToObject(o, "is_bot", false);
    cJSON_AddStringToObject(o, "first_name", u->first_name ? u->first_name : "User");
    if (u->username)
        cJSON_AddStringToObject(o, "username", u->username);
    cJSON_AddStringToObject(o, "language_code", "en");
    return o;
}

cJSON *store_bot_json(struct emu *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)e->bot_id);
    cJSON_AddBoolToObject(o, "is_bot", true);
    cJSON_AddStringToObject(o, "first_name", e->cfg.bot_first_name);
    cJSON_AddStringToObject(o, "username", e->cfg.bot_username);
    return o;
}

static void msg_key(char *k, size_t cap, int64_t chat_id, int64_t message_id)
{
    snprintf(k, cap, "%lld/%lld", (long long)chat_id, (long long)message_id);
}

struct message *store_msg(struct emu *e, int64_t chat_id, int64_t message_id)
{
    char k[48];
    msg_key(k, sizeof k, chat_id, message_id);
    return hmap_get(&e->messages, k);
}

void store_msg_put(struct emu *e, struct message *m)
{
    char k[48];
    msg_key(k, sizeof k, m->chat_id, m->message_id);
    hmap_put(&e->messages, k, m);
    while (e->messages.n > (size_t)e->cfg.max_messages)
        hmap_del_oldest(&e->messages);
}

bool store_msg_del(struct emu *e, int64_t chat_id, int64_t message_id)
{
    char k[48];
    msg_key(k, sizeof k, chat_id, message_id);
    return hmap_del(&e->messages, k);
}

void store_cbq_new(struct emu *e, int64_t chat_id, int64_t message_id, int64_t user_id, char *id,
                   size_t cap)
{
    /* Telegram's ids are large decimal numbers; a prefix keeps ours unique and unguessable
     * enough for tests that try a stale one. */
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r)
        r = 0;
    snprintf(id, cap, "%u%06lld", (r % 900000u) + 100000u, (long long)++e->next_cbq_id);
    struct cbq *q = calloc(1, sizeof *q);
    if (!q)
        abort();
    q->created_ms = clock_mono_ms();
    q->chat_id = chat_id;
    q->message_id = message_id;
    q->user_id = user_id;
    hmap_put(&e->cbqs, id, q);
    while (e->cbqs.n > 100000)
        hmap_del_oldest(&e->cbqs);
}

struct cbq *store_cbq(struct emu *e, const char *id)
{
    return hmap_get(&e->cbqs, id);
}

/* URL-safe base64 without padding, for Telegram-looking file ids. */
static void b64url(const uint8_t *in, size_t n, char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tbl[v >> 18 & 63];
        out[o++] = tbl[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = tbl[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = tbl[v & 63];
    }
    out[o] = '\0';
}

struct file *store_file_add(struct emu *e, int64_t bot_id, const char *name, const char *mime,
                            const char *data, size_t len)
{
    struct file *f = calloc(1, sizeof *f);
    if (!f)
        abort();
    f->seq = ++e->next_file_seq;
    f->bot_id = bot_id;
    f->size = (int64_t)len;
    sha256_hex(data, len, f->sha256);
    /* file_id: a document marker, the bot id (a file_id works only for the bot that got it),
     * a sequence number and random bytes. file_unique_id: from the content, so the same bytes
     * uploaded twice share it while getting two file_ids, as on Telegram. */
    uint8_t raw[32];
    memset(raw, 0, sizeof raw);
    raw[0] = 5; /* document */
    for (int i = 0; i < 8; i++)
        raw[1 + i] = (uint8_t)((uint64_t)bot_id >> (8 * i));
    for (int i = 0; i < 8; i++)
        raw[9 + i] = (uint8_t)((uint64_t)f->seq >> (8 * i));
    if (getrandom(raw + 17, 15, 0) != 15)
        memset(raw + 17, 0x5a, 15);
    char b[64];
    b64url(raw, sizeof raw, b);
    char id[80];
    snprintf(id, sizeof id, "BQACAg%s", b);
    f->file_id = xdup(id);
    uint8_t u[9];
    for (int i = 0; i < 9; i++) {
        char hx[3] = {f->sha256[2 * i], f->sha256[2 * i + 1], 0};
        u[i] = (uint8_t)strtoul(hx, NULL, 16);
    }
    b64url(u, sizeof u, b);
    snprintf(id, sizeof id, "AgAD%s", b);
    f->unique_id = xdup(id);
    f->name = xdup(name && *name ? name : "document");
    f->mime = xdup(mime && *mime ? mime : "application/octet-stream");
    const char *dot = strrchr(f->name, '.');
    char path[96];
    snprintf(path, sizeof path, "documents/file_%lld%.10s", (long long)f->seq,
             dot && strlen(dot) <= 10 && !strchr(dot, '/') ? dot : "");
    f->path = xdup(path);
    f->bytes = malloc(len ? len : 1);
    if (!f->bytes)
        abort();
    memcpy(f->bytes, data, len);
    e->files_bytes += (int64_t)len;
    hmap_put(&e->files, f->file_id, f);
    hmap_put(&e->file_paths, f->path, f);
    /* Keep bytes of the newest files within files_memory; metadata stays (sends by file_id
     * keep working, a download of an evicted file gets 404). */
    for (struct hmap_entry *it = e->files.oldest; it && e->files_bytes > e->cfg.files_memory;
         it = it->newer) {
        struct file *o = it->val;
        if (o->bytes && o != f) {
            e->files_bytes -= o->size;
            free(o->bytes);
            o->bytes = NULL;
        }
    }
    while (e->files.n > (size_t)e->cfg.max_files) {
        struct file *o = e->files.oldest->val;
        if (o->bytes)
            e->files_bytes -= o->size;
        hmap_del(&e->file_paths, o->path);
        hmap_del_oldest(&e->files);
    }
    return f;
}

struct file *store_file(struct emu *e, const char *file_id)
{
    return hmap_get(&e->files, file_id);
}

struct file *store_file_by_path(struct emu *e, const char *path)
{
    return hmap_get(&e->file_paths, path);
}

cJSON *store_document_json(const struct file *f)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "file_name", f->name);
    cJSON_AddStringToObject(d, "mime_type", f->mime);
    cJSON_AddStringToObject(d, "file_id", f->file_id);
    cJSON_AddStringToObject(d, "file_unique_id", f->unique_id);
    cJSON_AddNumberToObject(d, "file_size", (double)f->size);
    return d;
}
