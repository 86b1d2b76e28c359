/*
 * admin.c: the server side of the Socket.IO Admin UI for a roomcast cluster (contract and
 * protocol: include/roomcast/admin.h; for operators: docs/admin-ui.md).
 *
 * Login: rc_admin_admit compares the CONNECT payload's username (constant time) and checks its
 * password against the bcrypt hash with libcrypt's crypt_rn, then compares the result in
 * constant time. bcrypt runs on the event loop (a few tens of ms at cost 10), so a password login
 * first takes a check from the login budget (src/admin_login.c: the client address's, and the
 * node's loop-time budget); without one the CONNECT is refused ("too many attempts") without
 * running bcrypt. A password login is given a session id
 * ("session" event, as instrument()), which opens the namespace on this node for SESSION_MS.
 *
 * The cluster: one Redis channel, P:admin, carries JSON objects with the sending node's id:
 *   {"node":N,"ev":E,"args":[...]}           an event for every admin socket (server_stats,
 *                                             socket_connected, ...): each node emits it to its
 *                                             own admin sockets
 *   {"node":N,"op":"join"|"leave"|"_disconnect","nsp":..,"room":..,"close":..,"filter":..}
 *                                             an operation: each node applies it to its sockets
 *   {"node":N,"op":"fetch","admin":SID}       a new admin socket on node N: the others publish
 *                                             their statistics and their sockets for it
 *   {"node":M,"to":N,"admin":SID,"sockets":[...]}  the answer: node N adds them to SID's
 *                                             all_sockets (FETCH_WAIT_MS after it connected),
 *                                             or, later than that, emits each as socket_connected
 * A node ignores its own messages (Redis echoes them) and counts what it cannot read. Events are
 * published only while some admin socket is connected in the cluster: locally, or seen in
 * another node's server_stats ("admins") or fetch within ADMIN_SEEN_MS.
 *
 * What it does not do: parse Socket.IO (sio does), know rules, keep sockets of other nodes (the
 * UI keeps its own picture from the events), or the things admin.h lists as not done.
 */
#include "roomcast/admin.h"
#include "admin_login.h"
#include "roomcast/common.h"
#include "roomcast/keys.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
#include "roomcast/redis_cmd.h"
#include "roomcast/server.h"
#include "roomcast/sio_admin.h"
#include "roomcast/template.h"

#include <cjson/cJSON.h>
#include <crypt.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define STATS_MS 2000          /* server_stats period, as instrument() */
#define ADMIN_SEEN_MS 10000    /* events are published this long after an admin was last seen */
#define MAX_FETCH_SOCKETS 5000 /* sockets a node sends a new admin socket, per namespace */
#define MAX_AGG 64             /* aggregated event entries kept between two statistics */
#define FETCH_WAIT_MS 700      /* how long a new admin socket's all_sockets waits for the others */
#define SESSIONS 64            /* session ids this node remembers (the oldest is forgotten first) */
#define SESSION_ID_LEN 32      /* 192 random bits */
#define SESSION_MS (12 * 3600 * 1000ULL) /* a session id opens the namespace for 12 hours */

enum { LOGIN_OK = 0, LOGIN_INVALID, LOGIN_THROTTLED, LOGIN__COUNT };
enum { OP_JOIN = 0, OP_LEAVE, OP_DISCONNECT, OP__COUNT };
enum { REFUSED_READONLY = 0, REFUSED_INVALID, REFUSED__COUNT };

typedef struct agg_entry {
    long long ts;              /* ms, to the second */
    const char *type;
    char sub[48];
    uint64_t count;
} agg_entry;

/* A new admin socket's all_sockets, waiting FETCH_WAIT_MS for the other nodes' sockets. */
typedef struct pending_fetch {
    struct pending_fetch *next;
    rc_admin *admin;
    char sid[24];
    cJSON *remote;             /* the other nodes' sockets so far */
    struct event *timer;
} pending_fetch;

typedef struct admin_session {
    char id[SESSION_ID_LEN + 1];
    uint64_t expires_ms;       /* mono ms; 0 = unused */
} admin_session;

struct rc_admin {
    struct event_base *base;
    const rc_admin_config *cfg;
    rc_backplane *bp;
    rc_sio_server *sio;
    rc_eio_server *eio;
    char *node_id;
    char *channel;             /* P:admin, NULL without Redis */
    size_t ns_index;
    struct event *timer;
    uint64_t started_ms;
    char hostname[256];
    rc_admin_login *login;     /* the password-login budget */
    uint64_t seen_ms;          /* an admin socket was last known somewhere (mono ms) */
    agg_entry agg[MAX_AGG];
    size_t agg_count;
    uint64_t last_opened, last_in, last_out;
    uint64_t logins[LOGIN__COUNT];
    uint64_t ops[OP__COUNT];
    uint64_t refused[REFUSED__COUNT];
    uint64_t invalid;          /* P:admin messages that could not be read */
    pending_fetch *fetches;
    admin_session sessions[SESSIONS];
    size_t next_session;       /* the slot the next session id takes */
    int grant_session;         /* set by admit for the on_connect that follows it */
};

