/* test_check.c - the core's health check, end to end on real captures:
 * healthy images of every kind, damage at exact places, determinism across
 * thread counts, cancellation, the state store, open errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "imagehealth.h"
#include "reader.h"
#include "sha1.h"
#include "testutil.h"
#include "util.h"
#include "wimfmt.h"
#include "wimtest.h"

static char workdir[256];

/* A small real tree: system text files plus pseudo-random binary files of
 * sizes that span several chunks, and a duplicate (one blob, two paths). */
static void make_tree(void)
{
	char path[512];
	tsh("mkdir -p %s/tree/docs %s/tree/bin/sub && cp /usr/share/common-licenses/GPL-3 "
	   "/usr/share/common-licenses/Apache-2.0 %s/tree/docs/ && cp %s/tree/docs/GPL-3 "
	   "%s/tree/bin/sub/copy-of-gpl",
	   workdir, workdir, workdir, workdir, workdir);
	for (int f = 0; f < 6; f++) {
		snprintf(path, sizeof path, "%s/tree/bin/file%d.dat", workdir, f);
		FILE *fp = fopen(path, "wb");
		uint32_t x = 2463534242u + (uint32_t)f;
		size_t size = 20000 + (size_t)f * 70000;
		for (size_t i = 0; i < size; i++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			fputc((i % 7 == 0) ? (int)(x & 0xff) : "imagehealth"[i % 11], fp);
		}
		fclose(fp);
	}
}

static void capture(const char *name, const char *flags)
{
	CHECK(tsh("wimlib-imagex capture %s/tree %s/%s img %s >/dev/null 2>&1", workdir, workdir,
		 name, flags) == 0);
}

static ih_report *check(const char *name, int scan, int threads, ih_health want)
{
	char path[512];
	ih_session *s;
	ih_report *r = NULL;
	ih_error err = {0};
	ih_open_options o = {.threads = threads};
	char sdir[300];
	snprintf(sdir, sizeof sdir, "%s/state", workdir);
	o.state_dir = sdir;
	snprintf(path, sizeof path, "%s/%s", workdir, name);
	if (ih_session_open(path, &o, &s, &err)) {
		CHECK_MSG(0, err.message);
		return NULL;
	}
	ih_check_options co = {.scan = scan};
	int rc = ih_check(s, &co, &r, &err);
	CHECK_MSG(rc == IH_OK, err.message);
	if (r) {
		if (r->state != want)
			fprintf(stderr, "  %s: state %s, wanted %s\n", name, ih_health_name(r->state),
				ih_health_name(want));
		CHECK(r->state == want);
	}
	ih_session_close(s);
	return r;
}

static int find_blob(const char *name, const char *file, struct wim_blob_entry *out)
{
	char w[512], f[512];
	snprintf(w, sizeof w, "%s/%s", workdir, name);
	snprintf(f, sizeof f, "%s/tree/%s", workdir, file);
	return twim_entry(w, f, out);
}

static void flip(const char *name, uint64_t off, int n)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", workdir, name);
	tflip(p, off, n);
}

static int has_path(const ih_damage *d, const char *p)
{
	for (size_t i = 0; i < d->n_refs; i++)
		if (!strcmp(d->refs[i].path, p))
			return 1;
	return 0;
}

static void test_healthy_every_kind(void)
{
	static const struct { const char *name, *flags; } kinds[] = {
		{"none.wim", "--compress=none"}, {"xpress.wim", "--compress=XPRESS"},
		{"lzx.wim", "--compress=LZX"},   {"lzms.wim", "--compress=LZMS"},
		{"solid.esd", "--solid"},       {"integrity.wim", "--check"},
	};
	for (size_t k = 0; k < IH_ARRAY_LEN(kinds); k++) {
		capture(kinds[k].name, kinds[k].flags);
		ih_report *r = check(kinds[k].name, 0, 2, IH_HEALTHY);
		CHECK(r && r->n_damage == 0 && !r->scanned);
		ih_report_free(r);
		r = check(kinds[k].name, 1, 2, IH_HEALTHY);
		CHECK(r && r->n_damage == 0 && r->scanned && r->bytes_checked > 700000);
		ih_report_free(r);
	}
}

