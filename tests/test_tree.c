/* test_tree.c - applied image trees: a tree applied by wimlib-imagex, then
 * modified, truncated, deleted and replaced (a directory by a file and the
 * reverse); the check lists exactly those, the restore makes it equal to a
 * fresh apply (contents, modes, mtimes) and leaves extra files alone; a
 * seal stands in for the WIM and is refused when edited; a reference with a
 * hostile name and links leading out of the tree are refused with nothing
 * outside changed; a restore killed at random moments leaves every file old
 * or new, and the next one finishes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <openssl/sha.h>
#include "imagehealth.h"
#include "sha1.h"
#include "testutil.h"
#include "wimtest.h"

static char wd[256];

static void put_file(const char *rel, const char *text)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", wd, rel);
	FILE *f = fopen(p, "wb");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static char *slurp(const char *rel, size_t *len)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", wd, rel);
	FILE *f = fopen(p, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	if (b)
		b[n] = '\0';
	*len = (size_t)n;
	return b;
}

static ih_session *open_tree(const char *tree, const char *ref, ih_error *err)
{
	char t[512], r[600];
	ih_session *s = NULL;
	snprintf(t, sizeof t, "%s/%s", wd, tree);
	if (ref && !strncmp(ref, "wim:", 4))
		snprintf(r, sizeof r, "wim:%s/%s", wd, ref + 4);
	else if (ref && !strncmp(ref, "seal:", 5))
		snprintf(r, sizeof r, "seal:%s/%s", wd, ref + 5);
	else if (ref)
		snprintf(r, sizeof r, "%s", ref);
	char sd[400];
	snprintf(sd, sizeof sd, "%s/state", wd);
	ih_open_options o = {.reference = ref ? r : NULL, .state_dir = sd, .threads = 2};
	if (ih_session_open(t, &o, &s, err) != IH_OK)
		return NULL;
	return s;
}

/* The findings as "reason path" lines, sorted (as the report is). */
static void findings(const ih_report *r, char *out, size_t len)
{
	out[0] = '\0';
	for (size_t i = 0; r && i < r->n_damage; i++) {
		size_t n = strlen(out);
		snprintf(out + n, len - n, "%s %s\n", ih_reason_name(r->damage[i].reason),
			 r->damage[i].n_refs ? r->damage[i].refs[0].path : "?");
	}
}

static int same_stat(const char *a, const char *b)
{
	char pa[1024], pb[1024];
	struct stat sa, sb;
	snprintf(pa, sizeof pa, "%s/%s", wd, a);
	snprintf(pb, sizeof pb, "%s/%s", wd, b);
	if (lstat(pa, &sa) || lstat(pb, &sb))
		return 0;
	return sa.st_mode == sb.st_mode && sa.st_mtim.tv_sec == sb.st_mtim.tv_sec &&
	       sa.st_mtim.tv_nsec == sb.st_mtim.tv_nsec;
}

static void build(void)
{
	tsh("mkdir -p %s/src/Windows/System32/drivers %s/src/Users/Public %s/src/swap", wd, wd, wd);
	put_file("src/Windows/notepad.exe", "MZ notepad, the reference copy\n");
	put_file("src/Windows/System32/kernel32.dll", "MZ kernel32\n");
	put_file("src/Windows/System32/drivers/disk.sys", "MZ disk driver\n");
	put_file("src/Users/Public/desktop.ini", "[.ShellClassInfo]\n");
	put_file("src/swap/inside.txt", "a file in a directory that becomes a file\n");
	put_file("src/becomes_dir", "a file that becomes a directory\n");
	put_file("src/empty", "");
	tsh("head -c 16000000 /dev/urandom > %s/src/Windows/big.bin", wd);
	for (int i = 0; i < 40; i++)
		tsh("head -c %d /dev/urandom > %s/src/Users/Public/f%02d.dat", 20000 + 997 * i, wd, i);
	tsh("wimlib-imagex capture %s/src %s/ref.wim --compress=none >/dev/null 2>&1", wd, wd);
}

static void apply(const char *dir)
{
	tsh("rm -rf %s/%s && wimlib-imagex apply %s/ref.wim 1 %s/%s >/dev/null 2>&1", wd, dir, wd, wd, dir);
}

static void damage(const char *t)
{
	tsh("cd %s/%s && echo changed >> Windows/notepad.exe && truncate -s 100 Windows/big.bin && "
	    "rm Windows/System32/kernel32.dll && rm -r swap && echo now-a-file > swap && "
	    "rm becomes_dir && mkdir becomes_dir && echo x > becomes_dir/junk && "
	    "echo extra > extra.txt && mkdir extradir && echo e > extradir/e", wd, t);
}

/* Sorted by path (bytewise). */
static const char want_findings[] =
	"missing /Windows/System32/kernel32.dll\n"
	"modified /Windows/big.bin\n"
	"modified /Windows/notepad.exe\n"
	"wrong_type /becomes_dir\n"
	"wrong_type /swap\n"
	"missing /swap/inside.txt\n";

