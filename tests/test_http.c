/* test_http.c - remote (HTTP) sources against tests/tools/faultsrv, a
 * server that misbehaves on purpose: each misbehaviour has its outcome
 * asserted (repaired from it, or from the next source, or left unrepaired
 * with its code), the image is never left worse, and no credential shows
 * in a report.  Also the pure helpers (range sets, coalescing, URLs) and
 * the default repair server (environment, file, limit_access). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "imagehealth.h"
#include "source/http_parse.h"
#include "source/http_ranges.h"
#include "source/source.h"
#include "testutil.h"
#include "util.h"
#include "wimtest.h"

static char wd[256];
static pid_t srv = -1;
static int port;

/* ------------------------------------------------------------ pure helpers */

/* Feeds body to a parser in pieces of step bytes; collects the parts'
 * ranges and data into got (data at its offsets).  The last event kind. */
static enum mp_kind mp_run(const char *delim, const char *body, size_t step, char *got,
			   size_t glen, uint64_t *parts, size_t *nparts)
{
	struct mp_parser m;
	struct mp_out o = {0};
	size_t n = strlen(body), off = 0;
	*nparts = 0;
	if (mp_init(&m, delim))
		return MP_ERROR;
	while (off < n) {
		size_t piece = n - off < step ? n - off : step, used = 0;
		while (used < piece) {
			used += mp_next(&m, body + off + used, piece - used, &o);
			if (o.kind == MP_ERROR || o.kind == MP_DONE)
				return o.kind;
			if (o.kind == MP_PART && *nparts < 8) {
				parts[2 * *nparts] = o.a;
				parts[2 * (*nparts)++ + 1] = o.b;
			}
			if (o.kind == MP_DATA_PIECE && o.at + o.len <= glen)
				memcpy(got + o.at, o.data, o.len);
		}
		off += piece;
	}
	return o.kind;
}

static void test_parsers(void)
{
	uint64_t a, b, t, parts[16];
	size_t np;
	char d[128], got[32];
	CHECK(http_parse_crange("bytes 0-9/100", &a, &b, &t) == 0 && a == 0 && b == 10 && t == 100);
	CHECK(http_parse_crange("bytes 5-5/*", &a, &b, &t) == 0 && b == 6 && t == UINT64_MAX);
	CHECK(http_parse_crange("bytes 9-5/100", &a, &b, &t) == -1);            /* B < A */
	CHECK(http_parse_crange("bytes 0-18446744073709551615/1", &a, &b, &t) == -1);
	CHECK(http_parse_crange("bytes 0-99999999999999999999/1", &a, &b, &t) == -1);
	CHECK(http_parse_crange("bytes 0-9/100x", &a, &b, &t) == -1);
	CHECK(http_parse_crange("bytes -1-9/100", &a, &b, &t) == -1);
	CHECK(http_parse_crange("items 0-9/100", &a, &b, &t) == -1);
	CHECK(http_multipart_delimiter("multipart/byteranges; boundary=00000001", d, sizeof d) == 0 &&
	      !strcmp(d, "--00000001"));
	CHECK(http_multipart_delimiter("multipart/byteranges; boundary=\"a b\"; x=1", d, sizeof d) == 0 &&
	      !strcmp(d, "--a b"));
	CHECK(http_multipart_delimiter("multipart/byteranges", d, sizeof d) == -1);
	CHECK(http_multipart_delimiter("multipart/byteranges; boundary=", d, sizeof d) == -1);
	CHECK(http_multipart_delimiter("multipart/byteranges; boundary=abcdef", d, 8) == -1);

	static const char body[] =
		"\r\n--XY\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 2-5/20\r\n\r\n"
		"ABCD\r\n--XY\r\ncontent-range:  bytes 10-11/20 \r\n\r\nEF\r\n--XY--\r\nepilogue";
	for (size_t step = 1; step <= sizeof body; step += (step < 8 ? 1 : 17)) {
		memset(got, '.', sizeof got);
		CHECK(mp_run("--XY", body, step, got, sizeof got, parts, &np) == MP_DONE);
		CHECK(np == 2 && parts[0] == 2 && parts[1] == 6 && parts[2] == 10 && parts[3] == 12);
		CHECK(!memcmp(got, "..ABCD....EF..", 14));
	}
	/* a part without a Content-Range, a stray line, a line too long */
	CHECK(mp_run("--XY", "--XY\r\n\r\nABCD", 5, got, sizeof got, parts, &np) == MP_ERROR);
	CHECK(mp_run("--XY", "junk\r\n--XY\r\n", 3, got, sizeof got, parts, &np) == MP_ERROR);
	static char longline[3000];
	memset(longline, 'x', sizeof longline - 1);
	memcpy(longline, "--XY\r\n", 6);
	CHECK(mp_run("--XY", longline, 4096, got, sizeof got, parts, &np) == MP_ERROR);
	/* a body cut inside a part: not done */
	CHECK(mp_run("--XY", "--XY\r\nContent-Range: bytes 0-9/10\r\n\r\nAB", 4, got, sizeof got,
		     parts, &np) == MP_DATA_PIECE);
}

