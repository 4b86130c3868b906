/* test_fingerprint.c - fingerprint re-scans and the quick check from the
 * record (issue 13).  Damage at chosen and at pseudo-random places (file
 * data, chunk tables, metadata, blob table, XML, integrity table, header,
 * the record itself): a fingerprint re-scan gives exactly the verdict,
 * damage (SHA-1, reason, detail, paths) and problems of a deep scan, and
 * `7z t` names the same files on non-solid images; a record altered in
 * any byte is refused and the scan runs deep; a file changed since the
 * record (size, mtime, GUID, raw bytes) never passes as healthy; the quick
 * check decodes nothing while the record vouches for the blob table and
 * the metadata, and decodes again when they changed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fingerprint.h"
#include "imagehealth.h"
#include "session.h"
#include "testutil.h"
#include "util.h"
#include "wimfmt.h"
#include "wimtest.h"

static char wd[256];

static void make_tree(const char *name, int variant)
{
	char path[600];
	tsh("mkdir -p %s/%s/docs %s/%s/bin/sub && cp /usr/share/common-licenses/GPL-3 "
	    "/usr/share/common-licenses/Apache-2.0 %s/%s/docs/ && cp %s/%s/docs/GPL-3 "
	    "%s/%s/bin/sub/copy-of-gpl",
	    wd, name, wd, name, wd, name, wd, name, wd, name);
	/* files of many sizes, so the image spans many fingerprint chunks */
	for (int f = 0; f < 24; f++) {
		snprintf(path, sizeof path, "%s/%s/bin/file%02d.dat", wd, name, f);
		FILE *fp = fopen(path, "wb");
		uint32_t x = 2463534242u + (uint32_t)f * 7919u + (uint32_t)variant * (f == 3);
		size_t size = 3000 + (size_t)f * 23000;
		for (size_t i = 0; i < size; i++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			fputc((i % 5 == 0) ? (int)(x & 0xff) : "fingerprint"[i % 11], fp);
		}
		fclose(fp);
	}
}

static void wpath(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", wd, name);
}

/* A check of `name` with records in wd/sd (NULL: none kept). */
static ih_report *scan(const char *name, const char *sd, int scan_, int deep, int no_record)
{
	char p[600], d[600];
	ih_session *s = NULL;
	ih_report *r = NULL;
	ih_error err = {0};
	wpath(p, sizeof p, name);
	snprintf(d, sizeof d, "%s/%s", wd, sd ? sd : "nostate");
	ih_open_options o = {.state_dir = d, .threads = 2};
	if (ih_session_open(p, &o, &s, &err)) {
		CHECK_MSG(0, err.message);
		return NULL;
	}
	ih_check_options co = {.scan = scan_, .deep = deep, .no_record = no_record || !sd};
	if (ih_check(s, &co, &r, &err) != IH_OK)
		CHECK_MSG(0, err.message);
	ih_session_close(s);
	return r;
}

/* Same verdict, damage, paths and problems; *why says what differs. */
static int same_report(const ih_report *a, const ih_report *b, char *why, size_t len)
{
	if (!a || !b)
		return snprintf(why, len, "no report"), 0;
	if (a->state != b->state)
		return snprintf(why, len, "state %d vs %d", a->state, b->state), 0;
	if (a->n_damage != b->n_damage)
		return snprintf(why, len, "%zu vs %zu damaged", a->n_damage, b->n_damage), 0;
	for (size_t i = 0; i < a->n_damage; i++) {
		const ih_damage *x = &a->damage[i], *y = &b->damage[i];
		if (memcmp(x->sha1, y->sha1, 20) || x->reason != y->reason ||
		    strcmp(x->detail, y->detail) || x->n_refs != y->n_refs ||
		    x->n_images != y->n_images || x->is_metadata != y->is_metadata)
			return snprintf(why, len, "damage %zu: %s vs %s", i, x->detail, y->detail), 0;
		for (size_t k = 0; k < x->n_refs; k++)
			if (x->refs[k].image != y->refs[k].image || strcmp(x->refs[k].path, y->refs[k].path))
				return snprintf(why, len, "path %s vs %s", x->refs[k].path, y->refs[k].path), 0;
	}
	if (a->n_problems != b->n_problems)
		return snprintf(why, len, "%zu vs %zu problems", a->n_problems, b->n_problems), 0;
	for (size_t i = 0; i < a->n_problems; i++)
		if (strcmp(a->problems[i].message, b->problems[i].message) ||
		    a->problems[i].severity != b->problems[i].severity)
			return snprintf(why, len, "problem %s vs %s", a->problems[i].message,
					b->problems[i].message), 0;
	return 1;
}

