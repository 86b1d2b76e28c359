/* fuzz_node_ws.c: arbitrary bytes as WebSocket frames after a valid upgrade to an Engine.IO
 * WebSocket session (see fuzz_node.h): framing, Engine.IO and Socket.IO packets, CONNECT with
 * tokens, events through the default rules. */
#include "fuzz_node.h"

static const char upgrade[] =
    "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_feed((const uint8_t *)upgrade, sizeof(upgrade) - 1, data, size);
    return 0;
}
