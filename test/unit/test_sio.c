/*
 * test_sio.c: the Socket.IO server (src/sio.c, src/sio_broadcast.c) over fake Engine.IO sessions,
 * black-box through include/roomcast/sio.h.
 *
 * The fakes: this file defines every rc_eio_* and rc_http_* function sio calls, so the linker
 * takes them from here and never pulls eio.o or http.o out of libroomcast.a (if sio starts
 * calling another of their functions, the link fails with a duplicate symbol: add a fake). A
 * fake session records what its client would receive, in order ("4..." text packets and "bin:"
 * attachments), with the frame behind each and the session's hold count at that moment; a fake
 * handshake request carries an Authorization header and a query.
 *
 * Covered: CONNECT (reply, namespaces, the auth payload kept without its token, a namespace
 * whose admit hook judges the payload and keeps none of it), broadcast
 * encoding (once, shared by reference by every recipient, binary attachments), except-lists and
 * namespace-wide broadcasts, control ops (join, leave, disconnect), on_room_open with the opening
 * socket and holds (the CONNECT reply waits behind a hold taken for the user room; a release
 * after the client closed touches nothing), max rooms per socket, the node's room budget (rooms
 * and memberships), the namespace's and an event's own rateLimit (kept by the session across a
 * namespace re-CONNECT, which costs a token), the bound on a binary packet's total size. Every test's teardown closes every client, frees the server, drops the frames
 * the fakes kept and checks that every rc_frame was released (rc_frames_live).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "roomcast/auth.h"
#include "roomcast/common.h"
#include "roomcast/eio.h"
#include "roomcast/frame.h"
#include "roomcast/http.h"
#include "roomcast/server.h"
#include "roomcast/sio.h"

/* ---- fake Engine.IO sessions ---------------------------------------------------------------- */

#define MAX_SENT 32

struct rc_eio_session {
    char *sent[MAX_SENT];         /* what the client receives: "4..." or "bin:<bytes>" */
    rc_frame *frames[MAX_SENT];   /* the shared frame behind sent[i] (NULL for copies) */
    int holds_at[MAX_SENT];       /* the hold count when sent[i] was sent */
    int count;
    int holds;
    int connected;
    const char *closed;           /* rc_eio_close's reason, NULL while open */
    void *owner;                  /* the sio client (on_open's result) */
    int owner_closed;             /* on_close was delivered */
    rc_addr addr;                 /* the client's address (rc_eio_client_addr) */
};

static void record(rc_eio_session *s, char *text, rc_frame *f)
{
    assert_true(s->count < MAX_SENT);
    s->sent[s->count] = text;
    s->frames[s->count] = f;
    s->holds_at[s->count] = s->holds;
    s->count++;
}

void rc_eio_send_frame(rc_eio_session *s, rc_frame *f)
{
    const uint8_t *p = rc_frame_payload(f);
    char *text = rc_malloc(f->len + 5);
    size_t o = 0;
    if (f->opcode == RC_WS_OP_BINARY) { memcpy(text, "bin:", 4); o = 4; }
    memcpy(text + o, p, f->len);
    text[o + f->len] = '\0';
    record(s, text, rc_frame_ref(f));
}

void rc_eio_send_message(rc_eio_session *s, int binary, const void *data, size_t len)
{
    char *text = rc_malloc(len + 5);
    memcpy(text, binary ? "bin:" : "4", binary ? 4 : 1);
    size_t o = binary ? 4 : 1;
    memcpy(text + o, data, len);
    text[o + len] = '\0';
    record(s, text, NULL);
}

void rc_eio_close(rc_eio_session *s, const char *reason) { if (!s->closed) s->closed = reason; }
const char rc_eio_reason_too_large[] = "packet too large";
void rc_eio_mark_connected(rc_eio_session *s) { s->connected = 1; }
void rc_eio_hold(rc_eio_session *s) { s->holds++; }
void rc_eio_release(rc_eio_session *s) { assert_true(s->holds > 0); s->holds--; }
int rc_eio_writable(const rc_eio_session *s) { return !s->closed && !s->holds; }
static uint64_t fake_disconnects[RC_EIO_DISC__COUNT];
void rc_eio_count_disconnect(int reason) { fake_disconnects[reason]++; }
/* for src/sio_admin.c (linked in through rc_sio__client_on_upgrade) */
const char *rc_eio_sid(const rc_eio_session *s) { return "fake-session-id-0000"; }
int rc_eio_is_polling(const rc_eio_session *s) { return 0; }
const rc_addr *rc_eio_client_addr(const rc_eio_session *s) { return &s->addr; }

