/* browse.c -- the catalogue as the user sees it: folder pages as inline keyboards (edited in
 * place as the user navigates), search results, /get, and the decision to send a file.
 *
 * Callback data (at most 64 bytes, Telegram's limit; catalogue ids are at most 16 characters):
 *   n:<folder id>:<page>   open a folder page ("" = the root)
 *   f:<file id>            send a file
 *   s:<page>               a page of the last search (needs the session)
 *   x                      the page indicator (does nothing) */
#include "bot_internal.h"
#include "log.h"
#include "text.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEARCH_LIMIT 200 /* results listed in text; the keyboard pages through them */

static void add_entry_button(struct tg_keyboard *kb, const Engbot__Cache__V1__Entry *e)
{
    char label[160], data[TG_CALLBACK_MAX + 1], size[32];
    const char *name = e->name && *e->name ? e->name : "(root)";
    if (e->kind == ENGBOT__CACHE__V1__ENTRY_KIND__ENTRY_KIND_FOLDER) {
        snprintf(label, sizeof label, "\xF0\x9F\x93\x81 %.120s", name);
        snprintf(data, sizeof data, "n:%.16s:0", e->id ? e->id : "");
    } else {
        fmt_size(e->size, size, sizeof size);
        snprintf(label, sizeof label, "\xF0\x9F\x93\x84 %.110s \xC2\xB7 %s", name, size);
        snprintf(data, sizeof data, "f:%.16s", e->id ? e->id : "");
    }
    if (!tg_kb_add(kb, true, label, data))
        LOG_WARN("keyboard full or bad callback data", LF_STR("data", data));
}

/* Maps a cache-svc failure to what the user reads. Returns true when it answered. */
static bool cache_failed(struct ctx *c, int code, int64_t edit_id, const char *what)
{
    if (code == RPC_OK)
        return false;
    const char *msg;
    if (deps_code_is_failure(code)) {
        deps_degraded(c->b->o.deps, DEP_CACHE);
        msg = FILES_DOWN;
    } else if (code == RPC_NOT_FOUND) {
        msg = what;
    } else {
        msg = "That is not something I can show.";
    }
    if (edit_id)
        ctx_edit(c, edit_id, msg, NULL, NULL);
    else
        ctx_reply(c, msg, NULL, NULL);
    return true;
}

