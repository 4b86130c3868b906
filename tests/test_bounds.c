/* test_bounds.c - hostile inputs (issue 8): each shape runs in a child
 * process with a time limit, so that a regression fails instead of hanging,
 * and its peak RSS (getrusage of the child) is held to a generous bound. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "blobindex.h"
#include "imagehealth.h"
#include "testutil.h"
#include "util.h"
#include "wimfmt.h"
#include "wimgen.h"
#include "wimtest.h"

static char dir[256];

struct child {
	int status;      /* exit status, or -1 when killed */
	int timed_out;
	long rss_mb;     /* peak RSS of the child, less what it inherited */
	double secs;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long base_rss_kb = -1;
static int nothing(void *arg)
{
	(void)arg;
	return 0;
}

/* Runs fn(arg) in a child; kills it after `limit` seconds. */
static struct child in_child(int (*fn)(void *), void *arg, double limit)
{
	struct child c = {.status = -1};
	struct rusage ru;
	int st;
	double t0 = now();
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(fn(arg));
	for (;;) {
		pid_t w = wait4(pid, &st, WNOHANG, &ru);
		if (w == pid)
			break;
		if (now() - t0 > limit) {
			kill(pid, SIGKILL);
			wait4(pid, &st, 0, &ru);
			c.timed_out = 1;
			break;
		}
		usleep(5000);
	}
	c.secs = now() - t0;
	if (!c.timed_out && WIFEXITED(st))
		c.status = WEXITSTATUS(st);
	c.rss_mb = (ru.ru_maxrss - (base_rss_kb > 0 ? base_rss_kb : 0)) / 1024;
	return c;
}

#define CHECK_CHILD(c, max_s, max_mb)                                                        \
	do {                                                                                 \
		CHECK_MSG(!(c).timed_out, "timed out");                                      \
		CHECK_EQ_INT((c).status, 0);                                                 \
		if ((c).secs > (max_s) || (c).rss_mb > (max_mb))                             \
			fprintf(stderr, "  %.2f s, %ld MB peak\n", (c).secs, (c).rss_mb);    \
		CHECK((c).secs <= (max_s));                                                  \
		CHECK((c).rss_mb <= (max_mb));                                               \
	} while (0)

/* ------------------------------------------------------------- helpers */

struct job {
	const char *path;
	int scan;
	int (*judge)(const ih_report *r, int rc, const ih_error *err);
};

/* Opens, runs the check, and lets the job judge the outcome: exit 0 when
 * it is the right one. */
static int run_check(void *arg)
{
	struct job *j = arg;
	ih_session *s;
	ih_error err = {0};
	ih_report *r = NULL;
	ih_open_options o = {.threads = 2, .state_dir = "/nonexistent/ih-bounds-test"};
	int rc = ih_session_open(j->path, &o, &s, &err);
	if (rc == IH_OK) {
		rc = ih_check(s, &(ih_check_options){.scan = j->scan, .no_record = 1}, &r, &err);
		ih_session_close(s);
	}
	int bad = j->judge(r, rc, &err);
	if (bad)
		fprintf(stderr, "  %s: rc %d (%s), judged wrong (%d)\n", j->path, rc, err.message, bad);
	ih_report_free(r);
	return bad;
}

static void gen(const char *name, struct wimgen *g, char *path, size_t len)
{
	snprintf(path, len, "%s/%s", dir, name);
	CHECK(wimgen_write(g, path) == 0);
	wimgen_free(g);
}

/* ------------------------------------------------------------- FIFOs */

static int open_expect_not_wim(void *arg)
{
	const char **a = arg;
	ih_session *s;
	ih_error err = {0};
	ih_open_options o = {.threads = 1, .state_dir = "/nonexistent/ih-bounds-test"};
	int rc = ih_session_open(a[0], &o, &s, &err);
	if (rc == IH_OK) {
		ih_session_close(s);
		return 1;
	}
	if (rc != IH_ERR_NOT_WIM || !strstr(err.message, a[1]) || !strstr(err.message, "FIFO")) {
		fprintf(stderr, "  rc %d: %s\n", rc, err.message);
		return 2;
	}
	return 0;
}