/* ---- fake handshake requests ---------------------------------------------------------------- */

typedef struct fake_req {
    rc_http_request req;          /* first: sio sees &req */
    const char *authorization;
    const char *token;            /* ?token= */
} fake_req;

const char *rc_http_header(const rc_http_request *req, const char *name)
{
    const fake_req *f = (const fake_req *)req;
    return strcasecmp(name, "Authorization") == 0 ? f->authorization : NULL;
}

int rc_http_query_param(const rc_http_request *req, const char *name, char *buf, size_t n)
{
    const fake_req *f = (const fake_req *)req;
    if (strcmp(name, "token") != 0 || !f->token) return 0;
    snprintf(buf, n, "%s", f->token);
    return 1;
}

/* ---- fixture -------------------------------------------------------------------------------- */

#define MAX_CLIENTS 8
#define SECRET "unit test secret"

typedef struct opened {
    char ns[32], room[64];
    rc_sio_socket *opener;
} opened;

typedef struct fixture {
    rc_sio_server *srv;
    const rc_eio_callbacks *cb;
    rc_sio_hooks hooks;
    rc_auth_config jwt;
    rc_eio_session sessions[MAX_CLIENTS];
    int clients;
    uint64_t frames_before;
    rc_sio_socket *last;          /* the socket of the last on_connect */
    char *last_auth;              /* on_connect's auth, printed */
    opened opens[16];
    int open_count, close_count, disconnects, memberships;
    int hold_on_open;             /* on_room_open takes a hold on the opener */
    rc_sio_hold *holds[16];
    int hold_count;
    rc_sio_event last_event;      /* name copied below; args not kept */
    char last_event_name[32];
    int events;
} fixture;

static void on_connect(void *arg, rc_sio_socket *s, const cJSON *auth)
{
    fixture *f = arg;
    f->last = s;
    rc_free(f->last_auth);
    f->last_auth = auth ? cJSON_PrintUnformatted(auth) : NULL;
}

static void on_event(void *arg, rc_sio_socket *s, const rc_sio_event *ev)
{
    fixture *f = arg;
    f->last_event = *ev;
    snprintf(f->last_event_name, sizeof(f->last_event_name), "%s", ev->name);
    f->events++;
}

static void on_membership(void *arg, rc_sio_socket *s, const char *room, int joined)
{
    ((fixture *)arg)->memberships++;
}

static void on_disconnect(void *arg, rc_sio_socket *s) { ((fixture *)arg)->disconnects++; }

static void on_room_open(void *arg, const char *ns, const char *room, rc_sio_socket *opener)
{
    fixture *f = arg;
    assert_true(f->open_count < 16);
    opened *o = &f->opens[f->open_count++];
    snprintf(o->ns, sizeof(o->ns), "%s", ns);
    snprintf(o->room, sizeof(o->room), "%s", room);
    o->opener = opener;
    if (f->hold_on_open && opener) f->holds[f->hold_count++] = rc_sio_hold_new(opener);
}

static void on_room_close(void *arg, const char *ns, const char *room) { ((fixture *)arg)->close_count++; }

static char *user_room(void *arg, const rc_sio_socket *s)
{
    return rc_strcat3("user:", rc_sio_socket_user(s), NULL);
}

/* Event "slow" has its own limit (index 0): one per minute. */
static int event_limit(void *arg, const rc_sio_socket *s, const char *event, unsigned *events,
                       unsigned *interval_ms)
{
    if (strcmp(event, "slow") != 0) return -1;
    *events = 1;
    *interval_ms = 60000;
    return 0;
}

/* Namespaces: "/" (auth none), "/chat" (auth optional, ?token= accepted), "/limited" (auth
 * none, 2 events a minute, one event with a limit of its own). */
static const rc_sio_ns_settings ns_settings[] = {
    {.name = "/", .auth = RC_SIO_AUTH_NONE},
    {.name = "/chat", .auth = RC_SIO_AUTH_OPTIONAL, .token_in_query = 1},
    {.name = "/limited", .auth = RC_SIO_AUTH_NONE, .rate_events = 2, .rate_interval_ms = 60000,
     .event_limit_count = 1},
    {.name = "/admin", .auth = RC_SIO_AUTH_HOOK},
};

