/* gw-aws's read commands (tool_gw_aws_read.c): the DICOMweb client and the aws backend's read
 * side driven from the command line, for tests/integration/test_read_aws.sh and operators'
 * probes.
 *
 *   gw-aws [opts] qido DATASTORE studies|series|instances [--study UID] [--series UID]
 *          [--key NAME=VALUE]... [--include NAME]... [--page-size N] [--max-results N]
 *          [--deadline-ms N] [--assume ROLE_ARN [--studies UID,UID...]] [--pause-each]
 *   gw-aws [opts] wado DATASTORE STUDY SERIES SOP OUTFILE [--ts UID|*] [--multipart]
 *          [--rate BYTES_PER_S] [--deadline-ms N] [--assume ROLE_ARN [--studies UID,...]]
 *   gw-aws [opts] read CONFIG scope CLIENT own|shared|all
 *   gw-aws [opts] read CONFIG find CLIENT own|shared|all PATIENT|STUDY|SERIES|IMAGE
 *          [GGGGEEEE=VALUE]... [--patient-root]
 *   gw-aws [opts] read CONFIG get CLIENT own|shared|all STUDY SERIES SOP OUTFILE [TS]...
 *          [--repeat N --between SHELL_COMMAND] [--rate BYTES_PER_S]
 *   gw-aws [opts] read CONFIG share ARGS...   (dicom-core share ARGS..., aws_share.h)
 * CONFIG: a core.json (its "backend") or the backend object itself. Each result is printed as
 * a line "result ..." with its UIDs, the end as "done err=<name> ... why=<text>"; wado and get
 * also print "begin ts=... sop_class=... bytes=N", the dataset's SHA-256 and the peak RSS.
 * Exit: 0 success, 4 ERR_LIMIT (the result cap), 5 access denied (-EACCES / 403), 1 other
 * failures, 2 usage. */
#ifndef GW_TOOL_GW_AWS_READ_H
#define GW_TOOL_GW_AWS_READ_H

struct gw_aws_opts {
    const char *region, *ddb_ep, *mi_dicom_ep, *sts_ep;
    unsigned attempts;
};

/* Run cmd ("qido", "wado" or "read") with its arguments; the exit status. */
int gw_aws_read_cmd(const char *cmd, int argc, char **argv, const struct gw_aws_opts *o);

#endif
