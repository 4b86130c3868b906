/* restore.c - DismRestoreImageHealth: repair exactly the damaged blobs,
 * from an ordered list of sources, in place and crash-safe.  The stages
 * are in restore.h; this file runs them and builds the report.
 *
 * Until the commit stage writes a header, the image is intact: cancel or a
 * failure anywhere before rolls every part back byte-identical.  After it,
 * the job completes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>
#include "job.h"
#include "restore.h"
#include "session.h"
#include "sha1.h"
#include "tree/tree.h"
#include "util.h"

struct restore_arg {
	ih_session *s;
	ih_restore_options opt;
	char **strings;           /* owned copies of the option strings */
	size_t nstrings;
	char *policy_hive;
};

static void free_restore_arg(void *p)
{
	struct restore_arg *a = p;
	ih_session_unref(a->s);
	ih_cancel_unref(a->opt.cancel);
	for (size_t i = 0; i < a->nstrings; i++)
		free(a->strings[i]);
	free(a->strings);
	free((void *)a->opt.sources);
	free((void *)a->opt.path_map);
	free((void *)a->opt.http_headers);
	free(a->policy_hive);
	free(a);
}

/* The session's shared lock becomes exclusive: no other session, in this
 * process or another, has the image open meanwhile. */
static int take_lock(struct restore_ctx *x, ih_error *err)
{
	if (x->opt->dry_run) /* writes nothing: the shared lock will do */
		return IH_OK;
	int rc = ih_session_lock_exclusive(x->s, err);
	x->locked = rc == IH_OK;
	if (x->locked)
		rebuild_sweep(x->s->w->path); /* what a killed rebuild left */
	return rc;
}

/* The damage: a full scan now, or (use_record) what the last full scan of
 * this exact file recorded. */
static int find_damage(struct restore_ctx *x, ih_error *err)
{
	ih_check_options co = {.scan = 1, .threads = x->opt->threads};
	int rc;

	/* The sources' blob tables are read first thing when they open: have
	 * the kernel fetch them while the damage is being found. */
	for (size_t i = 0; i < x->opt->n_sources; i++)
		source_prefetch(x->opt->sources[i]);
	rc = x->opt->use_record ? check_from_records(x->s, &x->before) : CHECK_NO_RECORD;
	if (rc == CHECK_NO_RECORD)
		rc = check_run(x->s, x->j, &co, &x->before, err);
	else if (rc)
		rc = ih_fail(err, rc, "out of memory");
	return rc;
}

static int hash_data(void *ctx, const uint8_t *data, size_t len)
{
	ih_sha1_update(ctx, data, len);
	return 0;
}

/* Re-reads every repaired blob from the new file. */
static int reverify(const struct wim *nw, const struct target *ts, size_t nt, ih_error *err)
{
	struct ih_reader rd;
	ih_sha1_ctx *md = ih_sha1_new();
	int rc = IH_OK;

	if (!md)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	ih_reader_init(&rd, nw);
	for (size_t k = 0; k < nt && rc == IH_OK; k++) {
		const struct wim_blob *b = wim_find_blob(nw, ts[k].dm->sha1);
		ih_reason reason;
		char detail[160], hex[41];
		uint8_t hash[20];
		if (ts[k].source < 0 || !ts[k].kept)
			continue;
		ih_sha1_init(md);
		int ok = b && ih_read_any_blob(&rd, b, hash_data, md, NULL, &reason, detail,
					       sizeof detail) == IH_READ_OK;
		ih_sha1_final(md, hash);
		if (!ok || memcmp(hash, ts[k].dm->sha1, 20)) {
			ih_sha1_hex(ts[k].dm->sha1, hex);
			rc = ih_fail(err, IH_ERR_INTERNAL,
				     "%s: blob %s does not read back right after writing", nw->path, hex);
		}
	}
	ih_sha1_free(md);
	ih_reader_free(&rd);
	return rc;
}

/* The image changed: the session sees the new file (and, after a rebuild,
 * locks it). */
static int swap_view(struct restore_ctx *x, struct wim **nw_out, ih_error *err)
{
	ih_session *s = x->s;
	struct wim *nw = NULL;
	int rc = wim_open(s->w->path, &nw, err);
	if (rc)
		return rc;
	if (x->r->rebuilt) {
		int nfd = open(s->w->path, O_RDONLY | O_CLOEXEC);
		if (nfd >= 0 && flock(nfd, LOCK_EX | LOCK_NB) == 0) {
			close(s->lock_fd);
			s->lock_fd = nfd;
		} else if (nfd >= 0) {
			close(nfd);
		}
	}
	*nw_out = nw;
	return IH_OK;
}

static void install_view(ih_session *s, struct wim *nw)
{
	pthread_mutex_lock(&s->mu);
	wim_free(s->w);
	s->w = nw;
	s->info_ready = 0;
	pthread_mutex_unlock(&s->mu);
}

/* The verify stage: the repaired file, read back, becomes the session's
 * view. */
static int restore_verify(struct restore_ctx *x, ih_error *err)
{
	struct wim *nw = NULL;
	ih_job_set_phase(x->j, IH_PHASE_VERIFY, 0, x->nt);
	x->r->bytes_written = x->cm->bytes_written;
	x->r->rebuilt = x->cm->rebuilt;
	x->cm->ops->close(x->cm); /* the parts' descriptors go first */
	x->cm = NULL;
	int rc = swap_view(x, &nw, err);
	if (rc == IH_OK)
		rc = reverify(nw, x->ts, x->nt, err);
	if (nw)
		install_view(x->s, nw); /* even when a blob reads back wrong: it is the file */
	return rc;
}