static void test_damaged_data(void)
{
	struct wim_blob_entry e;
	tsh("cp %s/lzx.wim %s/lzx-bad.wim", workdir, workdir);
	CHECK(find_blob("lzx-bad.wim", "docs/GPL-3", &e) == 0);
	/* past the chunk table, inside the compressed data */
	flip("lzx-bad.wim", e.res.offset + e.res.stored_size / 2, 4);
	ih_report *r = check("lzx-bad.wim", 0, 2, IH_HEALTHY); /* quick: not read yet */
	ih_report_free(r);
	r = check("lzx-bad.wim", 1, 2, IH_REPAIRABLE);
	CHECK(r && r->n_damage == 1);
	if (r && r->n_damage == 1) {
		CHECK(!memcmp(r->damage[0].sha1, e.sha1, 20));
		CHECK(has_path(&r->damage[0], "/docs/GPL-3"));
		CHECK(has_path(&r->damage[0], "/bin/sub/copy-of-gpl"));
		CHECK(r->damage[0].n_images == 1 && r->damage[0].images[0] == 1);
	}
	ih_report_free(r);
	/* the scan was recorded: a quick check now knows */
	r = check("lzx-bad.wim", 0, 2, IH_REPAIRABLE);
	CHECK(r && r->from_record && r->n_damage == 1);
	ih_report_free(r);
}

/* A scan's damage events carry the paths of the blob's files, the same
 * the report gives (sorted by image, then path), whether the scan read the
 * blob (deep) or took it from the fingerprint record (re-scan). */
static void scan_events_paths(const char *name, const char *sdir, ih_scan_kind want_kind)
{
	char path[512];
	ih_session *s;
	ih_job *j;
	ih_report *r = NULL;
	ih_error err = {0};
	ih_event evs[16], got = {0};
	int ndamage = 0, done = 0, done_after_damage = 0;
	snprintf(path, sizeof path, "%s/%s", workdir, name);
	CHECK(ih_session_open(path, &(ih_open_options){.threads = 2, .state_dir = sdir}, &s,
			      &err) == IH_OK);
	CHECK(ih_check_start(s, &(ih_check_options){.scan = 1}, &j, &err) == IH_OK);
	while (!done) {
		ih_job_wait(j, 100);
		size_t n = ih_job_events(j, evs, 16);
		for (size_t i = 0; i < n; i++) {
			if (evs[i].type == IH_EVENT_DAMAGE) {
				got = evs[i];
				ndamage++;
			}
			if (evs[i].type == IH_EVENT_DONE) {
				done_after_damage = ndamage > 0;
				done = 1;
			}
		}
		if (!n && ih_job_done(j))
			done = 1;
	}
	CHECK(ih_job_result(j, &r, &err) == IH_OK);
	CHECK(ndamage == 1 && done_after_damage);
	CHECK(r && r->n_damage == 1 && r->scan_kind == want_kind);
	if (r && r->n_damage == 1 && ndamage == 1) {
		const ih_damage *d = &r->damage[0];
		CHECK(!memcmp(got.sha1, d->sha1, 20));
		CHECK(got.n_refs == 2 && d->n_refs == 2 && got.n_refs_omitted == 0);
		for (size_t k = 0; k < got.n_refs && k < d->n_refs; k++)
			CHECK(got.refs[k].image == d->refs[k].image &&
			      !strcmp(got.refs[k].path, d->refs[k].path));
		/* sorted: the copy before the original, both of image 1 */
		CHECK(got.n_refs == 2 && !strcmp(got.refs[0].path, "/bin/sub/copy-of-gpl") &&
		      !strcmp(got.refs[1].path, "/docs/GPL-3") && got.refs[1].image == 1);
	}
	ih_report_free(r); /* the event's paths belong to the job, not the report */
	if (ndamage == 1 && got.n_refs == 2)
		CHECK(!strcmp(got.refs[1].path, "/docs/GPL-3"));
	ih_job_free(j);
	ih_session_close(s);
}

