/* test_state.c - the state store and the session's lock against hostile
 * input and other users: a crafted long path, a flipped byte, records in
 * a shared or foreign directory, a FIFO record, stale records, the shared
 * lock lost after a failed upgrade, info() during a restore, and
 * out-of-memory reported as such. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "imagehealth.h"
#include "metadata.h"
#include "session.h"
#include "testutil.h"
#include "util.h"
#include "wimtest.h"

static char wd[256];

static ih_session *open_in(const char *wim, const char *sd)
{
	char p[600];
	ih_session *s = NULL;
	ih_error err;
	snprintf(p, sizeof p, "%s/%s", wd, wim);
	ih_open_options o = {.state_dir = sd};
	if (ih_session_open(p, &o, &s, &err)) {
		fprintf(stderr, "open %s: %s\n", p, err.message);
		return NULL;
	}
	return s;
}

/* A check of wim with records in wd/sd; NULL on error (rc in *rc). */
static ih_report *check_in(const char *wim, const char *sd, int scan, int *rc)
{
	char d[600];
	ih_report *r = NULL;
	ih_error err;
	snprintf(d, sizeof d, "%s/%s", wd, sd);
	ih_session *s = open_in(wim, d);
	*rc = -1;
	if (!s)
		return NULL;
	*rc = ih_check(s, &(ih_check_options){.scan = scan}, &r, &err);
	ih_session_close(s);
	return r;
}

static ih_restore_report *restore_in(const char *wim, const char *sd, const char *src, int use_record,
			     int *rc)
{
	char d[600], sp[600];
	const char *srcs[1] = {sp};
	ih_restore_report *r = NULL;
	ih_error err;
	snprintf(d, sizeof d, "%s/%s", wd, sd);
	snprintf(sp, sizeof sp, "%s/%s", wd, src ? src : "");
	ih_session *s = open_in(wim, d);
	*rc = -1;
	if (!s)
		return NULL;
	ih_restore_options ro = {.sources = srcs, .n_sources = src ? 1 : 0, .no_policy = 1,
				 .use_record = use_record};
	*rc = ih_restore(s, &ro, &r, &err);
	if (*rc)
		fprintf(stderr, "restore %s: %s\n", wim, err.message);
	ih_session_close(s);
	return r;
}

/* The one record file in wd/sd, or "" . */
static void record_file(const char *sd, char *out, size_t len)
{
	char d[600];
	struct dirent *e;
	snprintf(d, sizeof d, "%s/%s", wd, sd);
	out[0] = '\0';
	DIR *dir = opendir(d);
	while (dir && (e = readdir(dir)))
		if (strstr(e->d_name, ".state") && !strstr(e->d_name, ".state."))
			snprintf(out, len, "%s/%s", d, e->d_name);
	if (dir)
		closedir(dir);
}

/* Bit rot: flips bytes of a blob's data and puts size and mtime back. */
static int rot(const char *wim, const char *file)
{
	char w[600], f[600];
	snprintf(w, sizeof w, "%s/%s", wd, wim);
	snprintf(f, sizeof f, "%s/tree/%s", wd, file);
	tsh("touch -r %s %s/mtime.ref", w, wd);
	int rc = tdamage(w, f);
	tsh("touch -r %s/mtime.ref %s", wd, w);
	return rc;
}

/* Item: a damaged file whose record line is longer than the old 16 KiB
 * line buffer, cut so that its remainder reads "problem 2 2 ...", and a
 * record with one flipped byte. */
