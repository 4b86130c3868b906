/* restore_fetch.c - the fetch stage: for each target, the sources in order,
 * each candidate streamed through the sink, until one verifies.  A
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

/* Asks source i for target t.  1: supplied; 0: not there; -1: stop
 * (cancelled, or writing failed: err set). */
static int ask_source(struct restore_ctx *x, size_t i, struct target *t, struct sink *sk,
		      struct writer *wr, uint64_t done_bytes, ih_error *err)
{
	struct source *src = &x->src[i];
	struct want w = {.sha1 = t->dm->sha1, .size = t->blob ? t->blob->size : 0,
			 .refs = t->dm->refs, .n_refs = t->dm->n_refs,
			 .images = t->dm->images, .n_images = t->dm->n_images,
			 .reason = t->dm->reason, .is_metadata = t->dm->is_metadata};
	struct candidate c;

	for (size_t nth = 0; src->ops; nth++) {
		memset(&c, 0, sizeof c);
		if (!src->ops->find(src, &w, wr, nth, &c))
			return 0;
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
	return 0;
}

int restore_fetch(struct restore_ctx *x, ih_error *err)
{
	struct sink sk;
	uint64_t total = 0, done_bytes = 0;
	int rc = IH_OK;

	for (size_t k = 0; k < x->nt; k++)
		total += x->ts[k].dm->size;
	if (sink_init(&sk, x->j))
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	ih_job_set_phase(x->j, IH_PHASE_FETCH, total, x->nt);
	for (size_t k = 0; k < x->nt && rc == IH_OK && !ih_job_cancelled(x->j); k++) {
		struct target *t = &x->ts[k];
		struct writer *wr = NULL;
		int wanted = !t->drop && !t->skipped;
		if (wanted)
			rc = x->cm->ops->writer_for(x->cm, t->part, &wr, err);
		/* the target's own order (the caller's ORDER answer), else all */
		size_t n = t->order ? t->norder : x->nsrc;
		for (size_t o = 0; rc == IH_OK && wanted && t->source < 0 && o < n; o++) {
			size_t i = t->order ? t->order[o] : o;
			if (ask_source(x, i, t, &sk, wr, done_bytes, err) < 0)
				rc = ih_job_cancelled(x->j) ? IH_OK : err->code;
		}
		done_bytes += t->dm->size;
		atomic_store(&x->j->bytes_done, done_bytes);
		atomic_fetch_add(&x->j->blobs_done, 1);
		ih_job_tick(x->j);
	}
	sink_free(&sk);
	return rc;
}
