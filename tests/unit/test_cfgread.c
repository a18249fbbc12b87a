#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cfgread.h"

/* A configuration with one field of each kind the reader fills. */
enum colour { RED = 0, GREEN = 1, BLUE = 2 };
enum kind { KIND_PLAIN = 0, KIND_TEXT = 1 };

struct item {
    char name[8];
    uint32_t weight;
    bool heavy;
};

struct conf {
    char name[8];
    bool on;
    uint32_t n32;
    uint64_t n64;
    double ratio;
    enum colour colour;
    int upper[4]; /* LIST: digits, "-" skipped */
    size_t n_upper;
    struct {
        char host[16];
        uint32_t port;
    } net;
    bool net_seen;
    struct item *items;
    size_t n_items;
    struct item *named;
    size_t n_named;
    enum kind kind;
    uint32_t plain_size;
    char *text;
    char shout[8]; /* CONV: upper-cased */
};

static int conv_digit(void *base, void *dst, const char *s)
{
    (void)base;
    if (strcmp(s, "-") == 0)
        return CFGREAD_SKIP;
    if (s[0] < '0' || s[0] > '9' || s[1])
        return ERR_CONFIG;
    *(int *)dst = s[0] - '0';
    return 0;
}

static int conv_shout(void *base, void *dst, const char *s)
{
    (void)base;
    char *o = dst;
    size_t i = 0;
    for (; s[i]; i++) {
        if (s[i] < 'a' || s[i] > 'z')
            return ERR_CONFIG;
        o[i] = (char)(s[i] - 'a' + 'A');
    }
    o[i] = '\0';
    return 0;
}

static void check_net(void *base, void *ctx, const char *path, struct wbuf *errs)
{
    struct conf *c = base;
    c->net_seen = true;
    if (ctx && c->net.port == 13)
        cfgread_problem(errs, path, "port", "unlucky");
}

static void check_item(void *base, void *ctx, const char *path, struct wbuf *errs)
{
    const struct item *it = base;
    (void)ctx;
    if (it->heavy && it->weight < 10)
        cfgread_problem(errs, path, "", "heavy items weigh 10 or more");
}

#define C struct conf
#define I struct item

static const struct cfgread_enum g_colours[] = {
    {"red", RED, NULL}, {"green", GREEN, NULL}, {"blue", BLUE, NULL}, {NULL, 0, NULL}};

static const struct cfgread_key g_net_keys[] = {
    CFGREAD_STR("host", C, net.host, "localhost"),
    CFGREAD_U32("port", C, net.port, 1, 65535, 80),
};
static const struct cfgread_table g_net = CFGREAD_TABLE(g_net_keys, true, check_net);

static const struct cfgread_key g_item_keys[] = {
    CFGREAD_U32("weight", I, weight, 0, 1000, 1),
    CFGREAD_BOOL("heavy", I, heavy, false),
};
static const struct cfgread_table g_item = CFGREAD_TABLE(g_item_keys, false, check_item);

static const struct cfgread_key g_plain_keys[] = {
    CFGREAD_SKIPKEY("type"),
    CFGREAD_U32("size", C, plain_size, 0, 10, 5),
};
static const struct cfgread_table g_plain = CFGREAD_TABLE(g_plain_keys, true, NULL);
static const struct cfgread_enum g_kinds[] = {
    {"plain", KIND_PLAIN, &g_plain}, {"text", KIND_TEXT, NULL}, {NULL, 0, NULL}};

static const struct cfgread_key g_keys[] = {
    CFGREAD_STR("name", C, name, "anon", .env = "CFGREAD_TEST_NAME"),
    CFGREAD_BOOL("on", C, on, true, .env = "CFGREAD_TEST_ON"),
    CFGREAD_U32("n32", C, n32, 10, 100, 50, .env = "CFGREAD_TEST_N32"),
    CFGREAD_U64("n64", C, n64, 0, 1ull << 40, 7),
    CFGREAD_DOUBLE("ratio", C, ratio, 0.5, 2.0, 1.0),
    CFGREAD_ENUM("colour", C, colour, g_colours, GREEN, .env = "CFGREAD_TEST_COLOUR"),
    CFGREAD_LIST("digits", C, upper, n_upper, conv_digit, 1, 3, "must be an array of digits",
                 "entries must be single digits", .many_msg = "three digits at most"),
    CFGREAD_OBJ("net", &g_net),
    CFGREAD_ARRAY("items", C, items, n_items, I, &g_item, 0, 3, "must be an array of items"),
    CFGREAD_MAP("named", C, named, n_named, I, name, &g_item, 0, 4,
                "must be an object of named items", "names are 1-7 characters"),
    CFGREAD_VARIANT("kind", C, kind, g_kinds, text, KIND_PLAIN, "must be an object with a type"),
    CFGREAD_CONV("shout", C, shout, 8, conv_shout, "quiet", "lowercase letters only"),
};
static const struct cfgread_table g_table = CFGREAD_TABLE(g_keys, true, NULL);

