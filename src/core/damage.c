/* damage.c - collecting damaged blobs and turning them into a report that
 * is sorted and identical whatever the thread count. */
#include <stdio.h>
#include <stdlib.h>
#include "session.h"
#include "util.h"

/* Bounds on the paths a report keeps (see add_ref). */
#define REFS_PER_BLOB 1000
#define REF_BYTES (16u << 20)

int damage_set_init(struct damage_set *d)
{
	memset(d, 0, sizeof *d);
	pthread_mutex_init(&d->mu, NULL);
	if (ih_blobindex_init(&d->idx, 64)) {
		d->oom = 1; /* damage_to_report says so, even if this is ignored */
		return -1;
	}
	return 0;
}

void tries_free(ih_try *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].reason);
	free(v);
}

int tries_copy(ih_try **out, size_t *nout, const ih_try *v, size_t n)
{
	*out = NULL;
	*nout = 0;
	if (!n)
		return 0;
	ih_try *c = calloc(n, sizeof *c);
	if (!c)
		return -1;
	for (size_t i = 0; i < n; i++) {
		c[i] = v[i];
		if (v[i].reason && !(c[i].reason = ih_strdup(v[i].reason))) {
			tries_free(c, i);
			return -1;
		}
	}
	*out = c;
	*nout = n;
	return 0;
}

void damage_free(ih_damage *dm)
{
	for (size_t k = 0; k < dm->n_refs; k++)
		free(dm->refs[k].path);
	free(dm->refs);
	free(dm->images);
	tries_free(dm->tries, dm->n_tries);
}

void damage_set_free(struct damage_set *d)
{
	for (size_t i = 0; i < d->n; i++)
		damage_free(&d->v[i]);
	free(d->v);
	ih_blobindex_free(&d->idx);
	pthread_mutex_destroy(&d->mu);
	memset(d, 0, sizeof *d);
}

ih_damage *damage_add(struct damage_set *d, const struct wim *w, const uint8_t sha1[20],
		      const struct wim_blob *b, ih_reason reason, const char *detail)
{
	ih_damage *dm = NULL;
	int created = 0;
	size_t *slot;

	pthread_mutex_lock(&d->mu);
	slot = ih_blobindex_put(&d->idx, sha1, d->n, &created);
	if (!slot) {
		d->oom = 1; /* a lost damage would be a false verdict */
		goto out;
	}
	if (!created)
		goto out;
	if (d->n == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 16;
		ih_damage *nv = realloc(d->v, ncap * sizeof *nv);
		if (!nv) {
			d->oom = 1;
			goto out;
		}
		d->v = nv;
		d->cap = ncap;
	}
	dm = &d->v[d->n++];
	memset(dm, 0, sizeof *dm);
	memcpy(dm->sha1, sha1, 20);
	dm->reason = reason;
	if (detail)
		snprintf(dm->detail, sizeof dm->detail, "%s", detail);
	if (b) {
		dm->size = b->size;
		dm->is_metadata = b->image != 0;
		dm->part = b->part;
		if (b->solid >= 0) {
			const struct wim_solid *s = &w->solids[b->solid];
			dm->solid = 1;
			dm->offset = s->offset;
			dm->stored_size = s->stored_size;
		} else {
			dm->offset = b->offset;
			dm->stored_size = b->stored_size;
		}
		if (b->image) {
			dm->images = malloc(sizeof *dm->images);
			if (dm->images) {
				dm->images[0] = b->image;
				dm->n_images = 1;
			} else {
				d->oom = 1;
			}
		}
	}
out:
	pthread_mutex_unlock(&d->mu);
	return dm;
}

static int cmp_damage(const void *a, const void *b)
{
	return memcmp(((const ih_damage *)a)->sha1, ((const ih_damage *)b)->sha1, 20);
}

