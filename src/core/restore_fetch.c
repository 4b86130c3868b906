/* restore_fetch.c - the fetch stage: for each target, the sources in order,
 * each candidate streamed through the sink, until one verifies.  It runs
 * in rounds (round r asks every target still wanting its r-th source), so
 * that each source hears of all it will be asked at once.  A
 * candidate whose size nobody vouches for (the image's entry has no size,
 * or a different one) is hashed first and written only once it matched, so
 * a huge wrong file costs reading, never writing. */
#include <errno.h>
#include <stdlib.h>
#include "job.h"
#include "restore.h"
#include "util.h"

/* One pass of a candidate through the sink. */
static enum sink_result take_pass(struct source *src, const struct candidate *c,
				  struct sink *sk, struct writer *wr, enum sink_mode mode,
				  const uint8_t sha1[20], struct supplied *out)
{
	if (sink_begin(sk, wr, mode, c->size))
		return SINK_FAILED;
	int read_ok = src->ops->read(src, c, sk);
	src->rep->bytes_read += sk->got;
	return sink_end(sk, read_ok, sha1, out);
}

static enum sink_result take(struct source *src, const struct candidate *c,
			     const struct want *w, struct sink *sk, struct writer *wr,
			     struct supplied *out)
{
	enum sink_result res;
	if (!wr) /* a dry run: verified, nothing written */
		return take_pass(src, c, sk, NULL, SINK_VERIFY, w->sha1, out);
	if (c->size != w->size) {
		res = take_pass(src, c, sk, NULL, SINK_VERIFY, w->sha1, out);
		if (res != SINK_OK)
			return res;
	}
	res = take_pass(src, c, sk, wr, c->raw ? SINK_RAW : SINK_ENCODE, w->sha1, out);
	if (res == SINK_OK && c->raw)
		out->res.flags = c->raw_flags;
	return res;
}

static struct want want_of(const struct target *t)
{
	return (struct want){.sha1 = t->dm->sha1, .size = t->blob ? t->blob->size : 0,
			     .refs = t->dm->refs, .n_refs = t->dm->n_refs,
			     .images = t->dm->images, .n_images = t->dm->n_images,
			     .reason = t->dm->reason, .is_metadata = t->dm->is_metadata};
}

/* Notes what source i said of target t, for the report.  0, or -1 when
 * out of memory. */
static int note_try(struct target *t, size_t i, ih_try_status st, const char *why)
{
	ih_try *v = realloc(t->tries, (t->ntries + 1) * sizeof *v);
	if (!v)
		return -1;
	t->tries = v;
	v[t->ntries] = (ih_try){.source = (int)i, .status = st};
	if (why && *why && !(v[t->ntries].reason = ih_strdup(why)))
		return -1;
	t->ntries++;
	return 0;
}

/* Source i did not supply t: what it said (mismatched: it offered bytes
 * that did not verify), noted for the report. */
static int said_no(struct source *src, size_t i, struct target *t, int mismatched)
{
	ih_try_status st = mismatched ? IH_TRY_WRONG_BYTES : IH_TRY_NOT_FOUND;
	struct want w = want_of(t);
	if (!src->ops) /* it became unusable meanwhile */
		st = src->rep->kind == IH_SOURCE_HTTP ? IH_TRY_DOWNLOAD_FAILED : IH_TRY_UNUSABLE;
	else if (src->ops->why_not && src->ops->why_not(src, &w) == IH_ERR_DOWNLOAD)
		st = IH_TRY_DOWNLOAD_FAILED;
	else if (src->why_error)
		st = IH_TRY_ERROR;
	t->download_failed |= st == IH_TRY_DOWNLOAD_FAILED;
	src->rep->blobs_not_found += st == IH_TRY_NOT_FOUND;
	return note_try(t, i, st, src->why);
}

/* Asks source i for target t.  1: supplied; 0: not there; -1: stop
 * (cancelled, or writing failed, or out of memory: err set). */
static int ask_source(struct restore_ctx *x, size_t i, struct target *t, struct sink *sk,
		      struct writer *wr, uint64_t done_bytes, ih_error *err)
{
	struct source *src = &x->src[i];
	struct want w = want_of(t);
	struct candidate c;
	int mismatched = 0;

	src->why[0] = '\0';
	src->why_error = 0;
	for (size_t nth = 0; src->ops; nth++) {
		memset(&c, 0, sizeof c);
		if (!src->ops->find(src, &w, wr, nth, &c))
			break;
		enum sink_result res = take(src, &c, &w, sk, wr, &t->sup);
		free(c.path);
		atomic_store(&x->j->bytes_done, done_bytes); /* a rejected try does not count */
		switch (res) {
		case SINK_OK:
			src->rep->blobs_used++;
			t->source = (int)i;
			return 1;
		case SINK_MISMATCH:
			src->rep->blobs_rejected++;
			mismatched = 1;
			break;
		case SINK_STOPPED:
			return -1;
		case SINK_FAILED:
			ih_fail(err, ih_errno_code(wr->err ? wr->err : EIO),
				"%s: writing failed: %s; the image was left as it was", wr->path,
				strerror(wr->err ? wr->err : EIO));
			return -1;
		}
	}
	if (ih_job_cancelled(x->j)) /* (a scripted source's answer was cut short) */
		return 0;
	if (said_no(src, i, t, mismatched)) {
		ih_fail(err, IH_ERR_NOMEM, "out of memory");
		return -1;
	}
	return 0;
}

