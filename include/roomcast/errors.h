/*
 * errors.h: the collector of configuration problems, and the two checks every JSON object of the
 * config gets. It sits at the bottom of the layers so that each module that parses its own part of
 * the config (template, rules, presence, jobs, config) reports into one list without including
 * config.h, which sits above them all.
 *
 * A problem is one heap string "<path>: <message>", the path being the field's place in the JSON
 * file ("engine.pingInterval", "namespaces./chat.events.join[0].if"). `--check-config` prints them
 * one a line.
 *
 * Ownership: the collector owns its strings; rc_config_errors_dispose frees them and leaves the
 * collector empty (all-zero), ready for reuse. An all-zero collector is empty.
 */
#ifndef ROOMCAST_ERRORS_H
#define ROOMCAST_ERRORS_H

#include <stddef.h>

struct cJSON;

typedef struct rc_config_errors {
    char **items;
    size_t count;
} rc_config_errors;

/* Appends "<path>: <formatted message>" (just the message when path is NULL or ""). errs may be
 * NULL: the problem is then dropped (callers that only want success or failure). */
void rc_config_error(rc_config_errors *errs, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rc_config_errors_dispose(rc_config_errors *errs);

/* A key named "$comment" is ignored in every object of the config outside templates. */
int rc__config_is_comment(const struct cJSON *item);
/* Reports "<path>.<key>: duplicate key" for a key given twice and, when allowed (a NULL-terminated
 * list) is given, "<path>.<key>: unknown key" for any key not in it. */
void rc__config_check_keys(const struct cJSON *obj, const char *path, const char *const *allowed,
                           rc_config_errors *errs);

#endif
