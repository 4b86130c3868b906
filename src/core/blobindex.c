/* blobindex.c - SHA-1 keyed hash table.  SHA-1s are uniformly distributed,
 * so their bytes are the hash: bytes 0..7 pick the slot, bytes 4..7 are the
 * tag compared before the whole key. */
#include <stdlib.h>
#include <string.h>
#include "blobindex.h"

static size_t slots_for(size_t n)
{
	size_t cap = 16;
	while (cap < n * 2 + 1)
		cap <<= 1;
	return cap;
}

int ih_blobindex_init(struct ih_blobindex *t, size_t expected)
{
	memset(t, 0, sizeof *t);
	t->cap = slots_for(expected);
	t->slots = calloc(t->cap, sizeof *t->slots);
	t->entries = malloc((t->cap / 2) * sizeof *t->entries);
	if (!t->slots || !t->entries) {
		ih_blobindex_free(t);
		return -1;
	}
	return 0;
}

void ih_blobindex_free(struct ih_blobindex *t)
{
	free(t->slots);
	free(t->entries);
	memset(t, 0, sizeof *t);
}

static size_t home(const uint8_t sha1[20], size_t cap)
{
	uint64_t h;
	memcpy(&h, sha1, sizeof h);
	return (size_t)h & (cap - 1);
}

static uint32_t tag_of(const uint8_t sha1[20])
{
	uint32_t tag;
	memcpy(&tag, sha1 + 4, sizeof tag);
	return tag;
}

/* The slot holding sha1, or the empty slot where it would go. */
static struct ih_blobindex_slot *find(const struct ih_blobindex *t, const uint8_t sha1[20])
{
	uint32_t tag = tag_of(sha1);
	for (size_t i = home(sha1, t->cap);; i = (i + 1) & (t->cap - 1)) {
		struct ih_blobindex_slot *s = &t->slots[i];
		if (!s->entry ||
		    (s->tag == tag && !memcmp(t->entries[s->entry - 1].sha1, sha1, 20)))
			return s;
	}
}

size_t *ih_blobindex_get(const struct ih_blobindex *t, const uint8_t sha1[20])
{
	if (!t->cap)
		return NULL;
	struct ih_blobindex_slot *s = find(t, sha1);
	return s->entry ? &t->entries[s->entry - 1].value : NULL;
}

static int grow(struct ih_blobindex *t)
{
	size_t cap = t->cap * 2;
	struct ih_blobindex_slot *slots = calloc(cap, sizeof *slots);
	struct ih_blobindex_entry *entries = realloc(t->entries, (cap / 2) * sizeof *entries);
	if (!slots || !entries) {
		free(slots);
		if (entries)
			t->entries = entries;
		return -1;
	}
	free(t->slots);
	t->slots = slots;
	t->entries = entries;
	t->cap = cap;
	for (size_t e = 0; e < t->count; e++) {
		struct ih_blobindex_slot *s = find(t, t->entries[e].sha1);
		s->tag = tag_of(t->entries[e].sha1);
		s->entry = (uint32_t)e + 1;
	}
	return 0;
}

size_t *ih_blobindex_put(struct ih_blobindex *t, const uint8_t sha1[20], size_t value,
			 int *created)
{
	if (!t->cap || ((t->count + 1) * 2 > t->cap && grow(t)))
		return NULL;
	struct ih_blobindex_slot *s = find(t, sha1);
	if (s->entry) {
		if (created)
			*created = 0;
		return &t->entries[s->entry - 1].value;
	}
	struct ih_blobindex_entry *e = &t->entries[t->count];
	memcpy(e->sha1, sha1, 20);
	e->value = value;
	s->tag = tag_of(sha1);
	s->entry = (uint32_t)++t->count;
	if (created)
		*created = 1;
	return &e->value;
}