struct run {
    struct conf c;
    struct wbuf errs;
    int rc;
};

static void conf_cleanup(struct conf *c)
{
    free(c->items);
    free(c->named);
    free(c->text);
}

/* Read json into r->c (defaults first); problems in r->errs as a NUL-terminated string. */
static void read_json(struct run *r, const char *json, void *ctx)
{
    memset(&r->c, 0, sizeof r->c);
    cfgread_defaults(&g_table, &r->c);
    wbuf_init(&r->errs, 1u << 16);
    struct cfgread_job j = {.table = &g_table, .base = &r->c, .ctx = ctx, .name = "test.json",
                            .prefix = ""};
    r->rc = cfgread_text(&j, json, strlen(json), &r->errs);
    wbuf_put(&r->errs, "", 1);
}

static const char *errs_of(const struct run *r)
{
    return (const char *)r->errs.p;
}

static void run_cleanup(struct run *r)
{
    conf_cleanup(&r->c);
    wbuf_cleanup(&r->errs);
}

/* The one problem json causes is exactly want (a whole line, newline added here). */
static void expect_only(const char *json, const char *want)
{
    struct run r;
    read_json(&r, json, NULL);
    char line[256];
    snprintf(line, sizeof line, "%s\n", want);
    cr_assert_eq(r.rc, ERR_CONFIG, "%s", json);
    cr_assert_str_eq(errs_of(&r), line, "%s", json);
    run_cleanup(&r);
}

static void expect_ok(const char *json, struct conf *out)
{
    struct run r;
    read_json(&r, json, NULL);
    cr_assert_eq(r.rc, 0, "%s: %s", json, errs_of(&r));
    cr_assert_str_eq(errs_of(&r), "");
    *out = r.c;
    wbuf_cleanup(&r.errs);
}

Test(cfgread, defaults_fill_every_row_and_an_empty_object_keeps_them)
{
    struct conf c;
    expect_ok("{}", &c);
    cr_assert_str_eq(c.name, "anon");
    cr_assert(c.on);
    cr_assert_eq(c.n32, 50);
    cr_assert_eq(c.n64, 7);
    cr_assert_float_eq(c.ratio, 1.0, 1e-12);
    cr_assert_eq(c.colour, GREEN);
    cr_assert_str_eq(c.net.host, "localhost");
    cr_assert_eq(c.net.port, 80);
    cr_assert_not(c.net_seen, "a table's check runs only when its object is there");
    cr_assert_eq(c.kind, KIND_PLAIN);
    cr_assert_eq(c.plain_size, 5);
    cr_assert_str_eq(c.shout, "QUIET", "defaults go through conv too");
    cr_assert_null(c.items);
    conf_cleanup(&c);
}

