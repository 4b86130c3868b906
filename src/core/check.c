/* check.c - the health check: the quick structural check (DISM
 * CheckHealth) and, on request, the full scan (ScanHealth), ending in a
 * report and, after a full scan, a state record.
 *
 * The quick check takes the record's findings without decoding anything
 * when the record vouches for the blob table and the metadata (hashes of
 * their raw bytes); else it decodes the trees one at a time.  A full scan
 * is a fingerprint re-scan when the file's fingerprint record (or its
 * integrity table) can prove bytes unchanged, else (or with deep) a deep
 * scan of every blob. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "job.h"
#include "session.h"
#include "tree/tree.h"
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

#define MISSING_DETAIL "the image references it but the blob table does not list it"

static int walk_stream(void *ctx, const uint8_t sha1[20], const char *path, int named)
{
	struct walk_ctx *c = ctx;
	size_t *v = ih_blobindex_get(&c->w->index, sha1);
	int created = 0;
	(void)named;
	if (ih_test_nomem())
		return -1;
	if (v) {
		c->used[*v] = 1;
	} else {
		/* added at once, so this walk and the next ones note its paths */
		if (!ih_blobindex_put(c->missing, sha1, 0, &created))
			return -1;
		if (created)
			damage_add(c->d, c->w, sha1, NULL, IH_REASON_MISSING, MISSING_DETAIL);
	}
	return damage_note_ref(c->d, c->image, sha1, path);
}

/* Blobs whose entries are unusable, known without reading them (used
 * NULL: every blob's; else those the selected image uses). */
static void structural_damage(const ih_session *s, const uint8_t *used, struct damage_set *d)
{
	const struct wim *w = s->w;
	for (size_t i = 0; i < w->nblobs; i++) {
		const struct wim_blob *b = &w->blobs[i];
		if (b->image || b->dup || (used && !used[i]))
			continue;
		if (b->bad)
			damage_add(d, w, b->sha1, b, b->bad, b->why);
		else if (b->solid >= 0 && w->solids[b->solid].bad)
			damage_add(d, w, b->sha1, b, (ih_reason)w->solids[b->solid].bad,
				   w->solids[b->solid].why);
	}
}

const char *ih_scan_kind_name(ih_scan_kind k)
{
	switch (k) {
	case IH_SCAN_QUICK: return "quick";
	case IH_SCAN_QUICK_RECORD: return "quick_record";
	case IH_SCAN_DEEP: return "deep";
	case IH_SCAN_FINGERPRINT: return "fingerprint";
	case IH_SCAN_INTEGRITY: return "integrity";
	}
	return "unknown";
}

/* What the records are compared with: the raw layout and metadata hashes
 * of the file now (images first..), all hashed at once on the session's
 * threads. */
struct raw_now {
	uint32_t first;
	uint8_t layout[FP_LEN];
	uint8_t (*meta)[FP_LEN];
	uint8_t *have;
};
static int records_match(const struct raw_now *now, const struct state_recall *rec,
			 uint32_t image);

/* Damage and problems the last full scan of this exact file recorded, for
 * each selected image; with_refs also takes the recorded paths.  *n gets
 * how many of the images had a record.  IH_OK or IH_ERR_NOMEM. */
static int recall_records(const ih_session *s, int with_refs, struct damage_set *d,
			  struct problem_list *pl, ih_report *r, uint32_t *n, int verify)
{
	uint32_t first = ih_session_first(s), last = ih_session_last(s);
	struct raw_now now = {.first = first};
	int rc = IH_OK;
	*n = 0;
	for (uint32_t i = first; i <= last; i++) {
		struct state_recall rec = {0};
		int rr = state_recall(s, i, with_refs, d, pl, &rec);
		if (rec.note && !r->record_note)
			r->record_note = rec.note;
		if (rr == IH_ERR_NOMEM) {
			rc = rr;
			goto out;
		}
		if (rr != IH_OK)
			continue;
		if (verify && !now.meta) { /* a record to compare: hash the file now */
			now.meta = malloc((last - first + 1) * FP_LEN);
			now.have = malloc(last - first + 1);
			if (!now.meta || !now.have) {
				rc = IH_ERR_NOMEM;
				goto out;
			}
			fp_raw_hashes(s->w, first, last, s->threads, now.layout, now.meta, now.have);
		}
		if (verify && !records_match(&now, &rec, i))
			break; /* *n short: the caller decodes instead */
		(*n)++;
		r->from_record = 1;
		if (rec.scanned_at > r->recorded_at)
			r->recorded_at = rec.scanned_at;
	}
out:
	free(now.meta);
	free(now.have);
	return rc;
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
		int seen = 0;
		/* a record holds the open's problems of then: found again now */
		for (size_t k = 0; i >= w->problems.n && k < w->problems.n && !seen; k++)
			seen = !strcmp(w->problems.v[k].message, p->message);
		if (seen)
			continue;
		r->problems[r->n_problems++] = *p;
		if (p->severity > r->state)
			r->state = p->severity;
	}
	if (d->n && r->state == IH_HEALTHY)
		r->state = IH_REPAIRABLE;
	return damage_to_report(d, w, metas, nmetas, r);
}