static void test_fifos(void)
{
	char fifo[300], first[300], part2[300];
	snprintf(fifo, sizeof fifo, "%s/fifo.wim", dir);
	CHECK(mkfifo(fifo, 0600) == 0);
	const char *a[2] = {fifo, fifo};
	struct child c = in_child(open_expect_not_wim, a, 5);
	CHECK_CHILD(c, 5, 200);

	/* The second part of a split set: the first opens, then the FIFO. */
	CHECK(tsh("mkdir -p %s/split && head -c 3000000 /dev/urandom > %s/split/r.bin && "
		  "wimlib-imagex capture %s/split %s/s.wim --compress=none >/dev/null 2>&1 && "
		  "wimlib-imagex split %s/s.wim %s/s.swm 1 >/dev/null 2>&1",
		  dir, dir, dir, dir, dir, dir) == 0);
	snprintf(first, sizeof first, "%s/s.swm", dir);
	snprintf(part2, sizeof part2, "%s/s2.swm", dir);
	CHECK(unlink(part2) == 0 && mkfifo(part2, 0600) == 0);
	const char *b[2] = {first, part2};
	c = in_child(open_expect_not_wim, b, 5);
	CHECK_CHILD(c, 5, 200);
}

/* ------------------------------------------------------------- memory */

static int judge_nested(const ih_report *r, int rc, const ih_error *err)
{
	(void)err;
	if (rc != IH_OK || !r || r->n_damage != 3000)
		return 1;
	size_t bytes = 0;
	for (size_t i = 0; i < r->n_damage; i++) {
		const ih_damage *d = &r->damage[i];
		if (d->reason != IH_REASON_MISSING || d->n_refs + d->n_refs_omitted != 1 ||
		    d->n_images != 1 || d->images[0] != 1)
			return 2;
		for (size_t k = 0; k < d->n_refs; k++)
			bytes += strlen(d->refs[k].path);
	}
	return bytes > (16u << 20) ? 3 : 0;
}

static int judge_nested_one(const ih_report *r, int rc, const ih_error *err)
{
	(void)err;
	if (rc != IH_OK || !r || r->n_damage != 1)
		return 1;
	const ih_damage *d = &r->damage[0];
	if (d->n_refs > 1000 || d->n_refs + d->n_refs_omitted != 3000 || d->n_images != 1)
		return 2;
	return 0;
}

static int judge_open_ok(const ih_report *r, int rc, const ih_error *err)
{
	(void)err;
	return rc != IH_OK || !r;
}

/* 300 images, one metadata resource: image 1 reads it, the other entries
 * overlap it and are damage (of one SHA-1: one damaged blob). */
static int judge_meta(const ih_report *r, int rc, const ih_error *err)
{
	(void)err;
	if (rc != IH_OK || !r || r->n_damage != 1 || r->damage[0].reason != IH_REASON_BAD_ENTRY)
		return 1;
	return strstr(r->damage[0].detail, "overlaps") ? 0 : 2;
}

static void test_memory(void)
{
	struct wimgen g;
	char path[300];

	/* 3000 nested directories with 60-character names, each holding a
	 * file whose blob is missing: half a gigabyte of paths if kept. */
	wimgen_nested(&g, 3000, 60, 0);
	gen("nested.wim", &g, path, sizeof path);
	struct job j = {path, 0, judge_nested};
	struct child c = in_child(run_check, &j, 30);
	CHECK_CHILD(c, 3, 100);
	/* the same, every file one blob: 1000 paths kept, the rest counted */
	wimgen_nested(&g, 3000, 60, 1);
	gen("nested1.wim", &g, path, sizeof path);
	j.judge = judge_nested_one;
	c = in_child(run_check, &j, 30);
	CHECK_CHILD(c, 3, 100);

	/* 100 resource entries naming one 262144-chunk solid resource: one
	 * chunk table (2 MiB), not 100. */
	wimgen_solid_shared(&g, 100, 262144);
	gen("solid-shared.wim", &g, path, sizeof path);
	j.judge = judge_open_ok;
	c = in_child(run_check, &j, 30);
	CHECK_CHILD(c, 3, 100);

	/* 100 images sharing one 2 MiB metadata resource: one tree held. */
	wimgen_meta_shared(&g, 100, 2u << 20);
	gen("meta-shared.wim", &g, path, sizeof path);
	j.judge = judge_meta;
	c = in_child(run_check, &j, 30);
	CHECK_CHILD(c, 3, 100);
}

/* ------------------------------------------------------------- time */

static int judge_norun(const ih_report *r, int rc, const ih_error *err)
{
	(void)err;
	if (rc != IH_OK || !r || r->state != IH_NONREPAIRABLE || r->n_problems != 1)
		return 1;
	return strstr(r->problems[0].message, "no solid resource") ? 0 : 2;
}

static int judge_overlap(const ih_report *r, int rc, const ih_error *err)
{
	(void)err;
	if (rc != IH_OK || !r || r->n_damage != 200)
		return 1;
	size_t overlaps = 0;
	for (size_t i = 0; i < r->n_damage; i++)
		overlaps += r->damage[i].reason == IH_REASON_BAD_ENTRY &&
			    strstr(r->damage[i].detail, "overlaps") != NULL;
	/* each byte read once: the region, not 200 times it */
	if (overlaps != 199 || r->bytes_checked > (2u << 20))
		return 2;
	return 0;
}

