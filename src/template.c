/*
 * template.c: compile-once, evaluate-many value templates for the rules language.
 *
 * Design note. rc_tpl_compile turns a JSON value into a tree of five node kinds:
 *   CONST   a JSON value with no placeholder (kept as a cJSON, duplicated on evaluation);
 *   LOOKUP  a string that is exactly one {a.b|c}: typed result;
 *   INTERP  any other string with placeholders: literal pieces and lookups, text result;
 *   OBJECT / ARRAY  containers with at least one non-constant member.
 * A lookup is up to 8 alternative paths; a path is a root (args, data, event, ...) and up to 16
 * segments, each kept with its numeric value when it is all digits so array indexing needs no
 * parsing at run time. Nothing is re-parsed when a template is evaluated.
 *
 * Evaluation reads borrowed values from rc_tpl_ctx and never keeps them. Values found by a
 * lookup are "views" (struct tval): a borrowed cJSON node, a borrowed C string, or a number, so
 * truthiness, room names and glob lists are computed without building JSON. Only rc_tpl_eval
 * builds new cJSON (the caller owns it). Claims are parsed on first use; the clock is read once
 * per context.
 *
 * Numbers in names (rooms, event names, allow globs: the strict text of rc_tpl_name and
 * rc_tpl_each_string) follow rc_tpl_id_number: exact integers up to 2^53 - 1 only, since cJSON
 * has already turned the text into a double; a larger or fractional number makes the name
 * invalid instead of rounding it into someone else's. Free text (rc_tpl_text) writes any number.
 *
 * It does not: evaluate expressions, call functions, or touch sockets. Compile problems go to
 * the config's problem collector (errors.h).
 *
 * API in call order: rc_tpl_compile -> (rc_tpl_eval | rc_tpl_text | rc_tpl_name | rc_tpl_truthy |
 * rc_tpl_each_string)* with an rc_tpl_ctx -> rc_tpl_ctx_dispose; rc_tpl_free at config teardown.
 */
#include "roomcast/template.h"
#include "roomcast/common.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* ---- compiled form ------------------------------------------------------------------------ */

enum tpl_root {
    ROOT_ARGS, ROOT_DATA, ROOT_EVENT, ROOT_NS, ROOT_SID, ROOT_USER, ROOT_CLAIMS, ROOT_AUTH,
    ROOT_ROOM, ROOT_ERROR, ROOT_NOW, ROOT_NOWISO, ROOT_VERIFIED
};

static const struct { const char *name; enum tpl_root root; int has_fields; } roots[] = {
    {"args", ROOT_ARGS, 1},     {"data", ROOT_DATA, 1},   {"event", ROOT_EVENT, 0},
    {"ns", ROOT_NS, 0},         {"sid", ROOT_SID, 0},     {"user", ROOT_USER, 0},
    {"claims", ROOT_CLAIMS, 1}, {"auth", ROOT_AUTH, 1},   {"room", ROOT_ROOM, 0},
    {"error", ROOT_ERROR, 0},   {"now", ROOT_NOW, 0},     {"nowIso", ROOT_NOWISO, 0},
    {"verified", ROOT_VERIFIED, 1},
};

#define MAX_ALTS 8
#define MAX_SEGS 16
#define MAX_PATH_TEXT 256

struct tpl_seg {
    char *key;
    long index;            /* >= 0 when the segment is all digits (array index), else -1 */
};

struct tpl_path {
    enum tpl_root root;
    size_t nseg;
    struct tpl_seg *segs;
};

struct tpl_lookup {
    size_t nalt;
    struct tpl_path *alts;
};

struct tpl_piece {
    char *lit;             /* literal text, or NULL for a lookup */
    size_t lit_len;
    struct tpl_lookup lk;
};

enum tpl_kind { T_CONST, T_LOOKUP, T_INTERP, T_OBJECT, T_ARRAY };

struct rc_tpl {
    enum tpl_kind kind;
    unsigned roots;        /* bit (1 << enum tpl_root) for every root a placeholder reads */
    union {
        cJSON *constant;
        struct tpl_lookup lk;
        struct { size_t n; struct tpl_piece *pieces; } interp;
        struct { size_t n; char **keys; rc_tpl **vals; } obj;
        struct { size_t n; rc_tpl **items; } arr;
    } u;
};

