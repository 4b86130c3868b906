/* wimtest.c - shared helpers of the C suites. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "imagehealth.h"
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

static int read_at(FILE *f, uint64_t off, void *buf, size_t len)
{
	return fseek(f, (long)off, SEEK_SET) || fread(buf, 1, len, f) != len ? -1 : 0;
}

static uint32_t le32_at(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A blob in a solid resource: wimlib writes its size as the stored size
 * (the uncompressed-size field is 0). */
static uint64_t solid_blob_size(const struct wim_blob_entry *e)
{
	return e->res.orig_size > e->res.stored_size ? e->res.orig_size : e->res.stored_size;
}

int tdamage_solid_chunk(const char *wim, uint32_t chunk, uint8_t (*want)[20], size_t max,
			size_t *n)
{
	uint8_t hdr[WIM_HEADER_SIZE], sh[SOLID_HEADER_SIZE], *table = NULL, *sizes = NULL;
	struct wim_header h;
	struct wim_blob_entry e, res = {0};
	char why[128];
	int nres = 0, rc = -1;
	uint64_t nent, dmg_off = 0;
	FILE *f = fopen(wim, "rb");

	*n = 0;
	if (!f || read_at(f, 0, hdr, sizeof hdr) ||
	    wimfmt_parse_header(hdr, sizeof hdr, &h, why, sizeof why))
		goto out;
	nent = h.blob_table.orig_size / BLOB_ENTRY_SIZE;
	table = malloc(nent * BLOB_ENTRY_SIZE + 1);
	if (!table || read_at(f, h.blob_table.offset, table, nent * BLOB_ENTRY_SIZE))
		goto out;
	for (uint64_t i = 0; i < nent; i++) {
		wimfmt_get_blob_entry(table + i * BLOB_ENTRY_SIZE, &e);
		if ((e.res.flags & RESHDR_FLAG_SOLID) && e.res.orig_size == SOLID_RESOURCE_MAGIC) {
			res = e;
			nres++;
		}
	}
	if (nres != 1 || read_at(f, res.res.offset, sh, sizeof sh))
		goto out;
	/* solid header: uncompressed size u64, chunk size u32, format u32 */
	uint64_t usize = (uint64_t)le32_at(sh) | (uint64_t)le32_at(sh + 4) << 32;
	uint32_t cs = le32_at(sh + 8);
	uint64_t nchunks = cs ? (usize + cs - 1) / cs : 0;
	sizes = malloc(nchunks * 4 + 1);
	if (!sizes || read_at(f, res.res.offset + SOLID_HEADER_SIZE, sizes, nchunks * 4))
		goto out;
	if (chunk == UINT32_MAX) {
		/* the compressed chunk most blobs overlap */
		size_t best = 0;
		for (uint32_t k = 0; k < nchunks; k++) {
			uint64_t klo = (uint64_t)k * cs, khi = klo + cs < usize ? klo + cs : usize;
			size_t cnt = 0;
			if (le32_at(sizes + 4 * k) >= khi - klo)
				continue;
			for (uint64_t i = 0; i < nent; i++) {
				wimfmt_get_blob_entry(table + i * BLOB_ENTRY_SIZE, &e);
				cnt += (e.res.flags & RESHDR_FLAG_SOLID) &&
				       e.res.orig_size != SOLID_RESOURCE_MAGIC && e.res.offset < khi &&
				       e.res.offset + solid_blob_size(&e) > klo;
			}
			if (cnt > best) {
				best = cnt;
				chunk = k;
			}
		}
	}
	if (chunk >= nchunks)
		goto out;
	uint64_t at = res.res.offset + SOLID_HEADER_SIZE + nchunks * 4;
	for (uint32_t k = 0; k < chunk; k++)
		at += le32_at(sizes + 4 * k);
	uint64_t lo = (uint64_t)chunk * cs, hi = lo + cs < usize ? lo + cs : usize;
	uint32_t csize = le32_at(sizes + 4 * chunk);
	if (csize >= hi - lo || csize < 16)
		goto out; /* stored raw: damage would not take the whole chunk */
	/* At the start: the decoder goes wrong from the chunk's first byte on,
	 * so every blob with bytes in the chunk reads wrong, whether or not
	 * decompression notices (damage mid-chunk spares what comes before). */
	dmg_off = at;
	for (uint64_t i = 0; i < nent; i++) {
		wimfmt_get_blob_entry(table + i * BLOB_ENTRY_SIZE, &e);
		if (!(e.res.flags & RESHDR_FLAG_SOLID) || e.res.orig_size == SOLID_RESOURCE_MAGIC)
			continue;
		if (e.res.offset < hi && e.res.offset + solid_blob_size(&e) > lo) {
			if (*n == max)
				goto out;
			memcpy(want[(*n)++], e.sha1, 20);
		}
	}
	rc = 0;
out:
	if (f)
		fclose(f);
	free(table);
	free(sizes);
	if (rc == 0)
		tflip(wim, dmg_off, 8);
	return rc;
}

int tbig_image(const char *dir)
{
	return tsh("mkdir -p %s/big && for i in 0 1 2 3 4 5 6 7; do head -c 1500000 /dev/urandom | "
		   "base64 >%s/big/f$i.txt; done && wimlib-imagex capture %s/big %s/big.wim big "
		   "--compress=LZX >/dev/null",
		   dir, dir, dir, dir) == 0 ? 0 : -1;
}

int tcancel_running(struct ih_job *j, int phase, struct ih_cancel *tok)
{
	ih_progress p;
	ih_event ev[16];
	int running = 0;
	for (;;) {
		int done = ih_job_wait(j, 1);
		while (ih_job_events(j, ev, 16))
			;
		if (done)
			break;
		ih_job_progress(j, &p);
		if ((int)p.phase == phase && p.bytes_done > 0) {
			running = !ih_job_done(j);
			if (tok)
				ih_cancel_trigger(tok);
			else
				ih_job_cancel(j);
			break;
		}
	}
	while (!ih_job_wait(j, 100))
		while (ih_job_events(j, ev, 16))
			;
	return running;
}