static void test_check_and_restore(void)
{
	ih_error err;
	ih_report *r = NULL;
	char got[2048];

	apply("t1");
	ih_session *s = open_tree("t1", "wim:ref.wim:1", &err);
	CHECK_MSG(s != NULL, err.message);
	if (!s)
		return;
	CHECK_EQ_INT(ih_check(s, &(ih_check_options){.scan = 1}, &r, &err), IH_OK);
	CHECK_EQ_INT(r ? (int)r->state : -1, IH_HEALTHY);
	CHECK_EQ_INT(r ? r->n_damage : 99, 0);
	CHECK(r && r->tree && r->files_checked == 48);
	ih_report_free(r);
	r = NULL;

	damage("t1");
	/* A quick check sees types, sizes, presence (notepad grew: its size). */
	CHECK_EQ_INT(ih_check(s, &(ih_check_options){.scan = 0}, &r, &err), IH_OK);
	findings(r, got, sizeof got);
	CHECK_STR(got, want_findings);
	ih_report_free(r);
	r = NULL;
	/* Same size, other bytes: only the full scan tells. */
	tsh("cd %s/t1 && printf 'MZ kernel32\\n' > Users/Public/desktop.ini.x && "
	    "head -c 18 /dev/zero > Users/Public/desktop.ini.x && mv Users/Public/desktop.ini.x "
	    "Users/Public/desktop.ini", wd);
	CHECK_EQ_INT(ih_check(s, &(ih_check_options){.scan = 1}, &r, &err), IH_OK);
	findings(r, got, sizeof got);
	CHECK_STR(got, "modified /Users/Public/desktop.ini\n"
		       "missing /Windows/System32/kernel32.dll\n"
		       "modified /Windows/big.bin\n"
		       "modified /Windows/notepad.exe\n"
		       "wrong_type /becomes_dir\n"
		       "wrong_type /swap\n"
		       "missing /swap/inside.txt\n");
	CHECK_EQ_INT(r ? (int)r->state : -1, IH_REPAIRABLE);
	CHECK_EQ_INT(r ? r->n_extra : 0, 2);
	if (r && r->n_extra == 2) {
		CHECK_STR(r->extra[0], "/extra.txt");
		CHECK_STR(r->extra[1], "/extradir");
	}
	ih_report_free(r);

	ih_restore_report *rr = NULL;
	CHECK_EQ_INT(ih_restore(s, &(ih_restore_options){.threads = 2}, &rr, &err), IH_OK);
	CHECK_EQ_INT(rr ? (int)rr->state : -1, IH_HEALTHY);
	CHECK_EQ_INT(rr ? rr->n_repaired : 0, 7);
	CHECK_EQ_INT(rr ? rr->n_unrepaired : 99, 0);
	ih_restore_report_free(rr);
	ih_session_close(s);

	apply("fresh");
	CHECK_EQ_INT(tsh("diff -r -x extra.txt -x extradir %s/fresh %s/t1 >/dev/null", wd, wd), 0);
	size_t n;
	char *e = slurp("t1/extra.txt", &n);
	CHECK(e && !strcmp(e, "extra\n")); /* extra files untouched */
	free(e);
	CHECK_EQ_INT(tsh("test -f %s/t1/extradir/e", wd), 0);
	const char *paths[] = {"Windows/notepad.exe", "Windows/big.bin", "Windows/System32/kernel32.dll",
			       "swap", "swap/inside.txt", "becomes_dir", "Users/Public/desktop.ini",
			       "Windows/System32", "Windows"};
	for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
		char a[300], b[300];
		snprintf(a, sizeof a, "fresh/%s", paths[i]);
		snprintf(b, sizeof b, "t1/%s", paths[i]);
		CHECK_MSG(same_stat(a, b), paths[i]);
	}
	/* No temporary file is left. */
	CHECK(tsh("find %s/t1 -name '.imagehealth-tmp*' | grep -q .", wd) != 0);
}

static int patch_bytes(const char *path, const void *from, const void *to, size_t n);

