/* manifest.c - the reference manifest of an applied tree, from a WIM
 * image's directory tree.  Names are those wimlib gives the files when it
 * applies the image to a POSIX directory: the UTF-16 name as UTF-8.  A
 * name wimlib cannot apply there (one holding '/', which includes absolute
 * names and "../x") is hostile here: the whole reference is refused, so
 * nothing can ever be written outside the tree.  Empty names, "." and ".."
 * never reach us (the walker drops them, as wimlib does). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include "tree.h"
#include "util.h"

#define WIM_HDR_FLAG_RP_FIX 0x80 /* absolute link targets were made relative to the root */

int tree_name_ok(const char *name, size_t n)
{
	if (n == 0 || (n == 1 && name[0] == '.') || (n == 2 && name[0] == '.' && name[1] == '.'))
		return 0;
	return memchr(name, '/', n) == NULL && memchr(name, '\0', n) == NULL;
}

struct build {
	struct manifest *m;
	const struct wim *w;
	size_t *stack;           /* open directories: entry indexes */
	size_t nstack, capstack;
	char *why;
	size_t whylen;
	int hostile;
};

static int push_entry(struct manifest *m, struct tree_entry *e)
{
	if (m->n == m->cap) {
		size_t ncap = m->cap ? 2 * m->cap : 256;
		struct tree_entry *nv = realloc(m->v, ncap * sizeof *nv);
		if (!nv)
			return -1;
		m->v = nv;
		m->cap = ncap;
	}
	m->v[m->n++] = *e;
	return 0;
}

static int on_file(void *ctx, const ih_meta_file *f)
{
	struct build *b = ctx;
	struct manifest *m = b->m;
	struct tree_entry e = {0};
	size_t plen = strlen(f->path);

	if (f->name_has_slash) {
		snprintf(b->why, b->whylen,
			 "the reference names a file no tree may hold (a name with '/': \"%.200s\"); "
			 "refused: nothing is read or written for it", f->path + f->name_off);
		b->hostile = 1;
		return 1;
	}
	/* The directory holding it: the DFS walk keeps it on the stack. */
	size_t want = f->name_off - 1; /* its parent's path length; 0: the root */
	while (b->nstack) {
		const struct tree_entry *top = &m->v[b->stack[b->nstack - 1]];
		size_t tl = top->path[1] ? strlen(top->path) : 0;
		if (tl == want && !memcmp(top->path, f->path, tl))
			break;
		b->nstack--;
	}
	e.parent = plen == 1 ? SIZE_MAX : b->nstack ? b->stack[b->nstack - 1] : SIZE_MAX;
	if ((plen > 1) != (e.parent != SIZE_MAX) || (plen == 1 && m->n)) {
		snprintf(b->why, b->whylen, "the reference tree is inconsistent at \"%.200s\"", f->path);
		b->hostile = 1;
		return 1;
	}
	e.attributes = f->attributes;
	if (f->attributes & IH_FILE_ATTRIBUTE_REPARSE_POINT)
		e.type = IH_TREE_LINK;
	else if (f->attributes & IH_FILE_ATTRIBUTE_DIRECTORY)
		e.type = IH_TREE_DIR;
	else
		e.type = IH_TREE_FILE;
	if (e.type == IH_TREE_LINK) {
		e.reparse_tag = f->reparse_tag;
		e.rpfix = (b->w->hdr.flags & WIM_HDR_FLAG_RP_FIX) && !f->not_rpfixed;
	}
	if (e.type == IH_TREE_FILE || e.type == IH_TREE_LINK) {
		memcpy(e.sha1, f->data_sha1, 20);
		if (!ih_is_zero_hash(e.sha1)) {
			const struct wim_blob *bl = wim_find_blob(b->w, e.sha1);
			e.size = bl ? bl->size : UINT64_MAX; /* unknown: the reference lacks it */
		}
	}
	e.atime = f->last_access_time;
	e.mtime = f->last_write_time;
	e.named_streams = f->named_streams;
	m->named_streams += f->named_streams;
	m->links += e.type == IH_TREE_LINK;
	e.path = ih_strdup(f->path);
	if (!e.path)
		return -1;
	if (push_entry(m, &e)) {
		free(e.path);
		return -1;
	}
	if (e.type == IH_TREE_DIR) {
		if (b->nstack == b->capstack) {
			size_t nc = b->capstack ? 2 * b->capstack : 64;
			size_t *ns = realloc(b->stack, nc * sizeof *ns);
			if (!ns)
				return -1;
			b->stack = ns;
			b->capstack = nc;
		}
		b->stack[b->nstack++] = m->n - 1;
	}
	return 0;
}

