/* wimgen.h - small hostile WIM files built byte by byte: the shapes of the
 * hostile-input review (issue 8), each a few hundred KiB or less that once
 * cost seconds to minutes or gigabytes.  Used by tests/test_bounds.c (at
 * test sizes) and by fuzz/gen_seeds.c (small ones, as fuzzer seeds). */
#ifndef IH_WIMGEN_H
#define IH_WIMGEN_H

#include <stddef.h>
#include <stdint.h>

struct wimgen {
	uint8_t *b;
	size_t len, cap;
};

/* Each returns 0 and a malloc'd file in *out, or -1. */

/* One image: `levels` nested directories named by `name_len` letters, each
 * holding a file "f" whose blob the blob table lacks (every file the same
 * blob when same_blob, else one each): the report lists every path. */
int wimgen_nested(struct wimgen *out, unsigned levels, unsigned name_len, int same_blob);

/* `n` resource entries in one solid run, all naming the same resource of
 * `nchunks` chunks, plus one blob in it. */
int wimgen_solid_shared(struct wimgen *out, unsigned n, unsigned nchunks);

/* `n` solid blob entries and no resource entry among them. */
int wimgen_solid_norun(struct wimgen *out, unsigned n);

/* `n` one-byte blobs whose claimed SHA-1s share their first 8 bytes. */
int wimgen_sha1_flood(struct wimgen *out, unsigned n);

/* `n` blob entries (distinct SHA-1s) all claiming one region of `region`
 * bytes. */
int wimgen_overlap(struct wimgen *out, unsigned n, unsigned region);

/* `images` images whose metadata entries all name one uncompressed
 * metadata resource of `meta_size` bytes (a valid tree, zero-padded). */
int wimgen_meta_shared(struct wimgen *out, unsigned images, unsigned meta_size);

/* `n` blob table entries with flag bits no writer sets: a problem each. */
int wimgen_corrupt_entries(struct wimgen *out, unsigned n);

int wimgen_write(const struct wimgen *g, const char *path);
void wimgen_free(struct wimgen *g);

#endif