static void test_injection(void)
{
	/* "ref 1 " + path: the old reader's second 16383-byte piece starts at
	 * path byte 16377. */
	static char path[20000];
	size_t n = 0;
	int rc;
	for (int i = 0; i < 16; i++)
		n += (size_t)snprintf(path + n, sizeof path - n, "/d%02d%0997d", i, 0);
	for (; n < 16377; n++)
		path[n] = n == 16017 ? '/' : 'x';
	n += (size_t)snprintf(path + n, sizeof path - n, "problem 2 2 injected");
	char cmds[600];
	snprintf(cmds, sizeof cmds, "%s/cmds", wd);
	FILE *f = fopen(cmds, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fprintf(f, "add %s/leaf \"%s\"\n", wd, path);
	fclose(f);
	CHECK(tsh("head -c 20000 /dev/urandom > %s/leaf && wimlib-imagex capture %s/tree %s/long.wim "
		  "--compress=none >/dev/null 2>&1 && wimlib-imagex update %s/long.wim 1 < %s "
		  ">/dev/null 2>&1",
		  wd, wd, wd, wd, cmds) == 0);
	char w[600], leaf[600];
	snprintf(w, sizeof w, "%s/long.wim", wd);
	snprintf(leaf, sizeof leaf, "%s/leaf", wd);
	CHECK(tdamage(w, leaf) == 0);

	ih_report *r = check_in("long.wim", "inj", 1, &rc);
	CHECK(rc == IH_OK && r && r->state == IH_REPAIRABLE && r->n_damage == 1);
	CHECK(r && r->n_damage == 1 && r->damage[0].n_refs == 1 &&
	      strlen(r->damage[0].refs[0].path) == strlen(path));
	ih_report_free(r);
	/* the quick check recalls the record as it was written */
	r = check_in("long.wim", "inj", 0, &rc);
	CHECK(rc == IH_OK && r && r->from_record);
	CHECK_MSG(r && r->state == IH_REPAIRABLE && r->n_problems == 0,
		  r && r->n_problems ? r->problems[0].message : "");
	CHECK(r && r->n_damage == 1);
	ih_report_free(r);

	/* one flipped byte anywhere: the record is refused whole */
	char rec[1000];
	struct stat st;
	record_file("inj", rec, sizeof rec);
	CHECK(rec[0] && stat(rec, &st) == 0);
	tflip(rec, (uint64_t)st.st_size / 2, 1);
	r = check_in("long.wim", "inj", 0, &rc);
	CHECK(rc == IH_OK && r && !r->from_record && r->recorded_at == 0);
	ih_report_free(r);
}

static int have_nobody(void)
{
	return tsh("runuser -u nobody -- true >/dev/null 2>&1") == 0;
}

/* Item: no shared fallback directory; records only in a directory the
 * caller owns that nobody else can write; a FIFO record cannot hang. */
static void test_record_places(void)
{
	int rc;
	/* HOME and XDG_STATE_HOME unset: the passwd entry's home, never /tmp */
	{
		char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
		char *xdg = getenv("XDG_STATE_HOME") ? strdup(getenv("XDG_STATE_HOME")) : NULL;
		unsetenv("HOME");
		unsetenv("XDG_STATE_HOME");
		ih_session *s = open_in("own.wim", NULL);
		struct passwd *pw = getpwuid(geteuid());
		CHECK(s != NULL);
		CHECK_MSG(s && (!s->state_dir || (pw && !strncmp(s->state_dir, pw->pw_dir,
								 strlen(pw->pw_dir)))),
			  s && s->state_dir ? s->state_dir : "(none)");
		CHECK(s && (!s->state_dir || strncmp(s->state_dir, "/tmp/", 5)));
		ih_session_close(s);
		if (home)
			setenv("HOME", home, 1);
		if (xdg)
			setenv("XDG_STATE_HOME", xdg, 1);
		free(home);
		free(xdg);
	}

	/* A healthy record of own.wim, taken by root, then bit rot. */
	ih_report *r = check_in("own.wim", "priv", 1, &rc);
	CHECK(rc == IH_OK && r && r->state == IH_HEALTHY);
	ih_report_free(r);
	CHECK(rot("own.wim", "a/GPL-3") == 0);

	/* a directory the caller owns but others may write */
	tsh("mkdir -p %s/open && cp %s/priv/*.state %s/open/ && chmod 777 %s/open", wd, wd, wd, wd);
	r = check_in("own.wim", "open", 0, &rc);
	CHECK(rc == IH_OK && r && !r->from_record);
	ih_report_free(r);
	/* a record file others may write, in a good directory */
	tsh("mkdir -m 700 %s/grp && cp %s/priv/*.state %s/grp/ && chmod 666 %s/grp/*.state", wd, wd,
	    wd, wd);
	r = check_in("own.wim", "grp", 0, &rc);
	CHECK(rc == IH_OK && r && !r->from_record);
	ih_report_free(r);
	/* the untouched private record is used */
	r = check_in("own.wim", "priv", 0, &rc);
	CHECK(rc == IH_OK && r && r->from_record);
	ih_report_free(r);

	/* a FIFO where the record should be: refused at once, no hang */
	char rec[1000];
	tsh("mkdir -m 700 %s/fifo && cp %s/priv/*.state %s/fifo/", wd, wd, wd);
	record_file("fifo", rec, sizeof rec);
	CHECK(rec[0] != '\0');
	tsh("rm -f '%s' && mkfifo -m 600 '%s'", rec, rec);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		alarm(10);
		r = check_in("own.wim", "fifo", 0, &rc);
		_exit(rc == IH_OK && r && !r->from_record ? 0 : 1);
	}
	int status = 0;
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  WIFSIGNALED(status) ? "killed (hung on the FIFO)" : "wrong outcome");

	/* The healthy record planted by user nobody in a directory nobody
	 * owns (under a sticky world-writable one, like /tmp): a restore told
	 * to trust records must not trust that one. */
	if (have_nobody()) {
		CHECK(tsh("chmod 755 %s && chmod -R a+rX %s/priv && mkdir -m 1777 %s/pub && "
			  "runuser -u nobody -- sh -c 'mkdir -m 755 %s/pub/shared && "
			  "cp %s/priv/*.state %s/pub/shared/'",
			  wd, wd, wd, wd, wd, wd) == 0);
		r = check_in("own.wim", "pub/shared", 0, &rc);
		CHECK(rc == IH_OK && r && !r->from_record);
		ih_report_free(r);
		ih_restore_report *rr = restore_in("own.wim", "pub/shared", "pristine.wim", 1, &rc);
		CHECK(rc == IH_OK && rr && !rr->check->from_record && rr->n_repaired == 1);
		CHECK(rr && rr->state == IH_HEALTHY);
		ih_restore_report_free(rr);
	} else {
		fprintf(stderr, "test_state: no runuser/nobody; skipping the planted-record case\n");
	}
}