/* The hook of "/admin": admits {"password":"ok"} only; remembers the address it was given. */
static const rc_addr *admit_from;
static const char *admit(void *arg, size_t ns_index, const cJSON *auth, const rc_addr *from)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(auth, "password");
    assert_int_equal(ns_index, 3);
    admit_from = from;
    return cJSON_IsString(p) && strcmp(p->valuestring, "ok") == 0 ? NULL : "invalid credentials";
}

/* The server with the node's budgets: rooms and memberships (all namespaces), maxPayload for a
 * binary packet's text and attachments together (0: none). */
static int setup_limits(void **state, size_t max_rooms, size_t max_memberships, size_t max_packet)
{
    fixture *f = rc_calloc(1, sizeof(*f));
    f->frames_before = rc_frames_live;
    f->jwt.algs = RC_ALG_HS256;
    f->jwt.hs_secret = (char *)SECRET;
    f->jwt.hs_secret_len = strlen(SECRET);
    f->jwt.leeway_s = 30;
    f->jwt.user_claim = (char *)"sub";
    f->hooks = (rc_sio_hooks){
        .on_connect = on_connect, .on_event = on_event, .on_membership = on_membership,
        .on_disconnect = on_disconnect, .on_room_open = on_room_open, .on_room_close = on_room_close,
        .user_room = user_room, .event_limit = event_limit, .admit = admit, .arg = f,
    };
    rc_sio_settings set = {
        .ns = ns_settings, .ns_count = RC_ARRAY_LEN(ns_settings), .jwt = &f->jwt,
        .max_rooms_per_socket = 3, .max_rooms = max_rooms, .max_memberships = max_memberships,
        .max_packet_bytes = max_packet, .token_expiry = RC_SIO_EXPIRY_RECONNECT,
    };
    f->srv = rc_sio_server_new(NULL, &set, &f->hooks);
    f->cb = rc_sio_eio_callbacks(f->srv);
    *state = f;
    return 0;
}

static int setup(void **state) { return setup_limits(state, 0, 0, 0); }
/* 4 rooms, 5 memberships, 100-byte binary packets */
static int setup_budget(void **state) { return setup_limits(state, 4, 5, 100); }

static void client_close(fixture *f, rc_eio_session *s)
{
    if (s->owner_closed) return;
    s->owner_closed = 1;
    f->cb->on_close(s->owner, s->closed ? s->closed : "transport close");
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < f->clients; i++) client_close(f, &f->sessions[i]);
    rc_sio_server_free(f->srv);
    for (int i = 0; i < f->hold_count; i++)
        if (f->holds[i]) rc_sio_hold_release(f->holds[i]);
    for (int i = 0; i < f->clients; i++) {
        rc_eio_session *s = &f->sessions[i];
        for (int k = 0; k < s->count; k++) {
            rc_free(s->sent[k]);
            if (s->frames[k]) rc_frame_unref(s->frames[k]);
        }
    }
    assert_int_equal(rc_frames_live, f->frames_before); /* every frame released */
    rc_free(f->last_auth);
    rc_free(f);
    return 0;
}

/* A new Engine.IO session with its handshake (authorization and token may be NULL). */
static rc_eio_session *client_open(fixture *f, const char *authorization, const char *token)
{
    assert_true(f->clients < MAX_CLIENTS);
    rc_eio_session *s = &f->sessions[f->clients++];
    fake_req req = {.authorization = authorization, .token = token};
    s->owner = f->cb->on_open(f->cb->arg, s, &req.req);
    assert_non_null(s->owner);
    return s;
}

/* The client sends a Socket.IO packet (text, without Engine.IO's '4'). */
static void client_send(fixture *f, rc_eio_session *s, const char *packet)
{
    f->cb->on_message(s->owner, 0, (const uint8_t *)packet, strlen(packet));
}

/* CONNECT to nsp with the payload (may be NULL); returns the new socket. */
static rc_sio_socket *client_connect(fixture *f, rc_eio_session *s, const char *nsp, const char *payload)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "0%s%s%s", strcmp(nsp, "/") ? nsp : "", strcmp(nsp, "/") && payload ? "," : "",
             payload ? payload : "");
    f->last = NULL;
    int before = s->count;
    client_send(f, s, buf);
    assert_non_null(f->last);
    /* the reply is the last thing sent: 40[<nsp>,]{"sid":"<id>"} */
    assert_true(s->count > before);
    char want[256];
    snprintf(want, sizeof(want), "40%s%s{\"sid\":\"%s\"}", strcmp(nsp, "/") ? nsp : "", strcmp(nsp, "/") ? "," : "",
             rc_sio_socket_id(f->last));
    assert_string_equal(s->sent[s->count - 1], want);
    assert_true(s->connected);
    return f->last;
}

