/* handshake.h - the first line on a worker channel: the shim's hello and the protocol version. */
#ifndef ARBITER_HANDSHAKE_H
#define ARBITER_HANDSHAKE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The version of the worker channel protocol this arbiter speaks (docs/worker-channel.md, "The
 * handshake"); PROTOCOL in worker-shim/arbiter_worker/handshake.py. Every worker gets it as
 * ARBITER_PROTOCOL. Raise both together whenever a message or its meaning changes. */
#define ARBITER_CHANNEL_PROTOCOL 1

/* Judges a worker's first channel message (NULL: the line was not JSON). True for a hello of
 * ARBITER_CHANNEL_PROTOCOL. Otherwise false, and `problem` says what the worker sent, names both
 * versions and the fix. */
bool handshake_accept(const json_t *message, char *problem, size_t size);

#endif