/* ---- small helpers ------------------------------------------------------------------------ */

static void iso_now(char out[32])
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

static int active(const rc_admin *a)
{
    return rc_sio_ns_sockets(a->sio, a->ns_index) > 0 ||
           (a->seen_ms && rc_now_mono_ms() - a->seen_ms < ADMIN_SEEN_MS);
}

static int ns_index_of(const rc_admin *a, const char *name)
{
    for (size_t i = 0; i < rc_sio_ns_count(a->sio); i++)
        if (strcmp(rc_sio_ns_name(a->sio, i), name) == 0) return (int)i;
    return -1;
}

static void agg_add(rc_admin *a, const char *type, const char *sub, uint64_t count)
{
    if (!count) return;
    long long ts = (long long)(rc_now_wall_ms() / 1000 * 1000);
    for (size_t i = 0; i < a->agg_count; i++) {
        agg_entry *e = &a->agg[i];
        if (e->ts == ts && strcmp(e->type, type) == 0 && strcmp(e->sub, sub ? sub : "") == 0) {
            e->count += count;
            return;
        }
    }
    if (a->agg_count == MAX_AGG) return;
    agg_entry *e = &a->agg[a->agg_count++];
    e->ts = ts;
    e->type = type;
    snprintf(e->sub, sizeof(e->sub), "%s", sub ? sub : "");
    e->count = count;
}

/* ---- emitting: to this node's admin sockets, and to every node's ---------------------------- */

struct emit_ctx {
    const char *event;
    const char *args;
    size_t len;
};

static void emit_one(void *arg, rc_sio_socket *s)
{
    struct emit_ctx *e = arg;
    rc_sio_emit(s, e->event, e->args, e->len, NULL, 0, NULL);
}

static void local_emit(rc_admin *a, const char *event, const char *args, size_t len)
{
    struct emit_ctx e = {event, args, len};
    rc_sio_foreach_socket(a->sio, a->ns_index, emit_one, &e);
}

/* Publishes obj (given a "node" field here) on P:admin; obj stays the caller's. */
static void publish(rc_admin *a, cJSON *obj)
{
    if (!a->channel) return;
    cJSON_AddStringToObject(obj, "node", a->node_id);
    char *text = cJSON_PrintUnformatted(obj);
    const char *argv[3] = {"PUBLISH", a->channel, text};
    size_t lens[3] = {7, strlen(a->channel), strlen(text)};
    rc_redis_command(a->bp, NULL, NULL, 3, argv, lens);
    cJSON_free(text);
}

/* Emits event(args) to every admin socket of the cluster; takes args (a JSON array). */
static void cluster_emit(rc_admin *a, const char *event, cJSON *args)
{
    char *text = cJSON_PrintUnformatted(args);
    local_emit(a, event, text, strlen(text));
    cJSON_free(text);
    if (a->channel) {
        cJSON *msg = cJSON_CreateObject();
        cJSON_AddStringToObject(msg, "ev", event);
        cJSON_AddItemToObject(msg, "args", args);
        publish(a, msg);
        cJSON_Delete(msg);
    } else {
        cJSON_Delete(args);
    }
}

/* ---- what the UI reads: a socket, the statistics --------------------------------------------- */

static void add_room(void *arg, const char *room) { cJSON_AddItemToArray(arg, cJSON_CreateString(room)); }

static cJSON *socket_json(const rc_sio_socket *s)
{
    cJSON *o = cJSON_CreateObject();
    char client[13];
    snprintf(client, sizeof(client), "%s", rc_sio_socket_session(s));
    cJSON_AddStringToObject(o, "id", rc_sio_socket_id(s));
    cJSON_AddStringToObject(o, "clientId", client);
    cJSON_AddStringToObject(o, "transport", rc_sio_socket_polling(s) ? "polling" : "websocket");
    cJSON_AddStringToObject(o, "nsp", rc_sio_socket_ns(s));
    cJSON *data = cJSON_AddObjectToObject(o, "data");
    if (rc_sio_socket_user(s)) cJSON_AddStringToObject(data, "user", rc_sio_socket_user(s));
    cJSON *hs = cJSON_AddObjectToObject(o, "handshake");
    cJSON_AddStringToObject(hs, "address", "");
    cJSON_AddObjectToObject(hs, "headers");
    cJSON_AddObjectToObject(hs, "query");
    cJSON_AddNumberToObject(hs, "issued", (double)rc_sio_socket_issued_ms(s));
    cJSON *rooms = cJSON_AddArrayToObject(o, "rooms");
    cJSON_AddItemToArray(rooms, cJSON_CreateString(rc_sio_socket_id(s))); /* Socket.IO's own room */
    rc_sio_socket_rooms(s, add_room, rooms);
    return o;
}