static char *auth_text(const rc_sio_socket *s)
{
    const cJSON *a = rc_sio_socket_auth(s);
    return a ? cJSON_PrintUnformatted(a) : NULL;
}

/* ---- CONNECT -------------------------------------------------------------------------------- */

static void test_connect_keeps_auth_without_token(void **state)
{
    fixture *f = *state;
    rc_eio_session *c1 = client_open(f, NULL, NULL);
    rc_sio_socket *s1 = client_connect(f, c1, "/", "{\"token\":\"ignored\",\"room\":\"lobby\",\"n\":2}");
    /* on_connect sees the whole payload; the socket keeps the rest, parsed once */
    assert_string_equal(f->last_auth, "{\"token\":\"ignored\",\"room\":\"lobby\",\"n\":2}");
    char *a = auth_text(s1);
    assert_string_equal(a, "{\"room\":\"lobby\",\"n\":2}");
    cJSON_free(a);
    assert_ptr_equal(rc_sio_socket_auth(s1), rc_sio_socket_auth(s1)); /* the same object each time */
    assert_null(rc_sio_socket_user(s1));
    assert_string_equal(rc_sio_socket_ns(s1), "/");
    assert_int_equal(rc_sio_socket_ns_index(s1), 0);

    /* nothing left after the token, or no payload at all: no auth object */
    rc_eio_session *c2 = client_open(f, NULL, NULL);
    rc_sio_socket *s2 = client_connect(f, c2, "/", "{\"token\":\"x\"}");
    assert_null(rc_sio_socket_auth(s2));
    rc_sio_socket *s3 = client_connect(f, c2, "/limited", NULL);
    assert_null(rc_sio_socket_auth(s3));
    assert_null(f->last_auth);
    assert_int_equal(rc_sio_socket_ns_index(s3), 2);

    assert_ptr_equal(rc_sio_find_socket(f->srv, 0, rc_sio_socket_id(s1)), s1);
    assert_null(rc_sio_find_socket(f->srv, 1, rc_sio_socket_id(s1)));
    assert_int_equal(rc_sio_socket_count(f->srv), 3);
}

static void test_connect_errors(void **state)
{
    fixture *f = *state;
    rc_eio_session *c = client_open(f, NULL, NULL);
    client_send(f, c, "0/nowhere,");
    assert_int_equal(c->count, 1);
    assert_string_equal(c->sent[0], "44/nowhere,{\"message\":\"Invalid namespace\"}");
    /* a bad token where auth is optional: refused with its reason */
    client_send(f, c, "0/chat,{\"token\":\"not.a.jwt\"}");
    assert_int_equal(c->count, 2);
    assert_string_equal(c->sent[1], "44/chat,{\"message\":\"unauthorized\",\"data\":{\"code\":\"malformed_token\"}}");
    assert_int_equal(rc_sio_socket_count(f->srv), 0);
    assert_null(c->closed);
    /* a second CONNECT to the same namespace closes the session */
    client_connect(f, c, "/", NULL);
    client_send(f, c, "0");
    assert_non_null(c->closed);
}

/* RC_SIO_AUTH_HOOK: the admit hook decides, a token is neither needed nor enough, the payload
 * (a password) is not kept on the socket. */
static void test_connect_hook_auth(void **state)
{
    fixture *f = *state;
    rc_eio_session *c = client_open(f, NULL, NULL);
    client_send(f, c, "0/admin,{\"password\":\"no\"}");
    assert_string_equal(c->sent[c->count - 1], "44/admin,{\"message\":\"invalid credentials\"}");
    assert_ptr_equal(admit_from, &c->addr); /* the hook hears the session's client address */
    client_send(f, c, "0/admin,");
    assert_string_equal(c->sent[c->count - 1], "44/admin,{\"message\":\"invalid credentials\"}");
    assert_int_equal(rc_sio_socket_count(f->srv), 0);
    assert_null(c->closed);
    rc_sio_socket *s = client_connect(f, c, "/admin", "{\"password\":\"ok\",\"username\":\"a\"}");
    assert_null(rc_sio_socket_auth(s));
    assert_null(rc_sio_socket_user(s));
    assert_int_equal(rc_sio_socket_ns_index(s), 3);
    /* without the hook, such a namespace admits nobody */
    f->hooks.admit = NULL;
    rc_eio_session *c2 = client_open(f, NULL, NULL);
    client_send(f, c2, "0/admin,{\"password\":\"ok\"}");
    assert_string_equal(c2->sent[c2->count - 1], "44/admin,{\"message\":\"unauthorized\"}");
}

