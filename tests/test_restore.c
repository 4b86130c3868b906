/* test_restore.c - the restore core: repair from WIM and directory sources
 * in every compression, lying sources, partial repair, cancel, crash
 * points, and the file staying an image wimlib verifies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>
#include "imagehealth.h"
#include "testutil.h"
#include "util.h"
#include "wimfmt.h"
#include "wimtest.h"

static char wd[256];

static void make_tree(void)
{
	tsh("mkdir -p %s/tree/a/b %s/tree/c && cp /usr/share/common-licenses/GPL-3 %s/tree/a/ && "
	   "cp /usr/share/common-licenses/GPL-2 %s/tree/a/b/ && cp /usr/share/common-licenses/Apache-2.0 "
	   "%s/tree/c/ && cp %s/tree/a/GPL-3 %s/tree/c/gpl3-copy && head -c 300000 /usr/bin/wimlib-imagex "
	   "> %s/tree/c/bin.dat",
	   wd, wd, wd, wd, wd, wd, wd, wd);
}

/* Flips bytes in the middle of the resource holding a tree file. */
static int damage(const char *wim, const char *file)
{
	char w[600], f[600];
	snprintf(w, sizeof w, "%s/%s", wd, wim);
	snprintf(f, sizeof f, "%s/tree/%s", wd, file);
	return tdamage(w, f);
}

static ih_restore_report *restore(const char *wim, const char **sources, size_t n, int *rc_out,
			  ih_error *err)
{
	char p[600], sd[300];
	ih_session *s;
	ih_restore_report *r = NULL;
	snprintf(p, sizeof p, "%s/%s", wd, wim);
	snprintf(sd, sizeof sd, "%s/state", wd);
	ih_open_options o = {.state_dir = sd};
	*rc_out = ih_session_open(p, &o, &s, err);
	if (*rc_out)
		return NULL;
	ih_restore_options ro = {.sources = sources, .n_sources = n, .no_policy = 1};
	*rc_out = ih_restore(s, &ro, &r, err);
	ih_session_close(s);
	return r;
}

static int verify(const char *wim)
{
	return tsh("wimlib-imagex verify %s/%s >/dev/null 2>&1", wd, wim);
}

static void test_kinds(void)
{
	static const struct { const char *name, *flags; } kinds[] = {
		{"none.wim", "--compress=none"}, {"xpress.wim", "--compress=XPRESS"},
		{"lzx.wim", "--compress=LZX"},   {"lzms.wim", "--compress=LZMS"},
		{"solid.esd", "--solid"},       {"check.wim", "--compress=LZX --check"},
	};
	char pristine[600], dirsrc[600];
	snprintf(dirsrc, sizeof dirsrc, "%s/tree", wd);
	for (size_t k = 0; k < IH_ARRAY_LEN(kinds); k++) {
		ih_error err = {0};
		int rc;
		char bad[64];
		snprintf(bad, sizeof bad, "bad-%s", kinds[k].name);
		CHECK(tsh("wimlib-imagex capture %s/tree %s/%s img %s >/dev/null 2>&1", wd, wd,
			 kinds[k].name, kinds[k].flags) == 0);
		tsh("cp %s/%s %s/%s", wd, kinds[k].name, wd, bad);
		CHECK(damage(bad, "a/GPL-3") == 0);
		CHECK(verify(bad) != 0);
		/* from the pristine WIM; a directory source for the even ones */
		snprintf(pristine, sizeof pristine, "%s/%s", wd, kinds[k].name);
		const char *src[] = {k % 2 ? pristine : dirsrc};
		ih_restore_report *r = restore(bad, src, 1, &rc, &err);
		CHECK_MSG(rc == IH_OK, err.message);
		if (r) {
			if (r->state != IH_HEALTHY || r->n_repaired < 1)
				fprintf(stderr, "  %s: state %d repaired %zu left %zu\n", kinds[k].name,
					r->state, r->n_repaired, r->n_unrepaired);
			CHECK(r->state == IH_HEALTHY && r->n_repaired >= 1 && r->n_unrepaired == 0);
			CHECK(r->bytes_written > 0);
		}
		ih_restore_report_free(r);
		CHECK_MSG(verify(bad) == 0, kinds[k].name);
		tsh("rm -rf %s/x && mkdir %s/x", wd, wd);
		CHECK_MSG(tsh("wimlib-imagex apply %s/%s 1 %s/x >/dev/null 2>&1 && diff -r %s/tree %s/x >/dev/null",
			     wd, bad, wd, wd, wd) == 0, kinds[k].name);
	}
}

