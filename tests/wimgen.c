/* wimgen.c - hostile WIM shapes built byte by byte (see wimgen.h).  Every
 * file is uncompressed at the WIM level: header, resources from byte 208,
 * then the blob table and the XML. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sha1.h"
#include "util.h"
#include "wimfmt.h"
#include "wimgen.h"

static size_t put(struct wimgen *g, const void *p, size_t n)
{
	if (g->len + n > g->cap) {
		size_t ncap = (g->len + n) * 2 + 4096;
		uint8_t *nb = realloc(g->b, ncap);
		if (!nb) {
			fprintf(stderr, "wimgen: out of memory\n");
			abort();
		}
		g->b = nb;
		g->cap = ncap;
	}
	size_t at = g->len;
	if (p)
		memcpy(g->b + at, p, n);
	else
		memset(g->b + at, 0, n);
	g->len += n;
	return at;
}

static void align8(struct wimgen *g)
{
	while (g->len & 7)
		put(g, NULL, 1);
}

void wimgen_free(struct wimgen *g)
{
	free(g->b);
	memset(g, 0, sizeof *g);
}

int wimgen_write(const struct wimgen *g, const char *path)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	int ok = fwrite(g->b, 1, g->len, f) == g->len;
	return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* Starts a file: room for the header. */
static void begin(struct wimgen *g)
{
	memset(g, 0, sizeof *g);
	put(g, NULL, WIM_HEADER_SIZE);
}

static void entry(struct wimgen *t, uint8_t flags, uint64_t stored, uint64_t off, uint64_t orig,
		  const uint8_t sha1[20])
{
	uint8_t e[BLOB_ENTRY_SIZE];
	struct wim_blob_entry be = {.res = {stored, flags, off, orig}, .part_number = 1, .refcnt = 1};
	if (sha1)
		memcpy(be.sha1, sha1, 20);
	wimfmt_put_blob_entry(e, &be);
	put(t, e, sizeof e);
}

/* Appends the blob table and the XML, then writes the header. */
static int finish(struct wimgen *g, const struct wimgen *table, uint32_t version,
		  uint32_t images)
{
	static const char xml[] = "<WIM><TOTALBYTES>0</TOTALBYTES></WIM>";
	struct wim_header h = {0};
	h.version = version;
	h.part_number = h.total_parts = 1;
	h.image_count = images;
	memcpy(h.guid, "imagehealth-gen!", 16);
	h.blob_table.offset = put(g, table->b, table->len);
	h.blob_table.stored_size = h.blob_table.orig_size = table->len;
	h.xml.offset = g->len;
	uint8_t bom[2] = {0xFF, 0xFE};
	put(g, bom, 2);
	for (const char *p = xml; *p; p++) {
		uint8_t u[2] = {(uint8_t)*p, 0};
		put(g, u, 2);
	}
	h.xml.stored_size = h.xml.orig_size = g->len - h.xml.offset;
	wimfmt_put_header(g->b, &h);
	return 0;
}

static void fake_sha1(uint8_t out[20], uint8_t kind, uint32_t i)
{
	memset(out, 0x11, 20);
	out[0] = kind;
	put_le32(out + 8, i);
}

/* ------------------------------------------------------------ metadata */

static size_t dentry(struct wimgen *m, const char *name, unsigned name_len, uint32_t attr,
		     const uint8_t *hash)
{
	uint8_t fixed[102] = {0};
	size_t nb = 2 * (size_t)name_len;
	put_le64(fixed, (102 + (name_len ? nb + 2 : 0) + 7) & ~(size_t)7);
	put_le32(fixed + 8, attr);
	put_le32(fixed + 12, 0xFFFFFFFF);
	if (hash)
		memcpy(fixed + 64, hash, 20);
	put_le16(fixed + 100, (uint16_t)nb);
	size_t at = put(m, fixed, sizeof fixed);
	for (unsigned i = 0; i < name_len; i++) {
		uint8_t u[2] = {(uint8_t)name[i % strlen(name)], 0};
		put(m, u, 2);
	}
	if (name_len)
		put(m, NULL, 2);
	align8(m);
	return at;
}

static void security(struct wimgen *m)
{
	uint8_t sd[8] = {8, 0, 0, 0, 0, 0, 0, 0};
	put(m, sd, 8);
}

#define DIRATTR 0x10u

/* A metadata resource as one uncompressed blob: its entry goes to table. */
static void add_metadata(struct wimgen *g, struct wimgen *table, const struct wimgen *m,
			 unsigned copies)
{
	uint8_t sha1[20];
	ih_sha1(m->b, m->len, sha1);
	uint64_t off = put(g, m->b, m->len);
	for (unsigned i = 0; i < copies; i++)
		entry(table, RESHDR_FLAG_METADATA, m->len, off, m->len, sha1);
}