static void test_helpers(void)
{
	struct ivset s = {0};
	CHECK(ivset_add(&s, 10, 20) == 0);
	CHECK(ivset_add(&s, 30, 40) == 0);
	CHECK(ivset_covers(&s, 10, 20));
	CHECK(!ivset_covers(&s, 10, 21));
	CHECK(!ivset_covers(&s, 15, 35));
	CHECK_EQ_INT(ivset_first_gap(&s, 12), 20);
	CHECK_EQ_INT(ivset_first_gap(&s, 25), 25);
	CHECK(ivset_add(&s, 20, 30) == 0); /* joins both */
	CHECK_EQ_INT(s.n, 1);
	CHECK(ivset_covers(&s, 10, 40));
	CHECK(ivset_add(&s, 0, 5) == 0);
	CHECK(ivset_add(&s, 50, 60) == 0);
	CHECK(ivset_add(&s, 3, 55) == 0);
	CHECK_EQ_INT(s.n, 1);
	CHECK(ivset_covers(&s, 0, 60));
	ivset_free(&s);

	struct span v[] = {{0, 100, 10}, {1, 0, 5}, {0, 0, 50}, {0, 60, 10}, {0, 5000, 10}, {0, 40, 5}};
	size_t n = spans_coalesce(v, IH_ARRAY_LEN(v), 20);
	CHECK_EQ_INT(n, 4);
	CHECK(v[0].file == 0 && v[0].off == 0 && v[0].len == 70);   /* overlapping, 10 apart */
	CHECK(v[1].file == 0 && v[1].off == 100 && v[1].len == 10); /* 30 apart: not merged */
	CHECK(v[2].file == 0 && v[2].off == 5000 && v[2].len == 10);
	CHECK(v[3].file == 1 && v[3].off == 0 && v[3].len == 5);

	char *u = url_shown("https://user:pa@ss@host:8443/d/x.wim?X-Amz-Signature=abc#f");
	CHECK_STR(u, "https://host:8443/d/x.wim?...");
	free(u);
	u = url_shown("http://host/x.wim");
	CHECK_STR(u, "http://host/x.wim");
	free(u);
	u = url_part("https://h/d.v1/install.swm?sig=1", 3);
	CHECK_STR(u, "https://h/d.v1/install3.swm?sig=1");
	free(u);
	u = url_part("http://h:80/dir.x/noext", 2);
	CHECK_STR(u, "http://h:80/dir.x/noext2");
	free(u);
	CHECK(url_is_http("HTTPS://x/y") && url_is_http("http://x") && !url_is_http("/srv/http://x"));
	CHECK(url_same_origin("https://H:1/a?x", "https://h:1/b/c"));
	CHECK(!url_same_origin("https://h:1/a", "http://h:1/a"));
	CHECK(!url_same_origin("https://h:1/a", "https://h:2/a"));
	CHECK(!url_same_origin("https://u:p@h/a", "https://h/b"));
	CHECK(!url_same_origin("https://h/a", "https://h.evil/b"));

	struct source_spec sp;
	CHECK(source_spec_parse("https://h:8443/d/x.wim:3", &sp) == 0);
	CHECK(sp.index == 3 && !strcmp(sp.path, "https://h:8443/d/x.wim"));
	source_spec_free(&sp);
	CHECK(source_spec_parse("https://h:8443", &sp) == 0); /* a port is no index */
	CHECK(sp.index == 0 && !strcmp(sp.path, "https://h:8443"));
	source_spec_free(&sp);
	CHECK(source_spec_parse("wim:http://h/x.esd", &sp) == 0);
	CHECK(sp.index == 0 && sp.wim_prefix && !strcmp(sp.path, "http://h/x.esd"));
	source_spec_free(&sp);
}

/* ------------------------------------------------------------ the server */

static char faultsrv_path[600];

static int find_faultsrv(void)
{
	char exe[512];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return -1;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	*slash = '\0';
	snprintf(faultsrv_path, sizeof faultsrv_path, "%s/faultsrv", exe);
	if (access(faultsrv_path, X_OK) == 0)
		return 0;
	snprintf(faultsrv_path, sizeof faultsrv_path, "%s/../build/faultsrv", exe);
	return access(faultsrv_path, X_OK);
}