static void test_damage_event_paths(void)
{
	char sdir[300];
	snprintf(sdir, sizeof sdir, "%s/state-events", workdir);
	mkdir(sdir, 0700);
	scan_events_paths("lzx-bad.wim", sdir, IH_SCAN_DEEP);        /* no record yet */
	scan_events_paths("lzx-bad.wim", sdir, IH_SCAN_FINGERPRINT); /* from the record */
}

static int sha1_feed(void *ctx, const uint8_t *data, size_t len)
{
	ih_sha1_update(ctx, data, len);
	return 0;
}

/* The blobs of a solid resource read one after another, in offset order
 * (as a restore from an ESD source reads them): each chunk is decoded once
 * (the reader keeps the last), not once per blob; and every blob still
 * reads back right. */
static void test_solid_chunk_cache(void)
{
	char p[512];
	struct wim *w = NULL;
	ih_error err;
	struct ih_reader rd;
	ih_sha1_ctx *md = ih_sha1_new();
	size_t blobs = 0, chunks = 0, good = 0;
	snprintf(p, sizeof p, "%s/solid.esd", workdir);
	CHECK(wim_open(p, &w, &err) == IH_OK && w && w->nsolids >= 1);
	if (!w || !md)
		return;
	ih_reader_init(&rd, w);
	unsigned before = atomic_load(&ih_test_solid_decodes);
	for (size_t k = 0; k < w->nsolids; k++) {
		const struct wim_solid *sd = &w->solids[k];
		uint64_t last = UINT64_MAX;
		for (size_t i = 0; i < sd->nblobs; i++) {
			const struct wim_blob *b = &w->blobs[sd->blobs[i]];
			uint64_t c0 = b->offset / sd->sh.chunk_size;
			uint64_t c1 = (b->offset + (b->size ? b->size - 1 : 0)) / sd->sh.chunk_size;
			ih_reason reason;
			char detail[160];
			uint8_t h[20];
			chunks += c1 - c0 + 1 - (c0 == last);
			last = c1;
			ih_sha1_init(md);
			if (ih_read_any_blob(&rd, b, sha1_feed, md, NULL, &reason, detail,
					     sizeof detail) == IH_READ_OK) {
				ih_sha1_final(md, h);
				good += !memcmp(h, b->sha1, 20);
			}
			blobs++;
		}
	}
	unsigned decodes = atomic_load(&ih_test_solid_decodes) - before;
	CHECK(blobs >= 8 && good == blobs);
	CHECK(decodes == chunks && decodes < blobs);
	ih_reader_free(&rd);
	ih_sha1_free(md);
	wim_free(w);
}

static void test_thread_invariance(void)
{
	struct wim_blob_entry e;
	tsh("cp %s/xpress.wim %s/x-bad.wim", workdir, workdir);
	for (int f = 1; f < 6; f += 2) {
		char file[64];
		snprintf(file, sizeof file, "bin/file%d.dat", f);
		CHECK(find_blob("x-bad.wim", file, &e) == 0);
		flip("x-bad.wim", e.res.offset + e.res.stored_size - 100, 1);
	}
	ih_report *a = check("x-bad.wim", 1, 1, IH_REPAIRABLE);
	ih_report *b = check("x-bad.wim", 1, 4, IH_REPAIRABLE);
	CHECK(a && b && a->n_damage == 3 && b->n_damage == 3);
	for (size_t i = 0; a && b && i < a->n_damage && i < b->n_damage; i++) {
		CHECK(!memcmp(a->damage[i].sha1, b->damage[i].sha1, 20));
		CHECK(a->damage[i].reason == b->damage[i].reason);
		CHECK(!strcmp(a->damage[i].detail, b->damage[i].detail));
		CHECK(a->damage[i].n_refs == b->damage[i].n_refs);
	}
	ih_report_free(a);
	ih_report_free(b);
}

