// CHECK for the C++ unit tests: an assert that survives NDEBUG and counts failures
// (each test's exit status is g_failures).
#pragma once

#include <cstdio>

static int g_failures = 0;
#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            ++g_failures;                                                                \
        }                                                                                \
    } while (0)
