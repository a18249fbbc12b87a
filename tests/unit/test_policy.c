/* policy.json parsing and certificate matching (edge/policy). */
#include <criterion/criterion.h>
#include <string.h>

#include "policy.h"

static const char g_good[] =
    "{ \"clients\": ["
    "  { \"id\": \"ct\", \"match\": { \"subject_cn\": \"ct-room-1\" },"
    "    \"calling_ae\": [\" CT_ROOM1 \"], \"called_ae\": [\"DICOM_CORE\"], \"route\": \"vpc\","
    "    \"max_associations\": 4, \"max_per_minute\": 60 },"
    "  { \"id\": \"fp\", \"match\": { \"fingerprint_sha256\": "
    "    \"AB:CD:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:"
    "aa:bb:cc:dd\" }, \"calling_ae\": [\"*\"], \"called_ae\": [\"X\"] },"
    "  { \"id\": \"dns\", \"match\": { \"san_dns\": \"MR.example\", \"issuer\": \"CN=CA\" },"
    "    \"calling_ae\": [\"MR\"], \"called_ae\": [\"*\"] },"
    "  { \"id\": \"uri\", \"match\": { \"san_uri\": \"urn:x\" },"
    "    \"calling_ae\": [\"US\"], \"called_ae\": [\"*\"] } ],"
    "  \"routes\": { \"vpc\": { \"upstream\": \"core.internal:11112\", \"proxy_protocol\": true,"
    "    \"called_ae_rewrite\": \"CORE\", \"tls\": { \"ca\": \"/ca.pem\" } } } }";

static struct policy *parse_ok(const char *json)
{
    struct wbuf errs;
    wbuf_init(&errs, 65536);
    struct policy *p = NULL;
    int rc = policy_parse(json, strlen(json), &p, &errs);
    cr_assert_eq(rc, 0, "policy refused: %.*s", (int)errs.len, errs.p ? (char *)errs.p : "");
    wbuf_cleanup(&errs);
    return p;
}

/* Parse, expect failure, and return whether the problem text mentions needle. */
static bool parse_fails_with(const char *json, const char *needle)
{
    struct wbuf errs;
    wbuf_init(&errs, 65536);
    struct policy *p = NULL;
    int rc = policy_parse(json, strlen(json), &p, &errs);
    wbuf_u8(&errs, 0);
    bool found = rc < 0 && p == NULL && strstr((char *)errs.p, needle) != NULL;
    if (!found)
        cr_log_error("rc %d, problems: %s", rc, (char *)errs.p);
    wbuf_cleanup(&errs);
    policy_free(p);
    return found;
}

Test(policy, parses_clients_routes_and_limits)
{
    struct policy *p = parse_ok(g_good);
    cr_assert_eq(p->n_clients, 4);
    cr_assert_eq(p->n_routes, 1);
    const struct policy_route *r = &p->routes[0];
    cr_assert_str_eq(r->host, "core.internal");
    cr_assert_eq(r->port, 11112);
    cr_assert(r->proxy_protocol);
    cr_assert(r->tls);
    cr_assert_str_eq(r->tls_opts.server_name, "core.internal");
    cr_assert_str_eq(r->called_rewrite, "CORE");
    cr_assert_str_eq(p->clients[0].calling[0], "CT_ROOM1", "AE titles are trimmed (PS3.5)");
    cr_assert_eq(p->clients[0].max_associations, 4);
    cr_assert_eq(p->clients[0].max_per_minute, 60);
    cr_assert(p->clients[1].has_fp);
    cr_assert_eq(p->clients[1].fp[0], 0xab);
    cr_assert_eq(p->clients[1].fp[31], 0xdd);
    cr_assert_eq(p->clients[1].route, 0, "a single route is the default");
    policy_free(p);
}

Test(policy, matches_every_given_field)
{
    struct policy *p = parse_ok(g_good);
    struct tls_peer_id id;
    memset(&id, 0, sizeof id);
    snprintf(id.cn, sizeof id.cn, "ct-room-1");
    cr_assert_eq(policy_match(p, &id, NULL), &p->clients[0]);
    cr_assert(policy_calling_ok(&p->clients[0], "CT_ROOM1"));
    cr_assert_not(policy_calling_ok(&p->clients[0], "ct_room1"), "case-sensitive");
    cr_assert_not(policy_called_ok(&p->clients[0], "OTHER"));

    memset(&id, 0, sizeof id);
    snprintf(id.cn, sizeof id.cn, "ct-room-10");
    cr_assert_null(policy_match(p, &id, NULL), "no prefix matches");

    memset(&id, 0, sizeof id);
    id.n_dns = 2;
    snprintf(id.dns[0], sizeof id.dns[0], "a.example");
    snprintf(id.dns[1], sizeof id.dns[1], "mr.EXAMPLE");
    cr_assert_null(policy_match(p, &id, NULL), "issuer must match too");
    snprintf(id.issuer, sizeof id.issuer, "CN=CA");
    cr_assert_eq(policy_match(p, &id, NULL), &p->clients[2], "DNS names are case-insensitive");
    cr_assert(policy_calling_ok(&p->clients[2], "MR"));
    cr_assert(policy_called_ok(&p->clients[2], "ANYTHING"));
    cr_assert_not(policy_called_ok(&p->clients[2], ""), "an empty title never passes");

    memset(&id, 0, sizeof id);
    id.n_uri = 1;
    snprintf(id.uri[0], sizeof id.uri[0], "urn:x");
    cr_assert_eq(policy_match(p, &id, NULL), &p->clients[3]);

    memset(&id, 0, sizeof id);
    id.fp[0] = 0xab;
    id.fp[1] = 0xcd;
    for (int i = 2; i < 32; i++)
        id.fp[i] = p->clients[1].fp[i];
    cr_assert_eq(policy_match(p, &id, NULL), &p->clients[1]);
    id.fp[31] ^= 1;
    cr_assert_null(policy_match(p, &id, NULL));
    policy_free(p);
}

