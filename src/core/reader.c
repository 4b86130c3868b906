/* reader.c - streaming reads of WIM resources.  Compressed data is read in
 * windows of whole chunks (at most WINDOW bytes, or one chunk), so memory
 * stays bounded whatever the blob size. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <wimlib.h>
#include "reader.h"
#include "util.h"

#define WINDOW (1u << 20)

void ih_reader_init(struct ih_reader *r, const struct wim *w)
{
	memset(r, 0, sizeof *r);
	r->w = w;
	r->dec_ctype = -1;
}

void ih_reader_free(struct ih_reader *r)
{
	if (r->dec)
		wimlib_free_decompressor(r->dec);
	free(r->in);
	free(r->out);
	free(r->table);
	free(r->offs);
	memset(r, 0, sizeof *r);
}

static int reserve(void *pp, size_t *cap, size_t need, size_t elem)
{
	void **p = pp;
	if (need <= *cap)
		return 0;
	void *n = realloc(*p, need * elem);
	if (!n)
		return -1;
	*p = n;
	*cap = need;
	return 0;
}

int ih_reader_reserve_in(struct ih_reader *r, size_t n)
{
	return reserve(&r->in, &r->incap, n, 1);
}

static int get_decompressor(struct ih_reader *r, int ctype, uint32_t chunk)
{
	if (r->dec && r->dec_ctype == ctype && r->dec_chunk == chunk)
		return 0;
	if (r->dec)
		wimlib_free_decompressor(r->dec);
	r->dec = NULL;
	if (wimlib_create_decompressor((enum wimlib_compression_type)ctype, chunk, &r->dec))
		return -1;
	r->dec_ctype = ctype;
	r->dec_chunk = chunk;
	return 0;
}

__attribute__((format(printf, 5, 6)))
static int damaged(ih_reason *reason, char *detail, size_t dlen, ih_reason why,
		   const char *fmt, ...)
{
	va_list ap;
	*reason = why;
	va_start(ap, fmt);
	vsnprintf(detail, dlen, fmt, ap);
	va_end(ap);
	return IH_READ_DAMAGED;
}

/* A failed pread: short reads mean the file ends early. */
static int read_failed(ih_reason *reason, char *detail, size_t dlen)
{
	if (errno == 0)
		return damaged(reason, detail, dlen, IH_REASON_TRUNCATED,
			       "file ends inside the resource");
	return IH_READ_ERROR;
}

/* Decompresses (or copies) one chunk; returns the data pointer or NULL. */
static const uint8_t *decode_chunk(struct ih_reader *r, const uint8_t *in, size_t clen,
				   size_t ulen)
{
	if (clen == ulen)
		return in; /* stored raw */
	if (wimlib_decompress(in, clen, r->out, ulen, r->dec))
		return NULL;
	return r->out;
}

int ih_read_blob(struct ih_reader *r, const struct wim_blob *b, ih_data_fn fn, void *ctx,
		 const atomic_int *cancel, ih_reason *reason, char *detail, size_t dlen)
{
	const struct wim *w = r->w;

	if (b->bad)
		return damaged(reason, detail, dlen, b->bad, "%s", b->why);

	if (!(b->flags & RESHDR_FLAG_COMPRESSED)) {
		uint64_t done = 0;
		if (reserve(&r->in, &r->incap, WINDOW, 1))
			return IH_READ_ERROR;
		while (done < b->size) {
			size_t n = b->size - done < WINDOW ? (size_t)(b->size - done) : WINDOW;
			if (cancel && atomic_load_explicit(cancel, memory_order_relaxed))
				return IH_READ_STOPPED;
			if (wim_pread(w, b->part, r->in, n, b->offset + done))
				return read_failed(reason, detail, dlen);
			if ((r->raw_tap && r->raw_tap(r->raw_ctx, r->in, n)) || fn(ctx, r->in, n))
				return IH_READ_STOPPED;
			done += n;
		}
		return IH_READ_OK;
	}

	uint32_t cs = w->chunk_size;
	uint64_t nchunks = wimfmt_num_chunks(b->size, cs);
	uint64_t tsize = wimfmt_chunk_table_size(b->size, cs);
	uint64_t data_size = b->stored_size - tsize;
	uint64_t data_start = b->offset + tsize;

	if (nchunks == 0)
		return IH_READ_OK;
	if (get_decompressor(r, w->ctype, cs) || reserve(&r->out, &r->outcap, cs, 1) ||
	    reserve(&r->table, &r->tablecap, tsize + 1, 1) ||
	    reserve(&r->offs, &r->offscap, nchunks + 1, sizeof *r->offs))
		return IH_READ_ERROR;
	if (wim_pread(w, b->part, r->table, tsize, b->offset))
		return read_failed(reason, detail, dlen);
	if (r->raw_tap && r->raw_tap(r->raw_ctx, r->table, tsize))
		return IH_READ_STOPPED;
	if (wimfmt_chunk_offsets(r->table, b->size, cs, data_size, 0, nchunks, r->offs))
		return damaged(reason, detail, dlen, IH_REASON_DECOMPRESS,
			       "chunk table is invalid (%llu chunks, %llu bytes of data)",
			       (unsigned long long)nchunks, (unsigned long long)data_size);

	for (uint64_t c = 0; c < nchunks;) {
		/* A window of whole chunks, read with one pread. */
		uint64_t first = c, end = c + 1;
		while (end < nchunks && r->offs[end + 1] - r->offs[first] <= WINDOW)
			end++;
		size_t wlen = (size_t)(r->offs[end] - r->offs[first]);
		if (cancel && atomic_load_explicit(cancel, memory_order_relaxed))
			return IH_READ_STOPPED;
		if (reserve(&r->in, &r->incap, wlen, 1))
			return IH_READ_ERROR;
		if (wim_pread(w, b->part, r->in, wlen, data_start + r->offs[first]))
			return read_failed(reason, detail, dlen);
		if (r->raw_tap && r->raw_tap(r->raw_ctx, r->in, wlen))
			return IH_READ_STOPPED;
		for (; c < end; c++) {
			size_t clen = (size_t)(r->offs[c + 1] - r->offs[c]);
			size_t ulen = c + 1 == nchunks ? (size_t)(b->size - c * (uint64_t)cs) : cs;
			const uint8_t *data = decode_chunk(r, r->in + (r->offs[c] - r->offs[first]),
							   clen, ulen);
			if (!data)
				return damaged(reason, detail, dlen, IH_REASON_DECOMPRESS,
					       "chunk %llu of %llu failed to decompress",
					       (unsigned long long)c + 1, (unsigned long long)nchunks);
			if (fn(ctx, data, ulen))
				return IH_READ_STOPPED;
		}
	}
	return IH_READ_OK;
}

