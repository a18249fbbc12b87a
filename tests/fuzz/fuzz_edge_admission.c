/* libFuzzer target for the edge's first-PDU admission path (edge/admission, edge/pdu_follow).
 * Input: byte 0 picks the certificate identity (bit 0: known CN; bit 1: SAN URI) and the chunk
 * size (upper bits), the rest is what the client sends after the TLS handshake. The bytes are
 * offered as the edge offers them (growing prefixes, each an exact-size heap copy so ASan sees
 * any over-read) and once whole; both must reach the same verdict, and a decided PDU must lie
 * within the input. The same bytes then go through the PDU follower in chunks. */
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "pdu_follow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char g_policy[] =
    "{ \"clients\": ["
    "  { \"id\": \"ct\", \"match\": { \"subject_cn\": \"ct-room-1\" },"
    "    \"calling_ae\": [\"CT_ROOM1\", \"CT2\"], \"called_ae\": [\"DICOM_CORE\"] },"
    "  { \"id\": \"uri\", \"match\": { \"san_uri\": \"urn:x\" },"
    "    \"calling_ae\": [\"*\"], \"called_ae\": [\"*\"], \"max_associations\": 1 } ],"
    "  \"routes\": { \"vpc\": { \"upstream\": \"127.0.0.1:11112\" } } }";

static struct policy *policy(void)
{
    static struct policy *p;
    if (!p) {
        struct wbuf errs;
        wbuf_init(&errs, 65536);
        if (policy_parse(g_policy, strlen(g_policy), &p, &errs) < 0)
            abort();
        wbuf_cleanup(&errs);
    }
    return p;
}

static enum adm_verdict decide_copy(const struct tls_peer_id *id, const uint8_t *p, size_t n,
                                    struct adm_decision *d)
{
    uint8_t *c = malloc(n ? n : 1);
    if (!c)
        abort();
    memcpy(c, p, n);
    enum adm_verdict v = admission_decide(policy(), id, c, n, d);
    free(c);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    static struct tls_peer_id id;
    memset(&id, 0, sizeof id);
    if (sel & 1)
        memcpy(id.cn, "ct-room-1", 10);
    if (sel & 2) {
        id.n_uri = 1;
        memcpy(id.uri[0], "urn:x", 6);
    }
    size_t step = (size_t)(sel >> 2) * 97 + 1;

    struct adm_decision whole, part;
    enum adm_verdict vw = decide_copy(&id, p, n, &whole);
    enum adm_verdict vp = ADM_NEED_MORE;
    for (size_t have = step < n ? step : n; have <= n; have += step) {
        vp = decide_copy(&id, p, have, &part);
        if (vp != ADM_NEED_MORE || have == n)
            break;
        if (have + step > n)
            have = n - step; /* the last round offers everything */
    }
    if (n == 0)
        vp = decide_copy(&id, p, 0, &part);
    if (vp != vw)
        __builtin_trap();
    if (vw == ADM_ADMIT || vw == ADM_REJECT) {
        if (whole.pdu_len > n || whole.pdu_len < UL_HDR_LEN || part.pdu_len != whole.pdu_len)
            __builtin_trap();
        if (vw == ADM_ADMIT && (!whole.client || !policy_calling_ok(whole.client, whole.calling) ||
                                !policy_called_ok(whole.client, whole.called)))
            __builtin_trap(); /* default deny: nothing admitted that the policy does not list */
        if (vw == ADM_ADMIT && !(sel & 3))
            __builtin_trap(); /* no identity, no admission */
    }

    struct pdu_follow f;
    pdu_follow_init(&f, 65536, (sel & 4) ? PDU_FROM_REQUESTOR : PDU_FROM_ACCEPTOR, true);
    for (size_t at = 0; at < n; at += step) {
        size_t k = n - at < step ? n - at : step;
        if (pdu_follow_feed(&f, p + at, k) < 0)
            break;
    }
    if (f.first.len > UL_PRE_ASSOC_MAX + UL_HDR_LEN)
        __builtin_trap();
    pdu_follow_cleanup(&f);
    return 0;
}