/* Turns the counters' growth since the last sample into aggregated events. */
static void sample(rc_admin *a)
{
    uint64_t in = 0, out = 0;
    for (size_t i = 0; i < rc_sio_ns_count(a->sio); i++) {
        uint64_t ni, no;
        rc_sio_ns_messages(a->sio, i, &ni, &no);
        in += ni;
        out += no;
    }
    uint64_t opened = rc_eio_opened_total();
    agg_add(a, "rawConnection", NULL, opened - a->last_opened);
    agg_add(a, "packetsIn", NULL, in - a->last_in);
    agg_add(a, "packetsOut", NULL, out - a->last_out);
    a->last_opened = opened;
    a->last_in = in;
    a->last_out = out;
}

static cJSON *stats_json(rc_admin *a)
{
    uint64_t clients, polling;
    rc_sio_client_counts(a->sio, &clients, &polling);
    sample(a);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "serverId", a->node_id);
    cJSON_AddStringToObject(o, "hostname", a->hostname);
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    cJSON_AddNumberToObject(o, "uptime", (double)(rc_now_mono_ms() - a->started_ms) / 1000.0);
    cJSON_AddNumberToObject(o, "clientsCount", (double)rc_eio_session_count(a->eio));
    cJSON_AddNumberToObject(o, "pollingClientsCount", (double)polling);
    cJSON *agg = cJSON_AddArrayToObject(o, "aggregatedEvents");
    for (size_t i = 0; i < a->agg_count; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "timestamp", (double)a->agg[i].ts);
        cJSON_AddStringToObject(e, "type", a->agg[i].type);
        if (a->agg[i].sub[0]) cJSON_AddStringToObject(e, "subType", a->agg[i].sub);
        cJSON_AddNumberToObject(e, "count", (double)a->agg[i].count);
        cJSON_AddItemToArray(agg, e);
    }
    a->agg_count = 0;
    cJSON *nss = cJSON_AddArrayToObject(o, "namespaces");
    for (size_t i = 0; i < rc_sio_ns_count(a->sio); i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", rc_sio_ns_name(a->sio, i));
        cJSON_AddNumberToObject(e, "socketsCount", (double)rc_sio_ns_sockets(a->sio, i));
        cJSON_AddItemToArray(nss, e);
    }
    cJSON_AddNumberToObject(o, "admins", (double)rc_sio_ns_sockets(a->sio, a->ns_index));
    return o;
}

static void send_stats(rc_admin *a)
{
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, stats_json(a));
    cluster_emit(a, "server_stats", args);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    rc_admin *a = arg;
    if (active(a)) {
        send_stats(a);
    } else {
        sample(a);
        a->agg_count = 0;
    }
}

/* ---- login ---------------------------------------------------------------------------------- */

static int same_text(const char *x, const char *y)
{
    size_t n = strlen(y);
    return strlen(x) == n && CRYPTO_memcmp(x, y, n) == 0;
}

/* 1 if id is a session id this node gave and that has not expired. */
static int session_ok(rc_admin *a, const char *id)
{
    uint64_t now = rc_now_mono_ms();
    int ok = 0;
    if (strlen(id) != SESSION_ID_LEN) return 0;
    for (size_t i = 0; i < SESSIONS; i++)
        ok |= a->sessions[i].expires_ms > now && CRYPTO_memcmp(a->sessions[i].id, id, SESSION_ID_LEN) == 0;
    return ok;
}

