/* dir_source.c - a directory holding an extracted or mounted image as a
 * repair source: a damaged blob is looked for at the paths the image uses
 * it under.  Paths are resolved one component at a time below the root,
 * never following a symbolic link and never leaving the root; names are
 * matched case-insensitively when the exact name is absent (Windows names
 * are case-insensitive; a Linux copy keeps their case).  Only regular files
 * are read, opened non-blocking so a FIFO cannot hang the restore. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "beneath.h"
#include "source.h"
#include "util.h"

#define READ_WINDOW (1u << 20)

struct dir_source {
	int root;                /* O_PATH descriptor of the root */
	uint8_t *buf;
};

/* The regular file at rel ("/dir/file") below the root, or -1. */
static int open_beneath(const struct dir_source *ds, const char *rel)
{
	struct stat st;
	int fd = ih_open_beneath(ds->root, rel, O_RDONLY | O_NONBLOCK, 1);
	if (fd >= 0 && (fstat(fd, &st) || !S_ISREG(st.st_mode))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static int dir_find(struct source *src, const struct want *want, const struct writer *wr,
		    size_t nth, struct candidate *c)
{
	struct dir_source *ds = src->impl;
	(void)wr;
	/* the nth path that names a non-empty regular file */
	for (size_t i = 0; i < want->n_refs; i++) {
		struct stat st;
		int fd = open_beneath(ds, want->refs[i].path);
		if (fd < 0)
			continue;
		int ok = fstat(fd, &st) == 0 && st.st_size > 0;
		close(fd);
		if (!ok || nth-- > 0)
			continue;
		c->path = ih_strdup(want->refs[i].path);
		c->size = (uint64_t)st.st_size;
		return c->path != NULL;
	}
	return 0;
}

static int dir_read(struct source *src, const struct candidate *c, struct sink *sk)
{
	struct dir_source *ds = src->impl;
	int fd = open_beneath(ds, c->path);
	int ok = fd >= 0;

	if (fd >= 0) {
		int fl = fcntl(fd, F_GETFL);
		if (fl >= 0)
			fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	}
	while (ok && sk->got < c->size) {
		uint64_t left = c->size - sk->got;
		ssize_t n = read(fd, ds->buf, left < READ_WINDOW ? (size_t)left : READ_WINDOW);
		if (n < 0 && errno == EINTR)
			continue;
		ok = n > 0 && sink_feed(sk, ds->buf, (size_t)n) == 0;
	}
	if (fd >= 0)
		close(fd);
	return ok;
}

static void dir_close(struct source *src)
{
	struct dir_source *ds = src->impl;
	if (!ds)
		return;
	if (ds->root >= 0)
		close(ds->root);
	free(ds->buf);
	free(ds);
	src->impl = NULL;
}

static const struct source_ops dir_ops = {
	.find = dir_find,
	.read = dir_read,
	.close = dir_close,
};

void dir_source_open(struct source *src)
{
	struct dir_source *ds = calloc(1, sizeof *ds);

	if (!ds) {
		source_fail(src, IH_ERR_NOMEM, "out of memory");
		return;
	}
	src->impl = ds;
	src->ops = &dir_ops;
	ds->root = open(src->rep->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	ds->buf = malloc(READ_WINDOW);
	if (ds->root < 0) {
		source_fail(src, ih_errno_code(errno), "%s: %s", src->rep->path, strerror(errno));
		return;
	}
	if (!ds->buf)
		source_fail(src, IH_ERR_NOMEM, "out of memory");
}
