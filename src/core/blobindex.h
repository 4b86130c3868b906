/* blobindex.h - hash table from SHA-1 to a size_t value.  Probing touches
 * only small slots (a tag and an entry number); the keys and values sit in
 * a dense array in insertion order, which is also how to iterate. */
#ifndef IH_BLOBINDEX_H
#define IH_BLOBINDEX_H

#include <stddef.h>
#include <stdint.h>

struct ih_blobindex_entry {
	uint8_t sha1[20];
	size_t value;
};

struct ih_blobindex {
	size_t cap;      /* slots, a power of two */
	size_t count;    /* entries */
	struct ih_blobindex_slot {
		uint32_t tag;    /* high bits of the keyed hash */
		uint32_t entry;  /* entry number + 1; 0: empty */
	} *slots;
	struct ih_blobindex_entry *entries;
};

int ih_blobindex_init(struct ih_blobindex *t, size_t expected);
void ih_blobindex_free(struct ih_blobindex *t);
/* Returns a pointer to the value, or NULL. */
size_t *ih_blobindex_get(const struct ih_blobindex *t, const uint8_t sha1[20]);
/* Inserts if absent; *created tells.  Returns the value slot, NULL on ENOMEM.
 * The pointer is valid until the next insertion. */
size_t *ih_blobindex_put(struct ih_blobindex *t, const uint8_t sha1[20], size_t value,
			 int *created);
/* For bulk insertion: the keyed hash of a SHA-1, a hint to fetch its home
 * slot into the cache (a table larger than the cache costs a miss per
 * insertion otherwise), and put with the hash already computed. */
uint64_t ih_blobindex_hash(const uint8_t sha1[20]);
void ih_blobindex_prefetch(const struct ih_blobindex *t, uint64_t h);
size_t *ih_blobindex_put_hashed(struct ih_blobindex *t, const uint8_t sha1[20], uint64_t h,
				size_t value, int *created);

#endif
