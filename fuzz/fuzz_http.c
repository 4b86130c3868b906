/* fuzz_http.c - what a hostile server controls in an answer: the
 * Content-Range value, the multipart boundary and the multipart body (see
 * src/core/source/http_parse.h for the contract checked here).
 *
 * Input: byte 0 picks the piece size the body is fed in (network reads
 * split anywhere); then a Content-Type line up to the first '\n', then the
 * body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "source/http_parse.h"

static void check_crange(const uint8_t *data, size_t size)
{
	char s[96];
	uint64_t a, b, t;
	size_t n = size < sizeof s - 1 ? size : sizeof s - 1;
	memcpy(s, data, n);
	s[n] = '\0';
	if (http_parse_crange(s, &a, &b, &t) == 0 && !(a < b))
		abort(); /* a range is never empty or reversed */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	check_crange(data + 1, size - 1);
	size_t step = (size_t)data[0] + 1;
	const char *p = (const char *)data + 1, *nl = memchr(p, '\n', size - 1);
	if (!nl)
		return 0;
	char ctype[256], delim[128];
	size_t cl = (size_t)(nl - p) < sizeof ctype - 1 ? (size_t)(nl - p) : sizeof ctype - 1;
	memcpy(ctype, p, cl);
	ctype[cl] = '\0';
	struct mp_parser m;
	if (http_multipart_delimiter(ctype, delim, sizeof delim) || mp_init(&m, delim))
		return 0;
	const char *body = nl + 1;
	size_t n = size - 1 - (size_t)(nl + 1 - p), off = 0;
	int in_part = 0, ended = 0;
	uint64_t next = 0, end = 0;
	while (off < n && !ended) {
		size_t piece = n - off < step ? n - off : step, used = 0;
		while (used < piece && !ended) {
			struct mp_out o;
			size_t u = mp_next(&m, body + off + used, piece - used, &o);
			if (u > piece - used)
				abort();
			used += u;
			switch (o.kind) {
			case MP_PART:
				if (in_part || !(o.a < o.b))
					abort(); /* the last part's bytes all came first */
				in_part = 1;
				next = o.a;
				end = o.b;
				break;
			case MP_DATA_PIECE:
				if (!in_part || o.at != next || o.len == 0 || o.len > end - next ||
				    o.data < body + off || o.data + o.len > body + n)
					abort();
				next += o.len;
				if (next == end)
					in_part = 0;
				break;
			case MP_DONE:
				if (in_part)
					abort();
				ended = 1;
				break;
			case MP_ERROR:
				if (!o.why)
					abort();
				ended = 1;
				break;
			case MP_NEED_MORE:
				if (used != piece)
					abort(); /* it wants more only when it took all */
				break;
			}
		}
		off += piece;
	}
	return 0;
}
