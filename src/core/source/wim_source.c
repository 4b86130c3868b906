/* wim_source.c - a WIM, ESD or split set as a repair source: blobs found by
 * SHA-1 in its blob table (with an INDEX, only those that image uses),
 * streamed through a reader; stored bytes copied as they are when the
 * codec and chunk size match the image being repaired. */
#include <stdlib.h>
#include "metadata.h"
#include "reader.h"
#include "session.h"
#include "source.h"
#include "wim.h"

struct wim_source {
	struct wim *w;
	struct ih_reader rd;
	struct ih_blobindex allowed; /* with an INDEX: the blobs that image uses */
	int narrowed;
};

static int mark_allowed(void *ctx, const uint8_t sha1[20], const char *path, int named)
{
	(void)path;
	(void)named;
	return ih_blobindex_put(ctx, sha1, 0, NULL) ? 0 : -1;
}

static int wim_find(struct source *src, const struct want *want, const struct writer *wr,
		    size_t nth, struct candidate *c)
{
	struct wim_source *ws = src->impl;
	const struct wim_blob *b;

	if (nth > 0)
		return 0;
	if (ws->narrowed && !ih_blobindex_get(&ws->allowed, want->sha1))
		return 0;
	b = wim_find_blob(ws->w, want->sha1);
	if (!b || b->bad || b->size == 0)
		return 0;
	c->blob = b;
	c->size = b->size;
	c->raw_flags = b->flags & RESHDR_FLAG_COMPRESSED;
	c->raw = wr && b->solid < 0 &&
		 ((c->raw_flags && ws->w->ctype == wr->ctype && ws->w->chunk_size == wr->chunk_size) ||
		  (!c->raw_flags && wr->ctype == CTYPE_NONE));
	return 1;
}

static int wim_read(struct source *src, const struct candidate *c, struct sink *sk)
{
	struct wim_source *ws = src->impl;
	ih_reason reason;
	char detail[160];
	int rc;

	/* Raw: every stored byte is written as it is read, and the same bytes
	 * are decoded and hashed: what is kept is exactly what was verified. */
	if (sk->mode == SINK_RAW) {
		ws->rd.raw_tap = sink_raw;
		ws->rd.raw_ctx = sk;
	}
	rc = ih_read_any_blob(&ws->rd, c->blob, sink_feed, sk, NULL, &reason, detail,
			      sizeof detail);
	ws->rd.raw_tap = NULL;
	ws->rd.raw_ctx = NULL;
	return rc == IH_READ_OK;
}

static void wim_close(struct source *src)
{
	struct wim_source *ws = src->impl;
	if (!ws)
		return;
	if (ws->w) {
		ih_reader_free(&ws->rd);
		wim_free(ws->w);
	}
	if (ws->narrowed)
		ih_blobindex_free(&ws->allowed);
	free(ws);
	src->impl = NULL;
}

static const struct source_ops wim_ops = {
	.find = wim_find,
	.read = wim_read,
	.close = wim_close,
};

/* With an INDEX, only that image's blobs (and its directory tree) count. */
static int narrow_to_image(struct source *src, struct wim_source *ws, uint32_t index)
{
	struct image_meta m;
	ih_error err = {0};
	char why[128];
	const struct ih_source_report *rep = src->rep;

	if (index > ws->w->image_count) {
		source_fail(src, IH_ERR_BAD_INDEX, "%s has no image %u", rep->path, index);
		return -1;
	}
	if (image_meta_read(ws->w, &ws->rd, index, &m, &err) || !m.ok) {
		image_meta_free(&m);
		source_fail(src, IH_ERR_NONREPAIRABLE,
			    "%s: the metadata of image %u is damaged", rep->path, index);
		return -1;
	}
	if (ih_blobindex_init(&ws->allowed, 1024)) {
		image_meta_free(&m);
		source_fail(src, IH_ERR_NOMEM, "out of memory");
		return -1;
	}
	ws->narrowed = 1;
	const struct wim_blob *meta = wim_image_metadata(ws->w, index);
	int bad = !meta || !ih_blobindex_put(&ws->allowed, meta->sha1, 0, NULL) ||
		  ih_meta_walk(m.buf, m.len, mark_allowed, &ws->allowed, NULL, why, sizeof why) != 0;
	image_meta_free(&m);
	if (bad) {
		source_fail(src, IH_ERR_NOMEM, "%s: cannot list the blobs of image %u", rep->path,
			    index);
		return -1;
	}
	return 0;
}

void wim_source_open(struct source *src)
{
	struct wim_source *ws = calloc(1, sizeof *ws);
	ih_error err = {0};

	if (!ws) {
		source_fail(src, IH_ERR_NOMEM, "out of memory");
		return;
	}
	src->impl = ws;
	src->ops = &wim_ops;
	if (wim_open(src->rep->path, &ws->w, &err)) {
		source_fail(src, err.code, "%s", err.message);
		return;
	}
	ih_reader_init(&ws->rd, ws->w);
	if (ws->w->nonrepairable) {
		source_fail(src, IH_ERR_NONREPAIRABLE, "%s: %s", src->rep->path,
			    ws->w->problems.n ? ws->w->problems.v[0].message : "unreadable");
		return;
	}
	if (src->rep->index)
		narrow_to_image(src, ws, src->rep->index);
}
