/* metadata.c - walks the dentry tree of a WIM metadata resource.
 *
 * Layout (all little-endian): security data (le32 total length, le32 entry
 * count, le64 sizes, descriptors), then the root dentry at the security
 * data's total length.  A directory's children are a list of dentries at its
 * subdir_offset, ended by an entry whose length is <= 8.  Each dentry is
 * followed by its extra stream entries.  See metadata.h for the contract. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "metadata.h"
#include "util.h"

#define DENTRY_FIXED_SIZE 102
#define STREAM_ENTRY_FIXED_SIZE 38
#define END_OF_DIR_SIZE 8

/* Offsets inside the fixed part of a dentry. */
#define D_ATTRIBUTES 8
#define D_SUBDIR_OFFSET 16
#define D_CREATION_TIME 40
#define D_LAST_ACCESS_TIME 48
#define D_LAST_WRITE_TIME 56
#define D_MAIN_HASH 64
#define D_REPARSE_TAG 88       /* reparse points: the tag, u16 reserved, u16 flags */
#define D_RP_FLAGS 94
#define D_NUM_EXTRA_STREAMS 96
#define D_SHORT_NAME_NBYTES 98
#define D_NAME_NBYTES 100

/* Offsets inside an extra stream entry. */
#define S_HASH 16
#define S_NAME_NBYTES 36

/* A directory entry kept for visiting: only offsets into the buffer, so
 * the kept entries of every open directory fit in one growable array. */
struct child {
	uint64_t off;           /* start of the dentry */
	uint64_t streams_off;   /* first extra stream entry */
	uint64_t subdir_offset;
	uint32_t attributes;
	uint16_t name_nbytes;
	uint16_t num_streams;
	int duplicate;          /* a sibling earlier in the list has the same name */
};

/* An open directory: its kept children are kids[start .. start+n). */
struct frame {
	size_t start, n, next;
	size_t path_len;        /* of the directory's path; 0 for the root */
};

/* For the duplicate-name pass: sorts names, ties broken by list position. */
struct name_key {
	const uint8_t *name;
	uint16_t nbytes;
	size_t pos;
};

struct walker {
	const uint8_t *buf;
	size_t len;
	ih_meta_entry_fn entry_fn;
	ih_meta_stream_fn stream_fn;
	ih_meta_file_fn file_fn;
	void *ctx;
	ih_meta_stats st;
	char *errmsg;
	size_t errlen;
	uint64_t budget;        /* bytes of dentries we may still read */
	char *path;
	size_t path_cap;
	struct child *kids;
	size_t nkids, kids_cap;
	struct frame *frames;
	size_t nframes, frames_cap;
	struct name_key *keys;
	size_t keys_cap;
	size_t name_off;        /* of the entry being visited */
	int name_slash;
};


static int fail(struct walker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct walker *w, const char *fmt, ...)
{
	if (w->errmsg && w->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(w->errmsg, w->errlen, fmt, ap);
		va_end(ap);
	}
	return IH_META_INVALID;
}

static int nomem(struct walker *w)
{
	fail(w, "out of memory");
	return IH_META_NOMEM;
}

/* A callback's result as the walk's: its failures are out of memory, its
 * positive values stop the walk and are passed through. */
static int cb_result(int r)
{
	return r < 0 ? IH_META_NOMEM : r;
}

/* Grows *p (of *cap elements of size sz) to hold at least need elements. */
static int grow(void **p, size_t *cap, size_t need, size_t sz)
{
	if (need <= *cap)
		return 0;
	size_t ncap = *cap ? *cap : 16;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / sz)
			return -1;
		ncap *= 2;
	}
	void *np = realloc(*p, ncap * sz);
	if (!np)
		return -1;
	*p = np;
	*cap = ncap;
	return 0;
}

/* ------------------------------------------------------------- UTF-16 */

static size_t put_utf8(uint32_t c, char *out)
{
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xC0 | (c >> 6));
		out[1] = (char)(0x80 | (c & 0x3F));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xE0 | (c >> 12));
		out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		out[2] = (char)(0x80 | (c & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (c >> 18));
	out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
	out[3] = (char)(0x80 | (c & 0x3F));
	return 4;
}