/* Item: a restore scans unless told to trust the record. */
static void test_stale_record(void)
{
	int rc;
	tsh("cp %s/pristine.wim %s/stale.wim", wd, wd);
	ih_report *r = check_in("stale.wim", "stale", 1, &rc);
	CHECK(rc == IH_OK && r && r->state == IH_HEALTHY);
	ih_report_free(r);
	CHECK(rot("stale.wim", "a/b/GPL-2") == 0);
	/* trusting the record: nothing to repair */
	ih_restore_report *rr = restore_in("stale.wim", "stale", "pristine.wim", 1, &rc);
	CHECK(rc == IH_OK && rr && rr->check->from_record && rr->n_repaired == 0 &&
	      rr->state == IH_HEALTHY);
	ih_restore_report_free(rr);
	/* the default: a scan finds the rot and the restore repairs it */
	rr = restore_in("stale.wim", "stale", "pristine.wim", 0, &rc);
	CHECK(rc == IH_OK && rr && rr->check->scanned && !rr->check->from_record &&
	      rr->n_repaired == 1);
	ih_restore_report_free(rr);
	CHECK(tsh("wimlib-imagex verify %s/stale.wim >/dev/null 2>&1", wd) == 0);
}

/* Item: after a restore found the image busy, its session still holds the
 * shared lock, so another process cannot restore meanwhile. */