static int cmp_ref(const void *a, const void *b)
{
	const ih_ref *x = a, *y = b;
	if (x->image != y->image)
		return x->image < y->image ? -1 : 1;
	return strcmp(x->path, y->path);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Notes that a file of `image` uses the damaged blob.  Its image always
 * counts; its path is kept while the blob has fewer than REFS_PER_BLOB and
 * the set holds fewer than REF_BYTES of paths, and counted in n_refs_omitted
 * otherwise: paths are claims of the image (4000 nested directories make
 * half a gigabyte of them), and a report must not grow with them. */
static int add_ref(struct damage_set *d, ih_damage *dm, uint32_t image, const char *path)
{
	size_t len = strlen(path), cost = len + 1 + sizeof *dm->refs + 16;
	/* refs arrive image by image: the last image is the one to compare */
	if (!dm->n_images || dm->images[dm->n_images - 1] != image) {
		uint32_t *ni = realloc(dm->images, (dm->n_images + 1) * sizeof *ni);
		if (!ni)
			return -1;
		dm->images = ni;
		ni[dm->n_images++] = image;
	}
	if (dm->n_refs >= REFS_PER_BLOB || cost > REF_BYTES - d->ref_bytes) {
		dm->n_refs_omitted++;
		return 0;
	}
	/* only this function appends refs: the capacity is max(4, the next
	 * power of two), grown by doubling */
	if (dm->n_refs == 0 || (dm->n_refs >= 4 && !(dm->n_refs & (dm->n_refs - 1)))) {
		size_t ncap = dm->n_refs ? dm->n_refs * 2 : 4;
		ih_ref *nr = realloc(dm->refs, ncap * sizeof *nr);
		if (!nr)
			return -1;
		dm->refs = nr;
	}
	char *p = malloc(len + 1);
	if (!p)
		return -1;
	memcpy(p, path, len + 1);
	dm->refs[dm->n_refs].image = image;
	dm->refs[dm->n_refs].path = p;
	dm->n_refs++;
	d->ref_bytes += cost;
	return 0;
}

int damage_note_ref(struct damage_set *d, uint32_t image, const uint8_t sha1[20],
		    const char *path)
{
	size_t *v = ih_blobindex_get(&d->idx, sha1);
	if (v && add_ref(d, &d->v[*v], image, path)) {
		d->oom = 1;
		return -1;
	}
	return 0;
}

struct ref_ctx {
	struct damage_set *d;
	uint32_t image;
	size_t from, to;
	const atomic_int *stop;
	int oom;
};

/* Entries may be added meanwhile (scanner threads): the set is looked at
 * under its lock. */
static int collect_ref(void *ctx, const uint8_t sha1[20], const char *path, int named)
{
	struct ref_ctx *c = ctx;
	int rc = 0;
	(void)named;
	if (c->stop && atomic_load_explicit(c->stop, memory_order_relaxed))
		return 1;
	pthread_mutex_lock(&c->d->mu);
	size_t *v = ih_blobindex_get(&c->d->idx, sha1);
	if (v && *v >= c->from && *v < c->to && add_ref(c->d, &c->d->v[*v], c->image, path)) {
		c->oom = 1;
		rc = 1;
	}
	pthread_mutex_unlock(&c->d->mu);
	return rc;
}

/* Refs of an entry in the report's order: by image, then path. */
static void sort_refs(ih_damage *dm)
{
	if (dm->n_refs > 1)
		qsort(dm->refs, dm->n_refs, sizeof *dm->refs, cmp_ref);
}

int damage_refs_complete(const struct damage_set *d)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].n_refs >= REFS_PER_BLOB || d->v[i].n_refs_omitted)
			return 0;
	return d->ref_bytes < REF_BYTES / 2;
}

/* Entries [from, to) take their refs from `known` when it has every one
 * that can have paths: 1 if so, else 0 (and none is taken). */
