/* test_pipeline.c - the restore's stages and their defects: a split set
 * whose commit fails after part 1, candidates rejected after being
 * written, sources that lie about sizes or point out of their root, FIFOs
 * and huge sparse files in directory sources, damaged size fields, and test
 * hooks that concurrent restores do not share. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "imagehealth.h"
#include "testutil.h"
#include "util.h"
#include "wimfmt.h"
#include "wimtest.h"

static char wd[256];
static const char *files[] = {"a/GPL-3", "a/b/GPL-2", "c/Apache-2.0", "c/bin.dat"};

static void setup(void)
{
	snprintf(wd, sizeof wd, "%s/ihpipe.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(wd))
		abort();
	tsh("mkdir -p %s/tree/a/b %s/tree/c %s/state && cp /usr/share/common-licenses/GPL-3 %s/tree/a/ && "
	    "cp /usr/share/common-licenses/GPL-2 %s/tree/a/b/ && cp /usr/share/common-licenses/Apache-2.0 "
	    "%s/tree/c/ && head -c 300000 /usr/bin/wimlib-imagex > %s/tree/c/bin.dat && "
	    "wimlib-imagex capture %s/tree %s/lzx.wim img --compress=LZX >/dev/null 2>&1",
	    wd, wd, wd, wd, wd, wd, wd, wd, wd);
}

static char *at(const char *name)
{
	static char buf[16][600];
	static int k;
	k = (k + 1) % 16;
	snprintf(buf[k], sizeof buf[k], "%s/%s", wd, name);
	return buf[k];
}

static int damage(const char *wim, const char *file)
{
	char f[600];
	snprintf(f, sizeof f, "%s/tree/%s", wd, file);
	return tdamage(at(wim), f);
}

static int verify(const char *wim)
{
	return tsh("wimlib-imagex verify %s >/dev/null 2>&1", at(wim));
}

static ih_restore_report *restore_with(const char *wim, const char **src, size_t n, int *rc,
				       ih_error *err)
{
	ih_session *s;
	ih_restore_report *r = NULL;
	*rc = ih_session_open(at(wim), &(ih_open_options){.state_dir = at("state")}, &s, err);
	if (*rc)
		return NULL;
	*rc = ih_restore(s, &(ih_restore_options){.sources = src, .n_sources = n, .no_policy = 1},
			 &r, err);
	ih_session_close(s);
	return r;
}

/* The end of the last table the header names: where a well-formed part ends. */
static uint64_t tail_end(const char *path)
{
	uint8_t hb[WIM_HEADER_SIZE];
	struct wim_header h;
	char why[64];
	uint64_t end = 0;
	FILE *f = fopen(path, "rb");
	if (!f || fread(hb, 1, sizeof hb, f) != sizeof hb) {
		if (f)
			fclose(f);
		return 0;
	}
	fclose(f);
	if (wimfmt_parse_header(hb, sizeof hb, &h, why, sizeof why))
		return 0;
	const struct wim_reshdr *rs[] = {&h.blob_table, &h.xml, &h.integrity, &h.boot_metadata};
	for (size_t i = 0; i < IH_ARRAY_LEN(rs); i++)
		if (rs[i]->offset + rs[i]->stored_size > end)
			end = rs[i]->offset + rs[i]->stored_size;
	return end;
}

static long long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) ? -1 : (long long)st.st_size;
}

/* Part 2's commit fails after part 1 committed: part 2 is rolled back to
 * exactly what it was, part 1 keeps its repair, the error names part 1,
 * and a second restore finishes the job. */
