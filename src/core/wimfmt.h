/* wimfmt.h - the WIM on-disk format: pure parsers over byte buffers, no I/O.
 * Every function here is safe on hostile input (they are fuzzed). */
#ifndef IH_WIMFMT_H
#define IH_WIMFMT_H

#include <stddef.h>
#include <stdint.h>

#define WIM_HEADER_SIZE 208
#define WIM_MAGIC "MSWIM\0\0\0"
#define WIM_VERSION_DEFAULT 0x10D00
#define WIM_VERSION_SOLID 0xE00

#define WIM_HDR_FLAG_COMPRESSION 0x00000002
#define WIM_HDR_FLAG_READONLY 0x00000004
#define WIM_HDR_FLAG_SPANNED 0x00000008
#define WIM_HDR_FLAG_WRITE_IN_PROGRESS 0x00000040
#define WIM_HDR_FLAG_COMPRESS_XPRESS 0x00020000
#define WIM_HDR_FLAG_COMPRESS_LZX 0x00040000
#define WIM_HDR_FLAG_COMPRESS_LZMS 0x00080000
#define WIM_HDR_FLAG_COMPRESS_XPRESS2 0x00200000

#define RESHDR_FLAG_FREE 0x01
#define RESHDR_FLAG_METADATA 0x02
#define RESHDR_FLAG_COMPRESSED 0x04
#define RESHDR_FLAG_SPANNED 0x08
#define RESHDR_FLAG_SOLID 0x10

#define RESHDR_SIZE 24
#define BLOB_ENTRY_SIZE 50
#define SOLID_RESOURCE_MAGIC 0x100000000ULL
#define SOLID_HEADER_SIZE 16
#define INTEGRITY_HEADER_SIZE 12

/* WIMLIB_COMPRESSION_TYPE_* values, the same numbers as WIMGAPI's. */
enum { CTYPE_NONE = 0, CTYPE_XPRESS = 1, CTYPE_LZX = 2, CTYPE_LZMS = 3 };

/* A resource header, 24 bytes on disk. */
struct wim_reshdr {
	uint64_t stored_size; /* @0: 7 bytes (56 bits) on disk */
	uint8_t flags;        /* @7: RESHDR_FLAG_* */
	uint64_t offset;      /* @8 */
	uint64_t orig_size;   /* @16: uncompressed size */
};

/* The header, 208 bytes at the start of every part (magic "MSWIM\0\0\0"
 * @0; bytes 0x94..0xCF reserved). */
struct wim_header {
	uint32_t hdr_size;                /* @0x08: 208 */
	uint32_t version;                 /* @0x0C: WIM_VERSION_* */
	uint32_t flags;                   /* @0x10: WIM_HDR_FLAG_* */
	uint32_t chunk_size;              /* @0x14 */
	uint8_t guid[16];                 /* @0x18 */
	uint16_t part_number;             /* @0x28: 1-based */
	uint16_t total_parts;             /* @0x2A */
	uint32_t image_count;             /* @0x2C */
	struct wim_reshdr blob_table;     /* @0x30 */
	struct wim_reshdr xml;            /* @0x48 */
	struct wim_reshdr boot_metadata;  /* @0x60 */
	uint32_t boot_index;              /* @0x78: 1-based, 0 for none */
	struct wim_reshdr integrity;      /* @0x7C */
	int ctype;                        /* not on disk: CTYPE_*, from the flags */
};

/* A blob table entry, 50 bytes on disk. */
struct wim_blob_entry {
	struct wim_reshdr res;  /* @0 */
	uint16_t part_number;   /* @24 */
	uint32_t refcnt;        /* @26 */
	uint8_t sha1[20];       /* @30 */
};

/* The header of a solid resource, 16 bytes before its chunk table. */
struct wim_solid_header {
	uint64_t usize;       /* @0: uncompressed size of the whole run */
	uint32_t chunk_size;  /* @8 */
	uint32_t ctype;       /* @12: compression format */
};

void wimfmt_get_reshdr(const uint8_t p[RESHDR_SIZE], struct wim_reshdr *r);
void wimfmt_put_reshdr(uint8_t p[RESHDR_SIZE], const struct wim_reshdr *r);

/* Parses the 208-byte header.  Returns 0, or -1 with a reason in why when a
 * field makes the file unusable (bad magic gives -2: not a WIM at all). */
int wimfmt_parse_header(const uint8_t *buf, size_t len, struct wim_header *h,
			char *why, size_t whylen);
/* Writes every field the format defines: put_header into a zeroed buffer,
 * set_header over an existing header (its reserved bytes kept). */
void wimfmt_put_header(uint8_t buf[WIM_HEADER_SIZE], const struct wim_header *h);
void wimfmt_set_header(uint8_t buf[WIM_HEADER_SIZE], const struct wim_header *h);

void wimfmt_get_blob_entry(const uint8_t p[BLOB_ENTRY_SIZE], struct wim_blob_entry *e);
void wimfmt_put_blob_entry(uint8_t p[BLOB_ENTRY_SIZE], const struct wim_blob_entry *e);

/* Is the chunk size valid for the compression type?  (power of two in the
 * range each codec supports) */
int wimfmt_chunk_size_valid(int ctype, uint32_t chunk_size);

/* Non-solid compressed resource: the chunk table precedes the chunks. */
uint64_t wimfmt_num_chunks(uint64_t usize, uint32_t chunk_size);
unsigned wimfmt_chunk_entry_size(uint64_t usize);
uint64_t wimfmt_chunk_table_size(uint64_t usize, uint32_t chunk_size);
/* Decodes entries of a chunk table into absolute offsets of the chunk data
 * (relative to the end of the table): offs[0..n] for chunks first..first+n-1
 * plus the end.  table holds the whole chunk table; data_size is the stored
 * size less the table.  Returns 0, or -1 if the offsets are not increasing,
 * run past data_size or describe a chunk larger than it may be. */
int wimfmt_chunk_offsets(const uint8_t *table, uint64_t usize, uint32_t chunk_size,
			 uint64_t data_size, uint64_t first, uint64_t n, uint64_t *offs);

int wimfmt_parse_solid_header(const uint8_t *buf, size_t len, struct wim_solid_header *s);
/* Solid chunk table: one u32 compressed size per chunk.  Fills offs[0..n]
 * (offsets relative to the end of the table), checks they fit in data_size. */
int wimfmt_solid_chunk_offsets(const uint8_t *table, uint64_t nchunks,
			       uint64_t data_size, uint32_t chunk_size, uint64_t *offs);

/* Integrity table header: total size, entry count, chunk size. */
struct wim_integrity_header {
	uint32_t size;         /* @0: of the whole table */
	uint32_t num_entries;  /* @4: one SHA-1 each, from @12 */
	uint32_t chunk_size;   /* @8 */
};
int wimfmt_parse_integrity(const uint8_t *buf, size_t len, struct wim_integrity_header *ih,
			   uint64_t covered_bytes);

#endif