const char *rc_admin_admit(rc_admin *a, const cJSON *auth, const rc_addr *from)
{
    const cJSON *sid = cJSON_GetObjectItemCaseSensitive(auth, "sessionId");
    a->grant_session = 0;
    if (cJSON_IsString(sid) && session_ok(a, sid->valuestring)) {
        a->logins[LOGIN_OK]++;
        rc_log_info("admin_login", "node=%s with=session", a->node_id);
        return NULL;
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(auth, "username");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(auth, "password");
    if (!cJSON_IsString(u) || !cJSON_IsString(p) || strlen(p->valuestring) > 200) {
        a->logins[LOGIN_INVALID]++;
        return "invalid credentials";
    }
    uint64_t t0 = rc_now_mono_ms();
    if (rc_admin_login_take(a->login, from, t0) != RC_ADMIN_LOGIN_RUN) { /* logged there */
        a->logins[LOGIN_THROTTLED]++;
        return "too many attempts";
    }
    struct crypt_data *cd = rc_calloc(1, sizeof(*cd));
    const char *out = crypt_rn(p->valuestring, a->cfg->password_hash, cd, (int)sizeof(*cd));
    int ok = out != NULL && same_text(out, a->cfg->password_hash);
    ok &= same_text(u->valuestring, a->cfg->username);
    rc_admin_login_ran(a->login, from, rc_now_mono_ms() - t0, ok);
    OPENSSL_cleanse(cd, sizeof(*cd));
    rc_free(cd);
    a->logins[ok ? LOGIN_OK : LOGIN_INVALID]++;
    a->grant_session = ok;
    char ip[64] = "unknown";
    if (from) rc_addr_format(from, ip, sizeof(ip));
    rc_log_info(ok ? "admin_login" : "admin_login_refused", "node=%s addr=%s", a->node_id, ip);
    return ok ? NULL : "invalid credentials";
}

/* ---- operations ------------------------------------------------------------------------------ */

typedef struct admin_op {
    int kind;                  /* OP_* */
    const char *nsp;
    const char *room;          /* join, leave */
    const char *filter;        /* a room or socket id; NULL: every socket of nsp */
    int close;                 /* _disconnect: close the whole connection */
} admin_op;

struct match_ctx {
    const char *filter;
    char (*sids)[24];
    size_t count, cap;
};

static void has_room(void *arg, const char *room)
{
    struct match_ctx *m = arg;
    if (m->filter && strcmp(room, m->filter) == 0) m->filter = NULL; /* found: mark */
}

static void match_one(void *arg, rc_sio_socket *s)
{
    struct match_ctx *m = arg;
    int hit = !m->filter || strcmp(rc_sio_socket_id(s), m->filter) == 0;
    if (!hit) {
        struct match_ctx probe = {m->filter, NULL, 0, 0};
        rc_sio_socket_rooms(s, has_room, &probe);
        hit = probe.filter == NULL;
    }
    if (!hit) return;
    if (m->count == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 16;
        m->sids = rc_realloc(m->sids, m->cap * sizeof(*m->sids));
    }
    snprintf(m->sids[m->count++], sizeof(*m->sids), "%s", rc_sio_socket_id(s));
}

/* Applies op to this node's sockets: those of op->nsp in op->filter (all without a filter). The
 * ids are collected first and each socket looked up again before acting, since a disconnect may
 * take other sockets with it. Returns how many it acted on. */
static size_t apply_op(rc_admin *a, const admin_op *op)
{
    int idx = ns_index_of(a, op->nsp);
    if (idx < 0) return 0;
    struct match_ctx m = {op->filter, NULL, 0, 0};
    rc_sio_foreach_socket(a->sio, (size_t)idx, match_one, &m);
    size_t done = 0;
    for (size_t i = 0; i < m.count; i++) {
        rc_sio_socket *s = rc_sio_find_socket(a->sio, idx, m.sids[i]);
        if (!s) continue;
        done++;
        if (op->kind == OP_JOIN) rc_sio_join(s, op->room);
        else if (op->kind == OP_LEAVE) rc_sio_leave(s, op->room);
        else if (op->close) rc_sio_socket_close_session(s);
        else rc_sio_disconnect(s);
    }
    rc_free(m.sids);
    return done;
}

/* Reads an operation from the UI's arguments: join/leave (nsp, room, filter), _disconnect (nsp,
 * close, filter). Returns 0, or -1 when they are not what the UI sends. */
static int op_from_args(admin_op *op, const char *name, const cJSON *args)
{
    memset(op, 0, sizeof(*op));
    const cJSON *nsp = cJSON_GetArrayItem(args, 0);
    const cJSON *second = cJSON_GetArrayItem(args, 1);
    const cJSON *filter = cJSON_GetArrayItem(args, 2);
    if (strcmp(name, "join") == 0) op->kind = OP_JOIN;
    else if (strcmp(name, "leave") == 0) op->kind = OP_LEAVE;
    else if (strcmp(name, "_disconnect") == 0) op->kind = OP_DISCONNECT;
    else return -1;
    if (!cJSON_IsString(nsp) || nsp->valuestring[0] != '/') return -1;
    op->nsp = nsp->valuestring;
    if (op->kind == OP_DISCONNECT) {
        if (second && !cJSON_IsBool(second) && !cJSON_IsNull(second)) return -1;
        op->close = cJSON_IsTrue(second);
    } else {
        if (!cJSON_IsString(second) || !second->valuestring[0] || strlen(second->valuestring) > RC_TPL_NAME_MAX)
            return -1; /* the rooms rules may name (template.h) */
        op->room = second->valuestring;
    }
    if (filter && !cJSON_IsNull(filter)) {
        if (!cJSON_IsString(filter) || strlen(filter->valuestring) > RC_TPL_NAME_MAX) return -1;
        if (filter->valuestring[0]) op->filter = filter->valuestring;
    }
    return 0;
}

static void op_to_json(cJSON *o, const admin_op *op)
{
    static const char *const names[] = {"join", "leave", "_disconnect"};
    cJSON_AddStringToObject(o, "op", names[op->kind]);
    cJSON_AddStringToObject(o, "nsp", op->nsp);
    if (op->room) cJSON_AddStringToObject(o, "room", op->room);
    if (op->filter) cJSON_AddStringToObject(o, "filter", op->filter);
    if (op->kind == OP_DISCONNECT) cJSON_AddBoolToObject(o, "close", op->close);
}

static void answer(rc_sio_socket *s, long long ack_id, const char *error)
{
    if (ack_id < 0) return;
    char buf[128];
    int n = error ? snprintf(buf, sizeof(buf), "[{\"ok\":false,\"error\":\"%s\"}]", error)
                  : snprintf(buf, sizeof(buf), "[{\"ok\":true}]");
    rc_sio_ack(s, ack_id, buf, (size_t)n, NULL, 0);
}

/* An event from an admin socket: an operation of the UI. */
static void admin_event(rc_admin *a, rc_sio_socket *s, const rc_sio_event *ev)
{
    admin_op op;
    if (op_from_args(&op, ev->name, ev->args) < 0) {
        a->refused[REFUSED_INVALID]++;
        answer(s, ev->ack_id, "invalid");
        return;
    }
    if (a->cfg->readonly) {
        a->refused[REFUSED_READONLY]++;
        rc_log_info("admin_op_refused", "node=%s op=%s reason=readonly", a->node_id, ev->name);
        answer(s, ev->ack_id, "readonly");
        return;
    }
    a->ops[op.kind]++;
    rc_log_info("admin_op", "node=%s op=%s nsp=%s filter=%s", a->node_id, ev->name, op.nsp,
                op.filter ? op.filter : "*");
    if (a->channel) {
        cJSON *msg = cJSON_CreateObject();
        op_to_json(msg, &op);
        publish(a, msg);
        cJSON_Delete(msg);
    }
    /* Answer before acting: a disconnect may end the admin socket itself. */
    answer(s, ev->ack_id, NULL);
    apply_op(a, &op);
}

/* ---- the other nodes ------------------------------------------------------------------------- */

struct fetch_ctx {
    cJSON *list;
    size_t count;
};

static void fetch_one(void *arg, rc_sio_socket *s)
{
    struct fetch_ctx *f = arg;
    if (f->count++ < MAX_FETCH_SOCKETS) cJSON_AddItemToArray(f->list, socket_json(s));
}

static cJSON *all_sockets(rc_admin *a)
{
    cJSON *list = cJSON_CreateArray();
    for (size_t i = 0; i < rc_sio_ns_count(a->sio); i++) {
        struct fetch_ctx f = {list, 0};
        rc_sio_foreach_socket(a->sio, i, fetch_one, &f);
    }
    return list;
}

/* The sockets of another node, for one of this node's admin sockets. */
static void fetch_answer(rc_admin *a, const cJSON *msg)
{
    const cJSON *sid = cJSON_GetObjectItemCaseSensitive(msg, "admin");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(msg, "sockets");
    rc_sio_socket *s = cJSON_IsString(sid) ? rc_sio_find_socket(a->sio, (int)a->ns_index, sid->valuestring) : NULL;
    if (!s || !cJSON_IsArray(list)) return;
    const cJSON *it;
    for (pending_fetch *f = a->fetches; f; f = f->next) {
        if (strcmp(f->sid, sid->valuestring) != 0) continue;
        cJSON_ArrayForEach(it, list) if (cJSON_IsObject(it)) cJSON_AddItemToArray(f->remote, cJSON_Duplicate(it, 1));
        return;
    }
    /* Too late for all_sockets: one socket_connected each. */
    cJSON_ArrayForEach(it, list)
    {
        if (!cJSON_IsObject(it)) continue;
        const cJSON *issued = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(it, "handshake"),
                                                               "issued");
        char when[32] = "";
        if (cJSON_IsNumber(issued)) {
            time_t t = (time_t)(issued->valuedouble / 1000);
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
        } else {
            iso_now(when);
        }
        cJSON *args = cJSON_CreateArray();
        cJSON_AddItemReferenceToArray(args, (cJSON *)it);
        cJSON_AddItemToArray(args, cJSON_CreateString(when));
        char *text = cJSON_PrintUnformatted(args);
        rc_sio_emit(s, "socket_connected", text, strlen(text), NULL, 0, NULL);
        cJSON_free(text);
        cJSON_Delete(args);
    }
}