static void lookup_dispose(struct tpl_lookup *lk)
{
    for (size_t a = 0; a < lk->nalt; a++) {
        for (size_t s = 0; s < lk->alts[a].nseg; s++) rc_free(lk->alts[a].segs[s].key);
        rc_free(lk->alts[a].segs);
    }
    rc_free(lk->alts);
}

void rc_tpl_free(rc_tpl *t)
{
    if (!t) return;
    switch (t->kind) {
    case T_CONST: cJSON_Delete(t->u.constant); break;
    case T_LOOKUP: lookup_dispose(&t->u.lk); break;
    case T_INTERP:
        for (size_t i = 0; i < t->u.interp.n; i++) {
            rc_free(t->u.interp.pieces[i].lit);
            lookup_dispose(&t->u.interp.pieces[i].lk);
        }
        rc_free(t->u.interp.pieces);
        break;
    case T_OBJECT:
        for (size_t i = 0; i < t->u.obj.n; i++) {
            rc_free(t->u.obj.keys[i]);
            rc_tpl_free(t->u.obj.vals[i]);
        }
        rc_free(t->u.obj.keys);
        rc_free(t->u.obj.vals);
        break;
    case T_ARRAY:
        for (size_t i = 0; i < t->u.arr.n; i++) rc_tpl_free(t->u.arr.items[i]);
        rc_free(t->u.arr.items);
        break;
    }
    rc_free(t);
}

/* ---- compiling ---------------------------------------------------------------------------- */

static int is_path_char(char c)
{
    return c != '.' && c != '|' && c != '{' && c != '}' && (unsigned char)c > ' ' && c != 0x7f;
}

/* Parses the text between braces: alt ('|' alt)*, alt = root ('.' seg)*. */
static int parse_lookup(const char *s, size_t len, struct tpl_lookup *out, unsigned *roots_read,
                        const char *path, rc_config_errors *errs)
{
    memset(out, 0, sizeof(*out));
    if (len == 0) {
        rc_config_error(errs, path, "empty placeholder {} (write {{ for a literal {)");
        return -1;
    }
    if (len > MAX_PATH_TEXT) {
        rc_config_error(errs, path, "placeholder longer than %d characters", MAX_PATH_TEXT);
        return -1;
    }
    size_t i = 0;
    while (i <= len) {
        if (out->nalt == MAX_ALTS) {
            rc_config_error(errs, path, "more than %d alternatives in {%.*s}", MAX_ALTS, (int)len, s);
            goto err;
        }
        out->alts = rc_realloc(out->alts, (out->nalt + 1) * sizeof(*out->alts));
        struct tpl_path *p = &out->alts[out->nalt++];
        memset(p, 0, sizeof(*p));
        int first = 1;
        for (;;) {
            size_t start = i;
            while (i < len && is_path_char(s[i])) i++;
            size_t seglen = i - start;
            if (seglen == 0 || (i < len && s[i] != '.' && s[i] != '|')) {
                rc_config_error(errs, path, "bad placeholder {%.*s} (write {{ for a literal {)",
                                (int)len, s);
                goto err;
            }
            if (first) {
                size_t r;
                for (r = 0; r < RC_ARRAY_LEN(roots); r++)
                    if (strlen(roots[r].name) == seglen && memcmp(roots[r].name, s + start, seglen) == 0)
                        break;
                if (r == RC_ARRAY_LEN(roots)) {
                    rc_config_error(errs, path,
                                    "unknown value '%.*s' in {%.*s} (known: args, data, event, ns, sid, "
                                    "user, claims, auth, room, error, now, nowIso, verified; write {{ for a literal {)",
                                    (int)seglen, s + start, (int)len, s);
                    goto err;
                }
                p->root = roots[r].root;
                *roots_read |= 1u << p->root;
                if (!roots[r].has_fields && i < len && s[i] == '.') {
                    rc_config_error(errs, path, "'%s' has no fields in {%.*s}", roots[r].name, (int)len, s);
                    goto err;
                }
                first = 0;
            } else {
                if (p->nseg == MAX_SEGS) {
                    rc_config_error(errs, path, "more than %d segments in {%.*s}", MAX_SEGS, (int)len, s);
                    goto err;
                }
                p->segs = rc_realloc(p->segs, (p->nseg + 1) * sizeof(*p->segs));
                struct tpl_seg *g = &p->segs[p->nseg++];
                g->key = rc_strndup(s + start, seglen);
                g->index = -1;
                if (seglen <= 9) {
                    long v = 0;
                    size_t k;
                    for (k = 0; k < seglen && s[start + k] >= '0' && s[start + k] <= '9'; k++)
                        v = v * 10 + (s[start + k] - '0');
                    if (k == seglen) g->index = v;
                }
            }
            if (i < len && s[i] == '.') { i++; continue; }
            break;
        }
        if (i == len) break;
        i++; /* '|' */
        if (i == len) {
            rc_config_error(errs, path, "bad placeholder {%.*s}", (int)len, s);
            goto err;
        }
    }
    return 0;
err:
    lookup_dispose(out);
    memset(out, 0, sizeof(*out));
    return -1;
}

