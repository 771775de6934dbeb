/* libFuzzer target: the metrics listener's request parser, fed as the server feeds it.
 *
 * Input: one options byte, then the bytes a client sends. They arrive in reads of a size the
 * options pick into a METRICS_REQUEST_MAX buffer (a heap block of exactly that size: a read past it
 * is an ASan report), and metrics_request_parse runs after each read, as metrics_on_read does,
 * until it decides. Checked:
 *   - an undecided request always leaves room in the buffer (a full buffer must be answered, or a
 *     client could hold a connection with nothing left to read into);
 *   - the decision agrees with a reference parser written from the rules in metrics.h, and does not
 *     change when the same bytes are parsed from an exact-size copy (no byte past length is read). */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "metrics.h"

#define DRIP_READS 64 /* reads of the chosen size; the rest of the input comes in one read */

FUZZ_ORACLE static bool headers_ended(const char *bytes, size_t length) {
    for (size_t i = 0; i + 1 < length; i++) {
        if (bytes[i] == '\n' && bytes[i + 1] == '\n')
            return true;
        if (i + 3 < length && memcmp(bytes + i, "\r\n\r\n", 4) == 0)
            return true;
    }
    return false;
}

/* The request line rules, token by token: METHOD (1-15 of A-Z) SP PATH ('/' then 0-254 bytes
 * without SP) SP "HTTP/1.0" or "HTTP/1.1", then "\r\n" or "\n". */
FUZZ_ORACLE static struct metrics_request reference_route(const char *bytes, size_t length) {
    struct metrics_request bad = {METRICS_ROUTE_BAD_REQUEST, false};
    size_t end = 0;
    while (end < length && bytes[end] != '\n')
        end++;
    if (end == length)
        return bad;
    if (end > 0 && bytes[end - 1] == '\r')
        end--;
    size_t method = 0;
    while (method < end && bytes[method] >= 'A' && bytes[method] <= 'Z')
        method++;
    if (method == 0 || method > 15 || method == end || bytes[method] != ' ')
        return bad;
    size_t path = method + 1, path_end = path;
    while (path_end < end && bytes[path_end] != ' ')
        path_end++;
    if (path_end == end || path_end == path || bytes[path] != '/' || path_end - path > 255)
        return bad;
    const char *version = bytes + path_end + 1;
    if (end - (path_end + 1) != 8 || (memcmp(version, "HTTP/1.0", 8) != 0 && memcmp(version, "HTTP/1.1", 8) != 0))
        return bad;
    size_t route_end = path;
    while (route_end < path_end && bytes[route_end] != '?')
        route_end++;
    /* a NUL ends the path for the server's C strings: so it does here */
    size_t nul = path;
    while (nul < route_end && bytes[nul] != '\0')
        nul++;
    route_end = nul;
    struct metrics_request request = {METRICS_ROUTE_NOT_FOUND, method == 4 && memcmp(bytes, "HEAD", 4) == 0};
    bool get = method == 3 && memcmp(bytes, "GET", 3) == 0;
    if (!get && !request.head_only)
        request.route = METRICS_ROUTE_BAD_METHOD;
    else if (route_end - path == 8 && memcmp(bytes + path, "/metrics", 8) == 0)
        request.route = METRICS_ROUTE_METRICS;
    else if (route_end - path == 8 && memcmp(bytes + path, "/healthz", 8) == 0)
        request.route = METRICS_ROUTE_HEALTHZ;
    else if (route_end - path == 6 && memcmp(bytes + path, "/livez", 6) == 0)
        request.route = METRICS_ROUTE_LIVEZ;
    return request;
}

FUZZ_ORACLE static void decision_check(const char *bytes, size_t length, struct metrics_request request) {
    switch (request.route) {
    case METRICS_ROUTE_INCOMPLETE:
        assert(length < METRICS_REQUEST_MAX);
        assert(!headers_ended(bytes, length));
        assert(length == 0 || (bytes[0] >= 'A' && bytes[0] <= 'Z'));
        assert(!request.head_only);
        return;
    case METRICS_ROUTE_NOT_HTTP:
        assert(length > 0 && (bytes[0] < 'A' || bytes[0] > 'Z'));
        assert(!headers_ended(bytes, length));
        return;
    case METRICS_ROUTE_TOO_LARGE:
        assert(length == METRICS_REQUEST_MAX);
        assert(!headers_ended(bytes, length));
        return;
    case METRICS_ROUTE_METRICS:
    case METRICS_ROUTE_HEALTHZ:
    case METRICS_ROUTE_LIVEZ:
    case METRICS_ROUTE_NOT_FOUND:
    case METRICS_ROUTE_BAD_METHOD:
    case METRICS_ROUTE_BAD_REQUEST: {
        assert(headers_ended(bytes, length));
        struct metrics_request expected = reference_route(bytes, length);
        assert(request.route == expected.route);
        if (request.route != METRICS_ROUTE_BAD_REQUEST)
            assert(request.head_only == expected.head_only);
        return;
    }
    }
    assert(!"metrics_request_parse returned a route outside the enum");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const size_t read_sizes[4] = {1, 7, 512, METRICS_REQUEST_MAX};
    if (size < 1)
        return 0;
    size_t read_size = read_sizes[data[0] & 3];
    data++, size--;
    char *request = malloc(METRICS_REQUEST_MAX);
    assert(request != NULL);
    size_t length = 0, at = 0;
    struct metrics_request decision = {METRICS_ROUTE_INCOMPLETE, false};
    for (unsigned reads = 0; at < size && decision.route == METRICS_ROUTE_INCOMPLETE; reads++) {
        size_t count = size - at;
        if (count > METRICS_REQUEST_MAX - length)
            count = METRICS_REQUEST_MAX - length;
        if (reads < DRIP_READS && count > read_size)
            count = read_size;
        assert(count > 0); /* an undecided request always has room: checked below */
        memcpy(request + length, data + at, count);
        length += count;
        at += count;
        decision = metrics_request_parse(request, length, METRICS_REQUEST_MAX);
        decision_check(request, length, decision);
    }
    char *exact = malloc(length ? length : 1);
    assert(exact != NULL);
    memcpy(exact, request, length);
    struct metrics_request again = metrics_request_parse(exact, length, METRICS_REQUEST_MAX);
    assert(again.route == decision.route && again.head_only == decision.head_only);
    free(exact);
    free(request);
    return 0;
}
