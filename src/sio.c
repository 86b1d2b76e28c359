/*
 * sio.c: Socket.IO v5 sessions and sockets (see include/roomcast/sio.h; the structures are in
 * src/sio_internal.h, the local fan-out in src/sio_broadcast.c, rate limits in src/sio_rate.c).
 *
 * Inbound: eio MESSAGE -> rc_sio_decode -> CONNECT (rateLimit after the first, auth, socket
 * creation, user room, reply, on_connect hook) / EVENT (rateLimit, on_event hook) / ACK (on_ack
 * hook) / DISCONNECT. A binary packet waits in the client for its attachments, which must follow
 * it directly; its text and attachments together may not pass max_packet_bytes (maxPayload),
 * checked as each arrives, so what a session holds of a partial packet is bounded too. Any
 * protocol error closes the whole Engine.IO session, as the reference server does.
 *
 * Rooms: rc_sio_join checks the socket's own limit, then the node's budget (max_rooms: rooms with
 * local members, max_memberships: socket-room pairs, every namespace together, summed from the
 * room indexes at each join). The user room joined at CONNECT counts but is never refused: it is
 * one per socket, bounded by the sessions, and a socket without it would miss what is sent to its
 * user.
 *
 * Outbound: unicast packets are encoded into a fresh frame; broadcasts encode once and share.
 *
 * What it does not do: read the configuration or the rules. Namespaces, limits and JWT come from
 * the rc_sio_settings the node filled; the user room, events' own rateLimits and the event a
 * refused CONNECT gets instead of CONNECT_ERROR (connect_refuse) come from hooks.
 *
 * Deferred free: a socket removed while a hook runs on it is unlinked at once and freed when the
 * hook returns (client->busy / socket->dead), so a rule that disconnects its own socket is safe.
 *
 * Holds: rc_sio_hold_new holds the client's Engine.IO output (rc_eio_hold) and links the hold in
 * the client; the client's close detaches its holds, so a release that comes later (the
 * backplane confirms a subscription after the client left, or after the server is freed) only
 * frees the hold.
 *
 * Token expiry: a socket whose token has `exp` is queued, by the wall-clock second its token stops
 * being accepted (rc_auth_expires_at), in one min-heap per server (deadline.h; the socket
 * embeds a 4-byte link, and sockets without exp are never queued). One libevent timer, created
 * on first use, is armed for the earliest deadline (at most a minute ahead, so a step of the wall
 * clock is noticed). When it fires it pops what is due, at most EXPIRY_BATCH per loop turn, and
 * ends each socket through an ordinary path: "reconnect" closes the Engine.IO session (the
 * client's on_close then removes every socket, as for a ping timeout); "disconnect" sends the
 * namespace DISCONNECT and removes the socket (as for a rule's disconnect). socket_remove is the
 * one place a queued socket leaves the heap otherwise, so a closed socket is never fired.
 */
#include "sio_internal.h"
#include "roomcast/auth.h"
#include "roomcast/common.h"
#include "roomcast/http.h"
#include "roomcast/log.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#define MAX_PENDING_ACKS 64
#define MAX_TOKEN_LEN 8192
#define EXPIRY_BATCH 512           /* sockets ended per timer callback; the rest on the next turn */
#define EXPIRY_MAX_WAIT_MS 60000   /* the timer looks at the wall clock at least this often */
/* Arguments of the token-expired event: the code a CONNECT with that token would now be refused with. */
static const char expired_event_args[] = "[{\"code\":\"expired\"}]";

/* ---- JSON helpers ------------------------------------------------------------------------- */

size_t rc_json_quote(char *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': *o++ = '\\'; *o++ = '"'; break;
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        case '\n': *o++ = '\\'; *o++ = 'n'; break;
        case '\r': *o++ = '\\'; *o++ = 'r'; break;
        case '\t': *o++ = '\\'; *o++ = 't'; break;
        default:
            if (*p < 0x20) {
                *o++ = '\\'; *o++ = 'u'; *o++ = '0'; *o++ = '0';
                *o++ = hex[*p >> 4]; *o++ = hex[*p & 15];
            } else {
                *o++ = (char)*p;
            }
        }
    }
    *o++ = '"';
    return (size_t)(o - out);
}

rc_frame *rc_sio__encode_packet(int type, const char *nsp, long long id, int attachments,
                                const char *event, const char *args_json, size_t args_len)
{
    /* the inner part of the args array, trimmed */
    const char *inner = "";
    size_t inner_len = 0;
    if (args_json && args_len >= 2) {
        inner = args_json + 1;
        inner_len = args_len - 2;
        while (inner_len && (inner[0] == ' ' || inner[0] == '\n')) { inner++; inner_len--; }
    }
    size_t nsp_len = nsp ? strlen(nsp) : 0;
    size_t ev_len = event ? strlen(event) : 0;
    size_t cap = 1 + RC_SIO_HEADER_MAX + nsp_len + 2 + 6 * ev_len + 3 + 1 + inner_len + 1;
    char *buf = rc_malloc(cap);
    size_t n = 0;
    buf[n++] = '4';
    n += rc_sio_encode_header(buf + n, type, nsp, id, attachments);
    buf[n++] = '[';
    if (event) n += rc_json_quote(buf + n, event);
    if (inner_len) {
        if (event) buf[n++] = ',';
        memcpy(buf + n, inner, inner_len);
        n += inner_len;
    }
    buf[n++] = ']';
    rc_frame *f = rc_frame_from(RC_WS_OP_TEXT, buf, n);
    rc_free(buf);
    return f;
}