static rc_tpl *tpl_new(enum tpl_kind kind)
{
    rc_tpl *t = rc_calloc(1, sizeof(*t));
    t->kind = kind;
    return t;
}

static rc_tpl *compile_string(const cJSON *json, const char *path, rc_config_errors *errs)
{
    const char *s = json->valuestring;
    size_t n = strlen(s);
    struct tpl_piece *pieces = NULL;
    size_t np = 0, nlookups = 0;
    char *lit = rc_malloc(n + 1);
    size_t lit_len = 0;
    unsigned roots_read = 0;
    int bad = 0;

    for (size_t i = 0; i < n;) {
        if (s[i] != '{') { lit[lit_len++] = s[i++]; continue; }
        if (s[i + 1] == '{') { lit[lit_len++] = '{'; i += 2; continue; }
        const char *close = memchr(s + i + 1, '}', n - i - 1);
        if (!close) {
            rc_config_error(errs, path, "unterminated '{' (write {{ for a literal {)");
            bad = 1;
            break;
        }
        struct tpl_lookup lk;
        if (parse_lookup(s + i + 1, (size_t)(close - s - i - 1), &lk, &roots_read, path, errs) < 0) {
            bad = 1;
            break;
        }
        pieces = rc_realloc(pieces, (np + 2) * sizeof(*pieces));
        if (lit_len) {
            pieces[np].lit = rc_strndup(lit, lit_len);
            pieces[np].lit_len = lit_len;
            memset(&pieces[np].lk, 0, sizeof(pieces[np].lk));
            np++;
            lit_len = 0;
        }
        pieces[np].lit = NULL;
        pieces[np].lit_len = 0;
        pieces[np].lk = lk;
        np++;
        nlookups++;
        i = (size_t)(close - s) + 1;
    }

    rc_tpl *t = NULL;
    if (bad) goto out;
    if (nlookups == 0) {
        t = tpl_new(T_CONST);
        lit[lit_len] = '\0';
        t->u.constant = cJSON_CreateString(lit);
        goto out;
    }
    if (lit_len) {
        pieces = rc_realloc(pieces, (np + 1) * sizeof(*pieces));
        pieces[np].lit = rc_strndup(lit, lit_len);
        pieces[np].lit_len = lit_len;
        memset(&pieces[np].lk, 0, sizeof(pieces[np].lk));
        np++;
    }
    if (np == 1) {
        t = tpl_new(T_LOOKUP);
        t->u.lk = pieces[0].lk;
        rc_free(pieces);
        pieces = NULL;
        np = 0;
    } else {
        t = tpl_new(T_INTERP);
        t->u.interp.n = np;
        t->u.interp.pieces = pieces;
        pieces = NULL;
        np = 0;
    }
    t->roots = roots_read;
out:
    for (size_t i = 0; i < np; i++) {
        rc_free(pieces[i].lit);
        lookup_dispose(&pieces[i].lk);
    }
    rc_free(pieces);
    rc_free(lit);
    return t;
}

