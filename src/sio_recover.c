/*
 * sio_recover.c: the Socket.IO side of connection state recovery (contract: include/roomcast/
 * sio.h, "Connection state recovery"; the design: docs/recovery.md). The node looks sessions and
 * history up in Redis; this file holds the CONNECT while it does, and keeps the wire order the
 * client relies on: the missed events, then the CONNECT reply with the old sid and the same pid
 * (socket.io-client sets socket.recovered when the reply's pid is the one it sent), then what
 * was broadcast to the socket while its replay was being read.
 *
 * A pending CONNECT (rc_sio_pending) is linked in its client; the client's close detaches it
 * (client = NULL), so the node may end it later whatever happened. Once adopted, the socket
 * exists (old sid, rooms joined, subscriptions asked) but its output is diverted into the
 * pending's held list by the fan-out (sio_broadcast.c), each entry with its offset: on done, a
 * kept emit already in the replay (offset <= the last replayed) is dropped, so every event
 * reaches the client exactly once, in the order of the history. What waits is bounded
 * (HELD_MAX bytes): past it the recovery ends as a fresh session, never with a hole.
 *
 * What it does not do: Redis, rules or presence (the node), or decide whether a session may be
 * recovered (the node checks the pid's user, the window and the history).
 *
 * Also here, small accessors recovery needs: rc_sio_socket_pid, rc_sio_room_size.
 */
#include "sio_internal.h"
#include "roomcast/common.h"
#include "roomcast/log.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

typedef struct held {
    rc_frame *frames[1 + RC_SIO_MAX_ATTACHMENTS];
    size_t nframes;
    int kept;                     /* it had an offset: ms-seq below */
    uint64_t ms, seq;
} held;

struct rc_sio_pending {
    rc_sio_pending *next;         /* in client->pendings */
    rc_sio_client *client;        /* NULL once the client closed */
    rc_sio_ns *ns;
    rc_auth_result ar;            /* the CONNECT's token: user, claims, exp (owned) */
    cJSON *auth;                  /* the auth payload without token, pid, offset (owned) */
    cJSON *payload;               /* the whole CONNECT payload, for on_connect (owned) */
    char pid[RC_SIO_PID_LEN + 1];
    rc_sio_socket *socket;        /* adopted, until done/refuse or its removal */
    rc_frame **replay;
    size_t nreplay, replay_cap, replay_bytes;
    held *held;
    size_t nheld, held_cap, held_bytes;
    int overflow;                 /* more than HELD_MAX waited: the recovery is refused */
};

/* What may wait for a socket being recovered (its replay is bounded by the node). */
#define HELD_MAX ((size_t)16 << 20)

/* "<ms>-<seq>" into two numbers; 0 when it is not one. */
static int offset_parse(const char *s, uint64_t *ms, uint64_t *seq)
{
    char *end;
    if (!s || *s < '0' || *s > '9') return 0;
    *ms = strtoull(s, &end, 10);
    if (*end != '-' || end[1] < '0' || end[1] > '9') return 0;
    *seq = strtoull(end + 1, &end, 10);
    return *end == '\0';
}

int rc_sio__recover_begin(rc_sio_client *c, rc_sio_ns *ns, const cJSON *payload, rc_auth_result *ar,
                          cJSON **auth)
{
    rc_sio_server *srv = c->srv;
    if (!ns->set.recovery) return 0;
    if (*auth) { /* the pid is a capability: rules never see it (nor a second copy of the key) */
        while (cJSON_GetObjectItemCaseSensitive(*auth, "pid")) cJSON_DeleteItemFromObjectCaseSensitive(*auth, "pid");
        while (cJSON_GetObjectItemCaseSensitive(*auth, "offset")) cJSON_DeleteItemFromObjectCaseSensitive(*auth, "offset");
    }
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(payload, "pid");
    const cJSON *offset = cJSON_GetObjectItemCaseSensitive(payload, "offset");
    if (!srv->hooks->recover || !cJSON_IsString(pid) || !cJSON_IsString(offset) ||
        strlen(pid->valuestring) != RC_SIO_PID_LEN)
        return 0;
    rc_sio_pending *p = rc_calloc(1, sizeof(*p));
    p->client = c;
    p->ns = ns;
    p->ar = *ar;
    memset(ar, 0, sizeof(*ar));
    p->auth = *auth;
    *auth = NULL;
    p->payload = cJSON_Duplicate(payload, 1);
    memcpy(p->pid, pid->valuestring, RC_SIO_PID_LEN + 1);
    p->next = c->pendings;
    c->pendings = p;
    srv->hooks->recover(srv->hooks->arg, p, ns->index, p->pid, offset->valuestring, p->ar.user_id);
    return 1;
}

