/* fuzz.h - what every libFuzzer target here shares.
 *
 * assert() is the targets' oracle: a fuzz run with asserts compiled out checks nothing beyond the
 * sanitizers. The fuzz build removes NDEBUG (CMakeLists.txt, ARBITER_FUZZ); this makes a build that
 * lost that fail at once instead of passing quietly. */
#ifndef ARBITER_FUZZ_H
#define ARBITER_FUZZ_H

#ifdef NDEBUG
#error "the fuzz targets need assert(): build them without NDEBUG (cmake -DARBITER_FUZZ=ON does)"
#endif

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

/* For a target's own checking code (reference parsers, decoders): no coverage feedback, so the
 * fuzzer is not rewarded for paths through the checks, and no comparison tracing, which would cost
 * more than the code under test. */
#define FUZZ_ORACLE __attribute__((no_sanitize("coverage"), noinline))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
