/* audit_config: the "audit" object: defaults, every key read, every mistake reported as one
 * "audit.KEY: why" line (unknown keys included), derived repository names. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "audit/audit_config.h"

static int parse(const char *json, struct audit_config *c, char *errs, size_t n)
{
    audit_config_defaults(c);
    struct wbuf e;
    wbuf_init(&e, 8192);
    int rc = audit_config_parse(json, c, &e);
    snprintf(errs, n, "%.*s", (int)e.len, e.p ? (const char *)e.p : "");
    wbuf_cleanup(&e);
    return rc;
}

Test(audit_config, absent_means_disabled)
{
    struct audit_config c;
    audit_config_defaults(&c);
    struct wbuf e;
    wbuf_init(&e, 100);
    cr_assert_eq(audit_config_parse(NULL, &c, &e), 0);
    cr_assert(!c.enabled);
    wbuf_cleanup(&e);
}

Test(audit_config, minimal_tls_and_udp_with_defaults)
{
    struct audit_config c;
    char errs[2048];
    int rc = parse("{\"repositories\":[{\"host\":\"arr.example\",\"ca\":\"/ca.pem\","
                   "\"cert\":\"/c.pem\",\"key\":\"/k.pem\"},"
                   "{\"transport\":\"udp\",\"host\":\"10.0.0.9\"}],"
                   "\"queue_dir\":\"/var/q\",\"hash_key_file\":\"/k\"}",
                   &c, errs, sizeof errs);
    cr_assert_eq(rc, 0, "%s", errs);
    cr_assert(c.enabled);
    cr_assert_eq(c.n_repos, 2);
    cr_assert_eq(c.repos[0].transport, AUDIT_TRANSPORT_TLS);
    cr_assert_eq(c.repos[0].port, 6514);
    cr_assert_str_eq(c.repos[0].server_name, "arr.example");
    cr_assert_str_eq(c.repos[0].name, "tls-arr.example-6514");
    cr_assert_str_eq(c.repos[0].tls_profile, "bcp195-nd");
    cr_assert_eq(c.repos[1].port, 514);
    cr_assert_str_eq(c.repos[1].name, "udp-10.0.0.9-514");
    cr_assert_eq(c.on_full, AQ_DROP_OLDEST);
    cr_assert(!c.patient_include);
    cr_assert_eq(c.queue_max_messages, 100000);
    cr_assert_eq(c.ack_grace_ms, 1000);
}

Test(audit_config, every_problem_is_reported)
{
    struct audit_config c;
    char errs[4096];
    int rc = parse("{\"repositories\":[{\"transport\":\"tcp\",\"host\":\"h\"},"
                   "{\"host\":\"h2\",\"cert\":\"/c\"},"
                   "{\"transport\":\"udp\",\"host\":\"u\",\"ca\":\"/x\"}],"
                   "\"on_full\":\"block\",\"patient_id\":\"maybe\",\"queue_max_bytes\":10,"
                   "\"retry_min_ms\":5000,\"retry_max_ms\":100,\"colour\":1}",
                   &c, errs, sizeof errs);
    cr_assert_eq(rc, ERR_CONFIG);
    const char *want[] = {"audit.repositories[0].transport:",
                          "audit.repositories[1].ca:",
                          "audit.repositories[1].cert: cert and key go together",
                          "audit.repositories[2].transport: udp takes no TLS",
                          "audit.queue_dir: is required",
                          "audit.on_full:",
                          "audit.patient_id:",
                          "audit.queue_max_bytes:",
                          "audit.retry_max_ms:",
                          "audit.colour: unknown key"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert_not_null(strstr(errs, want[i]), "missing '%s' in:\n%s", want[i], errs);
}

Test(audit_config, hash_mode_needs_a_key_file_and_names_must_differ)
{
    struct audit_config c;
    char errs[2048];
    int rc = parse("{\"repositories\":[{\"transport\":\"udp\",\"host\":\"a\",\"name\":\"x\"},"
                   "{\"transport\":\"udp\",\"host\":\"b\",\"name\":\"x\"}],\"queue_dir\":\"/q\"}",
                   &c, errs, sizeof errs);
    cr_assert_eq(rc, ERR_CONFIG);
    cr_assert_not_null(strstr(errs, "audit.hash_key_file: is required"));
    cr_assert_not_null(strstr(errs, "two repositories have one name"));
    rc = parse("{\"repositories\":[{\"transport\":\"udp\",\"host\":\"a\"}],\"queue_dir\":\"/q\","
               "\"patient_id\":\"include\",\"on_full\":\"fail_closed\",\"enabled\":false}",
               &c, errs, sizeof errs);
    cr_assert_eq(rc, 0, "%s", errs);
    cr_assert(c.patient_include);
    cr_assert_eq(c.on_full, AQ_FAIL_CLOSED);
    cr_assert(!c.enabled);
}

Test(audit_config, at_most_four_repositories)
{
    struct audit_config c;
    char errs[2048];
    int rc = parse(
        "{\"repositories\":[{\"transport\":\"udp\",\"host\":\"a\"},{\"transport\":\"udp\",\"host\":"
        "\"b\"},"
        "{\"transport\":\"udp\",\"host\":\"c\"},{\"transport\":\"udp\",\"host\":\"d\"},"
        "{\"transport\":\"udp\",\"host\":\"e\"}],\"queue_dir\":\"/q\",\"patient_id\":\"include\"}",
        &c, errs, sizeof errs);
    cr_assert_eq(rc, ERR_CONFIG);
    cr_assert_not_null(strstr(errs, "at most 4"));
}
