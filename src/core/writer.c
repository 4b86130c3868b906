/* writer.c - writing resources at the end of a WIM part. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <wimlib.h>
#include "util.h"
#include "writer.h"

#define COPY_WINDOW (1u << 20)

static void crash_hook_bytes(struct writer *wr, size_t n)
{
	wr->crash_count += (long long)n;
	if (wr->crash_after >= 0 && wr->crash_count >= wr->crash_after)
		abort();
}

static void read_hooks(struct writer *wr)
{
	const char *e = getenv("IMAGEHEALTH_CRASH_AT");
	wr->crash_after = e && !strncmp(e, "bytes:", 6) ? atoll(e + 6) : -1;
	if (e && !strncmp(e, "fail:", 5)) {
		const char *colon = strrchr(e + 5, ':');
		size_t n = colon ? (size_t)(colon - (e + 5)) : strlen(e + 5);
		if (n < sizeof wr->fail_step) {
			memcpy(wr->fail_step, e + 5, n);
			wr->fail_step[n] = '\0';
			wr->fail_part = colon ? atoi(colon + 1) : -1;
		}
	}
}

void writer_crash_point(const char *step)
{
	const char *e = getenv("IMAGEHEALTH_CRASH_AT");
	if (e && !strncmp(e, "step:", 5) && !strcmp(e + 5, step))
		abort();
}

int writer_hook(struct writer *wr, const char *step)
{
	writer_crash_point(step);
	if (wr->fail_step[0] && !strcmp(wr->fail_step, step) &&
	    (wr->fail_part < 0 || wr->fail_part == wr->part)) {
		wr->err = EIO;
		return -1;
	}
	return 0;
}

int writer_init(struct writer *wr, int fd, const char *path, uint64_t start, int ctype,
		uint32_t chunk_size)
{
	memset(wr, 0, sizeof *wr);
	read_hooks(wr);
	wr->fd = fd;
	wr->path = path;
	wr->pos = start;
	wr->ctype = ctype;
	wr->chunk_size = chunk_size;
	if (ctype != CTYPE_NONE) {
		if (wimlib_create_compressor((enum wimlib_compression_type)ctype, chunk_size, 0,
					     &wr->comp))
			return -1;
		wr->ubuf = malloc(chunk_size);
		wr->cbuf = malloc(chunk_size);
		if (!wr->ubuf || !wr->cbuf)
			return -1;
	}
	return 0;
}

void writer_free(struct writer *wr)
{
	if (wr->comp)
		wimlib_free_compressor(wr->comp);
	free(wr->ubuf);
	free(wr->cbuf);
	free(wr->chunk_ends);
	memset(wr, 0, sizeof *wr);
}

static int pwrite_all(struct writer *wr, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len) {
		/* In small steps when the crash hook counts bytes. */
		size_t step = wr->crash_after >= 0 ? (len < 4096 ? len : 4096) : len;
		ssize_t n = pwrite(wr->fd, p, step, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			wr->err = errno;
			return -1;
		}
		crash_hook_bytes(wr, (size_t)n);
		wr->bytes_written += (uint64_t)n;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int writer_put(struct writer *wr, const void *buf, size_t len)
{
	if (pwrite_all(wr, buf, len, wr->pos))
		return -1;
	wr->pos += len;
	return 0;
}

int writer_begin(struct writer *wr, uint64_t usize)
{
	wr->res_start = wr->pos;
	wr->usize = usize;
	wr->ufill = 0;
	wr->chunk_no = 0;
	if (wr->ctype == CTYPE_NONE)
		return 0;
	wr->nchunks = wimfmt_num_chunks(usize, wr->chunk_size);
	free(wr->chunk_ends);
	wr->chunk_ends = malloc((wr->nchunks + 1) * sizeof *wr->chunk_ends);
	if (!wr->chunk_ends) {
		wr->err = ENOMEM;
		return -1;
	}
	/* The chunk table goes first; its room is kept until the end. */
	wr->data_start = wr->res_start + wimfmt_chunk_table_size(usize, wr->chunk_size);
	wr->pos = wr->data_start;
	return 0;
}

static int flush_chunk(struct writer *wr)
{
	size_t clen = wimlib_compress(wr->ubuf, wr->ufill, wr->cbuf, wr->ufill - 1, wr->comp);
	const uint8_t *out = clen ? wr->cbuf : wr->ubuf; /* stored when it does not shrink */
	size_t len = clen ? clen : wr->ufill;
	if (wr->chunk_no >= wr->nchunks) {
		wr->err = EINVAL;
		return -1;
	}
	if (writer_put(wr, out, len))
		return -1;
	wr->chunk_ends[wr->chunk_no++] = wr->pos - wr->data_start;
	wr->ufill = 0;
	return 0;
}

int writer_feed(struct writer *wr, const uint8_t *data, size_t len)
{
	if (wr->ctype == CTYPE_NONE)
		return writer_put(wr, data, len);
	while (len) {
		size_t n = wr->chunk_size - wr->ufill;
		if (n > len)
			n = len;
		memcpy(wr->ubuf + wr->ufill, data, n);
		wr->ufill += n;
		data += n;
		len -= n;
		if (wr->ufill == wr->chunk_size && flush_chunk(wr))
			return -1;
	}
	return 0;
}

int writer_end(struct writer *wr, struct wim_reshdr *out)
{
	memset(out, 0, sizeof *out);
	out->offset = wr->res_start;
	out->orig_size = wr->usize;
	if (wr->ctype != CTYPE_NONE) {
		if (wr->ufill && flush_chunk(wr))
			return -1;
		if (wr->chunk_no != wr->nchunks) {
			wr->err = EINVAL; /* fed fewer bytes than announced */
			return -1;
		}
		unsigned es = wimfmt_chunk_entry_size(wr->usize);
		uint64_t tsize = wimfmt_chunk_table_size(wr->usize, wr->chunk_size);
		uint8_t *table = malloc(tsize ? tsize : 1);
		if (!table) {
			wr->err = ENOMEM;
			return -1;
		}
		for (uint64_t c = 0; c + 1 < wr->nchunks; c++) {
			if (es == 4)
				put_le32(table + 4 * c, (uint32_t)wr->chunk_ends[c]);
			else
				put_le64(table + 8 * c, wr->chunk_ends[c]);
		}
		int rc = pwrite_all(wr, table, tsize, wr->res_start);
		free(table);
		if (rc)
			return -1;
		out->flags = RESHDR_FLAG_COMPRESSED;
	}
	out->stored_size = wr->pos - wr->res_start;
	return 0;
}

void writer_rewind(struct writer *wr)
{
	wr->pos = wr->res_start;
	wr->ufill = 0;
	wr->chunk_no = 0;
}

int writer_copy(struct writer *wr, int fd, uint64_t off, uint64_t len)
{
	uint8_t *buf = malloc(COPY_WINDOW);
	int rc = 0;
	if (!buf) {
		wr->err = ENOMEM;
		return -1;
	}
	wr->res_start = wr->pos;
	while (len && !rc) {
		size_t n = len < COPY_WINDOW ? (size_t)len : COPY_WINDOW;
		ssize_t got = pread(fd, buf, n, (off_t)off);
		if (got <= 0) {
			wr->err = got < 0 ? errno : EIO;
			rc = -1;
			break;
		}
		rc = writer_put(wr, buf, (size_t)got);
		off += (uint64_t)got;
		len -= (uint64_t)got;
	}
	free(buf);
	return rc;
}
