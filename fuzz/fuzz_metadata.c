/* fuzz_metadata.c - the metadata walker on arbitrary bytes: it must not
 * crash, hang or leak, and what it reports must be consistent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "metadata.h"

struct seen {
	uint64_t entries, streams, stop_after;
};

static void check_path(const char *path)
{
	size_t n = strlen(path);
	/* A path starts at the root and stays under the limit (+ ":stream"). */
	if (path[0] != '/' || n > IH_META_MAX_PATH + 1 + IH_UTF8_MAX(65534))
		abort();
}

static int on_entry(void *ctx, const char *path, uint32_t attributes)
{
	(void)attributes;
	((struct seen *)ctx)->entries++;
	check_path(path);
	return 0;
}

static int on_stream(void *ctx, const uint8_t sha1[20], const char *path, int named)
{
	struct seen *s = ctx;
	static const uint8_t zero[20];
	if (!memcmp(sha1, zero, 20) || (named != 0 && named != 1))
		abort();
	if (named && !strchr(path, ':'))
		abort();
	check_path(path);
	return ++s->streams == s->stop_after ? 42 : 0;
}

/* ih_meta_walk3 sees the same entries, each with its own name inside its path. */
static int on_file(void *ctx, const ih_meta_file *f)
{
	size_t n = strlen(f->path);
	check_path(f->path);
	if (f->name_off < 1 || f->name_off > n || f->path[f->name_off - 1] != '/')
		abort();
	if (f->name_has_slash != (strchr(f->path + f->name_off, '/') != NULL))
		abort();
	((struct seen *)ctx)->entries++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seen s = {0, 0, 0};
	ih_meta_stats st;
	char why[96];
	int r = ih_meta_walk2(data, size, on_entry, on_stream, &s, &st, why, sizeof why);
	if (r != 0 && r != -1 && r != -2)
		abort();
	if (r == -1 && why[0] == '\0')
		abort(); /* a refusal always says why */
	if (st.streams != s.streams)
		abort();
	if (r == 0 && s.entries != (s.entries ? 1 + st.files + st.dirs : 0))
		abort(); /* every kept entry but the root is counted once */
	struct seen s3 = {0, 0, 0};
	if (ih_meta_walk3(data, size, on_file, &s3, NULL, NULL, 0) != r)
		abort();
	if (r == 0 && s3.entries != s.entries)
		abort();
	if (r == 0 && s.streams > 1) {
		/* Stopping midway returns the callback's value. */
		struct seen s2 = {0, 0, s.streams / 2};
		if (ih_meta_walk(data, size, on_stream, &s2, NULL, NULL, 0) != 42)
			abort();
	}
	return 0;
}