struct alloc_ctx {
	uint8_t *buf;
	size_t len;
};

static int append(void *ctx, const uint8_t *data, size_t len)
{
	struct alloc_ctx *a = ctx;
	memcpy(a->buf + a->len, data, len);
	a->len += len;
	return 0;
}

int ih_read_blob_alloc(struct ih_reader *r, const struct wim_blob *b, uint64_t max,
		       uint8_t **out, ih_reason *reason, char *detail, size_t dlen)
{
	struct alloc_ctx a = {0};
	int rc;

	*out = NULL;
	if (b->size > max || b->size > SIZE_MAX - 1)
		return damaged(reason, detail, dlen, IH_REASON_BAD_ENTRY,
			       "implausible size %llu", (unsigned long long)b->size);
	a.buf = malloc(b->size + 1);
	if (!a.buf)
		return IH_READ_ERROR;
	rc = ih_read_blob(r, b, append, &a, NULL, reason, detail, dlen);
	if (rc != IH_READ_OK) {
		free(a.buf);
		return rc;
	}
	*out = a.buf;
	return IH_READ_OK;
}

int ih_read_solid_chunk(struct ih_reader *r, const struct wim_solid *s, uint64_t c,
			const uint8_t **data, size_t *len, ih_reason *reason, char *detail,
			size_t dlen)
{
	uint32_t cs = s->sh.chunk_size;
	size_t clen = (size_t)(s->chunk_offs[c + 1] - s->chunk_offs[c]);
	size_t ulen = c + 1 == s->nchunks ? (size_t)(s->sh.usize - c * (uint64_t)cs) : cs;

	if (reserve(&r->in, &r->incap, clen, 1) || reserve(&r->out, &r->outcap, cs, 1))
		return IH_READ_ERROR;
	if (wim_pread(r->w, s->part, r->in, clen, s->data_start + s->chunk_offs[c]))
		return read_failed(reason, detail, dlen);
	if (clen != ulen && get_decompressor(r, (int)s->sh.ctype, cs))
		return IH_READ_ERROR;
	*data = decode_chunk(r, r->in, clen, ulen);
	if (!*data)
		return damaged(reason, detail, dlen, IH_REASON_DECOMPRESS,
			       "solid chunk %llu of %llu failed to decompress",
			       (unsigned long long)c + 1, (unsigned long long)s->nchunks);
	*len = ulen;
	return IH_READ_OK;
}

int ih_read_any_blob(struct ih_reader *r, const struct wim_blob *b, ih_data_fn fn, void *ctx,
		     const atomic_int *cancel, ih_reason *reason, char *detail, size_t dlen)
{
	const struct wim_solid *s;
	uint64_t cs, end;

	if (b->solid < 0 || b->bad)
		return ih_read_blob(r, b, fn, ctx, cancel, reason, detail, dlen);
	s = &r->w->solids[b->solid];
	if (s->bad)
		return damaged(reason, detail, dlen, (ih_reason)s->bad, "%s", s->why);
	cs = s->sh.chunk_size;
	end = b->offset + b->size;
	for (uint64_t c = b->offset / cs; c * cs < end; c++) {
		const uint8_t *data;
		size_t len;
		int rc;
		if (cancel && atomic_load_explicit(cancel, memory_order_relaxed))
			return IH_READ_STOPPED;
		if (c >= s->nchunks)
			return damaged(reason, detail, dlen, IH_REASON_BAD_ENTRY,
				       "blob extends past the end of its solid resource");
		rc = ih_read_solid_chunk(r, s, c, &data, &len, reason, detail, dlen);
		if (rc != IH_READ_OK)
			return rc;
		uint64_t ps = b->offset > c * cs ? b->offset : c * cs;
		uint64_t pe = end < c * cs + len ? end : c * cs + len;
		if (pe > ps && fn(ctx, data + (ps - c * cs), (size_t)(pe - ps)))
			return IH_READ_STOPPED;
	}
	return IH_READ_OK;
}