void browse_folder(struct ctx *c, const char *folder_id, uint32_t page, int64_t edit_id,
                   const char *intro_html)
{
    struct bot *b = c->b;
    Engbot__Cache__V1__ListFolderRequest req = ENGBOT__CACHE__V1__LIST_FOLDER_REQUEST__INIT;
    req.folder_id = (char *)folder_id;
    req.page_size = (uint32_t)b->o.page_size;
    req.page = page;
    ProtobufCMessage *m = NULL;
    struct rpc_status st;
    int code = deps_unary(b->o.deps, DEP_CACHE, c->u->chat_id, "ListFolder", &req.base,
                          &engbot__cache__v1__list_folder_response__descriptor, &m,
                          DEPS_IDEMPOTENT | DEPS_CACHED, &st);
    if (code == RPC_NOT_FOUND && folder_id[0]) {
        /* The folder went away: show the root instead. */
        browse_folder(c, "", 0, edit_id, "That folder is gone; here is the top of the catalogue.");
        return;
    }
    if (cache_failed(c, code, edit_id, "The catalogue is empty."))
        return;
    Engbot__Cache__V1__ListFolderResponse *r = (Engbot__Cache__V1__ListFolderResponse *)m;
    const Engbot__Cache__V1__Entry *f = r->folder;
    const char *fid = f && f->id ? f->id : folder_id;
    char path[1024], title[2048], text[3072];
    snprintf(path, sizeof path, "%s", f && f->path && *f->path ? f->path : "");
    text_html_escape(path[0] ? path : "Catalogue", title, sizeof title);
    uint32_t pages = r->pages ? r->pages : 1;
    if (r->total == 0)
        snprintf(text, sizeof text, "%s%s\xF0\x9F\x93\x81 <b>%s</b>\nThis folder is empty.",
                 intro_html ? intro_html : "", intro_html ? "\n\n" : "", title);
    else
        snprintf(text, sizeof text,
                 "%s%s\xF0\x9F\x93\x81 <b>%s</b>\n%u items \xC2\xB7 page %u of %u",
                 intro_html ? intro_html : "", intro_html ? "\n\n" : "", title, r->total,
                 r->page + 1, pages);
    struct tg_keyboard kb = {0};
    for (size_t i = 0; i < r->n_entries; i++)
        add_entry_button(&kb, r->entries[i]);
    char data[TG_CALLBACK_MAX + 1];
    bool row = true;
    if (path[0]) {
        snprintf(data, sizeof data, "n:%.16s:0", f && f->parent_id ? f->parent_id : "");
        tg_kb_add(&kb, row, "\xE2\xAC\x86 Up", data);
        row = false;
    }
    if (r->page > 0) {
        snprintf(data, sizeof data, "n:%.16s:%u", fid, r->page - 1);
        tg_kb_add(&kb, row, "\xE2\x97\x80 Prev", data);
        row = false;
    }
    if (pages > 1) {
        char ind[32];
        snprintf(ind, sizeof ind, "%u/%u", r->page + 1, pages);
        tg_kb_add(&kb, row, ind, "x");
        row = false;
    }
    if (r->page + 1 < pages) {
        snprintf(data, sizeof data, "n:%.16s:%u", fid, r->page + 1);
        tg_kb_add(&kb, row, "Next \xE2\x96\xB6", data);
    }
    char saved_folder[32];
    snprintf(saved_folder, sizeof saved_folder, "%s", fid);
    uint32_t saved_page = r->page;
    if (edit_id)
        ctx_edit(c, edit_id, text, "HTML", &kb);
    else
        ctx_reply(c, text, "HTML", &kb);
    protobuf_c_message_free_unpacked(m, NULL);
    ctx_save_place(c, saved_folder, saved_page, NULL);
}