static void fetch_free(rc_admin *a, pending_fetch *f)
{
    for (pending_fetch **pp = &a->fetches; *pp; pp = &(*pp)->next) {
        if (*pp == f) { *pp = f->next; break; }
    }
    event_free(f->timer);
    cJSON_Delete(f->remote);
    rc_free(f);
}

/* all_sockets: this node's sockets now, and the other nodes' that answered in time. */
static void fetch_done(evutil_socket_t fd, short what, void *arg)
{
    pending_fetch *f = arg;
    rc_admin *a = f->admin;
    rc_sio_socket *s = rc_sio_find_socket(a->sio, (int)a->ns_index, f->sid);
    if (s) {
        cJSON *list = all_sockets(a);
        cJSON *it;
        while ((it = cJSON_DetachItemFromArray(f->remote, 0)) != NULL) cJSON_AddItemToArray(list, it);
        cJSON *args = cJSON_CreateArray();
        cJSON_AddItemToArray(args, list);
        char *text = cJSON_PrintUnformatted(args);
        rc_sio_emit(s, "all_sockets", text, strlen(text), NULL, 0, NULL);
        cJSON_free(text);
        cJSON_Delete(args);
    }
    fetch_free(a, f);
}

static void fetch_start(rc_admin *a, rc_sio_socket *s)
{
    pending_fetch *f = rc_calloc(1, sizeof(*f));
    f->admin = a;
    snprintf(f->sid, sizeof(f->sid), "%s", rc_sio_socket_id(s));
    f->remote = cJSON_CreateArray();
    f->timer = evtimer_new(a->base, fetch_done, f);
    f->next = a->fetches;
    a->fetches = f;
    struct timeval tv = {0, FETCH_WAIT_MS * 1000};
    evtimer_add(f->timer, &tv);
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddStringToObject(msg, "op", "fetch");
    cJSON_AddStringToObject(msg, "admin", f->sid);
    publish(a, msg);
    cJSON_Delete(msg);
}