static void cleanup(struct restore_ctx *x)
{
	if (x->cm)
		x->cm->ops->close(x->cm); /* rolls back what was not committed */
	for (size_t i = 0; i < x->nsrc; i++)
		source_close(&x->src[i]);
	free(x->src);
	restore_targets_free(x->ts, x->nt);
	ih_report_free(x->before);
	if (x->locked)
		ih_session_lock_shared(x->s);
	ih_session_end_job(x->s, 1);
}

static int run_restore(ih_job *j, void *argp, ih_report **out, ih_error *err)
{
	struct restore_arg *a = argp;
	struct restore_ctx x = {.s = a->s, .j = j, .opt = &a->opt};
	double t0 = ih_now();
	int rc;

	(void)out; /* a restore's report is not a check's: see ih_job_restore_result */
	if (a->s->tree)
		return tree_restore_job(j, a->s, &a->opt, err);
	rc = take_lock(&x, err);
	if (rc == IH_OK)
		rc = find_damage(&x, err);
	if (rc == IH_OK && restore_report_start(&x))
		rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
	/* Something to repair: plan, fetch, commit. */
	int repair = rc == IH_OK && x.r->check->state == IH_REPAIRABLE;
	if (repair && !ih_job_cancelled(j))
		rc = restore_plan(&x, err);
	if (repair && rc == IH_OK && !ih_job_cancelled(j))
		rc = restore_fetch(&x, err);
	if (repair && rc == IH_OK && !ih_job_cancelled(j) && !a->opt.dry_run)
		rc = restore_commit(&x, err);
	if (x.committed) {
		ih_error verr = {0};
		int vrc = restore_verify(&x, rc ? &verr : err);
		rc = rc ? rc : vrc;
	}
	if (rc == IH_OK && (x.committed || !ih_job_cancelled(j)))
		rc = restore_report_finish(&x, err);
	if (rc == IH_OK && x.committed) {
		ih_report as_check; /* a quick check knows the new state at once */
		restore_report_as_check(x.r, &as_check);
		state_save_report(x.s, &as_check);
	}
	if (x.r)
		x.r->seconds = ih_now() - t0;
	cleanup(&x);
	if (rc == IH_OK && !x.committed && ih_job_cancelled(j))
		rc = ih_fail(err, IH_ERR_CANCELLED,
			     "restore cancelled before anything was committed; the image is as it was");
	if (rc) {
		ih_restore_report_free(x.r);
		return rc;
	}
	if (x.committed)
		atomic_store(&j->cancel, 0); /* past the point of no return: it completed */
	j->restore_report = x.r;
	return IH_OK;
}

static int dup_strings(struct restore_arg *a, const char *const *in, size_t n,
		       const char *const **out)
{
	const char **v = calloc(n + 1, sizeof *v);
	char **ns = realloc(a->strings, (a->nstrings + n + 1) * sizeof *ns);
	if (!v || !ns) {
		free(v);
		if (ns)
			a->strings = ns;
		return -1;
	}
	a->strings = ns;
	for (size_t i = 0; i < n; i++) {
		char *c = ih_strdup(in[i] ? in[i] : "");
		if (!c) {
			free(v);
			return -1;
		}
		a->strings[a->nstrings++] = c;
		v[i] = c;
	}
	*out = v;
	return 0;
}

/* An optional string option made the job's own. */
static int dup_one(struct restore_arg *a, const char **p)
{
	const char *const *out;
	if (!*p)
		return 0;
	if (dup_strings(a, p, 1, &out))
		return -1;
	*p = out[0];
	free((void *)out);
	return 0;
}

int ih_restore_start(ih_session *s, const ih_restore_options *opt, ih_job **out,
		     ih_error *err)
{
	struct restore_arg *a;

	if (!s)
		return ih_fail(err, IH_ERR_INVALID_SESSION, "no session");
	a = calloc(1, sizeof *a);
	if (!a)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	if (opt)
		a->opt = *opt;
	ih_cancel_ref(a->opt.cancel); /* free_restore_arg drops it */
	a->opt.sources = NULL;
	a->opt.path_map = NULL;
	a->opt.policy_hive = NULL;
	if (opt && (dup_strings(a, opt->sources, opt->n_sources, &a->opt.sources) ||
		    dup_strings(a, opt->path_map, 2 * opt->n_path_map, &a->opt.path_map) ||
		    (opt->policy_hive && !(a->policy_hive = ih_strdup(opt->policy_hive))))) {
		free_restore_arg(a);
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	a->opt.policy_hive = a->policy_hive;
	a->opt.http_headers = NULL;
	if (opt && (dup_strings(a, opt->http_headers, opt->n_http_headers, &a->opt.http_headers) ||
		    dup_one(a, &a->opt.http_ca_file) || dup_one(a, &a->opt.http_client_cert) ||
		    dup_one(a, &a->opt.http_client_key) || dup_one(a, &a->opt.http_proxy) ||
		    dup_one(a, &a->opt.http_netrc_file) || dup_one(a, &a->opt.default_sources_file))) {
		free_restore_arg(a);
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	a->s = s;
	ih_session_ref(s);
	return ih_session_start_job(s, 1, run_restore, a, free_restore_arg, a->opt.cancel, out,
				    err);
}

int ih_restore(ih_session *s, const ih_restore_options *opt, ih_restore_report **report,
	       ih_error *err)
{
	ih_job *j;
	int rc = ih_restore_start(s, opt, &j, err);
	if (rc)
		return rc;
	ih_job_wait_answering(j, opt ? opt->answer : NULL, opt ? opt->answer_data : NULL);
	rc = ih_job_restore_result(j, report, err);
	ih_job_free(j);
	return rc;
}
