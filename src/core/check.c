/* check.c - the health check: the quick structural check (DISM
 * CheckHealth) and, on request, the full scan (ScanHealth), ending in a
 * report and, after a full scan, a state record. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "job.h"
#include "session.h"
#include "util.h"

struct check_arg {
	ih_session *s;
	ih_check_options opt;
};

static void free_check_arg(void *p)
{
	struct check_arg *a = p;
	ih_session_unref(a->s);
	ih_cancel_unref(a->opt.cancel);
	free(a);
}

/* The quick phase's one walk of each tree: which blobs the images use
 * (a flag per blob table entry; SHA-1s the table lacks go to `missing`), and
 * the paths of damage already known (recorded by the last scan). */
struct walk_ctx {
	const struct wim *w;
	uint8_t *used;
	struct ih_blobindex *missing;
	struct damage_set *d;
	uint32_t image;
};

static int walk_stream(void *ctx, const uint8_t sha1[20], const char *path, int named)
{
	struct walk_ctx *c = ctx;
	size_t *v = ih_blobindex_get(&c->w->index, sha1);
	(void)named;
	if (ih_test_nomem())
		return -1;
	if (v)
		c->used[*v] = 1;
	else if (!ih_blobindex_put(c->missing, sha1, 0, NULL))
		return -1;
	return damage_note_ref(c->d, c->image, sha1, path);
}

/* Blobs whose entries are unusable, known without reading them, and the
 * streams the images use that the blob table does not have. */
static void structural_damage(const ih_session *s, const uint8_t *used,
			      const struct ih_blobindex *missing, struct damage_set *d)
{
	const struct wim *w = s->w;
	for (size_t i = 0; i < w->nblobs; i++) {
		const struct wim_blob *b = &w->blobs[i];
		if (b->image || b->dup || (s->index && !used[i]))
			continue;
		if (b->bad)
			damage_add(d, w, b->sha1, b, b->bad, b->why);
		else if (b->solid >= 0 && w->solids[b->solid].bad)
			damage_add(d, w, b->sha1, b, (ih_reason)w->solids[b->solid].bad,
				   w->solids[b->solid].why);
	}
	for (size_t i = 0; i < missing->count; i++)
		damage_add(d, w, missing->entries[i].sha1, NULL, IH_REASON_MISSING,
			   "the image references it but the blob table does not list it");
}

/* Damage and problems the last full scan of this exact file recorded, for
 * each selected image; with_refs also takes the recorded paths.  *n gets
 * how many of the images had a record.  IH_OK or IH_ERR_NOMEM. */
static int recall_records(const ih_session *s, int with_refs, struct damage_set *d,
			  struct problem_list *pl, ih_report *r, uint32_t *n)
{
	*n = 0;
	for (uint32_t i = ih_session_first(s); i <= ih_session_last(s); i++) {
		struct state_recall rec = {0};
		int rc = state_recall(s, i, with_refs, d, pl, &rec);
		if (rec.note && !r->record_note)
			r->record_note = rec.note;
		if (rc == IH_ERR_NOMEM)
			return rc;
		if (rc != IH_OK)
			continue;
		(*n)++;
		r->from_record = 1;
		if (rec.scanned_at > r->recorded_at)
			r->recorded_at = rec.scanned_at;
	}
	return IH_OK;
}

/* The report's problems (the open's and the check's), its state, and its
 * damage with their paths. */
static int finish_report(const struct wim *w, struct damage_set *d, const struct problem_list *pl,
			 struct image_meta *metas, size_t nmetas, ih_report *r)
{
	r->problems = calloc(w->problems.n + pl->n + 1, sizeof *r->problems);
	if (!r->problems)
		return IH_ERR_NOMEM;
	r->state = IH_HEALTHY;
	for (size_t i = 0; i < w->problems.n + pl->n; i++) {
		const ih_problem *p = i < w->problems.n ? &w->problems.v[i] : &pl->v[i - w->problems.n];
		r->problems[r->n_problems++] = *p;
		if (p->severity > r->state)
			r->state = p->severity;
	}
	if (d->n && r->state == IH_HEALTHY)
		r->state = IH_REPAIRABLE;
	return damage_to_report(d, w, metas, nmetas, r);
}

int check_from_records(ih_session *s, ih_report **out)
{
	struct damage_set d;
	struct problem_list pl = {0};
	ih_report *r = calloc(1, sizeof *r);
	uint32_t want = s->w->image_count ? ih_session_last(s) - ih_session_first(s) + 1 : 0, have = 0;
	int rc = IH_ERR_NOMEM;

	*out = NULL;
	if (!r || damage_set_init(&d)) {
		free(r);
		return IH_ERR_NOMEM;
	}
	if (s->w->nonrepairable || want == 0) {
		rc = CHECK_NO_RECORD;
	} else if ((rc = recall_records(s, 1, &d, &pl, r, &have)) != IH_OK) {
		/* out of memory: said as such, never taken for "no record" */
	} else if (have != want) {
		rc = CHECK_NO_RECORD; /* not every image has a record: check instead */
	} else {
		d.walked = d.n; /* every path came from the records */
		r->image_path = ih_strdup(s->w->path);
		r->index = s->index;
		rc = r->image_path ? finish_report(s->w, &d, &pl, NULL, 0, r) : IH_ERR_NOMEM;
	}
	damage_set_free(&d);
	free(pl.v);
	if (rc == IH_OK)
		*out = r;
	else
		ih_report_free(r);
	return rc;
}