void browse_search(struct ctx *c, const char *words, uint32_t page, int64_t edit_id)
{
    struct bot *b = c->b;
    Engbot__Cache__V1__SearchRequest req = ENGBOT__CACHE__V1__SEARCH_REQUEST__INIT;
    req.query = (char *)words;
    req.limit = SEARCH_LIMIT;
    ProtobufCMessage *m = NULL;
    struct rpc_status st;
    int code = deps_unary(b->o.deps, DEP_CACHE, c->u->chat_id, "Search", &req.base,
                          &engbot__cache__v1__search_response__descriptor, &m,
                          DEPS_IDEMPOTENT | DEPS_CACHED, &st);
    if (cache_failed(c, code, edit_id, "Nothing found."))
        return;
    Engbot__Cache__V1__SearchResponse *r = (Engbot__Cache__V1__SearchResponse *)m;
    char qh[512];
    text_html_escape(words, qh, sizeof qh);
    size_t n = r->n_entries, ps = (size_t)b->o.page_size;
    if (n == 0) {
        char text[700];
        snprintf(text, sizeof text, "\xF0\x9F\x94\x8E Nothing matches \xE2\x80\x9C%s\xE2\x80\x9D.",
                 qh);
        if (edit_id)
            ctx_edit(c, edit_id, text, "HTML", NULL);
        else
            ctx_reply(c, text, "HTML", NULL);
        protobuf_c_message_free_unpacked(m, NULL);
        return;
    }
    uint32_t pages = (uint32_t)((n + ps - 1) / ps);
    if (page >= pages)
        page = pages - 1;
    /* The full list as text (long lists are split into several messages), when it does not
     * fit on one keyboard page and this is a new search. */
    if (!edit_id && n > ps) {
        size_t cap = 256 + n * 2300;
        char *list = malloc(cap), esc[2200];
        if (!list)
            abort();
        size_t o = (size_t)snprintf(
            list, cap,
            "\xF0\x9F\x94\x8E <b>%u matches</b> for \xE2\x80\x9C%s\xE2\x80\x9D:", r->total, qh);
        for (size_t i = 0; i < n && o < cap; i++) {
            const Engbot__Cache__V1__Entry *e = r->entries[i];
            text_html_escape(e->path ? e->path : "", esc, sizeof esc);
            o += (size_t)snprintf(list + o, cap - o, "\n%s <code>%s</code>",
                                  e->kind == ENGBOT__CACHE__V1__ENTRY_KIND__ENTRY_KIND_FOLDER
                                      ? "\xF0\x9F\x93\x81"
                                      : "\xF0\x9F\x93\x84",
                                  esc);
        }
        if (r->total > n && o < cap)
            snprintf(list + o, cap - o, "\n\xE2\x80\xA6 and %u more: add words to narrow it down.",
                     r->total - (uint32_t)n);
        ctx_reply(c, list, "HTML", NULL);
        free(list);
    }
    char text[800];
    snprintf(text, sizeof text,
             "\xF0\x9F\x94\x8E \xE2\x80\x9C%s\xE2\x80\x9D: %u matches \xC2\xB7 page %u of %u", qh,
             r->total, page + 1, pages);
    struct tg_keyboard kb = {0};
    for (size_t i = page * ps; i < n && i < (page + 1) * ps; i++)
        add_entry_button(&kb, r->entries[i]);
    /* Paging needs the words, which live in the session: without one, no Prev/Next. */
    bool can_page = c->session;
    if (pages > 1 && can_page) {
        char data[16];
        bool row = true;
        if (page > 0) {
            snprintf(data, sizeof data, "s:%u", page - 1);
            tg_kb_add(&kb, row, "\xE2\x97\x80 Prev", data);
            row = false;
        }
        snprintf(data, sizeof data, "%u/%u", page + 1, pages);
        tg_kb_add(&kb, row, data, "x");
        if (page + 1 < pages) {
            snprintf(data, sizeof data, "s:%u", page + 1);
            tg_kb_add(&kb, false, "Next \xE2\x96\xB6", data);
        }
    }
    if (edit_id)
        ctx_edit(c, edit_id, text, "HTML", &kb);
    else
        ctx_reply(c, text, "HTML", &kb);
    protobuf_c_message_free_unpacked(m, NULL);
    if (!edit_id)
        ctx_save_place(c, c->folder, c->page, words);
}

/* Sends a resolved file, or explains why not. */
static void deliver(struct ctx *c, const Engbot__Cache__V1__Entry *e)
{
    struct bot *b = c->b;
    if (e->size > b->o.upload_limit) {
        char name[700], size[32], limit[32], text[1000];
        text_html_escape(e->name ? e->name : "", name, sizeof name);
        fmt_size(e->size, size, sizeof size);
        fmt_size(b->o.upload_limit, limit, sizeof limit);
        snprintf(text, sizeof text,
                 "\xE2\x9A\xA0 <b>%s</b> is %s, larger than the %s a bot can send here. "
                 "Ask an admin for another way to get it.",
                 name, size, limit);
        ctx_reply(c, text, "HTML", NULL);
        return;
    }
    ctx_send_doc(c, e);
}

static bool resolve(struct ctx *c, ProtobufCMessage **m, const char *id, const char *path,
                    const char *name, int *code)
{
    Engbot__Cache__V1__ResolveRequest req = ENGBOT__CACHE__V1__RESOLVE_REQUEST__INIT;
    if (id) {
        req.selector_case = ENGBOT__CACHE__V1__RESOLVE_REQUEST__SELECTOR_ID;
        req.id = (char *)id;
    } else if (path) {
        req.selector_case = ENGBOT__CACHE__V1__RESOLVE_REQUEST__SELECTOR_PATH;
        req.path = (char *)path;
    } else {
        req.selector_case = ENGBOT__CACHE__V1__RESOLVE_REQUEST__SELECTOR_NAME;
        req.name = (char *)name;
    }
    struct rpc_status st;
    *code = deps_unary(c->b->o.deps, DEP_CACHE, c->u->chat_id, "Resolve", &req.base,
                       &engbot__cache__v1__resolve_response__descriptor, m, DEPS_IDEMPOTENT, &st);
    return *code == RPC_OK;
}