Test(cfgread, a_valid_file_fills_every_kind_of_row)
{
    struct conf c;
    expect_ok("{\"name\":\"seven77\",\"on\":false,\"n32\":10,\"n64\":1099511627776,"
              "\"ratio\":2,\"colour\":\"blue\",\"digits\":[\"4\",\"-\",\"2\"],"
              "\"net\":{\"host\":\"h\",\"port\":65535},"
              "\"items\":[{\"weight\":3},{\"heavy\":true,\"weight\":10}],"
              "\"named\":{\"a\":{},\"bb\":{\"weight\":9}},\"kind\":{\"type\":\"plain\","
              "\"size\":0},\"shout\":\"abc\"}",
              &c);
    cr_assert_str_eq(c.name, "seven77");
    cr_assert_not(c.on);
    cr_assert_eq(c.n32, 10);
    cr_assert_eq(c.n64, 1ull << 40);
    cr_assert_float_eq(c.ratio, 2.0, 1e-12);
    cr_assert_eq(c.colour, BLUE);
    cr_assert_eq(c.n_upper, 2, "\"-\" is accepted but not stored");
    cr_assert_eq(c.upper[0], 4);
    cr_assert_eq(c.upper[1], 2);
    cr_assert_str_eq(c.net.host, "h");
    cr_assert_eq(c.net.port, 65535);
    cr_assert(c.net_seen);
    cr_assert_eq(c.n_items, 2);
    cr_assert_eq(c.items[0].weight, 3);
    cr_assert_not(c.items[0].heavy);
    cr_assert(c.items[1].heavy);
    cr_assert_eq(c.n_named, 2);
    cr_assert_str_eq(c.named[0].name, "a");
    cr_assert_eq(c.named[0].weight, 1, "element defaults apply");
    cr_assert_str_eq(c.named[1].name, "bb");
    cr_assert_eq(c.named[1].weight, 9);
    cr_assert_eq(c.kind, KIND_PLAIN);
    cr_assert_eq(c.plain_size, 0);
    cr_assert_null(c.text);
    cr_assert_str_eq(c.shout, "ABC");
    conf_cleanup(&c);
}

Test(cfgread, whole_numbers_take_their_bounds_and_refuse_one_past)
{
    struct conf c;
    expect_ok("{\"n32\":100,\"n64\":0}", &c);
    cr_assert_eq(c.n32, 100);
    cr_assert_eq(c.n64, 0);
    expect_only("{\"n32\":9}", "n32: must be a whole number from 10 to 100");
    expect_only("{\"n32\":101}", "n32: must be a whole number from 10 to 100");
    expect_only("{\"n32\":10.5}", "n32: must be a whole number from 10 to 100");
    expect_only("{\"n32\":-1}", "n32: must be a whole number from 10 to 100");
    expect_only("{\"n32\":1e300}", "n32: must be a whole number from 10 to 100");
    expect_only("{\"n64\":1099511627777}", "n64: must be a whole number from 0 to 1099511627776");
    expect_only("{\"n64\":-0.5}", "n64: must be a whole number from 0 to 1099511627776");
}

Test(cfgread, numbers_bools_strings_and_enums_keep_their_bounds)
{
    struct conf c;
    expect_ok("{\"ratio\":0.5,\"name\":\"1234567\"}", &c);
    cr_assert_float_eq(c.ratio, 0.5, 1e-12);
    cr_assert_str_eq(c.name, "1234567");
    expect_only("{\"ratio\":0.49}", "ratio: must be a number from 0.5 to 2");
    expect_only("{\"ratio\":2.01}", "ratio: must be a number from 0.5 to 2");
    expect_only("{\"name\":\"12345678\"}", "name: too long");
    expect_only("{\"colour\":\"pink\"}", "colour: must be \"red\", \"green\" or \"blue\"");
    expect_only("{\"colour\":\"\"}", "colour: must be \"red\", \"green\" or \"blue\"");
    expect_only("{\"shout\":\"ABC\"}", "shout: lowercase letters only");
    expect_only("{\"shout\":\"abcdefgh\"}", "shout: too long");
}

Test(cfgread, a_wrong_type_is_one_line_naming_the_key)
{
    expect_only("{\"name\":5}", "name: must be a string");
    expect_only("{\"on\":\"yes\"}", "on: must be true or false");
    expect_only("{\"on\":1}", "on: must be true or false");
    expect_only("{\"n32\":\"50\"}", "n32: must be a whole number from 10 to 100");
    expect_only("{\"ratio\":true}", "ratio: must be a number from 0.5 to 2");
    expect_only("{\"colour\":1}", "colour: must be a string");
    expect_only("{\"digits\":\"1\"}", "digits: must be an array of digits");
    expect_only("{\"net\":[]}", "net: must be an object");
    expect_only("{\"net\":{\"port\":\"x\"}}", "net.port: must be a whole number from 1 to 65535");
    expect_only("{\"items\":{}}", "items: must be an array of items");
    expect_only("{\"items\":[{\"weight\":2},3]}", "items[1]: must be an object");
    expect_only("{\"items\":[{},{\"heavy\":true}]}", "items[1]: heavy items weigh 10 or more");
    expect_only("{\"named\":[]}", "named: must be an object of named items");
    expect_only("{\"named\":{\"toolongname\":{}}}", "named: names are 1-7 characters");
    expect_only("{\"named\":{\"x\":{\"weight\":-1}}}",
                "named.x.weight: must be a whole number from 0 to 1000");
    expect_only("{\"kind\":{\"size\":1}}", "kind: must be an object with a type");
    expect_only("{\"kind\":{\"type\":\"odd\"}}", "kind.type: must be \"plain\" or \"text\"");
    expect_only("{\"kind\":{\"type\":\"plain\",\"size\":11}}",
                "kind.size: must be a whole number from 0 to 10");
}

