/* reader.h - reading resources: chunk tables, decompression, streaming the
 * uncompressed bytes of a blob in order with bounded memory.  One reader per
 * thread (it owns buffers and decompressors). */
#ifndef IH_READER_H
#define IH_READER_H

#include <stdatomic.h>
#include "wim.h"

struct wimlib_decompressor;

struct ih_reader {
	const struct wim *w;
	struct wimlib_decompressor *dec;
	int dec_ctype;
	uint32_t dec_chunk;
	uint8_t *in;
	size_t incap;
	uint8_t *out;
	size_t outcap;
	uint8_t *table;
	size_t tablecap;
	uint64_t *offs;
	size_t offscap;
	/* When set, ih_read_blob passes every stored byte of a non-solid
	 * resource (chunk table, then compressed windows) to raw_tap before
	 * decoding them: a copy of exactly the bytes that were verified. */
	int (*raw_tap)(void *ctx, const uint8_t *data, size_t len);
	void *raw_ctx;
	int threads;      /* ih_read_blob_alloc may decode on this many threads */
	/* The last solid chunk decoded (in `in` or `out`), while nothing else
	 * used them: the blobs of one chunk (64 MiB in an ESD) read one after
	 * another decode it once.  cache_s NULL: none. */
	const struct wim_solid *cache_s;
	uint64_t cache_c;
	const uint8_t *cache_data;
};

/* For tests: solid chunks decoded (or copied, stored raw) so far. */
extern atomic_uint ih_test_solid_decodes;

/* Outcome of reading a blob. */
enum { IH_READ_OK = 0, IH_READ_DAMAGED = 1, IH_READ_STOPPED = 2, IH_READ_ERROR = 3 };

typedef int (*ih_data_fn)(void *ctx, const uint8_t *data, size_t len);

void ih_reader_init(struct ih_reader *r, const struct wim *w);
void ih_reader_free(struct ih_reader *r);
/* Makes r->in at least n bytes; 0 or -1. */
int ih_reader_reserve_in(struct ih_reader *r, size_t n);

/* Streams the uncompressed bytes of a non-solid blob to fn, chunk by chunk.
 * DAMAGED sets *reason and detail; STOPPED when *cancel became set or fn
 * returned nonzero; ERROR on a real I/O error (errno kept). */
int ih_read_blob(struct ih_reader *r, const struct wim_blob *b, ih_data_fn fn, void *ctx,
		 const atomic_int *cancel, ih_reason *reason, char *detail, size_t dlen);

/* Streams any blob, solid ones included (their chunks decompressed in
 * turn; only the blob's slice is passed on). */
int ih_read_any_blob(struct ih_reader *r, const struct wim_blob *b, ih_data_fn fn, void *ctx,
		     const atomic_int *cancel, ih_reason *reason, char *detail, size_t dlen);

/* Reads a whole non-solid blob into a new buffer (metadata resources);
 * refuses blobs larger than max. */
int ih_read_blob_alloc(struct ih_reader *r, const struct wim_blob *b, uint64_t max,
		       uint8_t **out, ih_reason *reason, char *detail, size_t dlen);

/* Decompresses chunk c of solid resource s; *data points into the reader's
 * buffer until the next call. */
int ih_read_solid_chunk(struct ih_reader *r, const struct wim_solid *s, uint64_t c,
			const uint8_t **data, size_t *len, ih_reason *reason, char *detail,
			size_t dlen);

#endif
