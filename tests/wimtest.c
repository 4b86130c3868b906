/* wimtest.c - shared helpers of the C suites. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "util.h"
#include "wimtest.h"

int tsh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return system(cmd);
}

static int file_sha1(const char *file, uint8_t out[20])
{
	char cmd[1100], line[256];
	snprintf(cmd, sizeof cmd, "sha1sum '%s'", file);
	FILE *p = popen(cmd, "r");
	int ok = p && fgets(line, sizeof line, p) && strlen(line) >= 40;
	if (p)
		pclose(p);
	line[40] = '\0';
	return ok ? ih_sha1_from_hex(line, out) : -1;
}

int twim_entry(const char *wim, const char *file, struct wim_blob_entry *out)
{
	uint8_t want[20], hdr[WIM_HEADER_SIZE];
	struct wim_header h;
	char why[128];
	int found = -1;

	if (file && file_sha1(file, want))
		return -1;
	FILE *f = fopen(wim, "rb");
	if (!f)
		return -1;
	if (fread(hdr, 1, sizeof hdr, f) == sizeof hdr &&
	    wimfmt_parse_header(hdr, sizeof hdr, &h, why, sizeof why) == 0) {
		for (uint64_t i = 0; found && i < h.blob_table.orig_size / BLOB_ENTRY_SIZE; i++) {
			uint8_t e[BLOB_ENTRY_SIZE];
			fseek(f, (long)(h.blob_table.offset + i * BLOB_ENTRY_SIZE), SEEK_SET);
			if (fread(e, 1, sizeof e, f) != sizeof e)
				break;
			wimfmt_get_blob_entry(e, out);
			if (file ? !memcmp(out->sha1, want, 20) : (out->res.flags & RESHDR_FLAG_METADATA) != 0)
				found = 0;
		}
	}
	fclose(f);
	return found;
}

void tflip(const char *path, uint64_t off, int n)
{
	FILE *f = fopen(path, "r+b");
	if (!f)
		return;
	for (int i = 0; i < n; i++) {
		fseek(f, (long)(off + i), SEEK_SET);
		int c = fgetc(f);
		fseek(f, (long)(off + i), SEEK_SET);
		fputc(c ^ 0xff, f);
	}
	fclose(f);
}

int tdamage(const char *wim, const char *file)
{
	struct wim_blob_entry e;
	if (twim_entry(wim, file, &e))
		return -1;
	/* a solid blob's offset is into the uncompressed data: aim at the
	 * compressed data past the solid header and chunk table instead */
	uint64_t off = (e.res.flags & RESHDR_FLAG_SOLID) ? 208 + 16 + 40 + e.res.offset / 3
						       : e.res.offset + e.res.stored_size / 2;
	tflip(wim, off, 4);
	return 0;
}