static void test_split_commit_failure(void)
{
	const char *in1 = NULL, *in2 = NULL;
	ih_error err = {0};
	int rc;

	CHECK(tsh("wimlib-imagex split %s %s 0.02 >/dev/null 2>&1", at("lzx.wim"), at("sp.swm")) == 0);
	CHECK(tsh("test -f %s", at("sp2.swm")) == 0);
	for (size_t i = 0; i < IH_ARRAY_LEN(files); i++) {
		if (!in1 && damage("sp.swm", files[i]) == 0)
			in1 = files[i];
		else if (!in2 && damage("sp2.swm", files[i]) == 0)
			in2 = files[i];
	}
	CHECK_MSG(in1 && in2, "a file in part 1 and one in part 2");
	tsh("cp %s %s.before && cp %s %s.before", at("sp.swm"), at("sp.swm"), at("sp2.swm"),
	    at("sp2.swm"));
	setenv("IMAGEHEALTH_CRASH_AT", "fail:blob_table:2", 1);
	ih_restore_report *r = restore_with("sp.swm", (const char *[]){at("lzx.wim")}, 1, &rc, &err);
	unsetenv("IMAGEHEALTH_CRASH_AT");
	CHECK(r == NULL && rc == IH_ERR_IO);
	CHECK_MSG(strstr(err.message, "part 1 had been committed") != NULL, err.message);
	/* part 2: byte-identical; part 1: repaired (differs, and its header
	 * has no write-in-progress flag) */
	CHECK(tsh("cmp -s %s %s.before", at("sp2.swm"), at("sp2.swm")) == 0);
	CHECK(tsh("cmp -s %s %s.before", at("sp.swm"), at("sp.swm")) != 0);
	CHECK(file_size(at("sp.swm")) == (long long)tail_end(at("sp.swm")));
	/* what is left is part 2's damage alone; then it is repaired too */
	ih_session *s;
	ih_report *c = NULL;
	CHECK(ih_session_open(at("sp.swm"), &(ih_open_options){.state_dir = at("state")}, &s, &err) == IH_OK);
	CHECK(ih_check(s, &(ih_check_options){.scan = 1, .no_record = 1}, &c, &err) == IH_OK);
	CHECK(c && c->state == IH_REPAIRABLE && c->n_damage == 1 && c->damage[0].part == 2);
	ih_report_free(c);
	ih_session_close(s);
	r = restore_with("sp.swm", (const char *[]){at("lzx.wim")}, 1, &rc, &err);
	CHECK_MSG(rc == IH_OK && r && r->state == IH_HEALTHY && r->n_repaired == 1, err.message);
	ih_restore_report_free(r);
	CHECK(tsh("wimlib-imagex verify %s --ref='%s/sp*.swm' >/dev/null 2>&1", at("sp.swm"), wd) == 0);
}

/* A candidate rejected after it was written (right size, wrong bytes,
 * compressing worse than the real one) leaves nothing after the new tail;
 * a restore that commits nothing reports nothing written and leaves the
 * file byte-identical. */
static void test_rejected_candidate(void)
{
	ih_error err = {0};
	int rc;
	tsh("cp %s %s && rm -rf %s && mkdir -p %s/a && head -c $(stat -c %%s %s/tree/a/GPL-3) "
	    "/dev/urandom > %s/a/GPL-3",
	    at("lzx.wim"), at("rj.wim"), at("junk"), at("junk"), wd, at("junk"));
	CHECK(damage("rj.wim", "a/GPL-3") == 0);
	tsh("cp %s %s.before", at("rj.wim"), at("rj.wim"));
	/* only the liar: nothing committed */
	ih_restore_report *r = restore_with("rj.wim", (const char *[]){at("junk")}, 1, &rc, &err);
	CHECK_MSG(rc == IH_OK && r, err.message);
	CHECK(r && r->state == IH_REPAIRABLE && r->n_repaired == 0 && r->bytes_written == 0 &&
	      r->n_unrepaired == 1 && r->unrepaired[0].code == IH_ERR_SOURCE_MISSING &&
	      r->sources[0].blobs_rejected == 1);
	ih_restore_report_free(r);
	CHECK(tsh("cmp -s %s %s.before", at("rj.wim"), at("rj.wim")) == 0);
	/* the liar first, then the real one */
	r = restore_with("rj.wim", (const char *[]){at("junk"), at("lzx.wim")}, 2, &rc, &err);
	CHECK_MSG(rc == IH_OK && r && r->state == IH_HEALTHY && r->bytes_written > 0, err.message);
	CHECK(r && r->sources[0].blobs_rejected == 1 && r->sources[1].blobs_used == 1);
	ih_restore_report_free(r);
	CHECK_EQ_INT(file_size(at("rj.wim")), tail_end(at("rj.wim")));
	CHECK(verify("rj.wim") == 0);
}

/* A directory source never leaves its root: a symlinked file or directory
 * pointing outside holds the right bytes, and is not used. */
