/* source.c - local repair sources: WIM files and image directories. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include "metadata.h"
#include "session.h"
#include "sha1.h"
#include "job.h"
#include "source.h"
#include "util.h"

#define READ_WINDOW (1u << 20)

uint32_t source_split_index(char *path)
{
	char *colon = strrchr(path, ':');
	if (!colon || !colon[1] || colon == path)
		return 0;
	for (const char *p = colon + 1; *p; p++)
		if (!isdigit((unsigned char)*p))
			return 0;
	*colon = '\0';
	return (uint32_t)strtoul(colon + 1, NULL, 10);
}

static void set_error(struct source *src, const char *fmt, const char *a, const char *b)
{
	char buf[600];
	snprintf(buf, sizeof buf, fmt, a, b);
	free(src->rep->error);
	src->rep->error = ih_strdup(buf);
	src->rep->usable = 0;
}

static int mark_allowed(void *ctx, const uint8_t sha1[20], const char *path, int named)
{
	(void)path;
	(void)named;
	return ih_blobindex_put(ctx, sha1, 0, NULL) ? 0 : -1;
}

static void open_wim_source(struct source *src)
{
	ih_error err = {0};
	ih_source_report *rep = src->rep;

	if (wim_open(rep->path, &src->w, &err)) {
		set_error(src, "%s%s", err.message, "");
		return;
	}
	if (src->w->nonrepairable) {
		set_error(src, "%s: %s", rep->path, src->w->problems.n ? src->w->problems.v[0].message : "unreadable");
		return;
	}
	ih_reader_init(&src->rd, src->w);
	if (rep->index) {
		struct image_meta m;
		char why[128];
		if (rep->index > src->w->image_count) {
			char n[32];
			snprintf(n, sizeof n, "%u", rep->index);
			set_error(src, "%s has no image %s", rep->path, n);
			return;
		}
		if (image_meta_read(src->w, &src->rd, rep->index, &m, &err) || !m.ok) {
			set_error(src, "%s: the metadata of the image given is damaged%s", rep->path, "");
			image_meta_free(&m);
			return;
		}
		src->narrowed = 1;
		ih_blobindex_init(&src->allowed, 1024);
		/* the image's own metadata resource counts as its blob */
		ih_blobindex_put(&src->allowed, src->w->blobs[src->w->metadata[rep->index - 1]].sha1, 0, NULL);
		ih_meta_walk(m.buf, m.len, mark_allowed, &src->allowed, NULL, why, sizeof why);
		image_meta_free(&m);
	}
	rep->usable = 1;
}

char *source_spec_path(const char *spec, uint32_t *index, int *wim_prefix)
{
	struct stat st;
	char *path;

	*index = 0;
	*wim_prefix = !strncasecmp(spec, "wim:", 4) || !strncasecmp(spec, "esd:", 4);
	path = ih_strdup(spec + (*wim_prefix ? 4 : 0));
	/* "PATH:INDEX" when PATH itself does not exist with the colon */
	if (path && stat(path, &st) != 0)
		*index = source_split_index(path);
	return path;
}

void source_open(struct source *src, ih_source_report *rep, const char *spec,
		 ih_source_origin origin)
{
	struct stat st;
	int wim_prefix;

	memset(src, 0, sizeof *src);
	src->rep = rep;
	rep->spec = ih_strdup(spec);
	rep->origin = origin;
	rep->path = source_spec_path(spec, &rep->index, &wim_prefix);
	if (!rep->path || !rep->spec) {
		set_error(src, "out of memory%s%s", "", "");
		return;
	}
	if (stat(rep->path, &st) != 0) {
		rep->kind = wim_prefix ? IH_SOURCE_WIM : IH_SOURCE_DIR;
		set_error(src, "%s: %s", rep->path, strerror(errno));
		return;
	}
	if (S_ISDIR(st.st_mode) && !wim_prefix) {
		rep->kind = IH_SOURCE_DIR;
		src->dir = ih_strdup(rep->path);
		rep->usable = src->dir != NULL;
		return;
	}
	rep->kind = IH_SOURCE_WIM;
	open_wim_source(src);
}