/* The files `7z t` says are damaged, as "/path" lines sorted, vs ours. */
static int sevenzip_agrees(const char *name, const ih_report *r)
{
	char p[600], cmd[1400], line[1024];
	char mine[8192] = "", theirs[8192] = "";
	wpath(p, sizeof p, name);
	snprintf(cmd, sizeof cmd, "7z t '%s' 2>&1 | sed -n 's/^ERROR: Data Error : //p' | sort", p);
	FILE *f = popen(cmd, "r");
	while (f && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		size_t n = strlen(theirs);
		snprintf(theirs + n, sizeof theirs - n, "/%s\n", line);
	}
	if (f)
		pclose(f);
	/* ours: every path of every damaged blob, sorted */
	char *v[256];
	size_t nv = 0;
	for (size_t i = 0; r && i < r->n_damage; i++)
		for (size_t k = 0; k < r->damage[i].n_refs && nv < 256; k++)
			v[nv++] = r->damage[i].refs[k].path;
	for (size_t i = 1; i < nv; i++)
		for (size_t k = i; k > 0 && strcmp(v[k - 1], v[k]) > 0; k--) {
			char *t = v[k];
			v[k] = v[k - 1];
			v[k - 1] = t;
		}
	for (size_t i = 0; i < nv; i++) {
		size_t n = strlen(mine);
		snprintf(mine + n, sizeof mine - n, "%s\n", v[i]);
	}
	if (strcmp(mine, theirs))
		fprintf(stderr, "  7z names:\n%s  we name:\n%s", theirs, mine);
	return !strcmp(mine, theirs);
}

static uint64_t file_size(const char *name)
{
	char p[600];
	struct stat st;
	wpath(p, sizeof p, name);
	return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static int header_of(const char *name, struct wim_header *h)
{
	char p[600], why[128];
	uint8_t buf[WIM_HEADER_SIZE];
	wpath(p, sizeof p, name);
	FILE *f = fopen(p, "rb");
	int ok = f && fread(buf, 1, sizeof buf, f) == sizeof buf &&
		 wimfmt_parse_header(buf, sizeof buf, h, why, sizeof why) == 0;
	if (f)
		fclose(f);
	return ok ? 0 : -1;
}

/* Chosen places to damage: file data, a chunk table, the metadata, the
 * blob table, the XML, the integrity table; then pseudo-random ones. */
static size_t places(const char *name, uint64_t *off, size_t max)
{
	char p[600], f[600];
	struct wim_blob_entry e;
	struct wim_header h;
	size_t n = 0;
	uint64_t size = file_size(name);
	wpath(p, sizeof p, name);
	snprintf(f, sizeof f, "%s/tree1/bin/file20.dat", wd);
	if (twim_entry(p, f, &e) == 0 && !(e.res.flags & RESHDR_FLAG_SOLID)) {
		off[n++] = e.res.offset + e.res.stored_size / 2;   /* data */
		if (e.res.flags & RESHDR_FLAG_COMPRESSED)
			off[n++] = e.res.offset + 1;                /* chunk table */
	}
	if (twim_entry(p, NULL, &e) == 0)
		off[n++] = e.res.offset + e.res.stored_size / 2;    /* metadata */
	if (header_of(name, &h) == 0) {
		off[n++] = h.blob_table.offset + 20;                /* an entry's offset field */
		off[n++] = h.xml.offset + h.xml.stored_size / 2;
		if (h.integrity.offset)
			off[n++] = h.integrity.offset + h.integrity.stored_size - 5;
	}
	uint32_t x = 88172645u;
	while (n < max && size > 300) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		off[n++] = 208 + x % (size - 208);
	}
	return n;
}

/* For each place: copy the pristine image, give the copy the pristine's
 * records (a full scan of the pristine bytes), damage it, then compare a
 * fingerprint re-scan with a deep scan. */