/* The r-th source to ask for target t: its own order (the caller's ORDER
 * answer), else the restore's (DISM's: caller's, policy's, the default
 * repair server); SIZE_MAX when it has no r-th. */
static size_t source_of(const struct restore_ctx *x, const struct target *t, size_t r)
{
	if (t->order)
		return r < t->norder && t->order[r] < x->nsrc ? t->order[r] : SIZE_MAX;
	return r < x->nsrc ? r : SIZE_MAX;
}

/* One target, supplied or given up: progress. */
static void target_done(struct restore_ctx *x, const struct target *t, uint64_t *done_bytes)
{
	*done_bytes += t->dm->size;
	atomic_store(&x->j->bytes_done, *done_bytes);
	atomic_fetch_add(&x->j->blobs_done, 1);
	ih_job_tick(x->j);
}

/* Round r: every target still wanting gets its r-th source.  Each source
 * first hears of all the wants of its group at once (prepare: a remote
 * source requests them in one wave), then is asked for each in turn. */
static int fetch_round(struct restore_ctx *x, size_t r, struct sink *sk, size_t *group,
		       struct want *wants, uint64_t *done_bytes, ih_error *err)
{
	for (size_t i = 0; i < x->nsrc; i++) {
		struct source *src = &x->src[i];
		size_t ng = 0;
		if (ih_job_cancelled(x->j))
			return IH_OK;
		for (size_t k = 0; k < x->nt; k++) {
			const struct target *t = &x->ts[k];
			if (!t->drop && !t->skipped && t->source < 0 && source_of(x, t, r) == i) {
				group[ng] = k;
				wants[ng++] = want_of(t);
			}
		}
		if (!ng)
			continue;
		ih_try_status unusable = IH_TRY_UNUSABLE;
		if (src->ops && src->ops->prepare && src->ops->prepare(src, wants, ng, x->j)) {
			/* it became unusable: what it may have had did not come */
			if (src->rep->kind == IH_SOURCE_HTTP)
				unusable = IH_TRY_DOWNLOAD_FAILED;
		}
		if (!src->ops) { /* unusable: its error is in the report's sources */
			for (size_t g = 0; g < ng; g++) {
				struct target *t = &x->ts[group[g]];
				t->download_failed |= unusable == IH_TRY_DOWNLOAD_FAILED;
				if (note_try(t, i, unusable, NULL))
					return ih_fail(err, IH_ERR_NOMEM, "out of memory");
			}
			continue;
		}
		for (size_t g = 0; g < ng && !ih_job_cancelled(x->j); g++) {
			struct target *t = &x->ts[group[g]];
			struct writer *wr = NULL;
			int rc = x->cm->ops->writer_for(x->cm, t->part, &wr, err);
			if (rc == IH_OK && ask_source(x, i, t, sk, wr, *done_bytes, err) < 0)
				rc = ih_job_cancelled(x->j) ? IH_OK : err->code;
			if (rc != IH_OK)
				return rc;
			if (t->source >= 0)
				target_done(x, t, done_bytes);
		}
	}
	return IH_OK;
}

int restore_fetch(struct restore_ctx *x, ih_error *err)
{
	struct sink sk;
	uint64_t total = 0, done_bytes = 0;
	int rc = IH_OK;
	size_t *group = calloc(x->nt + 1, sizeof *group);
	struct want *wants = calloc(x->nt + 1, sizeof *wants);

	for (size_t k = 0; k < x->nt; k++)
		total += x->ts[k].dm->size;
	if (!group || !wants || sink_init(&sk, x->j)) {
		free(group);
		free(wants);
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	ih_job_set_phase(x->j, IH_PHASE_FETCH, total, x->nt);
	size_t rounds = x->nsrc;
	for (size_t k = 0; k < x->nt; k++)
		if (x->ts[k].order && x->ts[k].norder > rounds)
			rounds = x->ts[k].norder;
	for (size_t r = 0; r < rounds && rc == IH_OK && !ih_job_cancelled(x->j); r++)
		rc = fetch_round(x, r, &sk, group, wants, &done_bytes, err);
	for (size_t k = 0; k < x->nt; k++) {
		struct target *t = &x->ts[k];
		if (t->source >= 0 || t->drop)
			continue;
		if (t->skipped) {
			target_done(x, t, &done_bytes);
			continue;
		}
		t->code = t->download_failed ? IH_ERR_DOWNLOAD
			  : x->default_barred ? IH_ERR_POLICY : IH_ERR_SOURCE_MISSING;
		target_done(x, t, &done_bytes);
	}
	for (size_t k = 0; k < x->nt; k++)
		if (x->ts[k].drop)
			atomic_fetch_add(&x->j->blobs_done, 1);
	sink_free(&sk);
	free(group);
	free(wants);
	return rc;
}

void restore_targets_free(struct target *ts, size_t nt)
{
	for (size_t k = 0; ts && k < nt; k++) {
		free(ts[k].order);
		tries_free(ts[k].tries, ts[k].ntries);
	}
	free(ts);
}
