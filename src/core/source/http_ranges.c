/* http_ranges.c - range sets, coalescing and URL helpers for remote
 * sources (pure: no I/O). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "http_ranges.h"

void ivset_free(struct ivset *s)
{
	free(s->v);
	memset(s, 0, sizeof *s);
}

void ivset_clear(struct ivset *s)
{
	s->n = 0;
}

/* The first range whose end is >= a (binary search). */
static size_t lower(const struct ivset *s, uint64_t a)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->v[2 * mid + 1] < a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int ivset_add(struct ivset *s, uint64_t a, uint64_t b)
{
	if (a >= b)
		return 0;
	size_t i = lower(s, a), j = i;
	/* ranges i..j-1 touch [a, b): merge them */
	while (j < s->n && s->v[2 * j] <= b)
		j++;
	if (i == j) {
		if (s->n == s->cap) {
			size_t ncap = s->cap ? s->cap * 2 : 16;
			uint64_t *nv = realloc(s->v, ncap * 2 * sizeof *nv);
			if (!nv)
				return -1;
			s->v = nv;
			s->cap = ncap;
		}
		memmove(&s->v[2 * (i + 1)], &s->v[2 * i], (s->n - i) * 2 * sizeof *s->v);
		s->v[2 * i] = a;
		s->v[2 * i + 1] = b;
		s->n++;
		return 0;
	}
	uint64_t na = a < s->v[2 * i] ? a : s->v[2 * i];
	uint64_t nb = b > s->v[2 * (j - 1) + 1] ? b : s->v[2 * (j - 1) + 1];
	s->v[2 * i] = na;
	s->v[2 * i + 1] = nb;
	memmove(&s->v[2 * (i + 1)], &s->v[2 * j], (s->n - j) * 2 * sizeof *s->v);
	s->n -= j - i - 1;
	return 0;
}

int ivset_covers(const struct ivset *s, uint64_t a, uint64_t b)
{
	if (a >= b)
		return 1;
	size_t i = lower(s, a + 1);
	return i < s->n && s->v[2 * i] <= a && s->v[2 * i + 1] >= b;
}

uint64_t ivset_first_gap(const struct ivset *s, uint64_t a)
{
	size_t i = lower(s, a + 1);
	if (i < s->n && s->v[2 * i] <= a)
		return s->v[2 * i + 1];
	return a;
}

static int cmp_span(const void *x, const void *y)
{
	const struct span *a = x, *b = y;
	if (a->file != b->file)
		return a->file < b->file ? -1 : 1;
	if (a->off != b->off)
		return a->off < b->off ? -1 : 1;
	return 0;
}

size_t spans_coalesce(struct span *v, size_t n, uint64_t gap)
{
	size_t out = 0;
	if (!n)
		return 0;
	qsort(v, n, sizeof *v, cmp_span);
	for (size_t i = 0; i < n; i++) {
		if (!v[i].len)
			continue;
		if (out) {
			struct span *p = &v[out - 1];
			uint64_t pend = p->off + p->len;
			if (p->file == v[i].file && v[i].off <= pend + gap && v[i].off + gap >= p->off) {
				uint64_t end = v[i].off + v[i].len;
				if (end > pend)
					p->len = end - p->off;
				continue;
			}
		}
		v[out++] = v[i];
	}
	return out;
}

int url_is_http(const char *spec)
{
	return !strncasecmp(spec, "http://", 7) || !strncasecmp(spec, "https://", 8);
}

char *url_shown(const char *url)
{
	const char *scheme_end = strstr(url, "://");
	const char *auth = scheme_end ? scheme_end + 3 : url;
	size_t auth_len = strcspn(auth, "/?#");
	const char *at = NULL;
	for (const char *p = auth; p < auth + auth_len; p++)
		if (*p == '@')
			at = p;
	const char *host = at ? at + 1 : auth;
	const char *path = auth + auth_len;
	size_t path_len = strcspn(path, "?#");
	int had_query = path[path_len] != '\0';
	size_t len = (size_t)(auth - url) + (size_t)(path - host) + path_len + 8;
	char *s = malloc(len);
	if (!s)
		return NULL;
	snprintf(s, len, "%.*s%.*s%.*s%s", (int)(auth - url), url, (int)(path - host), host,
		 (int)path_len, path, had_query ? "?..." : "");
	return s;
}

char *url_part(const char *url, unsigned n)
{
	const char *scheme_end = strstr(url, "://");
	const char *auth = scheme_end ? scheme_end + 3 : url;
	const char *path = auth + strcspn(auth, "/?#");
	size_t path_len = strcspn(path, "?#");
	const char *slash = NULL, *dot = NULL;
	for (const char *p = path; p < path + path_len; p++) {
		if (*p == '/')
			slash = p;
		else if (*p == '.')
			dot = p;
	}
	size_t stem = (dot && (!slash || dot > slash)) ? (size_t)(dot - url)
						      : (size_t)(path + path_len - url);
	size_t len = strlen(url) + 12;
	char *s = malloc(len);
	if (s)
		snprintf(s, len, "%.*s%u%s", (int)stem, url, n, url + stem);
	return s;
}

/* The authority of a URL: [start, end), and whether it has userinfo. */
static int authority(const char *url, const char **start, size_t *len)
{
	const char *se = strstr(url, "://");
	if (!se)
		return -1;
	*start = se + 3;
	*len = strcspn(*start, "/?#");
	return memchr(*start, '@', *len) ? 1 : 0;
}

int url_same_origin(const char *a, const char *b)
{
	const char *sa, *sb;
	size_t la, lb;
	if (authority(a, &sa, &la) != 0 || authority(b, &sb, &lb) != 0)
		return 0;
	return sa - a == sb - b && !strncasecmp(a, b, (size_t)(sa - a)) && la == lb &&
	       !strncasecmp(sa, sb, la);
}