Test(cfgread, lists_count_their_entries_and_report_each_bad_one)
{
    expect_only("{\"digits\":[]}", "digits: must be an array of digits");
    expect_only("{\"digits\":[\"1\",\"2\",\"3\",\"4\"]}", "digits: three digits at most");
    expect_only("{\"digits\":[\"1\",7]}", "digits: entries must be strings");
    struct run r;
    read_json(&r, "{\"digits\":[\"x\",\"1\",\"yy\"]}", NULL);
    cr_assert_eq(r.rc, ERR_CONFIG);
    cr_assert_str_eq(errs_of(&r), "digits: entries must be single digits\n"
                                  "digits: entries must be single digits\n");
    cr_assert_eq(r.c.n_upper, 1);
    cr_assert_eq(r.c.upper[0], 1);
    run_cleanup(&r);
}

Test(cfgread, arrays_and_maps_refuse_counts_out_of_bounds_before_allocating)
{
    struct run r;
    read_json(&r, "{\"items\":[{},{},{},{}]}", NULL);
    cr_assert_str_eq(errs_of(&r), "items: must be an array of items\n");
    cr_assert_null(r.c.items);
    cr_assert_eq(r.c.n_items, 0);
    run_cleanup(&r);
}

Test(cfgread, strict_tables_name_each_unknown_key_with_its_path)
{
    struct run r;
    read_json(&r, "{\"nmae\":\"x\",\"net\":{\"prot\":1},\"kind\":{\"type\":\"plain\",\"sise\":1}}",
              NULL);
    cr_assert_eq(r.rc, ERR_CONFIG);
    cr_assert(strstr(errs_of(&r), "nmae: unknown key\n"), "%s", errs_of(&r));
    cr_assert(strstr(errs_of(&r), "net.prot: unknown key\n"), "%s", errs_of(&r));
    cr_assert(strstr(errs_of(&r), "kind.sise: unknown key\n"), "%s", errs_of(&r));
    run_cleanup(&r);
    /* the item table is not strict: other members are left alone */
    struct conf c;
    expect_ok("{\"items\":[{\"comment\":\"x\"}]}", &c);
    conf_cleanup(&c);
}

Test(cfgread, a_kind_without_a_table_is_kept_as_json_text)
{
    struct conf c;
    expect_ok("{\"kind\":{\"type\":\"text\",\"anything\":[1,{\"b\":true}]}}", &c);
    cr_assert_eq(c.kind, KIND_TEXT);
    cr_assert_str_eq(c.text, "{\"type\":\"text\",\"anything\":[1,{\"b\":true}]}");
    conf_cleanup(&c);
}

Test(cfgread, checks_see_the_ctx_and_the_path)
{
    struct run r;
    int ctx = 1;
    read_json(&r, "{\"net\":{\"port\":13}}", &ctx);
    cr_assert_str_eq(errs_of(&r), "net.port: unlucky\n");
    run_cleanup(&r);
}

Test(cfgread, the_environment_wins_over_the_file)
{
    setenv("CFGREAD_TEST_NAME", "envname", 1);
    setenv("CFGREAD_TEST_ON", "false", 1);
    setenv("CFGREAD_TEST_N32", "42", 1);
    setenv("CFGREAD_TEST_COLOUR", "red", 1);
    struct conf c;
    expect_ok("{\"name\":5,\"on\":true,\"n32\":1000,\"colour\":\"blue\"}", &c);
    cr_assert_str_eq(c.name, "envname");
    cr_assert_not(c.on);
    cr_assert_eq(c.n32, 42);
    cr_assert_eq(c.colour, RED);
    conf_cleanup(&c);
    expect_ok("{}", &c);
    cr_assert_str_eq(c.name, "envname", "applies without the key in the file too");
    conf_cleanup(&c);

    setenv("CFGREAD_TEST_N32", "4x", 1);
    expect_only("{}", "CFGREAD_TEST_N32: must be a number");
    setenv("CFGREAD_TEST_N32", "9", 1);
    expect_only("{}", "CFGREAD_TEST_N32: must be a whole number from 10 to 100");
    unsetenv("CFGREAD_TEST_N32");
    setenv("CFGREAD_TEST_ON", "1", 1);
    expect_only("{}", "CFGREAD_TEST_ON: must be true or false");
    unsetenv("CFGREAD_TEST_ON");
    setenv("CFGREAD_TEST_NAME", "far-too-long", 1);
    expect_only("{}", "CFGREAD_TEST_NAME: too long");
    unsetenv("CFGREAD_TEST_NAME");
    setenv("CFGREAD_TEST_COLOUR", "pink", 1);
    expect_only("{}", "CFGREAD_TEST_COLOUR: must be \"red\", \"green\" or \"blue\"");
    unsetenv("CFGREAD_TEST_COLOUR");
}

