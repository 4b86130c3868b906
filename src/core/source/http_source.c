/* http_source.c - a WIM, ESD or split set on a web server as a repair
 * source.  Nothing is fetched until the source is first asked; then:
 *
 *   round 1  the header (208 bytes)
 *   round 2  the blob table and the XML (one range when they are near),
 *            and the headers of a split set's other parts
 *   round 3  (split sets) the other parts' blob tables
 *   solid    (ESDs) the solid resources' headers, then their chunk tables
 *   wave     every resource the round's wants need, at once: non-solid
 *            resources whole, solid blobs as the solid chunks holding them
 *
 * The bytes land in sparse spill files at their remote offsets (in a
 * private temporary directory, unlinked once opened), which are opened as
 * an ordinary WIM: the format layer, the reader and its decompressors do
 * the rest, exactly as for a local source.  A blob is offered only when
 * every byte it needs arrived; the sink verifies its SHA-1. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "http_xfer.h"
#include "metadata.h"
#include "reader.h"
#include "session.h"
#include "source.h"
#include "util.h"
#include "wim.h"

#define TABLE_MAX (512ull << 20)  /* a blob table larger than this is no WIM's */
#define XML_MAX_FETCH (64ull << 20)

static const struct source_ops http_ops;

struct http_source {
	struct http_conf conf;
	struct http_xfer x;
	char *url;
	int opened;
	struct http_file *files;
	uint16_t nfiles;
	char dir[512];            /* spill directory until the WIM is open */
	struct wim *w;
	struct ih_reader rd;
	uint8_t *tried;           /* per blob of w: its bytes were asked for */
	struct ih_blobindex allowed;
	int narrowed;
};

static void spill_path(const struct http_source *hs, unsigned part, char *out, size_t len)
{
	if (part == 1)
		snprintf(out, len, "%s/part.wim", hs->dir);
	else
		snprintf(out, len, "%s/part%u.wim", hs->dir, part);
}

static void remove_spill_dir(struct http_source *hs)
{
	char p[600];
	if (!hs->dir[0])
		return;
	for (unsigned k = 1; k <= hs->nfiles; k++) {
		spill_path(hs, k, p, sizeof p);
		unlink(p);
	}
	rmdir(hs->dir);
	hs->dir[0] = '\0';
}

static void http_close(struct source *src)
{
	struct http_source *hs = src->impl;
	if (!hs)
		return;
	if (hs->w) {
		ih_reader_free(&hs->rd);
		wim_free(hs->w);
	}
	remove_spill_dir(hs);
	for (unsigned k = 0; k < hs->nfiles; k++) {
		struct http_file *f = &hs->files[k];
		if (f->fd >= 0)
			close(f->fd);
		free(f->url);
		free(f->shown);
		ivset_free(&f->have);
	}
	free(hs->files);
	free(hs->tried);
	if (hs->narrowed)
		ih_blobindex_free(&hs->allowed);
	http_xfer_free(&hs->x);
	free(hs->url);
	free(hs);
	src->impl = NULL;
}

/* The source is unusable: what the engine said, or why. */
static int fail_xfer(struct source *src, int rc, const char *what)
{
	struct http_source *hs = src->impl;
	if (rc == -2)
		source_fail(src, IH_ERR_CANCELLED, "%s: cancelled", src->rep->path);
	else if (hs->x.fatal)
		source_fail(src, hs->x.fatal_code, "%s", hs->x.fatal_msg);
	else
		source_fail(src, IH_ERR_DOWNLOAD, "%s: %s", src->rep->path, what);
	return -1;
}

static int add_file(struct http_source *hs, const char *url)
{
	char p[600];
	struct http_file *nf = realloc(hs->files, (hs->nfiles + 1u) * sizeof *nf);
	if (!nf)
		return -1;
	hs->files = nf;
	struct http_file *f = &nf[hs->nfiles];
	memset(f, 0, sizeof *f);
	f->fd = -1;
	hs->nfiles++;
	f->url = ih_strdup(url);
	f->shown = url_shown(url);
	spill_path(hs, hs->nfiles, p, sizeof p);
	f->fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	return f->url && f->shown && f->fd >= 0 ? 0 : -1;
}

static int have(const struct http_file *f, uint64_t off, uint64_t len)
{
	return ivset_covers(&f->have, off, off + len);
}

