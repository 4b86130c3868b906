/* http_xfer.c - the transfer engine of remote sources (see http_xfer.h).
 *
 * A wave: the wanted ranges are coalesced, then sent as requests, at most
 * conf->parallel in flight: multi-range requests while the server accepts
 * them (nginx, Apache answer multipart/byteranges), single ranges in
 * parallel once it refused one (object stores and CDNs answer 200 with the
 * whole file, or one range).  A response's bytes are kept only after its
 * status, Content-Range and validators were judged; then they go straight
 * to the spill file.  Transient failures (408, 429, 5xx, a reset, a
 * truncated body, a stall) are retried for the missing bytes only, after
 * a capped exponential backoff that honours Retry-After; anything else
 * makes the source unusable. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include "http_parse.h"
#include "http_xfer.h"
#include "job.h"
#include "util.h"

#define COALESCE_GAP 4096        /* near ranges are fetched as one */
#define RANGES_PER_REQUEST 64    /* parts of one multi-range request */
#define NOTES_MAX 40
#define BACKOFF_FIRST 0.25       /* seconds before the first retry */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void http_conf_init(struct http_conf *c, const ih_restore_options *o)
{
	memset(c, 0, sizeof *c);
	c->ca_file = o->http_ca_file;
	c->client_cert = o->http_client_cert;
	c->client_key = o->http_client_key;
	c->proxy = o->http_proxy;
	c->netrc = o->http_netrc || o->http_netrc_file;
	c->netrc_file = o->http_netrc_file;
	c->headers = o->http_headers;
	c->n_headers = o->n_http_headers;
	c->connect_timeout_ms = o->http_connect_timeout > 0 ? (long)(o->http_connect_timeout * 1000) : 10000;
	c->stall_seconds = o->http_stall_timeout > 0 ? o->http_stall_timeout : 30;
	c->retries = o->http_retries > 0 ? o->http_retries : o->http_retries < 0 ? 0 : 4;
	c->retry_wait_max = o->http_retry_wait_max > 0 ? o->http_retry_wait_max : 30;
	c->whole_file_max = o->http_whole_file_max;
	c->max_redirects = o->http_max_redirects > 0 ? o->http_max_redirects
			   : o->http_max_redirects < 0 ? 0 : 5;
	c->parallel = o->http_parallel > 0 ? (o->http_parallel > 64 ? 64 : o->http_parallel) : 8;
}

int http_xfer_init(struct http_xfer *x, const struct http_conf *conf, ih_source_report *rep)
{
	memset(x, 0, sizeof *x);
	pthread_once(&curl_once, curl_init_once);
	x->conf = conf;
	x->rep = rep;
	x->multi_range = -1;
	CURLM *m = curl_multi_init();
	if (!m)
		return -1;
	curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)conf->parallel);
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)conf->parallel);
	x->multi = m;
	return 0;
}

void http_xfer_free(struct http_xfer *x)
{
	if (x->multi)
		curl_multi_cleanup(x->multi);
	x->multi = NULL;
}

void http_note(struct http_xfer *x, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (x->job)
		ih_job_post(x->job, IH_EVENT_MESSAGE, "%s", buf);
	ih_source_report *rep = x->rep;
	if (rep->n_notes > NOTES_MAX)
		return;
	char **nv = realloc(rep->notes, (rep->n_notes + 1) * sizeof *nv);
	if (!nv)
		return;
	rep->notes = nv;
	nv[rep->n_notes] = ih_strdup(rep->n_notes == NOTES_MAX ? "(further notes left out)" : buf);
	if (nv[rep->n_notes])
		rep->n_notes++;
}

/* ------------------------------------------------------------ requests */

enum { SP_PENDING, SP_INFLIGHT, SP_DONE, SP_FAILED };

struct wspan {
	struct span s;
	int state;
	int tries;
	double not_before;
};

enum { BODY_DISCARD, BODY_SINGLE, BODY_MULTI, BODY_WHOLE };
enum { ABORT_NONE, ABORT_REQUEUE, ABORT_FATAL };