void source_close(struct source *src)
{
	if (src->w) {
		ih_reader_free(&src->rd);
		wim_free(src->w);
	}
	if (src->narrowed)
		ih_blobindex_free(&src->allowed);
	free(src->dir);
	memset(src, 0, sizeof *src);
}

/* Feeding a candidate's bytes to the writer while hashing them. */
struct feed {
	struct writer *wr;
	ih_sha1_ctx *md;
	uint64_t got, want;
	int write_failed;
	int hash_only;
	ih_job *job;              /* progress goes to its counters */
};

/* The job's own cancel flag, or its cancel token (any thread may set it). */
static int stop_requested(const atomic_int *cancel, ih_job *job)
{
	return (cancel && atomic_load(cancel)) || (job && ih_job_cancelled(job));
}

static int feed_fn(void *ctx, const uint8_t *data, size_t len)
{
	struct feed *f = ctx;
	if (stop_requested(NULL, f->job))
		return 1;
	if (f->want && f->got + len > f->want)
		return 1; /* longer than the blob: not it */
	ih_sha1_update(f->md, data, len);
	f->got += len;
	if (f->job) {
		atomic_fetch_add_explicit(&f->job->bytes_done, len, memory_order_relaxed);
		ih_job_tick(f->job);
	}
	if (!f->hash_only && writer_feed(f->wr, data, len)) {
		f->write_failed = 1;
		return 1;
	}
	return 0;
}

static const struct wim_blob *find_in_wim(const struct source *src, const uint8_t sha1[20])
{
	const struct wim *w = src->w;
	size_t *v = ih_blobindex_get(&w->index, sha1);
	if (src->narrowed && !ih_blobindex_get(&src->allowed, sha1))
		return NULL;
	if (v)
		return &w->blobs[*v];
	for (uint32_t i = 0; i < w->image_count; i++)
		if (w->metadata[i] != SIZE_MAX && !memcmp(w->blobs[w->metadata[i]].sha1, sha1, 20))
			return &w->blobs[w->metadata[i]];
	return NULL;
}

static int tap_to_writer(void *ctx, const uint8_t *data, size_t len)
{
	struct feed *f = ctx;
	if (writer_put(f->wr, data, len)) {
		f->write_failed = 1;
		return 1;
	}
	return 0;
}

static int supply_from_wim(struct source *src, const uint8_t sha1[20], uint64_t size,
			   struct writer *wr, const atomic_int *cancel,
			   ih_job *job, struct supplied *out)
{
	const struct wim_blob *b = find_in_wim(src, sha1);
	struct feed f = {.wr = wr, .job = job};
	ih_reason reason;
	char detail[160];
	uint8_t hash[20];
	int rc, raw;

	if (!b || (size && b->size != size))
		return 0;
	f.want = b->size;
	f.md = ih_sha1_new();
	if (!f.md)
		return -1;
	/* Same codec and chunk size: the stored bytes are copied as they are,
	 * each window written as it is decoded and hashed, so what is written
	 * is exactly what was verified. */
	raw = b->solid < 0 && !b->bad &&
	      (((b->flags & RESHDR_FLAG_COMPRESSED) && src->w->ctype == wr->ctype &&
		src->w->chunk_size == wr->chunk_size) ||
	       (!(b->flags & RESHDR_FLAG_COMPRESSED) && wr->ctype == CTYPE_NONE));
	f.hash_only = raw;
	ih_sha1_init(f.md);
	if (raw) {
		wr->res_start = wr->pos;
		src->rd.raw_tap = tap_to_writer;
		src->rd.raw_ctx = &f;
	} else if (writer_begin(wr, b->size)) {
		ih_sha1_free(f.md);
		return -1;
	}
	rc = ih_read_any_blob(&src->rd, b, feed_fn, &f, cancel, &reason, detail, sizeof detail);
	src->rd.raw_tap = NULL;
	ih_sha1_final(f.md, hash);
	ih_sha1_free(f.md);
	src->rep->bytes_read += f.got;
	if (f.write_failed || stop_requested(cancel, job)) {
		writer_rewind(wr);
		return -1;
	}
	if (rc != IH_READ_OK || f.got != b->size || memcmp(hash, sha1, 20)) {
		writer_rewind(wr);
		src->rep->blobs_rejected++;
		return 0;
	}
	if (raw) {
		memset(&out->res, 0, sizeof out->res);
		out->res.offset = wr->res_start;
		out->res.stored_size = wr->pos - wr->res_start;
		out->res.orig_size = b->size;
		out->res.flags = b->flags & RESHDR_FLAG_COMPRESSED;
		out->raw_copy = 1;
	} else {
		if (writer_end(wr, &out->res))
			return -1;
		out->raw_copy = 0;
	}
	return 1;
}

