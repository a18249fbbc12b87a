/* crc64nvme: CRC-64/NVME, the checksum S3 carries as x-amz-checksum-crc64nvme (and adds by
 * default to every object it stores). Reflected polynomial 0xAD93D23594C93659, initial value and
 * final XOR all ones; check value of "123456789" = 0xAE8B14860A799888. S3's CRC64NVME is always
 * a full-object checksum: for a multipart upload each part carries its own CRC and the complete
 * request the whole object's, which crc64nvme_combine() derives from the parts' CRCs.
 *
 * A carry-less multiply (PCLMULQDQ) path is used when the CPU has it, else slice-by-8 tables;
 * both give the same result. Pure: no I/O, no allocation; the tables are built once, on first
 * use, under pthread_once. */
#ifndef GW_CRC64NVME_H
#define GW_CRC64NVME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRC64NVME_CHECK 0xAE8B14860A799888u /* CRC-64/NVME of the 9 bytes "123456789" */
#define CRC64NVME_B64_LEN 12                /* base64 of 8 bytes, with its one '=' pad */

/* Running checksum over a stream: _init, then _update any number of times, then _final. The
 * struct is plain data: copy it to fork a checksum. */
struct crc64nvme {
    uint64_t crc; /* the CRC of the bytes so far (0 for none) */
};

void crc64nvme_init(struct crc64nvme *c);
/* Add n bytes (p may be NULL when n is 0). */
void crc64nvme_update(struct crc64nvme *c, const void *p, size_t n);
/* The CRC of everything added; the stream may go on after this. */
uint64_t crc64nvme_final(const struct crc64nvme *c);

/* zlib style: crc is the CRC of the bytes before (0 to start); returns the CRC with p[0..n)
 * appended. crc64nvme(0, "123456789", 9) == CRC64NVME_CHECK. */
uint64_t crc64nvme(uint64_t crc, const void *p, size_t n);

/* The CRC of A followed by B, from crc1 = CRC(A), crc2 = CRC(B) and len2 = |B| in bytes (any
 * size); O(log len2), no data needed. */
uint64_t crc64nvme_combine(uint64_t crc1, uint64_t crc2, uint64_t len2);

/* The header value: base64 (RFC 4648, with padding) of the CRC's 8 bytes, most significant
 * first, as the AWS SDKs send it. Writes CRC64NVME_B64_LEN characters and a NUL into out. */
void crc64nvme_base64(uint64_t crc, char out[CRC64NVME_B64_LEN + 1]);

/* For tests and benchmarks: the table path alone, and whether crc64nvme() uses the CPU's
 * carry-less multiply. */
uint64_t crc64nvme_portable(uint64_t crc, const void *p, size_t n);
bool crc64nvme_accelerated(void);

#endif