static void test_seal(void)
{
	ih_error err;
	ih_report *r = NULL;
	char got[2048], *where = NULL;

	apply("t2");
	ih_session *s = open_tree("t2", "wim:ref.wim:1", &err);
	CHECK_MSG(s != NULL, err.message);
	if (!s)
		return;
	char file[400];
	snprintf(file, sizeof file, "%s/t2.seal", wd);
	CHECK_EQ_INT(ih_tree_seal(s, file, &where, &err), IH_OK);
	free(where);
	CHECK_EQ_INT(ih_tree_seal(s, NULL, &where, &err), IH_OK); /* the state store */
	CHECK(where && strstr(where, "/state/tree-"));
	free(where);
	ih_session_close(s);

	/* Without the WIM: the seal alone. */
	tsh("mv %s/ref.wim %s/ref.away", wd, wd);
	damage("t2");
	s = open_tree("t2", "seal:t2.seal", &err);
	CHECK_MSG(s != NULL, err.message);
	if (s) {
		CHECK_EQ_INT(ih_check(s, &(ih_check_options){.scan = 1}, &r, &err), IH_OK);
		findings(r, got, sizeof got);
		CHECK_STR(got, want_findings);
		ih_report_free(r);
		r = NULL;
		/* The restore takes the files from a source (a fresh apply). */
		char src[400];
		snprintf(src, sizeof src, "%s/fresh", wd);
		const char *srcs[] = {src};
		ih_restore_report *rr = NULL;
		CHECK_EQ_INT(ih_restore(s, &(ih_restore_options){.sources = srcs, .n_sources = 1}, &rr, &err),
			     IH_OK);
		CHECK_EQ_INT(rr ? (int)rr->state : -1, IH_HEALTHY);
		ih_restore_report_free(rr);
		ih_session_close(s);
		CHECK_EQ_INT(tsh("diff -r -x extra.txt -x extradir %s/fresh %s/t2 >/dev/null", wd, wd), 0);
	}
	/* The state store's seal, with no reference given at all. */
	s = open_tree("t2", NULL, &err);
	CHECK_MSG(s != NULL, err.message);
	if (s) {
		CHECK_EQ_INT(ih_check(s, &(ih_check_options){.scan = 1}, &r, &err), IH_OK);
		CHECK_EQ_INT(r ? (int)r->state : -1, IH_HEALTHY);
		ih_report_free(r);
		ih_session_close(s);
	}
	/* An edited seal is refused whole. */
	tsh("cp %s/t2.seal %s/bad.seal && printf X | dd of=%s/bad.seal bs=1 seek=120 conv=notrunc "
	    "2>/dev/null", wd, wd, wd);
	s = open_tree("t2", "seal:bad.seal", &err);
	CHECK(s == NULL);
	CHECK(s == NULL && strstr(err.message, "checksum"));
	ih_session_close(s);
	/* A seal whose checksum is right but whose names leave the tree:
	 * "/Windows" made "/../tmpx", the SHA-256 made right again. */
	char hostile[400];
	snprintf(hostile, sizeof hostile, "%s/hostile.seal", wd);
	tsh("cp %s/t2.seal %s", wd, hostile);
	CHECK(patch_bytes(hostile, "/Windows", "/../tmpx", 8) > 1);
	size_t len;
	uint8_t *b = (uint8_t *)slurp("hostile.seal", &len);
	if (b && len > 32) {
		SHA256(b, len - 32, b + len - 32);
		FILE *f = fopen(hostile, "wb");
		if (f) {
			fwrite(b, 1, len, f);
			fclose(f);
		}
	}
	free(b);
	s = open_tree("t2", "seal:hostile.seal", &err);
	CHECK(s == NULL);
	CHECK_MSG(s == NULL && strstr(err.message, "no tree may hold"), err.message);
	ih_session_close(s);
	tsh("mv %s/ref.away %s/ref.wim", wd, wd);
}

/* Replaces every occurrence of `from` (n bytes) by `to` in the file. */
static int patch_bytes(const char *path, const void *from, const void *to, size_t n)
{
	size_t len;
	char rel[400];
	snprintf(rel, sizeof rel, "%s", path + strlen(wd) + 1);
	char *b = slurp(rel, &len);
	int hits = 0;
	if (!b)
		return 0;
	for (size_t i = 0; i + n <= len; i++)
		if (!memcmp(b + i, from, n)) {
			memcpy(b + i, to, n);
			hits++;
		}
	FILE *f = fopen(path, "wb");
	if (f) {
		fwrite(b, 1, len, f);
		fclose(f);
	}
	free(b);
	return hits;
}

static void test_hostile_reference(void)
{
	/* A name holding '/' ("x/../../pwned"), made from a captured name of
	 * the same length, with the metadata's SHA-1 made right again. */
	tsh("rm -rf %s/hsrc && mkdir -p %s/hsrc/d && echo pwned > %s/hsrc/d/xq..q..qpwned", wd, wd, wd);
	char wim[400];
	snprintf(wim, sizeof wim, "%s/hostile.wim", wd);
	tsh("wimlib-imagex capture %s/hsrc %s --compress=none >/dev/null 2>&1", wd, wim);
	struct wim_blob_entry e;
	CHECK_EQ_INT(twim_entry(wim, NULL, &e), 0);
	uint8_t from[26], to[26];
	const char *a = "xq..q..qpwn", *b = "x/../../pwn";
	for (int i = 0; i < 11; i++) {
		from[2 * i] = (uint8_t)a[i];
		to[2 * i] = (uint8_t)b[i];
		from[2 * i + 1] = to[2 * i + 1] = 0;
	}
	CHECK(patch_bytes(wim, from, to, 22) == 1);
	/* the metadata resource's new SHA-1 */
	size_t len;
	char *all = slurp("hostile.wim", &len);
	uint8_t h[20];
	if (all && e.res.offset + e.res.orig_size <= len) {
		ih_sha1(all + e.res.offset, (size_t)e.res.orig_size, h);
		CHECK(patch_bytes(wim, e.sha1, h, 20) >= 1);
	}
	free(all);
	apply("t3");
	ih_error err;
	ih_session *s = open_tree("t3", "wim:hostile.wim:1", &err);
	CHECK(s == NULL);
	CHECK_EQ_INT(s ? IH_OK : err.code, IH_ERR_INVALID_ARG);
	CHECK_MSG(s == NULL && strstr(err.message, "no tree may hold"), err.message);
	ih_session_close(s);
}