static void test_solid_damage(void)
{
	char path[512];
	uint8_t want[64][20];
	size_t nwant = 0;
	/* Small solid chunks: one of several, shared by several blobs. */
	tsh("wimlib-imagex capture %s/tree %s/solid-bad.esd img --solid --solid-chunk-size=32K "
	    ">/dev/null", workdir, workdir);
	snprintf(path, sizeof path, "%s/solid-bad.esd", workdir);
	/* The chunk found from the file's own tables: every blob overlapping
	 * it is lost, and only those. */
	CHECK(tdamage_solid_chunk(path, UINT32_MAX, want, 64, &nwant) == 0);
	CHECK(nwant >= 2);
	ih_report *r = check("solid-bad.esd", 1, 2, IH_REPAIRABLE);
	CHECK_EQ_INT(r ? r->n_damage : 0, nwant);
	for (size_t i = 0; r && i < r->n_damage; i++) {
		int expected = 0;
		for (size_t k = 0; k < nwant; k++)
			expected |= !memcmp(r->damage[i].sha1, want[k], 20);
		CHECK_MSG(expected, "a damaged blob outside the damaged chunk");
		CHECK(r->damage[i].solid);
	}
	ih_report_free(r);
}

static void test_structure(void)
{
	/* a lying blob table header: nonrepairable */
	tsh("cp %s/lzx.wim %s/bt.wim", workdir, workdir);
	flip("bt.wim", 0x30 + 10, 2);
	ih_report *r = check("bt.wim", 0, 2, IH_NONREPAIRABLE);
	CHECK(r && r->n_problems >= 1);
	ih_report_free(r);
	/* truncation */
	tsh("cp %s/lzx.wim %s/trunc.wim && truncate -s 200000 %s/trunc.wim", workdir, workdir,
	   workdir);
	r = check("trunc.wim", 1, 2, IH_NONREPAIRABLE);
	ih_report_free(r);
	/* metadata damaged: repairable, by its hash */
	tsh("cp %s/none.wim %s/meta.wim", workdir, workdir);
	{
		struct wim_blob_entry be;
		char p[512];
		snprintf(p, sizeof p, "%s/meta.wim", workdir);
		CHECK(twim_entry(p, NULL, &be) == 0);
		flip("meta.wim", be.res.offset + be.res.stored_size / 2, 1);
	}
	r = check("meta.wim", 0, 2, IH_REPAIRABLE);
	CHECK(r && r->n_damage == 1 && r->damage[0].is_metadata);
	ih_report_free(r);
}

static void test_split(void)
{
	char p[512];
	ih_session *s;
	ih_error err;
	CHECK(tsh("wimlib-imagex split %s/lzx.wim %s/set.swm 0.1 >/dev/null 2>&1", workdir, workdir) == 0);
	ih_report *r = check("set.swm", 1, 2, IH_HEALTHY);
	CHECK(r && r->bytes_checked > 700000);
	ih_report_free(r);
	snprintf(p, sizeof p, "%s/set.swm", workdir);
	CHECK(ih_session_open(p, NULL, &s, &err) == IH_OK);
	const ih_wim_info *info;
	CHECK(ih_session_info(s, &info, &err) == IH_OK && info->total_parts >= 3);
	ih_session_close(s);
	/* damage in the second part is found and placed there */
	struct wim_blob_entry e;
	snprintf(p, sizeof p, "%s/set2.swm", workdir);
	FILE *f = fopen(p, "rb");
	uint8_t hdr[WIM_HEADER_SIZE], ent[BLOB_ENTRY_SIZE];
	struct wim_header h;
	char why[64];
	CHECK(f && fread(hdr, 1, sizeof hdr, f) == sizeof hdr);
	wimfmt_parse_header(hdr, sizeof hdr, &h, why, sizeof why);
	fseek(f, (long)h.blob_table.offset, SEEK_SET);
	CHECK(fread(ent, 1, sizeof ent, f) == sizeof ent);
	fclose(f);
	wimfmt_get_blob_entry(ent, &e);
	flip("set2.swm", e.res.offset + e.res.stored_size / 2, 2);
	r = check("set.swm", 1, 2, IH_REPAIRABLE);
	CHECK(r && r->n_damage == 1 && r->damage[0].part == 2 && r->damage[0].n_refs >= 1);
	ih_report_free(r);
	/* a missing part is its own error */
	tsh("mv %s/set3.swm %s/set3.moved", workdir, workdir);
	snprintf(p, sizeof p, "%s/set.swm", workdir);
	CHECK(ih_session_open(p, NULL, &s, &err) == IH_ERR_MISSING_PART);
	CHECK_MSG(strstr(err.message, "set3.swm") != NULL, err.message);
}