static void send_text(rc_sio_client *c, const char *text, size_t len)
{
    rc_eio_send_message(c->eio, 0, text, len);
}

/* ---- namespaces and sockets --------------------------------------------------------------- */

rc_sio_ns *rc_sio__find_ns(const rc_sio_server *srv, const char *name, size_t len)
{
    for (size_t i = 0; i < srv->ns_count; i++) {
        if (strlen(srv->ns[i].set.name) == len && memcmp(srv->ns[i].set.name, name, len) == 0)
            return &srv->ns[i];
    }
    return NULL;
}

static rc_sio_socket *client_socket(rc_sio_client *c, const rc_sio_ns *ns)
{
    for (rc_sio_socket *s = c->sockets; s; s = s->next)
        if (s->ns == ns) return s;
    return NULL;
}

static void socket_free(rc_sio_socket *s)
{
    for (uint16_t i = 0; i < s->ack_count; i++) rc_free(s->acks[i].event);
    rc_free(s->acks);
    rc_free(s->user);
    rc_free(s->claims_json);
    cJSON_Delete(s->auth);
    rc_sio__recover_socket_free(s);
    rc_free(s);
}

/* Unlinks the socket from everything; frees it now or when the client's hook returns. */
void rc_sio__socket_remove(rc_sio_socket *s)
{
    rc_sio_client *c = s->client;
    rc_sio_ns *ns = s->ns;
    if (ns->srv->hooks->on_disconnect) ns->srv->hooks->on_disconnect(ns->srv->hooks->arg, s);
    rc_rooms_leave_all(ns->rooms, &s->member);
    rc_deadline_remove(&ns->srv->expiries, &s->expiry);
    rc_hmap_remove(&ns->sockets, &s->node);
    ns->srv->socket_count--;
    for (rc_sio_socket **pp = &c->sockets; *pp; pp = &(*pp)->next) {
        if (*pp == s) { *pp = s->next; break; }
    }
    if (c->busy) {
        s->dead = 1;
        s->next = c->dead;
        c->dead = s;
    } else {
        socket_free(s);
    }
}

static void client_unbusy(rc_sio_client *c)
{
    if (--c->busy > 0) return;
    while (c->dead) {
        rc_sio_socket *s = c->dead;
        c->dead = s->next;
        socket_free(s);
    }
}

const char *rc_sio_socket_id(const rc_sio_socket *s) { return s->sid; }
const char *rc_sio_socket_user(const rc_sio_socket *s) { return s->user; }
const char *rc_sio_socket_claims(const rc_sio_socket *s) { return s->claims_json; }
const cJSON *rc_sio_socket_auth(const rc_sio_socket *s) { return s->auth; }
const char *rc_sio_socket_ns(const rc_sio_socket *s) { return s->ns->set.name; }
int rc_sio_socket_ns_index(const rc_sio_socket *s) { return s->ns->index; }

rc_sio_socket *rc_sio_find_socket(rc_sio_server *srv, int ns_index, const char *sid)
{
    if (ns_index < 0 || (size_t)ns_index >= srv->ns_count) return NULL;
    rc_hmap_node *h = rc_hmap_find(&srv->ns[ns_index].sockets, sid, strlen(sid));
    rc_sio_socket *s = h ? RC_CONTAINER_OF(h, rc_sio_socket, node) : NULL;
    return s && !s->dead ? s : NULL;
}

/* Which limit refused a join (srv->joins_refused, roomcast_joins_refused_total). */
enum { REFUSED_ROOMS, REFUSED_MEMBERSHIPS, REFUSED_PER_SOCKET };

/* The node's room budget: -1 if a join that adds a membership (and opens a room: opens) fits,
 * else the limit it breaks. The totals are summed over the namespaces (at most 32) per join. */
static int room_budget(const rc_sio_server *srv, int opens)
{
    size_t rooms = 0, memberships = 0;
    for (size_t i = 0; i < srv->ns_count; i++) {
        rooms += rc_rooms_count(srv->ns[i].rooms);
        memberships += rc_rooms_membership_count(srv->ns[i].rooms);
    }
    if (srv->set.max_memberships && memberships >= srv->set.max_memberships) return REFUSED_MEMBERSHIPS;
    if (opens && srv->set.max_rooms && rooms >= srv->set.max_rooms) return REFUSED_ROOMS;
    return -1;
}

/* A join; `exempt` (the user room at CONNECT) is not refused by the node's budget, though it
 * counts in it. */
