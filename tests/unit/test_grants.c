/* grants: the text form the edge sends in its PROXY v2 TLV parses to what it says, round-trips,
 * and anything else (an unknown service or scope, a stray part, over-long text) is refused so
 * that the core trusts nothing it does not understand. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "common/grants.h"
#include "guard.h"
#include "net/proxy2.h"

static int parse(const char *s, struct grants *g)
{
    size_t n = strlen(s);
    const uint8_t *in = guard_copy(s, n); /* the last byte sits against a PROT_NONE page */
    int rc = grants_parse((const char *)in, n, g);
    guard_free(in, n);
    return rc;
}

Test(grants, parses_services_and_scope)
{
    struct grants g;
    cr_assert_eq(parse("services=find,get,move;scope=own", &g), 0);
    cr_assert_eq(g.services, GRANT_FIND | GRANT_GET | GRANT_MOVE);
    cr_assert_eq(g.scope, GRANT_SCOPE_OWN);
    cr_assert_eq(parse("scope=all", &g), 0);
    cr_assert_eq(g.services, GRANT_DEFAULT_SERVICES, "absent services: store and echo");
    cr_assert_eq(g.scope, GRANT_SCOPE_ALL);
    cr_assert_eq(parse("", &g), 0);
    cr_assert_eq(g.scope, GRANT_SCOPE_NONE, "absent scope: no reads");
    cr_assert_eq(parse("services=;scope=none", &g), 0);
    cr_assert_eq(g.services, 0u, "an empty list grants nothing");
}

Test(grants, refuses_what_it_does_not_understand)
{
    struct grants g;
    static const char *bad[] = {"services=store,fly", "scope=everything", "service=store",
                                "services=store;scope=own;extra=1", "services=store,,echo",
                                "scope=own;", "SCOPE=own", "services=store,"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(parse(bad[i], &g), ERR_MALFORMED, "%s", bad[i]);
    char longer[GRANTS_TEXT_MAX + 2];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    cr_assert_eq(parse(longer, &g), ERR_MALFORMED);
}

Test(grants, format_round_trips)
{
    struct grants g = {.services = GRANT_STORE | GRANT_COMMIT | GRANT_FIND,
                       .scope = GRANT_SCOPE_SHARED};
    char text[GRANTS_TEXT_MAX + 1];
    cr_assert_eq(grants_format(&g, text, sizeof text), 0);
    cr_assert_str_eq(text, "services=store,find,commit;scope=shared");
    struct grants back;
    cr_assert_eq(parse(text, &back), 0);
    cr_assert_eq(back.services, g.services);
    cr_assert_eq(back.scope, g.scope);
    char small[10];
    cr_assert_eq(grants_format(&g, small, sizeof small), ERR_LIMIT);
}

Test(grants, travel_in_the_proxy_v2_header)
{
    struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(40000)};
    struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons(11112)};
    struct wbuf w;
    wbuf_init(&w, 4096);
    cr_assert_eq(proxy2_encode_grants(&w, (const struct sockaddr *)&s, (const struct sockaddr *)&d,
                                      "ws-1", NULL, "ws-1", "services=find;scope=own"),
                 0);
    struct proxy2_info info;
    cr_assert_eq(proxy2_parse(w.p, w.len, &info), (int)w.len);
    cr_assert_str_eq(info.grants, "services=find;scope=own");
    cr_assert_str_eq(info.client_id, "ws-1");
    wbuf_cleanup(&w);
}