size_t ih_utf16le_to_utf8(const uint8_t *in, size_t nbytes, char *out)
{
	size_t i = 0, o = 0;
	while (nbytes - i >= 2) {
		uint32_t c = get_le16(in + i);
		i += 2;
		if (c >= 0xD800 && c < 0xE000) {
			uint32_t lo = nbytes - i >= 2 ? get_le16(in + i) : 0;
			if (c < 0xDC00 && lo >= 0xDC00 && lo < 0xE000) {
				c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
				i += 2;
			} else {
				c = 0xFFFD;
			}
		}
		o += put_utf8(c, out + o);
	}
	if (i < nbytes)
		o += put_utf8(0xFFFD, out + o);
	return o;
}

/* ------------------------------------------------------------- parsing */

/* wimlib's ALIGN(n, 8): wraps for n near 2^64, turning such a length into
 * an end-of-directory entry.  Kept so that we accept what wimlib accepts. */
static uint64_t align8(uint64_t n)
{
	return (n + 7) & ~(uint64_t)7;
}

/* Validates the security data; sets *root_off to where the root dentry is. */
static int read_security_data(struct walker *w, uint64_t *root_off)
{
	const uint8_t *b = w->buf;
	if (w->len < 8)
		return fail(w, "%zu bytes: too short for security data", w->len);
	uint32_t total = (get_le32(b) + 7u) & ~7u; /* 32-bit wrap, as in wimlib */
	uint32_t n = get_le32(b + 4);
	if (total == 0)
		total = 8;
	if (n > 0x80000000u)
		return fail(w, "security data: %u descriptors", n);
	if (total > w->len)
		return fail(w, "security data length %u exceeds the resource (%zu)", total,
			    w->len);
	uint64_t used = 8 + (uint64_t)n * 8;
	if (used > total)
		return fail(w, "security data: %u sizes do not fit in %u bytes", n, total);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t sz = get_le64(b + 8 + (size_t)i * 8);
		if (sz > 0xFFFFFFFFu)
			return fail(w, "security descriptor %u: size %llu", i,
				    (unsigned long long)sz);
		used += sz;
		if (used > total)
			return fail(w, "security descriptors overrun their %u bytes", total);
	}
	*root_off = total;
	return 0;
}

/* Reads the dentry at off with its extra stream entries.  Returns 1 and
 * fills *c (and *next, the offset after it), 0 at an end-of-directory
 * entry, -1 if invalid. */
static int read_dentry(struct walker *w, uint64_t off, struct child *c, uint64_t *next)
{
	const uint8_t *b = w->buf;
	size_t len = w->len;

	if (off > len || len - off < 8)
		return fail(w, "dentry at %llu lies past the end (%zu)", (unsigned long long)off,
			    len);
	const uint8_t *p = b + off;
	uint64_t length = align8(get_le64(p));
	uint64_t cost = length;
	if (length <= END_OF_DIR_SIZE) {
		cost = END_OF_DIR_SIZE;
		*next = off + END_OF_DIR_SIZE;
	} else {
		if (length < DENTRY_FIXED_SIZE)
			return fail(w, "dentry at %llu: length %llu is too short",
				    (unsigned long long)off, (unsigned long long)length);
		if (length > len - off)
			return fail(w, "dentry at %llu: length %llu runs past the end",
				    (unsigned long long)off, (unsigned long long)length);
		uint16_t short_nbytes = get_le16(p + D_SHORT_NAME_NBYTES);
		uint16_t name_nbytes = get_le16(p + D_NAME_NBYTES);
		if ((short_nbytes | name_nbytes) & 1)
			return fail(w, "dentry at %llu: odd name length", (unsigned long long)off);
		uint64_t need = DENTRY_FIXED_SIZE;
		if (name_nbytes)
			need += (uint64_t)name_nbytes + 2;
		if (short_nbytes)
			need += (uint64_t)short_nbytes + 2;
		if (length < need)
			return fail(w, "dentry at %llu: names overrun its length",
				    (unsigned long long)off);

		c->off = off;
		c->attributes = get_le32(p + D_ATTRIBUTES);
		c->subdir_offset = get_le64(p + D_SUBDIR_OFFSET);
		c->name_nbytes = name_nbytes;
		c->num_streams = get_le16(p + D_NUM_EXTRA_STREAMS);
		c->streams_off = off + length;
		c->duplicate = 0;

		/* Extra stream entries: not counted in length, not realigned. */
		uint64_t s = c->streams_off;
		for (unsigned i = 0; i < c->num_streams; i++) {
			if (len - s < STREAM_ENTRY_FIXED_SIZE)
				return fail(w, "dentry at %llu: stream entry %u past the end",
					    (unsigned long long)off, i);
			uint64_t slen = align8(get_le64(b + s));
			uint16_t snb = get_le16(b + s + S_NAME_NBYTES);
			if (slen < STREAM_ENTRY_FIXED_SIZE || slen > len - s)
				return fail(w, "dentry at %llu: stream entry %u has bad length",
					    (unsigned long long)off, i);
			if ((snb & 1) || STREAM_ENTRY_FIXED_SIZE + (uint64_t)snb > slen)
				return fail(w, "dentry at %llu: stream entry %u has bad name",
					    (unsigned long long)off, i);
			s += slen;
		}
		*next = s;
		cost = s - off;
	}
	/* Shared or cyclic subdir offsets make us re-read lists; a sane tree
	 * reads each byte once, so twice the buffer is plenty. */
	if (cost > w->budget)
		return fail(w, "dentry lists are re-read past any sane tree "
			       "(cyclic or shared subdir offsets)");
	w->budget -= cost;
	return length > END_OF_DIR_SIZE;
}

