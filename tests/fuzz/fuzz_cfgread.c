/* libFuzzer target for the typed config reader (common/cfgread) through its two richest
 * tables: the edge's policy (maps and arrays of objects, lists through conv, nested checks) and
 * the aws backend object (strict tables, enums, doubles, 64-bit bounds). Input: the JSON text,
 * as an exact-size heap copy (ASan sees an over-read). Every result must be 0 with an object,
 * or a failure with at least one problem line. */
#include <stdlib.h>
#include <string.h>

#include "forwarder/pipeline_config.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct wbuf errs;
    wbuf_init(&errs, 1u << 20);
    struct policy *p = NULL;
    int rc = policy_parse(text, size, &p, &errs); /* not NUL-terminated for the reader */
    if ((rc == 0) != (p != NULL) || (rc < 0 && errs.len == 0 && !errs.err))
        abort();
    policy_free(p);
    wbuf_reset(&errs);
    struct pipeline_config *c = malloc(sizeof *c);
    if (c) {
        rc = pipeline_config_parse(text, c, &errs);
        if (rc < 0 && errs.len == 0 && !errs.err)
            abort();
        free(c);
    }
    wbuf_cleanup(&errs);
    free(text);
    return 0;
}