/* ---- rooms, on_room_open and holds ---------------------------------------------------------- */

static void test_room_open_passes_opener(void **state)
{
    fixture *f = *state;
    rc_eio_session *c1 = client_open(f, NULL, NULL), *c2 = client_open(f, NULL, NULL);
    rc_sio_socket *s1 = client_connect(f, c1, "/", NULL);
    rc_sio_socket *s2 = client_connect(f, c2, "/", NULL);
    assert_int_equal(rc_sio_join(s1, "r"), 1);
    assert_int_equal(f->open_count, 1);
    assert_string_equal(f->opens[0].ns, "/");
    assert_string_equal(f->opens[0].room, "r");
    assert_ptr_equal(f->opens[0].opener, s1);
    assert_int_equal(rc_sio_join(s1, "r"), 0);      /* already a member */
    assert_int_equal(rc_sio_join(s2, "r"), 1);      /* not an open */
    assert_int_equal(f->open_count, 1);
    assert_int_equal(f->memberships, 2);
    assert_true(rc_sio_is_member(s2, "r"));
    assert_int_equal(rc_sio_leave(s1, "r"), 1);
    assert_int_equal(rc_sio_leave(s2, "r"), 1);
    assert_int_equal(f->close_count, 1);
    assert_int_equal(rc_sio_leave(s2, "r"), 0);

    /* max_rooms_per_socket is 3: a fourth room is refused, a room it is in still answers 0 */
    assert_int_equal(rc_sio_join(s1, "a"), 1);
    assert_int_equal(rc_sio_join(s1, "b"), 1);
    assert_int_equal(rc_sio_join(s1, "c"), 1);
    assert_int_equal(rc_sio_join(s1, "d"), RC_SIO_JOIN_TOO_MANY);
    assert_int_equal(rc_sio_join(s1, "c"), 0);
    assert_false(rc_sio_is_member(s1, "d"));
}

static void test_hold_delays_connect_reply_for_user_room(void **state)
{
    fixture *f = *state;
    f->hold_on_open = 1;
    char *tok = rc_auth_mint(&f->jwt, "alice", NULL, 3600, time(NULL));
    assert_non_null(tok);
    char auth[1024];
    snprintf(auth, sizeof(auth), "Bearer %s", tok);
    rc_eio_session *c = client_open(f, auth, NULL);
    rc_sio_socket *s = client_connect(f, c, "/chat", NULL);
    assert_string_equal(rc_sio_socket_user(s), "alice");
    assert_non_null(rc_sio_socket_claims(s));
    /* the user room opened with the socket, before the reply: the reply waits behind the hold */
    assert_int_equal(f->open_count, 1);
    assert_string_equal(f->opens[0].room, "user:alice");
    assert_ptr_equal(f->opens[0].opener, s);
    assert_true(rc_sio_is_member(s, "user:alice"));
    assert_int_equal(c->holds, 1);
    assert_int_equal(c->holds_at[c->count - 1], 1);
    rc_sio_hold_release(f->holds[0]);
    f->holds[0] = NULL;
    assert_int_equal(c->holds, 0);

    /* a token in the query is accepted on /chat; a hold released after its client closed
     * touches nothing */
    rc_eio_session *c2 = client_open(f, NULL, tok);
    rc_sio_socket *s2 = client_connect(f, c2, "/chat", NULL);
    assert_string_equal(rc_sio_socket_user(s2), "alice"); /* same user room: no open, no hold */
    assert_int_equal(c2->holds, 0);
    assert_int_equal(rc_sio_join(s2, "fresh"), 1);
    assert_int_equal(c2->holds, 1);
    client_close(f, c2);
    rc_sio_hold_release(f->holds[1]);
    f->holds[1] = NULL;
    assert_int_equal(c2->holds, 1); /* the session is gone: no release reached it */
    rc_free(tok);
}

