/* blobindex.h - open-addressing hash table from SHA-1 to a size_t value. */
#ifndef IH_BLOBINDEX_H
#define IH_BLOBINDEX_H

#include <stddef.h>
#include <stdint.h>

struct ih_blobindex {
	size_t cap;      /* power of two */
	size_t count;
	struct ih_blobindex_slot {
		uint8_t sha1[20];
		size_t value;
		int used;
	} *slots;
};

int ih_blobindex_init(struct ih_blobindex *t, size_t expected);
void ih_blobindex_free(struct ih_blobindex *t);
/* Returns a pointer to the value, or NULL. */
size_t *ih_blobindex_get(const struct ih_blobindex *t, const uint8_t sha1[20]);
/* Inserts if absent; *created tells.  Returns the value slot, NULL on ENOMEM. */
size_t *ih_blobindex_put(struct ih_blobindex *t, const uint8_t sha1[20], size_t value,
			 int *created);

#endif