static int socket_join(rc_sio_socket *s, const char *room, int exempt)
{
    if (s->dead) return 0;
    rc_sio_server *srv = s->ns->srv;
    int max = srv->set.max_rooms_per_socket;
    if (max > 0 && s->member.count >= (unsigned)max && !rc_rooms_is_member(s->ns->rooms, &s->member, room)) {
        srv->joins_refused[REFUSED_PER_SOCKET]++;
        return RC_SIO_JOIN_TOO_MANY;
    }
    /* The room index fires no open callback (see rc_sio_server_new): the open is told here,
     * with the socket whose join opened the room, before anything else this join causes. */
    int opens = rc_rooms_find(s->ns->rooms, room) == NULL;
    if (!exempt && (srv->set.max_rooms || srv->set.max_memberships) &&
        (opens || !rc_rooms_is_member(s->ns->rooms, &s->member, room))) {
        int over = room_budget(srv, opens);
        if (over >= 0) {
            srv->joins_refused[over]++;
            rc_log_debug("join_refused", "ns=%s sid=%s limit=%s", s->ns->set.name, s->sid,
                         over == REFUSED_ROOMS ? "maxRooms" : "maxMemberships");
            return RC_SIO_JOIN_ROOM_LIMIT;
        }
    }
    int r = rc_rooms_join(s->ns->rooms, &s->member, room);
    if (r && opens && srv->hooks->on_room_open)
        srv->hooks->on_room_open(srv->hooks->arg, s->ns->set.name, room, s);
    if (r && srv->hooks->on_membership) srv->hooks->on_membership(srv->hooks->arg, s, room, 1);
    return r;
}

int rc_sio_join(rc_sio_socket *s, const char *room) { return socket_join(s, room, 0); }

int rc_sio_leave(rc_sio_socket *s, const char *room)
{
    if (s->dead) return 0;
    int r = rc_rooms_leave(s->ns->rooms, &s->member, room);
    rc_sio_server *srv = s->ns->srv;
    if (r && srv->hooks->on_membership) srv->hooks->on_membership(srv->hooks->arg, s, room, 0);
    return r;
}

int rc_sio_is_member(const rc_sio_socket *s, const char *room)
{
    return !s->dead && rc_rooms_is_member(s->ns->rooms, &s->member, room);
}

static void send_attachments(rc_sio_client *c, const rc_bp_bytes *att, size_t n)
{
    for (size_t i = 0; i < n; i++) rc_eio_send_message(c->eio, 1, att[i].data, att[i].len);
}

void rc_sio_emit(rc_sio_socket *s, const char *event, const char *args_json, size_t args_len,
                 const rc_bp_bytes *att, size_t att_count, const void *ctx)
{
    if (s->dead) return;
    long long id = -1;
    if (ctx) {
        if (s->ack_count == MAX_PENDING_ACKS) {
            rc_free(s->acks[0].event);
            memmove(s->acks, s->acks + 1, (MAX_PENDING_ACKS - 1) * sizeof(*s->acks));
            s->ack_count--;
        }
        if (!s->acks) s->acks = rc_malloc(MAX_PENDING_ACKS * sizeof(*s->acks));
        id = s->next_ack_id++;
        s->acks[s->ack_count].id = (uint32_t)id;
        s->acks[s->ack_count].ctx = ctx;
        s->acks[s->ack_count].event = rc_strdup(event);
        s->ack_count++;
    }
    int type = att_count ? RC_SIO_BINARY_EVENT : RC_SIO_EVENT;
    rc_frame *f = rc_sio__encode_packet(type, s->ns->set.name, id, (int)att_count, event, args_json, args_len);
    rc_eio_send_frame(s->client->eio, f);
    rc_frame_unref(f);
    send_attachments(s->client, att, att_count);
    s->ns->messages_out++;
}

void rc_sio_ack(rc_sio_socket *s, long long id, const char *args_json, size_t args_len,
                const rc_bp_bytes *att, size_t att_count)
{
    if (s->dead || id < 0) return;
    int type = att_count ? RC_SIO_BINARY_ACK : RC_SIO_ACK;
    rc_frame *f = rc_sio__encode_packet(type, s->ns->set.name, id, (int)att_count, NULL, args_json, args_len);
    rc_eio_send_frame(s->client->eio, f);
    rc_frame_unref(f);
    send_attachments(s->client, att, att_count);
}

/* Server-side namespace disconnect: DISCONNECT to the client, then the socket is removed. */
static void socket_disconnect(rc_sio_socket *s)
{
    char buf[RC_SIO_HEADER_MAX + 256];
    size_t n = rc_sio_encode_header(buf, RC_SIO_DISCONNECT, s->ns->set.name, -1, 0);
    send_text(s->client, buf, n);
    s->ns->srv->gone = "server namespace disconnect";
    rc_sio__socket_remove(s);
}

void rc_sio_disconnect(rc_sio_socket *s)
{
    if (s->dead) return;
    rc_eio_count_disconnect(RC_EIO_DISC_SERVER);
    socket_disconnect(s);
}

/* ---- holds -------------------------------------------------------------------------------- */

rc_sio_hold *rc_sio_hold_new(rc_sio_socket *s)
{
    rc_sio_hold *h = rc_malloc(sizeof(*h));
    h->client = s->client;
    h->next = s->client->holds;
    s->client->holds = h;
    rc_eio_hold(s->client->eio);
    return h;
}

void rc_sio_hold_release(rc_sio_hold *h)
{
    rc_sio_client *c = h->client;
    if (c) {
        for (rc_sio_hold **pp = &c->holds; *pp; pp = &(*pp)->next) {
            if (*pp == h) { *pp = h->next; break; }
        }
        rc_eio_release(c->eio);
    }
    rc_free(h);
}

/* ---- token expiry ------------------------------------------------------------------------- */

static void expiry_on_timer(evutil_socket_t fd, short what, void *arg);