/* Does every selected image's record vouch for the file as it is now:
 * the same raw headers and blob tables, the same raw metadata? */
static int records_match(const struct raw_now *now, const struct state_recall *rec,
			 uint32_t image)
{
	int have = now->have[image - now->first];
	if (memcmp(now->layout, rec->layout, FP_LEN) || have != rec->have_metaraw)
		return 0;
	return !have || !memcmp(now->meta[image - now->first], rec->metaraw, FP_LEN);
}

/* A report from the records alone; verify: only when they vouch for the
 * blob table and every selected image's metadata as they are now. */
static int from_records(ih_session *s, int verify, ih_report **out)
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
	} else if ((rc = recall_records(s, 1, &d, &pl, r, &have, verify)) != IH_OK) {
		/* out of memory: said as such, never taken for "no record" */
	} else if (have != want) {
		rc = CHECK_NO_RECORD; /* not every image has a record: check instead */
	} else {
		d.walked = d.n; /* every path came from the records */
		r->scan_kind = verify ? IH_SCAN_QUICK_RECORD : IH_SCAN_QUICK;
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

int check_from_records(ih_session *s, ih_report **out)
{
	return from_records(s, 0, out);
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

/* Fingerprints hash every byte of the file; a deep scan reads only what
 * the structures name.  A file mostly made of bytes nothing names (a
 * sparse hole of a terabyte) would make hashing it cost more than the deep
 * scan: no fingerprints then. */
static int fingerprints_worth(const struct wim *w)
{
	uint64_t named = (uint64_t)64 << 20, size = 0;
	for (size_t i = 0; i < w->nblobs; i++)
		if (w->blobs[i].solid < 0 && !w->blobs[i].bad && !w->blobs[i].dup)
			named += w->blobs[i].stored_size;
	for (size_t k = 0; k < w->nsolids; k++)
		named += w->solids[k].stored_size;
	for (unsigned k = 0; k < w->nparts; k++) {
		const struct wim_part *p = &w->parts[k];
		named += p->hdr.blob_table.stored_size + p->hdr.xml.stored_size + p->integrity_len;
		size += p->size;
	}
	return size / 2 <= named;
}

/* Is there an integrity table that can stand for fingerprints? */
static int integrity_usable(const struct wim *w)
{
	for (unsigned k = 0; k < w->nparts; k++)
		if (w->parts[k].integrity_ok)
			return 1;
	return 0;
}

/* How this full scan runs: from the fingerprint record, from the integrity
 * table, or deep.  Loads rec when it is used.  The integrity table does not
 * cover the header, whose compression type and chunk size every non-solid
 * blob is decoded with: it stands for fingerprints only when the metadata
 * (decoded with them, like those blobs) was read whole and matched its
 * SHA-1 (meta_ok). */
static int choose_scan(ih_session *s, const ih_check_options *opt, struct fp_record *rec,
		       struct scan_opts *so, ih_report *r, int meta_ok)
{
	const char *note = NULL;
	so->mode = IH_SCAN_DEEP;
	if (opt->deep)
		return IH_OK;
	if (!fingerprints_worth(s->w)) {
		r->scan_note = "most of the file is bytes no structure names: hashing them all would "
			       "cost more than reading what is named, every blob was read";
		return IH_OK;
	}
	int rc = state_fp_load(s, rec, &note);
	if (rc == IH_ERR_NOMEM)
		return rc;
	if (rc == IH_OK) {
		uint8_t layout[FP_LEN];
		fp_layout_hash(s->w, layout);
		if (memcmp(layout, rec->layout, FP_LEN)) {
			note = "the headers or blob tables changed since the fingerprints were recorded";
			fp_record_free(rec);
		} else {
			so->mode = IH_SCAN_FINGERPRINT;
			so->rec = rec;
			return IH_OK;
		}
	}
	if (integrity_usable(s->w) && meta_ok) {
		so->mode = IH_SCAN_INTEGRITY;
		return IH_OK;
	}
	if (integrity_usable(s->w) && !note)
		note = "the metadata did not verify, so the integrity table (which does not cover "
		       "the header) cannot prove the rest unchanged: every blob was read";
	r->scan_note = note ? note
			    : "no fingerprint record of this file and no integrity table: every "
			      "blob was read";
	return IH_OK;
}

/* The quick phase of a fingerprint re-scan of every image, from the
 * records when they vouch for the layout (the fingerprint record's too)
 * and every image's raw metadata: the trees would decode as they did then,
 * so their walk would find what the records hold (the blobs they lack,
 * the paths of every recorded damage), and a tree is decoded later only if
 * a blob the records do not know is found damaged.  Not when the records
 * hold metadata damage or problems, or paths beyond the caps (the records
 * keep no count of those): the trees are decoded then.  Returns 1 (rec
 * loaded, known filled, damage and metas set up), 0 (nothing changed:
 * decode), or IH_ERR_NOMEM (as a negative number). */
static int quick_from_records(ih_session *s, struct image_meta *metas, size_t nmetas,
			      struct fp_record *rec, struct damage_set *known,
			      struct damage_set *d)
{
	const struct wim *w = s->w;
	struct problem_list kpl = {0};
	ih_report scratch = {0};
	uint8_t layout[FP_LEN];
	const char *note = NULL;
	uint32_t have = 0;
	int ok = 0, rc = state_fp_load(s, rec, &note);

	if (rc != IH_OK)
		return rc == IH_ERR_NOMEM ? -IH_ERR_NOMEM : 0;
	fp_layout_hash(w, layout);
	if (memcmp(layout, rec->layout, FP_LEN) || damage_set_init(known))
		goto out;
	if ((rc = recall_records(s, 1, known, &kpl, &scratch, &have, 1)) != IH_OK) {
		ok = -rc;
		goto out;
	}
	ok = have == nmetas && nmetas > 0 && !known->oom && damage_refs_complete(known);
	for (size_t i = 0; ok && i < known->n; i++)
		ok = !known->v[i].is_metadata;
	for (size_t i = 0; ok && i < kpl.n; i++)
		ok = kpl.v[i].kind != IH_PROBLEM_METADATA;
	for (size_t i = 0; ok && i < known->n; i++)
		if (known->v[i].reason == IH_REASON_MISSING &&
		    !damage_add(d, w, known->v[i].sha1, NULL, IH_REASON_MISSING, MISSING_DETAIL) &&
		    d->oom)
			ok = -IH_ERR_NOMEM;
	for (size_t i = 0; ok == 1 && i < nmetas; i++)
		metas[i] = (struct image_meta){.image = ih_session_first(s) + (uint32_t)i, .ok = 1};
	if (ok == 1 && (rc = damage_walk_refs(d, w, metas, nmetas, 0, d->n, known, NULL)))
		ok = -rc;
out:
	free(kpl.v);
	if (ok != 1) {
		fp_record_free(rec);
		if (known->v || known->idx.cap)
			damage_set_free(known);
		memset(metas, 0, nmetas * sizeof *metas);
	}
	return ok;
}

/* After a full scan of every blob: the fingerprints of what it read and
 * the damage it found, for the next re-scan. */
static void save_fingerprints(ih_session *s, const struct scan_opts *so, struct fp_set *fps,
			      const ih_report *r)
{
	const struct wim *w = s->w;
	struct fp_record rec = {.scanned_at = ih_wallclock(), .fps = *fps,
				.bad = so->bad_int, .nbad = so->nbad_int};
	rec.dmg = calloc(r->n_damage + 1, sizeof *rec.dmg);
	if (!rec.dmg)
		return;
	for (size_t k = 0; k < r->n_damage; k++) {
		const size_t *v = ih_blobindex_get(&w->index, r->damage[k].sha1);
		if (!v || !scan_candidate(w, *v))
			continue; /* found without reading it: found again each time */
		struct fp_damage *dm = &rec.dmg[rec.ndmg++];
		memcpy(dm->sha1, r->damage[k].sha1, 20);
		dm->reason = r->damage[k].reason;
		snprintf(dm->detail, sizeof dm->detail, "%s", r->damage[k].detail);
	}
	fp_layout_hash(w, rec.layout);
	state_fp_save(s, &rec);
	free(rec.dmg);
}

int check_run(ih_session *s, ih_job *j, const ih_check_options *opt, ih_report **out,
	      ih_error *err)
{
	if (s->tree)
		return tree_check_run(s, j, opt, out, err);
	struct wim *w = s->w;
	uint32_t first = ih_session_first(s), last = ih_session_last(s);
	size_t nmetas = w->image_count && last >= first ? last - first + 1 : 0;
	struct image_meta *metas = NULL;
	struct ih_blobindex missing = {0};
	uint8_t *used = NULL;
	struct damage_set d;
	struct problem_list pl = {0};
	ih_report *r = NULL;
	struct ih_reader rd;
	struct fp_record rec = {0};
	struct fp_set fps = {0};
	struct scan_opts so = {.mode = IH_SCAN_DEEP};
	struct damage_set known = {0};
	double t0 = ih_now();
	int rc = IH_OK, lazy = 0;

	ih_reader_init(&rd, w);
	rd.threads = opt->threads > 0 ? opt->threads : s->threads;
	damage_set_init(&d);
	d.threads = rd.threads;

	/* The quick check, when the records vouch for everything it would
	 * decode: their findings, nothing decoded. */
	if (!opt->scan && !w->nonrepairable) {
		ih_job_set_phase(j, IH_PHASE_QUICK, 0, nmetas);
		rc = from_records(s, 1, &r);
		if (rc == IH_OK) {
			r->blobs_checked = nmetas;
			r->seconds = ih_now() - t0;
			goto out;
		}
		if (rc != CHECK_NO_RECORD) {
			rc = ih_fail(err, rc, "out of memory reading the state record");
			goto out;
		}
		rc = IH_OK;
	}

	metas = calloc(nmetas + 1, sizeof *metas);
	used = calloc(w->nblobs + 1, 1);
	r = calloc(1, sizeof *r);
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
	if (!opt->scan && !w->nonrepairable && recall_records(s, 0, &d, &pl, r, &have, 0)) {
		rc = ih_fail(err, IH_ERR_NOMEM, "out of memory reading the state record");
		goto out;
	}
	/* Every image selected: each unusable entry is damage, known before
	 * the walks, which then note its paths. */
	if (!w->nonrepairable && !s->index)
		structural_damage(s, NULL, &d);

	/* A re-scan whose records vouch for the trees decodes none now. */
	if (opt->scan && !opt->deep && !s->index && !w->nonrepairable && fingerprints_worth(w)) {
		lazy = quick_from_records(s, metas, nmetas, &rec, &known, &d);
		if (lazy < 0) {
			rc = ih_fail(err, -lazy, "out of memory reading the state record");
			goto out;
		}
	}

	/* Metadata: every selected image's directory tree, one at a time
	 * (each is freed after its walk). */
	for (size_t i = 0; i < nmetas && !w->nonrepairable && !lazy; i++) {
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
		image_meta_free(m);
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
	d.walked = d.n; /* what is known so far has all its paths */
	if (!w->nonrepairable && s->index)
		structural_damage(s, used, &d);

	int keep = opt->scan && !opt->no_record && s->state_dir && !s->index &&
		   !w->nonrepairable && fingerprints_worth(w);
	if (opt->scan && !w->nonrepairable) {
		int threads = opt->threads > 0 ? opt->threads : s->threads;
		int meta_ok = nmetas > 0;
		for (size_t i = 0; i < nmetas; i++)
			meta_ok &= metas[i].ok;
		if (lazy) {
			so.mode = IH_SCAN_FINGERPRINT;
			so.rec = &rec;
			so.known = &known;
		} else if (choose_scan(s, opt, &rec, &so, r, meta_ok)) {
			rc = ih_fail(err, IH_ERR_NOMEM, "out of memory reading the fingerprint record");
			goto out;
		}
		if ((so.mode == IH_SCAN_FINGERPRINT || keep) &&
		    fp_set_alloc(&fps, w, so.mode == IH_SCAN_FINGERPRINT ? rec.fps.chunk
				 : ih_test_fp_chunk ? ih_test_fp_chunk : FP_CHUNK)) {
			rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
			goto out;
		}
		so.fp_out = fps.fp ? &fps : NULL;
		so.metas = metas;
		so.nmetas = nmetas;
		rc = scan_blobs(s, j, threads, s->index ? used : NULL, &so, &d, &pl, err);
		if (rc || ih_job_cancelled(j))
			goto out;
		r->scanned = 1;
		r->scan_kind = so.mode;
		r->bytes_deep_scanned = so.bytes_deep;
		r->bytes_fingerprinted = so.bytes_fp;
	}

	r->blobs_checked = atomic_load(&j->blobs_done) + (r->scanned ? nmetas : 0);
	r->bytes_checked = r->scanned ? so.bytes_checked : 0;
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
		if (keep && so.fp_out)
			save_fingerprints(s, &so, &fps, r);
	}
out:
	for (size_t i = 0; i < nmetas && metas; i++)
		image_meta_free(&metas[i]);
	free(metas);
	ih_blobindex_free(&missing);
	free(used);
	damage_set_free(&d);
	if (lazy == 1)
		damage_set_free(&known);
	free(pl.v);
	ih_reader_free(&rd);
	fp_record_free(&rec);
	fp_set_free(&fps);
	free(so.bad_int);
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
