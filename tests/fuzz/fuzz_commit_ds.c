/* libFuzzer target for commit_ds_parse_action (an N-ACTION's Action Information, network bytes)
 * and spool/commit_rec's decoder (the record read back from disk or DynamoDB).
 * Input: byte 0 bit 0 picks the syntax, bit 1 the record decoder instead; the rest is the data.
 * A request that parses is turned into an N-EVENT-REPORT dataset, which must parse back. */
#include <stdlib.h>
#include <string.h>

#include "commit_ds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum dcm_ts ts = (data[0] & 1) ? DCM_TS_EXPLICIT_LE : DCM_TS_IMPLICIT_LE;
    struct commit_txn t;
    memset(&t, 0, sizeof t);
    if (data[0] & 2) {
        if (commit_rec_decode((const char *)data + 1, size - 1, &t) == 0)
            commit_txn_cleanup(&t);
        return 0;
    }
    const char *why = NULL;
    if (commit_ds_parse_action(data + 1, size - 1, ts, 64, &t, &why) != 0)
        return 0;
    for (size_t i = 0; i < t.n_refs; i++)
        t.refs[i].result = (i & 1) ? COMMIT_OK : COMMIT_NO_SUCH_INSTANCE;
    t.event = 2;
    struct wbuf b;
    wbuf_init(&b, 1u << 22);
    if (commit_ds_event(&t, ts, &b) != 0)
        __builtin_trap();
    struct dcm_ds *ds = NULL;
    if (dcm_ds_parse(b.p, b.len, ts, NULL, &ds) != 0)
        __builtin_trap();
    dcm_ds_free(ds);
    wbuf_cleanup(&b);
    commit_txn_cleanup(&t);
    return 0;
}