struct req {
	struct http_xfer *x;
	struct http_file *f;
	CURL *e;
	struct curl_slist *hdrs;
	size_t *idx;             /* its spans */
	uint64_t *ask;           /* ask[2k], ask[2k+1]: bytes asked for span k: [a, b) */
	size_t n;
	struct wspan *spans;
	char errbuf[CURL_ERROR_SIZE];
	/* the response */
	long status;
	char ctype[256], crange[128], etag[160], lastmod[80], cenc[64], retry_after[64];
	uint64_t clen;
	int clen_known;
	int judged, mode, abort;
	uint64_t pos, end;
	int spill_errno;
	double last_byte;        /* when a byte last arrived (stall bound) */
	struct mp_parser mp;     /* multipart/byteranges */
};

static size_t on_header(char *buf, size_t size, size_t nmemb, void *ud)
{
	struct req *r = ud;
	size_t n = size * nmemb;
	r->last_byte = ih_now();
	if (n >= 5 && !strncasecmp(buf, "HTTP/", 5)) {
		/* a new response (after a redirect or a 100): forget the last */
		const char *sp = memchr(buf, ' ', n);
		r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		r->ctype[0] = r->crange[0] = r->etag[0] = r->lastmod[0] = r->cenc[0] = '\0';
		r->retry_after[0] = '\0';
		r->clen_known = 0;
		return n;
	}
	const char *colon = memchr(buf, ':', n);
	if (!colon)
		return n;
	size_t klen = (size_t)(colon - buf), vlen = n - klen - 1;
	const char *v = colon + 1;
#define HDR(name, field)                                                     \
	if (klen == sizeof name - 1 && !strncasecmp(buf, name, klen)) {      \
		http_header_value(r->field, sizeof r->field, v, vlen);              \
		return n;                                                    \
	}
	HDR("Content-Type", ctype)
	HDR("Content-Range", crange)
	HDR("ETag", etag)
	HDR("Last-Modified", lastmod)
	HDR("Content-Encoding", cenc)
	HDR("Retry-After", retry_after)
#undef HDR
	if (klen == 14 && !strncasecmp(buf, "Content-Length", 14)) {
		char tmp[32];
		http_header_value(tmp, sizeof tmp, v, vlen);
		char *end;
		errno = 0;
		unsigned long long cl = strtoull(tmp, &end, 10);
		if (!errno && end != tmp && !*end && tmp[0] != '-') {
			r->clen = cl;
			r->clen_known = 1;
		}
	}
	return n;
}

static void req_fatal(struct req *r, ih_errcode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void req_fatal(struct req *r, ih_errcode code, const char *fmt, ...)
{
	struct http_xfer *x = r->x;
	va_list ap;
	r->abort = ABORT_FATAL;
	if (x->fatal)
		return;
	x->fatal = 1;
	x->fatal_code = code;
	va_start(ap, fmt);
	vsnprintf(x->fatal_msg, sizeof x->fatal_msg, fmt, ap);
	va_end(ap);
	http_note(x, "%s", x->fatal_msg);
}

/* The remote file is not the one whose tables were read. */
static int changed(struct req *r)
{
	struct http_file *f = r->f;
	if (!f->validated)
		return 0;
	if (f->etag[0] && r->etag[0] && strcmp(f->etag, r->etag)) {
		req_fatal(r, IH_ERR_DOWNLOAD,
			  "%s changed during the repair (ETag %s, now %s): nothing more is taken from it",
			  f->shown, f->etag, r->etag);
		return 1;
	}
	if (f->lastmod[0] && r->lastmod[0] && strcmp(f->lastmod, r->lastmod)) {
		req_fatal(r, IH_ERR_DOWNLOAD,
			  "%s changed during the repair (Last-Modified %s, now %s): nothing more is taken from it",
			  f->shown, f->lastmod, r->lastmod);
		return 1;
	}
	return 0;
}

static int set_size(struct req *r, uint64_t t)
{
	struct http_file *f = r->f;
	if (f->size_known) {
		if (t != f->size) {
			req_fatal(r, IH_ERR_DOWNLOAD,
				  "%s changed during the repair (%llu bytes, now %llu): nothing more is taken from it",
				  f->shown, (unsigned long long)f->size, (unsigned long long)t);
			return -1;
		}
		return 0;
	}
	if (ftruncate(f->fd, (off_t)t) != 0) {
		req_fatal(r, IH_ERR_DOWNLOAD, "%s: %llu bytes: no room for a spill file of that size (%s)",
			  f->shown, (unsigned long long)t, strerror(errno));
		return -1;
	}
	f->size = t;
	f->size_known = 1;
	return 0;
}

static void take_validators(struct req *r)
{
	struct http_file *f = r->f;
	if (f->validated)
		return;
	snprintf(f->etag, sizeof f->etag, "%s", r->etag);
	snprintf(f->lastmod, sizeof f->lastmod, "%s", r->lastmod);
	f->validated = 1;
}

/* Does [a, b) start where one of the ranges this request asked for starts,
 * and end inside the ranges asked (a server may coalesce near ranges into
 * one part)? */
static int asked(const struct req *r, uint64_t a, uint64_t b)
{
	int starts = 0;
	uint64_t end = 0;
	for (size_t k = 0; k < r->n; k++) {
		starts |= r->ask[2 * k] == a;
		if (r->ask[2 * k + 1] > end)
			end = r->ask[2 * k + 1];
	}
	return starts && b > a && b <= end;
}

static void range_text(const struct req *r, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t k = 0; k < r->n && used + 48 < len; k++)
		used += (size_t)snprintf(buf + used, len - used, "%s%llu-%llu", k ? "," : "",
					 (unsigned long long)r->ask[2 * k],
					 (unsigned long long)r->ask[2 * k + 1] - 1);
	if (used + 48 >= len && len > 4)
		snprintf(buf + len - 4, 4, "...");
}

