/*
 * rules_write_delay.c: a namespace's "writeDelay" (docs/config.md): how many milliseconds, 0 (the
 * default: off) to RC_WRITE_DELAY_MAX, a socket's broadcast frames of that namespace may wait so
 * that those arriving meanwhile leave in one write (the transport's write coalescing,
 * src/server_delay.c; measured in docs/performance.md "Write coalescing").
 *
 * What it does not do: apply the delay. The node copies it into sio's namespace settings
 * (src/node.c), sio marks that namespace's broadcast frames with it (src/sio_broadcast.c), and
 * the transport honours the mark. The limit is the transport's own (RC_WRITE_DELAY_MAX).
 *
 * API: rc__rules_write_delay_parse (src/rules_compile.c, once per namespace), then
 * rc_ns_rules_write_delay (include/roomcast/rules.h).
 */
#include "rules_compiled.h"

#include "roomcast/common.h"
#include "roomcast/errors.h"
#include "roomcast/server.h"

#include <cjson/cJSON.h>
#include <stdio.h>

void rc__rules_write_delay_parse(const cJSON *ns_json, const char *path, rc_ns_rules *ns,
                                 rc_config_errors *e)
{
    ns->write_delay_ms = 0;
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(ns_json, "writeDelay");
    if (!j || cJSON_IsNull(j)) return;
    double d = cJSON_IsNumber(j) ? j->valuedouble : -1;
    if (d < 0 || d > RC_WRITE_DELAY_MAX || d != (double)(int)d) {
        char p[300];
        snprintf(p, sizeof(p), "%s.writeDelay", path);
        rc_config_error(e, p, "must be an integer number of milliseconds, 0 (off) to %d", RC_WRITE_DELAY_MAX);
        return;
    }
    ns->write_delay_ms = (unsigned)d;
}

unsigned rc_ns_rules_write_delay(const rc_ns_rules *ns) { return ns ? ns->write_delay_ms : 0; }