void browse_file(struct ctx *c, const char *id)
{
    ProtobufCMessage *m = NULL;
    int code;
    if (!resolve(c, &m, id, NULL, NULL, &code)) {
        cache_failed(c, code, 0, SENDER_FILE_GONE);
        return;
    }
    Engbot__Cache__V1__ResolveResponse *r = (Engbot__Cache__V1__ResolveResponse *)m;
    if (r->entry && r->entry->kind == ENGBOT__CACHE__V1__ENTRY_KIND__ENTRY_KIND_FILE)
        deliver(c, r->entry);
    else
        ctx_reply(c, SENDER_FILE_GONE, NULL, NULL);
    protobuf_c_message_free_unpacked(m, NULL);
}

void browse_get(struct ctx *c, const char *name)
{
    struct bot *b = c->b;
    ProtobufCMessage *m = NULL;
    int code;
    char qh[700], text[1200];
    text_html_escape(name, qh, sizeof qh);
    bool by_path = strchr(name, '/') != NULL;
    if (resolve(c, &m, NULL, by_path ? name : NULL, by_path ? NULL : name, &code)) {
        Engbot__Cache__V1__ResolveResponse *r = (Engbot__Cache__V1__ResolveResponse *)m;
        if (r->entry && r->entry->kind == ENGBOT__CACHE__V1__ENTRY_KIND__ENTRY_KIND_FOLDER) {
            char fid[32];
            snprintf(fid, sizeof fid, "%s", r->entry->id ? r->entry->id : "");
            protobuf_c_message_free_unpacked(m, NULL);
            browse_folder(c, fid, 0, 0, NULL);
            return;
        }
        if (r->entry) {
            deliver(c, r->entry);
        } else {
            struct tg_keyboard kb = {0};
            for (size_t i = 0; i < r->n_candidates && i < (size_t)b->o.page_size; i++)
                add_entry_button(&kb, r->candidates[i]);
            snprintf(text, sizeof text,
                     "Several files are called \xE2\x80\x9C%s\xE2\x80\x9D. Which one?", qh);
            ctx_reply(c, text, "HTML", &kb);
        }
        protobuf_c_message_free_unpacked(m, NULL);
        return;
    }
    if (code != RPC_NOT_FOUND) {
        cache_failed(c, code, 0, "");
        return;
    }
    /* Not an exact name: the files whose names contain the words are the candidates. */
    Engbot__Cache__V1__SearchRequest sreq = ENGBOT__CACHE__V1__SEARCH_REQUEST__INIT;
    sreq.query = (char *)name;
    sreq.limit = (uint32_t)b->o.page_size;
    sreq.files_only = true;
    struct rpc_status st;
    code = deps_unary(b->o.deps, DEP_CACHE, c->u->chat_id, "Search", &sreq.base,
                      &engbot__cache__v1__search_response__descriptor, &m,
                      DEPS_IDEMPOTENT | DEPS_CACHED, &st);
    if (cache_failed(c, code, 0, ""))
        return;
    Engbot__Cache__V1__SearchResponse *s = (Engbot__Cache__V1__SearchResponse *)m;
    if (s->n_entries == 1) {
        deliver(c, s->entries[0]);
    } else if (s->n_entries == 0) {
        snprintf(text, sizeof text,
                 "No file matches \xE2\x80\x9C%s\xE2\x80\x9D. Try /search with fewer words.", qh);
        ctx_reply(c, text, "HTML", NULL);
    } else {
        struct tg_keyboard kb = {0};
        for (size_t i = 0; i < s->n_entries; i++)
            add_entry_button(&kb, s->entries[i]);
        snprintf(text, sizeof text,
                 "No file is called exactly \xE2\x80\x9C%s\xE2\x80\x9D. Did you mean one of these?",
                 qh);
        ctx_reply(c, text, "HTML", &kb);
    }
    protobuf_c_message_free_unpacked(m, NULL);
}