static int run_check(ih_job *j, void *argp, ih_report **out, ih_error *err)
{
	struct check_arg *a = argp;
	int rc = check_run(a->s, j, &a->opt, out, err);
	if (rc == IH_OK && ih_job_cancelled(j)) {
		ih_report_free(*out);
		*out = NULL;
		rc = ih_fail(err, IH_ERR_CANCELLED, "check cancelled; nothing was recorded");
	}
	ih_session_end_job(a->s, 0);
	return rc;
}

int check_run(ih_session *s, ih_job *j, const ih_check_options *opt, ih_report **out,
	      ih_error *err)
{
	struct wim *w = s->w;
	uint32_t first = ih_session_first(s), last = ih_session_last(s);
	size_t nmetas = w->image_count && last >= first ? last - first + 1 : 0;
	struct image_meta *metas = calloc(nmetas + 1, sizeof *metas);
	struct ih_blobindex missing = {0};
	uint8_t *used = calloc(w->nblobs + 1, 1);
	struct damage_set d;
	struct problem_list pl = {0};
	ih_report *r = calloc(1, sizeof *r);
	struct ih_reader rd;
	double t0 = ih_now();
	int rc = IH_OK;

	ih_reader_init(&rd, w);
	rd.threads = opt->threads > 0 ? opt->threads : s->threads;
	damage_set_init(&d);
	if (!metas || !r || !used || ih_blobindex_init(&missing, 16)) {
		rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
		goto out;
	}
	r->image_path = ih_strdup(w->path);
	r->index = s->index;
	ih_job_set_phase(j, IH_PHASE_QUICK, 0, nmetas);

	/* Damage recorded by the last scan first, so that the walk below
	 * finds its paths too. */
	uint32_t have;
	if (!opt->scan && !w->nonrepairable && recall_records(s, 0, &d, &pl, r, &have)) {
		rc = ih_fail(err, IH_ERR_NOMEM, "out of memory reading the state record");
		goto out;
	}
	d.walked = d.n;

	/* Metadata: every selected image's directory tree. */
	for (size_t i = 0; i < nmetas && !w->nonrepairable; i++) {
		struct image_meta *m = &metas[i];
		rc = image_meta_read(w, &rd, first + (uint32_t)i, m, err);
		if (rc)
			goto out;
		if (!m->ok) {
			const struct wim_blob *mb = wim_image_metadata(w, m->image);
			if (!mb)
				problem_add(&pl, IH_PROBLEM_METADATA, IH_NONREPAIRABLE, "%s", m->detail);
			else
				damage_add(&d, w, mb->sha1, mb, m->reason, m->detail);
			continue;
		}
		char why[128];
		struct walk_ctx wc = {.w = w, .used = used, .missing = &missing, .d = &d,
				      .image = m->image};
		int wr = ih_meta_walk(m->buf, m->len, walk_stream, &wc, &m->stats, why, sizeof why);
		if (wr == IH_META_NOMEM) {
			rc = ih_fail(err, IH_ERR_NOMEM, "out of memory walking the metadata of image %u",
				     m->image);
			goto out;
		}
		if (wr != IH_META_OK) {
			/* The bytes match their SHA-1 but do not parse: no source
			 * can supply better ones. */
			problem_add(&pl, IH_PROBLEM_METADATA, IH_NONREPAIRABLE,
				    "metadata of image %u matches its SHA-1 but is invalid: %s",
				    m->image, why);
			m->ok = 0;
		}
		atomic_fetch_add(&j->blobs_done, 1);
		if (ih_job_cancelled(j))
			goto out;
	}
	if (!w->nonrepairable)
		structural_damage(s, used, &missing, &d);

	if (opt->scan && !w->nonrepairable) {
		int threads = opt->threads > 0 ? opt->threads : s->threads;
		rc = scan_blobs(s, j, threads, s->index ? used : NULL, &d, &pl, err);
		if (rc || ih_job_cancelled(j))
			goto out;
		r->scanned = 1;
	}

	r->blobs_checked = atomic_load(&j->blobs_done) + (r->scanned ? nmetas : 0);
	r->bytes_checked = r->scanned ? atomic_load(&j->bytes_done) : 0;
	ih_job_set_phase(j, IH_PHASE_REPORT, 0, 0);
	rc = finish_report(w, &d, &pl, metas, nmetas, r);
	if (rc) {
		rc = ih_fail(err, rc, "out of memory");
		goto out;
	}
	r->seconds = ih_now() - t0;
	if (r->scanned && !opt->no_record) {
		const char *note = NULL;
		state_save_report_note(s, r, &note);
		if (note && !r->record_note)
			r->record_note = note;
	}
out:
	for (size_t i = 0; i < nmetas && metas; i++)
		image_meta_free(&metas[i]);
	free(metas);
	ih_blobindex_free(&missing);
	free(used);
	damage_set_free(&d);
	free(pl.v);
	ih_reader_free(&rd);
	if (rc) {
		ih_report_free(r);
		return rc;
	}
	*out = r;
	return IH_OK;
}

int ih_check_start(ih_session *s, const ih_check_options *opt, ih_job **out, ih_error *err)
{
	struct check_arg *a;

	if (!s)
		return ih_fail(err, IH_ERR_INVALID_SESSION, "no session");
	a = calloc(1, sizeof *a);
	if (!a)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	if (opt)
		a->opt = *opt;
	a->s = s;
	ih_session_ref(s);
	ih_cancel_ref(a->opt.cancel);
	return ih_session_start_job(s, 0, run_check, a, free_check_arg, a->opt.cancel, out, err);
}

int ih_check(ih_session *s, const ih_check_options *opt, ih_report **report, ih_error *err)
{
	ih_job *j;
	int rc = ih_check_start(s, opt, &j, err);
	return rc ? rc : ih_job_finish(j, report, err);
}