static void test_dir_source_links(void)
{
	ih_error err = {0};
	int rc;
	tsh("cp %s %s && rm -rf %s %s && mkdir -p %s/a/b %s/c %s/a && cp %s/tree/a/GPL-3 %s/a/ && "
	    "ln -s %s/a/GPL-3 %s/a/GPL-3 && ln -s %s/tree/c %s/c2 && rmdir %s/c && mv %s/c2 %s/c",
	    at("lzx.wim"), at("ln.wim"), at("lnsrc"), at("outside"), at("lnsrc"), at("lnsrc"),
	    at("outside"), wd, at("outside"), at("outside"), at("lnsrc"), wd, at("lnsrc"),
	    at("lnsrc"), at("lnsrc"), at("lnsrc"));
	CHECK(damage("ln.wim", "a/GPL-3") == 0);
	CHECK(damage("ln.wim", "c/Apache-2.0") == 0);
	ih_restore_report *r = restore_with("ln.wim", (const char *[]){at("lnsrc")}, 1, &rc, &err);
	CHECK_MSG(rc == IH_OK && r, err.message);
	CHECK(r && r->n_repaired == 0 && r->n_unrepaired == 2 && r->sources[0].bytes_read == 0);
	ih_restore_report_free(r);
	/* a real copy in the root is used, whatever the case of its name */
	tsh("rm -f %s/a/GPL-3 && cp %s/tree/a/GPL-3 %s/a/gpl-3", at("lnsrc"), wd, at("lnsrc"));
	r = restore_with("ln.wim", (const char *[]){at("lnsrc")}, 1, &rc, &err);
	CHECK(r && rc == IH_OK && r->n_repaired == 1 && r->n_unrepaired == 1);
	ih_restore_report_free(r);
}

/* A FIFO where a directory source's file should be: the restore goes on
 * (run in a child with a deadline, so a regression fails, not hangs). */
static void test_dir_source_fifo(void)
{
	tsh("cp %s %s && rm -rf %s && mkdir -p %s/a && mkfifo %s/a/GPL-3", at("lzx.wim"),
	    at("ff.wim"), at("ffsrc"), at("ffsrc"), at("ffsrc"));
	CHECK(damage("ff.wim", "a/GPL-3") == 0);
	pid_t pid = fork();
	if (pid == 0) {
		alarm(20);
		ih_error err;
		int rc;
		ih_restore_report *r = restore_with("ff.wim", (const char *[]){at("ffsrc"), at("lzx.wim")},
						    2, &rc, &err);
		_exit(rc == IH_OK && r && r->state == IH_HEALTHY && r->sources[1].blobs_used == 1 ? 0 : 1);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "restore with a FIFO in a directory source");
}

/* A blob whose entry lost its size field (1 TiB claimed) is matched by
 * SHA-1 and takes the size its source proves. */
static void test_damaged_size_field(void)
{
	struct wim_blob_entry e;
	char f[600];
	ih_error err = {0};
	int rc;
	tsh("cp %s %s", at("lzx.wim"), at("sz.wim"));
	snprintf(f, sizeof f, "%s/tree/a/b/GPL-2", wd);
	CHECK(twim_entry(at("sz.wim"), f, &e) == 0);
	/* patch the entry's original size in place */
	uint8_t hb[WIM_HEADER_SIZE], raw[BLOB_ENTRY_SIZE];
	struct wim_header h;
	char why[64];
	int fd = open(at("sz.wim"), O_RDWR);
	CHECK(fd >= 0 && pread(fd, hb, sizeof hb, 0) == (ssize_t)sizeof hb &&
	      wimfmt_parse_header(hb, sizeof hb, &h, why, sizeof why) == 0);
	for (uint64_t i = 0; fd >= 0 && i < h.blob_table.orig_size / BLOB_ENTRY_SIZE; i++) {
		struct wim_blob_entry x;
		uint64_t off = h.blob_table.offset + i * BLOB_ENTRY_SIZE;
		if (pread(fd, raw, sizeof raw, (off_t)off) != (ssize_t)sizeof raw)
			break;
		wimfmt_get_blob_entry(raw, &x);
		if (memcmp(x.sha1, e.sha1, 20))
			continue;
		x.res.orig_size = 1ULL << 40;
		wimfmt_put_blob_entry(raw, &x);
		CHECK(pwrite(fd, raw, sizeof raw, (off_t)off) == (ssize_t)sizeof raw);
	}
	if (fd >= 0)
		close(fd);
	CHECK(verify("sz.wim") != 0);
	ih_restore_report *r = restore_with("sz.wim", (const char *[]){at("lzx.wim")}, 1, &rc, &err);
	CHECK_MSG(rc == IH_OK && r && r->state == IH_HEALTHY && r->n_repaired == 1, err.message);
	CHECK(r && r->n_repaired == 1 && r->repaired[0].size == (uint64_t)file_size(f));
	ih_restore_report_free(r);
	CHECK(verify("sz.wim") == 0);
}

/* A blob of unknown size (its entry's SHA-1 was damaged, so the files miss
 * it) and a huge sparse file at its path in a directory source: hashed,
 * rejected, never written (the process may write 64 MiB at most), and the
 * next source supplies it. */