Test(policy, walks_several_entries_for_one_certificate)
{
    static const char json[] =
        "{ \"clients\": ["
        " { \"id\": \"a\", \"match\": { \"subject_cn\": \"x\" }, \"calling_ae\": [\"A\"],"
        "   \"called_ae\": [\"*\"], \"route\": \"r1\" },"
        " { \"id\": \"b\", \"match\": { \"subject_cn\": \"x\" }, \"calling_ae\": [\"B\"],"
        "   \"called_ae\": [\"*\"], \"route\": \"r2\" } ],"
        " \"routes\": { \"r1\": { \"upstream\": \"127.0.0.1:1\" },"
        "               \"r2\": { \"upstream\": \"127.0.0.1:2\" } } }";
    struct policy *p = parse_ok(json);
    struct tls_peer_id id;
    memset(&id, 0, sizeof id);
    snprintf(id.cn, sizeof id.cn, "x");
    const struct policy_client *c = policy_match(p, &id, NULL);
    cr_assert_eq(c, &p->clients[0]);
    c = policy_match(p, &id, c);
    cr_assert_eq(c, &p->clients[1]);
    cr_assert_eq(c->route, 1);
    cr_assert_null(policy_match(p, &id, c));
    policy_free(p);
}

Test(policy, refuses_what_would_weaken_default_deny)
{
    cr_assert(parse_fails_with("{ \"clients\": [ { \"id\": \"a\", \"match\": { \"issuer\": "
                               "\"CN=CA\" }, \"calling_ae\": [\"A\"], \"called_ae\": [\"B\"] } ],"
                               " \"routes\": { \"r\": { \"upstream\": \"h:1\" } } }",
                               "issuer alone"));
    cr_assert(parse_fails_with("{ \"clients\": [ { \"id\": \"a\", \"match\": { \"subject_cn\": "
                               "\"x\" }, \"calling_ae\": [], \"called_ae\": [\"B\"] } ],"
                               " \"routes\": { \"r\": { \"upstream\": \"h:1\" } } }",
                               "calling_ae"));
    cr_assert(parse_fails_with("{ \"clients\": [ { \"id\": \"a\", \"match\": { \"subject_cn\": "
                               "\"x\" }, \"calling_ae\": [\"A\\\\B\"], \"called_ae\": [\"B\"] } ],"
                               " \"routes\": { \"r\": { \"upstream\": \"h:1\" } } }",
                               "invalid AE title"));
    cr_assert(parse_fails_with("{ \"clients\": [ { \"id\": \"a\", \"match\": { \"subject_cn\": "
                               "\"x\" }, \"calling_ae\": [\"A\"], \"called_ae\": [\"B\"],"
                               " \"route\": \"nope\" } ],"
                               " \"routes\": { \"r\": { \"upstream\": \"h:1\" } } }",
                               "names no route"));
    cr_assert(parse_fails_with("{ \"clients\": [ { \"id\": \"a\", \"match\": { \"subject_cn\": "
                               "\"x\" }, \"calling_ae\": [\"A\"], \"called_ae\": [\"B\"] },"
                               " { \"id\": \"a\", \"match\": { \"subject_cn\": \"y\" },"
                               " \"calling_ae\": [\"A\"], \"called_ae\": [\"B\"] } ],"
                               " \"routes\": { \"r\": { \"upstream\": \"h:1\" } } }",
                               "duplicate"));
    cr_assert(parse_fails_with("{ \"clients\": [ { \"id\": \"a\", \"match\": { "
                               "\"fingerprint_sha256\": \"abcd\" }, \"calling_ae\": [\"A\"],"
                               " \"called_ae\": [\"B\"] } ],"
                               " \"routes\": { \"r\": { \"upstream\": \"h:1\" } } }",
                               "64 hex"));
    cr_assert(parse_fails_with("{ \"clients\": [], \"routes\": { \"r\": { \"upstream\": "
                               "\"h\" } } }",
                               "host:port"));
    cr_assert(parse_fails_with("{ \"clients\": [], \"routes\": { \"r\": { \"upstream\": "
                               "\"h:1\", \"tls\": {} } } }",
                               "ca"));
    cr_assert(parse_fails_with("{ \"clients\": [] }", "routes"));
    cr_assert(parse_fails_with("[1,2]", "not a JSON object"));
    cr_assert(parse_fails_with("{ \"clients\": [ { \"id\": \"a\", \"match\": { \"subject_cn\": "
                               "\"x\" }, \"calling_ae\": [\"A\"], \"called_ae\": [\"B\"],"
                               " \"max_associations\": -1 } ],"
                               " \"routes\": { \"r\": { \"upstream\": \"h:1\" } } }",
                               "max_associations"));
}

Test(policy, refuses_truncated_json_at_every_length)
{
    size_t n = strlen(g_good);
    for (size_t cut = 0; cut < n; cut++) {
        struct wbuf errs;
        wbuf_init(&errs, 65536);
        struct policy *p = NULL;
        int rc = policy_parse(g_good, cut, &p, &errs);
        cr_assert_lt(rc, 0, "cut at %zu accepted", cut);
        cr_assert_null(p);
        wbuf_cleanup(&errs);
    }
}