int rc_sio__recover_pending(const rc_sio_client *c, const rc_sio_ns *ns)
{
    for (const rc_sio_pending *p = c->pendings; p; p = p->next)
        if (p->ns == ns) return 1;
    return 0;
}

void rc_sio__recover_client_closed(rc_sio_client *c)
{
    for (rc_sio_pending *p = c->pendings; p; p = p->next) {
        p->client = NULL;
        p->socket = NULL; /* removed with the client's other sockets */
    }
    c->pendings = NULL;
}

void rc_sio__recover_socket_free(rc_sio_socket *s)
{
    if (s->rec) s->rec->socket = NULL;
}

void rc_sio__recover_hold(rc_sio_socket *s, rc_frame *head, rc_frame **att, size_t att_count, const char *offset)
{
    rc_sio_pending *p = s->rec;
    if (p->overflow) return;
    size_t bytes = rc_frame_wire_len(head);
    for (size_t i = 0; i < att_count; i++) bytes += rc_frame_wire_len(att[i]);
    if (p->held_bytes + bytes > HELD_MAX) { /* the replay takes too long for this much traffic */
        p->overflow = 1;
        return;
    }
    p->held_bytes += bytes;
    if (p->nheld == p->held_cap) {
        p->held_cap = p->held_cap ? p->held_cap * 2 : 16;
        p->held = rc_realloc(p->held, p->held_cap * sizeof(*p->held));
    }
    held *h = &p->held[p->nheld++];
    memset(h, 0, sizeof(*h));
    h->frames[h->nframes++] = rc_frame_ref(head);
    for (size_t i = 0; i < att_count && i < RC_SIO_MAX_ATTACHMENTS; i++) h->frames[h->nframes++] = rc_frame_ref(att[i]);
    h->kept = offset_parse(offset, &h->ms, &h->seq);
}

int rc_sio_recover_alive(const rc_sio_pending *p) { return p->client != NULL && !p->overflow; }
const char *rc_sio_recover_claims(const rc_sio_pending *p) { return p->ar.claims_json; }

static char *dup_or_null(const char *s) { return s ? rc_strdup(s) : NULL; }

int rc_sio_recover_adopt(rc_sio_pending *p, const char *sid, const char *const *rooms, size_t count)
{
    rc_sio_client *c = p->client;
    if (!c || p->socket || strlen(sid) != RC_SIO_SOCKET_ID_LEN) return -1;
    rc_hmap_node *h = rc_hmap_find(&p->ns->sockets, sid, RC_SIO_SOCKET_ID_LEN);
    if (h) {
        /* The same session, still here on a connection the client has given up (half-open):
         * the pid's holder is the client, so the old socket goes. */
        rc_sio_socket *old = RC_CONTAINER_OF(h, rc_sio_socket, node);
        if (old->dead || old->rec || old->client->busy) return -1;
        p->ns->srv->gone = "transport close"; /* its connection was given up: the session lives on */
        rc_sio__socket_remove(old);
    }
    rc_auth_result ar = {dup_or_null(p->ar.user_id), dup_or_null(p->ar.claims_json), p->ar.exp};
    rc_sio_socket *s = rc_sio__socket_create(c, p->ns, &ar, p->auth ? cJSON_Duplicate(p->auth, 1) : NULL,
                                             sid, p->pid);
    s->rec = p;
    p->socket = s;
    for (size_t i = 0; i < count; i++)
        if (rc_sio_join(s, rooms[i]) < 0) return -1; /* a room budget refused it: not the same session */
    return p->socket ? 0 : -1;
}

/* '[a,b]' + offset -> '[a,b,"offset"]' (heap, *out_len). */
char *rc_sio__args_with_offset(const char *args, size_t len, const char *offset, size_t *out_len)
{
    if (!args || len < 2) { args = "[]"; len = 2; }
    size_t end = len - 1; /* the closing ']' */
    while (end > 0 && args[end] != ']') end--;
    size_t inner = end;
    while (inner > 1 && (args[inner - 1] == ' ' || args[inner - 1] == '\n')) inner--;
    int empty = inner <= 1;
    size_t olen = strlen(offset);
    char *out = rc_malloc(inner + olen + 5);
    size_t n = 0;
    memcpy(out, args, inner);
    n = inner;
    if (!empty) out[n++] = ',';
    out[n++] = '"';
    memcpy(out + n, offset, olen);
    n += olen;
    out[n++] = '"';
    out[n++] = ']';
    out[n] = '\0';
    *out_len = n;
    return out;
}

