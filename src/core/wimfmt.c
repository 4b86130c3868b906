/* wimfmt.c - parsers and writers of the WIM on-disk structures. */
#include <stdio.h>
#include <string.h>
#include "wimfmt.h"
#include "util.h"

void wimfmt_get_reshdr(const uint8_t p[RESHDR_SIZE], struct wim_reshdr *r)
{
	r->stored_size = get_le64(p) & 0x00FFFFFFFFFFFFFFULL;
	r->flags = p[7];
	r->offset = get_le64(p + 8);
	r->orig_size = get_le64(p + 16);
}

void wimfmt_put_reshdr(uint8_t p[RESHDR_SIZE], const struct wim_reshdr *r)
{
	put_le64(p, r->stored_size & 0x00FFFFFFFFFFFFFFULL);
	p[7] = r->flags;
	put_le64(p + 8, r->offset);
	put_le64(p + 16, r->orig_size);
}

static int ctype_of_flags(uint32_t flags)
{
	if (!(flags & WIM_HDR_FLAG_COMPRESSION))
		return CTYPE_NONE;
	switch (flags & (WIM_HDR_FLAG_COMPRESS_XPRESS | WIM_HDR_FLAG_COMPRESS_LZX |
			 WIM_HDR_FLAG_COMPRESS_LZMS | WIM_HDR_FLAG_COMPRESS_XPRESS2)) {
	case WIM_HDR_FLAG_COMPRESS_XPRESS: return CTYPE_XPRESS;
	case WIM_HDR_FLAG_COMPRESS_LZX: return CTYPE_LZX;
	case WIM_HDR_FLAG_COMPRESS_LZMS: return CTYPE_LZMS;
	default: return -1;
	}
}

int wimfmt_chunk_size_valid(int ctype, uint32_t cs)
{
	if (cs == 0 || (cs & (cs - 1)))
		return 0;
	switch (ctype) {
	case CTYPE_NONE: return 1;
	case CTYPE_XPRESS: return cs >= 4096 && cs <= 65536;
	case CTYPE_LZX: return cs >= 32768 && cs <= 2097152;
	case CTYPE_LZMS: return cs >= 32768 && cs <= 1073741824;
	}
	return 0;
}

int wimfmt_parse_header(const uint8_t *buf, size_t len, struct wim_header *h,
			char *why, size_t whylen)
{
	memset(h, 0, sizeof *h);
	if (len < WIM_HEADER_SIZE || memcmp(buf, WIM_MAGIC, 8) != 0) {
		snprintf(why, whylen, "no WIM magic number");
		return -2;
	}
	h->hdr_size = get_le32(buf + 8);
	h->version = get_le32(buf + 0xC);
	h->flags = get_le32(buf + 0x10);
	h->chunk_size = get_le32(buf + 0x14);
	memcpy(h->guid, buf + 0x18, 16);
	h->part_number = get_le16(buf + 0x28);
	h->total_parts = get_le16(buf + 0x2A);
	h->image_count = get_le32(buf + 0x2C);
	wimfmt_get_reshdr(buf + 0x30, &h->blob_table);
	wimfmt_get_reshdr(buf + 0x48, &h->xml);
	wimfmt_get_reshdr(buf + 0x60, &h->boot_metadata);
	h->boot_index = get_le32(buf + 0x78);
	wimfmt_get_reshdr(buf + 0x7C, &h->integrity);
	h->ctype = ctype_of_flags(h->flags);

	if (h->hdr_size != WIM_HEADER_SIZE) {
		snprintf(why, whylen, "header size field is %u, not 208", h->hdr_size);
		return -1;
	}
	if (h->version != WIM_VERSION_DEFAULT && h->version != WIM_VERSION_SOLID) {
		snprintf(why, whylen, "unknown WIM version 0x%x", h->version);
		return -1;
	}
	if (h->ctype < 0) {
		snprintf(why, whylen, "unknown compression flags 0x%x", h->flags);
		return -1;
	}
	/* Uncompressed WIMs often carry a chunk size of 0. */
	if (h->ctype != CTYPE_NONE && !wimfmt_chunk_size_valid(h->ctype, h->chunk_size)) {
		snprintf(why, whylen, "invalid chunk size %u", h->chunk_size);
		return -1;
	}
	if (h->part_number == 0 || h->total_parts == 0 || h->part_number > h->total_parts) {
		snprintf(why, whylen, "invalid part number %u of %u", h->part_number,
			 h->total_parts);
		return -1;
	}
	if (h->image_count > 0xFFFF) {
		snprintf(why, whylen, "implausible image count %u", h->image_count);
		return -1;
	}
	if (h->blob_table.flags & RESHDR_FLAG_COMPRESSED) {
		snprintf(why, whylen, "blob table is compressed (unsupported)");
		return -1;
	}
	if (h->blob_table.orig_size % BLOB_ENTRY_SIZE != 0 ||
	    h->blob_table.stored_size != h->blob_table.orig_size) {
		snprintf(why, whylen, "blob table size %llu is not a whole number of entries",
			 (unsigned long long)h->blob_table.orig_size);
		return -1;
	}
	return 0;
}

void wimfmt_put_header(uint8_t buf[WIM_HEADER_SIZE], const struct wim_header *h)
{
	memset(buf, 0, WIM_HEADER_SIZE);
	wimfmt_set_header(buf, h);
}