Test(cfgread, text_that_is_not_a_json_object_is_one_line_and_nothing_is_read)
{
    const char *bad[] = {"[1]", "{\"name\":", "", "nul", "\"x\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct run r;
        read_json(&r, bad[i], NULL);
        cr_assert_eq(r.rc, ERR_MALFORMED, "%s", bad[i]);
        cr_assert(strncmp(errs_of(&r), "test.json: not a JSON object (error near byte ", 46) == 0,
                  "%s", errs_of(&r));
        cr_assert_str_eq(r.c.name, "anon");
        run_cleanup(&r);
    }
}

Test(cfgread, the_text_need_not_end_with_a_nul)
{
    struct conf c;
    memset(&c, 0, sizeof c);
    cfgread_defaults(&g_table, &c);
    struct wbuf errs;
    wbuf_init(&errs, 4096);
    const char text[] = "{\"name\":\"abc\"}garbage";
    struct cfgread_job j = {.table = &g_table, .base = &c, .name = "t", .prefix = "top"};
    cr_assert_eq(cfgread_text(&j, text, 14, &errs), 0);
    cr_assert_str_eq(c.name, "abc");
    cr_assert_eq(cfgread_text(&j, "{\"name\":1}", 10, &errs), ERR_CONFIG);
    wbuf_put(&errs, "", 1);
    cr_assert_str_eq((const char *)errs.p, "top.name: must be a string\n", "the prefix leads");
    wbuf_cleanup(&errs);
}

Test(cfgread, a_full_error_buffer_is_out_of_memory)
{
    struct conf c;
    memset(&c, 0, sizeof c);
    struct wbuf errs;
    wbuf_init(&errs, 8);
    struct cfgread_job j = {.table = &g_table, .base = &c, .name = "t", .prefix = ""};
    cr_assert_eq(cfgread_text(&j, "{\"name\":1}", 10, &errs), ERR_NOMEM);
    wbuf_cleanup(&errs);
}

Test(cfgread, files_are_read_whole_and_bounded)
{
    char path[] = "/tmp/cfgread_test_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "{\"a\":1}", 7), 7);
    close(fd);
    struct wbuf errs;
    wbuf_init(&errs, 4096);
    size_t len = 0;
    char *t = cfgread_file(path, 7, &len, &errs);
    cr_assert_not_null(t);
    cr_assert_eq(len, 7);
    cr_assert_str_eq(t, "{\"a\":1}");
    free(t);
    cr_assert_null(cfgread_file(path, 6, &len, &errs));
    unlink(path);
    cr_assert_null(cfgread_file(path, 6, NULL, &errs));
    wbuf_put(&errs, "", 1);
    cr_assert(strstr((const char *)errs.p, ": file too large\n"), "%s", (const char *)errs.p);
    cr_assert(strstr((const char *)errs.p, ": cannot open: "), "%s", (const char *)errs.p);
    wbuf_cleanup(&errs);
}

Test(cfgread, problem_lines_join_path_and_key)
{
    struct wbuf errs;
    wbuf_init(&errs, 4096);
    cfgread_problem(&errs, "a.b", "c", "x");
    cfgread_problem(&errs, "", "c", "y");
    cfgread_problem(&errs, "a", "", "z");
    wbuf_put(&errs, "", 1);
    cr_assert_str_eq((const char *)errs.p, "a.b.c: x\nc: y\na: z\n");
    wbuf_cleanup(&errs);
}