/* A resource of a part, if it lies in the file. */
static int add_res(struct span *v, size_t *n, uint16_t file, const struct http_file *f,
		   const struct wim_reshdr *r, uint64_t max)
{
	if (!r->stored_size || r->stored_size > max || r->offset < WIM_HEADER_SIZE ||
	    r->offset > f->size || r->stored_size > f->size - r->offset)
		return 0;
	v[(*n)++] = (struct span){file, r->offset, r->stored_size};
	return 1;
}

static int read_header(struct http_source *hs, unsigned k, struct wim_header *h, char *why,
		       size_t whylen)
{
	uint8_t hb[WIM_HEADER_SIZE];
	if (!have(&hs->files[k], 0, WIM_HEADER_SIZE) ||
	    pread(hs->files[k].fd, hb, sizeof hb, 0) != (ssize_t)sizeof hb) {
		snprintf(why, whylen, "the header did not arrive");
		return -1;
	}
	return wimfmt_parse_header(hb, sizeof hb, h, why, whylen);
}

/* The solid resources' headers, then their chunk tables: what opening the
 * spill files as a WIM reads of them. */
static int fetch_solid_tables(struct source *src, struct http_source *hs)
{
	struct span *v = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		n = 0;
		for (unsigned k = 0; k < hs->nfiles; k++) {
			struct http_file *f = &hs->files[k];
			struct wim_header h;
			char why[128];
			if (read_header(hs, k, &h, why, sizeof why) || h.version != WIM_VERSION_SOLID)
				continue;
			const struct wim_reshdr *bt = &h.blob_table;
			if (!have(f, bt->offset, bt->stored_size))
				continue;
			uint8_t *tb = malloc(bt->stored_size ? bt->stored_size : 1);
			if (!tb || pread(f->fd, tb, bt->stored_size, (off_t)bt->offset) !=
					   (ssize_t)bt->stored_size) {
				free(tb);
				continue;
			}
			for (uint64_t i = 0; i + BLOB_ENTRY_SIZE <= bt->stored_size; i += BLOB_ENTRY_SIZE) {
				struct wim_blob_entry e;
				wimfmt_get_blob_entry(tb + i, &e);
				if (!(e.res.flags & RESHDR_FLAG_SOLID) ||
				    e.res.orig_size != SOLID_RESOURCE_MAGIC ||
				    e.res.stored_size < SOLID_HEADER_SIZE || e.res.offset > f->size ||
				    e.res.stored_size > f->size - e.res.offset)
					continue;
				struct span s = {(uint16_t)k, e.res.offset, SOLID_HEADER_SIZE};
				if (pass == 1) {
					uint8_t sb[SOLID_HEADER_SIZE];
					struct wim_solid_header sh;
					if (!have(f, e.res.offset, SOLID_HEADER_SIZE) ||
					    pread(f->fd, sb, sizeof sb, (off_t)e.res.offset) != (ssize_t)sizeof sb ||
					    wimfmt_parse_solid_header(sb, sizeof sb, &sh))
						continue;
					uint64_t nch = wimfmt_num_chunks(sh.usize, sh.chunk_size);
					if (nch > (e.res.stored_size - SOLID_HEADER_SIZE) / 4)
						continue;
					s.off = e.res.offset + SOLID_HEADER_SIZE;
					s.len = nch * 4;
				}
				if (n == cap) {
					size_t nc = cap ? cap * 2 : 16;
					struct span *nv = realloc(v, nc * sizeof *nv);
					if (!nv) {
						free(tb);
						free(v);
						source_fail(src, IH_ERR_NOMEM, "out of memory");
						return -1;
					}
					v = nv;
					cap = nc;
				}
				v[n++] = s;
			}
			free(tb);
		}
		if (n && (rc = http_fetch(&hs->x, hs->files, hs->nfiles, v, n)) != 0) {
			free(v);
			return fail_xfer(src, rc, "");
		}
	}
	free(v);
	return 0;
}

static int mark_allowed(void *ctx, const uint8_t sha1[20], const char *path, int named)
{
	(void)path;
	(void)named;
	return ih_blobindex_put(ctx, sha1, 0, NULL) ? 0 : -1;
}

/* With an INDEX: that image's metadata resource is fetched, and only the
 * blobs it uses count. */
