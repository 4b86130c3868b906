/* test_scripted.c - scripted sources and policies from C, without Lua: a
 * "script:NAME" source and ORDER / ACCEPT requests answered by the
 * ih_restore_options.answer callback, which the synchronous ih_restore
 * calls on the caller's own thread; a dry run that writes nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "imagehealth.h"
#include "testutil.h"
#include "util.h"
#include "wimtest.h"

static char wd[256];

struct answers {
	int lie;                 /* BLOB: serve wrong bytes */
	int liar;                /* BLOB: serve wrong bytes as this source (1-based) */
	const char *missing;     /* BLOB: say "not on this mirror" for this path */
	const char *skip;        /* ACCEPT: skip the blob of this path */
	uint32_t order[4];       /* ORDER: the answer */
	size_t norder;
	int blobs, orders, accepts, busy;
};

static int read_all(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	*out = malloc((size_t)n + 1);
	*len = fread(*out, 1, (size_t)n, f);
	fclose(f);
	return 0;
}

/* Sends len bytes in pieces, waiting for room when the job says busy. */
static int send(ih_job *j, uint64_t id, const char *p, size_t len, struct answers *a)
{
	while (len) {
		size_t n = len < 65536 ? len : 65536;
		int rc = ih_job_reply_data(j, id, p, n);
		if (rc == IH_ERR_BUSY) {
			a->busy++;
			ih_job_wait(j, 10);
			continue;
		}
		if (rc)
			return rc;
		p += n;
		len -= n;
	}
	return IH_OK;
}

static void answer(ih_job *j, const ih_request *req, void *data)
{
	struct answers *a = data;
	const char *path = req->n_refs ? req->refs[0].path : NULL;
	switch (req->kind) {
	case IH_REQUEST_ACCEPT:
		a->accepts++;
		if (a->skip && path && !strcmp(path, a->skip))
			ih_job_reply_end(j, req->id, 0, "skipped by the test");
		else
			ih_job_reply_end(j, req->id, 1, NULL);
		return;
	case IH_REQUEST_ORDER:
		a->orders++;
		ih_job_reply_data(j, req->id, a->order, a->norder * sizeof a->order[0]);
		ih_job_reply_end(j, req->id, 1, NULL);
		return;
	case IH_REQUEST_BLOB: {
		char file[700], *buf = NULL;
		size_t len = 0;
		a->blobs++;
		snprintf(file, sizeof file, "%s/tree%s", wd, path ? path : "/nonexistent");
		int lies = a->lie || (a->liar && req->source == a->liar - 1);
		if (!lies && a->missing && path && !strcmp(path, a->missing)) {
			ih_job_reply_end(j, req->id, 0, "not on this mirror");
			return;
		}
		if (!path || read_all(file, &buf, &len)) {
			ih_job_reply_end(j, req->id, 0, "no such file");
			return;
		}
		if (lies && len > 10)
			buf[len / 2] ^= 1;
		if (send(j, req->id, buf, len, a) == IH_OK)
			ih_job_reply_end(j, req->id, 1, NULL);
		free(buf);
		return;
	}
	}
	/* an unknown kind: left open, the wait loop ends it "not found" */
}

static ih_restore_report *run(const char *wim, const char **src, size_t n, struct answers *a,
			      int ask_order, int ask_accept, int dry_run, int *rc)
{
	char p[600], sd[300];
	ih_session *s;
	ih_error err = {0};
	ih_restore_report *r = NULL;
	snprintf(p, sizeof p, "%s/%s", wd, wim);
	snprintf(sd, sizeof sd, "%s/state", wd);
	*rc = ih_session_open(p, &(ih_open_options){.state_dir = sd}, &s, &err);
	if (*rc)
		return NULL;
	ih_restore_options ro = {.sources = src, .n_sources = n, .no_policy = 1,
				 .answer = a ? answer : NULL, .answer_data = a,
				 .ask_order = ask_order, .ask_accept = ask_accept, .dry_run = dry_run};
	*rc = ih_restore(s, &ro, &r, &err);
	if (*rc)
		fprintf(stderr, "  restore: %s\n", err.message);
	ih_session_close(s);
	return r;
}