/* Judges the response before its first byte is kept.  0: go on; -1: abort. */
static int judge(struct req *r)
{
	struct http_xfer *x = r->x;
	struct http_file *f = r->f;
	char asked_txt[160];
	uint64_t a, b, t;

	r->judged = 1;
	r->mode = BODY_DISCARD;
	if (r->status != 206 && r->status != 200)
		return 0; /* an error: judged when it ends */
	if (r->cenc[0] && strcasecmp(r->cenc, "identity")) {
		req_fatal(r, IH_ERR_DOWNLOAD, "%s: the server encoded the range (Content-Encoding: %s)",
			  f->shown, r->cenc);
		return -1;
	}
	if (changed(r))
		return -1;
	range_text(r, asked_txt, sizeof asked_txt);
	if (r->status == 200) {
		if (r->n > 1) {
			/* a multi-range request refused: ask single ranges */
			x->multi_range = 0;
			http_note(x, "%s: the server answered a multi-range request with HTTP 200 "
				  "(the whole file): asking single ranges in parallel", f->shown);
			r->abort = ABORT_REQUEUE;
			return -1;
		}
		if (!x->conf->whole_file_max || !r->clen_known || r->clen > x->conf->whole_file_max) {
			char sz[48] = "of unknown size";
			if (r->clen_known)
				snprintf(sz, sizeof sz, "%llu bytes", (unsigned long long)r->clen);
			req_fatal(r, IH_ERR_DOWNLOAD,
				  "%s: the server ignores Range requests (HTTP 200 instead of 206 for bytes %s; "
				  "the whole file, %s, is over the whole-file limit of %llu bytes): skipped",
				  f->shown, asked_txt, sz, (unsigned long long)x->conf->whole_file_max);
			return -1;
		}
		if (set_size(r, r->clen))
			return -1;
		http_note(x, "%s: the server ignores Range requests (HTTP 200): taking the whole file "
			  "(%llu bytes, within the whole-file limit)", f->shown, (unsigned long long)r->clen);
		take_validators(r);
		r->mode = BODY_WHOLE;
		r->pos = 0;
		r->end = r->clen;
		return 0;
	}
	/* 206 */
	if (!strncasecmp(r->ctype, "multipart/byteranges", 20)) {
		char delim[sizeof r->mp.delim];
		if (http_multipart_delimiter(r->ctype, delim, sizeof delim) || mp_init(&r->mp, delim)) {
			req_fatal(r, IH_ERR_DOWNLOAD, "%s: multipart answer without a usable boundary",
				  f->shown);
			return -1;
		}
		if (x->multi_range < 0)
			x->multi_range = 1;
		take_validators(r);
		r->mode = BODY_MULTI;
		return 0;
	}
	if (http_parse_crange(r->crange, &a, &b, &t) || t == UINT64_MAX || b > t || !asked(r, a, b)) {
		req_fatal(r, IH_ERR_DOWNLOAD,
			  "%s: wrong Content-Range: asked for bytes %s, the server sent \"%s\": skipped",
			  f->shown, asked_txt, r->crange[0] ? r->crange : "(none)");
		return -1;
	}
	if (set_size(r, t))
		return -1;
	if (r->n > 1 && x->multi_range != 0) {
		x->multi_range = 0;
		http_note(x, "%s: the server answers multi-range requests with one range: asking "
			  "single ranges in parallel", f->shown);
	}
	take_validators(r);
	r->mode = BODY_SINGLE;
	r->pos = a;
	r->end = b;
	return 0;
}

