/* libFuzzer target for the reverse path's admission (edge/admission admission_reverse) and the
 * service classification of a proposal (edge/sop_service). Input: byte 0 picks the caller's CN
 * (bit 0: allowed) and whether an allow list is in force (bit 1); the rest is what the core
 * sends after the TLS handshake, offered as an exact-size heap copy (ASan sees any over-read).
 * Invariants: an admitted association names a device with a return route whose services cover
 * every context asked for, and the forward path never admits a client none of whose asked
 * services is granted when some are denied. */
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "common/grants.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char g_policy[] =
    "{ \"clients\": ["
    "  { \"id\": \"ct\", \"match\": { \"subject_cn\": \"dicom-core\" },"
    "    \"calling_ae\": [\"CT_ROOM1\", \"DICOM_CORE\"], \"called_ae\": [\"*\"],"
    "    \"return_address\": { \"host\": \"127.0.0.1\", \"port\": 104 } },"
    "  { \"id\": \"mod\", \"match\": { \"subject_cn\": \"x\" },"
    "    \"calling_ae\": [\"MOD1\"], \"called_ae\": [\"*\"], \"services\": [\"commit\"],"
    "    \"return_address\": { \"host\": \"mod1\", \"port\": 4104 } } ],"
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    size_t n = size - 1;
    uint8_t *p = malloc(n ? n : 1);
    if (!p)
        abort();
    memcpy(p, data + 1, n);
    static struct tls_peer_id id;
    memset(&id, 0, sizeof id);
    memcpy(id.cn, (sel & 1) ? "dicom-core" : "dicom-edge", 11);
    static const char allow[][257] = {"dicom-core"};
    struct adm_reverse_rules rules = {.allow_cn = allow, .n_allow_cn = (sel & 2) ? 1 : 0};
    struct adm_decision d;
    enum adm_verdict v = admission_reverse(policy(), &rules, &id, p, n, &d);
    if (v == ADM_ADMIT) {
        if (!d.client || !d.client->has_return || !d.route)
            __builtin_trap();
        if (d.asked & ~d.client->grants.services)
            __builtin_trap(); /* every service asked is granted to the device */
        if ((sel & 2) && !(sel & 1))
            __builtin_trap(); /* a CN outside the allow list never gets through */
        if (d.pdu_len > n)
            __builtin_trap();
    }
    v = admission_decide(policy(), &id, p, n, &d);
    if (v == ADM_ADMIT && d.denied && (d.asked & d.client->grants.services) == 0)
        __builtin_trap();
    free(p);
    return 0;
}