static int narrow(struct source *src, struct http_source *hs, uint32_t index)
{
	const struct wim_blob *meta = wim_image_metadata(hs->w, index);
	struct image_meta m = {0}; /* freed even when its bytes never arrived */
	ih_error err = {0};
	char why[128];

	if (!meta || index > hs->w->image_count) {
		source_fail(src, IH_ERR_BAD_INDEX, "%s has no image %u", src->rep->path, index);
		return -1;
	}
	struct span s = {(uint16_t)(meta->part - 1), meta->offset, meta->stored_size};
	int rc = http_fetch(&hs->x, hs->files, hs->nfiles, &s, 1);
	if (rc)
		return fail_xfer(src, rc, "");
	if (!have(&hs->files[s.file], s.off, s.len) ||
	    image_meta_read(hs->w, &hs->rd, index, &m, &err) || !m.ok) {
		image_meta_free(&m);
		source_fail(src, IH_ERR_DOWNLOAD, "%s: the metadata of image %u could not be fetched%s%s",
			    src->rep->path, index, m.detail[0] ? ": " : "", m.detail);
		return -1;
	}
	if (ih_blobindex_init(&hs->allowed, 1024)) {
		image_meta_free(&m);
		source_fail(src, IH_ERR_NOMEM, "out of memory");
		return -1;
	}
	hs->narrowed = 1;
	int bad = !ih_blobindex_put(&hs->allowed, meta->sha1, 0, NULL) ||
		  ih_meta_walk(m.buf, m.len, mark_allowed, &hs->allowed, NULL, why, sizeof why) != 0;
	image_meta_free(&m);
	if (bad) {
		source_fail(src, IH_ERR_DOWNLOAD, "%s: cannot list the blobs of image %u",
			    src->rep->path, index);
		return -1;
	}
	return 0;
}

/* A message of the format layer names the spill file: without it. */
static const char *local_msg(const char *msg, const char *dir)
{
	size_t dl = strlen(dir);
	const char *colon = strstr(msg, ": ");
	if (dl && !strncmp(msg, dir, dl) && colon)
		return colon + 2;
	return msg;
}