static void test_lying_and_partial(void)
{
	ih_error err;
	int rc;
	char liar[600], good[600];
	/* a directory whose file has the right name and the wrong bytes */
	tsh("rm -rf %s/liar && cp -r %s/tree %s/liar && echo changed >> %s/liar/a/GPL-3 && echo x >> %s/liar/c/gpl3-copy", wd, wd, wd, wd, wd);
	tsh("cp %s/lzx.wim %s/p.wim", wd, wd);
	CHECK(damage("p.wim", "a/GPL-3") == 0);
	CHECK(damage("p.wim", "c/bin.dat") == 0);
	snprintf(liar, sizeof liar, "%s/liar", wd);
	/* partial: the liar lacks bin.dat's right bytes too?  no: it has it */
	tsh("rm %s/liar/c/bin.dat", wd);
	const char *src1[] = {liar};
	ih_restore_report *r = restore("p.wim", src1, 1, &rc, &err);
	CHECK_MSG(rc == IH_OK, err.message);
	CHECK(r && r->state == IH_REPAIRABLE && r->n_repaired == 0 && r->n_unrepaired == 2);
	CHECK(r && r->n_sources == 1 && r->sources[0].blobs_rejected >= 1);
	ih_restore_report_free(r);
	CHECK(verify("p.wim") != 0);
	/* liar first, then the good one: the good one wins */
	snprintf(good, sizeof good, "wim:%s/lzx.wim:1", wd);
	const char *src2[] = {liar, good};
	r = restore("p.wim", src2, 2, &rc, &err);
	CHECK_MSG(rc == IH_OK, err.message);
	CHECK(r && r->state == IH_HEALTHY && r->n_repaired == 2);
	for (size_t i = 0; r && i < r->n_repaired; i++)
		CHECK(r->repaired[i].source == 1);
	ih_restore_report_free(r);
	CHECK(verify("p.wim") == 0);
	/* a quick check knows at once */
	char p[600], sd[300];
	ih_session *s;
	ih_report *q = NULL;
	snprintf(p, sizeof p, "%s/p.wim", wd);
	snprintf(sd, sizeof sd, "%s/state", wd);
	CHECK(ih_session_open(p, &(ih_open_options){.state_dir = sd}, &s, &err) == IH_OK);
	CHECK(ih_check(s, &(ih_check_options){0}, &q, &err) == IH_OK);
	CHECK(q && q->state == IH_HEALTHY && q->from_record);
	ih_report_free(q);
	ih_session_close(s);
}

static void test_cancel_and_disk_full(void)
{
	ih_error err;
	int rc;
	char good[600];
	struct stat a, b;
	tsh("cp %s/lzx.wim %s/c.wim", wd, wd);
	CHECK(damage("c.wim", "a/GPL-3") == 0);
	tsh("cp %s/c.wim %s/c.orig", wd, wd);
	snprintf(good, sizeof good, "%s/lzx.wim", wd);
	/* cancelled while it fetches (every file damaged, a directory source
	 * compressed anew: long enough): cancelled, byte-identical */
	{
		char p[600], sd[300], src[600];
		ih_session *s;
		ih_job *j;
		CHECK(tbig_image(wd) == 0);
		tsh("cp %s/big.wim %s/cb.wim", wd, wd);
		snprintf(p, sizeof p, "%s/cb.wim", wd);
		for (int i = 0; i < 8; i++) {
			char f[600];
			snprintf(f, sizeof f, "%s/big/f%d.txt", wd, i);
			CHECK(tdamage(p, f) == 0);
		}
		tsh("cp %s/cb.wim %s/cb.orig", wd, wd);
		snprintf(sd, sizeof sd, "%s/state", wd);
		snprintf(src, sizeof src, "%s/big", wd);
		CHECK(ih_session_open(p, &(ih_open_options){.state_dir = sd}, &s, &err) == IH_OK);
		const char *srcs[] = {src};
		CHECK(ih_restore_start(s, &(ih_restore_options){.sources = srcs, .n_sources = 1,
								.no_policy = 1},
				       &j, &err) == IH_OK);
		CHECK(tcancel_running(j, IH_PHASE_FETCH, NULL) == 1);
		ih_restore_report *rr = NULL;
		CHECK(ih_job_restore_result(j, &rr, &err) == IH_ERR_CANCELLED);
		ih_restore_report_free(rr);
		ih_job_free(j);
		ih_session_close(s);
		CHECK(tsh("cmp -s %s/cb.wim %s/cb.orig", wd, wd) == 0);
	}
	/* disk full (a file size limit): clear error, old image intact */
	stat(good, &a);
	pid_t pid = fork();
	if (pid == 0) {
		struct rlimit rl;
		stat("/dev/null", &b);
		char p[600];
		snprintf(p, sizeof p, "%s/c.wim", wd);
		struct stat st;
		stat(p, &st);
		rl.rlim_cur = rl.rlim_max = (rlim_t)st.st_size + 100;
		setrlimit(RLIMIT_FSIZE, &rl);
		const char *src[] = {good};
		ih_restore_report *r = restore("c.wim", src, 1, &rc, &err);
		ih_restore_report_free(r);
		_exit(rc == IH_ERR_DISK_FULL ? 0 : 1);
	}
	int status;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(tsh("cmp -s %s/c.wim %s/c.orig", wd, wd) == 0);
}