static void test_links_out(void)
{
	ih_error err;
	ih_report *r = NULL;
	apply("t4");
	/* Outside: a directory and a file a link in the tree points to. */
	tsh("rm -rf %s/outside && mkdir -p %s/outside/System32/drivers && "
	    "echo keep > %s/outside/System32/kernel32.dll && echo keep > %s/outside/notepad.exe && "
	    "cd %s/t4/Windows && rm -r System32 && ln -s %s/outside/System32 System32 && "
	    "rm notepad.exe && ln -s ../../outside/notepad.exe notepad.exe", wd, wd, wd, wd, wd, wd);
	ih_session *s = open_tree("t4", "wim:ref.wim:1", &err);
	CHECK_MSG(s != NULL, err.message);
	if (!s)
		return;
	CHECK_EQ_INT(ih_check(s, &(ih_check_options){.scan = 1}, &r, &err), IH_OK);
	int outs = 0;
	for (size_t i = 0; r && i < r->n_damage; i++)
		outs += r->damage[i].found_type == IH_TREE_LINK &&
			strstr(r->damage[i].detail, "leading out of the tree") != NULL;
	CHECK_EQ_INT(outs, 2);
	ih_report_free(r);
	ih_restore_report *rr = NULL;
	CHECK_EQ_INT(ih_restore(s, &(ih_restore_options){0}, &rr, &err), IH_OK);
	int refused = 0;
	for (size_t i = 0; rr && i < rr->n_unrepaired; i++)
		refused += rr->unrepaired[i].code == IH_ERR_ACCESS;
	CHECK(refused >= 2);
	CHECK_EQ_INT(rr ? (int)rr->state : -1, IH_REPAIRABLE);
	ih_restore_report_free(rr);
	ih_session_close(s);
	size_t n;
	char *k = slurp("outside/System32/kernel32.dll", &n);
	CHECK(k && !strcmp(k, "keep\n"));
	free(k);
	k = slurp("outside/notepad.exe", &n);
	CHECK(k && !strcmp(k, "keep\n"));
	free(k);
	CHECK(tsh("test -e %s/outside/System32/drivers/disk.sys", wd) != 0);
	CHECK_EQ_INT(tsh("test -L %s/t4/Windows/System32 && test -L %s/t4/Windows/notepad.exe", wd, wd), 0);
}

/* Progress and cancel through the job: a cancelled scan says so, a restore
 * cancelled before its commit leaves the tree as it was. */
static void test_cancel(void)
{
	ih_error err;
	apply("t8");
	tsh("cd %s/t8 && echo changed >> Windows/notepad.exe", wd);
	ih_session *s = open_tree("t8", "wim:ref.wim:1", &err);
	CHECK_MSG(s != NULL, err.message);
	if (!s)
		return;
	ih_job *j = NULL;
	CHECK_EQ_INT(ih_check_start(s, &(ih_check_options){.scan = 1}, &j, &err), IH_OK);
	ih_progress p = {0};
	int asked = 0;
	while (j && !ih_job_wait(j, 5)) {
		ih_job_progress(j, &p);
		if (p.phase == IH_PHASE_SCAN && p.bytes_done > 0 && !asked) {
			ih_job_cancel(j);
			asked = 1;
		}
	}
	ih_report *r = NULL;
	int rc = j ? ih_job_result(j, &r, &err) : -1;
	/* cancelled once asked; the whole scan may end between two looks */
	CHECK_EQ_INT(rc, asked ? IH_ERR_CANCELLED : IH_OK);
	ih_report_free(r);
	ih_job_free(j);

	ih_cancel *c = ih_cancel_new();
	ih_cancel_trigger(c);
	ih_restore_report *rr = NULL;
	CHECK_EQ_INT(ih_restore(s, &(ih_restore_options){.cancel = c}, &rr, &err), IH_ERR_CANCELLED);
	ih_cancel_unref(c);
	ih_restore_report_free(rr);
	ih_session_close(s);
	CHECK(tsh("cmp -s %s/src/Windows/notepad.exe %s/t8/Windows/notepad.exe", wd, wd) != 0);
}