/* Arms the timer for the earliest deadline unless it already fires by then. */
static void expiry_arm(rc_sio_server *srv)
{
    int64_t next = rc_deadline_next(&srv->expiries);
    if (next == INT64_MAX) {
        if (srv->expiry_timer) evtimer_del(srv->expiry_timer);
        srv->expiry_armed_for = 0;
        return;
    }
    if (srv->expiry_armed_for && srv->expiry_armed_for <= next) return;
    if (!srv->expiry_timer) srv->expiry_timer = evtimer_new(srv->base, expiry_on_timer, srv);
    uint64_t now_ms = rc_now_wall_ms();
    int64_t now_s = (int64_t)(now_ms / 1000);
    int64_t wait_ms = EXPIRY_MAX_WAIT_MS;
    if (next - now_s <= EXPIRY_MAX_WAIT_MS / 1000) {
        wait_ms = next * 1000 - (int64_t)now_ms;
        if (wait_ms < 0) wait_ms = 0;
    }
    struct timeval tv = {(time_t)(wait_ms / 1000), (suseconds_t)(wait_ms % 1000) * 1000};
    evtimer_add(srv->expiry_timer, &tv);
    srv->expiry_armed_for = next;
}

/* Queues the socket by the second its token stops being accepted (0: no exp, nothing to do). */
static void expiry_schedule(rc_sio_socket *s, long long expires_at)
{
    rc_sio_server *srv = s->ns->srv;
    if (expires_at <= 0 || srv->set.token_expiry == RC_SIO_EXPIRY_IGNORE || !srv->base) return;
    rc_deadline_add(&srv->expiries, &s->expiry, (int64_t)expires_at);
    expiry_arm(srv);
}

/* The socket's token has expired (it is out of the heap already): tell it if configured, then
 * end it the way settings.token_expiry says, through the same paths as any other disconnect. */
static void socket_expire(rc_sio_socket *s)
{
    rc_sio_server *srv = s->ns->srv;
    rc_log_debug("token_expired", "ns=%s sid=%s", s->ns->set.name, s->sid);
    rc_eio_count_disconnect(RC_EIO_DISC_TOKEN_EXPIRED);
    if (srv->set.token_expired_event)
        rc_sio_emit(s, srv->set.token_expired_event, expired_event_args, sizeof(expired_event_args) - 1,
                    NULL, 0, NULL);
    if (srv->set.token_expiry == RC_SIO_EXPIRY_DISCONNECT)
        socket_disconnect(s);
    else /* the client reconnects by itself and sends its auth again */
        rc_eio_close(s->client->eio, "token expired");
}

static void expiry_on_timer(evutil_socket_t fd, short what, void *arg)
{
    rc_sio_server *srv = arg;
    int64_t now_s = (int64_t)(rc_now_wall_ms() / 1000);
    rc_deadline_link *link;
    srv->expiry_armed_for = 0;
    for (int n = 0; n < EXPIRY_BATCH && (link = rc_deadline_pop_due(&srv->expiries, now_s)) != NULL; n++)
        socket_expire(RC_CONTAINER_OF(link, rc_sio_socket, expiry));
    expiry_arm(srv);
}

/* ---- CONNECT ------------------------------------------------------------------------------ */

static void connect_error(rc_sio_client *c, const char *nsp, const char *message, const char *code)
{
    char buf[512];
    size_t n = rc_sio_encode_header(buf, RC_SIO_CONNECT_ERROR, nsp, -1, 0);
    if (code)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "{\"message\":\"%s\",\"data\":{\"code\":\"%s\"}}",
                              message, code);
    else
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "{\"message\":\"%s\"}", message);
    send_text(c, buf, n);
}

/* A CONNECT whose token did not verify: CONNECT_ERROR, or, when the node's auth_error hook gives
 * an event for the namespace (docs/config.md, "Refused handshakes"), CONNECT with a socket id
 * nobody can use, that event, then DISCONNECT. Nothing is created: the client hears the three
 * packets in order and its socket ends with "io server disconnect". */
static void connect_refuse(rc_sio_client *c, const rc_sio_ns *ns, const char *nsp, const char *reason)
{
    rc_sio_server *srv = c->srv;
    char event[201];
    char *args = srv->hooks->auth_error ? srv->hooks->auth_error(srv->hooks->arg, (size_t)ns->index, reason, event)
                                        : NULL;
    if (!args) {
        connect_error(c, nsp, "unauthorized", reason);
        return;
    }
    char sid[RC_SIO_SOCKET_ID_LEN + 1];
    rc_random_id(sid, RC_SIO_SOCKET_ID_LEN);
    char buf[RC_SIO_HEADER_MAX + 256 + 64];
    size_t n = rc_sio_encode_header(buf, RC_SIO_CONNECT, nsp, -1, 0);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "{\"sid\":\"%s\"}", sid);
    send_text(c, buf, n);
    rc_frame *f = rc_sio__encode_packet(RC_SIO_EVENT, nsp, -1, 0, event, args, strlen(args));
    rc_eio_send_frame(c->eio, f);
    rc_frame_unref(f);
    n = rc_sio_encode_header(buf, RC_SIO_DISCONNECT, nsp, -1, 0);
    send_text(c, buf, n);
    rc_free(args);
}

