/* version.h - the arbiter's version: a leaf that any file may include. */
#ifndef ARBITER_VERSION_H
#define ARBITER_VERSION_H

#define ARBITER_VERSION "0.1.0"

#endif
