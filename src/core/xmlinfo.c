/* xmlinfo.c - image names from the WIM XML data.  The document is converted
 * to UTF-8 once, then scanned with an explicit element stack; only the
 * fields of <WIM><IMAGE INDEX="n"> are kept. */
#include <stdlib.h>
#include <string.h>
#include "metadata.h" /* ih_utf16le_to_utf8 */
#include "xmlinfo.h"

enum field { F_NONE = 0, F_NAME = 1, F_DESC = 2, F_TOTALBYTES = 4 };

struct span {
	const char *s;
	size_t n;
};

struct xml {
	const char *doc;
	size_t n, p;
	struct span stack[IH_XML_MAX_DEPTH];
	size_t depth;
	int root_closed;
	/* Results. */
	uint32_t image_count;
	char **names, **descs;
	uint64_t *total_bytes;
	uint8_t *claimed;     /* bitmap: images whose IMAGE element was seen */
	/* The IMAGE being read (0: none, or skipped) and what it gave so far. */
	uint32_t img;
	unsigned have;
	/* Text of the field being captured, an element at depth cap_depth. */
	enum field capturing;
	size_t cap_depth;
	int run_started, run_closed;
	char *text;
	size_t text_len, text_cap;
	int oom;
};

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int span_is(struct span a, const char *lit)
{
	size_t n = strlen(lit);
	return a.n == n && memcmp(a.s, lit, n) == 0;
}

static int starts(const struct xml *x, const char *lit)
{
	size_t n = strlen(lit);
	return x->n - x->p >= n && memcmp(x->doc + x->p, lit, n) == 0;
}

/* Moves past the next occurrence of lit; 0 if there is none. */
static int skip_past(struct xml *x, const char *lit)
{
	const char *q = memmem(x->doc + x->p, x->n - x->p, lit, strlen(lit));
	if (!q)
		return 0;
	x->p = (size_t)(q - x->doc) + strlen(lit);
	return 1;
}

static void skip_ws(struct xml *x)
{
	while (x->p < x->n && is_ws(x->doc[x->p]))
		x->p++;
}

/* Decimal number, surrounding whitespace allowed; 0 if not a number. */
static uint64_t parse_u64(const char *s, size_t n)
{
	size_t i = 0;
	uint64_t v = 0;
	while (i < n && is_ws(s[i]))
		i++;
	size_t first = i;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	if (i == first)
		return 0;
	while (i < n && is_ws(s[i]))
		i++;
	return i == n ? v : 0;
}

/* ------------------------------------------------------------- text */

static void text_put(struct xml *x, const char *s, size_t n)
{
	if (x->oom)
		return;
	if (x->text_cap - x->text_len <= n) {
		size_t cap = x->text_cap ? x->text_cap : 64;
		while (cap - x->text_len <= n)
			cap *= 2;
		char *t = realloc(x->text, cap);
		if (!t) {
			x->oom = 1;
			return;
		}
		x->text = t;
		x->text_cap = cap;
	}
	memcpy(x->text + x->text_len, s, n);
	x->text_len += n;
	x->text[x->text_len] = '\0';
}

/* A code point from &#N; as UTF-8; invalid ones become U+FFFD. */
static void text_put_codepoint(struct xml *x, uint64_t c)
{
	uint8_t u16[4];
	size_t nb = 2;
	char out[IH_UTF8_MAX(4)];
	if (c == 0 || c > 0x10FFFF)
		c = 0xFFFD;
	if (c >= 0x10000) {
		c -= 0x10000;
		u16[0] = (uint8_t)((0xD800 + (c >> 10)) & 0xFF);
		u16[1] = (uint8_t)((0xD800 + (c >> 10)) >> 8);
		u16[2] = (uint8_t)((0xDC00 + (c & 0x3FF)) & 0xFF);
		u16[3] = (uint8_t)((0xDC00 + (c & 0x3FF)) >> 8);
		nb = 4;
	} else {
		u16[0] = (uint8_t)(c & 0xFF);
		u16[1] = (uint8_t)(c >> 8);
	}
	text_put(x, out, ih_utf16le_to_utf8(u16, nb, out));
}