static void agree_on(const char *pristine, int solid, ih_scan_kind want_kind)
{
	uint64_t off[14];
	size_t n = places(pristine, off, IH_ARRAY_LEN(off));
	char bad[64], why[300];
	int fingerprinted = 0, selective = 0;
	snprintf(bad, sizeof bad, "bad-%s", pristine);
	for (size_t i = 0; i < n; i++) {
		/* the record is the pristine file's, under the copy's name */
		tsh("rm -rf %s/fp && cp -p %s/%s %s/%s", wd, wd, pristine, wd, bad);
		ih_report *base = scan(bad, "fp", 1, 1, 0);
		CHECK(base && base->state == IH_HEALTHY && base->scan_kind == IH_SCAN_DEEP);
		ih_report_free(base);
		char p[600];
		wpath(p, sizeof p, bad);
		tflip(p, off[i], 1);
		ih_report *fp = scan(bad, "fp", 1, 0, 1);
		ih_report *deep = scan(bad, NULL, 1, 1, 1);
		int same = same_report(fp, deep, why, sizeof why);
		char msg[400];
		snprintf(msg, sizeof msg, "%s, byte %llu: %s", pristine, (unsigned long long)off[i], why);
		CHECK_MSG(same, msg);
		if (fp && deep) {
			CHECK(deep->scan_kind == IH_SCAN_DEEP);
			fingerprinted += fp->scan_kind == want_kind;
			selective += fp->scan_kind != IH_SCAN_DEEP &&
				     fp->bytes_deep_scanned < deep->bytes_deep_scanned / 2;
			/* what was altered never reads as healthy when a deep scan
			 * says otherwise (same_report), and 7z names the same files */
			if (i == 0 && !strcmp(pristine, "lzx.wim"))
				CHECK_MSG(sevenzip_agrees(bad, deep) && deep->n_damage == 1, pristine);
		}
		ih_report_free(fp);
		ih_report_free(deep);
	}
	/* most places leave the layout alone: the fingerprints were used, and
	 * only a small part was decompressed */
	CHECK_MSG(fingerprinted >= (int)n / 2, pristine);
	/* (a solid resource is read whole when any of it changed) */
	CHECK_MSG(solid || selective >= (int)n / 3, pristine);
}

static void test_agree(void)
{
	agree_on("lzx.wim", 0, IH_SCAN_FINGERPRINT);
	agree_on("xpress-int.wim", 0, IH_SCAN_FINGERPRINT);
	agree_on("two.wim", 0, IH_SCAN_FINGERPRINT);
	agree_on("solid.esd", 1, IH_SCAN_FINGERPRINT);
}

/* Without a record: the integrity table, when there is one. */
static void test_integrity_table(void)
{
	char p[600], why[300];
	struct wim_blob_entry e;
	char f[600];
	tsh("cp -p %s/xpress-int.wim %s/int.wim", wd, wd);
	wpath(p, sizeof p, "int.wim");
	snprintf(f, sizeof f, "%s/tree1/bin/file07.dat", wd);
	CHECK(twim_entry(p, f, &e) == 0);
	tflip(p, e.res.offset + e.res.stored_size / 2, 1);
	ih_report *it = scan("int.wim", NULL, 1, 0, 1);
	ih_report *deep = scan("int.wim", NULL, 1, 1, 1);
	CHECK(it && it->scan_kind == IH_SCAN_INTEGRITY && it->bytes_fingerprinted > 0);
	/* (wimlib's integrity chunks are 10 MiB: all of this small image is in
	 * the one that changed; bench/scale shows the savings) */
	CHECK_MSG(same_report(it, deep, why, sizeof why), why);
	CHECK(it && it->state == IH_REPAIRABLE && it->n_damage == 1);
	ih_report_free(it);
	ih_report_free(deep);
	/* no integrity table and no record: deep, and the report says why */
	ih_report *r = scan("lzx.wim", NULL, 1, 0, 1);
	CHECK(r && r->scan_kind == IH_SCAN_DEEP && r->scan_note);
	ih_report_free(r);
}

/* The integrity table covers the blob table but not what an entry says
 * once that changed: an entry's SHA-1 altered, in a chunk of its own, of a
 * blob whose bytes lie in chunks that still verify; then the header's
 * compression type, which no integrity chunk covers. */