static int damage(const char *wim, const char *file)
{
	char w[600], f[600];
	snprintf(w, sizeof w, "%s/%s", wd, wim);
	snprintf(f, sizeof f, "%s/tree/%s", wd, file);
	return tdamage(w, f);
}

static int verify(const char *wim)
{
	return tsh("wimlib-imagex verify %s/%s >/dev/null 2>&1", wd, wim);
}

void test_scripted(void)
{
	int rc;
	snprintf(wd, sizeof wd, "/tmp/ih-stest-XXXXXX");
	if (!mkdtemp(wd)) {
		CHECK(0);
		return;
	}
	tsh("mkdir -p %s/tree/a %s/tree/c && cp /usr/share/common-licenses/GPL-3 %s/tree/a/ && "
	    "cp /usr/share/common-licenses/Apache-2.0 %s/tree/c/ && head -c 9000000 /dev/urandom "
	    "> %s/tree/c/big.bin",
	    wd, wd, wd, wd, wd);
	CHECK(tsh("wimlib-imagex capture %s/tree %s/good.wim img --compress=LZX >/dev/null 2>&1",
		  wd, wd) == 0);
	tsh("cp %s/good.wim %s/bad.wim", wd, wd);
	CHECK(damage("bad.wim", "a/GPL-3") == 0);
	CHECK(damage("bad.wim", "c/Apache-2.0") == 0);
	CHECK(damage("bad.wim", "c/big.bin") == 0);
	tsh("cp %s/bad.wim %s/bad.orig", wd, wd);

	/* No callback: a scripted source has nothing; the image is untouched. */
	{
		const char *src[] = {"script:none"};
		ih_restore_report *r = run("bad.wim", src, 1, NULL, 0, 0, 0, &rc);
		CHECK(rc == IH_OK && r && r->n_repaired == 0 && r->n_unrepaired == 3);
		CHECK(r && r->sources[0].kind == IH_SOURCE_SCRIPT && r->sources[0].usable);
		CHECK(r && r->unrepaired[0].code == IH_ERR_SOURCE_MISSING);
		/* what the source said is kept: the library's own "not found" */
		CHECK(r && r->unrepaired[0].n_tries == 1 && r->unrepaired[0].tries[0].source == 0 &&
		      r->unrepaired[0].tries[0].status == IH_TRY_NOT_FOUND &&
		      r->unrepaired[0].tries[0].reason &&
		      strstr(r->unrepaired[0].tries[0].reason, "no caller answers"));
		CHECK(r && r->sources[0].blobs_not_found == 3);
		ih_restore_report_free(r);
	}
	/* What each source said of each blob, in the order asked: the liar
	 * first (ORDER), its bytes rejected; then the mirror, which serves
	 * all but one and gives its reason for that one. */
	{
		struct answers a = {.liar = 2, .missing = "/a/GPL-3", .order = {1, 0}, .norder = 2};
		const char *src[] = {"script:mirror", "script:liar"};
		ih_restore_report *r = run("bad.wim", src, 2, &a, 1, 0, 1, &rc);
		CHECK(rc == IH_OK && r && r->n_repaired == 2 && r->n_unrepaired == 1);
		if (r && r->n_unrepaired == 1 && r->n_repaired == 2) {
			const ih_damage *u = &r->unrepaired[0];
			CHECK(u->n_refs == 1 && !strcmp(u->refs[0].path, "/a/GPL-3"));
			CHECK(u->code == IH_ERR_SOURCE_MISSING && u->n_tries == 2);
			CHECK(u->n_tries == 2 && u->tries[0].source == 1 &&
			      u->tries[0].status == IH_TRY_WRONG_BYTES && !u->tries[0].reason);
			CHECK(u->n_tries == 2 && u->tries[1].source == 0 &&
			      u->tries[1].status == IH_TRY_NOT_FOUND && u->tries[1].reason &&
			      !strcmp(u->tries[1].reason, "not on this mirror"));
			CHECK(!strcmp(ih_try_status_name(IH_TRY_NOT_FOUND), "not_found") &&
			      !strcmp(ih_try_status_name(IH_TRY_WRONG_BYTES), "wrong_bytes"));
			for (size_t i = 0; i < r->n_repaired; i++)
				CHECK(r->repaired[i].source == 0 && r->repaired[i].n_tries == 1 &&
				      r->repaired[i].tries[0].source == 1 &&
				      r->repaired[i].tries[0].status == IH_TRY_WRONG_BYTES);
			CHECK(r->sources[0].blobs_used == 2 && r->sources[0].blobs_not_found == 1 &&
			      r->sources[0].blobs_rejected == 0);
			CHECK(r->sources[1].blobs_used == 0 && r->sources[1].blobs_not_found == 0 &&
			      r->sources[1].blobs_rejected == 3);
		}
		ih_restore_report_free(r);
		CHECK(tsh("cmp -s %s/bad.wim %s/bad.orig", wd, wd) == 0);
	}
	/* Dry runs: a lying source's bytes are rejected and counted; a good
	 * one's are planned; nothing is written. */
	{
		struct answers a = {.lie = 1};
		const char *src[] = {"script:liar", "script:good"};
		ih_restore_report *r = run("bad.wim", src, 1, &a, 0, 0, 1, &rc);
		CHECK(rc == IH_OK && r && r->dry_run && r->n_repaired == 0);
		CHECK(r && r->sources[0].blobs_rejected == 3);
		ih_restore_report_free(r);
		a.lie = 0;
		r = run("bad.wim", src + 1, 1, &a, 0, 0, 1, &rc);
		CHECK(rc == IH_OK && r && r->dry_run && r->n_repaired == 3 && r->bytes_written == 0);
		CHECK(r && r->bytes_planned > 9000000 && r->state == IH_REPAIRABLE);
		ih_restore_report_free(r);
		CHECK(tsh("cmp -s %s/bad.wim %s/bad.orig", wd, wd) == 0);
	}
	/* ORDER sends every blob to source 1 (the directory is never asked);
	 * ACCEPT skips one: it stays, with code IH_ERR_POLICY and the reason. */
	{
		char dir[300];
		snprintf(dir, sizeof dir, "%s/tree", wd);
		const char *src[] = {dir, "script:c"};
		struct answers a = {.order = {1}, .norder = 1, .skip = "/c/Apache-2.0"};
		ih_restore_report *r = run("bad.wim", src, 2, &a, 1, 1, 0, &rc);
		CHECK(rc == IH_OK && r);
		if (r) {
			CHECK(r->n_repaired == 2 && r->n_unrepaired == 1);
			for (size_t i = 0; i < r->n_repaired; i++)
				CHECK(r->repaired[i].source == 1);
			CHECK(r->sources[0].blobs_used == 0 && r->sources[0].bytes_read == 0);
			CHECK(r->sources[1].blobs_used == 2);
			CHECK(r->n_unrepaired == 1 && r->unrepaired[0].code == IH_ERR_POLICY &&
			      !strcmp(r->unrepaired[0].policy_reason, "skipped by the test") &&
			      r->unrepaired[0].n_refs == 1 &&
			      !strcmp(r->unrepaired[0].refs[0].path, "/c/Apache-2.0"));
		}
		CHECK(a.accepts == 3 && a.orders == 2 && a.blobs == 2);
		ih_restore_report_free(r);
		CHECK(verify("bad.wim") != 0);
		/* the rest, all accepted */
		struct answers b = {.order = {1, 0}, .norder = 2};
		r = run("bad.wim", src, 2, &b, 1, 1, 0, &rc);
		CHECK(rc == IH_OK && r && r->state == IH_HEALTHY && r->n_repaired == 1);
		ih_restore_report_free(r);
		CHECK(verify("bad.wim") == 0);
		tsh("rm -rf %s/x && mkdir %s/x", wd, wd);
		CHECK(tsh("wimlib-imagex apply %s/bad.wim 1 %s/x >/dev/null 2>&1 && diff -r %s/tree %s/x "
			  ">/dev/null", wd, wd, wd, wd) == 0);
	}
	tsh("rm -rf %s", wd);
}
