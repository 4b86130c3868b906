/* seal.c - a tree's reference manifest recorded, so that later checks
 * need no image.  Like the state records (statestore.c, format 3): every
 * field length-prefixed, a SHA-256 over everything before it at the end,
 * and refused whole when anything is off (the checksum, a length, a name a
 * tree may not hold, a parent that is not an earlier directory).  The
 * checksum makes a damaged or edited seal evident, not a forged one: keep
 * seals where only their owner writes (the state store checks that).
 *
 *   "IHSEAL4\n"  u64 length of the whole record (checksum included)
 *   u32 len + reference spec, u32 index, 16-byte GUID, u64 sealed_at,
 *   u64 named_streams, u64 entry count, then per entry:
 *     u8 type, u32 attributes, u64 size, u64 atime, u64 mtime,
 *     20-byte SHA-1, u32 named streams, u32 reparse tag, u8 rpfix,
 *     u64 parent + 1, u32 len + path
 *   32-byte SHA-256 of every byte before it */
#include <errno.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "sha1.h"
#include "tree.h"
#include "util.h"

#define SEAL_MAGIC "IHSEAL4\n"
#define SEAL_MAX ((uint64_t)1 << 30)

struct buf {
	uint8_t *p;
	size_t n, cap;
	int bad;
};