static const char *const forwarded[] = {"server_stats", "socket_connected", "socket_updated",
                                        "socket_disconnected", "room_joined", "room_left",
                                        "event_received", NULL};

int rc_admin_on_raw(rc_admin *a, const char *channel, const char *payload, size_t len)
{
    if (!a->channel || strcmp(channel, a->channel) != 0) return 0;
    cJSON *msg = cJSON_ParseWithLength(payload, len);
    const cJSON *node = cJSON_GetObjectItemCaseSensitive(msg, "node");
    if (!cJSON_IsObject(msg) || !cJSON_IsString(node)) {
        a->invalid++;
        cJSON_Delete(msg);
        return 1;
    }
    if (strcmp(node->valuestring, a->node_id) == 0) { /* our own, echoed */
        cJSON_Delete(msg);
        return 1;
    }
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(msg, "ev");
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(msg, "op");
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(msg, "to");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(msg, "args");
    int known = 0;
    if (cJSON_IsString(ev) && cJSON_IsArray(args)) {
        for (int i = 0; forwarded[i]; i++) known |= strcmp(ev->valuestring, forwarded[i]) == 0;
        if (known && strcmp(ev->valuestring, "server_stats") == 0) {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(args, 0), "admins");
            if (cJSON_IsNumber(n) && n->valuedouble > 0) a->seen_ms = rc_now_mono_ms();
        }
        if (known) {
            char *text = cJSON_PrintUnformatted(args);
            local_emit(a, ev->valuestring, text, strlen(text));
            cJSON_free(text);
        }
    } else if (cJSON_IsString(to)) {
        known = 1;
        if (strcmp(to->valuestring, a->node_id) == 0) fetch_answer(a, msg);
    } else if (cJSON_IsString(op) && strcmp(op->valuestring, "fetch") == 0) {
        known = 1;
        a->seen_ms = rc_now_mono_ms();
        send_stats(a);
        if (a->cfg->development) {
            cJSON *reply = cJSON_CreateObject();
            cJSON_AddStringToObject(reply, "to", node->valuestring);
            cJSON_AddItemToObject(reply, "admin", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(msg, "admin"), 1));
            cJSON_AddItemToObject(reply, "sockets", all_sockets(a));
            publish(a, reply);
            cJSON_Delete(reply);
        }
    } else if (cJSON_IsString(op)) {
        cJSON *args2 = cJSON_CreateArray();
        const cJSON *close = cJSON_GetObjectItemCaseSensitive(msg, "close");
        const cJSON *room = cJSON_GetObjectItemCaseSensitive(msg, "room");
        cJSON_AddItemReferenceToArray(args2, cJSON_GetObjectItemCaseSensitive(msg, "nsp"));
        cJSON_AddItemToArray(args2, strcmp(op->valuestring, "_disconnect") == 0
                                        ? cJSON_CreateBool(cJSON_IsTrue(close))
                                        : room ? cJSON_Duplicate(room, 1) : cJSON_CreateNull());
        cJSON_AddItemReferenceToArray(args2, cJSON_GetObjectItemCaseSensitive(msg, "filter"));
        admin_op o;
        if (op_from_args(&o, op->valuestring, args2) == 0) {
            known = 1;
            if (!a->cfg->readonly) apply_op(a, &o); /* a read-only node lets no admin act on its sockets */
            else rc_log_debug("admin_op_refused", "node=%s op=%s from=%s reason=readonly", a->node_id,
                              op->valuestring, node->valuestring);
        }
        cJSON_Delete(args2);
    }
    if (!known) a->invalid++;
    cJSON_Delete(msg);
    return 1;
}