static int remote_open(struct source *src, struct http_source *hs)
{
	ih_source_report *rep = src->rep;
	struct wim_header h;
	struct span v[3 + 1];
	struct span *pv = NULL;
	char why[160], first[600];
	ih_error err = {0};
	int rc;

	hs->opened = 1;
	const char *tmp = getenv("TMPDIR");
	snprintf(hs->dir, sizeof hs->dir, "%s/ihhttp.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(hs->dir)) {
		int e = errno;
		hs->dir[0] = '\0';
		source_fail(src, ih_errno_code(e), "%s: no spill directory: %s", rep->path, strerror(e));
		return -1;
	}
	if (add_file(hs, hs->url)) {
		source_fail(src, IH_ERR_IO, "%s: cannot create a spill file: %s", rep->path,
			    strerror(errno));
		return -1;
	}
	/* round 1: the header */
	v[0] = (struct span){0, 0, WIM_HEADER_SIZE};
	if ((rc = http_fetch(&hs->x, hs->files, 1, v, 1)))
		return fail_xfer(src, rc, "");
	rc = read_header(hs, 0, &h, why, sizeof why);
	if (rc == -2) {
		source_fail(src, IH_ERR_NOT_WIM, "%s: not a WIM, ESD or SWM file (no MSWIM magic number)",
			    rep->path);
		return -1;
	}
	if (rc) {
		source_fail(src, IH_ERR_NONREPAIRABLE, "%s: WIM header is invalid: %s", rep->path, why);
		return -1;
	}
	if (h.part_number != 1) {
		source_fail(src, IH_ERR_INVALID_ARG, "%s is part %u of a split set; name the first part",
			    rep->path, h.part_number);
		return -1;
	}
	/* round 2: the blob table and XML; the other parts' headers */
	pv = calloc((size_t)h.total_parts + 3, sizeof *pv);
	if (!pv) {
		source_fail(src, IH_ERR_NOMEM, "out of memory");
		return -1;
	}
	size_t n = 0;
	if (!add_res(pv, &n, 0, &hs->files[0], &h.blob_table, TABLE_MAX)) {
		free(pv);
		source_fail(src, IH_ERR_NONREPAIRABLE, "%s: the blob table lies outside the file",
			    rep->path);
		return -1;
	}
	add_res(pv, &n, 0, &hs->files[0], &h.xml, XML_MAX_FETCH);
	for (unsigned k = 2; k <= h.total_parts; k++) {
		char *pu = url_part(hs->url, k);
		if (!pu || add_file(hs, pu)) {
			free(pu);
			free(pv);
			source_fail(src, IH_ERR_NOMEM, "%s: cannot set up part %u", rep->path, k);
			return -1;
		}
		free(pu);
		pv[n++] = (struct span){(uint16_t)(k - 1), 0, WIM_HEADER_SIZE};
	}
	if ((rc = http_fetch(&hs->x, hs->files, hs->nfiles, pv, n))) {
		free(pv);
		return fail_xfer(src, rc, "");
	}
	/* round 3 (split sets): the other parts' blob tables */
	n = 0;
	for (unsigned k = 1; k < hs->nfiles; k++) {
		struct wim_header ph;
		if (read_header(hs, k, &ph, why, sizeof why) == 0)
			add_res(pv, &n, (uint16_t)k, &hs->files[k], &ph.blob_table, TABLE_MAX);
	}
	if (n && (rc = http_fetch(&hs->x, hs->files, hs->nfiles, pv, n))) {
		free(pv);
		return fail_xfer(src, rc, "");
	}
	free(pv);
	for (unsigned k = 0; k < hs->nfiles; k++) {
		struct wim_header ph;
		if (read_header(hs, k, &ph, why, sizeof why) == 0 &&
		    !have(&hs->files[k], ph.blob_table.offset, ph.blob_table.stored_size)) {
			source_fail(src, IH_ERR_DOWNLOAD, "%s: the blob table did not arrive",
				    hs->files[k].shown);
			return -1;
		}
	}
	if (fetch_solid_tables(src, hs))
		return -1;
	/* the spill files, opened as a WIM */
	spill_path(hs, 1, first, sizeof first);
	rc = wim_open(first, &hs->w, &err);
	char dir[sizeof hs->dir];
	snprintf(dir, sizeof dir, "%s", hs->dir);
	remove_spill_dir(hs);
	if (rc) {
		source_fail(src, rc == IH_ERR_MISSING_PART ? IH_ERR_DOWNLOAD : rc, "%s: %s", rep->path,
			    rc == IH_ERR_MISSING_PART ? "a part of the split set is missing or "
							"is not of this set"
						      : local_msg(err.message, dir));
		return -1;
	}
	ih_reader_init(&hs->rd, hs->w);
	if (hs->w->nonrepairable) {
		const char *msg = "unreadable";
		for (size_t i = 0; i < hs->w->problems.n; i++)
			if (hs->w->problems.v[i].severity == IH_NONREPAIRABLE) {
				msg = hs->w->problems.v[i].message;
				break;
			}
		source_fail(src, IH_ERR_NONREPAIRABLE, "%s: %s", rep->path, local_msg(msg, dir));
		return -1;
	}
	hs->tried = calloc(hs->w->nblobs + 1, 1);
	if (!hs->tried) {
		source_fail(src, IH_ERR_NOMEM, "out of memory");
		return -1;
	}
	if (rep->index && narrow(src, hs, rep->index))
		return -1;
	rep->status = IH_SOURCE_USABLE;
	rep->usable = 1;
	return 0;
}

/* The byte range of its part a blob needs: a non-solid resource whole; a
 * solid blob's chunks.  0 when the entry is unusable. */
static int blob_span(const struct wim *w, const struct wim_blob *b, struct span *s)
{
	if (b->solid < 0) {
		*s = (struct span){(uint16_t)(b->part - 1), b->offset, b->stored_size};
		return b->stored_size > 0;
	}
	const struct wim_solid *so = &w->solids[b->solid];
	if (so->bad || !so->sh.chunk_size || !b->size)
		return 0;
	uint64_t cs = so->sh.chunk_size, c0 = b->offset / cs, c1 = (b->offset + b->size - 1) / cs;
	if (c1 >= so->nchunks)
		return 0;
	*s = (struct span){(uint16_t)(so->part - 1), so->data_start + so->chunk_offs[c0],
			   so->chunk_offs[c1 + 1] - so->chunk_offs[c0]};
	return 1;
}

static const struct wim_blob *usable_blob(struct http_source *hs, const uint8_t *sha1)
{
	if (hs->narrowed && !ih_blobindex_get(&hs->allowed, sha1))
		return NULL;
	const struct wim_blob *b = wim_find_blob(hs->w, sha1);
	if (!b || b->bad || b->size == 0)
		return NULL;
	return b;
}