static void test_integrity_entries(void)
{
	char p[600], why[300];
	struct wim_header h;
	wpath(p, sizeof p, "ib.wim");
	CHECK(tsh("cd %s && mkdir -p big && for f in a b c; do head -c 12582912 /dev/urandom > "
		  "big/$f.bin; seq 1 700000 > big/$f.txt; done && "
		  "wimlib-imagex capture big ib0.wim x --compress=XPRESS --check >/dev/null 2>&1 && "
		  "cp ib0.wim ib.wim", wd) == 0);
	CHECK(header_of("ib.wim", &h) == 0);
	uint64_t bt_chunk = (h.blob_table.offset - 208) / (10u << 20);
	int flipped = 0;
	FILE *f = fopen(p, "rb");
	for (uint64_t i = 0; f && !flipped && i < h.blob_table.orig_size / BLOB_ENTRY_SIZE; i++) {
		uint8_t e[BLOB_ENTRY_SIZE];
		struct wim_blob_entry be;
		if (fseek(f, (long)(h.blob_table.offset + i * BLOB_ENTRY_SIZE), SEEK_SET) ||
		    fread(e, 1, sizeof e, f) != sizeof e)
			break;
		wimfmt_get_blob_entry(e, &be);
		uint64_t last = (be.res.offset + be.res.stored_size - 1 - 208) / (10u << 20);
		if (!(be.res.flags & RESHDR_FLAG_METADATA) && be.res.offset >= 208 && last < bt_chunk) {
			fclose(f);
			f = NULL;
			tflip(p, h.blob_table.offset + i * BLOB_ENTRY_SIZE + 30, 1); /* its SHA-1 */
			flipped = 1;
		}
	}
	if (f)
		fclose(f);
	CHECK_MSG(flipped, "an entry whose blob lies in chunks of its own");
	for (int step = 0; step < 2; step++) {
		if (step == 1) /* on a pristine copy: XPRESS -> LZX in the header's flags */
			tsh("cp %s/ib0.wim %s && printf '\\002\\000\\004' | dd of=%s bs=1 seek=16 conv=notrunc "
			    "status=none", wd, p, p);
		ih_report *it = scan("ib.wim", NULL, 1, 0, 1);
		ih_report *deep = scan("ib.wim", NULL, 1, 1, 1);
		CHECK_MSG(same_report(it, deep, why, sizeof why), why);
		CHECK(it && it->state != IH_HEALTHY);
		ih_report_free(it);
		ih_report_free(deep);
	}
}

static void record_path(const char *sd, const char *suffix, char *out, size_t len)
{
	char cmd[800];
	snprintf(cmd, sizeof cmd, "ls %s/%s/*%s 2>/dev/null | head -n 1", wd, sd, suffix);
	FILE *f = popen(cmd, "r");
	out[0] = '\0';
	if (f && fgets(out, (int)len, f))
		out[strcspn(out, "\n")] = '\0';
	if (f)
		pclose(f);
}

static void alter_first_fp(const char *rec)
{
	FILE *f = fopen(rec, "r+b");
	char buf[4096];
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	buf[n] = '\0';
	char *p = strstr(buf, "\nfp ");
	if (f && p) {
		fseek(f, (long)(p + 4 - buf), SEEK_SET);
		fputc(p[4] == '0' ? '1' : '0', f);
	}
	CHECK(f && p);
	if (f)
		fclose(f);
}

/* A record altered anywhere (a fingerprint, a damage line, one bit) is
 * refused whole: the scan runs deep and finds the damage. */
static void test_altered_record(void)
{
	char p[600], rec[800], f[600];
	struct wim_blob_entry e;
	wpath(p, sizeof p, "alt.wim");
	snprintf(f, sizeof f, "%s/tree1/bin/file11.dat", wd);
	for (int how = 0; how < 3; how++) {
		tsh("rm -rf %s/alt && cp -p %s/lzx.wim %s", wd, wd, p);
		ih_report *r = scan("alt.wim", "alt", 1, 1, 0);
		ih_report_free(r);
		record_path("alt", ".fingerprints", rec, sizeof rec);
		CHECK(rec[0] != '\0');
		CHECK(twim_entry(p, f, &e) == 0);
		tflip(p, e.res.offset + e.res.stored_size / 2, 1);
		if (how == 0) /* a fingerprint altered, still hex: refused by the checksum */
			alter_first_fp(rec);
		else if (how == 1) /* a byte in the middle */
			tflip(rec, file_size("alt.wim") > 0 ? 200 : 0, 1);
		else /* the checksum line itself */
			/* (a different first digit: 0 becomes 1, anything else 0) */
			tsh("sed -i -e 's/^sha256 0/sha256 1/;t' -e 's/^sha256 ./sha256 0/' '%s'", rec);
		r = scan("alt.wim", "alt", 1, 0, 1);
		CHECK(r && r->scan_kind == IH_SCAN_DEEP && r->state == IH_REPAIRABLE);
		CHECK(r && r->scan_note && strstr(r->scan_note, "damaged"));
		ih_report_free(r);
	}
}

