/* http_parse.h - the parts of a server's answer a remote source must parse:
 * Content-Range values and multipart/byteranges bodies.  Pure functions over
 * bytes (no I/O, no allocation), fuzzed by fuzz/fuzz_http.c.
 *
 * Contract, for any input (the server is not trusted):
 * - nothing is read outside [p, p + n) and nothing written outside the
 *   parser struct and the caller's out parameters;
 * - a part is announced (MP_PART) only with a well-formed Content-Range
 *   "bytes A-B/T" with A <= B (as [a, b) = [A, B + 1)), and exactly b - a
 *   data bytes follow it (MP_DATA pieces, at offsets a, a + len, ... ) before
 *   the next part or the end;
 * - every other shape is MP_ERROR with a short reason, after which the
 *   parser stays in error; the epilogue after the closing boundary is
 *   ignored (MP_END).
 */
#ifndef IH_HTTP_PARSE_H
#define IH_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* A header's value v[0..vlen) without surrounding blanks and CR/LF, into
 * dst (cut to dlen - 1 bytes, always terminated). */
void http_header_value(char *dst, size_t dlen, const char *v, size_t vlen);

/* "bytes A-B/T" -> [a, b) = [A, B + 1) and t = T (UINT64_MAX for "*").
 * 0, or -1 when malformed (B < A, numbers past 2^64, trailing bytes). */
int http_parse_crange(const char *s, uint64_t *a, uint64_t *b, uint64_t *t);

/* The delimiter line ("--" + boundary) of a multipart Content-Type value,
 * into out.  0, or -1 when there is no boundary or it does not fit. */
int http_multipart_delimiter(const char *ctype, char *out, size_t outlen);

enum mp_state { MP_LINES, MP_HEADERS, MP_DATA, MP_END, MP_FAILED };

struct mp_parser {
	char delim[128];       /* "--boundary" */
	size_t dlen;
	enum mp_state state;
	char line[1024];
	size_t linelen;
	char part_range[128];  /* the current part's Content-Range value */
	uint64_t pos, end;     /* the current part's data still to come */
};

enum mp_kind { MP_NEED_MORE, MP_PART, MP_DATA_PIECE, MP_DONE, MP_ERROR };

struct mp_out {
	enum mp_kind kind;
	uint64_t a, b, t;      /* MP_PART: the part's range and the file's size */
	const char *data;      /* MP_DATA_PIECE: len bytes for offset at */
	size_t len;
	uint64_t at;
	const char *why;       /* MP_ERROR */
};

/* Starts a parser for the delimiter line delim ("--boundary"). 0 or -1. */
int mp_init(struct mp_parser *m, const char *delim);

/* Parses from p[0..n): fills *out with the next event and returns the
 * number of bytes consumed (the caller calls again with the rest; 0 bytes
 * consumed only with MP_NEED_MORE when n == 0, MP_DONE or MP_ERROR). */
size_t mp_next(struct mp_parser *m, const char *p, size_t n, struct mp_out *out);

#endif