/* Names compared case-insensitively when asked (as on an ntfs-3g mount). */
static void test_case(void)
{
	ih_error err;
	ih_report *r = NULL;
	apply("t7");
	tsh("cd %s/t7 && mv Windows windows && mv Users/Public/desktop.ini Users/Public/DESKTOP.INI && "
	    "echo changed >> windows/notepad.exe", wd);
	ih_session *s = open_tree("t7", "wim:ref.wim:1", &err);
	CHECK_MSG(s != NULL, err.message);
	if (s) { /* case-sensitive: the renamed ones are missing, and extra */
		CHECK_EQ_INT(ih_check(s, &(ih_check_options){.scan = 1}, &r, &err), IH_OK);
		CHECK(r && r->n_extra == 2 && r->n_damage > 2);
		ih_report_free(r);
		r = NULL;
		ih_session_close(s);
	}
	char t[400], ref[400], sd[400];
	snprintf(t, sizeof t, "%s/t7", wd);
	snprintf(ref, sizeof ref, "wim:%s/ref.wim:1", wd);
	snprintf(sd, sizeof sd, "%s/state", wd);
	s = NULL;
	CHECK_EQ_INT(ih_session_open(t, &(ih_open_options){.reference = ref, .state_dir = sd,
							  .case_insensitive = 1}, &s, &err), IH_OK);
	if (!s)
		return;
	CHECK_EQ_INT(ih_check(s, &(ih_check_options){.scan = 1}, &r, &err), IH_OK);
	char got[512];
	findings(r, got, sizeof got);
	CHECK_STR(got, "modified /Windows/notepad.exe\n");
	CHECK_EQ_INT(r ? r->n_extra : 99, 0);
	ih_report_free(r);
	ih_restore_report *rr = NULL;
	CHECK_EQ_INT(ih_restore(s, &(ih_restore_options){0}, &rr, &err), IH_OK);
	CHECK_EQ_INT(rr ? (int)rr->state : -1, IH_HEALTHY);
	ih_restore_report_free(rr);
	ih_session_close(s);
	/* written where the tree has it, under its own name */
	CHECK_EQ_INT(tsh("cmp -s %s/src/Windows/notepad.exe %s/t7/windows/notepad.exe && "
			 "test ! -e %s/t7/Windows", wd, wd, wd), 0);
}

/* Names beyond ASCII compare as NTFS compares them (upcased per UTF-16
 * code unit): "Äpfel" is "äpfel", Greek and Cyrillic fold too; U+0131
 * (dotless i) is not "I" (NTFS leaves it alone). */
static void test_case_unicode(void)
{
	ih_error err;
	ih_report *r = NULL;
	char t[400], ref[400], sd[400], got[1024];
	tsh("mkdir -p '%s/usrc/Ωμέγα' && echo apple > '%s/usrc/Äpfel.txt' && "
	    "echo privet > '%s/usrc/Привет.txt' && echo omega > '%s/usrc/Ωμέγα/ÿ.txt' && "
	    "echo dotless > '%s/usrc/ı.txt' && "
	    "wimlib-imagex capture %s/usrc %s/uref.wim --compress=none >/dev/null 2>&1 && "
	    "wimlib-imagex apply %s/uref.wim 1 %s/u >/dev/null 2>&1", wd, wd, wd, wd, wd, wd, wd, wd, wd);
	CHECK_EQ_INT(tsh("cd %s/u && mv Äpfel.txt äpfel.txt && mv Привет.txt ПРИВЕТ.txt && "
			 "mv Ωμέγα ΩΜΈΓΑ && mv ΩΜΈΓΑ/ÿ.txt ΩΜΈΓΑ/Ÿ.TXT && echo changed >> ΩΜΈΓΑ/Ÿ.TXT && "
			 "mv ı.txt I.txt", wd), 0);
	snprintf(t, sizeof t, "%s/u", wd);
	snprintf(ref, sizeof ref, "wim:%s/uref.wim:1", wd);
	snprintf(sd, sizeof sd, "%s/state", wd);
	ih_session *s = NULL;
	CHECK_EQ_INT(ih_session_open(t, &(ih_open_options){.reference = ref, .state_dir = sd,
							  .case_insensitive = 1}, &s, &err), IH_OK);
	if (!s)
		return;
	CHECK_EQ_INT(ih_check(s, &(ih_check_options){.scan = 1}, &r, &err), IH_OK);
	findings(r, got, sizeof got);
	CHECK_STR(got, "missing /ı.txt\nmodified /Ωμέγα/ÿ.txt\n");
	CHECK(r && r->n_extra == 1 && !strcmp(r->extra[0], "/I.txt"));
	ih_report_free(r);
	ih_restore_report *rr = NULL;
	CHECK_EQ_INT(ih_restore(s, &(ih_restore_options){0}, &rr, &err), IH_OK);
	CHECK_EQ_INT(rr ? (int)rr->state : -1, IH_HEALTHY);
	ih_restore_report_free(rr);
	ih_session_close(s);
	/* written where the tree has it, under the tree's own names */
	CHECK_EQ_INT(tsh("cd %s && cmp -s 'usrc/Ωμέγα/ÿ.txt' 'u/ΩΜΈΓΑ/Ÿ.TXT' && test ! -e 'u/Ωμέγα' && "
			 "cmp -s usrc/ı.txt u/ı.txt && cmp -s usrc/Äpfel.txt u/äpfel.txt && "
			 "test ! -e u/Äpfel.txt", wd), 0);
}

