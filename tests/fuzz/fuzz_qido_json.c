/* libFuzzer target for the QIDO-RS answer converter (forwarder/aws/dicom_json.h): the input is
 * an answer body (an exact-size heap copy, so ASan catches any over-read). Every dataset it
 * gives must write back in Explicit VR Little Endian and parse again to the same size (the
 * converter never builds a tree the codec cannot carry); a failure must leave the list empty.
 * Byte 0 chooses small caps sometimes, so that the ERR_LIMIT paths run too. Also the
 * single-object form and the STS answer parser (sts.h) on the same bytes. */
#include <stdlib.h>
#include <string.h>

#include "forwarder/aws/dicom_json.h"
#include "forwarder/aws/sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    size_t n = size - 1;
    uint8_t *p = malloc(n ? n : 1);
    if (!p)
        return 0;
    memcpy(p, data + 1, n);
    struct dicom_json_opts o = {0};
    if (sel & 1) {
        o.max_objects = 4;
        o.limits.max_bytes = 64u * 1024u;
        o.limits.max_elems = 64;
        o.limits.max_depth = 3;
    }
    struct dicom_json_list l;
    int rc = dicom_json_parse_array(p, n, &o, &l);
    if (rc < 0 && (l.n || l.ds))
        __builtin_trap();
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        struct wbuf w;
        wbuf_init(&w, 8u << 20);
        if (dcm_ds_write(l.ds[i], DCM_TS_EXPLICIT_LE, &w) == 0) {
            struct dcm_ds *back = NULL;
            struct dcm_limits big = {16u << 20, 1u << 20, 64};
            if (dcm_ds_parse(w.p, w.len, DCM_TS_EXPLICIT_LE, &big, &back) < 0)
                __builtin_trap(); /* we built what the codec cannot read back */
            dcm_ds_free(back);
        }
        wbuf_cleanup(&w);
    }
    dicom_json_list_free(&l);
    if (sel & 2) {
        struct dcm_ds *ds = NULL;
        size_t dropped;
        if (dicom_json_parse_object(p, n, NULL, &ds, &dropped) < 0 && ds)
            __builtin_trap();
        dcm_ds_free(ds);
    }
    if (sel & 4) {
        struct aws_creds c;
        int packed;
        char arn[64];
        int r2 = sts_parse_assume_role(p, n, &c, &packed, arn, sizeof arn);
        if (memchr(c.access_key_id, 0, sizeof c.access_key_id) == NULL ||
            memchr(arn, 0, sizeof arn) == NULL || (r2 < 0 && c.access_key_id[0]))
            __builtin_trap();
    }
    free(p);
    return 0;
}
