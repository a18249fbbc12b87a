/* audit_qrec: the record format of the audit queue's segment files, and a reader that treats
 * a segment as untrusted bytes (a crash can cut a record, a disk can flip bits, anyone with
 * write access can plant garbage). Pure, apart from aq_scan_file's reads.
 *
 *   offset 0  "AQR1"                     magic
 *          4  u64 LE   seq               the message's sequence number (contiguous, from 1)
 *         12  u32 LE   len               payload bytes, <= AQ_REC_MAX
 *         16  u32 LE   crc               CRC-32C of bytes 4..16 and the payload
 *         20  payload                    one RFC 5424 syslog message, unframed
 */
#ifndef GW_AUDIT_QREC_H
#define GW_AUDIT_QREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/rd.h"
#include "common/wbuf.h"

#define AQ_REC_HDR 20u
#define AQ_REC_MAX (128u * 1024u) /* payload bytes */

/* CRC-32C (Castagnoli), reflected, init and final xor 0xFFFFFFFF; crc is the running value
 * (start with 0). */
uint32_t aq_crc32c(uint32_t crc, const void *p, size_t n);

/* Append one record to out. 0 or the wbuf's error (ERR_LIMIT for a payload over AQ_REC_MAX). */
MUST_CHECK int aq_rec_encode(struct wbuf *out, uint64_t seq, const void *payload, size_t n);

/* Parse the record at the start of p[0..n): > 0 its size (seq and payload, borrowed from p, set),
 * 0 need more bytes, ERR_MALFORMED (bad magic, even in a prefix), ERR_LIMIT (len over max),
 * ERR_MISMATCH (checksum). */
MUST_CHECK int aq_rec_parse(const uint8_t *p, size_t n, size_t max, uint64_t *seq,
                            struct slice *payload);

/* Called for each valid record aq_scan finds, with its file offset and total size. Return < 0
 * to stop the scan with that value. */
typedef int (*aq_scan_cb)(void *arg, uint64_t seq, uint64_t off, uint32_t size);

struct aq_scan_result {
    uint64_t end;     /* offset just past the last valid record */
    uint64_t garbage; /* bytes that were not part of a valid record */
    uint64_t records;
};

/* Scan buf[0..n) (a whole segment) for valid records in order: seq must grow (a record whose seq
 * is not above last_seq is garbage); after bytes that do not parse, resynchronise on the next
 * offset where a whole valid record starts. 0 or the callback's error. */
MUST_CHECK int aq_scan(const uint8_t *buf, size_t n, uint64_t last_seq, aq_scan_cb cb, void *arg,
                       struct aq_scan_result *res);

/* The same over the file fd (read in windows of at most 2 * (AQ_REC_HDR + AQ_REC_MAX) bytes, so
 * memory stays bounded whatever the file's size). 0, -errno or the callback's error. */
MUST_CHECK int aq_scan_fd(int fd, uint64_t last_seq, aq_scan_cb cb, void *arg,
                          struct aq_scan_result *res);

#endif
