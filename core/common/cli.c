#include "common/cli.h"

#include <stdio.h>
#include <string.h>

int cli_parse(int argc, char **argv, const struct cli_prog *p, struct cli_args *out)
{
    out->config = NULL;
    out->check = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            out->config = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            out->config = argv[i] + 9;
        } else if (strcmp(argv[i], "--check-config") == 0) {
            out->check = true;
        } else if (p->default_config && strcmp(argv[i], "--print-default-config") == 0) {
            fputs(p->default_config, stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("%s %s\n", p->name, p->version);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(p->usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "%s: unknown argument '%s'\n\n%s", p->name, argv[i], p->usage);
            return 2;
        }
    }
    return -1;
}