static int link_is(const char *rel, const char *want)
{
	char p[600], got[600];
	snprintf(p, sizeof p, "%s/%s", wd, rel);
	ssize_t n = readlink(p, got, sizeof got - 1);
	if (n < 0)
		return 0;
	got[n] = '\0';
	if (strcmp(got, want))
		fprintf(stderr, "link %s -> %s, want %s\n", rel, got, want);
	return !strcmp(got, want);
}

/* Reparse points come back as the links wimlib applies: relative ones as
 * they are, an absolute one into the captured tree (fixed at capture)
 * pointing into this tree, an absolute one elsewhere as it is. */
static void test_links_restored(void)
{
	ih_error err;
	ih_report *r = NULL;
	char got[1024], want[600];
	tsh("rm -rf %s/lsrc && mkdir -p %s/lsrc/d && echo hi > %s/lsrc/d/f && cd %s/lsrc && "
	    "ln -s d/f rel && ln -s d dirlink && ln -s %s/lsrc/d/f abs_in && ln -s /etc/passwd abs_out && "
	    "ln -s nowhere dangling && wimlib-imagex capture %s/lsrc %s/lref.wim >/dev/null 2>&1",
	    wd, wd, wd, wd, wd, wd, wd);
	tsh("rm -rf %s/lt %s/lfresh && wimlib-imagex apply %s/lref.wim 1 %s/lt >/dev/null 2>&1 && "
	    "wimlib-imagex apply %s/lref.wim 1 %s/lfresh >/dev/null 2>&1", wd, wd, wd, wd, wd, wd);
	/* the oracle: wimlib's own apply */
	snprintf(want, sizeof want, "%s/lfresh/d/f", wd);
	CHECK(link_is("lfresh/abs_in", want) && link_is("lfresh/abs_out", "/etc/passwd") &&
	      link_is("lfresh/rel", "d/f"));
	tsh("cd %s/lt && rm rel abs_in abs_out dirlink && echo not-a-link > dirlink", wd);
	ih_session *s = open_tree("lt", "wim:lref.wim:1", &err);
	CHECK_MSG(s != NULL, err.message);
	if (!s)
		return;
	CHECK_EQ_INT(ih_check(s, &(ih_check_options){.scan = 1}, &r, &err), IH_OK);
	findings(r, got, sizeof got);
	CHECK_STR(got, "missing /abs_in\nmissing /abs_out\nwrong_type /dirlink\nmissing /rel\n");
	ih_report_free(r);
	ih_restore_report *rr = NULL;
	CHECK_EQ_INT(ih_restore(s, &(ih_restore_options){0}, &rr, &err), IH_OK);
	CHECK_EQ_INT(rr ? (int)rr->state : -1, IH_HEALTHY);
	CHECK_EQ_INT(rr ? rr->n_repaired : 0, 4);
	ih_restore_report_free(rr);
	ih_session_close(s);
	snprintf(want, sizeof want, "%s/lt/d/f", wd);
	CHECK(link_is("lt/abs_in", want) && link_is("lt/abs_out", "/etc/passwd") &&
	      link_is("lt/rel", "d/f") && link_is("lt/dirlink", "d") && link_is("lt/dangling", "nowhere"));
	const char *same[] = {"rel", "abs_in", "abs_out", "dirlink"};
	for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
		char a[300], b[300];
		snprintf(a, sizeof a, "lfresh/%s", same[i]);
		snprintf(b, sizeof b, "lt/%s", same[i]);
		CHECK_MSG(same_stat(a, b), same[i]); /* mode and modified time as wimlib's */
	}
	CHECK(tsh("find %s/lt -name '.imagehealth-tmp*' | grep -q .", wd) != 0);
}

/* A restore asks the reference, the caller's sources, the policy's (the
 * tree's own SOFTWARE hive), then the default repair server unless
 * limit_access; no_policy skips the hive. */
static ih_restore_report *policy_restore(ih_session *s, const ih_restore_options *o)
{
	ih_error err;
	ih_restore_report *rr = NULL;
	tsh("cd %s/pt && echo changed >> Windows/notepad.exe", wd);
	int rc = ih_restore(s, o, &rr, &err);
	CHECK_MSG(rc == IH_OK, err.message);
	return rr;
}

static int notepad_restored(void)
{
	return tsh("cmp -s %s/src/Windows/notepad.exe %s/pt/Windows/notepad.exe", wd, wd) == 0;
}

