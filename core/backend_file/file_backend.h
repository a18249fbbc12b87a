/* file_backend: the `file` backend, the embedded default. It moves each ready spool entry into
 * a store directory laid out like the S3 bucket, <dir>/<prefix>/<batch-id>/<SOP Instance
 * UID>.dcm, with a local job journal (<dir>/journal.jsonl) whose write-ahead records make every
 * step idempotent across crashes. It runs on a thread of its own and acknowledges at the spool
 * (it has no later acknowledgement point). */
#ifndef GW_FILE_BACKEND_H
#define GW_FILE_BACKEND_H

#include "spool/spool_backend.h"

extern const struct backend_ops file_backend_ops;

#endif