static int spill(struct req *r, const char *p, size_t n)
{
	struct http_file *f = r->f;
	uint64_t at = r->pos;
	size_t left = n;
	while (left) {
		ssize_t w = pwrite(f->fd, p, left, (off_t)at);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			r->spill_errno = w < 0 ? errno : ENOSPC;
			req_fatal(r, IH_ERR_DOWNLOAD, "%s: writing the spill file failed: %s", f->shown,
				  strerror(r->spill_errno));
			return -1;
		}
		p += w;
		left -= (size_t)w;
		at += (uint64_t)w;
	}
	if (ivset_add(&f->have, r->pos, r->pos + n)) {
		req_fatal(r, IH_ERR_NOMEM, "out of memory");
		return -1;
	}
	r->pos += n;
	return 0;
}

/* A part of a multipart answer: must be one we asked for, of a file of
 * the size we know. */
static int mp_part(struct req *r, const struct mp_out *o)
{
	char asked_txt[160];
	if (o->t == UINT64_MAX || o->b > o->t || !asked(r, o->a, o->b)) {
		range_text(r, asked_txt, sizeof asked_txt);
		req_fatal(r, IH_ERR_DOWNLOAD,
			  "%s: wrong Content-Range in a multipart answer: asked for bytes %s, "
			  "got \"%s\": skipped", r->f->shown, asked_txt, r->mp.part_range);
		return -1;
	}
	return set_size(r, o->t);
}

static int mp_feed(struct req *r, const char *p, size_t n)
{
	while (n) {
		struct mp_out o;
		size_t used = mp_next(&r->mp, p, n, &o);
		p += used;
		n -= used;
		switch (o.kind) {
		case MP_PART:
			if (mp_part(r, &o))
				return -1;
			break;
		case MP_DATA_PIECE:
			r->pos = o.at;
			if (spill(r, o.data, o.len))
				return -1;
			break;
		case MP_ERROR:
			req_fatal(r, IH_ERR_DOWNLOAD, "%s: %s", r->f->shown, o.why);
			return -1;
		case MP_DONE:
		case MP_NEED_MORE:
			return 0;
		}
	}
	return 0;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	struct req *r = ud;
	size_t n = size * nmemb;
	r->last_byte = ih_now();
	r->x->rep->bytes_fetched += n;
	if (!r->judged && judge(r))
		return 0;
	switch (r->mode) {
	case BODY_DISCARD:
		return n;
	case BODY_MULTI:
		return mp_feed(r, p, n) ? 0 : n;
	default:
		if (n > r->end - r->pos) {
			req_fatal(r, IH_ERR_DOWNLOAD, "%s: the server sent more bytes than its "
				  "Content-Range said: skipped", r->f->shown);
			return 0;
		}
		return spill(r, p, n) ? 0 : n;
	}
}

static void req_free(struct req *r)
{
	if (!r)
		return;
	if (r->e)
		curl_easy_cleanup(r->e);
	curl_slist_free_all(r->hdrs);
	free(r->idx);
	free(r->ask);
	free(r);
}

static int add_header(struct req *r, const char *h)
{
	struct curl_slist *n = curl_slist_append(r->hdrs, h);
	if (!n)
		return -1;
	r->hdrs = n;
	return 0;
}