/* A file changed since its record never passes as healthy. */
static void test_changed_file(void)
{
	char p[600], f[600];
	struct wim_blob_entry e;
	wpath(p, sizeof p, "chg.wim");
	snprintf(f, sizeof f, "%s/tree1/bin/file05.dat", wd);
	for (int how = 0; how < 4; how++) {
		tsh("rm -rf %s/chg && cp -p %s/lzx.wim %s", wd, wd, p);
		ih_report *r = scan("chg.wim", "chg", 1, 1, 0);
		CHECK(r && r->state == IH_HEALTHY);
		ih_report_free(r);
		CHECK(twim_entry(p, f, &e) == 0);
		tsh("touch -r %s %s.ref", p, p);
		tflip(p, e.res.offset + e.res.stored_size / 2, 1);
		if (how == 0) /* bit rot: size and mtime as recorded */
			tsh("touch -r %s.ref %s", p, p);
		else if (how == 1) /* size */
			tsh("head -c 4096 /dev/zero >> %s && touch -r %s.ref %s", p, p, p);
		else if (how == 2) /* GUID */
			tflip(p, 0x18, 2);
		/* how == 3: mtime only */
		r = scan("chg.wim", "chg", 0, 0, 0); /* the quick check never reads data */
		if (how == 0)
			CHECK(r && r->scan_kind == IH_SCAN_QUICK_RECORD);
		ih_report_free(r);
		r = scan("chg.wim", "chg", 1, 0, 1);
		CHECK_MSG(r && r->state == IH_REPAIRABLE && r->n_damage == 1, how == 0 ? "rot"
						   : how == 1 ? "size" : how == 2 ? "guid" : "mtime");
		ih_report_free(r);
	}
}

/* The quick check: from the record without decoding while it vouches for
 * the blob table and the metadata; decoding again when they changed. */
static void test_quick(void)
{
	char p[600];
	struct wim_blob_entry e;
	char f[600], why[300];
	wpath(p, sizeof p, "q.wim");
	snprintf(f, sizeof f, "%s/tree1/docs/GPL-3", wd);
	tsh("rm -rf %s/q && cp -p %s/two.wim %s", wd, wd, p);
	CHECK(twim_entry(p, f, &e) == 0);
	tflip(p, e.res.offset + e.res.stored_size / 2, 1);
	ih_report *full = scan("q.wim", "q", 1, 1, 0);
	CHECK(full && full->state == IH_REPAIRABLE && full->n_damage == 1);
	ih_report *q = scan("q.wim", "q", 0, 0, 0);
	CHECK(q && q->scan_kind == IH_SCAN_QUICK_RECORD && q->from_record);
	/* the same damage with the same paths, in both images */
	CHECK(q && full && q->n_damage == 1 && full->n_damage == 1 &&
	      !memcmp(q->damage[0].sha1, full->damage[0].sha1, 20) &&
	      q->damage[0].n_refs == full->damage[0].n_refs && q->damage[0].n_images == 2);
	ih_report_free(q);
	/* the metadata rots (size and mtime kept): the quick check decodes it */
	tsh("touch -r %s %s.ref", p, p);
	CHECK(twim_entry(p, NULL, &e) == 0);
	tflip(p, e.res.offset + e.res.stored_size / 2, 1);
	tsh("touch -r %s.ref %s", p, p);
	q = scan("q.wim", "q", 0, 0, 0);
	CHECK(q && q->scan_kind == IH_SCAN_QUICK);
	int meta = 0;
	for (size_t i = 0; q && i < q->n_damage; i++)
		meta |= q->damage[i].is_metadata;
	CHECK_MSG(meta, "metadata damage found by the quick check");
	ih_report_free(q);
	/* and a re-scan finds exactly what a deep scan finds */
	ih_report *fp = scan("q.wim", "q", 1, 0, 1), *deep = scan("q.wim", NULL, 1, 1, 1);
	CHECK_MSG(same_report(fp, deep, why, sizeof why), why);
	CHECK(fp && fp->scan_kind == IH_SCAN_FINGERPRINT);
	ih_report_free(fp);
	ih_report_free(deep);
	ih_report_free(full);
}

