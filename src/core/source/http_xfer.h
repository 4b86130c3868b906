/* http_xfer.h - the transfer engine of remote sources: fetches byte ranges
 * of remote files into local spill files, many requests in flight on one
 * curl multi handle (connections reused, HTTP/2 multiplexed where offered),
 * on the calling thread, cancel-aware.
 *
 * Every response is checked before one of its bytes is kept: a 206 whose
 * Content-Range is one the request asked for, the remote file's size and
 * validator (ETag, Last-Modified) unchanged since the first response (and
 * If-Range sent, so a replaced file answers 200 instead).  Bytes land in
 * the spill file at their remote offsets; the set of ranges that arrived
 * says what may be read.  Nothing is ever trusted beyond that: the sink
 * verifies every blob's SHA-1. */
#ifndef IH_HTTP_XFER_H
#define IH_HTTP_XFER_H

#include <stdint.h>
#include "imagehealth.h"
#include "http_ranges.h"

struct ih_job;

/* The caller's HTTP options (pointers into ih_restore_options), defaults
 * applied by http_conf_init. */
struct http_conf {
	const char *ca_file, *client_cert, *client_key, *proxy, *netrc_file;
	int netrc;
	const char *const *headers;
	size_t n_headers;
	long connect_timeout_ms;
	double stall_seconds;
	int retries;
	double retry_wait_max;
	uint64_t whole_file_max;
	int max_redirects;
	int parallel;
};
void http_conf_init(struct http_conf *c, const ih_restore_options *opt);

/* One remote file (a part of the source). */
struct http_file {
	char *url;               /* as requested (may hold credentials: never shown) */
	char *shown;             /* as reports show it */
	int fd;                  /* spill file: bytes at their remote offsets */
	uint64_t size;           /* the remote size, once known */
	int size_known;
	char etag[160];          /* validators of the first response ("" if none) */
	char lastmod[80];
	int validated;           /* the validators above were taken */
	struct ivset have;       /* ranges that arrived */
};

/* The engine's state for one source. */
struct http_xfer {
	const struct http_conf *conf;
	void *multi;             /* CURLM */
	struct ih_job *job;      /* cancel, progress messages; may be NULL */
	ih_source_report *rep;   /* counters and notes */
	int multi_range;         /* -1 not known, 0 refused, 1 accepted */
	int fatal;               /* the source cannot be used any more */
	ih_errcode fatal_code;
	char fatal_msg[400];
	int cancelled;
};

int http_xfer_init(struct http_xfer *x, const struct http_conf *conf, ih_source_report *rep);
void http_xfer_free(struct http_xfer *x);

/* Fetches the ranges (any order; coalesced here) of files into their spill
 * files.  Returns 0 when the wave ended (see each file's `have` for what
 * arrived), -1 when the source became unusable (x->fatal, x->fatal_msg),
 * -2 when cancelled.  One call is one wave: its requests go out together
 * (retries after backoff), and it counts as one round trip. */
int http_fetch(struct http_xfer *x, struct http_file *files, size_t nfiles,
	       const struct span *want, size_t n);

/* Adds a note (a line of the source's report; bounded) and posts it as a
 * job message. */
void http_note(struct http_xfer *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
