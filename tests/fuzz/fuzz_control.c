/* libFuzzer target: the control protocol's request parser and command dispatch decisions.
 * Every input is treated as one request line; parsing must never crash, leak or accept a request
 * without a known command, and every error must serialise into a valid reply. */
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > CONTROL_LINE_MAX)
        return 0; /* the server never passes longer lines */
    struct control_request request;
    struct control_error error = {0};
    int rc = control_parse_request((const char *)data, size, &request, &error);
    if (rc == 0) {
        assert(request.command != NULL);
        assert(request.timeout > 0);
        gid_t groups[2] = {(gid_t)(size & 7), 100};
        bool any = control_permitted(request.command->permission, (uid_t)(size % 3), groups, 2, 1, size & 1, 100);
        (void)any;
    } else {
        assert(error.code != NULL);
        json_t *reply = control_error_reply(&error);
        assert(reply != NULL);
        char *text = json_dumps(reply, JSON_COMPACT);
        assert(text != NULL && strchr(text, '\n') == NULL);
        free(text);
        json_decref(reply);
    }
    return 0;
}