static void test_lock_kept(void)
{
	int c2p[2], p2c[2];
	char sd[600];
	snprintf(sd, sizeof sd, "%s/lock", wd);
	CHECK(pipe(c2p) == 0 && pipe(p2c) == 0);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		char c = 0;
		int rc = -1;
		ih_session *b = open_in("pristine.wim", sd);
		if (write(c2p[1], b ? "o" : "x", 1) != 1 || read(p2c[0], &c, 1) != 1)
			_exit(3);
		if (b) {
			ih_restore_report *r = NULL;
			ih_error err;
			ih_restore_options ro = {.no_policy = 1};
			rc = ih_restore(b, &ro, &r, &err);
			ih_restore_report_free(r);
			ih_session_close(b);
		}
		_exit(rc == IH_ERR_BUSY ? 0 : 1);
	}
	char c = 0;
	CHECK(pid > 0 && read(c2p[0], &c, 1) == 1 && c == 'o');
	ih_session *a = open_in("pristine.wim", sd);
	CHECK(a != NULL);
	if (a) {
		ih_restore_report *r = NULL;
		ih_error err;
		ih_restore_options ro = {.no_policy = 1};
		CHECK(ih_restore(a, &ro, &r, &err) == IH_ERR_BUSY);
		ih_restore_report_free(r);
	}
	CHECK(write(p2c[1], "r", 1) == 1);
	int status = 0;
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the other process restored while session A was open");
	ih_session_close(a);
	close(c2p[0]);
	close(c2p[1]);
	close(p2c[0]);
	close(p2c[1]);
}

/* Item: info() on another thread while a restore swaps the session's view
 * (run under ASan: a use-after-free before the fix). */
struct info_loop {
	ih_session *s;
	atomic_int stop;
	atomic_long calls, fails;
};

static void *info_thread(void *p)
{
	struct info_loop *l = p;
	while (!atomic_load(&l->stop)) {
		const ih_wim_info *info;
		ih_error err;
		if (ih_session_info(l->s, &info, &err) != IH_OK)
			l->fails++;
		l->calls++;
	}
	return NULL;
}

static void test_info_during_restore(void)
{
	char sd[600], src[600];
	const char *srcs[1] = {src};
	snprintf(sd, sizeof sd, "%s/info", wd);
	snprintf(src, sizeof src, "%s/pristine.wim", wd);
	for (int round = 0; round < 3; round++) {
		tsh("cp %s/pristine.wim %s/busy.wim", wd, wd);
		char w[600], f[600];
		snprintf(w, sizeof w, "%s/busy.wim", wd);
		snprintf(f, sizeof f, "%s/tree/c/Apache-2.0", wd);
		CHECK(tdamage(w, f) == 0);
		ih_session *s = open_in("busy.wim", sd);
		CHECK(s != NULL);
		if (!s)
			return;
		struct info_loop l = {.s = s};
		pthread_t t;
		ih_job *j;
		ih_error err;
		ih_restore_report *r = NULL;
		CHECK(pthread_create(&t, NULL, info_thread, &l) == 0);
		/* the info loop runs before the restore starts, however busy the
		 * machine (else it might not run at all during the restore) */
		for (int spin = 0; spin < 5000 && atomic_load(&l.calls) == 0; spin++)
			usleep(1000);
		ih_restore_options ro = {.sources = srcs, .n_sources = 1, .no_policy = 1};
		CHECK(ih_restore_start(s, &ro, &j, &err) == IH_OK);
		while (!ih_job_wait(j, 1000)) {
			ih_event ev[8];
			ih_job_events(j, ev, 8);
		}
		CHECK(ih_job_restore_result(j, &r, &err) == IH_OK && r && r->n_repaired == 1);
		ih_job_free(j);
		atomic_store(&l.stop, 1);
		pthread_join(t, NULL);
		CHECK(l.calls > 0 && l.fails == 0);
		ih_restore_report_free(r);
		ih_session_close(s);
	}
}

/* Item: out of memory is reported as IH_ERR_NOMEM, never as invalid
 * metadata, a missing record or a full scan. */
static int cb_ret;
static int cb_count;
static int ret_cb(void *ctx, const uint8_t sha1[20], const char *path, int named)
{
	(void)ctx;
	(void)sha1;
	(void)path;
	(void)named;
	cb_count++;
	return cb_ret;
}

