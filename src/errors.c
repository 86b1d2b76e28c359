/*
 * errors.c: the collector of configuration problems and the key checks of config objects.
 * Contract: include/roomcast/errors.h.
 */
#include "roomcast/errors.h"
#include "roomcast/common.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void rc_config_error(rc_config_errors *errs, const char *path, const char *fmt, ...)
{
    if (!errs) return;
    size_t prefix = path && *path ? strlen(path) + 2 : 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    char *item = rc_malloc(prefix + (size_t)n + 1);
    if (prefix) {
        memcpy(item, path, prefix - 2);
        memcpy(item + prefix - 2, ": ", 2);
    }
    item[prefix] = '\0';
    va_start(ap, fmt);
    vsnprintf(item + prefix, (size_t)n + 1, fmt, ap);
    va_end(ap);
    errs->items = rc_realloc(errs->items, (errs->count + 1) * sizeof(*errs->items));
    errs->items[errs->count++] = item;
}

void rc_config_errors_dispose(rc_config_errors *errs)
{
    if (!errs) return;
    for (size_t i = 0; i < errs->count; i++) rc_free(errs->items[i]);
    rc_free(errs->items);
    errs->items = NULL;
    errs->count = 0;
}

int rc__config_is_comment(const cJSON *item)
{
    return item->string && strcmp(item->string, "$comment") == 0;
}

void rc__config_check_keys(const cJSON *obj, const char *path, const char *const *allowed,
                           rc_config_errors *errs)
{
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (rc__config_is_comment(c)) continue;
        const cJSON *d = obj->child;
        while (d != c && strcmp(d->string, c->string) != 0) d = d->next;
        int unknown = 0;
        if (allowed) {
            const char *const *a;
            for (a = allowed; *a && strcmp(*a, c->string) != 0; a++) {}
            unknown = !*a;
        }
        if (d == c && !unknown) continue;
        size_t n = strlen(path) + strlen(c->string) + 2;
        char *p = rc_malloc(n);
        snprintf(p, n, "%s%s%s", path, *path ? "." : "", c->string);
        rc_config_error(errs, p, d != c ? "duplicate key" : "unknown key");
        rc_free(p);
    }
}