static int start_server(void)
{
	char root[300], pf[300];
	snprintf(root, sizeof root, "%s/www", wd);
	snprintf(pf, sizeof pf, "%s/port", wd);
	unlink(pf);
	srv = fork();
	if (srv == 0) {
		char logp[300];
		snprintf(logp, sizeof logp, "%s/srv.log", wd);
		execl(faultsrv_path, "faultsrv", "--root", root, "--port-file", pf, "--lifetime", "300",
		      "--log", logp, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		FILE *f = fopen(pf, "r");
		if (f) {
			int ok = fscanf(f, "%d", &port) == 1;
			fclose(f);
			if (ok)
				return 0;
		}
		usleep(10000);
	}
	return -1;
}

static void stop_server(void)
{
	if (srv > 0) {
		kill(srv, SIGTERM);
		waitpid(srv, NULL, 0);
	}
	srv = -1;
}

/* ------------------------------------------------------------ restores */

static char url_buf[8][700];
static int url_serial;

/* The URL of file in a mode; the query makes each use a new client for
 * the server's counters ("the first data request"). */
static const char *url(int slot, const char *mode, const char *file)
{
	snprintf(url_buf[slot], sizeof url_buf[slot], "http://127.0.0.1:%d/%s/%s?u=%d", port, mode,
		 file, ++url_serial);
	return url_buf[slot];
}

/* A fresh damaged copy of www/NAME as bad-NAME (a/GPL-3 and c/bin.dat
 * damaged), and its copy as .orig. */
static void fresh_bad(const char *name)
{
	char w[600], f[600];
	tsh("cp %s/www/%s %s/bad-%s", wd, name, wd, name);
	snprintf(w, sizeof w, "%s/bad-%s", wd, name);
	snprintf(f, sizeof f, "%s/tree/a/GPL-3", wd);
	CHECK(tdamage(w, f) == 0);
	snprintf(f, sizeof f, "%s/tree/c/bin.dat", wd);
	CHECK(tdamage(w, f) == 0);
	tsh("cp %s/bad-%s %s/bad-%s.orig", wd, name, wd, name);
}

static ih_restore_report *run(const char *name, const char **sources, size_t n,
			      ih_restore_options ro, int *rc)
{
	char p[600], sd[300];
	ih_session *s;
	ih_error err = {0};
	ih_restore_report *r = NULL;
	snprintf(p, sizeof p, "%s/bad-%s", wd, name);
	snprintf(sd, sizeof sd, "%s/state", wd);
	*rc = ih_session_open(p, &(ih_open_options){.state_dir = sd}, &s, &err);
	if (*rc)
		return NULL;
	ro.sources = sources;
	ro.n_sources = n;
	ro.no_policy = 1;
	if (!ro.default_sources_file)
		ro.default_sources_file = "/nonexistent"; /* no default server unless asked */
	*rc = ih_restore(s, &ro, &r, &err);
	if (*rc)
		fprintf(stderr, "restore: %s\n", err.message);
	ih_session_close(s);
	return r;
}

static int verified(const char *name)
{
	return tsh("wimlib-imagex verify %s/bad-%s >/dev/null 2>&1", wd, name) == 0;
}

static int unchanged(const char *name)
{
	return tsh("cmp -s %s/bad-%s %s/bad-%s.orig", wd, name, wd, name) == 0;
}

static int notes_have(const ih_source_report *s, const char *what)
{
	for (size_t i = 0; i < s->n_notes; i++)
		if (strstr(s->notes[i], what))
			return 1;
	return 0;
}

static void dump(const ih_restore_report *r)
{
	for (size_t i = 0; r && i < r->n_sources; i++) {
		const ih_source_report *s = &r->sources[i];
		fprintf(stderr, "  source %zu %s: status %d err %s req %llu rt %llu\n", i, s->spec,
			s->status, s->error ? s->error : "-", (unsigned long long)s->requests,
			(unsigned long long)s->round_trips);
		for (size_t k = 0; k < s->n_notes; k++)
			fprintf(stderr, "    note: %s\n", s->notes[k]);
	}
}

/* Every unrepaired entry has this code. */
static int all_codes(const ih_restore_report *r, ih_errcode code)
{
	for (size_t i = 0; i < r->n_unrepaired; i++)
		if (r->unrepaired[i].code != code)
			return 0;
	return r->n_unrepaired > 0;
}

/* A server behaviour the source survives: repaired from it. */
static void expect_repaired(const char *mode, ih_restore_options ro, const char *note)
{
	const char *src[1];
	int rc;
	double t0 = ih_now();
	fresh_bad("lzx.wim");
	src[0] = url(0, mode, "lzx.wim");
	ih_restore_report *r = run("lzx.wim", src, 1, ro, &rc);
	CHECK_MSG(rc == IH_OK && r && r->state == IH_HEALTHY && r->n_repaired == 2, mode);
	CHECK_MSG(verified("lzx.wim"), mode);
	if (r && note)
		CHECK_MSG(notes_have(&r->sources[0], note), note);
	if (!r || r->state != IH_HEALTHY || (note && !notes_have(&r->sources[0], note)))
		dump(r);
	ih_restore_report_free(r);
	if (getenv("IH_HTTP_ONLY"))
		fprintf(stderr, "%s: %.2f s\n", mode, ih_now() - t0);
}

/* A server behaviour that makes the source fail: with a good second
 * source the blobs come from it; alone, they are left (code), the image
 * as it was. */
static void expect_skipped_(const char *mode, ih_restore_options ro, const char *says, int next)
{
	const char *src[2];
	int rc;
	double t0 = ih_now();
	fresh_bad("lzx.wim");
	src[0] = url(0, mode, "lzx.wim");
	ih_restore_report *r = run("lzx.wim", src, 1, ro, &rc);
	CHECK_MSG(rc == IH_OK && r && r->state == IH_REPAIRABLE && r->n_repaired == 0, mode);
	CHECK_MSG(r && all_codes(r, IH_ERR_DOWNLOAD), mode);
	CHECK_MSG(unchanged("lzx.wim"), mode);
	int said = r && ((r->sources[0].error && strstr(r->sources[0].error, says)) ||
			 notes_have(&r->sources[0], says));
	CHECK_MSG(said, says);
	if (!said || !r || r->state != IH_REPAIRABLE)
		dump(r);
	ih_restore_report_free(r);
	if (!next)
		return;
	/* the next source supplies */
	src[1] = url(1, "ok", "lzx.wim");
	r = run("lzx.wim", src, 2, ro, &rc);
	CHECK_MSG(rc == IH_OK && r && r->state == IH_HEALTHY, mode);
	CHECK_MSG(r && r->n_repaired == 2 && r->repaired[0].source == 1 && r->repaired[1].source == 1,
		  mode);
	CHECK_MSG(verified("lzx.wim"), mode);
	ih_restore_report_free(r);
	if (getenv("IH_HTTP_ONLY"))
		fprintf(stderr, "%s: %.2f s\n", mode, ih_now() - t0);
}

#define expect_skipped(mode, ro, says) expect_skipped_(mode, ro, says, 1)
#define expect_skipped_alone(mode, ro, says) expect_skipped_(mode, ro, says, 0)

static void test_server_behaviours(void)
{
	ih_restore_options quick = {.http_retries = 1, .http_retry_wait_max = 0.4,
				    .http_stall_timeout = 0.5};
	int rc;

	/* a correct server: header, tables, one wave */
	{
		const char *src[] = {url(0, "ok", "lzx.wim")};
		fresh_bad("lzx.wim");
		ih_restore_report *r = run("lzx.wim", src, 1, quick, &rc);
		CHECK(rc == IH_OK && r && r->state == IH_HEALTHY && r->n_repaired == 2);
		CHECK(verified("lzx.wim"));
		if (r) {
			const ih_source_report *s = &r->sources[0];
			struct stat st;
			char p[600];
			snprintf(p, sizeof p, "%s/www/lzx.wim", wd);
			stat(p, &st);
			CHECK(s->kind == IH_SOURCE_HTTP && s->status == IH_SOURCE_USABLE && s->usable);
			CHECK_EQ_INT(s->round_trips, 3);
			CHECK(s->requests >= 3 && s->requests <= 4);
			/* the minimum: header, blob table, XML, the two damaged resources */
			struct wim_blob_entry e1, e2;
			char t1[600], t2[600];
			uint8_t hb[WIM_HEADER_SIZE];
			struct wim_header h;
			char why[100];
			FILE *hf = fopen(p, "rb");
			CHECK(hf && fread(hb, 1, sizeof hb, hf) == sizeof hb);
			if (hf)
				fclose(hf);
			CHECK(wimfmt_parse_header(hb, sizeof hb, &h, why, sizeof why) == 0);
			snprintf(t1, sizeof t1, "%s/tree/a/GPL-3", wd);
			snprintf(t2, sizeof t2, "%s/tree/c/bin.dat", wd);
			CHECK(twim_entry(p, t1, &e1) == 0 && twim_entry(p, t2, &e2) == 0);
			uint64_t min = WIM_HEADER_SIZE + h.blob_table.stored_size + h.xml.stored_size +
				       e1.res.stored_size + e2.res.stored_size;
			CHECK(s->bytes_fetched >= min);
			CHECK_MSG(s->bytes_fetched <= min + min / 20 + 4096 * s->requests,
				  "at most 1.05x the minimum plus 4 KiB per request");
			CHECK(s->bytes_fetched < (uint64_t)st.st_size);
			CHECK_EQ_INT(s->retries, 0);
			CHECK_EQ_INT(s->failures, 0);
			CHECK_EQ_INT(s->blobs_used, 2);
		}
		ih_restore_report_free(r);
	}
	/* 200 instead of 206: skipped, unless the whole file is under the limit */
	expect_skipped("norange", quick, "ignores Range");
	{
		ih_restore_options o = quick;
		o.http_whole_file_max = 64u << 20;
		expect_repaired("norange", o, "taking the whole file");
	}
	/* multi-range refused (object stores), or answered with one range:
	 * one request in flight makes the wave's ranges one multi-range
	 * request */
	{
		ih_restore_options o = quick;
		o.http_parallel = 1;
		expect_repaired("ok", o, NULL);
		expect_repaired("nomulti", o, "multi-range request with HTTP 200");
		expect_repaired("onerange", o, "with one range");
	}
	/* a wrong Content-Range */
	expect_skipped("badrange", quick, "wrong Content-Range");
	/* truncated bodies: retried for the missing bytes, or given up */
	expect_repaired("truncate1", quick, "truncated body");
	expect_skipped_alone("truncate", quick, "giving up");
	/* a reset connection */
	expect_skipped_alone("reset", quick, "connection reset");
	/* a stall: no byte for a second */
	{
		ih_restore_options o = quick;
		o.http_retries = -1;
		double t0 = ih_now();
		expect_skipped("stall", o, "stalled");
		CHECK_MSG(ih_now() - t0 < 20, "a stall is bounded");
	}
	/* statuses */
	expect_skipped("s404", quick, "HTTP 404");
	expect_skipped_alone("s403", quick, "HTTP 403");
	expect_skipped_alone("s401", quick, "HTTP 401");
	{
		ih_restore_options o = quick;
		o.http_retry_wait_max = 2;
		expect_repaired("s503", o, "(Retry-After)");
	}
	expect_skipped_alone("s429", quick, "longer than the retry limit");
	expect_skipped("s500", quick, "giving up after 2 tries");
	/* redirects: one within the origin is followed once, then remembered */
	expect_repaired("redirect", quick, "asking there from now on");
	{
		char logp[300], line[4096];
		int n302 = 0, nok = 0;
		snprintf(logp, sizeof logp, "%s/srv.log", wd);
		FILE *lf = fopen(logp, "r");
		while (lf && fgets(line, sizeof line, lf)) {
			if (!strncmp(line, "redirect ", 9)) {
				n302++;
				nok = 0; /* the ok requests after it */
			}
			nok += !strncmp(line, "ok ", 3);
		}
		if (lf)
			fclose(lf);
		CHECK_MSG(n302 == 1, "one redirect followed");
		CHECK_MSG(nok >= 3, "then every request went straight to the target");
	}
	expect_skipped_alone("redirloop", quick, "too many redirects");
	/* the file replaced after its tables were read: never mixed */
	expect_skipped("replaced", quick, "changed during the repair");
	expect_skipped("replacedx", quick, "changed during the repair");
}

/* Retries and failures are counted; a 503 honours Retry-After (1 s). */
static void test_counters(void)
{
	const char *src[] = {url(0, "s503", "lzx.wim")};
	int rc;
	fresh_bad("lzx.wim");
	double t0 = ih_now();
	ih_restore_report *r = run("lzx.wim", src, 1, (ih_restore_options){.http_retry_wait_max = 5}, &rc);
	double took = ih_now() - t0;
	CHECK(r && r->state == IH_HEALTHY);
	if (r) {
		CHECK(r->sources[0].retries >= 1);
		CHECK_EQ_INT(r->sources[0].failures, r->sources[0].retries);
	}
	CHECK_MSG(took >= 1.0, "waited for Retry-After");
	ih_restore_report_free(r);
}

/* Every compression, a split set and a solid ESD from the fault server's
 * correct mode (nginx does the same in spec/http_spec.lua). */
static void test_kinds(void)
{
	static const char *kinds[] = {"none.wim", "xpress.wim", "lzms.wim", "solid.esd"};
	for (size_t k = 0; k < IH_ARRAY_LEN(kinds); k++) {
		const char *src[] = {url(0, "ok", kinds[k])};
		int rc;
		fresh_bad(kinds[k]);
		ih_restore_report *r = run(kinds[k], src, 1, (ih_restore_options){0}, &rc);
		CHECK_MSG(r && r->state == IH_HEALTHY && r->n_repaired >= 2, kinds[k]);
		CHECK_MSG(verified(kinds[k]), kinds[k]);
		if (!r || r->state != IH_HEALTHY)
			dump(r);
		ih_restore_report_free(r);
	}
	/* a split set: the other parts next to the first URL */
	{
		const char *src[] = {url(0, "ok", "split.swm")};
		int rc;
		fresh_bad("lzx.wim");
		ih_restore_report *r = run("lzx.wim", src, 1, (ih_restore_options){0}, &rc);
		CHECK(r && r->state == IH_HEALTHY && r->n_repaired == 2);
		CHECK(verified("lzx.wim"));
		ih_restore_report_free(r);
	}
	/* an image index narrows the source to that image's blobs */
	{
		char u[800];
		int rc;
		snprintf(u, sizeof u, "http://127.0.0.1:%d/ok/lzx.wim:1", port);
		const char *src[] = {u};
		fresh_bad("lzx.wim");
		ih_restore_report *r = run("lzx.wim", src, 1, (ih_restore_options){0}, &rc);
		CHECK(r && r->state == IH_HEALTHY && r->sources[0].index == 1);
		ih_restore_report_free(r);
		snprintf(u, sizeof u, "http://127.0.0.1:%d/ok/lzx.wim:7", port);
		fresh_bad("lzx.wim");
		r = run("lzx.wim", src, 1, (ih_restore_options){0}, &rc);
		CHECK(r && r->state == IH_REPAIRABLE && r->sources[0].error_code == IH_ERR_BAD_INDEX);
		ih_restore_report_free(r);
	}
}

/* Credentials and tokens never show. */
static void test_no_credentials(void)
{
	char u[700];
	int rc;
	snprintf(u, sizeof u, "http://alice:s3cr3t@127.0.0.1:%d/s404/lzx.wim?token=t0k3n", port);
	const char *src[] = {u};
	const char *hdr[] = {"Authorization: Bearer b34r3r"};
	fresh_bad("lzx.wim");
	ih_restore_report *r = run("lzx.wim", src, 1,
				   (ih_restore_options){.http_headers = hdr, .n_http_headers = 1}, &rc);
	CHECK(r && r->n_sources == 1);
	if (r) {
		const ih_source_report *s = &r->sources[0];
		char all[8192];
		snprintf(all, sizeof all, "%s %s %s", s->spec, s->path ? s->path : "",
			 s->error ? s->error : "");
		for (size_t i = 0; i < s->n_notes; i++)
			strncat(all, s->notes[i], sizeof all - strlen(all) - 1);
		for (size_t i = 0; i < r->n_unrepaired; i++)
			strncat(all, r->unrepaired[i].detail, sizeof all - strlen(all) - 1);
		CHECK(!strstr(all, "s3cr3t") && !strstr(all, "alice") && !strstr(all, "t0k3n") &&
		      !strstr(all, "b34r3r"));
		CHECK(strstr(all, "HTTP 404") != NULL);
	}
	ih_restore_report_free(r);
}

/* Credentials: in the URL, from a .netrc, as a header; through a proxy. */
static void test_credentials_and_proxy(void)
{
	char u[800], netrc[600];
	int rc;
	snprintf(u, sizeof u, "http://ih:s3cr3t@127.0.0.1:%d/basic/lzx.wim", port);
	const char *src[] = {u};
	fresh_bad("lzx.wim");
	ih_restore_report *r = run("lzx.wim", src, 1, (ih_restore_options){0}, &rc);
	CHECK(r && r->state == IH_HEALTHY);
	CHECK(r && !strstr(r->sources[0].spec, "s3cr3t") && !strstr(r->sources[0].path, "s3cr3t"));
	ih_restore_report_free(r);
	/* without credentials: 401, skipped */
	snprintf(u, sizeof u, "http://127.0.0.1:%d/basic/lzx.wim", port);
	fresh_bad("lzx.wim");
	r = run("lzx.wim", src, 1, (ih_restore_options){0}, &rc);
	CHECK(r && r->state == IH_REPAIRABLE && r->sources[0].error &&
	      strstr(r->sources[0].error, "HTTP 401"));
	ih_restore_report_free(r);
	/* from a .netrc */
	snprintf(netrc, sizeof netrc, "%s/netrc", wd);
	FILE *f = fopen(netrc, "w");
	fprintf(f, "machine 127.0.0.1 login ih password s3cr3t\n");
	fclose(f);
	fresh_bad("lzx.wim");
	r = run("lzx.wim", src, 1, (ih_restore_options){.http_netrc_file = netrc}, &rc);
	CHECK(r && r->state == IH_HEALTHY);
	ih_restore_report_free(r);
	/* a bearer token as an extra header */
	snprintf(u, sizeof u, "http://127.0.0.1:%d/bearer/lzx.wim", port);
	const char *hdr[] = {"Authorization: Bearer b34r3r"};
	fresh_bad("lzx.wim");
	r = run("lzx.wim", src, 1, (ih_restore_options){.http_headers = hdr, .n_http_headers = 1}, &rc);
	CHECK(r && r->state == IH_HEALTHY);
	ih_restore_report_free(r);
	/* a proxy: the host in the URL does not exist, the proxy serves it */
	char proxy[100];
	snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", port);
	snprintf(u, sizeof u, "http://imagehealth.invalid/ok/lzx.wim");
	fresh_bad("lzx.wim");
	r = run("lzx.wim", src, 1, (ih_restore_options){.http_proxy = proxy}, &rc);
	CHECK(r && r->state == IH_HEALTHY);
	ih_restore_report_free(r);
	/* no proxy: the host does not resolve */
	fresh_bad("lzx.wim");
	r = run("lzx.wim", src, 1, (ih_restore_options){.http_retries = -1}, &rc);
	CHECK(r && r->state == IH_REPAIRABLE && all_codes(r, IH_ERR_DOWNLOAD));
	ih_restore_report_free(r);
}

/* The default repair server: after the caller's sources, only when needed,
 * never with limit_access. */
static void test_default_server(void)
{
	char list[600];
	int rc;
	snprintf(list, sizeof list, "%s/repair-sources", wd);
	FILE *f = fopen(list, "w");
	fprintf(f, "# the lab mirror\n\n  %s  \n", url(0, "ok", "lzx.wim"));
	fclose(f);
	/* found nowhere else: the default server repairs */
	fresh_bad("lzx.wim");
	ih_restore_report *r = run("lzx.wim", NULL, 0, (ih_restore_options){.default_sources_file = list}, &rc);
	CHECK(r && r->state == IH_HEALTHY && r->n_sources == 1 && r->n_default_sources == 1);
	CHECK(r && r->sources[0].origin == IH_ORIGIN_DEFAULT && r->default_barred == 0);
	ih_restore_report_free(r);
	/* limit_access: not asked; what is left says policy (0x800F0907) */
	fresh_bad("lzx.wim");
	r = run("lzx.wim", NULL, 0, (ih_restore_options){.default_sources_file = list, .limit_access = 1}, &rc);
	CHECK(r && r->state == IH_REPAIRABLE && r->n_sources == 0 && r->default_barred == 1);
	CHECK(r && all_codes(r, IH_ERR_POLICY) && ih_errcode_hresult(IH_ERR_POLICY) == 0x800F0907);
	CHECK(unchanged("lzx.wim"));
	ih_restore_report_free(r);
	/* limit_access with no default configured: simply missing */
	r = run("lzx.wim", NULL, 0, (ih_restore_options){.limit_access = 1}, &rc);
	CHECK(r && all_codes(r, IH_ERR_SOURCE_MISSING));
	ih_restore_report_free(r);
	/* the environment; a local source that has everything: the server is
	 * never contacted */
	char good[600];
	snprintf(good, sizeof good, "%s/www/lzx.wim", wd);
	const char *src[] = {good};
	setenv("IMAGEHEALTH_REPAIR_SOURCES", url(1, "s404", "lzx.wim"), 1);
	ih_restore_options o = {0};
	o.default_sources_file = NULL;
	char p[600], sd[300];
	ih_session *s;
	ih_error err;
	fresh_bad("lzx.wim");
	snprintf(p, sizeof p, "%s/bad-lzx.wim", wd);
	snprintf(sd, sizeof sd, "%s/state", wd);
	r = NULL;
	if (ih_session_open(p, &(ih_open_options){.state_dir = sd}, &s, &err) == IH_OK) {
		o.sources = src;
		o.n_sources = 1;
		o.no_policy = 1;
		ih_restore(s, &o, &r, &err);
		ih_session_close(s);
	}
	CHECK(r && r->state == IH_HEALTHY && r->n_sources == 2);
	CHECK(r && r->sources[1].origin == IH_ORIGIN_DEFAULT &&
	      r->sources[1].status == IH_SOURCE_NOT_CONTACTED && r->sources[1].requests == 0);
	ih_restore_report_free(r);
	/* the environment's server fails: download failure (0x800F0906) */
	fresh_bad("lzx.wim");
	r = NULL;
	if (ih_session_open(p, &(ih_open_options){.state_dir = sd}, &s, &err) == IH_OK) {
		o.sources = NULL;
		o.n_sources = 0;
		ih_restore(s, &o, &r, &err);
		ih_session_close(s);
	}
	CHECK(r && r->n_sources == 1 && all_codes(r, IH_ERR_DOWNLOAD));
	ih_restore_report_free(r);
	unsetenv("IMAGEHEALTH_REPAIR_SOURCES");
}

/* A restore job tells of its downloads as it goes (per source). */
static void test_progress(void)
{
	char p[600], sd[300];
	ih_session *s;
	ih_error err;
	ih_job *j;
	const char *src[] = {url(0, "ok", "lzx.wim")};
	int seen = 0;
	fresh_bad("lzx.wim");
	snprintf(p, sizeof p, "%s/bad-lzx.wim", wd);
	snprintf(sd, sizeof sd, "%s/state", wd);
	CHECK(ih_session_open(p, &(ih_open_options){.state_dir = sd}, &s, &err) == IH_OK);
	ih_restore_options o = {.sources = src, .n_sources = 1, .no_policy = 1,
				.default_sources_file = "/nonexistent"};
	CHECK(ih_restore_start(s, &o, &j, &err) == IH_OK);
	for (int done = 0; !done;) {
		ih_event ev[16];
		size_t n;
		done = ih_job_wait(j, 100);
		while ((n = ih_job_events(j, ev, 16)) > 0)
			for (size_t i = 0; i < n; i++)
				seen += ev[i].type == IH_EVENT_MESSAGE && strstr(ev[i].text, "bytes fetched") &&
					strstr(ev[i].text, "/ok/lzx.wim");
	}
	CHECK_MSG(seen >= 3, "a message per round trip (header, tables, the wave)");
	ih_restore_report *r = NULL;
	CHECK(ih_job_restore_result(j, &r, &err) == IH_OK && r && r->state == IH_HEALTHY);
	ih_restore_report_free(r);
	ih_job_free(j);
	ih_session_close(s);
}

/* Cancel aborts a stalled transfer within 100 ms; the image is as it was. */
static void test_cancel(void)
{
	char p[600], sd[300];
	ih_session *s;
	ih_error err;
	ih_job *j;
	const char *src[] = {url(0, "stall", "lzx.wim")};
	fresh_bad("lzx.wim");
	snprintf(p, sizeof p, "%s/bad-lzx.wim", wd);
	snprintf(sd, sizeof sd, "%s/state", wd);
	CHECK(ih_session_open(p, &(ih_open_options){.state_dir = sd}, &s, &err) == IH_OK);
	ih_restore_options o = {.sources = src, .n_sources = 1, .no_policy = 1,
				.default_sources_file = "/nonexistent", .http_stall_timeout = 60};
	CHECK(ih_restore_start(s, &o, &j, &err) == IH_OK);
	ih_progress pr = {0};
	for (int i = 0; i < 500 && pr.phase != IH_PHASE_FETCH; i++) {
		usleep(10000);
		ih_job_progress(j, &pr);
	}
	usleep(400000); /* the wave is in flight, stalled */
	double t0 = ih_now();
	ih_job_cancel(j);
	int done = 0;
	while (!done && ih_now() - t0 < 2) {
		ih_event ev[16];
		done = ih_job_wait(j, 50);
		while (ih_job_events(j, ev, 16) > 0)
			;
	}
	double took = ih_now() - t0;
	CHECK(done);
	CHECK_MSG(took < 0.25, "cancel within 100 ms (250 with sanitizers)");
	if (took >= 0.25 || getenv("IH_HTTP_ONLY"))
		fprintf(stderr, "cancel took %.3f s\n", took);
	ih_restore_report *r = NULL;
	CHECK(ih_job_restore_result(j, &r, &err) == IH_ERR_CANCELLED);
	ih_restore_report_free(r);
	ih_job_free(j);
	ih_session_close(s);
	CHECK(unchanged("lzx.wim"));
}

void test_http(void)
{
	const char *tmp = getenv("TMPDIR");
	test_helpers();
	test_parsers();
	snprintf(wd, sizeof wd, "%s/ihhttp-test.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(wd) || find_faultsrv()) {
		CHECK_MSG(0, "no temp dir or no build/faultsrv");
		return;
	}
	tsh("mkdir -p %s/www %s/tree/a/b %s/tree/c %s/tree2 && cp /usr/share/common-licenses/GPL-3 %s/tree/a/ && "
	    "cp /usr/share/common-licenses/GPL-2 %s/tree/a/b/ && cp /usr/share/common-licenses/Apache-2.0 "
	    "%s/tree/c/ && head -c 300000 /usr/bin/wimlib-imagex > %s/tree/c/bin.dat && "
	    "cp /usr/share/common-licenses/GPL-2 %s/tree2/other",
	    wd, wd, wd, wd, wd, wd, wd, wd, wd);
	static const struct { const char *name, *flags; } kinds[] = {
		{"none.wim", "--compress=none"}, {"xpress.wim", "--compress=XPRESS"},
		{"lzx.wim", "--compress=LZX"},   {"lzms.wim", "--compress=LZMS"},
		{"solid.esd", "--solid"},
	};
	for (size_t k = 0; k < IH_ARRAY_LEN(kinds); k++)
		CHECK(tsh("wimlib-imagex capture %s/tree %s/www/%s img %s >/dev/null 2>&1", wd, wd,
			  kinds[k].name, kinds[k].flags) == 0);
	CHECK(tsh("wimlib-imagex split %s/www/lzx.wim %s/www/split.swm 0.1 >/dev/null 2>&1", wd, wd) == 0);
	/* the "replaced" file: another image under the same name */
	CHECK(tsh("wimlib-imagex capture %s/tree2 %s/www/lzx.wim.v2 img --compress=LZX >/dev/null 2>&1",
		  wd, wd) == 0);
	if (start_server()) {
		CHECK_MSG(0, "faultsrv did not start");
		stop_server();
		return;
	}
	/* IH_HTTP_ONLY=NAME runs one part (while debugging) */
	const char *only = getenv("IH_HTTP_ONLY");
#define PART(name)                                   \
	if (!only || !strcmp(only, #name))           \
		test_##name();
	PART(server_behaviours)
	PART(counters)
	PART(kinds)
	PART(no_credentials)
	PART(credentials_and_proxy)
	PART(default_server)
	PART(progress)
	PART(cancel)
#undef PART
	stop_server();
	tsh("rm -rf %s", wd);
}