static void test_rebuild(void)
{
	static const char *kinds[] = {"lzx.wim", "solid.esd", "check.wim"};
	char good[600], bad[64], p[600], sd[300];
	for (size_t k = 0; k < IH_ARRAY_LEN(kinds); k++) {
		ih_session *s;
		ih_error err;
		ih_restore_report *r = NULL;
		snprintf(bad, sizeof bad, "rb-%s", kinds[k]);
		tsh("cp %s/%s %s/%s", wd, kinds[k], wd, bad);
		CHECK(damage(bad, "c/Apache-2.0") == 0);
		CHECK(damage(bad, "a/b/GPL-2") == 0);
		snprintf(good, sizeof good, "%s/%s", wd, kinds[k]);
		snprintf(p, sizeof p, "%s/%s", wd, bad);
		snprintf(sd, sizeof sd, "%s/state", wd);
		CHECK(ih_session_open(p, &(ih_open_options){.state_dir = sd}, &s, &err) == IH_OK);
		const char *src[] = {good};
		int rc = ih_restore(s, &(ih_restore_options){.sources = src, .n_sources = 1,
							     .no_policy = 1, .rebuild = 1},
				    &r, &err);
		CHECK_MSG(rc == IH_OK, err.message);
		CHECK_MSG(r && r->rebuilt && r->state == IH_HEALTHY && r->n_repaired >= 2, kinds[k]);
		ih_restore_report_free(r);
		/* the session follows the new file */
		ih_report *c = NULL;
		CHECK(ih_check(s, &(ih_check_options){.scan = 1}, &c, &err) == IH_OK);
		CHECK(c && c->state == IH_HEALTHY);
		ih_report_free(c);
		ih_session_close(s);
		CHECK_MSG(verify(bad) == 0, kinds[k]);
		tsh("rm -rf %s/x && mkdir %s/x", wd, wd);
		CHECK_MSG(tsh("wimlib-imagex apply %s/%s 1 %s/x >/dev/null 2>&1 && diff -r %s/tree %s/x >/dev/null",
			     wd, bad, wd, wd, wd) == 0, kinds[k]);
		CHECK(tsh("ls %s/*.ihtmp.* >/dev/null 2>&1", wd) != 0); /* no temporary left */
	}
}

static void test_crash_points(void)
{
	static const char *steps[] = {"step:flag", "step:resources", "step:blob_table",
				      "step:xml", "step:fsync", "step:header", "bytes:1",
				      "bytes:3000", "bytes:9000"};
	char good[600];
	snprintf(good, sizeof good, "%s/check.wim", wd);
	for (size_t i = 0; i < IH_ARRAY_LEN(steps); i++) {
		tsh("cp %s/check.wim %s/k.wim", wd, wd);
		CHECK(damage("k.wim", "a/GPL-3") == 0);
		pid_t pid = fork();
		if (pid == 0) {
			setenv("IMAGEHEALTH_CRASH_AT", steps[i], 1);
			int rc;
			ih_error err;
			const char *src[] = {good};
			signal(SIGABRT, SIG_DFL);
			ih_restore_report *r = restore("k.wim", src, 1, &rc, &err);
			ih_restore_report_free(r);
			_exit(3);
		}
		int status;
		waitpid(pid, &status, 0);
		CHECK_MSG(WIFSIGNALED(status), steps[i]);
		/* old or new, never broken: wimlib opens it and its structure holds */
		CHECK_MSG(tsh("wimlib-imagex info %s/k.wim >/dev/null 2>&1", wd) == 0, steps[i]);
		int rc;
		ih_error err;
		const char *src[] = {good};
		ih_restore_report *r = restore("k.wim", src, 1, &rc, &err);
		CHECK_MSG(rc == IH_OK && r && r->state == IH_HEALTHY, steps[i]);
		ih_restore_report_free(r);
		CHECK_MSG(verify("k.wim") == 0, steps[i]);
	}
}