/* ---- hooks ------------------------------------------------------------------------------------ */

int rc_admin_owns(const rc_admin *a, const rc_sio_socket *s)
{
    return (size_t)rc_sio_socket_ns_index(s) == a->ns_index;
}

static void tell(rc_admin *a, const char *event, const char *nsp, const char *x, const char *y)
{
    char when[32];
    iso_now(when);
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateString(nsp));
    cJSON_AddItemToArray(args, cJSON_CreateString(x));
    if (y) cJSON_AddItemToArray(args, cJSON_CreateString(y));
    cJSON_AddItemToArray(args, cJSON_CreateString(when));
    cluster_emit(a, event, args);
}

void rc_admin_on_connect(rc_admin *a, rc_sio_socket *s)
{
    if (rc_admin_owns(a, s)) {
        static const char full[] = "[{\"supportedFeatures\":[\"JOIN\",\"LEAVE\",\"DISCONNECT\",\"MJOIN\","
                                   "\"MLEAVE\",\"MDISCONNECT\",\"AGGREGATED_EVENTS\"%s]}]";
        static const char ro[] = "[{\"supportedFeatures\":[\"AGGREGATED_EVENTS\"%s]}]";
        char config[256];
        int n = snprintf(config, sizeof(config), a->cfg->readonly ? ro : full,
                         a->cfg->development ? ",\"ALL_EVENTS\"" : "");
        if (a->grant_session) { /* as instrument(): the UI logs in again with it after a reload */
            admin_session *ses = &a->sessions[a->next_session++ % SESSIONS];
            rc_random_id(ses->id, SESSION_ID_LEN);
            ses->expires_ms = rc_now_mono_ms() + SESSION_MS;
            char args[SESSION_ID_LEN + 5];
            int len = snprintf(args, sizeof(args), "[\"%s\"]", ses->id);
            rc_sio_emit(s, "session", args, (size_t)len, NULL, 0, NULL);
            a->grant_session = 0;
        }
        rc_sio_emit(s, "config", config, (size_t)n, NULL, 0, NULL);
        a->seen_ms = rc_now_mono_ms();
    }
    if (!a->cfg->development) return;
    if (rc_admin_owns(a, s) && !a->channel) { /* this node is the whole picture */
        cJSON *args = cJSON_CreateArray();
        cJSON_AddItemToArray(args, all_sockets(a));
        char *text = cJSON_PrintUnformatted(args);
        rc_sio_emit(s, "all_sockets", text, strlen(text), NULL, 0, NULL);
        cJSON_free(text);
        cJSON_Delete(args);
    }
    if (active(a)) {
        char when[32];
        iso_now(when);
        cJSON *args = cJSON_CreateArray();
        cJSON_AddItemToArray(args, socket_json(s));
        cJSON_AddItemToArray(args, cJSON_CreateString(when));
        cluster_emit(a, "socket_connected", args);
    }
    if (rc_admin_owns(a, s)) {
        /* The others' statistics and sockets for this one; our statistics at once. */
        if (a->channel) fetch_start(a, s);
        cJSON *stats = cJSON_CreateArray();
        cJSON_AddItemToArray(stats, stats_json(a));
        char *text = cJSON_PrintUnformatted(stats);
        rc_sio_emit(s, "server_stats", text, strlen(text), NULL, 0, NULL);
        cJSON_free(text);
        cJSON_Delete(stats);
    }
}

void rc_admin_on_event(rc_admin *a, rc_sio_socket *s, const rc_sio_event *ev)
{
    if (rc_admin_owns(a, s)) {
        admin_event(a, s, ev);
        return;
    }
    if (!a->cfg->development || !active(a)) return;
    char when[32];
    iso_now(when);
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateString(rc_sio_socket_ns(s)));
    cJSON_AddItemToArray(args, cJSON_CreateString(rc_sio_socket_id(s)));
    cJSON *call = cJSON_CreateArray();
    cJSON_AddItemToArray(call, cJSON_CreateString(ev->name));
    const cJSON *it;
    cJSON_ArrayForEach(it, ev->args) cJSON_AddItemToArray(call, cJSON_Duplicate(it, 1));
    cJSON_AddItemToArray(args, call);
    cJSON_AddItemToArray(args, cJSON_CreateString(when));
    cluster_emit(a, "event_received", args);
}

/* As instrument() on the engine's "upgrade": the transport the UI shows. */
void rc_admin_on_upgrade(rc_admin *a, rc_sio_socket *s)
{
    if (!a->cfg->development || !active(a)) return;
    cJSON *args = cJSON_CreateArray();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", rc_sio_socket_id(s));
    cJSON_AddStringToObject(o, "nsp", rc_sio_socket_ns(s));
    cJSON_AddStringToObject(o, "transport", "websocket");
    cJSON_AddItemToArray(args, o);
    cluster_emit(a, "socket_updated", args);
}

