/* fuzz_node_http.c: arbitrary bytes as an HTTP client of a whole node (see fuzz_node.h). */
#include "fuzz_node.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_feed(NULL, 0, data, size);
    return 0;
}
