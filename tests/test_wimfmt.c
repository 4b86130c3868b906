/* test_wimfmt.c - the format parsers on hand-made and hostile input. */
#include <stdint.h>
#include <stdlib.h>
#include "testutil.h"
#include "util.h"
#include "wimfmt.h"

static void make_header(uint8_t *b)
{
	struct wim_header h = {.version = WIM_VERSION_DEFAULT,
			       .flags = WIM_HDR_FLAG_COMPRESSION | WIM_HDR_FLAG_COMPRESS_LZX,
			       .chunk_size = 32768, .part_number = 1, .total_parts = 1,
			       .image_count = 1};
	h.blob_table = (struct wim_reshdr){.stored_size = 500, .offset = 1000, .orig_size = 500};
	wimfmt_put_header(b, &h);
}

void test_wimfmt(void)
{
	uint8_t b[WIM_HEADER_SIZE];
	struct wim_header h;
	char why[128];

	make_header(b);
	CHECK_EQ_INT(wimfmt_parse_header(b, sizeof b, &h, why, sizeof why), 0);
	CHECK_EQ_INT(h.ctype, CTYPE_LZX);
	CHECK_EQ_INT(h.blob_table.offset, 1000);
	CHECK_EQ_INT(wimfmt_parse_header(b, 100, &h, why, sizeof why), -2);
	b[0] = 'X';
	CHECK_EQ_INT(wimfmt_parse_header(b, sizeof b, &h, why, sizeof why), -2);
	make_header(b);
	put_le32(b + 0x14, 1000); /* not a power of two */
	CHECK_EQ_INT(wimfmt_parse_header(b, sizeof b, &h, why, sizeof why), -1);
	make_header(b);
	put_le32(b + 0x10, WIM_HDR_FLAG_COMPRESSION | WIM_HDR_FLAG_COMPRESS_LZX |
				   WIM_HDR_FLAG_COMPRESS_XPRESS);
	CHECK_EQ_INT(wimfmt_parse_header(b, sizeof b, &h, why, sizeof why), -1);
	make_header(b);
	put_le16(b + 0x28, 3); /* part 3 of 1 */
	CHECK_EQ_INT(wimfmt_parse_header(b, sizeof b, &h, why, sizeof why), -1);
	make_header(b);
	b[0x30] = 49; /* blob table not a multiple of 50 */
	CHECK_EQ_INT(wimfmt_parse_header(b, sizeof b, &h, why, sizeof why), -1);

	/* resource header round trip, 56-bit size */
	uint8_t rb[RESHDR_SIZE];
	struct wim_reshdr r = {.stored_size = 0x00ABCDEF01234567ULL, .flags = 0x14,
			       .offset = 0x1122334455667788ULL, .orig_size = 42}, r2;
	wimfmt_put_reshdr(rb, &r);
	wimfmt_get_reshdr(rb, &r2);
	CHECK(r2.stored_size == r.stored_size && r2.flags == 0x14 && r2.offset == r.offset &&
	      r2.orig_size == 42);

	/* chunk tables: 3 chunks of 32 KiB, 2 entries */
	uint8_t t[8];
	uint64_t offs[4];
	put_le32(t, 1000);
	put_le32(t + 4, 3000);
	CHECK_EQ_INT(wimfmt_num_chunks(70000, 32768), 3);
	CHECK_EQ_INT(wimfmt_chunk_table_size(70000, 32768), 8);
	CHECK_EQ_INT(wimfmt_chunk_offsets(t, 70000, 32768, 4000, 0, 3, offs), 0);
	CHECK(offs[0] == 0 && offs[1] == 1000 && offs[2] == 3000 && offs[3] == 4000);
	CHECK_EQ_INT(wimfmt_chunk_offsets(t, 70000, 32768, 2500, 0, 3, offs), -1); /* past data */
	put_le32(t + 4, 500); /* decreasing */
	CHECK_EQ_INT(wimfmt_chunk_offsets(t, 70000, 32768, 4000, 0, 3, offs), -1);
	put_le32(t + 4, 1000); /* empty chunk */
	CHECK_EQ_INT(wimfmt_chunk_offsets(t, 70000, 32768, 4000, 0, 3, offs), -1);
	put_le32(t, 40000); /* chunk bigger than its data */
	CHECK_EQ_INT(wimfmt_chunk_offsets(t, 70000, 32768, 80000, 0, 3, offs), -1);
	CHECK_EQ_INT(wimfmt_chunk_entry_size(5ULL << 30), 8);

	/* solid header and table */
	uint8_t sh[SOLID_HEADER_SIZE], st[8];
	struct wim_solid_header s;
	put_le64(sh, 100000);
	put_le32(sh + 8, 65536);
	put_le32(sh + 12, CTYPE_LZMS);
	CHECK_EQ_INT(wimfmt_parse_solid_header(sh, sizeof sh, &s), 0);
	put_le32(sh + 12, 7);
	CHECK_EQ_INT(wimfmt_parse_solid_header(sh, sizeof sh, &s), -1);
	put_le32(st, 30000);
	put_le32(st + 4, 20000);
	CHECK_EQ_INT(wimfmt_solid_chunk_offsets(st, 2, 50000, 65536, offs), 0);
	CHECK(offs[2] == 50000);
	CHECK_EQ_INT(wimfmt_solid_chunk_offsets(st, 2, 49999, 65536, offs), -1);

	/* integrity header */
	uint8_t ib[12 + 40];
	struct wim_integrity_header ih;
	put_le32(ib, sizeof ib);
	put_le32(ib + 4, 2);
	put_le32(ib + 8, 10485760);
	CHECK_EQ_INT(wimfmt_parse_integrity(ib, sizeof ib, &ih, 15 << 20), 0);
	CHECK_EQ_INT(wimfmt_parse_integrity(ib, sizeof ib, &ih, 25 << 20), -1);
	put_le32(ib + 4, 0x40000000);
	CHECK_EQ_INT(wimfmt_parse_integrity(ib, sizeof ib, &ih, 15 << 20), -1);
}
