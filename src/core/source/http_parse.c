/* http_parse.c - Content-Range values and multipart/byteranges bodies (see
 * http_parse.h for the contract). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http_parse.h"

/* An unsigned decimal number at *s, advancing *s: 0, or -1 when there is
 * no digit or it does not fit in 64 bits. */
static int parse_u64(const char **s, uint64_t *v)
{
	const char *p = *s;
	uint64_t x = 0;
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*s = p;
	*v = x;
	return 0;
}

int http_parse_crange(const char *s, uint64_t *a, uint64_t *b, uint64_t *t)
{
	uint64_t x, y, z = UINT64_MAX;
	if (strncasecmp(s, "bytes ", 6))
		return -1;
	s += 6;
	if (parse_u64(&s, &x) || *s++ != '-' || parse_u64(&s, &y) || *s++ != '/')
		return -1;
	if (*s == '*')
		s++;
	else if (parse_u64(&s, &z))
		return -1;
	if (*s || y < x || y == UINT64_MAX)
		return -1;
	*a = x;
	*b = y + 1;
	*t = z;
	return 0;
}

int http_multipart_delimiter(const char *ctype, char *out, size_t outlen)
{
	const char *bp = strcasestr(ctype, "boundary=");
	size_t bl;
	if (!bp)
		return -1;
	bp += 9;
	if (*bp == '"') {
		bp++;
		bl = strcspn(bp, "\"");
	} else {
		bl = strcspn(bp, "; \t");
	}
	if (bl == 0 || bl + 3 > outlen)
		return -1;
	snprintf(out, outlen, "--%.*s", (int)bl, bp);
	return 0;
}

int mp_init(struct mp_parser *m, const char *delim)
{
	size_t dl = strlen(delim);
	memset(m, 0, sizeof *m);
	if (dl < 3 || dl >= sizeof m->delim)
		return -1;
	memcpy(m->delim, delim, dl + 1);
	m->dlen = dl;
	m->state = MP_LINES;
	return 0;
}

static size_t fail(struct mp_parser *m, struct mp_out *out, const char *why, size_t used)
{
	m->state = MP_FAILED;
	out->kind = MP_ERROR;
	out->why = why;
	return used;
}

/* One whole line (without its LF) in the LINES or HEADERS state: 1 when it
 * announced a part (out filled), 0 to go on, -1 on error (out filled). */
static int take_line(struct mp_parser *m, struct mp_out *out)
{
	char *l = m->line;
	size_t len = m->linelen;
	if (len && l[len - 1] == '\r')
		len--;
	if (m->state == MP_LINES) {
		if (len == 0)
			return 0;
		if (len == m->dlen && !memcmp(l, m->delim, len)) {
			m->state = MP_HEADERS;
			m->part_range[0] = '\0';
			return 0;
		}
		if (len == m->dlen + 2 && !memcmp(l, m->delim, m->dlen) && !memcmp(l + m->dlen, "--", 2)) {
			m->state = MP_END;
			return 0;
		}
		fail(m, out, "malformed multipart answer", 0);
		return -1;
	}
	if (len == 0) { /* end of the part's headers */
		if (http_parse_crange(m->part_range, &out->a, &out->b, &out->t)) {
			fail(m, out, "a part without a valid Content-Range", 0);
			return -1;
		}
		m->state = MP_DATA;
		m->pos = out->a;
		m->end = out->b;
		out->kind = MP_PART;
		return 1;
	}
	if (len > 14 && !strncasecmp(l, "Content-Range:", 14))
		http_header_value(m->part_range, sizeof m->part_range, l + 14, len - 14);
	return 0;
}

size_t mp_next(struct mp_parser *m, const char *p, size_t n, struct mp_out *out)
{
	size_t used = 0;
	memset(out, 0, sizeof *out);
	switch (m->state) {
	case MP_FAILED:
		return fail(m, out, "multipart answer after an error", 0);
	case MP_END:
		out->kind = MP_DONE;
		return n; /* the epilogue */
	case MP_DATA: {
		size_t k = m->end - m->pos < n ? (size_t)(m->end - m->pos) : n;
		out->kind = k ? MP_DATA_PIECE : MP_NEED_MORE;
		out->data = p;
		out->len = k;
		out->at = m->pos;
		m->pos += k;
		if (m->pos == m->end) {
			m->state = MP_LINES;
			m->linelen = 0;
		}
		return k;
	}
	default:
		break;
	}
	while (used < n) {
		char c = p[used++];
		if (c != '\n') {
			if (m->linelen + 1 >= sizeof m->line)
				return fail(m, out, "malformed multipart answer (a line too long)", used);
			m->line[m->linelen++] = c;
			continue;
		}
		m->line[m->linelen] = '\0';
		int r = take_line(m, out);
		m->linelen = 0;
		if (r)
			return used;
		if (m->state == MP_END) {
			out->kind = MP_DONE;
			return n;
		}
	}
	out->kind = MP_NEED_MORE;
	return used;
}

void http_header_value(char *dst, size_t dlen, const char *v, size_t vlen)
{
	while (vlen && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ' ||
			v[vlen - 1] == '\t'))
		vlen--;
	if (vlen >= dlen)
		vlen = dlen - 1;
	memcpy(dst, v, vlen);
	dst[vlen] = '\0';
}
