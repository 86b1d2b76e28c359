/*
 * keys.h: the name of every Redis key and channel roomcast uses, built in one place. docs/redis.md
 * lists them with their payloads; a new format (sharded channels, Socket.IO's own channels) changes
 * this file and the places that must know it, not four files that each spell names their own way.
 *
 * P is the key prefix (ROOMCAST_PREFIX, "roomcast"); BullMQ's keys use BullMQ's own prefix
 * ("bull") and are named here too, so that a reader finds every name in one table.
 *
 * What this module does not do: the presence scripts (src/presence_lua.h) build some of the same
 * names inside Lua from the prefix (P:status:<user>, P:visibility:<node>, P:members:<ns>:<room>),
 * since a script must derive them from its arguments; the table below is kept in step with them.
 * Names are built from what the caller gives: checking that a user-derived part is safe to put in
 * a key or a channel is the caller's job. Glob characters are not special in any name built here:
 * channels are subscribed and published by their literal name (SUBSCRIBE, PUBLISH), and the only
 * pattern subscription, rc_redis_pattern_open (redis_cmd.h), escapes the prefix it is given.
 *
 * Ownership: rc_key_new returns a heap string the caller frees (rc_free); rc_key_write writes into
 * the caller's buffer. Neither keeps anything.
 */
#ifndef ROOMCAST_KEYS_H
#define ROOMCAST_KEYS_H

#include <stddef.h>

enum rc_key_kind {
    /* pub/sub channels */
    RC_KEY_ROOM = 0,        /* P:room:<ns>:<room>      a = ns, b = room: emits to a room */
    RC_KEY_NS,              /* P:ns:<ns>               a = ns: emits to a whole namespace */
    RC_KEY_NOTIFY,          /* P:notify                notifications with offline fallback */
    RC_KEY_STATUS,          /* P:status:<user>         a = user ("" for the prefix of all) */
    RC_KEY_CANARY,          /* P:canary:<node>         a = node id: the sub connection's probe */
    RC_KEY_VISIBILITY,      /* P:visibility:<node>     a = node id: invisibility notes */
    /* keys */
    RC_KEY_PRESENCE,        /* P:presence:<user>       set of "<node>:<sid>" */
    RC_KEY_MEMBERS,         /* P:members:<ns>:<room>   hash user -> connections in the room */
    RC_KEY_NODES,           /* P:nodes                 zset node -> last heartbeat */
    RC_KEY_SWEEPING,        /* P:sweeping              nodes being swept */
    RC_KEY_INVISIBLE,       /* P:invisible             set of invisible users */
    RC_KEY_NODE_CONNS,      /* P:node:<node>:conns     a = node id: its connections */
    RC_KEY_NODE_MEMBERS,    /* P:node:<node>:members   a = node id: its tracked memberships */
    RC_KEY_EVENTS,          /* P:events                stream of forwarded client events */
    RC_KEY_HISTORY,         /* P:history:<ns>          a = ns: stream of kept emits (recovery) */
    RC_KEY_SESSION,         /* P:session:<pid>         a = pid: a recoverable socket's session */
    RC_KEY_ONCE,            /* P:once:<ns>:<id>        a = ns, b = id: a notification kept once */
    RC_KEY_RECOVERIES,      /* P:recoveries:<ns>:<who> a = ns, b = "u:<user>" or "p:<pid>":
                                                       recoveries counted this minute (recovery) */
    RC_KEY_QUEUE,           /* <bull>:<queue>:         a = queue: prefix of a BullMQ queue's keys
                                                       (the prefix argument is BullMQ's) */
    RC_KEY_ADMIN,           /* P:admin                 the Admin UI's statistics, socket and room
                                                       events and operations (src/admin.c) */
    RC_KEY__COUNT
};

/* Writes the name into out (NUL-terminated when cap > 0, truncated to fit) and returns its
 * length, as snprintf does: a result >= cap means out was too small. a and b as the table says;
 * unused ones may be NULL. Parts left NULL at the end give the start every such name shares, for
 * matching: (RC_KEY_ROOM, "", NULL) is "P:room:", (RC_KEY_STATUS, "", NULL) is "P:status:". */
size_t rc_key_write(char *out, size_t cap, const char *prefix, int kind, const char *a, const char *b);
/* The same name as a new heap string. */
char *rc_key_new(const char *prefix, int kind, const char *a, const char *b);

#endif
