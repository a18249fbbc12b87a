/* spool_journal: a backend's write-ahead journal (the file backend's and the aws pipeline's),
 * JSON lines in one append-only file kept under the spool. Records are appended, then made durable together by one spool_journal_sync (fdatasync), so
 * that one flush covers every record of a loop iteration. A torn last line (a crash mid-write)
 * is skipped on replay: its step had not been acted on. Compaction rewrites the file from the
 * live state (write new file, fsync, rename, fsync directory). */
#ifndef GW_SPOOL_JOURNAL_H
#define GW_SPOOL_JOURNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

struct spool_journal;

/* Called for each valid record, in order (rec borrowed). A negative return stops the replay. */
typedef int (*spool_journal_replay_cb)(void *arg, const cJSON *rec);

/* Open (creating) path, replay it through cb, and keep it open for appends. fsync false skips
 * the flushes (benchmarks only). 0 or a negative errno / ERR_NOMEM / cb's error. */
MUST_CHECK int spool_journal_open(const char *path, bool fsync, spool_journal_replay_cb cb,
                                     void *arg, struct spool_journal **out);
/* Append one record (buffered in the kernel until sync). 0 or a negative errno. */
MUST_CHECK int spool_journal_append(struct spool_journal *j, const cJSON *rec);
/* Make every appended record durable. 0 or a negative errno. */
MUST_CHECK int spool_journal_sync(struct spool_journal *j);
/* Replace the file's content with recs[0..n) atomically and keep appending to the new file. */
MUST_CHECK int spool_journal_compact(struct spool_journal *j, cJSON *const *recs,
                                        size_t n);
/* Records appended since open or the last compaction. */
size_t spool_journal_records(const struct spool_journal *j);
void spool_journal_close(struct spool_journal *j); /* NULL is fine */

#endif