static int arrived(struct http_source *hs, const struct wim_blob *b)
{
	struct span s;
	return blob_span(hs->w, b, &s) && have(&hs->files[s.file], s.off, s.len);
}

static int http_prepare(struct source *src, const struct want *wants, size_t n, struct ih_job *job)
{
	struct http_source *hs = src->impl;
	struct span *v;
	size_t nv = 0;

	hs->x.job = job;
	if (!hs->opened && remote_open(src, hs))
		return -1;
	v = malloc((n + 1) * sizeof *v);
	if (!v) {
		source_fail(src, IH_ERR_NOMEM, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		const struct wim_blob *b = usable_blob(hs, wants[i].sha1);
		size_t bi;
		if (!b || hs->tried[bi = (size_t)(b - hs->w->blobs)])
			continue;
		hs->tried[bi] = 1;
		if (blob_span(hs->w, b, &v[nv]))
			nv++;
	}
	int rc = nv ? http_fetch(&hs->x, hs->files, hs->nfiles, v, nv) : 0;
	free(v);
	if (rc == -1)
		return fail_xfer(src, rc, "");
	return 0; /* cancelled: the fetch stage sees it */
}

static int http_find(struct source *src, const struct want *want, const struct writer *wr,
		     size_t nth, struct candidate *c)
{
	struct http_source *hs = src->impl;
	const struct wim_blob *b;

	if (nth > 0)
		return 0;
	if (!hs->opened && http_prepare(src, want, 1, NULL))
		return 0;
	b = usable_blob(hs, want->sha1);
	if (!b)
		return 0;
	if (!hs->tried[b - hs->w->blobs] && http_prepare(src, want, 1, hs->x.job))
		return 0;
	if (!arrived(hs, b))
		return 0;
	c->blob = b;
	c->size = b->size;
	c->raw_flags = b->flags & RESHDR_FLAG_COMPRESSED;
	c->raw = wr && b->solid < 0 &&
		 ((c->raw_flags && hs->w->ctype == wr->ctype && hs->w->chunk_size == wr->chunk_size) ||
		  (!c->raw_flags && wr->ctype == CTYPE_NONE));
	return 1;
}

static int http_read(struct source *src, const struct candidate *c, struct sink *sk)
{
	struct http_source *hs = src->impl;
	ih_reason reason;
	char detail[160];
	int rc;

	if (sk->mode == SINK_RAW) {
		hs->rd.raw_tap = sink_raw;
		hs->rd.raw_ctx = sk;
	}
	rc = ih_read_any_blob(&hs->rd, c->blob, sink_feed, sk, NULL, &reason, detail, sizeof detail);
	hs->rd.raw_tap = NULL;
	hs->rd.raw_ctx = NULL;
	return rc == IH_READ_OK;
}

static ih_errcode http_why_not(struct source *src, const struct want *w)
{
	struct http_source *hs = src->impl;
	if (!hs || !hs->w)
		return IH_OK;
	const struct wim_blob *b = usable_blob(hs, w->sha1);
	return b && hs->tried[b - hs->w->blobs] && !arrived(hs, b) ? IH_ERR_DOWNLOAD : IH_OK;
}

const struct wim *http_source_wim(struct source *src)
{
	struct http_source *hs = src->ops == &http_ops ? src->impl : NULL;
	if (hs && !hs->opened && remote_open(src, hs))
		return NULL;
	return src->ops == &http_ops ? ((struct http_source *)src->impl)->w : NULL;
}

static const struct source_ops http_ops = {
	.find = http_find,
	.read = http_read,
	.close = http_close,
	.prepare = http_prepare,
	.why_not = http_why_not,
};

void http_source_open(struct source *src, const char *url)
{
	struct http_source *hs = calloc(1, sizeof *hs);
	if (!hs) {
		source_fail(src, IH_ERR_NOMEM, "out of memory");
		return;
	}
	src->impl = hs;
	src->ops = &http_ops;
	static const ih_restore_options none;
	http_conf_init(&hs->conf, src->opt ? src->opt : &none);
	hs->url = ih_strdup(url);
	if (!hs->url || http_xfer_init(&hs->x, &hs->conf, src->rep)) {
		source_fail(src, IH_ERR_NOMEM, "out of memory");
		return;
	}
}