void rc_admin_on_membership(rc_admin *a, rc_sio_socket *s, const char *room, int joined)
{
    if (!a->cfg->development || !active(a)) return;
    tell(a, joined ? "room_joined" : "room_left", rc_sio_socket_ns(s), room, rc_sio_socket_id(s));
}

struct left_ctx {
    rc_admin *a;
    const rc_sio_socket *s;
};

static void left_room(void *arg, const char *room)
{
    struct left_ctx *l = arg;
    tell(l->a, "room_left", rc_sio_socket_ns(l->s), room, rc_sio_socket_id(l->s));
}

void rc_admin_on_disconnect(rc_admin *a, rc_sio_socket *s)
{
    const char *reason = rc_sio_socket_gone_reason(s);
    if (strcmp(reason, "server namespace disconnect") != 0 && strcmp(reason, "client namespace disconnect") != 0)
        agg_add(a, "rawDisconnection", reason, 1);
    if (!a->cfg->development || !active(a)) return;
    tell(a, "socket_disconnected", rc_sio_socket_ns(s), rc_sio_socket_id(s), reason);
    /* As instrument() does: the rooms it leaves, so the UI's room lists forget it too. */
    struct left_ctx l = {a, s};
    left_room(&l, rc_sio_socket_id(s));
    rc_sio_socket_rooms(s, left_room, &l);
}

/* ---- lifecycle -------------------------------------------------------------------------------- */

rc_admin *rc_admin_new(struct event_base *base, const rc_admin_config *cfg, rc_backplane *bp,
                       rc_sio_server *sio, rc_eio_server *eio, const char *node_id, size_t ns_index)
{
    rc_admin *a = rc_calloc(1, sizeof(*a));
    a->base = base;
    a->cfg = cfg;
    a->bp = bp;
    a->sio = sio;
    a->eio = eio;
    a->node_id = rc_strdup(node_id);
    a->ns_index = ns_index;
    a->started_ms = rc_now_mono_ms();
    a->login = rc_admin_login_new(atoi(cfg->password_hash + 4), a->started_ms); /* "$2b$NN$": checked by the config */
    a->last_opened = rc_eio_opened_total();
    if (gethostname(a->hostname, sizeof(a->hostname) - 1) < 0) strcpy(a->hostname, "roomcast");
    if (rc_redis_available(bp)) {
        a->channel = rc_key_new(rc_redis_prefix(bp), RC_KEY_ADMIN, NULL, NULL);
        rc_redis_channel_open(bp, a->channel);
    }
    a->timer = event_new(base, -1, EV_PERSIST, on_timer, a);
    struct timeval tv = {STATS_MS / 1000, (STATS_MS % 1000) * 1000};
    event_add(a->timer, &tv);
    rc_log_info("admin_ui", "node=%s ns=%s readonly=%d mode=%s", node_id, cfg->ns, cfg->readonly,
                cfg->development ? "development" : "production");
    return a;
}

void rc_admin_free(rc_admin *a)
{
    if (!a) return;
    event_free(a->timer);
    while (a->fetches) fetch_free(a, a->fetches);
    OPENSSL_cleanse(a->sessions, sizeof(a->sessions));
    rc_admin_login_free(a->login);
    if (a->channel) rc_redis_channel_close(a->bp, a->channel);
    rc_free(a->channel);
    rc_free(a->node_id);
    rc_free(a);
}

void rc_admin_write_metrics(const rc_admin *a, struct evbuffer *out)
{
    static const char *const logins[] = {"ok", "invalid", "throttled"};
    static const char *const ops[] = {"join", "leave", "disconnect"};
    static const char *const refused[] = {"readonly", "invalid"};
    rc_metrics_put_scalar(out, "roomcast_admin_sockets", "gauge", "Admin UI sockets connected to this node.",
                          rc_sio_ns_sockets(a->sio, a->ns_index));
    rc_metrics_put_by_label(out, "roomcast_admin_logins_total", "counter",
                            "Admin UI logins, by result (throttled: over the login budget, bcrypt not run).",
                            "result", logins, a->logins, 0, LOGIN__COUNT);
    rc_metrics_put_by_label(out, "roomcast_admin_operations_total", "counter",
                            "Admin UI operations accepted from this node's admin sockets, by kind.", "op", ops,
                            a->ops, 0, OP__COUNT);
    rc_metrics_put_by_label(out, "roomcast_admin_operations_refused_total", "counter",
                            "Admin UI operations refused, by reason.", "reason", refused, a->refused, 0,
                            REFUSED__COUNT);
    rc_metrics_put_scalar(out, "roomcast_admin_messages_invalid_total", "counter",
                          "P:admin messages from other nodes that could not be read.", a->invalid);
    rc_admin_login_write_metrics(a->login, out);
}
