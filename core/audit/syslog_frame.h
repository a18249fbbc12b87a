/* syslog_frame: RFC 5424 syslog messages as PS3.15 A.6 wants them (facility 10, MSGID set,
 * no structured data, the XML as MSG) and their transport framing: octet counting for TLS
 * (RFC 5425 section 4.3, RFC 6587), one message per datagram for UDP (RFC 5426). The parsers
 * are pure and bounded, for tests and fuzzing (a collector's view of our output). */
#ifndef GW_SYSLOG_FRAME_H
#define GW_SYSLOG_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/rd.h"
#include "common/wbuf.h"

#define SYSLOG_FACILITY_AUTHPRIV 10u /* security/authorization (PS3.15 A.6) */
#define SYSLOG_MSGID_DICOM "DICOM+RFC3881"
#define SYSLOG_HEADER_MAX 512u  /* PRI..SD with every field at its RFC 5424 maximum */
#define SYSLOG_FRAME_DIGITS 10u /* MSG-LEN digits we accept */

struct syslog_hdr {
    uint8_t severity;  /* 0..7 */
    int64_t time_us;   /* TIMESTAMP, UTC microseconds */
    const char *host;  /* HOSTNAME (<= 255 printable ASCII; others become '_'), NULL: "-" */
    const char *app;   /* APP-NAME (<= 48) */
    uint32_t procid;   /* PROCID; 0: "-" */
    const char *msgid; /* MSGID (<= 32) */
    bool bom;          /* MSG is UTF-8: start it with the BOM (RFC 5424 6.4) */
};

/* PS3.15 A.6 / ITI-20: severity 5 (notice) for success, 4 (warning) for a minor failure, 3
 * (error) for a serious one, 2 (critical) for a major one. */
uint8_t syslog_severity_for_outcome(uint8_t outcome);

/* Append "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - " [BOM] msg[0..n) to out. 0 or the
 * wbuf's error. */
MUST_CHECK int syslog_format(struct wbuf *out, const struct syslog_hdr *h, const void *msg,
                             size_t n);

/* Append the octet-counting frame of one message: "MSG-LEN SP" msg. 0 or the wbuf's error. */
MUST_CHECK int syslog_frame_octet(struct wbuf *out, const void *msg, size_t n);

/* Parse one octet-counted frame at the start of p[0..n): > 0 the bytes it used (the message is
 * *msg, borrowed from p), 0 need more, ERR_MALFORMED (no digit first, a leading zero, no SP
 * after the digits) or ERR_LIMIT (MSG-LEN over max or more than SYSLOG_FRAME_DIGITS digits). */
MUST_CHECK int syslog_frame_parse(const uint8_t *p, size_t n, size_t max, struct slice *msg);

struct syslog_parsed {
    unsigned pri, version;
    struct slice timestamp, host, app, procid, msgid, sd, msg; /* borrowed; msg without BOM */
    bool bom;
};

/* Parse an RFC 5424 SYSLOG-MSG (section 6). Structured data is checked for its brackets and
 * quoting only. 0, or ERR_MALFORMED / ERR_TRUNCATED. */
MUST_CHECK int syslog_parse(const uint8_t *p, size_t n, struct syslog_parsed *out);

#endif
