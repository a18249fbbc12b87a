/* main_status: the core's part of `dicom-core status`: the spool and Storage Commitment
 * (read-only: it may run beside a live core). The backend's own part follows it. */
#ifndef GW_MAIN_STATUS_H
#define GW_MAIN_STATUS_H

#include <stdbool.h>

/* Print the spool (depth, bytes, oldest) and the commitment transactions (the files of
 * <spool_dir>/commit/, or, with a shared store, the running core's snapshot status.json).
 * json: one JSON object on one line. 0, or 1 when the spool cannot be read. */
int main_status(const char *spool_dir, bool json);

#endif
