/* libFuzzer target for common/dcm_xcode (a stored dataset, from a client, transcoded on its way
 * to a C-GET / C-MOVE receiver) and for the file backend's attribute extraction
 * (backend_file/file_backend_extract.c) over the same bytes.
 * Input: byte 0 the chunk size for the transcoder (1..256, 0: all at once), then the dataset.
 * Checked: the output of each feed stays within its documented bound (2n + 16 per feed plus
 * the finish's delimiters); the output does not depend on the chunking; when the transcoder
 * accepts the whole input, its output parses as an Implicit VR dataset whenever the input
 * parses as an Explicit VR one. */
#include <stdlib.h>
#include <string.h>

#include "backend_file/file_backend_int.h"
#include "common/dcm_ds.h"
#include "common/dcm_xcode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run(const uint8_t *p, size_t n, size_t step, struct wbuf *out)
{
    struct dcm_xcode *x = dcm_xcode_new();
    if (!x)
        return ERR_NOMEM;
    int rc = 0;
    for (size_t off = 0; rc == 0 && off < n;) {
        size_t k = step && step < n - off ? step : n - off;
        size_t before = out->len;
        rc = dcm_xcode_feed(x, p + off, k, out);
        if (rc == 0 && out->len - before > 2 * k + 16 * (DCM_XCODE_DEPTH + 1))
            __builtin_trap();
        off += k;
    }
    if (rc == 0)
        rc = dcm_xcode_finish(x, out);
    dcm_xcode_free(x);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    size_t step = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    struct wbuf a, b;
    wbuf_init(&a, 4 * n + 4096);
    wbuf_init(&b, 4 * n + 4096);
    int ra = run(p, n, 0, &a), rb = run(p, n, step, &b);
    if ((ra == 0) != (rb == 0) || (ra == 0 && (a.len != b.len || memcmp(a.p, b.p, a.len) != 0)))
        __builtin_trap();
    struct dcm_ds *in = NULL, *out = NULL;
    if (ra == 0 && dcm_ds_parse(p, n, DCM_TS_EXPLICIT_LE, NULL, &in) == 0 &&
        dcm_ds_parse(a.p, a.len, DCM_TS_IMPLICIT_LE, NULL, &out) == ERR_TRUNCATED)
        __builtin_trap(); /* what was whole must stay whole */
    dcm_ds_free(in);
    dcm_ds_free(out);
    wbuf_cleanup(&a);
    wbuf_cleanup(&b);

    struct fx_attrs fx;
    fx_attrs_init(&fx);
    (void)!fx_extract_head(p, n, step & 1, &fx);
    for (int l = 0; l < FX_LEVELS; l++) {
        struct dcm_ds *d = NULL;
        if (fx.blob[l].len &&
            dcm_ds_parse(fx.blob[l].p, fx.blob[l].len, DCM_TS_EXPLICIT_LE, NULL, &d) != 0)
            __builtin_trap(); /* the index only keeps what reads back */
        dcm_ds_free(d);
    }
    fx_attrs_cleanup(&fx);
    return 0;
}