static struct req *req_new(struct http_xfer *x, struct http_file *f, struct wspan *spans,
			   const size_t *idx, size_t n)
{
	const struct http_conf *c = x->conf;
	struct req *r = calloc(1, sizeof *r);
	char *range = NULL;
	size_t rlen = 0, used = 0;

	if (!r)
		return NULL;
	r->x = x;
	r->f = f;
	r->spans = spans;
	r->last_byte = ih_now();
	r->idx = malloc(n * sizeof *r->idx);
	r->ask = malloc(2 * n * sizeof *r->ask);
	r->e = curl_easy_init();
	rlen = n * 44 + 1;
	range = malloc(rlen);
	if (!r->idx || !r->ask || !r->e || !range)
		goto fail;
	for (size_t k = 0; k < n; k++) {
		const struct span *s = &spans[idx[k]].s;
		uint64_t a = ivset_first_gap(&f->have, s->off), b = s->off + s->len;
		r->idx[r->n] = idx[k];
		r->ask[2 * r->n] = a;
		r->ask[2 * r->n + 1] = b;
		r->n++;
		used += (size_t)snprintf(range + used, rlen - used, "%s%llu-%llu", used ? "," : "",
					 (unsigned long long)a, (unsigned long long)b - 1);
		x->rep->bytes_total += b - a;
	}
	CURL *e = r->e;
	curl_easy_setopt(e, CURLOPT_URL, f->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR,
			 strncasecmp(f->url, "https:", 6) ? "http,https" : "https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, c->max_redirects > 0 ? 1L : 0L);
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)c->max_redirects);
	curl_easy_setopt(e, CURLOPT_RANGE, range);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "imagehealth/" IH_VERSION_STRING);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	if (c->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	if (c->client_cert)
		curl_easy_setopt(e, CURLOPT_SSLCERT, c->client_cert);
	if (c->client_key)
		curl_easy_setopt(e, CURLOPT_SSLKEY, c->client_key);
	if (c->proxy)
		curl_easy_setopt(e, CURLOPT_PROXY, c->proxy);
	if (c->netrc) {
		curl_easy_setopt(e, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
		if (c->netrc_file)
			curl_easy_setopt(e, CURLOPT_NETRC_FILE, c->netrc_file);
	}
	/* If-Range: a replaced file answers 200, never bytes of the new one
	 * in place of the old */
	if (f->validated && (f->etag[0] || f->lastmod[0])) {
		char h[300];
		int strong = f->etag[0] && strncmp(f->etag, "W/", 2);
		snprintf(h, sizeof h, "If-Range: %s", strong ? f->etag : f->lastmod);
		if ((strong || f->lastmod[0]) && add_header(r, h))
			goto fail;
	}
	for (size_t i = 0; i < c->n_headers; i++)
		if (c->headers[i] && add_header(r, c->headers[i]))
			goto fail;
	if (r->hdrs)
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
	free(range); /* curl copies string options */
	return r;
fail:
	free(range);
	req_free(r);
	return NULL;
}

/* ------------------------------------------------------------ a wave */

static double retry_after_seconds(const char *v)
{
	if (!v[0])
		return -1;
	char *end;
	double s = strtod(v, &end);
	if (end != v && !*end)
		return s < 0 ? 0 : s;
	time_t when = curl_getdate(v, NULL);
	if (when < 0)
		return -1;
	double d = difftime(when, time(NULL));
	return d < 0 ? 0 : d;
}

static const char *status_text(long st)
{
	switch (st) {
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 408: return "Request Timeout";
	case 410: return "Gone";
	case 416: return "Range Not Satisfiable";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	}
	return "";
}

/* A request ended with a transient failure: its missing bytes are asked
 * again after a backoff, or given up. */
static void retry_later(struct http_xfer *x, struct req *r, const char *what, double after)
{
	const struct http_conf *c = x->conf;
	char asked_txt[160];
	int tries = 0;
	range_text(r, asked_txt, sizeof asked_txt);
	for (size_t k = 0; k < r->n; k++)
		if (r->spans[r->idx[k]].state == SP_INFLIGHT && r->spans[r->idx[k]].tries > tries)
			tries = r->spans[r->idx[k]].tries;
	tries++;
	double wait = BACKOFF_FIRST * pow(2, tries - 1);
	if (wait > c->retry_wait_max)
		wait = c->retry_wait_max;
	const char *give_up = NULL;
	if (tries > c->retries)
		give_up = "giving up";
	else if (after > c->retry_wait_max)
		give_up = "giving up: the server asks to wait longer than the retry limit";
	else if (after > wait)
		wait = after;
	x->rep->failures++;
	if (give_up) {
		http_note(x, "%s: bytes %s: %s; %s after %d tr%s", r->f->shown, asked_txt, what,
			  give_up, tries, tries == 1 ? "y" : "ies");
	} else {
		x->rep->retries++;
		http_note(x, "%s: bytes %s: %s; retry %d in %.2f s%s", r->f->shown, asked_txt, what,
			  tries, wait, after >= 0 ? " (Retry-After)" : "");
	}
	double now = ih_now();
	for (size_t k = 0; k < r->n; k++) {
		struct wspan *w = &r->spans[r->idx[k]];
		if (w->state != SP_INFLIGHT)
			continue;
		w->tries = tries;
		w->state = give_up ? SP_FAILED : SP_PENDING;
		w->not_before = now + wait;
	}
}

/* A redirect within the same origin (and no credentials in the URL) is
 * remembered: the next requests go straight to where it led, saving a
 * round trip each. */
static void remember_redirect(struct http_xfer *x, struct req *r)
{
	struct http_file *f = r->f;
	char *eff = NULL;
	long nredir = 0;
	if (curl_easy_getinfo(r->e, CURLINFO_REDIRECT_COUNT, &nredir) != CURLE_OK || nredir <= 0 ||
	    curl_easy_getinfo(r->e, CURLINFO_EFFECTIVE_URL, &eff) != CURLE_OK || !eff ||
	    !strcmp(eff, f->url) || !url_same_origin(f->url, eff))
		return;
	char *n = ih_strdup(eff);
	if (!n)
		return;
	char *shown = url_shown(eff);
	http_note(x, "%s: redirected to %s: asking there from now on", f->shown,
		  shown ? shown : "(out of memory)");
	free(shown);
	free(f->url);
	f->url = n;
}

static void finish(struct http_xfer *x, struct req *r, CURLcode rc)
{
	struct http_file *f = r->f;
	char what[400];

	/* what arrived is in f->have: spans it covers are done */
	for (size_t k = 0; k < r->n; k++) {
		struct wspan *w = &r->spans[r->idx[k]];
		if (ivset_covers(&f->have, w->s.off, w->s.off + w->s.len))
			w->state = SP_DONE;
	}
	if (r->abort == ABORT_REQUEUE) {
		for (size_t k = 0; k < r->n; k++)
			if (r->spans[r->idx[k]].state == SP_INFLIGHT)
				r->spans[r->idx[k]].state = SP_PENDING;
		return;
	}
	if (r->abort == ABORT_FATAL || x->fatal) {
		x->rep->failures++;
		for (size_t k = 0; k < r->n; k++)
			if (r->spans[r->idx[k]].state == SP_INFLIGHT)
				r->spans[r->idx[k]].state = SP_FAILED;
		return;
	}
	if (rc == CURLE_OK && !r->judged && judge(r)) {
		finish(x, r, rc);
		return;
	}
	if (rc != CURLE_OK) {
		const char *eb = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
		switch (rc) {
		case CURLE_OPERATION_TIMEDOUT:
			snprintf(what, sizeof what, "stalled (%s)", eb);
			break;
		case CURLE_PARTIAL_FILE:
			snprintf(what, sizeof what, "truncated body (%s)", eb);
			break;
		case CURLE_RECV_ERROR:
		case CURLE_SEND_ERROR:
		case CURLE_GOT_NOTHING:
			snprintf(what, sizeof what, "connection reset (%s)", eb);
			break;
		case CURLE_COULDNT_CONNECT:
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
			snprintf(what, sizeof what, "%s", eb);
			break;
		case CURLE_TOO_MANY_REDIRECTS:
			req_fatal(r, IH_ERR_DOWNLOAD, "%s: too many redirects (more than %d): skipped",
				  f->shown, x->conf->max_redirects);
			finish(x, r, rc);
			return;
		case CURLE_UNSUPPORTED_PROTOCOL:
			req_fatal(r, IH_ERR_DOWNLOAD, "%s: a redirect to a refused scheme (%s; https is "
				  "never followed to http): skipped", f->shown, eb);
			finish(x, r, rc);
			return;
		default:
			req_fatal(r, IH_ERR_DOWNLOAD, "%s: %s: skipped", f->shown, eb);
			finish(x, r, rc);
			return;
		}
		retry_later(x, r, what, -1);
		return;
	}
	long st = r->status;
	if (st == 206 || st == 200) {
		int missing = 0;
		if (r->mode != BODY_DISCARD)
			remember_redirect(x, r);
		for (size_t k = 0; k < r->n; k++)
			missing += r->spans[r->idx[k]].state == SP_INFLIGHT;
		if (!missing)
			return;
		if (r->mode == BODY_SINGLE && r->pos < r->end)
			snprintf(what, sizeof what, "truncated body (ended at byte %llu of a range "
				 "ending at %llu)", (unsigned long long)r->pos,
				 (unsigned long long)r->end);
		else if (r->mode == BODY_MULTI && r->mp.state != MP_END)
			snprintf(what, sizeof what, "truncated multipart body");
		else if (r->mode == BODY_WHOLE)
			snprintf(what, sizeof what, "truncated body (%llu of %llu bytes)",
				 (unsigned long long)r->pos, (unsigned long long)r->end);
		else
			snprintf(what, sizeof what, "the server left out ranges it was asked for");
		retry_later(x, r, what, -1);
		return;
	}
	if (st == 408 || st == 429 || (st >= 500 && st <= 599)) {
		snprintf(what, sizeof what, "HTTP %ld %s", st, status_text(st));
		retry_later(x, r, what, retry_after_seconds(r->retry_after));
		return;
	}
	if (st == 401 || st == 403)
		req_fatal(r, IH_ERR_DOWNLOAD, "%s: HTTP %ld %s (credentials: a .netrc, a header, or "
			  "user:password in the URL): skipped", f->shown, st, status_text(st));
	else if (st >= 300 && st < 400)
		req_fatal(r, IH_ERR_DOWNLOAD, "%s: HTTP %ld (a redirect not followed): skipped",
			  f->shown, st);
	else
		req_fatal(r, IH_ERR_DOWNLOAD, "%s: HTTP %ld %s: skipped", f->shown, st,
			  status_text(st));
	finish(x, r, rc);
}

static void progress(struct http_xfer *x, const struct http_file *f, double *last)
{
	double now = ih_now();
	if (!x->job || now - *last < 1.0)
		return;
	*last = now;
	ih_job_tick(x->job);
	ih_job_post(x->job, IH_EVENT_MESSAGE, "%s: %llu of %llu bytes fetched", f->shown,
		    (unsigned long long)x->rep->bytes_fetched, (unsigned long long)x->rep->bytes_total);
}

int http_fetch(struct http_xfer *x, struct http_file *files, size_t nfiles,
	       const struct span *want, size_t n)
{
	struct span *v = malloc((n + 1) * sizeof *v);
	struct wspan *ws = NULL;
	struct req **live = NULL;
	size_t *pick = NULL;
	size_t nlive = 0, nw = 0;
	double last = ih_now();
	int rc = 0;

	if (x->fatal)
		return -1;
	if (!v)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct span *s = &want[i];
		if (s->file >= nfiles || !s->len)
			continue;
		const struct http_file *f = &files[s->file];
		if (ivset_covers(&f->have, s->off, s->off + s->len))
			continue;
		v[nw++] = *s;
	}
	nw = spans_coalesce(v, nw, COALESCE_GAP);
	ws = calloc(nw + 1, sizeof *ws);
	live = calloc((size_t)x->conf->parallel + 1, sizeof *live);
	pick = calloc(RANGES_PER_REQUEST + 1, sizeof *pick);
	if (!ws || !live || !pick) {
		free(v);
		free(ws);
		free(live);
		free(pick);
		return -1;
	}
	for (size_t i = 0; i < nw; i++)
		ws[i].s = v[i];
	free(v);
	if (nw)
		x->rep->round_trips++;

	for (;;) {
		if (x->job && ih_job_cancelled(x->job)) {
			x->cancelled = 1;
			rc = -2;
			break;
		}
		if (x->fatal) {
			rc = -1;
			break;
		}
		/* start what may start */
		double now = ih_now(), next = 0;
		size_t npend = 0;
		for (size_t i = 0; i < nw; i++)
			if (ws[i].state == SP_PENDING) {
				if (ws[i].not_before <= now)
					npend++;
				else if (!next || ws[i].not_before < next)
					next = ws[i].not_before;
			}
		size_t slots = (size_t)x->conf->parallel - nlive;
		size_t per = 1;
		if (x->multi_range != 0 && slots) {
			per = (npend + slots - 1) / slots;
			per = per < 1 ? 1 : per > RANGES_PER_REQUEST ? RANGES_PER_REQUEST : per;
		}
		for (size_t i = 0; i < nw && nlive < (size_t)x->conf->parallel; i++) {
			if (ws[i].state != SP_PENDING || ws[i].not_before > now)
				continue;
			size_t np = 0;
			for (size_t j = i; j < nw && np < per; j++)
				if (ws[j].state == SP_PENDING && ws[j].not_before <= now &&
				    ws[j].s.file == ws[i].s.file)
					pick[np++] = j;
			struct req *r = req_new(x, &files[ws[i].s.file], ws, pick, np);
			if (!r || curl_multi_add_handle(x->multi, r->e) != CURLM_OK) {
				req_free(r);
				rc = -1;
				snprintf(x->fatal_msg, sizeof x->fatal_msg, "out of memory");
				x->fatal = 1;
				x->fatal_code = IH_ERR_NOMEM;
				break;
			}
			for (size_t k = 0; k < np; k++)
				ws[pick[k]].state = SP_INFLIGHT;
			x->rep->requests++;
			live[nlive++] = r;
		}
		if (x->fatal) {
			rc = -1;
			break;
		}
		if (!nlive) {
			if (!next)
				break; /* nothing pending: the wave is over */
			double d = next - ih_now();
			if (d > 0) {
				/* waiting for a retry: cancel-aware */
				struct timespec ts = {0, 20 * 1000000L};
				if (d < 0.02)
					ts.tv_nsec = (long)(d * 1e9);
				nanosleep(&ts, NULL);
			}
			continue;
		}
		int running = 0;
		curl_multi_perform(x->multi, &running);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(x->multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			struct req *r = NULL;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
			CURLcode res = m->data.result;
			curl_multi_remove_handle(x->multi, m->easy_handle);
			finish(x, r, res);
			for (size_t k = 0; k < nlive; k++)
				if (live[k] == r) {
					live[k] = live[--nlive];
					break;
				}
			req_free(r);
		}
		/* a stall: no byte for stall_seconds */
		double tnow = ih_now();
		for (size_t k = 0; k < nlive && !x->fatal;) {
			struct req *r = live[k];
			if (tnow - r->last_byte <= x->conf->stall_seconds) {
				k++;
				continue;
			}
			snprintf(r->errbuf, sizeof r->errbuf, "no byte for %.1f s",
				 x->conf->stall_seconds);
			curl_multi_remove_handle(x->multi, r->e);
			finish(x, r, CURLE_OPERATION_TIMEDOUT);
			live[k] = live[--nlive];
			req_free(r);
		}
		progress(x, &files[0], &last);
		if (x->fatal)
			continue;
		int wait_ms = 50;
		if (next) {
			double d = (next - ih_now()) * 1000;
			if (d < wait_ms)
				wait_ms = d < 1 ? 1 : (int)d;
		}
		curl_multi_poll(x->multi, NULL, 0, wait_ms, NULL);
	}
	for (size_t k = 0; k < nlive; k++) {
		curl_multi_remove_handle(x->multi, live[k]->e);
		req_free(live[k]);
	}
	if (x->job && nw)
		ih_job_post(x->job, IH_EVENT_MESSAGE,
			    "%s: round trip %llu: %llu of %llu bytes fetched so far, %llu requests",
			    files[0].shown, (unsigned long long)x->rep->round_trips,
			    (unsigned long long)x->rep->bytes_fetched,
			    (unsigned long long)x->rep->bytes_total, (unsigned long long)x->rep->requests);
	free(ws);
	free(live);
	free(pick);
	return rc;
}