int wimgen_nested(struct wimgen *g, unsigned levels, unsigned name_len, int same_blob)
{
	struct wimgen m = {0}, t = {0};
	uint8_t h[20];
	char name[8];
	begin(g);
	security(&m);
	size_t parent = dentry(&m, "", 0, DIRATTR, NULL);
	put(&m, NULL, 8);
	for (unsigned k = 0; k < levels; k++) {
		put_le64(m.b + parent + 16, m.len); /* parent's list starts here */
		snprintf(name, sizeof name, "%c", 'a' + k % 26);
		size_t dir = dentry(&m, name, name_len, DIRATTR, NULL);
		fake_sha1(h, 0xF1, same_blob ? 0 : k);
		dentry(&m, "f", 1, 0x20, h);
		put(&m, NULL, 8);
		parent = dir;
	}
	add_metadata(g, &t, &m, 1);
	finish(g, &t, WIM_VERSION_DEFAULT, 1);
	wimgen_free(&m);
	wimgen_free(&t);
	return 0;
}

int wimgen_meta_shared(struct wimgen *g, unsigned images, unsigned meta_size)
{
	struct wimgen m = {0}, t = {0};
	begin(g);
	security(&m);
	dentry(&m, "", 0, DIRATTR, NULL);
	put(&m, NULL, 8);
	if (m.len < meta_size)
		put(&m, NULL, meta_size - m.len);
	add_metadata(g, &t, &m, images);
	finish(g, &t, WIM_VERSION_DEFAULT, images);
	wimgen_free(&m);
	wimgen_free(&t);
	return 0;
}

/* ---------------------------------------------------------------- blobs */

int wimgen_solid_shared(struct wimgen *g, unsigned n, unsigned nchunks)
{
	struct wimgen t = {0};
	uint8_t sh[SOLID_HEADER_SIZE], h[20];
	begin(g);
	put_le64(sh, (uint64_t)nchunks * 32768);
	put_le32(sh + 8, 32768);
	put_le32(sh + 12, CTYPE_LZMS);
	uint64_t off = put(g, sh, sizeof sh);
	for (unsigned c = 0; c < nchunks; c++) {
		uint8_t one[4] = {1, 0, 0, 0};
		put(g, one, 4);
	}
	put(g, NULL, nchunks);
	uint64_t stored = g->len - off;
	for (unsigned i = 0; i < n; i++)
		entry(&t, RESHDR_FLAG_SOLID | RESHDR_FLAG_COMPRESSED, stored, off,
		      SOLID_RESOURCE_MAGIC, NULL);
	fake_sha1(h, 0xF2, 0);
	entry(&t, RESHDR_FLAG_SOLID, 100, 0, 100, h);
	finish(g, &t, WIM_VERSION_SOLID, 0);
	wimgen_free(&t);
	return 0;
}

int wimgen_solid_norun(struct wimgen *g, unsigned n)
{
	struct wimgen t = {0};
	uint8_t h[20];
	begin(g);
	for (unsigned i = 0; i < n; i++) {
		fake_sha1(h, 0xF3, i);
		entry(&t, RESHDR_FLAG_SOLID, 100, (uint64_t)i * 100, 100, h);
	}
	finish(g, &t, WIM_VERSION_SOLID, 0);
	wimgen_free(&t);
	return 0;
}

int wimgen_sha1_flood(struct wimgen *g, unsigned n)
{
	struct wimgen t = {0};
	uint8_t h[20];
	begin(g);
	uint64_t off = put(g, NULL, n);
	for (unsigned i = 0; i < n; i++) {
		fake_sha1(h, 0xF4, i); /* bytes 0..7 the same for all */
		entry(&t, 0, 1, off + i, 1, h);
	}
	finish(g, &t, WIM_VERSION_DEFAULT, 0);
	wimgen_free(&t);
	return 0;
}

int wimgen_overlap(struct wimgen *g, unsigned n, unsigned region)
{
	struct wimgen t = {0};
	uint8_t h[20];
	begin(g);
	uint64_t off = put(g, NULL, region);
	for (unsigned i = 0; i < n; i++) {
		fake_sha1(h, 0xF5, i);
		entry(&t, 0, region, off, region, h);
	}
	finish(g, &t, WIM_VERSION_DEFAULT, 0);
	wimgen_free(&t);
	return 0;
}

int wimgen_corrupt_entries(struct wimgen *g, unsigned n)
{
	struct wimgen t = {0};
	uint8_t h[20];
	begin(g);
	for (unsigned i = 0; i < n; i++) {
		fake_sha1(h, 0xF6, i);
		entry(&t, 0x80, 1, WIM_HEADER_SIZE, 1, h);
	}
	finish(g, &t, WIM_VERSION_DEFAULT, 0);
	wimgen_free(&t);
	return 0;
}
