/* blobindex.c - SHA-1 keyed hash table.  SHA-1s are uniformly distributed,
 * so their first bytes are the hash. */
#include <stdlib.h>
#include <string.h>
#include "blobindex.h"

int ih_blobindex_init(struct ih_blobindex *t, size_t expected)
{
	size_t cap = 16;
	while (cap < expected * 2 + 1)
		cap <<= 1;
	t->slots = calloc(cap, sizeof *t->slots);
	t->cap = t->slots ? cap : 0;
	t->count = 0;
	return t->slots ? 0 : -1;
}

void ih_blobindex_free(struct ih_blobindex *t)
{
	free(t->slots);
	t->slots = NULL;
	t->cap = t->count = 0;
}

static size_t slot_of(const uint8_t sha1[20], size_t cap)
{
	uint64_t h;
	memcpy(&h, sha1, sizeof h);
	return (size_t)h & (cap - 1);
}

size_t *ih_blobindex_get(const struct ih_blobindex *t, const uint8_t sha1[20])
{
	if (!t->cap)
		return NULL;
	for (size_t i = slot_of(sha1, t->cap);; i = (i + 1) & (t->cap - 1)) {
		if (!t->slots[i].used)
			return NULL;
		if (!memcmp(t->slots[i].sha1, sha1, 20))
			return &t->slots[i].value;
	}
}

static int grow(struct ih_blobindex *t)
{
	struct ih_blobindex n;
	if (ih_blobindex_init(&n, t->cap))
		return -1;
	for (size_t i = 0; i < t->cap; i++)
		if (t->slots[i].used)
			ih_blobindex_put(&n, t->slots[i].sha1, t->slots[i].value, NULL);
	free(t->slots);
	*t = n;
	return 0;
}

size_t *ih_blobindex_put(struct ih_blobindex *t, const uint8_t sha1[20], size_t value,
			 int *created)
{
	if ((t->count + 1) * 2 > t->cap && grow(t))
		return NULL;
	for (size_t i = slot_of(sha1, t->cap);; i = (i + 1) & (t->cap - 1)) {
		if (!t->slots[i].used) {
			t->slots[i].used = 1;
			memcpy(t->slots[i].sha1, sha1, 20);
			t->slots[i].value = value;
			t->count++;
			if (created)
				*created = 1;
			return &t->slots[i].value;
		}
		if (!memcmp(t->slots[i].sha1, sha1, 20)) {
			if (created)
				*created = 0;
			return &t->slots[i].value;
		}
	}
}
