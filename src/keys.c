/*
 * keys.c: the table of Redis key and channel names (contract: include/roomcast/keys.h). Each
 * name is the prefix, a fixed middle, and up to two parts joined by ':'.
 */
#include "roomcast/keys.h"
#include "roomcast/common.h"

#include <stdio.h>

/* What follows "<prefix>:" for each kind, and how many caller parts come after it. */
static const struct {
    const char *middle;
    int parts;
    const char *suffix;
} key_table[RC_KEY__COUNT] = {
    [RC_KEY_ROOM] = {"room:", 2, ""},
    [RC_KEY_NS] = {"ns:", 1, ""},
    [RC_KEY_NOTIFY] = {"notify", 0, ""},
    [RC_KEY_STATUS] = {"status:", 1, ""},
    [RC_KEY_CANARY] = {"canary:", 1, ""},
    [RC_KEY_VISIBILITY] = {"visibility:", 1, ""},
    [RC_KEY_PRESENCE] = {"presence:", 1, ""},
    [RC_KEY_MEMBERS] = {"members:", 2, ""},
    [RC_KEY_NODES] = {"nodes", 0, ""},
    [RC_KEY_SWEEPING] = {"sweeping", 0, ""},
    [RC_KEY_INVISIBLE] = {"invisible", 0, ""},
    [RC_KEY_NODE_CONNS] = {"node:", 1, ":conns"},
    [RC_KEY_NODE_MEMBERS] = {"node:", 1, ":members"},
    [RC_KEY_EVENTS] = {"events", 0, ""},
    [RC_KEY_QUEUE] = {"", 1, ":"},
};

size_t rc_key_write(char *out, size_t cap, const char *prefix, int kind, const char *a, const char *b)
{
    if (kind < 0 || kind >= RC_KEY__COUNT) kind = RC_KEY_NOTIFY; /* unreachable: callers pass the enum */
    int parts = key_table[kind].parts;
    int n = snprintf(out, cap, "%s:%s%s%s%s%s", prefix, key_table[kind].middle, parts >= 1 && a ? a : "",
                     parts >= 2 ? ":" : "", parts >= 2 && b ? b : "", key_table[kind].suffix);
    return n < 0 ? 0 : (size_t)n;
}

char *rc_key_new(const char *prefix, int kind, const char *a, const char *b)
{
    size_t n = rc_key_write(NULL, 0, prefix, kind, a, b);
    char *s = rc_malloc(n + 1);
    rc_key_write(s, n + 1, prefix, kind, a, b);
    return s;
}
