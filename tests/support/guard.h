/* guard: copies of test input whose last byte sits against a PROT_NONE page, so that a parser
 * reading one byte past its input crashes the test instead of passing by luck (STYLE.md §10,
 * as picohttpparser's tests do). */
#ifndef GW_TEST_GUARD_H
#define GW_TEST_GUARD_H

#include <stddef.h>
#include <stdint.h>

/* Copy p[0..n) into fresh pages so that p[n] is the first byte of an inaccessible page. n may be
 * 0 (the returned pointer then points at the guard page itself). Aborts the test process when
 * mapping fails. Release with guard_free(ptr, n). */
const uint8_t *guard_copy(const void *p, size_t n);
void guard_free(const uint8_t *p, size_t n);

#endif