/* wimlib drops unnamed entries, "." and "..", and names holding a NUL. */
static int is_zero_hash(const uint8_t *h)
{
	for (int i = 0; i < 20; i++)
		if (h[i])
			return 0;
	return 1;
}

/* wimlib's inode_is_directory(): a directory that is a reparse point (a
 * junction, a symlink to a directory) counts as a file and its children, if
 * any, are ignored. */
static int is_directory(uint32_t attributes)
{
	return (attributes & (IH_FILE_ATTRIBUTE_DIRECTORY | IH_FILE_ATTRIBUTE_REPARSE_POINT)) ==
	       IH_FILE_ATTRIBUTE_DIRECTORY;
}

static int ignored_name(const uint8_t *name, uint16_t nbytes)
{
	if (nbytes == 0)
		return 1;
	if (nbytes == 2 && get_le16(name) == '.')
		return 1;
	if (nbytes == 4 && get_le16(name) == '.' && get_le16(name + 2) == '.')
		return 1;
	for (uint16_t i = 0; i < nbytes; i += 2)
		if (get_le16(name + i) == 0)
			return 1;
	return 0;
}

static const uint8_t *child_name(const struct walker *w, const struct child *c)
{
	return w->buf + c->off + DENTRY_FIXED_SIZE;
}