size_t rc_sio_recover_add(rc_sio_pending *p, const char *event, const char *args_json, size_t args_len,
                          const char *offset)
{
    size_t len;
    char *args = rc_sio__args_with_offset(args_json, args_len, offset, &len);
    rc_frame *f = rc_sio__encode_packet(RC_SIO_EVENT, p->ns->set.name, -1, 0, event, args, len);
    rc_free(args);
    if (p->nreplay == p->replay_cap) {
        p->replay_cap = p->replay_cap ? p->replay_cap * 2 : 64;
        p->replay = rc_realloc(p->replay, p->replay_cap * sizeof(*p->replay));
    }
    p->replay[p->nreplay++] = f;
    p->replay_bytes += rc_frame_wire_len(f);
    return p->replay_bytes;
}

static void pending_free(rc_sio_pending *p)
{
    if (p->client) {
        for (rc_sio_pending **pp = &p->client->pendings; *pp; pp = &(*pp)->next) {
            if (*pp == p) { *pp = p->next; break; }
        }
    }
    if (p->socket) p->socket->rec = NULL;
    for (size_t i = 0; i < p->nreplay; i++) rc_frame_unref(p->replay[i]);
    rc_free(p->replay);
    for (size_t i = 0; i < p->nheld; i++)
        for (size_t k = 0; k < p->held[i].nframes; k++) rc_frame_unref(p->held[i].frames[k]);
    rc_free(p->held);
    rc_auth_result_dispose(&p->ar);
    cJSON_Delete(p->auth);
    cJSON_Delete(p->payload);
    rc_free(p);
}

/* The CONNECT answered as a fresh one (new sid and pid), as if no recovery had been asked. */
static void connect_fresh(rc_sio_pending *p)
{
    rc_sio_server *srv = p->ns->srv;
    rc_sio_socket *s = rc_sio__socket_create(p->client, p->ns, &p->ar, p->auth, NULL, NULL);
    p->auth = NULL;
    rc_sio__connect_reply(s);
    if (srv->hooks->on_connect) srv->hooks->on_connect(srv->hooks->arg, s, p->payload);
}

void rc_sio_recover_refuse(rc_sio_pending *p)
{
    if (p->client) {
        if (p->socket) {
            rc_sio_socket *s = p->socket;
            s->rec = NULL;
            p->socket = NULL;
            rc_sio__socket_remove(s);
        }
        connect_fresh(p);
    }
    pending_free(p);
}

void rc_sio_recover_done(rc_sio_pending *p, const char *last_offset)
{
    rc_sio_client *c = p->client;
    rc_sio_socket *s = p->socket;
    if (p->overflow) { /* what waited was dropped: not the same session any more */
        rc_log_info("recovery_refused", "reason=held_overflow");
        rc_sio_recover_refuse(p);
        return;
    }
    if (!c || !s) {
        if (c) connect_fresh(p); /* the adopted socket was removed meanwhile */
        pending_free(p);
        return;
    }
    rc_sio_server *srv = p->ns->srv;
    for (size_t i = 0; i < p->nreplay; i++) rc_eio_send_frame(c->eio, p->replay[i]);
    s->ns->messages_out += p->nreplay;
    rc_sio__connect_reply(s);
    uint64_t lms = 0, lseq = 0;
    int have_last = offset_parse(last_offset, &lms, &lseq);
    for (size_t i = 0; i < p->nheld; i++) {
        const held *h = &p->held[i];
        if (h->kept && have_last && (h->ms < lms || (h->ms == lms && h->seq <= lseq))) continue;
        for (size_t k = 0; k < h->nframes; k++) rc_eio_send_frame(c->eio, h->frames[k]);
        s->ns->messages_out++;
    }
    s->rec = NULL;
    p->socket = NULL;
    cJSON *payload = p->payload;
    p->payload = NULL;
    pending_free(p);
    if (srv->hooks->on_connect) srv->hooks->on_connect(srv->hooks->arg, s, payload);
    cJSON_Delete(payload);
}

const char *rc_sio_socket_pid(const rc_sio_socket *s) { return s->pid; }

size_t rc_sio_room_size(const rc_sio_server *srv, const char *ns, const char *room)
{
    rc_sio_ns *n = rc_sio__find_ns(srv, ns, strlen(ns));
    rc_room *r = n && room ? rc_rooms_find(n->rooms, room) : NULL;
    return r ? rc_room_size(r) : 0;
}
