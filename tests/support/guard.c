#include "guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static size_t data_span(size_t n, size_t pg)
{
    return (n + pg - 1) / pg * pg;
}

const uint8_t *guard_copy(const void *p, size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t span = data_span(n, pg);
    uint8_t *base = mmap(NULL, span + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                         -1, 0);
    if (base == MAP_FAILED) {
        perror("guard_copy: mmap");
        abort();
    }
    if (mprotect(base + span, pg, PROT_NONE) != 0) {
        perror("guard_copy: mprotect");
        abort();
    }
    uint8_t *out = base + span - n;
    if (n > 0)
        memcpy(out, p, n);
    /* the data itself is read-only too: a parser must never write into its input */
    if (span > 0 && mprotect(base, span, PROT_READ) != 0) {
        perror("guard_copy: mprotect");
        abort();
    }
    return out;
}

void guard_free(const uint8_t *p, size_t n)
{
    if (!p)
        return;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t span = data_span(n, pg);
    uintptr_t base = (uintptr_t)p + n - span;
    munmap((void *)base, span + pg);
}