static void handle_connect(rc_sio_client *c, const rc_sio_packet *p)
{
    rc_sio_server *srv = c->srv;
    char nsp[256];
    if (p->nsp.len >= sizeof(nsp)) {
        rc_eio_close(c->eio, "parse error");
        return;
    }
    memcpy(nsp, p->nsp.ptr, p->nsp.len);
    nsp[p->nsp.len] = '\0';
    rc_sio_ns *ns = rc_sio__find_ns(srv, p->nsp.ptr, p->nsp.len);
    if (!ns) {
        connect_error(c, nsp, "Invalid namespace", NULL);
        return;
    }
    if (client_socket(c, ns) || rc_sio__recover_pending(c, ns)) { /* a second CONNECT for the same namespace */
        rc_eio_close(c->eio, "parse error");
        return;
    }
    if (!rc_sio__rate_connect(c, ns)) { /* charged before the token is checked */
        srv->rate_limited++;
        rc_log_debug("connect_rate_limited", "ns=%s", nsp);
        connect_error(c, nsp, "rate_limited", "rate_limited");
        return;
    }
    /* The token: auth.token, else Authorization: Bearer, else ?token= where allowed. */
    const char *token = NULL;
    const cJSON *t = p->payload ? cJSON_GetObjectItemCaseSensitive(p->payload, "token") : NULL;
    if (cJSON_IsString(t) && t->valuestring[0]) token = t->valuestring;
    else if (c->bearer) token = c->bearer;
    else if (c->query_token && ns->set.token_in_query) token = c->query_token;
    int mode = ns->set.auth;
    rc_auth_result ar;
    memset(&ar, 0, sizeof(ar));
    if (mode == RC_SIO_AUTH_HOOK) {
        const char *why = srv->hooks->admit ? srv->hooks->admit(srv->hooks->arg, (size_t)ns->index, p->payload,
                                                                rc_eio_client_addr(c->eio))
                                            : "unauthorized";
        if (why) {
            connect_error(c, nsp, why, NULL);
            return;
        }
    } else if (mode != RC_SIO_AUTH_NONE && (token || mode == RC_SIO_AUTH_REQUIRED)) {
        rc_auth_status st = rc_auth_verify(srv->set.jwt, token, token ? strlen(token) : 0,
                                           time(NULL), &ar);
        if (st != RC_AUTH_OK) {
            srv->auth_failures[st]++;
            rc_log_info("auth_failed", "ns=%s reason=%s", nsp, rc_auth_reason(st));
            connect_refuse(c, ns, nsp, rc_auth_reason(st));
            return;
        }
    }
    /* The rest of the auth payload is kept for rules ({auth.x}), parsed once here, not per event;
     * the token itself was verified and its claims are kept, so it is not stored twice. */
    cJSON *auth = NULL;
    if (cJSON_IsObject(p->payload) && mode != RC_SIO_AUTH_HOOK) { /* a password is not kept */
        auth = cJSON_Duplicate(p->payload, 1);
        while (cJSON_GetObjectItemCaseSensitive(auth, "token")) /* every copy: JSON allows the key twice */
            cJSON_DeleteItemFromObjectCaseSensitive(auth, "token");
    }
    if (rc_sio__recover_begin(c, ns, p->payload, &ar, &auth)) return; /* sio_recover.c */
    rc_sio_socket *s = rc_sio__socket_create(c, ns, &ar, auth, NULL, NULL);
    rc_sio__connect_reply(s);
    if (srv->hooks->on_connect) srv->hooks->on_connect(srv->hooks->arg, s, p->payload);
}

rc_sio_socket *rc_sio__socket_create(rc_sio_client *c, rc_sio_ns *ns, rc_auth_result *ar, cJSON *auth,
                                     const char *sid, const char *pid)
{
    rc_sio_server *srv = c->srv;
    rc_sio_socket *s = rc_calloc(1, sizeof(*s));
    s->client = c;
    s->ns = ns;
    s->user = ar->user_id;
    s->claims_json = ar->claims_json;
    ar->user_id = ar->claims_json = NULL;
    s->issued_s = (uint32_t)time(NULL);
    if (auth && !auth->child) cJSON_Delete(auth);
    else s->auth = auth;
    if (sid) {
        memcpy(s->sid, sid, RC_SIO_SOCKET_ID_LEN + 1);
    } else {
        do {
            rc_random_id(s->sid, RC_SIO_SOCKET_ID_LEN);
        } while (rc_hmap_find(&ns->sockets, s->sid, RC_SIO_SOCKET_ID_LEN));
    }
    if (ns->set.recovery) {
        if (pid) memcpy(s->pid, pid, RC_SIO_PID_LEN + 1);
        else rc_random_id(s->pid, RC_SIO_PID_LEN);
    }
    rc_hmap_insert(&ns->sockets, &s->node, s->sid, RC_SIO_SOCKET_ID_LEN);
    s->next = c->sockets;
    c->sockets = s;
    srv->socket_count++;
    expiry_schedule(s, rc_auth_expires_at(srv->set.jwt, ar->exp));
    srv->handshakes++;
    rc_eio_mark_connected(c->eio);
    if (s->user && srv->hooks->user_room) {
        /* Joined before the CONNECT reply: a hold taken in on_room_open delays the reply too. */
        char *room = srv->hooks->user_room(srv->hooks->arg, s);
        if (room) {
            socket_join(s, room, 1); /* one per socket: never refused by the room budget */
            rc_free(room);
        }
    }
    return s;
}

