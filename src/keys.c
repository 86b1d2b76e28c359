/*
 * keys.c: the table of Redis key and channel names (contract: include/roomcast/keys.h). Each
 * name is the prefix, a fixed middle, and up to two parts joined by ':'.
 */
#include "roomcast/keys.h"
#include "roomcast/common.h"

#include <string.h>

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
    [RC_KEY_HISTORY] = {"history:", 1, ""},
    [RC_KEY_SESSION] = {"session:", 1, ""},
    [RC_KEY_ONCE] = {"once:", 2, ""},
    [RC_KEY_RECOVERIES] = {"recoveries:", 2, ""},
    [RC_KEY_QUEUE] = {"", 1, ":"},
    [RC_KEY_ADMIN] = {"admin", 0, ""},
};

/* Appends n bytes at *len, as far as they fit before cap - 1; *len counts every byte. */
static void key_put(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
    if (*len + 1 < cap) {
        size_t room = cap - 1 - *len;
        memcpy(out + *len, s, n < room ? n : room);
    }
    *len += n;
}

size_t rc_key_write(char *out, size_t cap, const char *prefix, int kind, const char *a, const char *b)
{
    if (kind < 0 || kind >= RC_KEY__COUNT) kind = RC_KEY_NOTIFY; /* unreachable: callers pass the enum */
    int parts = key_table[kind].parts;
    size_t len = 0;
    key_put(out, cap, &len, prefix, strlen(prefix));
    key_put(out, cap, &len, ":", 1);
    key_put(out, cap, &len, key_table[kind].middle, strlen(key_table[kind].middle));
    if (parts >= 1 && a) key_put(out, cap, &len, a, strlen(a));
    if (parts >= 2 && b) {
        key_put(out, cap, &len, ":", 1);
        key_put(out, cap, &len, b, strlen(b));
    }
    key_put(out, cap, &len, key_table[kind].suffix, strlen(key_table[kind].suffix));
    if (cap) out[len < cap ? len : cap - 1] = '\0';
    return len;
}

char *rc_key_new(const char *prefix, int kind, const char *a, const char *b)
{
    size_t n = rc_key_write(NULL, 0, prefix, kind, a, b);
    char *s = rc_malloc(n + 1);
    rc_key_write(s, n + 1, prefix, kind, a, b);
    return s;
}