static int judge_problems(const ih_report *r, int rc, const ih_error *err)
{
	(void)err;
	if (rc != IH_OK || !r || r->state != IH_NONREPAIRABLE || r->n_problems != 1001)
		return 1;
	return strcmp(r->problems[1000].message, "... and 4000 more problems") != 0 ||
	       r->problems[1000].severity != IH_NONREPAIRABLE;
}

static int flood_index(void *arg)
{
	struct ih_blobindex t;
	uint8_t sha1[20];
	unsigned n = *(unsigned *)arg;
	if (ih_blobindex_init(&t, 16))
		return 1;
	memset(sha1, 0xAB, sizeof sha1);
	for (unsigned i = 0; i < n; i++) {
		put_le32(sha1 + 8, i); /* bytes 0..7 the same for all */
		if (!ih_blobindex_put(&t, sha1, i, NULL))
			return 2;
	}
	for (unsigned i = 0; i < n; i++) {
		put_le32(sha1 + 8, i);
		size_t *v = ih_blobindex_get(&t, sha1);
		if (!v || *v != i)
			return 3;
	}
	ih_blobindex_free(&t);
	return 0;
}

/* Any healthy outcome of a check is right (the shape is only slow). */
static int judge_any(const ih_report *r, int rc, const ih_error *err)
{
	(void)err;
	return rc != IH_OK || !r;
}

/* A blob table listing its resources from the end of the file to the
 * start: the overlap check sorts them by offset, by insertion sort when
 * they are nearly in order, which must not go quadratic on this order. */
static void reverse_entries(struct wimgen *g)
{
	struct wim_header h;
	char why[128];
	CHECK(wimfmt_parse_header(g->b, g->len, &h, why, sizeof why) == 0);
	uint8_t *t = g->b + h.blob_table.offset, tmp[BLOB_ENTRY_SIZE];
	size_t n = h.blob_table.stored_size / BLOB_ENTRY_SIZE;
	for (size_t i = 0; i < n / 2; i++) {
		memcpy(tmp, t + i * BLOB_ENTRY_SIZE, BLOB_ENTRY_SIZE);
		memcpy(t + i * BLOB_ENTRY_SIZE, t + (n - 1 - i) * BLOB_ENTRY_SIZE, BLOB_ENTRY_SIZE);
		memcpy(t + (n - 1 - i) * BLOB_ENTRY_SIZE, tmp, BLOB_ENTRY_SIZE);
	}
}

static void test_time(void)
{
	struct wimgen g;
	char path[300];
	struct job j = {path, 0, judge_norun};

	/* 30000 solid entries and no resource entry: one problem, at once. */
	wimgen_solid_norun(&g, 30000);
	gen("norun.wim", &g, path, sizeof path);
	struct child c = in_child(run_check, &j, 60);
	CHECK_CHILD(c, 2, 100);

	/* 60000 SHA-1s sharing their first 8 bytes. */
	unsigned n = 60000;
	c = in_child(flood_index, &n, 60);
	CHECK_CHILD(c, 1, 100);

	/* 200000 entries in reverse file order: opened at once (sorted in
	 * n log n, not n^2). */
	wimgen_sha1_flood(&g, 200000);
	reverse_entries(&g);
	gen("reversed.wim", &g, path, sizeof path);
	struct job jr = {path, 0, judge_any};
	c = in_child(run_check, &jr, 60);
	CHECK_CHILD(c, 3, 200);

	/* 200 entries claiming one 1 MiB region: read once, 199 reported. */
	wimgen_overlap(&g, 200, 1u << 20);
	gen("overlap.wim", &g, path, sizeof path);
	j.scan = 1;
	j.judge = judge_overlap;
	c = in_child(run_check, &j, 60);
	CHECK_CHILD(c, 3, 100);

	/* 5000 corrupt entries: 1000 problems and a count of the rest. */
	wimgen_corrupt_entries(&g, 5000);
	gen("corrupt.wim", &g, path, sizeof path);
	j.scan = 0;
	j.judge = judge_problems;
	c = in_child(run_check, &j, 60);
	CHECK_CHILD(c, 2, 100);
}

/* ------------------------------------------------------------- outcomes */

