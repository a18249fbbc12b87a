/* addr: numeric "host:port" / "[v6]:port" parsing, splitting and formatting. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "net/addr.h"

Test(addr, parses_ipv4_and_bracketed_ipv6)
{
    struct sockaddr_storage ss;
    cr_assert_eq(addr_parse("127.0.0.1:11112", &ss), 0);
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
    cr_assert_eq(s4->sin_family, AF_INET);
    cr_assert_eq(ntohl(s4->sin_addr.s_addr), 0x7f000001u);
    cr_assert_eq(ntohs(s4->sin_port), 11112);
    cr_assert_eq(addr_parse("0.0.0.0:65535", &ss), 0);
    cr_assert_eq(ntohs(((const struct sockaddr_in *)&ss)->sin_port), 65535);
    cr_assert_eq(addr_parse("[::1]:9112", &ss), 0);
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
    cr_assert_eq(s6->sin6_family, AF_INET6);
    cr_assert(IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr));
    cr_assert_eq(ntohs(s6->sin6_port), 9112);
    cr_assert_eq(addr_parse("[::ffff:10.0.0.1]:1", &ss), 0);
    cr_assert_eq(ss.ss_family, AF_INET6);
}

Test(addr, refuses_malformed_addresses)
{
    const char *bad[] = {"",
                         "127.0.0.1",
                         "127.0.0.1:",
                         ":11112",
                         "127.0.0.1:65536",
                         "127.0.0.1:99999999999999999999",
                         "127.0.0.1:-1",
                         "127.0.0.1:+1",
                         "127.0.0.1:1a",
                         "127.0.0.1: 1",
                         "::1:80",
                         "[::1]80",
                         "[::1]",
                         "[::1:80",
                         "[]:80",
                         "256.0.0.1:80",
                         "1.2.3:80",
                         "localhost:80", /* names are resolved by the caller */
                         "[fe80::1%eth0]:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sockaddr_storage ss;
        cr_assert_eq(addr_parse(bad[i], &ss), ERR_CONFIG, "\"%s\" accepted", bad[i]);
    }
    struct sockaddr_storage ss;
    cr_assert_eq(addr_parse(NULL, &ss), ERR_CONFIG);
    char longs[400];
    memset(longs, '1', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    cr_assert_eq(addr_parse(longs, &ss), ERR_CONFIG);
    longs[200] = ':';
    cr_assert_eq(addr_parse(longs, &ss), ERR_CONFIG);
}

Test(addr, split_keeps_host_names_and_checks_room)
{
    char host[64];
    unsigned port = 0;
    cr_assert_eq(addr_split("core.internal:11112", host, sizeof host, &port), 0);
    cr_assert_str_eq(host, "core.internal");
    cr_assert_eq(port, 11112);
    cr_assert_eq(addr_split("[fd00::1]:2762", host, sizeof host, &port), 0);
    cr_assert_str_eq(host, "fd00::1");
    cr_assert_eq(port, 2762);
    char tiny[5];
    cr_assert_eq(addr_split("abcde:1", tiny, sizeof tiny, &port), ERR_CONFIG, "no room for NUL");
    cr_assert_eq(addr_split("abcd:1", tiny, sizeof tiny, &port), 0);
    cr_assert_str_eq(tiny, "abcd");
}

Test(addr, format_writes_v4_v6_and_unknown)
{
    char buf[64];
    struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(104)};
    s4.sin_addr.s_addr = htonl(0x0a000007);
    addr_format((const struct sockaddr *)&s4, buf, sizeof buf);
    cr_assert_str_eq(buf, "10.0.0.7:104");
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(11112)};
    cr_assert_eq(inet_pton(AF_INET6, "2001:db8::1", &s6.sin6_addr), 1);
    addr_format((const struct sockaddr *)&s6, buf, sizeof buf);
    cr_assert_str_eq(buf, "[2001:db8::1]:11112");
    struct sockaddr_storage un = {.ss_family = AF_UNIX};
    addr_format((const struct sockaddr *)&un, buf, sizeof buf);
    cr_assert_str_eq(buf, "?");
    addr_format(NULL, buf, sizeof buf);
    cr_assert_str_eq(buf, "?");
    /* a short buffer is truncated and terminated; a zero-sized one is left alone */
    char small[6];
    addr_format((const struct sockaddr *)&s4, small, sizeof small);
    cr_assert_str_eq(small, "10.0.");
    char none[1] = {'Z'};
    addr_format((const struct sockaddr *)&s4, none, 0);
    cr_assert_eq(none[0], 'Z');
}

Test(addr, format_then_parse_round_trips)
{
    const char *in[] = {"192.168.1.200:4242", "[fd12:3456::9]:1", "[::]:11112", "0.0.0.0:1"};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        struct sockaddr_storage ss;
        cr_assert_eq(addr_parse(in[i], &ss), 0);
        char buf[64];
        addr_format((const struct sockaddr *)&ss, buf, sizeof buf);
        cr_assert_str_eq(buf, in[i]);
    }
}