static int cmp_name_key(const void *a, const void *b)
{
	const struct name_key *x = a, *y = b;
	size_t n = x->nbytes < y->nbytes ? x->nbytes : y->nbytes;
	int r = memcmp(x->name, y->name, n);
	if (r)
		return r;
	if (x->nbytes != y->nbytes)
		return x->nbytes < y->nbytes ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Marks kids[start..start+n) that repeat an earlier sibling's exact name
 * (wimlib keeps the first).  Sorting keeps hostile lists O(n log n). */
static int mark_duplicates(struct walker *w, size_t start, size_t n)
{
	if (n < 2)
		return 0;
	if (grow((void **)&w->keys, &w->keys_cap, n, sizeof *w->keys))
		return nomem(w);
	for (size_t i = 0; i < n; i++) {
		const struct child *c = &w->kids[start + i];
		w->keys[i] = (struct name_key){child_name(w, c), c->name_nbytes, i};
	}
	qsort(w->keys, n, sizeof *w->keys, cmp_name_key);
	for (size_t i = 1; i < n; i++) {
		const struct name_key *a = &w->keys[i - 1], *b = &w->keys[i];
		if (a->nbytes == b->nbytes && memcmp(a->name, b->name, a->nbytes) == 0)
			w->kids[start + b->pos].duplicate = 1;
	}
	return 0;
}

/* Reads the list at off and pushes it as a new open directory. */
static int push_dir(struct walker *w, uint64_t off, size_t path_len)
{
	if (w->nframes >= IH_META_MAX_DEPTH)
		return fail(w, "directory tree deeper than %d levels", IH_META_MAX_DEPTH);
	if (grow((void **)&w->frames, &w->frames_cap, w->nframes + 1, sizeof *w->frames))
		return nomem(w);
	size_t start = w->nkids;
	for (;;) {
		struct child c;
		uint64_t next;
		int r = read_dentry(w, off, &c, &next);
		if (r < 0)
			return r;
		if (r == 0)
			break;
		off = next;
		if (ignored_name(child_name(w, &c), c.name_nbytes))
			continue;
		if (grow((void **)&w->kids, &w->kids_cap, w->nkids + 1, sizeof *w->kids))
			return nomem(w);
		w->kids[w->nkids++] = c;
	}
	int r = mark_duplicates(w, start, w->nkids - start);
	if (r)
		return r;
	w->frames[w->nframes++] = (struct frame){start, w->nkids - start, 0, path_len};
	return 0;
}

/* ------------------------------------------------------------- reporting */

static int reserve_path(struct walker *w, size_t need)
{
	if (grow((void **)&w->path, &w->path_cap, need, 1))
		return nomem(w);
	return 0;
}

/* path[0..base) is the parent's path; appends "/name".  Sets *plen. */
static int append_name(struct walker *w, size_t base, const struct child *c, size_t *plen)
{
	int r = reserve_path(w, base + 2 + IH_UTF8_MAX(c->name_nbytes));
	if (r)
		return r;
	w->path[base] = '/';
	size_t n = base + 1 + ih_utf16le_to_utf8(child_name(w, c), c->name_nbytes,
						  w->path + base + 1);
	w->name_off = base + 1;
	w->name_slash = memchr(w->path + base + 1, '/', n - base - 1) != NULL;
	if (n > IH_META_MAX_PATH)
		return fail(w, "path longer than %u bytes", IH_META_MAX_PATH);
	w->path[n] = '\0';
	*plen = n;
	return 0;
}

/* Reports the entry whose path is path[0..plen) and its streams. */
/* The facts of an entry for ih_meta_walk3. */
static int visit_file(struct walker *w, const struct child *c)
{
	const uint8_t *p = w->buf + c->off;
	ih_meta_file f = {.path = w->path, .name_off = w->name_off,
			  .name_has_slash = w->name_slash, .attributes = c->attributes,
			  .creation_time = get_le64(p + D_CREATION_TIME),
			  .last_access_time = get_le64(p + D_LAST_ACCESS_TIME),
			  .last_write_time = get_le64(p + D_LAST_WRITE_TIME)};
	memcpy(f.data_sha1, p + D_MAIN_HASH, 20);
	if (c->attributes & IH_FILE_ATTRIBUTE_REPARSE_POINT) {
		f.reparse_tag = get_le32(p + D_REPARSE_TAG);
		f.not_rpfixed = (get_le16(p + D_RP_FLAGS) & 1) != 0;
	}
	int have = !is_zero_hash(f.data_sha1);
	/* A reparse point whose main hash is zero keeps its reparse data in
	 * its first unnamed extra stream (as wimlib writes it); its unnamed
	 * file data, if any, is not reported. */
	int want_unnamed = !have;
	uint64_t s = c->streams_off;
	for (unsigned i = 0; i < c->num_streams; i++) {
		const uint8_t *e = w->buf + s;
		uint16_t nb = get_le16(e + S_NAME_NBYTES);
		s += align8(get_le64(e)); /* validated by read_dentry */
		if (!nb && want_unnamed && (c->attributes & IH_FILE_ATTRIBUTE_REPARSE_POINT)) {
			memcpy(f.data_sha1, e + S_HASH, 20);
			want_unnamed = 0;
			continue;
		}
		if (is_zero_hash(e + S_HASH))
			continue;
		if (nb)
			f.named_streams++;
		else if (want_unnamed) {
			memcpy(f.data_sha1, e + S_HASH, 20);
			want_unnamed = 0;
		}
	}
	return cb_result(w->file_fn(w->ctx, &f));
}

static int visit(struct walker *w, const struct child *c, size_t plen)
{
	int r;
	if (w->entry_fn && (r = w->entry_fn(w->ctx, w->path, c->attributes)))
		return cb_result(r);
	if (w->file_fn && (r = visit_file(w, c)))
		return r;
	const uint8_t *main_hash = w->buf + c->off + D_MAIN_HASH;
	if (!is_zero_hash(main_hash)) {
		w->st.streams++;
		if (w->stream_fn && (r = w->stream_fn(w->ctx, main_hash, w->path, 0)))
			return cb_result(r);
	}
	uint64_t s = c->streams_off;
	for (unsigned i = 0; i < c->num_streams; i++) {
		const uint8_t *e = w->buf + s;
		uint16_t nb = get_le16(e + S_NAME_NBYTES);
		s += align8(get_le64(e)); /* validated by read_dentry */
		if (is_zero_hash(e + S_HASH))
			continue;
		w->st.streams++;
		if (!w->stream_fn)
			continue;
		if (nb == 0) {
			/* Unnamed: file data, or reparse data of a reparse point. */
			if ((r = w->stream_fn(w->ctx, e + S_HASH, w->path, 0)))
				return cb_result(r);
			continue;
		}
		/* Like wimlib's NUL-terminated copy, the name ends at a NUL. */
		const uint8_t *name = e + STREAM_ENTRY_FIXED_SIZE;
		uint16_t units = 0;
		while (units < nb / 2 && get_le16(name + 2 * units))
			units++;
		if ((r = reserve_path(w, plen + 2 + IH_UTF8_MAX(2 * (size_t)units))))
			return r;
		w->path[plen] = ':';
		size_t n = plen + 1 + ih_utf16le_to_utf8(name, 2 * (size_t)units, w->path + plen + 1);
		w->path[n] = '\0';
		r = w->stream_fn(w->ctx, e + S_HASH, w->path, 1);
		w->path[plen] = '\0';
		if (r)
			return cb_result(r);
	}
	return 0;
}

static int walk(struct walker *w)
{
	uint64_t root_off = 0, next = 0;
	struct child root;
	int r;

	if ((r = read_security_data(w, &root_off)))
		return r;
	r = read_dentry(w, root_off, &root, &next);
	if (r <= 0)
		return r; /* an end-of-directory root: an empty image, as in wimlib */
	if (!is_directory(root.attributes))
		return fail(w, "the root is not a directory");
	if ((r = reserve_path(w, 2)))
		return r;
	memcpy(w->path, "/", 2); /* the root's own name is ignored */
	w->name_off = 1;
	if ((r = visit(w, &root, 1)))
		return r;
	if (root.subdir_offset != 0 && (r = push_dir(w, root.subdir_offset, 0)))
		return r;

	while (w->nframes) {
		struct frame *f = &w->frames[w->nframes - 1];
		if (f->next == f->n) {
			w->nkids = f->start;
			w->nframes--;
			continue;
		}
		struct child c = w->kids[f->start + f->next++];
		size_t plen = 0;
		if (c.duplicate)
			continue;
		if ((r = append_name(w, f->path_len, &c, &plen)))
			return r;
		int is_dir = is_directory(c.attributes);
		if (is_dir)
			w->st.dirs++;
		else
			w->st.files++;
		if ((r = visit(w, &c, plen)))
			return r;
		/* wimlib ignores the children of non-directories. */
		if (is_dir && c.subdir_offset != 0 && (r = push_dir(w, c.subdir_offset, plen)))
			return r;
	}
	return 0;
}

static int walk_all(const uint8_t *buf, size_t len, ih_meta_entry_fn entry_fn,
		    ih_meta_stream_fn stream_fn, ih_meta_file_fn file_fn, void *ctx,
		    ih_meta_stats *stats, char *errmsg, size_t errlen)
{
	struct walker w = {
		.file_fn = file_fn,
		.buf = buf,
		.len = buf ? len : 0,
		.entry_fn = entry_fn,
		.stream_fn = stream_fn,
		.ctx = ctx,
		.errmsg = errmsg,
		.errlen = errlen,
		.budget = 2 * (uint64_t)len + 64,
	};
	if (errmsg && errlen)
		errmsg[0] = '\0';
	int r = walk(&w);
	if (stats)
		*stats = w.st;
	free(w.path);
	free(w.kids);
	free(w.frames);
	free(w.keys);
	return r;
}

int ih_meta_walk2(const uint8_t *buf, size_t len, ih_meta_entry_fn entry_fn,
		  ih_meta_stream_fn stream_fn, void *ctx, ih_meta_stats *stats,
		  char *errmsg, size_t errlen)
{
	return walk_all(buf, len, entry_fn, stream_fn, NULL, ctx, stats, errmsg, errlen);
}

int ih_meta_walk3(const uint8_t *buf, size_t len, ih_meta_file_fn fn, void *ctx,
		  ih_meta_stats *stats, char *errmsg, size_t errlen)
{
	return walk_all(buf, len, NULL, NULL, fn, ctx, stats, errmsg, errlen);
}

int ih_meta_walk(const uint8_t *buf, size_t len, ih_meta_stream_fn fn, void *ctx,
		 ih_meta_stats *stats, char *errmsg, size_t errlen)
{
	return ih_meta_walk2(buf, len, NULL, fn, ctx, stats, errmsg, errlen);
}