/* ---- broadcast ------------------------------------------------------------------------------ */

static void test_broadcast_shared_frames_and_except(void **state)
{
    fixture *f = *state;
    rc_eio_session *c[3];
    rc_sio_socket *s[3];
    for (int i = 0; i < 3; i++) {
        c[i] = client_open(f, NULL, NULL);
        s[i] = client_connect(f, c[i], "/", NULL);
        assert_int_equal(rc_sio_join(s[i], "r"), 1);
    }
    int before[3] = {c[0]->count, c[1]->count, c[2]->count};
    const char *except[] = {rc_sio_socket_id(s[1])};
    rc_bp_message msg = {.kind = RC_BP_EMIT, .ns = "/", .room = "r", .event = "news",
                         .args_json = "[1,\"a\\\"b\"]", .except = except, .except_count = 1};
    msg.args_len = strlen(msg.args_json);
    uint64_t live = rc_frames_live;
    assert_int_equal(rc_sio_broadcast(f->srv, &msg, 0), 2);
    assert_int_equal(rc_frames_live, live + 1);   /* encoded once */
    assert_int_equal(c[1]->count, before[1]);
    rc_frame *head = c[0]->frames[before[0]];
    assert_non_null(head);
    assert_ptr_equal(c[2]->frames[before[2]], head); /* the same bytes for every recipient */
    assert_int_equal(head->refs, 2);                 /* the two sessions' references only */
    assert_string_equal(c[0]->sent[before[0]], "42[\"news\",1,\"a\\\"b\"]");

    /* binary: a BINARY_EVENT header and one shared frame per attachment */
    const uint8_t bytes[] = {1, 2, 3};
    rc_bp_bytes att = {bytes, 3};
    rc_bp_message bin = {.kind = RC_BP_EMIT, .ns = "/", .room = "r", .event = "blob",
                         .args_json = "[{\"_placeholder\":true,\"num\":0}]",
                         .attachments = &att, .attachment_count = 1};
    bin.args_len = strlen(bin.args_json);
    assert_int_equal(rc_sio_broadcast(f->srv, &bin, 0), 3);
    int k = c[1]->count;
    assert_string_equal(c[1]->sent[k - 2], "451-[\"blob\",{\"_placeholder\":true,\"num\":0}]");
    assert_memory_equal(c[1]->sent[k - 1], "bin:\x01\x02\x03", 7);
    assert_ptr_equal(c[0]->frames[c[0]->count - 1], c[1]->frames[k - 1]);

    /* the whole namespace (no room), another namespace, a room with no member here */
    rc_eio_session *other = client_open(f, NULL, NULL);
    client_connect(f, other, "/limited", NULL);
    int other_before = other->count;
    rc_bp_message all = {.kind = RC_BP_EMIT, .ns = "/", .event = "all", .args_json = "[]", .args_len = 2};
    assert_int_equal(rc_sio_broadcast(f->srv, &all, 0), 3);
    assert_string_equal(c[2]->sent[c[2]->count - 1], "42[\"all\"]");
    assert_int_equal(other->count, other_before);
    rc_bp_message none = {.kind = RC_BP_EMIT, .ns = "/", .room = "empty", .event = "x"};
    live = rc_frames_live;
    assert_int_equal(rc_sio_broadcast(f->srv, &none, 0), 0);
    assert_int_equal(rc_frames_live, live);   /* nothing encoded for nobody */
    rc_bp_message chat = {.kind = RC_BP_EMIT, .ns = "/limited", .event = "hi", .args_json = "[]", .args_len = 2};
    assert_int_equal(rc_sio_broadcast(f->srv, &chat, 0), 1);
    assert_string_equal(other->sent[other->count - 1], "42/limited,[\"hi\"]");
    assert_true(rc_sio_has_ns(f->srv, "/limited"));
    assert_false(rc_sio_has_ns(f->srv, "/nope"));
}

