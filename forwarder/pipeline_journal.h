/* pipeline_journal: the pipeline's write-ahead journal, JSON lines in one append-only file.
 * Records are appended, then made durable together by one pipeline_journal_sync (fdatasync), so
 * that one flush covers every record of a loop iteration. A torn last line (a crash mid-write)
 * is skipped on replay: its step had not been acted on. Compaction rewrites the file from the
 * live state (write new file, fsync, rename, fsync directory). */
#ifndef GW_PIPELINE_JOURNAL_H
#define GW_PIPELINE_JOURNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

struct pipeline_journal;

/* Called for each valid record, in order (rec borrowed). A negative return stops the replay. */
typedef int (*pipeline_journal_replay_cb)(void *arg, const cJSON *rec);

/* Open (creating) path, replay it through cb, and keep it open for appends. fsync false skips
 * the flushes (benchmarks only). 0 or a negative errno / ERR_NOMEM / cb's error. */
MUST_CHECK int pipeline_journal_open(const char *path, bool fsync, pipeline_journal_replay_cb cb,
                                     void *arg, struct pipeline_journal **out);
/* Append one record (buffered in the kernel until sync). 0 or a negative errno. */
MUST_CHECK int pipeline_journal_append(struct pipeline_journal *j, const cJSON *rec);
/* Make every appended record durable. 0 or a negative errno. */
MUST_CHECK int pipeline_journal_sync(struct pipeline_journal *j);
/* Replace the file's content with recs[0..n) atomically and keep appending to the new file. */
MUST_CHECK int pipeline_journal_compact(struct pipeline_journal *j, cJSON *const *recs,
                                        size_t n);
/* Records appended since open or the last compaction. */
size_t pipeline_journal_records(const struct pipeline_journal *j);
void pipeline_journal_close(struct pipeline_journal *j); /* NULL is fine */

#endif