/* Case-insensitive lookup of one path component in dir (Windows names are
 * case-insensitive; a Linux copy of an image keeps their case). */
static int find_ci(const char *dir, const char *name, char *out, size_t outlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;
	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (!strcasecmp(e->d_name, name)) {
			found = (size_t)snprintf(out, outlen, "%s/%s", dir, e->d_name) < outlen;
			break;
		}
	closedir(d);
	return found;
}

static int resolve_path(const char *root, const char *rel, char *out, size_t outlen)
{
	struct stat st;
	char cur[4096], comp[1024];
	snprintf(out, outlen, "%s%s", root, rel);
	if (stat(out, &st) == 0)
		return S_ISREG(st.st_mode);
	snprintf(cur, sizeof cur, "%s", root);
	for (const char *p = rel; *p;) {
		while (*p == '/')
			p++;
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (!n)
			break;
		if (n >= sizeof comp)
			return 0;
		memcpy(comp, p, n);
		comp[n] = '\0';
		if (!find_ci(cur, comp, out, outlen))
			return 0;
		snprintf(cur, sizeof cur, "%s", out);
		p += n;
	}
	return stat(out, &st) == 0 && S_ISREG(st.st_mode);
}

static int supply_from_file(struct source *src, const char *file, const uint8_t sha1[20],
			    uint64_t size, struct writer *wr, const atomic_int *cancel,
			    ih_job *job, struct supplied *out)
{
	struct stat st;
	struct feed f = {.wr = wr, .job = job};
	uint8_t hash[20], *buf;
	int fd = open(file, O_RDONLY | O_CLOEXEC), bad = 0;

	if (fd < 0)
		return 0;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return 0;
	}
	if ((size && (uint64_t)st.st_size != size) || st.st_size == 0) {
		src->rep->blobs_rejected++; /* the right name with the wrong size lies too */
		close(fd);
		return 0;
	}
	f.want = (uint64_t)st.st_size;
	buf = malloc(READ_WINDOW);
	f.md = ih_sha1_new();
	if (!buf || !f.md || writer_begin(wr, f.want)) {
		free(buf);
		ih_sha1_free(f.md);
		close(fd);
		return -1;
	}
	ih_sha1_init(f.md);
	while (f.got < f.want && !bad) {
		ssize_t n = read(fd, buf, READ_WINDOW);
		if (n <= 0 || stop_requested(cancel, job))
			bad = 1;
		else if (feed_fn(&f, buf, (size_t)n))
			bad = 1;
	}
	close(fd);
	free(buf);
	ih_sha1_final(f.md, hash);
	ih_sha1_free(f.md);
	src->rep->bytes_read += f.got;
	if (f.write_failed || stop_requested(cancel, job)) {
		writer_rewind(wr);
		return -1;
	}
	if (bad || f.got != f.want || memcmp(hash, sha1, 20)) {
		writer_rewind(wr);
		src->rep->blobs_rejected++;
		return 0;
	}
	if (writer_end(wr, &out->res))
		return -1;
	out->raw_copy = 0;
	return 1;
}

int source_supply(struct source *src, const uint8_t sha1[20], uint64_t size,
		  const ih_ref *refs, size_t n_refs, struct writer *wr,
		  const atomic_int *cancel, ih_job *job,
		  struct supplied *out)
{
	int rc = 0;
	if (!src->rep->usable)
		return 0;
	if (src->w)
		rc = supply_from_wim(src, sha1, size, wr, cancel, job, out);
	for (size_t i = 0; src->dir && i < n_refs && rc == 0; i++) {
		char file[4096];
		if (resolve_path(src->dir, refs[i].path, file, sizeof file))
			rc = supply_from_file(src, file, sha1, size, wr, cancel, job, out);
	}
	if (rc == 1)
		src->rep->blobs_used++;
	return rc;
}
