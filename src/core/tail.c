/* tail.c - the end of a WIM part: blob table, XML, integrity table, and the
 * header fields that point at them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "restore.h"
#include "sha1.h"
#include "util.h"

#define INTEGRITY_CHUNK (10u << 20)

const struct target *target_at(const struct target *ts, size_t nt, uint16_t part, size_t entry)
{
	for (size_t k = 0; k < nt; k++)
		if ((ts[k].source >= 0 || ts[k].drop) && ts[k].blob && ts[k].part == part &&
		    ts[k].blob->entry == entry)
			return &ts[k];
	return NULL;
}

int table_put_raw(struct new_table *t, const uint8_t raw[BLOB_ENTRY_SIZE])
{
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 256;
		uint8_t *nv = realloc(t->v, ncap * BLOB_ENTRY_SIZE);
		if (!nv)
			return -1;
		t->v = nv;
		t->cap = ncap;
	}
	memcpy(t->v + t->n++ * BLOB_ENTRY_SIZE, raw, BLOB_ENTRY_SIZE);
	return 0;
}

int table_put(struct new_table *t, const struct wim_blob_entry *e)
{
	uint8_t raw[BLOB_ENTRY_SIZE];
	wimfmt_put_blob_entry(raw, e);
	return table_put_raw(t, raw);
}

int table_put_repaired(struct new_table *t, const uint8_t old_raw[BLOB_ENTRY_SIZE],
		       const struct target *hit)
{
	struct wim_blob_entry e;
	if (hit->drop || hit->blob->solid >= 0)
		return 0; /* gone, or leaves its solid run: table_append_new */
	wimfmt_get_blob_entry(old_raw, &e);
	e.res = hit->sup.res;
	e.res.flags |= hit->blob->flags & RESHDR_FLAG_METADATA;
	return table_put(t, &e);
}

int table_append_new(struct new_table *t, uint16_t part, const struct target *ts, size_t nt)
{
	for (size_t k = 0; k < nt; k++) {
		const struct target *x = &ts[k];
		if (x->source < 0 || x->part != part || (x->blob && x->blob->solid < 0))
			continue;
		struct wim_blob_entry e = {.res = x->sup.res, .part_number = part};
		size_t uses = x->dm->n_refs + x->dm->n_refs_omitted;
		e.refcnt = x->blob ? x->blob->refcnt : (uint32_t)(uses ? uses : 1);
		memcpy(e.sha1, x->dm->sha1, 20);
		if (table_put(t, &e))
			return -1;
	}
	return 0;
}

/* A minimal XML document when the old one is damaged: wimlib and WIMGAPI
 * need one that parses; the names are lost with the damage. */
static uint8_t *minimal_xml(uint32_t images, size_t *len)
{
	size_t cap = 64 + (size_t)images * 64, n;
	char *ascii = malloc(cap);
	uint8_t *x;
	if (!ascii)
		return NULL;
	n = (size_t)snprintf(ascii, cap, "<WIM><TOTALBYTES>0</TOTALBYTES>");
	for (uint32_t i = 1; i <= images; i++)
		n += (size_t)snprintf(ascii + n, cap - n,
				      "<IMAGE INDEX=\"%u\"><NAME>Image %u</NAME></IMAGE>", i, i);
	n += (size_t)snprintf(ascii + n, cap - n, "</WIM>");
	x = malloc(2 + 2 * n);
	if (x) {
		x[0] = 0xFF;
		x[1] = 0xFE;
		for (size_t i = 0; i < n; i++) {
			x[2 + 2 * i] = (uint8_t)ascii[i];
			x[3 + 2 * i] = 0;
		}
		*len = 2 + 2 * n;
	}
	free(ascii);
	return x;
}

static uint8_t *part_xml(const struct wim *w, uint16_t part, size_t *len)
{
	const struct wim_part *p = &w->parts[part - 1];
	uint8_t *xml;
	if ((part == 1 && !w->xml_ok) || p->hdr.xml.stored_size > (64u << 20))
		return minimal_xml(w->image_count, len);
	*len = p->hdr.xml.stored_size;
	xml = malloc(*len + 1);
	if (xml && pread(p->fd, xml, *len, (off_t)p->hdr.xml.offset) != (ssize_t)*len) {
		free(xml);
		return minimal_xml(w->image_count, len);
	}
	return xml;
}