static void test_policy_sources(void)
{
	const char *mk = getenv("MKHIVE") ? getenv("MKHIVE") : "build/mkhive";
	char mirror[300];
	ih_error err;
	snprintf(mirror, sizeof mirror, "%s/mirror", wd);
	const char *map[] = {"D:\\Mirror", mirror};
	tsh("rm -rf %s/psrc && cp -a %s/src %s/psrc && mkdir -p %s/psrc/Windows/System32/config", wd,
	    wd, wd, wd);
	CHECK(tsh("%s %s/psrc/Windows/System32/config/SOFTWARE 'D:\\Mirror' 1", mk, wd) == 0);
	CHECK(tsh("wimlib-imagex capture %s/psrc %s/pref.wim --compress=none >/dev/null 2>&1", wd, wd) == 0);
	tsh("rm -rf %s/pt %s/mirror && wimlib-imagex apply %s/pref.wim 1 %s/pt >/dev/null 2>&1 && "
	    "wimlib-imagex apply %s/pref.wim 1 %s/mirror >/dev/null 2>&1", wd, wd, wd, wd, wd, wd);
	ih_session *s = open_tree("pt", "wim:pref.wim:1", &err);
	CHECK_MSG(s != NULL, err.message);
	if (!s)
		return;
	setenv("IMAGEHEALTH_REPAIR_SOURCES", "", 1); /* set and empty: no default server */
	/* The reference first, then the policy's directory. */
	ih_restore_report *rr = policy_restore(s, &(ih_restore_options){.path_map = map, .n_path_map = 1});
	CHECK(rr && rr->state == IH_HEALTHY && rr->n_sources == 2 && notepad_restored());
	if (rr && rr->n_sources == 2) {
		CHECK(rr->sources[0].origin == IH_ORIGIN_CALLER && rr->sources[1].origin == IH_ORIGIN_POLICY);
		CHECK(rr->sources[1].usable && rr->sources[1].kind == IH_SOURCE_DIR);
		CHECK(rr->n_repaired == 1 && rr->repaired[0].source == 0);
		CHECK(rr->policy_use_windows_update == 1 && rr->policy_local_source_path &&
		      !strcmp(rr->policy_local_source_path, "D:\\Mirror"));
	}
	ih_restore_report_free(rr);
	/* Without the reference: the hive's directory repairs it. */
	rr = policy_restore(s, &(ih_restore_options){.no_reference_source = 1, .path_map = map,
						    .n_path_map = 1});
	CHECK(rr && rr->state == IH_HEALTHY && rr->n_repaired == 1 && notepad_restored());
	if (rr && rr->n_repaired == 1 && rr->n_sources == 1) {
		CHECK(rr->repaired[0].source == 0 && rr->sources[0].origin == IH_ORIGIN_POLICY);
		CHECK(rr->sources[0].blobs_used == 1);
	} else {
		CHECK_MSG(0, "one policy source expected");
	}
	ih_restore_report_free(rr);
	/* A caller's directory without it is asked first: the repaired entry
	 * says what it said. */
	char empty[300];
	snprintf(empty, sizeof empty, "%s/emptysrc", wd);
	tsh("mkdir -p %s", empty);
	const char *srcs[] = {empty};
	rr = policy_restore(s, &(ih_restore_options){.no_reference_source = 1, .sources = srcs,
						    .n_sources = 1, .path_map = map, .n_path_map = 1});
	CHECK(rr && rr->state == IH_HEALTHY && rr->n_repaired == 1 && notepad_restored());
	if (rr && rr->n_repaired == 1 && rr->n_sources == 2) {
		CHECK(rr->repaired[0].source == 1 && rr->repaired[0].n_tries == 1);
		if (rr->repaired[0].n_tries == 1)
			CHECK(rr->repaired[0].tries[0].source == 0 &&
			      rr->repaired[0].tries[0].status == IH_TRY_NOT_FOUND);
		CHECK(rr->sources[0].blobs_not_found == 1);
	} else {
		CHECK_MSG(0, "a caller's source and the policy's expected");
	}
	ih_restore_report_free(rr);
	/* no_policy: the hive is not read; nothing else has it: left as it was. */
	rr = policy_restore(s, &(ih_restore_options){.no_reference_source = 1, .no_policy = 1,
						    .path_map = map, .n_path_map = 1});
	CHECK(rr && rr->state == IH_REPAIRABLE && rr->n_sources == 0 && rr->n_unrepaired == 1 &&
	      rr->no_policy && !rr->policy_local_source_path && !notepad_restored());
	if (rr && rr->n_unrepaired == 1)
		CHECK_EQ_INT(rr->unrepaired[0].code, IH_ERR_SOURCE_MISSING);
	ih_restore_report_free(rr);
	/* The default repair server: barred by limit_access, else asked last. */
	setenv("IMAGEHEALTH_REPAIR_SOURCES", mirror, 1);
	rr = policy_restore(s, &(ih_restore_options){.no_reference_source = 1, .no_policy = 1,
						    .limit_access = 1});
	CHECK(rr && rr->state == IH_REPAIRABLE && rr->n_sources == 0 && rr->default_barred == 1 &&
	      rr->n_default_sources == 1 && !notepad_restored());
	ih_restore_report_free(rr);
	rr = policy_restore(s, &(ih_restore_options){.no_reference_source = 1, .no_policy = 1});
	CHECK(rr && rr->state == IH_HEALTHY && rr->n_sources == 1 && notepad_restored());
	if (rr && rr->n_sources == 1)
		CHECK(rr->sources[0].origin == IH_ORIGIN_DEFAULT && rr->repaired[0].source == 0);
	ih_restore_report_free(rr);
	unsetenv("IMAGEHEALTH_REPAIR_SOURCES");
	ih_session_close(s);
}