static void test_policy(void)
{
	const char *mk = getenv("MKHIVE") ? getenv("MKHIVE") : "build/mkhive";
	char p[600], sd[300], map_local[300];
	ih_session *s;
	ih_error err;
	ih_restore_report *r = NULL;
	/* an image whose own SOFTWARE hive names a source by a Windows path */
	tsh("rm -rf %s/ptree && cp -r %s/tree %s/ptree && mkdir -p %s/ptree/Windows/System32/config",
	   wd, wd, wd, wd);
	CHECK(tsh("%s %s/ptree/Windows/System32/config/SOFTWARE 'wim:C:\\Src\\pristine.wim:1;D:\\Nowhere' 2",
		 mk, wd) == 0);
	CHECK(tsh("wimlib-imagex capture %s/ptree %s/pristine.wim img >/dev/null 2>&1 && cp %s/pristine.wim %s/pol.wim",
		 wd, wd, wd, wd) == 0);
	CHECK(damage("pol.wim", "a/GPL-3") == 0);
	snprintf(p, sizeof p, "%s/pol.wim", wd);
	snprintf(sd, sizeof sd, "%s/state", wd);
	snprintf(map_local, sizeof map_local, "%s", wd);
	const char *map[] = {"c:\\src", map_local};
	CHECK(ih_session_open(p, &(ih_open_options){.state_dir = sd}, &s, &err) == IH_OK);
	int rc = ih_restore(s, &(ih_restore_options){.path_map = map, .n_path_map = 1}, &r, &err);
	CHECK_MSG(rc == IH_OK, err.message);
	if (r) {
		CHECK(r->state == IH_HEALTHY && r->n_repaired == 1);
		CHECK(r->policy_use_windows_update == 2);
		CHECK(r->policy_local_source_path && strstr(r->policy_local_source_path, "pristine.wim"));
		CHECK(r->n_sources == 2);
		if (r->n_sources == 2) {
			CHECK(r->sources[0].origin == IH_ORIGIN_POLICY && r->sources[0].usable &&
			      r->sources[0].index == 1);
			CHECK(!r->sources[1].usable && r->sources[1].error &&
			      strstr(r->sources[1].error, "path_map"));
		}
		CHECK(r->n_repaired == 1 && r->repaired[0].source == 0);
	}
	ih_restore_report_free(r);
	ih_session_close(s);
	CHECK(verify("pol.wim") == 0);
}

/* Flips bytes in the middle of image 1's metadata resource. */
static int damage_metadata(const char *wim)
{
	char p[600];
	struct wim_blob_entry be;
	snprintf(p, sizeof p, "%s/%s", wd, wim);
	if (twim_entry(p, NULL, &be))
		return -1;
	tflip(p, be.res.offset + be.res.stored_size / 2, 2);
	return 0;
}