static int refs_from_known(struct damage_set *d, const struct damage_set *known, size_t from,
			   size_t to)
{
	for (size_t i = from; i < to; i++)
		if (!d->v[i].is_metadata && !ih_blobindex_get(&known->idx, d->v[i].sha1))
			return 0;
	for (size_t i = from; i < to; i++) {
		const size_t *v = ih_blobindex_get(&known->idx, d->v[i].sha1);
		const ih_damage *k = v ? &known->v[*v] : NULL;
		for (size_t r = 0; k && !d->v[i].is_metadata && r < k->n_refs; r++)
			if (add_ref(d, &d->v[i], k->refs[r].image, k->refs[r].path)) {
				d->oom = 1;
				return 1;
			}
	}
	return 1;
}

int damage_walk_refs(struct damage_set *d, const struct wim *w, const struct image_meta *metas,
		     size_t nmetas, size_t from, size_t to, const struct damage_set *known,
		     const atomic_int *stop)
{
	int need_walk = 0, oom;
	pthread_mutex_lock(&d->mu);
	if (!known || !refs_from_known(d, known, from, to))
		for (size_t i = from; i < to; i++)
			need_walk |= !d->v[i].is_metadata; /* metadata has no paths */
	oom = d->oom;
	pthread_mutex_unlock(&d->mu);
	if (oom)
		return IH_ERR_NOMEM;
	for (size_t i = 0; i < nmetas && need_walk; i++) {
		struct ref_ctx c = {.d = d, .image = metas[i].image, .from = from, .to = to,
				    .stop = stop};
		struct image_meta again = {0};
		const struct image_meta *m = &metas[i];
		char why[128];
		int wr;
		if (!m->ok)
			continue;
		if (!m->buf) {
			/* freed after its first walk: read again, alone */
			struct ih_reader rd;
			ih_reader_init(&rd, w);
			rd.threads = d->threads > 0 ? d->threads : 1;
			int rc = image_meta_read(w, &rd, m->image, &again, NULL);
			ih_reader_free(&rd);
			if (rc)
				return rc == IH_ERR_NOMEM ? IH_ERR_NOMEM : IH_ERR_IO;
			if (!again.ok)
				continue; /* changed meanwhile: its paths are lost */
			m = &again;
		}
		wr = ih_meta_walk(m->buf, m->len, collect_ref, &c, NULL, why, sizeof why);
		image_meta_free(&again);
		if (wr == IH_META_NOMEM || c.oom)
			return IH_ERR_NOMEM;
		if (stop && atomic_load(stop))
			return IH_OK; /* cancelled: nobody reads the paths */
	}
	pthread_mutex_lock(&d->mu);
	for (size_t i = from; i < to; i++)
		sort_refs(&d->v[i]);
	pthread_mutex_unlock(&d->mu);
	return IH_OK;
}

int damage_to_report(struct damage_set *d, const struct wim *w, struct image_meta *metas,
		     size_t nmetas, ih_report *r)
{
	if (d->oom)
		return IH_ERR_NOMEM; /* something was lost: no report rather than a wrong one */
	int rc = damage_walk_refs(d, w, metas, nmetas, d->walked, d->n, NULL, NULL);
	if (rc)
		return rc;
	for (size_t i = 0; i < d->n; i++) {
		ih_damage *dm = &d->v[i];
		sort_refs(dm);
		/* images: those of the refs (noted with them, kept or not), plus
		 * the metadata's own image */
		if (dm->n_images) {
			uint32_t *im = dm->images;
			qsort(im, dm->n_images, sizeof *im, cmp_u32);
			size_t u = 0;
			for (size_t k = 0; k < dm->n_images; k++)
				if (u == 0 || im[u - 1] != im[k])
					im[u++] = im[k];
			dm->n_images = u;
		}
	}
	if (d->n > 1)
		qsort(d->v, d->n, sizeof *d->v, cmp_damage);
	r->damage = d->v;
	r->n_damage = d->n;
	d->v = NULL;
	d->n = d->cap = 0;
	return IH_OK;
}

void ih_report_free(ih_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_damage; i++)
		damage_free(&r->damage[i]);
	free(r->damage);
	free(r->problems);
	free(r->image_path);
	for (size_t i = 0; i < r->n_extra; i++)
		free(r->extra[i]);
	free(r->extra);
	free(r->reference);
	free(r);
}