void wimfmt_set_header(uint8_t buf[WIM_HEADER_SIZE], const struct wim_header *h)
{
	memcpy(buf, WIM_MAGIC, 8);
	put_le32(buf + 8, WIM_HEADER_SIZE);
	put_le32(buf + 0xC, h->version);
	put_le32(buf + 0x10, h->flags);
	put_le32(buf + 0x14, h->chunk_size);
	memcpy(buf + 0x18, h->guid, 16);
	put_le16(buf + 0x28, h->part_number);
	put_le16(buf + 0x2A, h->total_parts);
	put_le32(buf + 0x2C, h->image_count);
	wimfmt_put_reshdr(buf + 0x30, &h->blob_table);
	wimfmt_put_reshdr(buf + 0x48, &h->xml);
	wimfmt_put_reshdr(buf + 0x60, &h->boot_metadata);
	put_le32(buf + 0x78, h->boot_index);
	wimfmt_put_reshdr(buf + 0x7C, &h->integrity);
}

void wimfmt_get_blob_entry(const uint8_t p[BLOB_ENTRY_SIZE], struct wim_blob_entry *e)
{
	wimfmt_get_reshdr(p, &e->res);
	e->part_number = get_le16(p + 24);
	e->refcnt = get_le32(p + 26);
	memcpy(e->sha1, p + 30, 20);
}

void wimfmt_put_blob_entry(uint8_t p[BLOB_ENTRY_SIZE], const struct wim_blob_entry *e)
{
	wimfmt_put_reshdr(p, &e->res);
	put_le16(p + 24, e->part_number);
	put_le32(p + 26, e->refcnt);
	memcpy(p + 30, e->sha1, 20);
}

uint64_t wimfmt_num_chunks(uint64_t usize, uint32_t chunk_size)
{
	if (chunk_size == 0)
		return 0;
	return usize / chunk_size + (usize % chunk_size != 0);
}

unsigned wimfmt_chunk_entry_size(uint64_t usize)
{
	return usize > 0xFFFFFFFFULL ? 8 : 4;
}

uint64_t wimfmt_chunk_table_size(uint64_t usize, uint32_t chunk_size)
{
	uint64_t n = wimfmt_num_chunks(usize, chunk_size);
	return n ? (n - 1) * wimfmt_chunk_entry_size(usize) : 0;
}

int wimfmt_chunk_offsets(const uint8_t *table, uint64_t usize, uint32_t chunk_size,
			 uint64_t data_size, uint64_t first, uint64_t n, uint64_t *offs)
{
	uint64_t nchunks = wimfmt_num_chunks(usize, chunk_size);
	unsigned es = wimfmt_chunk_entry_size(usize);

	if (n == 0 || first + n > nchunks || first + n < first)
		return -1;
	for (uint64_t i = 0; i <= n; i++) {
		uint64_t c = first + i, off;
		if (c == 0)
			off = 0;
		else if (c == nchunks)
			off = data_size;
		else
			off = es == 4 ? get_le32(table + (c - 1) * 4) : get_le64(table + (c - 1) * 8);
		if (off > data_size)
			return -1;
		if (i > 0) {
			uint64_t clen = off - offs[i - 1];
			uint64_t ulen = (c - 1 == nchunks - 1) ? usize - (nchunks - 1) * chunk_size
							      : chunk_size;
			/* A stored chunk is never larger than its data. */
			if (off < offs[i - 1] || clen == 0 || clen > ulen)
				return -1;
		}
		offs[i] = off;
	}
	return 0;
}

int wimfmt_parse_solid_header(const uint8_t *buf, size_t len, struct wim_solid_header *s)
{
	if (len < SOLID_HEADER_SIZE)
		return -1;
	s->usize = get_le64(buf);
	s->chunk_size = get_le32(buf + 8);
	s->ctype = get_le32(buf + 12);
	if (s->ctype > CTYPE_LZMS || !wimfmt_chunk_size_valid((int)s->ctype, s->chunk_size))
		return -1;
	if (s->usize == 0 || s->usize > (1ULL << 50))
		return -1;
	return 0;
}

int wimfmt_solid_chunk_offsets(const uint8_t *table, uint64_t nchunks,
			       uint64_t data_size, uint32_t chunk_size, uint64_t *offs)
{
	uint64_t off = 0;
	for (uint64_t i = 0; i < nchunks; i++) {
		uint32_t c = get_le32(table + 4 * i);
		offs[i] = off;
		if (c == 0 || c > chunk_size || off + c > data_size)
			return -1;
		off += c;
	}
	offs[nchunks] = off;
	return 0;
}

int wimfmt_parse_integrity(const uint8_t *buf, size_t len, struct wim_integrity_header *ih,
			   uint64_t covered_bytes)
{
	if (len < INTEGRITY_HEADER_SIZE)
		return -1;
	ih->size = get_le32(buf);
	ih->num_entries = get_le32(buf + 4);
	ih->chunk_size = get_le32(buf + 8);
	if (ih->chunk_size == 0 || ih->size != len ||
	    (uint64_t)ih->num_entries * 20 + INTEGRITY_HEADER_SIZE != len)
		return -1;
	if (ih->num_entries != (covered_bytes + ih->chunk_size - 1) / ih->chunk_size)
		return -1;
	return 0;
}