static int judge_ctype0(const ih_report *r, int rc, const ih_error *err)
{
	(void)err;
	if (rc != IH_OK || !r || r->n_damage == 0 || r->state != IH_REPAIRABLE)
		return 1;
	for (size_t i = 0; i < r->n_damage; i++)
		if (!r->damage[i].solid || r->damage[i].reason != IH_REASON_DECOMPRESS)
			return 2;
	return 0;
}

/* Real captures, patched: a solid header's format 3 -> 0, and XML without
 * its byte order mark. */
static void test_outcomes(void)
{
	char path[300], tree[300];
	struct wim_blob_entry e;
	snprintf(tree, sizeof tree, "%s/tree", dir);
	CHECK(tsh("mkdir -p %s && head -c 200000 /dev/urandom > %s/a.bin && "
		  "cp /usr/share/common-licenses/GPL-3 %s/ && "
		  "wimlib-imagex capture %s %s/solid.esd --solid >/dev/null 2>&1 && "
		  "wimlib-imagex capture %s %s/named.wim 'the name' 'the description' >/dev/null 2>&1",
		  tree, tree, tree, tree, dir, tree, dir) == 0);

	/* find the solid resource entry: orig_size is the solid magic */
	snprintf(path, sizeof path, "%s/solid.esd", dir);
	FILE *f = fopen(path, "r+b");
	uint8_t hdr[WIM_HEADER_SIZE], be[BLOB_ENTRY_SIZE];
	struct wim_header h;
	char why[128];
	int patched = 0;
	CHECK(f && fread(hdr, 1, sizeof hdr, f) == sizeof hdr &&
	      wimfmt_parse_header(hdr, sizeof hdr, &h, why, sizeof why) == 0);
	for (uint64_t i = 0; f && !patched && i < h.blob_table.orig_size / BLOB_ENTRY_SIZE; i++) {
		fseek(f, (long)(h.blob_table.offset + i * BLOB_ENTRY_SIZE), SEEK_SET);
		if (fread(be, 1, sizeof be, f) != sizeof be)
			break;
		wimfmt_get_blob_entry(be, &e);
		if (e.res.orig_size == SOLID_RESOURCE_MAGIC) {
			uint8_t fmt[4] = {0, 0, 0, 0};
			fseek(f, (long)(e.res.offset + 12), SEEK_SET);
			patched = fwrite(fmt, 1, 4, f) == 4;
		}
	}
	if (f)
		fclose(f);
	CHECK(patched);
	struct job j = {path, 1, judge_ctype0};
	struct child c = in_child(run_check, &j, 30);
	CHECK_CHILD(c, 10, 200);

	/* XML without a BOM: header's XML resource 2 bytes later, 2 shorter */
	snprintf(path, sizeof path, "%s/named.wim", dir);
	f = fopen(path, "r+b");
	CHECK(f && fread(hdr, 1, sizeof hdr, f) == sizeof hdr &&
	      wimfmt_parse_header(hdr, sizeof hdr, &h, why, sizeof why) == 0);
	h.xml.offset += 2;
	h.xml.stored_size -= 2;
	h.xml.orig_size -= 2;
	wimfmt_put_header(hdr, &h);
	if (f) {
		fseek(f, 0, SEEK_SET);
		CHECK(fwrite(hdr, 1, sizeof hdr, f) == sizeof hdr);
		fclose(f);
	}
	ih_session *s;
	ih_error err = {0};
	ih_report *r = NULL;
	const ih_wim_info *info;
	ih_open_options o = {.threads = 1, .state_dir = "/nonexistent/ih-bounds-test"};
	if (ih_session_open(path, &o, &s, &err) != IH_OK) {
		CHECK_MSG(0, err.message);
		return;
	}
	CHECK(ih_check(s, &(ih_check_options){.no_record = 1}, &r, &err) == IH_OK);
	CHECK(r && r->state == IH_HEALTHY && r->n_problems == 0);
	if (r && r->n_problems)
		fprintf(stderr, "  problem: %s\n", r->problems[0].message);
	CHECK(ih_session_info(s, &info, &err) == IH_OK && info->n_images == 1);
	if (info && info->n_images == 1) {
		CHECK_STR(info->images[0].name, "the name");
		CHECK_STR(info->images[0].description, "the description");
	}
	ih_report_free(r);
	ih_session_close(s);
}

void test_bounds(void)
{
	snprintf(dir, sizeof dir, "%s/ihbounds.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir)) {
		CHECK_MSG(0, "mkdtemp");
		return;
	}
	/* a child's peak starts at what it inherits: measured once */
	struct child base = in_child(nothing, NULL, 10);
	base_rss_kb = base.rss_mb * 1024;
	test_fifos();
	test_memory();
	test_time();
	test_outcomes();
	tsh("rm -rf '%s'", dir);
}
