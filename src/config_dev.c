/*
 * config_dev.c: the development settings (file: dev.*, env ROOMCAST_DEV_PAGE and
 * ROOMCAST_DEV_CLIENT_BUNDLE; docs/config.md). Contract: include/roomcast/config_dev.h.
 *
 * What it does not do: serve the page (src/node_devpage.c) or read the bundle's bytes (the page
 * reads them per request; here only that the file can be opened).
 */
#include "roomcast/config_dev.h"

#include "roomcast/common.h"
#include "roomcast/errors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rc_dev_config_init(rc_dev_config *out)
{
    out->page = 0;
    out->client_bundle = NULL;
}

static void set_bundle(rc_dev_config *c, const char *path)
{
    rc_free(c->client_bundle);
    c->client_bundle = path ? rc_strdup(path) : NULL;
}

int rc_dev_config_parse(rc_dev_config *out, const cJSON *json, rc_config_errors *errs)
{
    static const char *const keys[] = {"page", "clientBundle", NULL};
    size_t before = errs ? errs->count : 0;
    if (!json || cJSON_IsNull(json)) return 0;
    if (!cJSON_IsObject(json)) {
        rc_config_error(errs, "dev", "must be an object like {\"page\":true}");
        return -1;
    }
    rc__config_check_keys(json, "dev", keys, errs);
    const cJSON *page = cJSON_GetObjectItemCaseSensitive(json, "page");
    if (page && !cJSON_IsNull(page)) {
        if (cJSON_IsBool(page)) out->page = cJSON_IsTrue(page);
        else rc_config_error(errs, "dev.page", "must be true or false");
    }
    const cJSON *bundle = cJSON_GetObjectItemCaseSensitive(json, "clientBundle");
    if (bundle && !cJSON_IsNull(bundle)) {
        if (cJSON_IsString(bundle) && bundle->valuestring[0]) set_bundle(out, bundle->valuestring);
        else rc_config_error(errs, "dev.clientBundle", "must be a non-empty path");
    }
    return errs && errs->count > before ? -1 : 0;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL; /* an empty variable is the same as an unset one */
}

int rc_dev_config_env(rc_dev_config *out, rc_config_errors *errs)
{
    size_t before = errs ? errs->count : 0;
    const char *v;
    if ((v = env("ROOMCAST_DEV_PAGE"))) {
        if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0) out->page = 1;
        else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0) out->page = 0;
        else rc_config_error(errs, "ROOMCAST_DEV_PAGE", "must be 1, true, 0 or false");
    }
    if ((v = env("ROOMCAST_DEV_CLIENT_BUNDLE"))) set_bundle(out, v);
    if (out->client_bundle) {
        if (!out->page) {
            rc_config_error(errs, "dev.clientBundle", "is served by the development page only: set "
                            "dev.page (ROOMCAST_DEV_PAGE=1) too, or leave it out");
        } else {
            FILE *f = fopen(out->client_bundle, "rb");
            if (!f) rc_config_error(errs, "dev.clientBundle", "cannot read %s: %s", out->client_bundle,
                                    strerror(errno));
            else fclose(f);
        }
    }
    return errs && errs->count > before ? -1 : 0;
}

void rc_dev_config_dispose(rc_dev_config *c)
{
    set_bundle(c, NULL);
}
