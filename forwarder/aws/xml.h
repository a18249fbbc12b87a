/* xml: the one thing we read from S3's XML answers: the text of a simple element
 * (<UploadId>, <Code>, <Message>, <ETag>...). A bounded scan, not a parser: pure, no
 * allocation, never reads past len. */
#ifndef GW_XML_H
#define GW_XML_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* The text of the first <tag>...</tag> element in xml[0..len) (any depth; the start tag must be
 * exactly "<tag>", no attributes), with the entities &amp; &lt; &gt; &quot; &apos; and numeric
 * &#N; / &#xH; (ASCII only) decoded, into out (NUL-terminated). 0, ERR_NOTFOUND, ERR_MALFORMED
 * (no end tag, '<' inside the text, bad entity), ERR_LIMIT (does not fit in out_sz). */
MUST_CHECK int xml_text(const uint8_t *xml, size_t len, const char *tag, char *out,
                        size_t out_sz);

#endif
