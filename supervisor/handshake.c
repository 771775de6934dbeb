/* handshake.c - is this worker's shim one we can talk to?
 *
 * An upgrade replaces the binary and the shim on disk while the old arbiter keeps running, so a
 * reload can start shims that speak another version of the channel protocol (and a stray
 * ARBITER_SHIM_PATH or PYTHONPATH can pair an arbiter with another install's shim). Messages would
 * then be misread in ways that show up much later, as a drain that fails. So the shim's first line
 * must be a hello naming its protocol version, and anything else is refused here, at once, with
 * both versions and the fix in the message. The shim checks the other direction (ARBITER_PROTOCOL). */
#include "handshake.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "version.h"

#define HANDSHAKE_FIX                                                                                             \
    "the arbiter and its worker shim come from different installs (an upgrade while the arbiter was running?): " \
    "restart the arbiter (systemctl restart, not reload), or reinstall arbiter so the binary and arbiter_worker " \
    "come from the same version"

/* A string the worker sent, made safe for one log line: printable ASCII only, at most 40 bytes. */
static void handshake_copy_printable(const char *text, char *out, size_t size) {
    size_t n = 0;
    for (; text && *text && n + 1 < size && n < 40; text++)
        out[n++] = isprint((unsigned char)*text) ? *text : '?';
    out[n] = '\0';
}

bool handshake_accept(const json_t *message, char *problem, size_t size) {
    const char *type = json_string_value(json_object_get(message, "type"));
    if (!type || strcmp(type, "hello") != 0) {
        char sent[64] = "a line that is not a JSON object with a \"type\"";
        if (type) {
            char printable[48];
            handshake_copy_printable(type, printable, sizeof printable);
            snprintf(sent, sizeof sent, "'%s'", printable);
        }
        snprintf(problem, size,
                 "its first channel message is %s, not a hello: its worker shim predates the protocol handshake, "
                 "and arbiter %s speaks worker-channel protocol %d; %s",
                 sent, ARBITER_VERSION, ARBITER_CHANNEL_PROTOCOL, HANDSHAKE_FIX);
        return false;
    }
    const json_t *protocol = json_object_get(message, "protocol");
    if (json_is_integer(protocol) && json_integer_value(protocol) == ARBITER_CHANNEL_PROTOCOL)
        return true;
    char shim[48];
    handshake_copy_printable(json_string_value(json_object_get(message, "shim")), shim, sizeof shim);
    if (!shim[0])
        snprintf(shim, sizeof shim, "of unknown version");
    if (json_is_integer(protocol))
        snprintf(problem, size,
                 "its worker shim (arbiter_worker %s) speaks worker-channel protocol %lld, arbiter %s speaks protocol %d; %s",
                 shim, (long long)json_integer_value(protocol), ARBITER_VERSION, ARBITER_CHANNEL_PROTOCOL, HANDSHAKE_FIX);
    else
        snprintf(problem, size,
                 "its worker shim (arbiter_worker %s) sent a hello without a protocol number, arbiter %s speaks "
                 "worker-channel protocol %d; %s",
                 shim, ARBITER_VERSION, ARBITER_CHANNEL_PROTOCOL, HANDSHAKE_FIX);
    return false;
}