void rc_sio__connect_reply(rc_sio_socket *s)
{
    char buf[RC_SIO_HEADER_MAX + 256 + 64 + RC_SIO_PID_LEN];
    size_t n = rc_sio_encode_header(buf, RC_SIO_CONNECT, s->ns->set.name, -1, 0);
    if (s->pid[0])
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "{\"sid\":\"%s\",\"pid\":\"%s\"}", s->sid, s->pid);
    else
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "{\"sid\":\"%s\"}", s->sid);
    send_text(s->client, buf, n);
    rc_log_debug("socket_connected", "ns=%s sid=%s user=%s", s->ns->set.name, s->sid, s->user ? s->user : "-");
}

/* ---- inbound packets ---------------------------------------------------------------------- */

static void dispatch(rc_sio_client *c, const rc_sio_packet *p, const rc_bp_bytes *att, size_t att_count)
{
    rc_sio_server *srv = c->srv;
    if (p->type == RC_SIO_CONNECT) {
        handle_connect(c, p);
        return;
    }
    rc_sio_ns *ns = rc_sio__find_ns(srv, p->nsp.ptr, p->nsp.len);
    rc_sio_socket *s = ns ? client_socket(c, ns) : NULL;
    if (!s) { /* a packet for a namespace this client is not connected to */
        rc_eio_close(c->eio, "parse error");
        return;
    }
    switch (p->type) {
    case RC_SIO_DISCONNECT:
        rc_eio_count_disconnect(RC_EIO_DISC_CLIENT);
        srv->gone = "client namespace disconnect";
        rc_sio__socket_remove(s);
        return;
    case RC_SIO_EVENT:
    case RC_SIO_BINARY_EVENT: {
        ns->messages_in++;
        const cJSON *name = cJSON_GetArrayItem(p->payload, 0);
        /* The arguments after the name: detach them into a temporary array view. */
        cJSON *args = cJSON_CreateArray();
        for (cJSON *it = name ? name->next : NULL; it; it = it->next)
            cJSON_AddItemReferenceToArray(args, it);
        char numname[32];
        const char *ev = p->event;
        if (!ev) {
            snprintf(numname, sizeof(numname), "%g", name ? name->valuedouble : 0.0);
            ev = numname;
        }
        int limited = !rc_sio__rate_event(c, s, ev);
        if (limited) ns->srv->rate_limited++;
        rc_sio_event e = {ev, args, p->ack_id, att, att_count, limited};
        if (srv->hooks->on_event) srv->hooks->on_event(srv->hooks->arg, s, &e);
        cJSON_Delete(args);
        return;
    }
    case RC_SIO_ACK:
    case RC_SIO_BINARY_ACK:
        for (uint16_t i = 0; i < s->ack_count; i++) {
            if (s->acks[i].id != (uint32_t)p->ack_id) continue;
            rc_sio_pending_ack a = s->acks[i];
            memmove(s->acks + i, s->acks + i + 1, (size_t)(s->ack_count - i - 1) * sizeof(*s->acks));
            s->ack_count--;
            rc_sio_event e = {NULL, p->payload, p->ack_id, att, att_count, 0};
            if (srv->hooks->on_ack) srv->hooks->on_ack(srv->hooks->arg, s, a.ctx, a.event, &e);
            rc_free(a.event);
            return;
        }
        return; /* unknown ack ids are ignored */
    default: /* CONNECT_ERROR from a client */
        rc_eio_close(c->eio, "parse error");
        return;
    }
}

static void bin_reset(rc_sio_client *c)
{
    for (int i = 0; i < c->bin_have; i++) rc_free((void *)c->bin_att[i].data);
    rc_free(c->bin_att);
    rc_free(c->bin_nsp);
    rc_sio_packet_dispose(&c->bin);
    memset(&c->bin, 0, sizeof(c->bin));
    c->bin_att = NULL;
    c->bin_nsp = NULL;
    c->bin_have = 0;
    c->bin_bytes = 0;
}

/* A binary packet's text and attachments together would exceed maxPayload (max_packet_bytes):
 * what it holds is freed now and the session closed, so nobody receives any of it. */
static void packet_too_large(rc_sio_client *c, size_t bytes)
{
    c->srv->packets_too_large++;
    rc_log_debug("sio_packet_too_large", "bytes=%zu max=%zu", bytes, c->srv->set.max_packet_bytes);
    bin_reset(c);
    rc_eio_count_disconnect(RC_EIO_DISC_PARSE_ERROR);
    rc_eio_close(c->eio, rc_eio_reason_too_large);
}