static void test_xml_damage(void)
{
	uint8_t hdr[WIM_HEADER_SIZE];
	struct wim_header h;
	char why[64], p[512];
	tsh("cp %s/lzx.wim %s/xml.wim", workdir, workdir);
	snprintf(p, sizeof p, "%s/xml.wim", workdir);
	FILE *f = fopen(p, "rb");
	CHECK(f && fread(hdr, 1, sizeof hdr, f) == sizeof hdr);
	fclose(f);
	wimfmt_parse_header(hdr, sizeof hdr, &h, why, sizeof why);
	flip("xml.wim", h.xml.offset + 2, 8); /* right after the BOM: "<WIM>" */
	ih_report *r = check("xml.wim", 0, 2, IH_REPAIRABLE);
	CHECK(r && r->n_problems == 1 && r->problems[0].kind == IH_PROBLEM_XML);
	ih_report_free(r);
}

static void test_open_errors(void)
{
	char p[512];
	ih_session *s;
	ih_error err;
	snprintf(p, sizeof p, "%s/nope.wim", workdir);
	CHECK(ih_session_open(p, NULL, &s, &err) == IH_ERR_NOT_FOUND);
	CHECK(err.hresult == 0x80070002);
	snprintf(p, sizeof p, "%s/tree/docs/GPL-3", workdir);
	CHECK(ih_session_open(p, NULL, &s, &err) == IH_ERR_NOT_WIM);
	snprintf(p, sizeof p, "%s/lzx.wim", workdir);
	CHECK(ih_session_open(p, &(ih_open_options){.index = 2}, &s, &err) == IH_ERR_BAD_INDEX);
	CHECK(err.hresult == 0xC0040005);
	/* a restore holds the image exclusively: opening it is busy, at once */
	{
		int fd = open(p, O_RDONLY);
		CHECK(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0);
		CHECK(ih_session_open(p, NULL, &s, &err) == IH_ERR_BUSY);
		CHECK(err.hresult == 0x800F0902);
		close(fd);
	}
	CHECK(ih_session_open(p, &(ih_open_options){.index = 1}, &s, &err) == IH_OK);
	const ih_wim_info *info;
	CHECK(ih_session_info(s, &info, &err) == IH_OK);
	CHECK(info->n_images == 1 && info->images[0].file_count == 9 &&
	      info->images[0].dir_count == 3 && !strcmp(info->images[0].name, "img"));
	CHECK(!strcmp(info->compression_name, "LZX"));
	ih_session_close(s);
}

static void test_cancel(void)
{
	char p[512];
	ih_session *s;
	ih_error err;
	ih_job *j;
	ih_report *r = NULL;
	CHECK(tbig_image(workdir) == 0);
	snprintf(p, sizeof p, "%s/big.wim", workdir);
	CHECK(ih_session_open(p, NULL, &s, &err) == IH_OK);
	ih_cancel *tok = ih_cancel_new();
	CHECK(ih_check_start(s, &(ih_check_options){.scan = 1, .threads = 1, .cancel = tok}, &j,
			     &err) == IH_OK);
	/* cancelled while it reads, not before it starts */
	CHECK(tcancel_running(j, IH_PHASE_SCAN, tok) == 1);
	CHECK(ih_job_result(j, &r, &err) == IH_ERR_CANCELLED);
	CHECK(err.hresult == 0x800704C7);
	CHECK(r == NULL);
	ih_job_free(j);
	ih_cancel_unref(tok);
	ih_session_close(s);
}

void test_check(void)
{
	snprintf(workdir, sizeof workdir, "/tmp/ih-ctest-XXXXXX");
	if (!mkdtemp(workdir)) {
		CHECK(0);
		return;
	}
	make_tree();
	test_healthy_every_kind();
	test_damaged_data();
	test_damage_event_paths();
	test_solid_chunk_cache();
	test_thread_invariance();
	test_solid_damage();
	test_structure();
	test_open_errors();
	test_split();
	test_xml_damage();
	test_cancel();
	tsh("rm -rf %s", workdir);
}