static void test_control_ops(void **state)
{
    fixture *f = *state;
    rc_eio_session *c[3];
    rc_sio_socket *s[3];
    for (int i = 0; i < 3; i++) {
        c[i] = client_open(f, NULL, NULL);
        s[i] = client_connect(f, c[i], "/", NULL);
    }
    rc_sio_join(s[0], "r");
    rc_sio_join(s[1], "r");
    const char *except[] = {rc_sio_socket_id(s[1])};
    rc_bp_message join = {.kind = RC_BP_JOIN, .ns = "/", .room = "r", .target_room = "t",
                          .except = except, .except_count = 1};
    assert_int_equal(rc_sio_control(f->srv, &join), 1);
    assert_true(rc_sio_is_member(s[0], "t"));
    assert_false(rc_sio_is_member(s[1], "t"));
    assert_ptr_equal(f->opens[f->open_count - 1].opener, s[0]);
    rc_bp_message leave = {.kind = RC_BP_LEAVE, .ns = "/", .room = "t", .target_room = "r"};
    assert_int_equal(rc_sio_control(f->srv, &leave), 1);
    assert_false(rc_sio_is_member(s[0], "r"));
    rc_bp_message disc = {.kind = RC_BP_DISCONNECT, .ns = "/", .room = "r"};
    assert_int_equal(rc_sio_control(f->srv, &disc), 1);
    assert_string_equal(c[1]->sent[c[1]->count - 1], "41");
    assert_int_equal(f->disconnects, 1);
    assert_int_equal(rc_sio_socket_count(f->srv), 2);
    /* no room: every socket of the namespace */
    rc_bp_message all = {.kind = RC_BP_DISCONNECT, .ns = "/"};
    assert_int_equal(rc_sio_control(f->srv, &all), 2);
    assert_int_equal(rc_sio_socket_count(f->srv), 0);
}

/* ---- inbound events and rate limits ---------------------------------------------------------- */

static void test_rate_limits(void **state)
{
    fixture *f = *state;
    rc_eio_session *c = client_open(f, NULL, NULL);
    client_connect(f, c, "/limited", NULL);
    client_send(f, c, "2/limited,[\"slow\",1]");
    assert_int_equal(f->events, 1);
    assert_string_equal(f->last_event_name, "slow");
    assert_false(f->last_event.limited);
    client_send(f, c, "2/limited,[\"slow\",2]");   /* its own limit: one a minute */
    assert_true(f->last_event.limited);
    client_send(f, c, "2/limited,5[\"fast\"]");    /* the namespace's second token was spent */
    assert_true(f->last_event.limited);
    assert_int_equal(f->last_event.ack_id, 5);
    assert_int_equal(f->events, 3);

    /* "/" has no limits */
    client_connect(f, c, "/", NULL);
    for (int i = 0; i < 5; i++) client_send(f, c, "2[\"slow\"]");
    assert_false(f->last_event.limited);
}

/* A namespace DISCONNECT and CONNECT on the same session start from what is left of the budget;
 * a CONNECT after the first costs a token, and is refused (CONNECT_ERROR) when none is left. */
static void test_rate_limits_belong_to_the_session(void **state)
{
    fixture *f = *state;
    rc_eio_session *c = client_open(f, NULL, NULL);
    client_connect(f, c, "/limited", NULL);               /* the first CONNECT is free */
    client_send(f, c, "2/limited,[\"fast\"]");
    assert_false(f->last_event.limited);
    client_send(f, c, "1/limited,");                      /* leaves: 1 token left */
    client_connect(f, c, "/limited", NULL);               /* costs it */
    client_send(f, c, "2/limited,[\"fast\"]");
    assert_true(f->last_event.limited);
    client_send(f, c, "1/limited,");
    int before = c->count;
    client_send(f, c, "0/limited,");                      /* no token: refused, nothing created */
    assert_int_equal(c->count, before + 1);
    assert_string_equal(c->sent[before], "44/limited,{\"message\":\"rate_limited\",\"data\":{\"code\":\"rate_limited\"}}");
    assert_int_equal(rc_sio_socket_count(f->srv), 0);
    assert_null(c->closed);
    /* another session has its own budget; "/" has no rateLimit: CONNECTs there cost nothing */
    rc_eio_session *c2 = client_open(f, NULL, NULL);
    client_connect(f, c2, "/limited", NULL);
    client_send(f, c2, "2/limited,[\"fast\"]");
    assert_false(f->last_event.limited);
    for (int i = 0; i < 3; i++) {
        client_connect(f, c, "/", NULL);
        client_send(f, c, "1");
    }
}

/* The node's room budget (4 rooms, 5 memberships here): a join that would open a fifth room, or
 * add a sixth membership, is refused; joining a room one is in never is; a user room at CONNECT
 * is never refused; leaving frees the budget. */