static void test_metadata_split_and_lying_wim(void)
{
	ih_error err;
	int rc;
	char good[600], liar[600];
	/* damaged metadata, and a file: both come back from the pristine WIM */
	tsh("cp %s/lzx.wim %s/m.wim", wd, wd);
	CHECK(damage("m.wim", "c/Apache-2.0") == 0);
	CHECK(damage_metadata("m.wim") == 0);
	snprintf(good, sizeof good, "%s/lzx.wim", wd);
	snprintf(liar, sizeof liar, "%s/liar.wim", wd);
	/* a WIM source whose blobs carry the right SHA-1 and the wrong bytes */
	tsh("cp %s/m.wim %s/liar.wim", wd, wd);
	const char *src[] = {liar, good};
	ih_restore_report *r = restore("m.wim", src, 2, &rc, &err);
	CHECK_MSG(rc == IH_OK, err.message);
	CHECK(r && r->state == IH_HEALTHY && r->n_repaired == 2);
	CHECK(r && r->n_sources == 2 && r->sources[0].blobs_rejected >= 1 &&
	      r->sources[0].blobs_used == 0 && r->sources[1].blobs_used == 2);
	ih_restore_report_free(r);
	CHECK(verify("m.wim") == 0);
	tsh("rm -rf %s/x && mkdir %s/x", wd, wd);
	CHECK(tsh("wimlib-imagex apply %s/m.wim 1 %s/x >/dev/null 2>&1 && diff -r %s/tree %s/x >/dev/null",
		 wd, wd, wd, wd) == 0);

	/* a split set: the repair goes into the part that held the blob */
	CHECK(tsh("wimlib-imagex split %s/lzx.wim %s/s.swm 0.04 >/dev/null 2>&1", wd, wd) == 0);
	CHECK(tsh("test -f %s/s2.swm", wd) == 0);
	CHECK(damage("s2.swm", "a/GPL-3") == 0 || damage("s3.swm", "a/GPL-3") == 0 ||
	      damage("s.swm", "a/GPL-3") == 0);
	CHECK(tsh("wimlib-imagex verify %s/s.swm --ref='%s/s*.swm' >/dev/null 2>&1", wd, wd) != 0);
	r = restore("s.swm", (const char *[]){good}, 1, &rc, &err);
	CHECK_MSG(rc == IH_OK, err.message);
	CHECK(r && r->state == IH_HEALTHY && r->n_repaired == 1);
	ih_restore_report_free(r);
	CHECK(tsh("wimlib-imagex verify %s/s.swm --ref='%s/s*.swm' >/dev/null 2>&1", wd, wd) == 0);
}

/* A write that was cut off leaves the write-in-progress flag: the check
 * says so, and a restore, with nothing to fetch, clears it. */
static void test_interrupted_write(void)
{
	char p[600], sd[300];
	ih_session *s;
	ih_error err;
	ih_report *r = NULL;
	tsh("cp %s/lzx.wim %s/wip.wim", wd, wd);
	snprintf(p, sizeof p, "%s/wip.wim", wd);
	snprintf(sd, sizeof sd, "%s/state", wd);
	FILE *f = fopen(p, "r+b");
	CHECK(f != NULL);
	fseek(f, 0x10, SEEK_SET);
	int c = fgetc(f);
	fseek(f, 0x10, SEEK_SET);
	fputc(c | WIM_HDR_FLAG_WRITE_IN_PROGRESS, f);
	fclose(f);
	CHECK(ih_session_open(p, &(ih_open_options){.state_dir = sd}, &s, &err) == IH_OK);
	CHECK(ih_check(s, &(ih_check_options){0}, &r, &err) == IH_OK);
	CHECK(r && r->state == IH_REPAIRABLE && r->n_damage == 0 && r->n_problems == 1 &&
	      r->problems[0].kind == IH_PROBLEM_HEADER);
	ih_report_free(r);
	r = NULL;
	ih_restore_report *rr = NULL;
	CHECK(ih_restore(s, &(ih_restore_options){.no_policy = 1}, &rr, &err) == IH_OK);
	CHECK(rr && rr->state == IH_HEALTHY && rr->n_repaired == 0 && rr->check->n_problems == 1);
	ih_restore_report_free(rr);
	CHECK(ih_check(s, &(ih_check_options){.scan = 1}, &r, &err) == IH_OK);
	CHECK(r && r->state == IH_HEALTHY && r->n_problems == 0);
	ih_report_free(r);
	ih_session_close(s);
	CHECK(tsh("wimlib-imagex verify %s 2>&1 | grep -q WRITE_IN_PROGRESS", p) != 0);
	CHECK(verify("wip.wim") == 0);
}

void test_restore(void)
{
	snprintf(wd, sizeof wd, "/tmp/ih-rtest-XXXXXX");
	if (!mkdtemp(wd)) {
		CHECK(0);
		return;
	}
	make_tree();
	test_kinds();
	test_lying_and_partial();
	test_cancel_and_disk_full();
	test_crash_points();
	test_rebuild();
	test_policy();
	test_metadata_split_and_lying_wim();
	test_interrupted_write();
	tsh("rm -rf %s", wd);
}