static const struct manifest *sort_m;

static int cmp_key(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int r = strcmp(sort_m->v[x].key, sort_m->v[y].key);
	return r ? r : (x > y) - (x < y);
}

int manifest_index(struct manifest *m)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	for (size_t i = 0; i < m->n; i++) {
		struct tree_entry *e = &m->v[i];
		if (!m->ci) {
			e->key = e->path;
			continue;
		}
		if (!(e->key = manifest_key(e->path, 1)))
			return -1;
	}
	free(m->order);
	m->order = malloc((m->n + 1) * sizeof *m->order);
	if (!m->order)
		return -1;
	for (size_t i = 0; i < m->n; i++)
		m->order[i] = i;
	pthread_mutex_lock(&mu); /* qsort has no context argument in C11 */
	sort_m = m;
	qsort(m->order, m->n, sizeof *m->order, cmp_key);
	pthread_mutex_unlock(&mu);
	/* Names equal but for case: wimlib applies the first one only. */
	for (size_t i = 1; i < m->n; i++)
		if (!strcmp(m->v[m->order[i]].key, m->v[m->order[i - 1]].key))
			m->v[m->order[i]].dup = 1;
	/* Entries below a dropped one are dropped too. */
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].parent != SIZE_MAX && m->v[m->v[i].parent].dup)
			m->v[i].dup = 1;
	return 0;
}

size_t manifest_find(const struct manifest *m, const char *key)
{
	size_t lo = 0, hi = m->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(m->v[m->order[mid]].key, key);
		if (r == 0) {
			size_t i = m->order[mid];
			/* the first of equal keys is the one applied */
			while (mid > 0 && !strcmp(m->v[m->order[mid - 1]].key, key))
				i = m->order[--mid];
			return m->v[i].dup ? SIZE_MAX : i;
		}
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return SIZE_MAX;
}

void manifest_free(struct manifest *m)
{
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].key != m->v[i].path)
			free(m->v[i].key);
		free(m->v[i].path);
	}
	free(m->v);
	free(m->order);
	free(m->reference);
	memset(m, 0, sizeof *m);
}

int manifest_from_image(struct manifest *m, const struct wim *w, uint32_t index, int ci,
			char *why, size_t whylen, ih_error *err)
{
	struct ih_reader rd;
	struct image_meta im;
	struct build b = {.m = m, .w = w, .why = why, .whylen = whylen};
	int rc;

	m->ci = ci;
	m->index = index;
	memcpy(m->guid, w->hdr.guid, 16);
	why[0] = '\0';
	ih_reader_init(&rd, w);
	rc = image_meta_read(w, &rd, index, &im, err);
	ih_reader_free(&rd);
	if (rc)
		return rc;
	if (!im.ok) {
		snprintf(why, whylen, "the reference's directory tree cannot be read: %s", im.detail);
		return IH_OK; /* NonRepairable, said by the check */
	}
	char msg[160];
	int wr = ih_meta_walk3(im.buf, im.len, on_file, &b, NULL, msg, sizeof msg);
	image_meta_free(&im);
	free(b.stack);
	if (wr == IH_META_NOMEM)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory reading the reference");
	if (b.hostile)
		return ih_fail(err, IH_ERR_INVALID_ARG, "%s", why);
	if (wr != IH_META_OK) {
		snprintf(why, whylen, "the reference's directory tree is invalid: %s", msg);
		return IH_OK;
	}
	if (m->n == 0 || m->v[0].type != IH_TREE_DIR) {
		snprintf(why, whylen, "the reference image is empty");
		return IH_OK;
	}
	if (manifest_index(m))
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	return IH_OK;
}