static void test_room_budget(void **state)
{
    fixture *f = *state;
    rc_eio_session *c1 = client_open(f, NULL, NULL), *c2 = client_open(f, NULL, NULL);
    rc_sio_socket *s1 = client_connect(f, c1, "/", NULL);
    rc_sio_socket *s2 = client_connect(f, c2, "/limited", NULL);
    assert_int_equal(rc_sio_join(s1, "a"), 1);
    assert_int_equal(rc_sio_join(s1, "b"), 1);
    assert_int_equal(rc_sio_join(s2, "c"), 1);
    assert_int_equal(rc_sio_join(s2, "d"), 1);             /* 4 rooms, every namespace counted */
    assert_int_equal(rc_sio_join(s2, "e"), RC_SIO_JOIN_ROOM_LIMIT);
    assert_false(rc_sio_is_member(s2, "e"));
    assert_int_equal(f->open_count, 4);
    assert_int_equal(rc_sio_join(s2, "d"), 0);             /* already in: not refused */
    rc_sio_socket *s3 = client_connect(f, c2, "/", NULL);
    assert_int_equal(rc_sio_join(s3, "a"), 1);             /* an existing room: 5 memberships */
    assert_int_equal(rc_sio_join(s3, "b"), RC_SIO_JOIN_ROOM_LIMIT); /* a sixth */
    assert_int_equal(rc_sio_leave(s1, "b"), 1);            /* b closes: 3 rooms, 4 memberships */
    assert_int_equal(rc_sio_join(s2, "e"), 1);
    /* a user room is joined whatever the budget (5 rooms, 6 memberships now) */
    char *tok = rc_auth_mint(&f->jwt, "bob", NULL, 3600, time(NULL));
    char auth[1024];
    snprintf(auth, sizeof(auth), "Bearer %s", tok);
    rc_eio_session *c3 = client_open(f, auth, NULL);
    rc_sio_socket *s4 = client_connect(f, c3, "/chat", NULL);
    assert_true(rc_sio_is_member(s4, "user:bob"));
    assert_int_equal(rc_sio_join(s4, "f"), RC_SIO_JOIN_ROOM_LIMIT);
    rc_free(tok);
    /* a control op's join is held to the budget too */
    rc_bp_message join = {.kind = RC_BP_JOIN, .ns = "/", .room = "a", .target_room = "g"};
    assert_int_equal(rc_sio_control(f->srv, &join), 0);
    /* a socket that goes frees its rooms and memberships */
    client_close(f, c2);
    assert_int_equal(rc_sio_control(f->srv, &join), 1);
}

/* A binary packet is bounded as a whole (100 bytes here): its text and attachments together. */
static void test_binary_packet_bound(void **state)
{
    fixture *f = *state;
    rc_eio_session *c = client_open(f, NULL, NULL);
    client_connect(f, c, "/", NULL);
    static const char head[] = "52-[\"up\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]";
    uint8_t bytes[100] = {0};
    size_t room = 100 - strlen(head);
    /* exactly 100: dispatched */
    client_send(f, c, head);
    f->cb->on_message(c->owner, 1, bytes, room / 2);
    f->cb->on_message(c->owner, 1, bytes, room - room / 2);
    assert_int_equal(f->events, 1);
    assert_int_equal(f->last_event.attachment_count, 2);
    assert_null(c->closed);
    /* one byte more: refused, the session closed, nothing dispatched */
    client_send(f, c, head);
    f->cb->on_message(c->owner, 1, bytes, room / 2);
    f->cb->on_message(c->owner, 1, bytes, room - room / 2 + 1);
    assert_int_equal(f->events, 1);
    assert_string_equal(c->closed, "packet too large");
    /* the text alone over the bound */
    rc_eio_session *c2 = client_open(f, NULL, NULL);
    client_connect(f, c2, "/", NULL);
    char big[160];
    snprintf(big, sizeof(big), "51-[\"up\",{\"_placeholder\":true,\"num\":0},\"%080d\"]", 0);
    client_send(f, c2, big);
    assert_string_equal(c2->closed, "packet too large");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_keeps_auth_without_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_hook_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_room_open_passes_opener, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_delays_connect_reply_for_user_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broadcast_shared_frames_and_except, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limits_belong_to_the_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_room_budget, setup_budget, teardown),
        cmocka_unit_test_setup_teardown(test_binary_packet_bound, setup_budget, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
