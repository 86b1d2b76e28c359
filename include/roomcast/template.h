/*
 * template.h: the value templates of the rules language (docs/config.md, "Templates").
 *
 * A template is any JSON value. It is compiled once (rc_tpl_compile) into a small tree whose
 * strings are already split into literal pieces and path lookups ({data.room|data}); evaluation
 * never re-parses text. A string that is exactly one {path} keeps the JSON type of what it finds;
 * any other string interpolates text.
 *
 * Evaluation reads an rc_tpl_ctx: borrowed views of one event (args, auth, names) plus lazily
 * built values: the token claims are parsed from claims_json on the first lookup under `claims`,
 * and the clock is read once, on the first `{now}`/`{nowIso}`. rc_tpl_ctx_dispose frees what
 * was built. A compiled template is immutable and may be evaluated from many contexts.
 *
 * Missing values behave like JavaScript's undefined under JSON.stringify: omitted from objects,
 * null inside arrays, NULL (the caller decides) at the top; the empty string in text.
 */
#ifndef ROOMCAST_TEMPLATE_H
#define ROOMCAST_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>
#include "roomcast/errors.h"

struct cJSON;

typedef struct rc_tpl rc_tpl;

/* Longest room or event name a template may produce (bytes). */
#define RC_TPL_NAME_MAX 200

typedef struct rc_tpl_ctx {
    const struct cJSON *args;  /* array of the event's arguments; `data` is args[0] */
    const struct cJSON *auth;  /* CONNECT auth object */
    const struct cJSON *verified; /* {"user", "claims"} of the rule's last `verify`, NULL before */
    const char *event, *ns, *sid, *user;
    const char *room;          /* set by the rules runner as actions run */
    const char *error;
    const char *claims_json;   /* parsed on first use */
    /* Set while a template builds glob patterns (allow lists): a value the client chose (args,
     * data, auth, event, room) that holds a glob character ('*', '?') is treated as missing, so a
     * client can never widen what an allow list matches. Claims and names from the token or the
     * config keep their globs. */
    int globs_from_trusted_only;
    /* lazily built; all-zero is the initial state */
    struct cJSON *claims_;
    int claims_parsed_;
    uint64_t now_ms_;          /* 0 until read */
    char now_iso_[32];
} rc_tpl_ctx;

/* Frees the claims parsed during evaluation. The ctx may be reused after this. */
void rc_tpl_ctx_dispose(rc_tpl_ctx *ctx);

/* Compiles a JSON value (borrowed; not kept). NULL with an error "<path>: ..." in errs on a bad
 * placeholder. errs may be NULL. */
rc_tpl *rc_tpl_compile(const struct cJSON *json, const char *path, rc_config_errors *errs);
void rc_tpl_free(rc_tpl *t);

/* The text of a template that contains no placeholder and is a JSON string, else NULL. */
const char *rc_tpl_const_string(const rc_tpl *t);
/* 1 if the template is a string that is exactly one {path}: its JSON type is known only when it
 * is evaluated. */
int rc_tpl_is_lookup(const rc_tpl *t);
/* 1 if some placeholder of the template reads under `root` ("claims", "user", ...). */
int rc_tpl_reads(const rc_tpl *t, const char *root);
/* Non-zero if some placeholder reads a root that is not in `allowed` (NULL-terminated). */
unsigned rc_tpl_roots_other_than(const rc_tpl *t, const char *const *allowed);

/* Typed evaluation: a new cJSON value owned by the caller, or NULL when the value is missing. */
struct cJSON *rc_tpl_eval(const rc_tpl *t, rc_tpl_ctx *ctx);

/* Truthiness: present and not false, null, "" or 0. */
int rc_tpl_truthy(const rc_tpl *t, rc_tpl_ctx *ctx);

/* Text evaluation (missing pieces are ""; strings as they are, other values compact JSON).
 * Returns the text; it is either owned by the template or *heap (which the caller frees). */
const char *rc_tpl_text(const rc_tpl *t, rc_tpl_ctx *ctx, char **heap);

/* Strict name evaluation for rooms and event names: the whole-string form must find a string;
 * each interpolated piece must find a string or an id number (rc_tpl_id_number). Writes the NUL-terminated result into
 * buf (RC_TPL_NAME_MAX + 1 bytes) and returns its length, or -1 when a piece is missing or of the
 * wrong type, the result is empty, or longer than RC_TPL_NAME_MAX. */
int rc_tpl_name(const rc_tpl *t, rc_tpl_ctx *ctx, char buf[RC_TPL_NAME_MAX + 1]);

/* Calls fn for each string the value contributes (used for allow globs): a string, or each
 * string element of an array. An interpolated string contributes its text only if every
 * placeholder finds a string or an id number (rc_tpl_id_number); if one of them finds an array, the string is
 * contributed once per element ("p_{claims.projects}" with ["1","2"] gives "p_1", "p_2").
 * Stops and returns the first non-zero fn result; 0 otherwise. */
/* The one rule for a JSON number that becomes text in an id or a name (a room, a user id, a
 * message id): JSON numbers reach us as doubles (cJSON keeps no source text), so only an integer
 * of magnitude at most 2^53 - 1 (JavaScript's Number.isSafeInteger) is written, as its exact
 * decimal digits, into out. Anything else is refused (-1), never rounded: 41.6 does not become
 * "42", 9007199254740993 (read as 2^53) does not become another user's "9007199254740992", and
 * two 19-digit ids never share "1.2345678901234568e+18". Send such ids as strings. */
int rc_tpl_id_number(double d, char out[24]);

int rc_tpl_each_string(const rc_tpl *t, rc_tpl_ctx *ctx, int (*fn)(void *arg, const char *s),
                       void *arg);

#endif