/* A restore killed at random moments: every file old or new, never a mix,
 * and the next restore finishes. */
static void test_kill(void)
{
	ih_error err;
	apply("t5");
	tsh("cd %s/t5/Users/Public && for f in f*.dat; do head -c $(stat -c %%s $f) /dev/zero > $f; done",
	    wd);
	tsh("head -c 16000000 /dev/zero > %s/t5/Windows/big.bin", wd);
	/* How long a whole restore of this damage takes, to kill within it. */
	tsh("rm -rf %s/t6 && cp -a %s/t5 %s/t6", wd, wd, wd);
	struct timespec a0, a1;
	clock_gettime(CLOCK_MONOTONIC, &a0);
	ih_session *s6 = open_tree("t6", "wim:ref.wim:1", &err);
	ih_restore_report *r6 = NULL;
	if (s6)
		ih_restore(s6, &(ih_restore_options){.threads = 1}, &r6, &err);
	clock_gettime(CLOCK_MONOTONIC, &a1);
	ih_restore_report_free(r6);
	ih_session_close(s6);
	long us = (a1.tv_sec - a0.tv_sec) * 1000000L + (a1.tv_nsec - a0.tv_nsec) / 1000;
	if (us < 1000)
		us = 1000;
	srand((unsigned)time(NULL));
	int partial = 0;
	long long total = 16000000; /* the bytes a whole restore fetches (and commits) */
	for (int i = 0; i < 40; i++)
		total += 20000 + 997 * i;
	for (int round = 0; round < 8; round++) {
		pid_t pid = fork();
		if (pid == 0) {
			/* Half the rounds crash at a chosen byte of the commit
			 * (past the spool's bytes), the others at a random time. */
			if (round < 4) {
				char hook[64];
				snprintf(hook, sizeof hook, "bytes:%lld",
					 total + total * (2 * round + 1) / 8);
				setenv("IMAGEHEALTH_CRASH_AT", hook, 1);
			}
			ih_session *s = open_tree("t5", "wim:ref.wim:1", &err);
			ih_restore_report *rr = NULL;
			if (s)
				ih_restore(s, &(ih_restore_options){.threads = 1}, &rr, &err);
			_exit(0);
		}
		if (round >= 4) {
			usleep((useconds_t)(us / 4 + rand() % us)); /* the commit is the last part */
			kill(pid, SIGKILL);
		}
		waitpid(pid, NULL, 0);
		/* each file: all zeros (old) or the reference's bytes (new) */
		int bad = 0, newer = 0;
		for (int i = 0; i <= 40; i++) {
			char a[64], b[64];
			size_t na, nb;
			snprintf(a, sizeof a, "t5/Users/Public/f%02d.dat", i);
			snprintf(b, sizeof b, "src/Users/Public/f%02d.dat", i);
			if (i == 40) {
				snprintf(a, sizeof a, "t5/Windows/big.bin");
				snprintf(b, sizeof b, "src/Windows/big.bin");
			}
			char *x = slurp(a, &na), *y = slurp(b, &nb);
			int zeros = x != NULL;
			for (size_t k = 0; x && k < na; k++)
				zeros &= x[k] == 0;
			bad += !x || !y || na != nb || (!zeros && memcmp(x, y, na));
			newer += !zeros;
			free(x);
			free(y);
		}
		CHECK_EQ_INT(bad, 0);
		partial += newer > 0 && newer < 41;
		if (round % 2 == 1) /* the files a kill restored go back to old for the next rounds */
			tsh("cd %s/t5/Users/Public && for f in f*.dat; do head -c $(stat -c %%s $f) "
			    "/dev/zero > $f; done", wd);
	}
	fprintf(stderr, "test_tree: %d of 8 kills landed mid-restore\n", partial);
	ih_session *s = open_tree("t5", "wim:ref.wim:1", &err);
	ih_restore_report *rr = NULL;
	CHECK_EQ_INT(s ? ih_restore(s, &(ih_restore_options){0}, &rr, &err) : -1, IH_OK);
	CHECK_EQ_INT(rr ? (int)rr->state : -1, IH_HEALTHY);
	ih_restore_report_free(rr);
	ih_session_close(s);
	CHECK_EQ_INT(tsh("diff -r %s/fresh %s/t5 >/dev/null", wd, wd), 0);
	CHECK(tsh("find %s/t5 -name '.imagehealth-tmp*' | grep -q .", wd) != 0);
}

void test_tree(void)
{
	snprintf(wd, sizeof wd, "/tmp/ih-tree-XXXXXX");
	if (!mkdtemp(wd)) {
		CHECK_MSG(0, "mkdtemp");
		return;
	}
	chmod(wd, 0700);
	build();
	test_check_and_restore();
	test_seal();
	test_hostile_reference();
	test_links_out();
	test_links_restored();
	test_case();
	test_case_unicode();
	test_policy_sources();
	test_cancel();
	test_kill();
	if (t_fail == 0)
		tsh("rm -rf %s", wd);
	else
		fprintf(stderr, "test_tree: kept %s\n", wd);
}
