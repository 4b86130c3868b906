/* blobindex.c - SHA-1 keyed hash table.  The SHA-1s come from the image,
 * which may list crafted ones that share any bytes it likes: the slot and
 * tag come from SipHash-1-3 of the whole SHA-1 under a per-process random
 * key, so no input can be made to collide on purpose. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include "blobindex.h"

static uint64_t key0, key1;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void make_key(void)
{
	uint64_t k[2];
	if (getrandom(k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k) {
		/* no entropy yet (early boot): still differs per process */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		k[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid();
		k[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&ts ^ 0xC2B2AE3D27D4EB4FULL;
	}
	key0 = k[0];
	key1 = k[1];
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                              \
	do {                                                                  \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);     \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                        \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                        \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);     \
	} while (0)

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* SipHash-1-3 of the 20 bytes. */
uint64_t ih_blobindex_hash(const uint8_t sha1[20])
{
	uint64_t v0 = 0x736f6d6570736575ULL ^ key0, v1 = 0x646f72616e646f6dULL ^ key1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ key0, v3 = 0x7465646279746573ULL ^ key1;
	uint64_t m[3] = {le64(sha1), le64(sha1 + 8),
			 (uint64_t)sha1[16] | (uint64_t)sha1[17] << 8 | (uint64_t)sha1[18] << 16 |
				 (uint64_t)sha1[19] << 24 | (uint64_t)20 << 56};
	for (int i = 0; i < 3; i++) {
		v3 ^= m[i];
		SIPROUND;
		v0 ^= m[i];
	}
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static size_t slots_for(size_t n)
{
	size_t cap = 16;
	while (cap < n * 2 + 1)
		cap <<= 1;
	return cap;
}

int ih_blobindex_init(struct ih_blobindex *t, size_t expected)
{
	pthread_once(&key_once, make_key);
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

/* The slot comes from the hash's low bits, the tag from its high ones. */
static size_t home(uint64_t h, size_t cap)
{
	return (size_t)h & (cap - 1);
}

static uint32_t tag_of(uint64_t h)
{
	return (uint32_t)(h >> 32);
}

/* The slot holding sha1 (whose hash is h), or the empty slot where it
 * would go. */
static struct ih_blobindex_slot *find(const struct ih_blobindex *t, const uint8_t sha1[20],
				      uint64_t h)
{
	uint32_t tag = tag_of(h);
	for (size_t i = home(h, t->cap);; i = (i + 1) & (t->cap - 1)) {
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
	struct ih_blobindex_slot *s = find(t, sha1, ih_blobindex_hash(sha1));
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
		uint64_t h = ih_blobindex_hash(t->entries[e].sha1);
		struct ih_blobindex_slot *s = find(t, t->entries[e].sha1, h);
		s->tag = tag_of(h);
		s->entry = (uint32_t)e + 1;
	}
	return 0;
}

void ih_blobindex_prefetch(const struct ih_blobindex *t, uint64_t h)
{
	if (t->cap)
		__builtin_prefetch(&t->slots[home(h, t->cap)], 1);
}

size_t *ih_blobindex_put(struct ih_blobindex *t, const uint8_t sha1[20], size_t value,
			 int *created)
{
	return ih_blobindex_put_hashed(t, sha1, ih_blobindex_hash(sha1), value, created);
}

size_t *ih_blobindex_put_hashed(struct ih_blobindex *t, const uint8_t sha1[20], uint64_t h,
				size_t value, int *created)
{
	if (!t->cap || ((t->count + 1) * 2 > t->cap && grow(t)))
		return NULL;
	struct ih_blobindex_slot *s = find(t, sha1, h);
	if (s->entry) {
		if (created)
			*created = 0;
		return &t->entries[s->entry - 1].value;
	}
	struct ih_blobindex_entry *e = &t->entries[t->count];
	memcpy(e->sha1, sha1, 20);
	e->value = value;
	s->tag = tag_of(h);
	s->entry = (uint32_t)++t->count;
	if (created)
		*created = 1;
	return &e->value;
}