static char *path_member(const char *path, const char *key)
{
    size_t n = strlen(path) + strlen(key) + 2;
    char *p = rc_malloc(n);
    snprintf(p, n, "%s%s%s", path, *path ? "." : "", key);
    return p;
}

static char *path_index(const char *path, size_t i)
{
    size_t n = strlen(path) + 24;
    char *p = rc_malloc(n);
    snprintf(p, n, "%s[%zu]", path, i);
    return p;
}

rc_tpl *rc_tpl_compile(const cJSON *json, const char *path, rc_config_errors *errs)
{
    if (!path) path = "";
    if (cJSON_IsString(json)) return compile_string(json, path, errs);
    if (!cJSON_IsObject(json) && !cJSON_IsArray(json)) {
        rc_tpl *t = tpl_new(T_CONST);
        t->u.constant = json ? cJSON_Duplicate(json, 1) : cJSON_CreateNull();
        return t;
    }
    size_t n = (size_t)cJSON_GetArraySize(json);
    rc_tpl **items = rc_calloc(n ? n : 1, sizeof(*items));
    int bad = 0, all_const = 1;
    unsigned roots_read = 0;
    size_t i = 0;
    for (const cJSON *c = json->child; c; c = c->next, i++) {
        char *sub = cJSON_IsObject(json) ? path_member(path, c->string) : path_index(path, i);
        items[i] = rc_tpl_compile(c, sub, errs);
        rc_free(sub);
        if (!items[i]) { bad = 1; continue; }
        if (items[i]->kind != T_CONST) all_const = 0;
        roots_read |= items[i]->roots;
    }
    rc_tpl *t = NULL;
    if (bad) {
        for (i = 0; i < n; i++) rc_tpl_free(items[i]);
        rc_free(items);
        return NULL;
    }
    if (all_const) {
        for (i = 0; i < n; i++) rc_tpl_free(items[i]);
        rc_free(items);
        t = tpl_new(T_CONST);
        t->u.constant = cJSON_Duplicate(json, 1);
        return t;
    }
    if (cJSON_IsArray(json)) {
        t = tpl_new(T_ARRAY);
        t->u.arr.n = n;
        t->u.arr.items = items;
    } else {
        t = tpl_new(T_OBJECT);
        t->u.obj.n = n;
        t->u.obj.vals = items;
        t->u.obj.keys = rc_calloc(n ? n : 1, sizeof(char *));
        i = 0;
        for (const cJSON *c = json->child; c; c = c->next, i++) t->u.obj.keys[i] = rc_strdup(c->string);
    }
    t->roots = roots_read;
    return t;
}

const char *rc_tpl_const_string(const rc_tpl *t)
{
    return t && t->kind == T_CONST && cJSON_IsString(t->u.constant) ? t->u.constant->valuestring : NULL;
}

int rc_tpl_is_lookup(const rc_tpl *t)
{
    return t && t->kind == T_LOOKUP;
}

int rc_tpl_reads(const rc_tpl *t, const char *root)
{
    for (size_t r = 0; t && r < RC_ARRAY_LEN(roots); r++)
        if (strcmp(roots[r].name, root) == 0) return (t->roots >> roots[r].root) & 1u;
    return 0;
}

unsigned rc_tpl_roots_other_than(const rc_tpl *t, const char *const *allowed)
{
    unsigned other = t ? t->roots : 0;
    for (; allowed && *allowed; allowed++)
        for (size_t r = 0; r < RC_ARRAY_LEN(roots); r++)
            if (strcmp(roots[r].name, *allowed) == 0) other &= ~(1u << roots[r].root);
    return other;
}

/* ---- evaluation context --------------------------------------------------------------------- */

void rc_tpl_ctx_dispose(rc_tpl_ctx *ctx)
{
    cJSON_Delete(ctx->claims_);
    ctx->claims_ = NULL;
    ctx->claims_parsed_ = 0;
}

