/* cli: the command line every program of the gateway shares: --config FILE (or --config=FILE),
 * --check-config, --print-default-config (where the program has an embedded default),
 * --version, --help. */
#ifndef GW_CLI_H
#define GW_CLI_H

#include <stdbool.h>

struct cli_prog {
    const char *name;           /* "dicom-core" */
    const char *usage;          /* the --help text */
    const char *version;        /* printed after the name by --version */
    const char *default_config; /* printed by --print-default-config; NULL: no such option */
};

struct cli_args {
    const char *config; /* NULL: the embedded default */
    bool check;         /* --check-config */
};

/* Parse argv[1..argc). Returns -1 when the program should go on with *out, or an exit status
 * once it printed what was asked (0) or a problem with the usage (2). */
int cli_parse(int argc, char **argv, const struct cli_prog *p, struct cli_args *out);

#endif
