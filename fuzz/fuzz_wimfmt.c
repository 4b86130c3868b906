/* fuzz_wimfmt.c - the header, blob table, chunk table, solid and integrity
 * parsers on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "wimfmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wim_header h;
	char why[128];
	uint64_t offs[65];

	wimfmt_parse_header(data, size, &h, why, sizeof why);
	for (size_t i = 0; i + BLOB_ENTRY_SIZE <= size; i += BLOB_ENTRY_SIZE) {
		struct wim_blob_entry e;
		wimfmt_get_blob_entry(data + i, &e);
	}
	if (size >= 16) {
		/* a chunk table of up to 64 chunks taken from the input */
		uint64_t usize = data[0] | (uint64_t)data[1] << 8 | (uint64_t)data[2] << 16;
		uint32_t cs = 1u << (12 + data[3] % 10);
		uint64_t n = wimfmt_num_chunks(usize, cs);
		uint64_t tsize = wimfmt_chunk_table_size(usize, cs);
		if (n && n <= 64 && tsize <= size - 8) {
			uint64_t data_size = data[4] | (uint64_t)data[5] << 8 | (uint64_t)data[6] << 16;
			uint64_t first = data[7] % n;
			wimfmt_chunk_offsets(data + 8, usize, cs, data_size, first, n - first, offs);
		}
		struct wim_solid_header sh;
		if (wimfmt_parse_solid_header(data, size, &sh) == 0) {
			uint64_t nc = (size - 16) / 4;
			if (nc > 64)
				nc = 64;
			wimfmt_solid_chunk_offsets(data + 16, nc, sh.usize, sh.chunk_size, offs);
		}
		struct wim_integrity_header ih;
		wimfmt_parse_integrity(data, size, &ih, usize);
	}
	return 0;
}