static void test_nomem(void)
{
	/* the walker's own results and the callback's, kept apart */
	char w[600], why[128];
	snprintf(w, sizeof w, "%s/pristine.wim", wd);
	ih_session *s = open_in("pristine.wim", NULL);
	CHECK(s != NULL);
	if (s) {
		struct ih_reader rd;
		struct image_meta m;
		ih_error err;
		ih_reader_init(&rd, s->w);
		CHECK(image_meta_read(s->w, &rd, 1, &m, &err) == IH_OK && m.ok);
		cb_ret = 0;
		CHECK_EQ_INT(ih_meta_walk(m.buf, m.len, ret_cb, NULL, NULL, why, sizeof why), 0);
		cb_ret = 5; /* stop: passed through */
		CHECK_EQ_INT(ih_meta_walk(m.buf, m.len, ret_cb, NULL, NULL, why, sizeof why), 5);
		cb_ret = -1; /* a callback out of memory */
		CHECK_EQ_INT(ih_meta_walk(m.buf, m.len, ret_cb, NULL, NULL, why, sizeof why), -2);
		cb_ret = -2;
		CHECK_EQ_INT(ih_meta_walk(m.buf, m.len, ret_cb, NULL, NULL, why, sizeof why), -2);
		CHECK_EQ_INT(ih_meta_walk(m.buf, 7, ret_cb, NULL, NULL, why, sizeof why), -1);
		image_meta_free(&m);
		ih_reader_free(&rd);
		ih_session_close(s);
	}

	/* the quick check's walk runs out of memory */
	int rc;
	ih_report *r;
	__atomic_store_n(&ih_test_nomem_after, 1, __ATOMIC_SEQ_CST);
	r = check_in("pristine.wim", "nomem", 0, &rc);
	CHECK_EQ_INT(rc, IH_ERR_NOMEM);
	ih_report_free(r);
	__atomic_store_n(&ih_test_nomem_after, 0, __ATOMIC_SEQ_CST);

	/* reading the record runs out of memory: not "no record" */
	tsh("cp %s/pristine.wim %s/nm.wim", wd, wd);
	r = check_in("nm.wim", "nomem", 1, &rc);
	CHECK(rc == IH_OK && r && r->state == IH_HEALTHY);
	ih_report_free(r);
	__atomic_store_n(&ih_test_nomem_after, 1, __ATOMIC_SEQ_CST);
	ih_restore_report *rr = restore_in("nm.wim", "nomem", NULL, 1, &rc);
	CHECK_EQ_INT(rc, IH_ERR_NOMEM);
	ih_restore_report_free(rr);
	__atomic_store_n(&ih_test_nomem_after, 1, __ATOMIC_SEQ_CST);
	r = check_in("nm.wim", "nomem", 0, &rc);
	CHECK_EQ_INT(rc, IH_ERR_NOMEM);
	ih_report_free(r);
	__atomic_store_n(&ih_test_nomem_after, 0, __ATOMIC_SEQ_CST);
}

void test_state(void)
{
	snprintf(wd, sizeof wd, "/tmp/ih-stest-XXXXXX");
	if (!mkdtemp(wd)) {
		CHECK(0);
		return;
	}
	tsh("mkdir -p %s/tree/a/b %s/tree/c && cp /usr/share/common-licenses/GPL-3 %s/tree/a/ && "
	    "cp /usr/share/common-licenses/GPL-2 %s/tree/a/b/ && "
	    "cp /usr/share/common-licenses/Apache-2.0 %s/tree/c/ && "
	    "head -c 3000000 /usr/bin/wimlib-imagex > %s/tree/c/bin.dat",
	    wd, wd, wd, wd, wd, wd);
	CHECK(tsh("wimlib-imagex capture %s/tree %s/pristine.wim img --compress=LZX >/dev/null 2>&1",
		  wd, wd) == 0);
	tsh("cp %s/pristine.wim %s/own.wim", wd, wd);
	const char *only = getenv("IH_STATE_TESTS");
#define RUN(name, fn) if (!only || strstr(only, name)) fn()
	RUN("injection", test_injection);
	RUN("places", test_record_places);
	RUN("stale", test_stale_record);
	RUN("lock", test_lock_kept);
	RUN("info", test_info_during_restore);
	RUN("nomem", test_nomem);
	tsh("rm -rf %s", wd);
}