static void client_on_message(void *owner, int binary, const uint8_t *data, size_t len)
{
    rc_sio_client *c = owner;
    c->busy++;
    if (binary) {
        size_t max = c->srv->set.max_packet_bytes;
        if (!c->bin.attachments) {
            rc_eio_close(c->eio, "parse error");
        } else if (max && len > max - c->bin_bytes) { /* bin_bytes <= max here */
            packet_too_large(c, c->bin_bytes + len);
        } else {
            c->bin_bytes += len;
            c->bin_att[c->bin_have].data = rc_malloc(len ? len : 1);
            memcpy((void *)c->bin_att[c->bin_have].data, data, len);
            c->bin_att[c->bin_have].len = len;
            if (++c->bin_have == c->bin.attachments) {
                c->bin.nsp.ptr = c->bin_nsp;
                dispatch(c, &c->bin, c->bin_att, (size_t)c->bin_have);
                bin_reset(c);
            }
        }
        client_unbusy(c);
        return;
    }
    if (c->bin.attachments) { /* text while attachments are expected */
        rc_eio_close(c->eio, "parse error");
        client_unbusy(c);
        return;
    }
    rc_sio_packet p;
    const char *err = NULL;
    if (rc_sio_decode((const char *)data, len, &p, &err) != 0) {
        rc_log_debug("sio_parse_error", "error=%s", err ? err : "?");
        rc_sio_packet_dispose(&p);
        rc_eio_count_disconnect(RC_EIO_DISC_PARSE_ERROR);
        rc_eio_close(c->eio, "parse error");
        client_unbusy(c);
        return;
    }
    if (p.attachments > 0) {
        if (c->srv->set.max_packet_bytes && len > c->srv->set.max_packet_bytes) {
            rc_sio_packet_dispose(&p);
            packet_too_large(c, len);
            client_unbusy(c);
            return;
        }
        if (rc_sio_count_placeholders(p.payload, p.attachments) < 0) {
            rc_sio_packet_dispose(&p);
            rc_eio_close(c->eio, "parse error");
            client_unbusy(c);
            return;
        }
        /* Keep the packet (its namespace slice points into `data`: copy it). */
        c->bin = p;
        c->bin_nsp = rc_strndup(p.nsp.ptr, p.nsp.len);
        c->bin.nsp.ptr = c->bin_nsp;
        c->bin_att = rc_calloc((size_t)p.attachments, sizeof(*c->bin_att));
        c->bin_bytes = len;
        client_unbusy(c);
        return;
    }
    dispatch(c, &p, NULL, 0);
    rc_sio_packet_dispose(&p);
    client_unbusy(c);
}

/* ---- Engine.IO owner callbacks ------------------------------------------------------------ */

static char *bearer_of(const rc_http_request *req)
{
    const char *h = rc_http_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return NULL;
    h += 7;
    while (*h == ' ') h++;
    size_t n = strlen(h);
    return n && n <= MAX_TOKEN_LEN ? rc_strndup(h, n) : NULL;
}

static void *client_on_open(void *arg, rc_eio_session *eio, const rc_http_request *req)
{
    rc_sio_server *srv = arg;
    rc_sio_client *c = rc_calloc(1, sizeof(*c));
    c->srv = srv;
    c->eio = eio;
    c->bearer = bearer_of(req);
    char tok[MAX_TOKEN_LEN + 1];
    if (rc_http_query_param(req, "token", tok, sizeof(tok)) && tok[0]) c->query_token = rc_strdup(tok);
    return c;
}

static void client_on_close(void *owner, const char *reason)
{
    rc_sio_client *c = owner;
    c->busy++;
    c->srv->gone = reason;
    while (c->sockets) rc_sio__socket_remove(c->sockets);
    rc_sio__recover_client_closed(c);
    bin_reset(c);
    client_unbusy(c);
    rc_sio__rate_dispose(c);
    for (rc_sio_hold *h = c->holds; h; h = h->next) h->client = NULL; /* the session is gone */
    rc_free(c->bearer);
    rc_free(c->query_token);
    rc_free(c);
}

const rc_eio_callbacks *rc_sio_eio_callbacks(rc_sio_server *srv) { return &srv->eio_cb; }

/* ---- server ------------------------------------------------------------------------------- */

static void ns_room_close(void *arg, const char *room)
{
    rc_sio_ns *ns = arg;
    if (ns->srv->hooks->on_room_close) ns->srv->hooks->on_room_close(ns->srv->hooks->arg, ns->set.name, room);
}

rc_sio_server *rc_sio_server_new(struct event_base *base, const rc_sio_settings *settings,
                                 const rc_sio_hooks *hooks)
{
    rc_sio_server *srv = rc_calloc(1, sizeof(*srv));
    srv->base = base;
    srv->set = *settings;
    srv->set.ns = NULL;
    srv->hooks = hooks;
    srv->ns_count = settings->ns_count;
    srv->ns = rc_calloc(srv->ns_count ? srv->ns_count : 1, sizeof(*srv->ns));
    for (size_t i = 0; i < srv->ns_count; i++) {
        rc_sio_ns *ns = &srv->ns[i];
        ns->set = settings->ns[i];
        ns->index = (int)i;
        ns->srv = srv;
        /* No open callback: rc_sio_join tells on_room_open itself, with the opening socket. */
        rc_rooms_callbacks rcb = {NULL, ns_room_close, ns};
        ns->rooms = rc_rooms_new(&rcb);
    }
    srv->eio_cb.on_open = client_on_open;
    srv->eio_cb.on_message = client_on_message;
    srv->eio_cb.on_close = client_on_close;
    srv->eio_cb.on_upgrade = rc_sio__client_on_upgrade; /* src/sio_admin.c */
    srv->eio_cb.arg = srv;
    return srv;
}