static void test_unknown_size_huge_candidate(void)
{
	struct wim_blob_entry e;
	char f[600];
	tsh("cp %s %s && rm -rf %s && mkdir -p %s/a && truncate -s 300M %s/a/GPL-3", at("lzx.wim"),
	    at("us.wim"), at("ussrc"), at("ussrc"), at("ussrc"));
	snprintf(f, sizeof f, "%s/tree/a/GPL-3", wd);
	CHECK(twim_entry(at("us.wim"), f, &e) == 0);
	/* the entry's SHA-1 is 30 bytes into the entry: find the entry by
	 * searching the file for the SHA-1 and flip its last byte */
	CHECK(tsh("python3 -c \"import sys;d=open('%s','rb').read();h=bytes.fromhex('%s');"
		  "i=d.rfind(h);sys.exit(i<0)\"", at("us.wim"), "00") == 0 || 1);
	{
		FILE *fp = fopen(at("us.wim"), "rb");
		uint8_t *buf = NULL;
		long n = 0, hit = -1;
		if (fp && !fseek(fp, 0, SEEK_END) && (n = ftell(fp)) > 0 && !fseek(fp, 0, SEEK_SET) &&
		    (buf = malloc((size_t)n)) && fread(buf, 1, (size_t)n, fp) == (size_t)n)
			for (long i = n - 20; i >= 0 && hit < 0; i--)
				if (!memcmp(buf + i, e.sha1, 20))
					hit = i;
		if (fp)
			fclose(fp);
		free(buf);
		CHECK(hit > 0);
		if (hit > 0)
			tflip(at("us.wim"), (uint64_t)hit + 19, 1);
	}
	pid_t pid = fork();
	if (pid == 0) {
		struct rlimit rl = {64u << 20, 64u << 20};
		setrlimit(RLIMIT_FSIZE, &rl);
		alarm(60);
		ih_error err;
		int rc;
		ih_restore_report *r = restore_with("us.wim", (const char *[]){at("ussrc"), at("lzx.wim")},
						    2, &rc, &err);
		if (rc)
			fprintf(stderr, "restore: %s\n", err.message);
		_exit(rc == IH_OK && r && r->state == IH_HEALTHY && r->sources[0].blobs_rejected == 1 &&
			      r->sources[1].blobs_used == 1 ? 0 : 1);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a huge candidate of unknown size");
	CHECK(verify("us.wim") == 0);
}

/* The bytes:N crash hook counts per writer: two restores at once, each
 * writing less than N, do not add up to a crash. */
static void test_hooks_per_writer(void)
{
	ih_error err = {0};
	int rc;
	tsh("cp %s %s && cp %s %s && cp %s %s", at("lzx.wim"), at("h1.wim"), at("lzx.wim"),
	    at("h2.wim"), at("lzx.wim"), at("h0.wim"));
	CHECK(damage("h0.wim", "c/bin.dat") == 0 && damage("h1.wim", "c/bin.dat") == 0 &&
	      damage("h2.wim", "c/bin.dat") == 0);
	ih_restore_report *r = restore_with("h0.wim", (const char *[]){at("lzx.wim")}, 1, &rc, &err);
	uint64_t one = r ? r->bytes_written : 0;
	ih_restore_report_free(r);
	CHECK(one > 0);
	pid_t pid = fork();
	if (pid == 0) {
		char v[64];
		snprintf(v, sizeof v, "bytes:%llu", (unsigned long long)(one + one / 2));
		setenv("IMAGEHEALTH_CRASH_AT", v, 1);
		alarm(60);
		ih_session *s[2];
		ih_job *j[2];
		const char *src[] = {at("lzx.wim")};
		for (int k = 0; k < 2; k++)
			if (ih_session_open(at(k ? "h2.wim" : "h1.wim"),
					    &(ih_open_options){.state_dir = at("state")}, &s[k], &err) ||
			    ih_restore_start(s[k], &(ih_restore_options){.sources = src, .n_sources = 1,
									 .no_policy = 1},
					     &j[k], &err))
				_exit(2);
		int ok = 1;
		for (int k = 0; k < 2; k++) {
			ih_restore_report *rr = NULL;
			ih_job_wait(j[k], -1);
			while (!ih_job_wait(j[k], -1))
				;
			ok &= ih_job_restore_result(j[k], &rr, &err) == IH_OK && rr->state == IH_HEALTHY;
			ih_restore_report_free(rr);
			ih_job_free(j[k]);
			ih_session_close(s[k]);
		}
		_exit(ok ? 0 : 1);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "two restores under one bytes:N hook");
}

void test_pipeline(void)
{
	setup();
	test_split_commit_failure();
	test_rejected_candidate();
	test_dir_source_links();
	test_dir_source_fifo();
	test_damaged_size_field();
	test_unknown_size_huge_candidate();
	test_hooks_per_writer();
	tsh("rm -rf %s", wd);
}
