/*
 * server_config.c: the transport's settings (file: transport.*, env ROOMCAST_SEND_PATH;
 * docs/config.md): defaults, names, and the parser config.c calls for the "transport" object.
 * Contract: include/roomcast/server_config.h.
 *
 * What it does not do: apply them (rc_server_set_send_path in server_uring.c does), or read
 * anything but that one object.
 */
#include "roomcast/server_config.h"
#include "roomcast/errors.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

void rc_server_config_default(rc_server_config *out) { out->send_path = RC_SEND_PATH_AUTO; }

int rc_server_send_path_parse(const char *s, int *out)
{
    if (strcmp(s, "auto") == 0) *out = RC_SEND_PATH_AUTO;
    else if (strcmp(s, "writev") == 0) *out = RC_SEND_PATH_WRITEV;
    else if (strcmp(s, "io_uring") == 0) *out = RC_SEND_PATH_IO_URING;
    else return -1;
    return 0;
}

const char *rc_server_send_path_name(int path)
{
    return path == RC_SEND_PATH_WRITEV ? "writev" : path == RC_SEND_PATH_IO_URING ? "io_uring" : "auto";
}

int rc_server_config_parse(rc_server_config *out, const cJSON *json, const char *path,
                           rc_config_errors *errs)
{
    static const char *const keys[] = {"sendPath", NULL};
    size_t before = errs ? errs->count : 0;
    if (!path) path = "";
    if (!json || cJSON_IsNull(json)) return 0;
    if (!cJSON_IsObject(json)) {
        rc_config_error(errs, path, "must be an object like {\"sendPath\":\"auto\"}");
        return -1;
    }
    rc__config_check_keys(json, path, keys, errs);
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(json, "sendPath");
    if (j && !cJSON_IsNull(j)) {
        char p[256];
        snprintf(p, sizeof(p), "%s%ssendPath", path, path[0] ? "." : "");
        if (!cJSON_IsString(j) || rc_server_send_path_parse(j->valuestring, &out->send_path) != 0)
            rc_config_error(errs, p, "must be \"auto\", \"io_uring\" or \"writev\"");
    }
    return errs && errs->count > before ? -1 : 0;
}
