/* strmap: a set of strings with an optional string value each (open addressing, grows by
 * doubling). For bookkeeping that a backend rebuilds from its journal: keys already stored,
 * entry ids and the key each was assigned. Pure. */
#ifndef GW_STRMAP_H
#define GW_STRMAP_H

#include <stddef.h>

#include "err.h"

struct strmap {
    char **keys;
    char **vals;
    size_t cap, n;
};

/* The value of k ("" for a key stored without one), or NULL when absent. */
const char *strmap_get(const struct strmap *m, const char *k);
/* Insert k (and a copy of v, which may be NULL); an existing key keeps its value. 0 or
 * ERR_NOMEM. */
MUST_CHECK int strmap_put(struct strmap *m, const char *k, const char *v);
/* Free everything; the map is empty and usable again. */
void strmap_free(struct strmap *m);

#endif
