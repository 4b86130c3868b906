/* reader.c - streaming reads of WIM resources.  Compressed data is read in
 * windows of whole chunks (at most WINDOW bytes, or one chunk), so memory
 * stays bounded whatever the blob size. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <wimlib.h>
#include "reader.h"
#include "util.h"

#define WINDOW (1u << 20)

atomic_uint ih_test_solid_decodes;

void ih_reader_init(struct ih_reader *r, const struct wim *w)
{
	memset(r, 0, sizeof *r);
	r->w = w;
	r->dec_ctype = -1;
	r->threads = 1;
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
	r->cache_s = NULL; /* the caller writes into in */
	return reserve(&r->in, &r->incap, n, 1);
}

static int get_decompressor(struct ih_reader *r, int ctype, uint32_t chunk)
{
	if (r->dec && r->dec_ctype == ctype && r->dec_chunk == chunk)
		return 0;
	if (r->dec)
		wimlib_free_decompressor(r->dec);
	r->dec = NULL;
	int rc = wimlib_create_decompressor((enum wimlib_compression_type)ctype, chunk, &r->dec);
	if (rc) {
		errno = rc == WIMLIB_ERR_NOMEM ? ENOMEM : EINVAL;
		return -1;
	}
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

	r->cache_s = NULL; /* in and out are reused below */
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

/* A whole compressed blob into out, its chunks split between threads (the
 * metadata resource is read whole by every check: its decoding is most of
 * a quick check's time).  Each thread decodes straight into its place. */
struct par_slice {
	struct ih_reader r;
	const struct wim_blob *b;
	uint8_t *out;
	const uint64_t *offs;  /* chunk offsets, relative to the data */
	uint64_t data_start, nchunks, first, end;
	uint64_t bad_chunk;    /* first chunk that failed, or UINT64_MAX */
	int io_error;
	pthread_t tid;
};

static void *decode_slice(void *arg)
{
	struct par_slice *sl = arg;
	const struct wim *w = sl->r.w;
	uint32_t cs = w->chunk_size;
	size_t len = (size_t)(sl->offs[sl->end] - sl->offs[sl->first]);

	sl->bad_chunk = UINT64_MAX;
	if (sl->first == sl->end)
		return NULL;
	if (get_decompressor(&sl->r, w->ctype, cs) || reserve(&sl->r.in, &sl->r.incap, len, 1)) {
		sl->io_error = ENOMEM;
		return NULL;
	}
	if (wim_pread(w, sl->b->part, sl->r.in, len, sl->data_start + sl->offs[sl->first])) {
		sl->io_error = errno ? errno : -1; /* -1: the file ends early */
		return NULL;
	}
	for (uint64_t c = sl->first; c < sl->end; c++) {
		size_t clen = (size_t)(sl->offs[c + 1] - sl->offs[c]);
		size_t ulen = c + 1 == sl->nchunks ? (size_t)(sl->b->size - c * (uint64_t)cs) : cs;
		const uint8_t *in = sl->r.in + (sl->offs[c] - sl->offs[sl->first]);
		uint8_t *dst = sl->out + c * (uint64_t)cs;
		if (clen == ulen)
			memcpy(dst, in, ulen);
		else if (wimlib_decompress(in, clen, dst, ulen, sl->r.dec)) {
			sl->bad_chunk = c;
			return NULL;
		}
	}
	return NULL;
}

static int read_parallel(struct ih_reader *r, const struct wim_blob *b, uint8_t *out,
			 ih_reason *reason, char *detail, size_t dlen)
{
	const struct wim *w = r->w;
	uint32_t cs = w->chunk_size;
	uint64_t nchunks = wimfmt_num_chunks(b->size, cs);
	uint64_t tsize = wimfmt_chunk_table_size(b->size, cs);
	int n = r->threads > 8 ? 8 : r->threads, rc = IH_READ_OK;
	struct par_slice sl[8];
	uint64_t bad = UINT64_MAX;

	if (reserve(&r->table, &r->tablecap, tsize + 1, 1) ||
	    reserve(&r->offs, &r->offscap, nchunks + 1, sizeof *r->offs))
		return IH_READ_ERROR;
	if (wim_pread(w, b->part, r->table, tsize, b->offset))
		return read_failed(reason, detail, dlen);
	if (wimfmt_chunk_offsets(r->table, b->size, cs, b->stored_size - tsize, 0, nchunks, r->offs))
		return damaged(reason, detail, dlen, IH_REASON_DECOMPRESS,
			       "chunk table is invalid (%llu chunks)", (unsigned long long)nchunks);
	for (int t = 0; t < n; t++) {
		ih_reader_init(&sl[t].r, w);
		sl[t].b = b;
		sl[t].out = out;
		sl[t].offs = r->offs;
		sl[t].data_start = b->offset + tsize;
		sl[t].nchunks = nchunks;
		sl[t].first = nchunks * (uint64_t)t / (uint64_t)n;
		sl[t].end = nchunks * (uint64_t)(t + 1) / (uint64_t)n;
		sl[t].io_error = 0;
	}
	/* this thread takes the first slice itself */
	int started = 1;
	for (int t = 1; t < n; t++, started++)
		if (pthread_create(&sl[t].tid, NULL, decode_slice, &sl[t]))
			break;
	for (int t = started; t < n; t++)
		decode_slice(&sl[t]); /* no thread: do it here */
	decode_slice(&sl[0]);
	for (int t = 1; t < started; t++)
		pthread_join(sl[t].tid, NULL);
	for (int t = 0; t < n; t++) {
		if (sl[t].io_error > 0 && rc == IH_READ_OK) {
			errno = sl[t].io_error;
			rc = IH_READ_ERROR;
		} else if (sl[t].io_error < 0 && rc == IH_READ_OK) {
			errno = 0;
			rc = read_failed(reason, detail, dlen);
		}
		if (sl[t].bad_chunk < bad)
			bad = sl[t].bad_chunk;
		ih_reader_free(&sl[t].r);
	}
	if (rc == IH_READ_OK && bad != UINT64_MAX)
		rc = damaged(reason, detail, dlen, IH_REASON_DECOMPRESS,
			     "chunk %llu of %llu failed to decompress", (unsigned long long)bad + 1,
			     (unsigned long long)nchunks);
	return rc;
}

int ih_read_blob_alloc(struct ih_reader *r, const struct wim_blob *b, uint64_t max,
		       uint8_t **out, ih_reason *reason, char *detail, size_t dlen)
{
	struct alloc_ctx a = {0};
	int rc;

	r->cache_s = NULL;

	*out = NULL;
	if (b->bad) /* before allocating what the entry claims */
		return damaged(reason, detail, dlen, b->bad, "%s", b->why);
	if (b->size > max || b->size > SIZE_MAX - 1)
		return damaged(reason, detail, dlen, IH_REASON_BAD_ENTRY,
			       "implausible size %llu", (unsigned long long)b->size);
	a.buf = malloc(b->size + 1);
	if (!a.buf)
		return IH_READ_ERROR;
	if (r->threads > 1 && (b->flags & RESHDR_FLAG_COMPRESSED) && !b->bad &&
	    wimfmt_num_chunks(b->size, r->w->chunk_size) >= 64)
		rc = read_parallel(r, b, a.buf, reason, detail, dlen);
	else
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

	if (r->cache_s == s && r->cache_c == c) {
		*data = r->cache_data;
		*len = ulen;
		return IH_READ_OK;
	}
	r->cache_s = NULL;
	/* ulen, not the chunk size: a header claiming 1 GiB chunks does not
	 * make a small resource cost 1 GiB. */
	if (reserve(&r->in, &r->incap, clen, 1) || reserve(&r->out, &r->outcap, ulen, 1))
		return IH_READ_ERROR;
	if (wim_pread(r->w, s->part, r->in, clen, s->data_start + s->chunk_offs[c]))
		return read_failed(reason, detail, dlen);
	if (clen != ulen && get_decompressor(r, (int)s->sh.ctype, cs)) {
		/* The header names a format (or chunk size) no decompressor
		 * takes: the resource is damaged, nothing failed to read. */
		if (errno == ENOMEM)
			return IH_READ_ERROR;
		return damaged(reason, detail, dlen, IH_REASON_DECOMPRESS,
			       "solid resource: no %s decompressor for chunks of %u bytes",
			       wim_ctype_name((int)s->sh.ctype), cs);
	}
	atomic_fetch_add_explicit(&ih_test_solid_decodes, 1, memory_order_relaxed);
	*data = decode_chunk(r, r->in, clen, ulen);
	if (!*data)
		return damaged(reason, detail, dlen, IH_REASON_DECOMPRESS,
			       "solid chunk %llu of %llu failed to decompress",
			       (unsigned long long)c + 1, (unsigned long long)s->nchunks);
	*len = ulen;
	r->cache_s = s;
	r->cache_c = c;
	r->cache_data = *data;
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
