/*
 * fuzz_node.h: a whole roomcast node inside a libFuzzer process, fed over a loopback TCP
 * connection. Each input is written to a fresh connection (after an optional fixed prefix, such
 * as a WebSocket upgrade request), the write side is shut, and the node's loop runs until it has
 * answered and closed or a turn budget runs out. Every layer a remote peer can reach is
 * exercised: HTTP parsing and limits, routing, WebSocket framing, Engine.IO, Socket.IO, JWT,
 * rules. Sanitizer reports and crashes are findings; answers are not checked.
 */
#include "roomcast/config.h"
#include "roomcast/node.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>
#include <stdio.h>

static struct event_base *fz_base;
static rc_node *fz_node;
static rc_config fz_cfg;
static int fz_port;

static void fz_setup(void)
{
    if (fz_node) return;
    setenv("ROOMCAST_JWT_SECRET", "fuzz-secret", 1);
    setenv("ROOMCAST_API_KEY", "fuzz-key", 1);
    setenv("ROOMCAST_BIND", "127.0.0.1", 1);
    setenv("ROOMCAST_LOG_LEVEL", "error", 1);
    unsetenv("ROOMCAST_PORT");
    unsetenv("ROOMCAST_CONFIG");
    unsetenv("ROOMCAST_REDIS_URL");
    rc_config_flags flags = {NULL, -1, NULL, "fuzz"};
    rc_config_errors errs = {0};
    if (rc_config_load(&fz_cfg, &flags, &errs) != 0) {
        for (size_t i = 0; i < errs.count; i++) fprintf(stderr, "config: %s\n", errs.items[i]);
        abort();
    }
    rc_config_errors_dispose(&errs);
    fz_cfg.port = 0; /* any free port */
    fz_cfg.http_header_timeout_ms = 200;
    fz_base = event_base_new();
    event_base_priority_init(fz_base, 3);
    const char *err = NULL;
    fz_node = rc_node_new(fz_base, &fz_cfg, &err);
    if (!fz_node) { fprintf(stderr, "node: %s\n", err ? err : "?"); abort(); }
    fz_port = rc_node_port(fz_node);
}

static void fz_feed(const uint8_t *prefix, size_t plen, const uint8_t *data, size_t size)
{
    fz_setup();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)fz_port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    event_base_loop(fz_base, EVLOOP_NONBLOCK);
    size_t total = plen + size, off = 0;
    uint8_t *buf = malloc(total ? total : 1);
    if (plen) memcpy(buf, prefix, plen);
    if (size) memcpy(buf + plen, data, size);
    char sink[65536];
    int turns = 0, closed = 0;
    while (turns++ < 200 && !closed) {
        if (off < total) {
            ssize_t w = write(fd, buf + off, total - off);
            if (w > 0) off += (size_t)w;
            if (off == total) shutdown(fd, SHUT_WR);
        }
        event_base_loop(fz_base, EVLOOP_NONBLOCK);
        for (;;) {
            ssize_t r = read(fd, sink, sizeof(sink));
            if (r == 0) { closed = 1; break; }
            if (r < 0) break;
        }
        if (off == total && turns > 20) break; /* answered what it could; a held poll stays open */
    }
    free(buf);
    close(fd);
    /* let the node notice the close and free what it held */
    for (int i = 0; i < 5; i++) event_base_loop(fz_base, EVLOOP_NONBLOCK);
}