/* A re-scan reads no tree while the records vouch for them all, and reads
 * them only when a blob the records do not know turns out damaged (for its
 * paths); each time exactly what a deep scan finds. */
static void test_rescan_trees(void)
{
	char p[600], f[600], why[300];
	struct wim_blob_entry e;
	wpath(p, sizeof p, "t.wim");
	snprintf(f, sizeof f, "%s/tree1/docs/GPL-3", wd);
	tsh("rm -rf %s/t && cp -p %s/two.wim %s", wd, wd, p);
	CHECK(twim_entry(p, f, &e) == 0);
	tflip(p, e.res.offset + e.res.stored_size / 2, 1);
	ih_report *full = scan("t.wim", "t", 1, 1, 0);
	CHECK(full && full->state == IH_REPAIRABLE && full->n_damage == 1 &&
	      full->damage[0].n_refs == 4); /* two paths in each of two images */
	unsigned before = atomic_load(&ih_test_tree_reads);
	ih_report *fp = scan("t.wim", "t", 1, 0, 1);
	CHECK(atomic_load(&ih_test_tree_reads) == before);
	CHECK(fp && fp->scan_kind == IH_SCAN_FINGERPRINT && fp->bytes_deep_scanned == 0);
	CHECK_MSG(same_report(fp, full, why, sizeof why), why);
	ih_report_free(fp);
	/* new damage elsewhere: its paths need the trees */
	snprintf(f, sizeof f, "%s/tree1/bin/file20.dat", wd);
	CHECK(twim_entry(p, f, &e) == 0);
	tflip(p, e.res.offset + e.res.stored_size / 2, 1);
	before = atomic_load(&ih_test_tree_reads);
	fp = scan("t.wim", "t", 1, 0, 1);
	CHECK(atomic_load(&ih_test_tree_reads) > before);
	ih_report *deep = scan("t.wim", NULL, 1, 1, 1);
	CHECK(fp && fp->scan_kind == IH_SCAN_FINGERPRINT && fp->n_damage == 2);
	CHECK_MSG(same_report(fp, deep, why, sizeof why), why);
	ih_report_free(fp);
	ih_report_free(deep);
	ih_report_free(full);
}

/* A file that is mostly a hole nothing names: no fingerprints (hashing the
 * hole would cost more than the deep scan reads), and no time lost on it. */
static void test_sparse(void)
{
	char rec[800];
	tsh("rm -rf %s/sp && cp %s/lzx.wim %s/sparse.wim && truncate -s +4G %s/sparse.wim", wd, wd,
	    wd, wd);
	double t0 = ih_now();
	ih_report *r = scan("sparse.wim", "sp", 1, 0, 0);
	CHECK(r && r->scan_kind == IH_SCAN_DEEP && r->scan_note && r->bytes_fingerprinted == 0);
	CHECK(ih_now() - t0 < 20);
	ih_report_free(r);
	record_path("sp", ".fingerprints", rec, sizeof rec);
	CHECK(rec[0] == '\0');
	tsh("rm -f %s/sparse.wim", wd);
}

void test_fingerprint(void)
{
	snprintf(wd, sizeof wd, "/tmp/ih-fp-XXXXXX");
	if (!mkdtemp(wd)) {
		CHECK_MSG(0, "mkdtemp");
		return;
	}
	make_tree("tree1", 0);
	make_tree("tree2", 1);
	CHECK(tsh("cd %s && wimlib-imagex capture tree1 lzx.wim a --compress=LZX >/dev/null 2>&1 && "
		  "wimlib-imagex capture tree1 xpress-int.wim a --compress=XPRESS --check >/dev/null 2>&1 && "
		  "wimlib-imagex capture tree1 solid.esd a --solid >/dev/null 2>&1 && "
		  "cp lzx.wim two.wim && wimlib-imagex append tree2 two.wim b >/dev/null 2>&1",
		  wd) == 0);
	ih_test_fp_chunk = 64 << 10; /* many chunks in a small image */
	test_agree();
	test_integrity_table();
	test_integrity_entries();
	test_altered_record();
	test_changed_file();
	test_quick();
	test_rescan_trees();
	test_sparse();
	ih_test_fp_chunk = 0;
	tsh("rm -rf %s", wd);
}