void rc_sio_server_free(rc_sio_server *srv)
{
    /* Every socket is gone (eio closed them all), and with them every heap entry. */
    if (srv->expiry_timer) event_free(srv->expiry_timer);
    rc_deadline_heap_dispose(&srv->expiries);
    for (size_t i = 0; i < srv->ns_count; i++) {
        rc_rooms_free(srv->ns[i].rooms);
        rc_hmap_dispose(&srv->ns[i].sockets);
    }
    rc_free(srv->ns);
    rc_free(srv);
}

uint64_t rc_sio_socket_count(const rc_sio_server *srv) { return srv->socket_count; }

void rc_sio_write_metrics(const rc_sio_server *srv, struct evbuffer *out)
{
    /* namespaces beyond RC_METRICS_MAX_NS are not exposed (bounded cardinality) */
    size_t n = srv->ns_count < RC_METRICS_MAX_NS ? srv->ns_count : RC_METRICS_MAX_NS;
    const char *names[RC_METRICS_MAX_NS];
    uint64_t sockets[RC_METRICS_MAX_NS], rooms[RC_METRICS_MAX_NS], in[RC_METRICS_MAX_NS],
        outp[RC_METRICS_MAX_NS], bc[RC_METRICS_MAX_NS];
    for (size_t i = 0; i < n; i++) {
        const rc_sio_ns *ns = &srv->ns[i];
        names[i] = ns->set.name;
        sockets[i] = ns->sockets.count;
        rooms[i] = rc_rooms_count(ns->rooms);
        in[i] = ns->messages_in;
        outp[i] = ns->messages_out;
        bc[i] = ns->broadcasts;
    }
    uint64_t memberships = 0;
    for (size_t i = 0; i < srv->ns_count; i++) memberships += rc_rooms_membership_count(srv->ns[i].rooms);
    static const char *const join_limits[] = {[REFUSED_ROOMS] = "maxRooms", [REFUSED_MEMBERSHIPS] = "maxMemberships",
                                              [REFUSED_PER_SOCKET] = "maxRoomsPerSocket"};
    const char *auth_reasons[RC_AUTH__COUNT]; /* the names auth.c gives; [RC_AUTH_OK] is not exposed */
    for (int i = 0; i < RC_AUTH__COUNT; i++) auth_reasons[i] = rc_auth_reason((rc_auth_status)i);

    rc_metrics_put_by_label(out, "roomcast_sockets", "gauge", "Connected Socket.IO sockets, by namespace.",
                            "namespace", names, sockets, 0, n);
    rc_metrics_put_scalar(out, "roomcast_handshakes_total", "counter", "Socket.IO CONNECT handshakes accepted.",
                          srv->handshakes);
    rc_metrics_put_by_label(out, "roomcast_auth_failures_total", "counter",
                            "Socket.IO CONNECT refused, by auth reason.", "reason", auth_reasons,
                            srv->auth_failures, RC_AUTH_OK + 1, RC_AUTH__COUNT);
    rc_metrics_put_by_label(out, "roomcast_messages_in_total", "counter", "Client events received, by namespace.",
                            "namespace", names, in, 0, n);
    rc_metrics_put_by_label(out, "roomcast_messages_out_total", "counter",
                            "Packets written to sockets, by namespace.", "namespace", names, outp, 0, n);
    rc_metrics_put_by_label(out, "roomcast_broadcasts_total", "counter",
                            "Room and namespace emits fanned out locally, by namespace.", "namespace", names,
                            bc, 0, n);
    rc_metrics_put_by_label(out, "roomcast_rooms", "gauge", "Rooms with local members, by namespace.",
                            "namespace", names, rooms, 0, n);
    rc_metrics_put_scalar(out, "roomcast_memberships", "gauge",
                          "Socket-room memberships on this node, every namespace (limits.maxMemberships).",
                          memberships);
    rc_metrics_put_by_label(out, "roomcast_joins_refused_total", "counter",
                            "Room joins refused, by the limit that refused them.", "limit", join_limits,
                            srv->joins_refused, 0, RC_ARRAY_LEN(join_limits));
    rc_metrics_put_scalar(out, "roomcast_rate_limited_total", "counter",
                          "Client events and repeated namespace CONNECTs refused by rate limits.", srv->rate_limited);
    rc_metrics_put_scalar(out, "roomcast_packets_too_large_total", "counter",
                          "Binary packets whose text and attachments together exceeded maxPayload (session closed).",
                          srv->packets_too_large);
    rc_metrics_put_histogram(out, "roomcast_delivery_latency_seconds",
                             "Time from publish accepted to the frame queued for every recipient (once per "
                             "recipient).",
                             &srv->delivery_latency);
}

size_t rc_sio_disconnect_some(rc_sio_server *srv, size_t max)
{
    size_t done = 0;
    for (size_t i = 0; i < srv->ns_count && done < max; i++) {
        rc_sio_ns *ns = &srv->ns[i];
        rc_hmap_node *n;
        while (done < max && (n = rc_hmap_first(&ns->sockets)) != NULL) {
            rc_sio_socket *s = RC_CONTAINER_OF(n, rc_sio_socket, node);
            /* Closing the whole Engine.IO session makes the client reconnect (elsewhere). */
            rc_eio_close(s->client->eio, "server shutting down");
            srv->gone = "server shutting down"; /* eio's on_close comes later: the hooks read it now */
            rc_sio__socket_remove(s);
            done++;
        }
    }
    return done;
}