static const cJSON *ctx_claims(rc_tpl_ctx *ctx)
{
    if (!ctx->claims_parsed_) {
        ctx->claims_parsed_ = 1;
        if (ctx->claims_json) ctx->claims_ = cJSON_Parse(ctx->claims_json);
    }
    return ctx->claims_;
}

static uint64_t ctx_now(rc_tpl_ctx *ctx)
{
    if (!ctx->now_ms_) {
        ctx->now_ms_ = rc_now_wall_ms();
        time_t secs = (time_t)(ctx->now_ms_ / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        size_t n = strftime(ctx->now_iso_, sizeof(ctx->now_iso_) - 6, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(ctx->now_iso_ + n, 6, ".%03uZ", (unsigned)(ctx->now_ms_ % 1000));
    }
    return ctx->now_ms_;
}

/* A value found by a lookup: borrowed, never built. */
enum tval_kind { TV_MISSING, TV_JSON, TV_STR, TV_NUM };
struct tval {
    enum tval_kind kind;
    const cJSON *j;
    const char *s;
    double n;
};

static struct tval tv_str(const char *s)
{
    struct tval v = {s ? TV_STR : TV_MISSING, NULL, s, 0};
    return v;
}

/* A client-chosen value holding a glob character, in a string or in any string inside it. */
static int has_glob_char(const cJSON *j)
{
    if (cJSON_IsString(j)) return strpbrk(j->valuestring, "*?") != NULL;
    for (const cJSON *c = (cJSON_IsArray(j) || cJSON_IsObject(j)) ? j->child : NULL; c; c = c->next)
        if (has_glob_char(c)) return 1;
    return 0;
}

static struct tval resolve_path_any(const struct tpl_path *p, rc_tpl_ctx *ctx);

static struct tval resolve_path(const struct tpl_path *p, rc_tpl_ctx *ctx)
{
    struct tval v = resolve_path_any(p, ctx);
    if (!ctx->globs_from_trusted_only) return v;
    int client = p->root == ROOT_ARGS || p->root == ROOT_DATA || p->root == ROOT_AUTH ||
                 p->root == ROOT_EVENT || p->root == ROOT_ROOM;
    if (client && ((v.kind == TV_STR && strpbrk(v.s, "*?")) || (v.kind == TV_JSON && has_glob_char(v.j))))
        v.kind = TV_MISSING;
    return v;
}

static struct tval resolve_path_any(const struct tpl_path *p, rc_tpl_ctx *ctx)
{
    struct tval v = {TV_MISSING, NULL, NULL, 0};
    const cJSON *j = NULL;
    switch (p->root) {
    case ROOT_ARGS: j = ctx->args; break;
    case ROOT_DATA: j = cJSON_IsArray(ctx->args) ? ctx->args->child : NULL; break;
    case ROOT_CLAIMS: j = ctx_claims(ctx); break;
    case ROOT_AUTH: j = ctx->auth; break;
    case ROOT_VERIFIED: j = ctx->verified; break;
    case ROOT_EVENT: return tv_str(ctx->event);
    case ROOT_NS: return tv_str(ctx->ns);
    case ROOT_SID: return tv_str(ctx->sid);
    case ROOT_USER: return tv_str(ctx->user);
    case ROOT_ROOM: return tv_str(ctx->room);
    case ROOT_ERROR: return tv_str(ctx->error);
    case ROOT_NOW: v.kind = TV_NUM; v.n = (double)ctx_now(ctx); return v;
    case ROOT_NOWISO: ctx_now(ctx); return tv_str(ctx->now_iso_);
    }
    for (size_t i = 0; j && i < p->nseg; i++) {
        const struct tpl_seg *g = &p->segs[i];
        if (cJSON_IsArray(j)) j = g->index >= 0 ? cJSON_GetArrayItem(j, (int)g->index) : NULL;
        else if (cJSON_IsObject(j)) j = cJSON_GetObjectItemCaseSensitive(j, g->key);
        else j = NULL;
    }
    if (j) { v.kind = TV_JSON; v.j = j; }
    return v;
}

/* First alternative that is present and not null; null if one was null, else missing. */
static struct tval resolve(const struct tpl_lookup *lk, rc_tpl_ctx *ctx)
{
    struct tval null_seen = {TV_MISSING, NULL, NULL, 0};
    for (size_t a = 0; a < lk->nalt; a++) {
        struct tval v = resolve_path(&lk->alts[a], ctx);
        if (v.kind == TV_MISSING) continue;
        if (v.kind == TV_JSON && cJSON_IsNull(v.j)) { null_seen = v; continue; }
        return v;
    }
    return null_seen;
}

static int json_truthy(const cJSON *j)
{
    if (!j || cJSON_IsNull(j) || cJSON_IsFalse(j) || cJSON_IsInvalid(j)) return 0;
    if (cJSON_IsString(j)) return j->valuestring[0] != '\0';
    if (cJSON_IsNumber(j)) return j->valuedouble != 0;
    return 1;
}

static int tval_truthy(struct tval v)
{
    switch (v.kind) {
    case TV_MISSING: return 0;
    case TV_JSON: return json_truthy(v.j);
    case TV_STR: return v.s[0] != '\0';
    case TV_NUM: return v.n != 0;
    }
    return 0;
}

/* ---- text building ------------------------------------------------------------------------ */

/* A growable text buffer; with a limit, writes past it only set `over`. */
struct tbuf {
    char *p;
    size_t len, cap;
    size_t limit;          /* 0 = unlimited (heap growth) */
    int over;
};

static void tb_put(struct tbuf *b, const char *s, size_t n)
{
    if (b->limit) {
        if (b->len + n > b->limit) { b->over = 1; return; }
    } else if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        b->p = rc_realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void fmt_number(double d, char out[32])
{
    if (d != d || d - d != 0) { strcpy(out, "null"); return; } /* NaN, inf: what JSON.stringify writes */
    if (d > -9007199254740992.0 && d < 9007199254740992.0 && d == (double)(long long)d) {
        snprintf(out, 32, "%lld", (long long)d);
        return;
    }
    snprintf(out, 32, "%.15g", d);
    if (strtod(out, NULL) != d) snprintf(out, 32, "%.17g", d);
}

int rc_tpl_id_number(double d, char out[24])
{
    const double max = 9007199254740991.0; /* 2^53 - 1 */
    if (!(d >= -max && d <= max) || d != (double)(long long)d) return -1; /* NaN fails both */
    snprintf(out, 24, "%lld", (long long)d);
    return 0;
}

/* Appends a number: in names (strict) only an id number (rc_tpl_id_number), else -1; in text,
 * the shortest digits that read back the same. */
static int tb_put_number(struct tbuf *b, double d, int strict)
{
    char num[32];
    if (strict) {
        if (rc_tpl_id_number(d, num) < 0) return -1;
    } else {
        fmt_number(d, num);
    }
    tb_put(b, num, strlen(num));
    return 0;
}

/* Appends v as text. strict: only strings and id numbers are accepted (returns -1 otherwise). */
static int tb_put_tval(struct tbuf *b, struct tval v, int strict)
{
    switch (v.kind) {
    case TV_MISSING: return strict ? -1 : 0;
    case TV_STR: tb_put(b, v.s, strlen(v.s)); return 0;
    case TV_NUM: return tb_put_number(b, v.n, strict);
    case TV_JSON: break;
    }
    if (cJSON_IsString(v.j)) { tb_put(b, v.j->valuestring, strlen(v.j->valuestring)); return 0; }
    if (cJSON_IsNumber(v.j)) return tb_put_number(b, v.j->valuedouble, strict);
    if (strict) return -1;
    if (cJSON_IsTrue(v.j)) { tb_put(b, "true", 4); return 0; }
    if (cJSON_IsFalse(v.j)) { tb_put(b, "false", 5); return 0; }
    if (cJSON_IsNull(v.j)) { tb_put(b, "null", 4); return 0; }
    char *js = cJSON_PrintUnformatted(v.j);
    if (js) {
        tb_put(b, js, strlen(js));
        cJSON_free(js);
    }
    return 0;
}

static int tb_put_interp(struct tbuf *b, const rc_tpl *t, rc_tpl_ctx *ctx, int strict)
{
    for (size_t i = 0; i < t->u.interp.n; i++) {
        const struct tpl_piece *pc = &t->u.interp.pieces[i];
        if (pc->lit) tb_put(b, pc->lit, pc->lit_len);
        else if (tb_put_tval(b, resolve(&pc->lk, ctx), strict) < 0) return -1;
    }
    return 0;
}

const char *rc_tpl_text(const rc_tpl *t, rc_tpl_ctx *ctx, char **heap)
{
    *heap = NULL;
    const char *c = rc_tpl_const_string(t);
    if (c) return c;
    struct tbuf b = {0};
    switch (t->kind) {
    case T_LOOKUP: tb_put_tval(&b, resolve(&t->u.lk, ctx), 0); break;
    case T_INTERP: tb_put_interp(&b, t, ctx, 0); break;
    default: {
        cJSON *j = rc_tpl_eval(t, ctx);
        struct tval v = {j ? TV_JSON : TV_MISSING, j, NULL, 0};
        tb_put_tval(&b, v, 0);
        cJSON_Delete(j);
        break;
    }
    }
    tb_put(&b, "", 0);
    if (!b.p) return "";
    b.p[b.len] = '\0';
    *heap = b.p;
    return b.p;
}

int rc_tpl_name(const rc_tpl *t, rc_tpl_ctx *ctx, char buf[RC_TPL_NAME_MAX + 1])
{
    struct tbuf b = {buf, 0, RC_TPL_NAME_MAX + 1, RC_TPL_NAME_MAX, 0};
    switch (t->kind) {
    case T_CONST:
        if (!cJSON_IsString(t->u.constant)) return -1;
        tb_put(&b, t->u.constant->valuestring, strlen(t->u.constant->valuestring));
        break;
    case T_LOOKUP: {
        struct tval v = resolve(&t->u.lk, ctx);
        if (v.kind == TV_STR) tb_put(&b, v.s, strlen(v.s));
        else if (v.kind == TV_JSON && cJSON_IsString(v.j)) tb_put(&b, v.j->valuestring, strlen(v.j->valuestring));
        else return -1;
        break;
    }
    case T_INTERP:
        if (tb_put_interp(&b, t, ctx, 1) < 0) return -1;
        break;
    default:
        return -1;
    }
    if (b.over || b.len == 0) return -1;
    buf[b.len] = '\0';
    return (int)b.len;
}

/* ---- typed evaluation --------------------------------------------------------------------- */

static cJSON *tval_to_json(struct tval v)
{
    switch (v.kind) {
    case TV_MISSING: return NULL;
    case TV_JSON: return cJSON_Duplicate(v.j, 1);
    case TV_STR: return cJSON_CreateString(v.s);
    case TV_NUM: return cJSON_CreateNumber(v.n);
    }
    return NULL;
}

cJSON *rc_tpl_eval(const rc_tpl *t, rc_tpl_ctx *ctx)
{
    switch (t->kind) {
    case T_CONST: return cJSON_Duplicate(t->u.constant, 1);
    case T_LOOKUP: return tval_to_json(resolve(&t->u.lk, ctx));
    case T_INTERP: {
        char *heap;
        rc_tpl_text(t, ctx, &heap);
        cJSON *s = cJSON_CreateString(heap ? heap : "");
        rc_free(heap);
        return s;
    }
    case T_OBJECT: {
        cJSON *o = cJSON_CreateObject();
        for (size_t i = 0; i < t->u.obj.n; i++) {
            cJSON *v = rc_tpl_eval(t->u.obj.vals[i], ctx);
            if (v) cJSON_AddItemToObject(o, t->u.obj.keys[i], v);
        }
        return o;
    }
    case T_ARRAY: {
        cJSON *a = cJSON_CreateArray();
        for (size_t i = 0; i < t->u.arr.n; i++) {
            cJSON *v = rc_tpl_eval(t->u.arr.items[i], ctx);
            cJSON_AddItemToArray(a, v ? v : cJSON_CreateNull());
        }
        return a;
    }
    }
    return NULL;
}

int rc_tpl_truthy(const rc_tpl *t, rc_tpl_ctx *ctx)
{
    switch (t->kind) {
    case T_CONST: return json_truthy(t->u.constant);
    case T_LOOKUP: return tval_truthy(resolve(&t->u.lk, ctx));
    case T_INTERP: {
        for (size_t i = 0; i < t->u.interp.n; i++) {
            const struct tpl_piece *pc = &t->u.interp.pieces[i];
            if (pc->lit) return 1; /* literal pieces are never empty */
            struct tval v = resolve(&pc->lk, ctx);
            if (v.kind == TV_MISSING) continue;
            if (v.kind == TV_STR && !v.s[0]) continue;
            if (v.kind == TV_JSON && cJSON_IsString(v.j) && !v.j->valuestring[0]) continue;
            return 1;
        }
        return 0;
    }
    case T_OBJECT:
    case T_ARRAY: return 1;
    }
    return 0;
}

static int each_json_string(const cJSON *j, int (*fn)(void *, const char *), void *arg)
{
    if (cJSON_IsString(j)) return fn(arg, j->valuestring);
    if (!cJSON_IsArray(j)) return 0;
    for (const cJSON *c = j->child; c; c = c->next) {
        if (!cJSON_IsString(c)) continue;
        int r = fn(arg, c->valuestring);
        if (r) return r;
    }
    return 0;
}

/* Builds the strict text of t with piece `k` replaced by `elem` (k == SIZE_MAX: no replacement)
 * and passes it to fn. Returns fn's result, or 0 when a piece is not a string or number. */
static int interp_with(const rc_tpl *t, rc_tpl_ctx *ctx, size_t k, const cJSON *elem,
                       int (*fn)(void *, const char *), void *arg)
{
    struct tbuf b = {0};
    int ok = 1;
    for (size_t i = 0; ok && i < t->u.interp.n; i++) {
        const struct tpl_piece *pc = &t->u.interp.pieces[i];
        if (pc->lit) tb_put(&b, pc->lit, pc->lit_len);
        else if (i == k) ok = tb_put_tval(&b, (struct tval){TV_JSON, elem, NULL, 0}, 1) == 0;
        else ok = tb_put_tval(&b, resolve(&pc->lk, ctx), 1) == 0;
    }
    int r = 0;
    if (ok) {
        tb_put(&b, "", 0);
        b.p[b.len] = '\0';
        r = fn(arg, b.p);
    }
    rc_free(b.p);
    return r;
}

/* An interpolated string contributes its strict text; when one of its placeholders is an array,
 * one string per element instead (only the first array placeholder is expanded). */
static int each_interp_string(const rc_tpl *t, rc_tpl_ctx *ctx, int (*fn)(void *, const char *), void *arg)
{
    for (size_t k = 0; k < t->u.interp.n; k++) {
        const struct tpl_piece *pc = &t->u.interp.pieces[k];
        if (pc->lit) continue;
        struct tval v = resolve(&pc->lk, ctx);
        if (v.kind != TV_JSON || !cJSON_IsArray(v.j)) continue;
        for (const cJSON *e = v.j->child; e; e = e->next) {
            int r = interp_with(t, ctx, k, e, fn, arg);
            if (r) return r;
        }
        return 0;
    }
    return interp_with(t, ctx, SIZE_MAX, NULL, fn, arg);
}

int rc_tpl_each_string(const rc_tpl *t, rc_tpl_ctx *ctx, int (*fn)(void *arg, const char *s), void *arg)
{
    switch (t->kind) {
    case T_CONST: return each_json_string(t->u.constant, fn, arg);
    case T_LOOKUP: {
        struct tval v = resolve(&t->u.lk, ctx);
        if (v.kind == TV_STR) return fn(arg, v.s);
        if (v.kind == TV_JSON) return each_json_string(v.j, fn, arg);
        return 0;
    }
    case T_INTERP:
        return each_interp_string(t, ctx, fn, arg);
    case T_OBJECT:
        return 0;
    case T_ARRAY: {
        cJSON *j = rc_tpl_eval(t, ctx);
        int r = each_json_string(j, fn, arg);
        cJSON_Delete(j);
        return r;
    }
    }
    return 0;
}