/* Decodes one entity at s[0] == '&'; returns bytes consumed, 0 if unknown. */
static size_t put_entity(struct xml *x, const char *s, size_t n)
{
	static const struct { const char *name; char c; } named[] = {
		{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''},
	};
	for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
		size_t len = strlen(named[i].name);
		if (n >= len && memcmp(s, named[i].name, len) == 0) {
			text_put(x, &named[i].c, 1);
			return len;
		}
	}
	if (n < 4 || s[1] != '#')
		return 0;
	int hex = s[2] == 'x';
	size_t i = hex ? 3 : 2, first = i;
	uint64_t v = 0;
	/* At most 8 digits: larger values are invalid anyway. */
	for (; i < n && i - first < 9; i++) {
		char c = s[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (hex && c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (hex && c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			break;
		v = v * (hex ? 16 : 10) + d;
	}
	if (i == first || i >= n || s[i] != ';' || i - first > 8)
		return 0;
	text_put_codepoint(x, v);
	return i + 1;
}

static void text_put_decoded(struct xml *x, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		const char *amp = memchr(s + i, '&', n - i);
		size_t run = amp ? (size_t)(amp - (s + i)) : n - i;
		text_put(x, s + i, run);
		i += run;
		if (i == n)
			break;
		size_t used = put_entity(x, s + i, n - i);
		if (!used) {
			text_put(x, "&", 1); /* tolerated: kept as written */
			used = 1;
		}
		i += used;
	}
}

/* Character data directly inside the captured element. */
static int in_capture(const struct xml *x)
{
	return x->capturing && x->depth == x->cap_depth && !x->run_closed;
}

static void start_capture(struct xml *x, enum field f)
{
	x->have |= f;
	x->capturing = f;
	x->cap_depth = x->depth;
	x->run_started = x->run_closed = 0;
	x->text_len = 0;
	text_put(x, "", 0);
}

static void finish_capture(struct xml *x)
{
	uint32_t i = x->img - 1;
	const char *t = x->text ? x->text : "";
	if (x->capturing == F_TOTALBYTES) {
		if (x->total_bytes)
			x->total_bytes[i] = parse_u64(t, x->text_len);
	} else {
		char **slot = x->capturing == F_NAME ? x->names : x->descs;
		if (slot && !x->oom) {
			free(slot[i]);
			slot[i] = strdup(t);
			if (!slot[i])
				x->oom = 1;
		}
	}
	x->capturing = F_NONE;
}

/* ------------------------------------------------------------- markup */

/* IMAGE index: claims it, or returns 0 when invalid or already taken. */
static uint32_t claim_image(struct xml *x, uint64_t idx)
{
	if (idx < 1 || idx > x->image_count)
		return 0;
	if (!x->claimed) {
		x->claimed = calloc(((size_t)x->image_count + 7) / 8, 1);
		if (!x->claimed) {
			x->oom = 1;
			return 0;
		}
	}
	uint8_t bit = (uint8_t)(1u << ((idx - 1) & 7));
	if (x->claimed[(idx - 1) / 8] & bit)
		return 0;
	x->claimed[(idx - 1) / 8] |= bit;
	return (uint32_t)idx;
}

static int end_tag(struct xml *x)
{
	size_t start = x->p += 2;
	while (x->p < x->n && !is_ws(x->doc[x->p]) && x->doc[x->p] != '>')
		x->p++;
	struct span name = {x->doc + start, x->p - start};
	skip_ws(x);
	if (x->p >= x->n || x->doc[x->p] != '>' || x->depth == 0)
		return -1;
	struct span open = x->stack[x->depth - 1];
	if (open.n != name.n || memcmp(open.s, name.s, name.n) != 0)
		return -1;
	x->p++;
	if (x->capturing && x->depth == x->cap_depth)
		finish_capture(x);
	if (x->depth == 2)
		x->img = 0; /* an IMAGE (or another child of the root) ends */
	if (--x->depth == 0)
		x->root_closed = 1;
	return 0;
}

static int start_tag(struct xml *x)
{
	size_t start = ++x->p;
	while (x->p < x->n && !is_ws(x->doc[x->p]) && x->doc[x->p] != '>' && x->doc[x->p] != '/')
		x->p++;
	struct span name = {x->doc + start, x->p - start};
	if (name.n == 0 || x->root_closed)
		return -1;
	if (x->depth == 0 && !span_is(name, "WIM"))
		return -1;
	int is_image = x->depth == 1 && span_is(name, "IMAGE");
	uint64_t index = 0;

	for (;;) {
		skip_ws(x);
		if (x->p >= x->n)
			return -1;
		char c = x->doc[x->p];
		if (c == '/' || c == '>')
			break;
		size_t an = x->p;
		while (x->p < x->n && x->doc[x->p] != '=' && !is_ws(x->doc[x->p]) &&
		       x->doc[x->p] != '>' && x->doc[x->p] != '/')
			x->p++;
		struct span attr = {x->doc + an, x->p - an};
		skip_ws(x);
		if (attr.n == 0 || x->p >= x->n || x->doc[x->p] != '=')
			return -1;
		x->p++;
		skip_ws(x);
		if (x->p >= x->n || (x->doc[x->p] != '"' && x->doc[x->p] != '\''))
			return -1;
		char quote = x->doc[x->p++];
		const char *v = x->doc + x->p;
		const char *end = memchr(v, quote, x->n - x->p);
		if (!end)
			return -1;
		x->p = (size_t)(end - x->doc) + 1;
		if (is_image && span_is(attr, "INDEX"))
			index = parse_u64(v, (size_t)(end - v));
	}
	int empty = x->doc[x->p] == '/';
	if (empty && (x->n - x->p < 2 || x->doc[x->p + 1] != '>'))
		return -1;
	x->p += empty ? 2 : 1;

	/* A child element ends the captured element's first text run. */
	if (x->capturing && x->depth == x->cap_depth && x->run_started)
		x->run_closed = 1;
	if (is_image) {
		x->img = claim_image(x, index);
		x->have = 0;
	}
	if (x->depth >= IH_XML_MAX_DEPTH)
		return -1;
	x->stack[x->depth++] = name;

	enum field f = F_NONE;
	if (x->depth == 3 && x->img && !x->capturing) {
		if (span_is(name, "NAME"))
			f = F_NAME;
		else if (span_is(name, "DESCRIPTION"))
			f = F_DESC;
		else if (span_is(name, "TOTALBYTES"))
			f = F_TOTALBYTES;
	}
	if (f && !(x->have & f))
		start_capture(x, f);
	if (empty) {
		if (x->capturing && x->depth == x->cap_depth)
			finish_capture(x);
		if (is_image)
			x->img = 0;
		if (--x->depth == 0)
			x->root_closed = 1;
	}
	return 0;
}

/* Text, CDATA, comments, processing instructions, DOCTYPE, tags. */
static int parse(struct xml *x)
{
	while (x->p < x->n) {
		if (x->doc[x->p] != '<') {
			const char *s = x->doc + x->p;
			const char *lt = memchr(s, '<', x->n - x->p);
			size_t n = lt ? (size_t)(lt - s) : x->n - x->p;
			if (x->depth == 0) {
				for (size_t i = 0; i < n; i++)
					if (!is_ws(s[i]))
						return -1; /* text outside the root */
			} else if (in_capture(x)) {
				text_put_decoded(x, s, n);
				x->run_started = 1;
			}
			x->p += n;
		} else if (starts(x, "<?")) {
			if (!skip_past(x, "?>"))
				return -1;
		} else if (starts(x, "<!--")) {
			x->p += 4;
			if (!skip_past(x, "-->"))
				return -1;
		} else if (starts(x, "<![CDATA[")) {
			if (x->depth == 0)
				return -1;
			size_t s = x->p += 9;
			if (!skip_past(x, "]]>"))
				return -1;
			if (in_capture(x)) {
				text_put(x, x->doc + s, x->p - 3 - s);
				x->run_started = 1;
			}
		} else if (starts(x, "<!")) {
			if (x->depth > 0 || x->root_closed || !skip_past(x, ">"))
				return -1; /* DOCTYPE belongs before the root */
		} else if (starts(x, "</")) {
			if (end_tag(x))
				return -1;
		} else if (start_tag(x)) {
			return -1;
		}
		if (x->oom)
			return -2;
	}
	return x->root_closed && x->depth == 0 ? 0 : -1;
}

/* Converts the document to UTF-8; NULL when it is not UTF-16LE (*bad set)
 * or memory ran out.  The byte order mark is optional, as in wimlib, which
 * reads every WIM's XML as UTF-16LE and skips a BOM if there is one. */
static char *to_utf8(const uint8_t *buf, size_t len, size_t *n, int *bad)
{
	*bad = 0;
	if (!buf || len < 2 || (buf[0] == 0xFE && buf[1] == 0xFF) || len > SIZE_MAX / 4) {
		*bad = 1;
		return NULL;
	}
	if (buf[0] == 0xFF && buf[1] == 0xFE) {
		buf += 2;
		len -= 2;
	}
	/* Some writers pad the document with NUL characters. */
	while (len >= 2 && buf[len - 2] == 0 && buf[len - 1] == 0)
		len -= 2;
	char *doc = malloc(IH_UTF8_MAX(len) + 1);
	if (!doc)
		return NULL;
	*n = ih_utf16le_to_utf8(buf, len, doc);
	doc[*n] = '\0';
	if (memchr(doc, '\0', *n)) {
		free(doc); /* NUL is not allowed anywhere in XML */
		*bad = 1;
		return NULL;
	}
	return doc;
}

static void clear_results(uint32_t count, char **names, char **descs, uint64_t *total_bytes)
{
	for (uint32_t i = 0; i < count; i++) {
		if (names) {
			free(names[i]);
			names[i] = NULL;
		}
		if (descs) {
			free(descs[i]);
			descs[i] = NULL;
		}
		if (total_bytes)
			total_bytes[i] = 0;
	}
}

/* Absent strings become "". */
static int fill_absent(uint32_t count, char **v)
{
	for (uint32_t i = 0; v && i < count; i++)
		if (!v[i] && !(v[i] = strdup("")))
			return -1;
	return 0;
}

int ih_xml_read_images(const uint8_t *buf, size_t len, uint32_t image_count, char **names,
		       char **descs, uint64_t *total_bytes)
{
	for (uint32_t i = 0; i < image_count; i++) {
		if (names)
			names[i] = NULL;
		if (descs)
			descs[i] = NULL;
		if (total_bytes)
			total_bytes[i] = 0;
	}
	struct xml *x = calloc(1, sizeof *x);
	if (!x)
		return -2;
	int bad, r;
	x->doc = to_utf8(buf, len, &x->n, &bad);
	if (!x->doc) {
		r = bad ? -1 : -2;
	} else {
		x->image_count = image_count;
		x->names = names;
		x->descs = descs;
		x->total_bytes = total_bytes;
		r = parse(x);
		if (x->oom)
			r = -2;
	}
	free((char *)x->doc);
	free(x->text);
	free(x->claimed);
	free(x);
	if (r != -2 && (fill_absent(image_count, names) || fill_absent(image_count, descs)))
		r = -2;
	if (r == -2)
		clear_results(image_count, names, descs, total_bytes);
	return r;
}

int ih_xml_image_names(const uint8_t *buf, size_t len, uint32_t image_count, char **names,
		       char **descs)
{
	return ih_xml_read_images(buf, len, image_count, names, descs, NULL);
}
