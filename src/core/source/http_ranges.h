/* http_ranges.h - byte ranges for remote sources: the set of ranges that
 * arrived (sorted, merged), coalescing the ranges a wave asks for, and the
 * URL helpers (what a report may show; the URL of a split set's part). */
#ifndef IH_HTTP_RANGES_H
#define IH_HTTP_RANGES_H

#include <stddef.h>
#include <stdint.h>

/* [start, end) ranges, sorted and merged. */
struct ivset {
	uint64_t *v;   /* v[2i] = start, v[2i+1] = end */
	size_t n, cap;
};

void ivset_free(struct ivset *s);
void ivset_clear(struct ivset *s);
/* Adds [a, b).  0, or -1 when out of memory. */
int ivset_add(struct ivset *s, uint64_t a, uint64_t b);
/* Is all of [a, b) in the set? */
int ivset_covers(const struct ivset *s, uint64_t a, uint64_t b);
/* The first offset >= a that is not in the set (a itself when a is not). */
uint64_t ivset_first_gap(const struct ivset *s, uint64_t a);

/* A range of one remote file. */
struct span {
	uint16_t file;
	uint64_t off, len;
};

/* Sorts v by (file, off) and merges ranges that overlap or lie at most gap
 * bytes apart.  Returns the new count. */
size_t spans_coalesce(struct span *v, size_t n, uint64_t gap);

/* The URL as a report may show it: no user:password@, no query string or
 * fragment (which may hold a token).  malloc'd, or NULL. */
char *url_shown(const char *url);
/* Do a and b have the same scheme, host and port, and neither a
 * user:password?  (A redirect within that origin may be followed once and
 * remembered.) */
int url_same_origin(const char *a, const char *b);
/* Is spec an http:// or https:// URL? */
int url_is_http(const char *spec);
/* The URL of part n of a split set whose first part is url ("x.swm" ->
 * "x2.swm", in the path, before any query).  malloc'd, or NULL. */
char *url_part(const char *url, unsigned n);

#endif