static void put(struct buf *b, const void *d, size_t n)
{
	if (b->bad)
		return;
	if (b->n + n > b->cap) {
		size_t nc = b->cap ? b->cap : 4096;
		while (nc < b->n + n)
			nc *= 2;
		uint8_t *np = realloc(b->p, nc);
		if (!np) {
			b->bad = 1;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->n, d, n);
	b->n += n;
}

static void put32(struct buf *b, uint32_t v)
{
	uint8_t x[4];
	put_le32(x, v);
	put(b, x, 4);
}

static void put64(struct buf *b, uint64_t v)
{
	uint8_t x[8];
	put_le64(x, v);
	put(b, x, 8);
}

static void put_str(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	put32(b, (uint32_t)n);
	put(b, s, n);
}

int seal_write(const struct manifest *m, int fd)
{
	struct buf b = {0};
	put(&b, SEAL_MAGIC, 8);
	put64(&b, 0); /* the length, filled in below */
	put_str(&b, m->reference ? m->reference : "");
	put32(&b, m->index);
	put(&b, m->guid, 16);
	put64(&b, (uint64_t)time(NULL));
	put64(&b, m->named_streams);
	put64(&b, m->n);
	for (size_t i = 0; i < m->n; i++) {
		const struct tree_entry *e = &m->v[i];
		uint8_t t = (uint8_t)e->type;
		put(&b, &t, 1);
		put32(&b, e->attributes);
		put64(&b, e->size);
		put64(&b, e->atime);
		put64(&b, e->mtime);
		put(&b, e->sha1, 20);
		put32(&b, e->named_streams);
		put32(&b, e->reparse_tag);
		put(&b, &e->rpfix, 1);
		put64(&b, e->parent == SIZE_MAX ? 0 : (uint64_t)e->parent + 1);
		put_str(&b, e->path);
	}
	if (b.bad) {
		free(b.p);
		return IH_ERR_NOMEM;
	}
	put_le64(b.p + 8, b.n + SHA256_DIGEST_LENGTH);
	uint8_t md[SHA256_DIGEST_LENGTH];
	SHA256(b.p, b.n, md);
	put(&b, md, sizeof md);
	if (b.bad) {
		free(b.p);
		return IH_ERR_NOMEM;
	}
	size_t off = 0;
	while (off < b.n) {
		ssize_t n = write(fd, b.p + off, b.n - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(b.p);
			return ih_errno_code(n < 0 ? errno : EIO);
		}
		off += (size_t)n;
	}
	free(b.p);
	return fsync(fd) ? ih_errno_code(errno) : IH_OK;
}

struct cur {
	const uint8_t *p;
	size_t n, off;
	int bad;
};

static const uint8_t *take(struct cur *c, size_t n)
{
	if (c->bad || n > c->n - c->off) {
		c->bad = 1;
		return NULL;
	}
	const uint8_t *p = c->p + c->off;
	c->off += n;
	return p;
}

static uint32_t get32(struct cur *c)
{
	const uint8_t *p = take(c, 4);
	return p ? get_le32(p) : 0;
}

static uint64_t get64(struct cur *c)
{
	const uint8_t *p = take(c, 8);
	return p ? get_le64(p) : 0;
}

static char *get_str(struct cur *c)
{
	uint32_t n = get32(c);
	const uint8_t *p = take(c, n);
	if (!p || memchr(p, 0, n))
		return c->bad = 1, NULL;
	char *s = malloc((size_t)n + 1);
	if (!s)
		return NULL;
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* A path the seal may hold: "/" or "/a/b" of names a tree may hold, whose
 * parent path is exactly the parent entry's. */
static int path_ok(const struct manifest *m, const char *path, uint64_t parent1, size_t i)
{
	if (i == 0)
		return parent1 == 0 && !strcmp(path, "/");
	if (parent1 == 0 || parent1 - 1 >= i || path[0] != '/')
		return 0;
	const struct tree_entry *pe = &m->v[parent1 - 1];
	if (pe->type != IH_TREE_DIR)
		return 0;
	size_t pl = pe->path[1] ? strlen(pe->path) : 0;
	if (strncmp(path, pe->path, pl) || path[pl] != '/')
		return 0;
	const char *name = path + pl + 1;
	return tree_name_ok(name, strlen(name));
}

int seal_read(int fd, struct manifest *m, int ci, char *why, size_t whylen, ih_error *err)
{
	struct stat st;
	uint8_t *data = NULL;
	int rc = IH_OK;

	if (fstat(fd, &st) || !S_ISREG(st.st_mode))
		return ih_fail(err, IH_ERR_INVALID_ARG, "the seal is not a regular file");
	if ((uint64_t)st.st_size > SEAL_MAX || st.st_size < 8 + 8 + 32)
		return ih_fail(err, IH_ERR_INVALID_ARG, "the seal has an impossible size (%lld bytes)",
			       (long long)st.st_size);
	size_t len = (size_t)st.st_size, got = 0;
	data = malloc(len);
	if (!data)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	while (got < len) {
		ssize_t n = pread(fd, data + got, len - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	uint8_t md[SHA256_DIGEST_LENGTH];
	if (got != len || memcmp(data, SEAL_MAGIC, 8) || get_le64(data + 8) != len) {
		rc = ih_fail(err, IH_ERR_INVALID_ARG, "not a seal of this version, or cut short");
		goto out;
	}
	SHA256(data, len - sizeof md, md);
	if (memcmp(md, data + len - sizeof md, sizeof md)) {
		rc = ih_fail(err, IH_ERR_INVALID_ARG,
			     "the seal does not match its checksum: it was damaged or edited; refused");
		goto out;
	}
	struct cur c = {data, len - sizeof md, 16, 0};
	m->ci = ci;
	m->reference = get_str(&c);
	m->index = get32(&c);
	const uint8_t *g = take(&c, 16);
	if (g)
		memcpy(m->guid, g, 16);
	get64(&c); /* sealed_at */
	m->named_streams = get64(&c);
	uint64_t count = get64(&c);
	/* Each entry takes at least 70 bytes: the count cannot exceed what is there. */
	if (c.bad || !m->reference || count == 0 || count > (c.n - c.off) / 70 + 1) {
		rc = ih_fail(err, c.bad ? IH_ERR_INVALID_ARG : IH_ERR_NOMEM, "the seal's header is invalid");
		goto out;
	}
	m->v = calloc((size_t)count, sizeof *m->v);
	if (!m->v) {
		rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
		goto out;
	}
	m->cap = (size_t)count;
	for (size_t i = 0; i < count; i++) {
		struct tree_entry *e = &m->v[i];
		const uint8_t *t = take(&c, 1);
		e->type = t ? (ih_tree_type)*t : IH_TREE_NONE;
		e->attributes = get32(&c);
		e->size = get64(&c);
		e->atime = get64(&c);
		e->mtime = get64(&c);
		const uint8_t *h = take(&c, 20);
		if (h)
			memcpy(e->sha1, h, 20);
		e->named_streams = get32(&c);
		e->reparse_tag = get32(&c);
		const uint8_t *rp = take(&c, 1);
		e->rpfix = rp && *rp;
		uint64_t parent1 = get64(&c);
		e->parent = parent1 ? (size_t)(parent1 - 1) : SIZE_MAX;
		e->path = get_str(&c);
		if (!c.bad && !e->path) {
			rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
			goto out;
		}
		m->n = i + 1;
		if (c.bad || e->type < IH_TREE_FILE || e->type > IH_TREE_LINK ||
		    (i == 0) != (e->type == IH_TREE_DIR && parent1 == 0) ||
		    !path_ok(m, e->path, parent1, i)) {
			rc = ih_fail(err, IH_ERR_INVALID_ARG,
				     "the seal's entry %zu is invalid (a name no tree may hold, or a "
				     "broken parent): refused", i);
			goto out;
		}
		m->links += e->type == IH_TREE_LINK;
	}
	if (c.off != c.n) {
		rc = ih_fail(err, IH_ERR_INVALID_ARG, "the seal has bytes past its entries: refused");
		goto out;
	}
	if (manifest_index(m))
		rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
out:
	(void)why;
	(void)whylen;
	free(data);
	if (rc)
		manifest_free(m);
	return rc;
}

void seal_store_name(const char *root, char *buf, size_t len)
{
	uint8_t h[20];
	char hex[41];
	ih_sha1(root, strlen(root), h);
	ih_sha1_hex(h, hex);
	snprintf(buf, len, "tree-%.32s.seal", hex);
}