static int write_integrity(struct writer *wr, int rfd, uint64_t end, struct wim_reshdr *out)
{
	uint64_t covered = end - WIM_HEADER_SIZE;
	uint32_t n = (uint32_t)((covered + INTEGRITY_CHUNK - 1) / INTEGRITY_CHUNK);
	size_t len = INTEGRITY_HEADER_SIZE + 20 * (size_t)n;
	uint8_t *t = malloc(len), *buf = malloc(1u << 20);
	ih_sha1_ctx *md = ih_sha1_new();
	int rc = -1;

	if (!t || !buf || !md) {
		wr->err = ENOMEM;
		goto out;
	}
	put_le32(t, (uint32_t)len);
	put_le32(t + 4, n);
	put_le32(t + 8, INTEGRITY_CHUNK);
	for (uint32_t c = 0; c < n; c++) {
		uint64_t off = WIM_HEADER_SIZE + (uint64_t)c * INTEGRITY_CHUNK;
		uint64_t stop = off + INTEGRITY_CHUNK < end ? off + INTEGRITY_CHUNK : end;
		ih_sha1_init(md);
		while (off < stop) {
			size_t k = stop - off < (1u << 20) ? (size_t)(stop - off) : (1u << 20);
			if (pread(rfd, buf, k, (off_t)off) != (ssize_t)k) {
				wr->err = errno ? errno : EIO;
				goto out;
			}
			ih_sha1_update(md, buf, k);
			off += k;
		}
		ih_sha1_final(md, t + INTEGRITY_HEADER_SIZE + 20 * (size_t)c);
	}
	memset(out, 0, sizeof *out);
	out->offset = wr->pos;
	out->stored_size = out->orig_size = len;
	rc = writer_put(wr, t, len);
out:
	free(t);
	free(buf);
	ih_sha1_free(md);
	return rc;
}

int write_tail(struct writer *wr, int rfd, const struct wim *w, uint16_t part,
	       const struct new_table *t, const uint8_t old_header[WIM_HEADER_SIZE],
	       const struct wim_reshdr *boot, uint8_t hdr[WIM_HEADER_SIZE])
{
	const struct wim_part *p = &w->parts[part - 1];
	struct wim_reshdr bt, xr, ir = {0};
	size_t xml_len = 0;
	uint8_t *xml;
	int rc = -1;

	if (writer_hook(wr, "resources"))
		return -1;
	bt = (struct wim_reshdr){.stored_size = t->n * BLOB_ENTRY_SIZE,
				 .flags = p->hdr.blob_table.flags, .offset = wr->pos,
				 .orig_size = t->n * BLOB_ENTRY_SIZE};
	if (writer_put(wr, t->v, t->n * BLOB_ENTRY_SIZE))
		return -1;
	if (writer_hook(wr, "blob_table"))
		return -1;
	xml = part_xml(w, part, &xml_len);
	if (!xml) {
		wr->err = ENOMEM;
		return -1;
	}
	xr = (struct wim_reshdr){.stored_size = xml_len, .flags = p->hdr.xml.flags,
				 .offset = wr->pos, .orig_size = xml_len};
	if (writer_put(wr, xml, xml_len))
		goto out;
	if (writer_hook(wr, "xml"))
		goto out;
	if ((p->hdr.integrity.offset || p->hdr.integrity.stored_size) &&
	    write_integrity(wr, rfd, bt.offset + bt.stored_size, &ir))
		goto out;
	if (writer_hook(wr, "integrity"))
		goto out;
	/* A rejected candidate may have been longer than all that follows it. */
	if (ftruncate(wr->fd, (off_t)wr->pos) || fsync(wr->fd)) {
		wr->err = errno;
		goto out;
	}
	if (writer_hook(wr, "fsync"))
		goto out;
	/* The new header: the old one with the new tables' places and the
	 * write-in-progress flag cleared. */
	struct wim_header h = p->hdr;
	h.flags &= ~(uint32_t)WIM_HDR_FLAG_WRITE_IN_PROGRESS;
	h.blob_table = bt;
	h.xml = xr;
	h.boot_metadata = *boot;
	h.integrity = ir;
	memcpy(hdr, old_header, WIM_HEADER_SIZE);
	wimfmt_set_header(hdr, &h);
	rc = 0;
out:
	free(xml);
	return rc;
}
