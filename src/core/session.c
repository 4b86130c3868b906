/* session.c - opening a session on an image file, its info, closing. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>
#include "session.h"
#include "sha1.h"
#include "tree/tree.h"
#include "util.h"

static int online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

/* $XDG_STATE_HOME/imagehealth, $HOME/.local/state/imagehealth, or that
 * under the passwd entry's home (HOME may be unset for services); absolute
 * paths only.  NULL when there is none (or out of memory). */
static char *default_state_dir(void)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	char buf[4096], pwbuf[4096];
	struct passwd pw, *res = NULL;
	if (xdg && xdg[0] == '/') {
		snprintf(buf, sizeof buf, "%s/imagehealth", xdg);
		return ih_strdup(buf);
	}
	if (!(home && home[0] == '/') && getpwuid_r(geteuid(), &pw, pwbuf, sizeof pwbuf, &res) == 0 &&
	    res && res->pw_dir && res->pw_dir[0] == '/')
		home = res->pw_dir;
	if (!(home && home[0] == '/'))
		return NULL;
	snprintf(buf, sizeof buf, "%s/.local/state/imagehealth", home);
	return ih_strdup(buf);
}

int ih_session_open(const char *path, const ih_open_options *opt, ih_session **out,
		    ih_error *err)
{
	ih_session *s;
	int rc;

	*out = NULL;
	if (!path || !*path)
		return ih_fail(err, IH_ERR_INVALID_ARG, "no image path given");
	s = calloc(1, sizeof *s);
	if (!s)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	s->lock_fd = -1;
	pthread_mutex_init(&s->mu, NULL);
	atomic_store(&s->refs, 1);
	int tree = tree_wanted(path, opt); /* an applied tree: see tree/open.c */
	rc = tree ? IH_OK : wim_open(path, &s->w, err);
	if (rc) {
		ih_session_unref(s);
		return rc;
	}
	/* A restore holds an exclusive lock while it writes; readers share. */
	s->lock_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_SH | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK
			     ? ih_fail(err, IH_ERR_BUSY,
				       "%s is locked: a restore is writing to it; try again when it ends",
				       path)
			     : ih_fail(err, ih_errno_code(errno), "%s: %s", path, strerror(errno));
		ih_session_unref(s);
		return rc;
	}
	if (opt && opt->index && !tree) {
		if (s->w->nonrepairable && s->w->image_count == 0) {
			/* The header is unreadable: the index cannot be checked. */
		} else if (opt->index > s->w->image_count) {
			rc = ih_fail(err, IH_ERR_BAD_INDEX,
				     "%s has %u image%s; there is no image %u", path,
				     s->w->image_count, s->w->image_count == 1 ? "" : "s", opt->index);
			ih_session_unref(s);
			return rc;
		}
		s->index = opt->index;
	}
	s->threads = opt && opt->threads > 0 ? opt->threads : online_cpus();
	if (opt && opt->state_dir) {
		s->state_dir = ih_strdup(opt->state_dir);
	} else if (!(s->state_dir = default_state_dir())) {
		/* Never a shared fallback such as /tmp: there another user could
		 * plant records.  No record is kept, and reports say so. */
		s->state_note = "no state directory (no XDG_STATE_HOME, HOME or home directory "
				"in the passwd entry): no record was read or kept";
	}
	if (!s->state_dir && !s->state_note) {		ih_session_unref(s);
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	if (tree && (rc = tree_open(s, path, opt, err))) {
		ih_session_unref(s);
		return rc;
	}
	s->lock_mode = LOCK_SH;
	*out = s;
	return IH_OK;
}

uint32_t ih_session_first(const ih_session *s)
{
	return s->index ? s->index : 1;
}

uint32_t ih_session_last(const ih_session *s)
{
	return s->index ? s->index : s->w->image_count;
}

void ih_session_ref(ih_session *s)
{
	atomic_fetch_add(&s->refs, 1);
}

int ih_session_begin_job(ih_session *s, int exclusive, ih_error *err)
{
	int busy;
	pthread_mutex_lock(&s->mu);
	busy = s->restoring || (exclusive && s->active_jobs);
	if (!busy) {
		if (exclusive)
			s->restoring = 1;
		else
			s->active_jobs++;
	}
	pthread_mutex_unlock(&s->mu);
	if (busy)
		return ih_fail(err, IH_ERR_BUSY, "%s", s->restoring ? "a restore is running on this session"
								 : "this session is busy with another job");
	return IH_OK;
}

int ih_session_start_job(ih_session *s, int exclusive, ih_job_fn fn, void *arg,
			 void (*free_arg)(void *), ih_cancel *cancel, ih_job **out, ih_error *err)
{
	int rc = ih_session_begin_job(s, exclusive, err);
	if (rc) {
		free_arg(arg);
		return rc;
	}
	rc = ih_job_start(fn, arg, free_arg, cancel, out, err);
	if (rc) {
		ih_session_end_job(s, exclusive);
		free_arg(arg);
	}
	return rc;
}

void ih_session_end_job(ih_session *s, int exclusive)
{
	pthread_mutex_lock(&s->mu);
	if (exclusive)
		s->restoring = 0;
	else
		s->active_jobs--;
	pthread_mutex_unlock(&s->mu);
}

int ih_session_lock_exclusive(ih_session *s, ih_error *err)
{
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) == 0) {
		s->lock_mode = LOCK_EX;
		return IH_OK;
	}
	int e = errno;
	if (e != EWOULDBLOCK)
		return ih_fail(err, IH_ERR_IO, "%s: lock: %s", s->w->path, strerror(e));
	/* Linux dropped the shared lock with the failed upgrade: take it back,
	 * or another process could restore while this session is open.  Non-
	 * blocking: only a restore that slipped in between can hold it now. */
	if (s->lock_mode != LOCK_SH || flock(s->lock_fd, LOCK_SH | LOCK_NB) == 0)
		return ih_fail(err, IH_ERR_BUSY,
			       "%s is in use by another session or restore; close it and retry",
			       s->w->path);
	s->lock_mode = 0;
	return ih_fail(err, IH_ERR_BUSY,
		       "%s is in use by another session or restore, and this session lost its "
		       "shared lock on it meanwhile (another restore took it): reopen the session",
		       s->w->path);
}

void ih_session_lock_shared(ih_session *s)
{
	/* From exclusive, a blocking request: only a lock taken in the instant
	 * between dropping ours and taking it shared can make it wait. */
	if (flock(s->lock_fd, LOCK_SH) == 0)
		s->lock_mode = LOCK_SH;
	else
		s->lock_mode = 0;
}

static void free_info(ih_wim_info *info)
{
	for (size_t i = 0; i < info->n_images; i++) {
		free(info->images[i].name);
		free(info->images[i].description);
	}
	free(info->images);
	free(info->path);
}

void ih_session_unref(ih_session *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	if (s->lock_fd >= 0)
		close(s->lock_fd); /* releases the lock */
	free_info(&s->info);
	tree_free(s->tree);
	wim_free(s->w);
	free(s->state_dir);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

void ih_session_close(ih_session *s)
{
	ih_session_unref(s);
}

atomic_uint ih_test_tree_reads;

int image_meta_read(const struct wim *w, struct ih_reader *r, uint32_t image,
		    struct image_meta *m, ih_error *err)
{
	const struct wim_blob *b;
	uint64_t max;
	uint8_t hash[20];
	int rc;

	atomic_fetch_add_explicit(&ih_test_tree_reads, 1, memory_order_relaxed);
	memset(m, 0, sizeof *m);
	m->image = image;
	b = wim_image_metadata(w, image);
	if (!b) {
		m->reason = IH_REASON_MISSING;
		snprintf(m->detail, sizeof m->detail, "metadata resource of image %u is missing",
			 image);
		return IH_OK;
	}
	/* Metadata legitimately decompresses to many times its stored size;
	 * 512x the file bounds what hostile input can make us allocate. */
	max = w->parts[0].size * 512;
	rc = ih_read_blob_alloc(r, b, max, &m->buf, &m->reason, m->detail, sizeof m->detail);
	if (rc == IH_READ_ERROR)
		return ih_fail(err, errno == ENOMEM ? IH_ERR_NOMEM : IH_ERR_IO,
			       "%s: reading the metadata of image %u: %s", w->path, image,
			       strerror(errno ? errno : EIO));
	if (rc != IH_READ_OK)
		return IH_OK;
	m->len = (size_t)b->size;
	ih_sha1(m->buf, m->len, hash);
	if (memcmp(hash, b->sha1, 20)) {
		m->reason = IH_REASON_HASH_MISMATCH;
		snprintf(m->detail, sizeof m->detail,
			 "metadata resource of image %u does not match its SHA-1", image);
		free(m->buf);
		m->buf = NULL;
		return IH_OK;
	}
	m->ok = 1;
	return IH_OK;
}

void image_meta_free(struct image_meta *m)
{
	free(m->buf);
	m->buf = NULL;
}

/* Per-image figures for info(): distinct streams and their total size. */
struct count_ctx {
	const struct wim *w;
	struct ih_blobindex seen;
	uint64_t total_bytes;
};

static int count_stream(void *ctx, const uint8_t sha1[20], const char *path, int named)
{
	struct count_ctx *c = ctx;
	size_t *v = ih_blobindex_get(&c->w->index, sha1);
	(void)path;
	(void)named;
	if (v)
		c->total_bytes += c->w->blobs[*v].size;
	return ih_blobindex_put(&c->seen, sha1, 0, NULL) ? 0 : -1;
}

/* Builds the info of s (whose image is w) into *info, which is empty.
 * With a job j: progress per image, and a cancel between images.  Reads
 * only: the caller keeps w from being swapped (s->mu, or a job on s). */
static int info_build(ih_session *s, struct wim *w, ih_wim_info *info, ih_job *j, ih_error *err)
{
	int rc = IH_OK;

	info->path = ih_strdup(w->path);
	memcpy(info->guid, w->hdr.guid, 16);
	info->version = w->hdr.version;
	info->flags = w->hdr.flags;
	info->chunk_size = w->chunk_size;
	info->compression = w->ctype;
	info->compression_name = wim_ctype_name(w->ctype);
	info->solid = w->nsolids > 0;
	info->total_parts = w->nparts;
	info->image_count = w->image_count;
	info->boot_index = w->hdr.boot_index;
	info->has_integrity = w->parts[0].integrity != NULL || w->hdr.integrity.offset != 0;
	info->selected_index = s->index;
	for (size_t i = 0; i < w->nblobs; i++)
		info->blob_count += w->blobs[i].image == 0;
	for (unsigned k = 0; k < w->nparts; k++)
		info->file_size += w->parts[k].size;
	if (!info->path)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	if (!w->image_count)
		return IH_OK;
	uint32_t first = ih_session_first(s), last = ih_session_last(s);
	struct ih_reader r;
	info->images = calloc(last - first + 1, sizeof *info->images);
	if (!info->images)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	if (j)
		ih_job_set_phase(j, IH_PHASE_QUICK, 0, last - first + 1);
	ih_reader_init(&r, w);
	for (uint32_t i = first; i <= last && rc == IH_OK; i++) {
		ih_image_info *ii = &info->images[info->n_images++];
		struct image_meta m;
		if (j && ih_job_cancelled(j)) {
			rc = ih_fail(err, IH_ERR_CANCELLED, "cancelled");
			break;
		}
		ii->index = i;
		ii->name = ih_strdup(w->image_names && w->image_names[i - 1] ? w->image_names[i - 1] : "");
		ii->description = ih_strdup(w->image_descs && w->image_descs[i - 1] ? w->image_descs[i - 1] : "");
		if (!ii->name || !ii->description)
			rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
		else
			rc = image_meta_read(w, &r, i, &m, err);
		if (rc != IH_OK)
			break;
		if (m.ok) {
			struct count_ctx c = {.w = w};
			ih_meta_stats st = {0};
			char why[128];
			int wr = ih_blobindex_init(&c.seen, 1024) ? IH_META_NOMEM
				 : ih_meta_walk(m.buf, m.len, count_stream, &c, &st, why, sizeof why);
			if (wr == IH_META_NOMEM)
				rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
			if (wr == IH_META_OK) {
				ii->metadata_ok = 1;
				ii->file_count = st.files;
				ii->dir_count = st.dirs;
				ii->blob_count = c.seen.count;
				ii->total_bytes = c.total_bytes;
			}
			ih_blobindex_free(&c.seen);
		}
		image_meta_free(&m);
		if (j) {
			atomic_fetch_add(&j->blobs_done, 1);
			ih_job_tick(j);
		}
	}
	ih_reader_free(&r);
	return rc;
}

int ih_session_info(ih_session *s, const ih_wim_info **out, ih_error *err)
{
	int rc = IH_OK;

	/* s->w only under the lock: a restore frees and swaps it under mu. */
	pthread_mutex_lock(&s->mu);
	struct wim *w = s->w;
	if (!w) {
		pthread_mutex_unlock(&s->mu);
		return ih_fail(err, IH_ERR_INVALID_ARG, "a tree checked against a seal has no image to describe");
	}
	if (!s->info_ready) {
		free_info(&s->info);
		memset(&s->info, 0, sizeof s->info);
		rc = info_build(s, w, &s->info, NULL, err);
		s->info_ready = rc == IH_OK;
	}
	pthread_mutex_unlock(&s->mu);
	if (rc == IH_OK)
		*out = &s->info;
	return rc;
}

/* ------------------------------------------------------------ info as a job */

/* A deep copy of in (for the caller of an info job, who may outlive the
 * session).  NULL when out of memory. */
static ih_wim_info *info_copy(const ih_wim_info *in)
{
	ih_wim_info *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	*c = *in;
	c->path = ih_strdup(in->path);
	c->n_images = 0;
	c->images = calloc(in->n_images + 1, sizeof *c->images);
	if (!c->path || !c->images)
		goto fail;
	for (; c->n_images < in->n_images; c->n_images++) {
		ih_image_info *d = &c->images[c->n_images];
		*d = in->images[c->n_images];
		d->name = ih_strdup(d->name ? d->name : "");
		d->description = ih_strdup(d->description ? d->description : "");
		if (!d->name || !d->description) {
			c->n_images++;
			goto fail;
		}
	}
	return c;
fail:
	ih_wim_info_free(c);
	return NULL;
}

void ih_wim_info_free(ih_wim_info *info)
{
	if (!info)
		return;
	free_info(info);
	free(info);
}

/* The info job: built without holding s->mu (other callers of the session
 * must not wait on it); being a job on s keeps a restore from swapping
 * s->w meanwhile.  The session's cache is filled as ih_session_info would. */
int session_info_job(ih_job *j, ih_session *s, ih_wim_info **out, ih_error *err)
{
	ih_wim_info built = {0};
	int rc = IH_OK, have;

	pthread_mutex_lock(&s->mu);
	struct wim *w = s->w;
	have = s->info_ready;
	pthread_mutex_unlock(&s->mu);
	if (!w)
		return ih_fail(err, IH_ERR_INVALID_ARG, "a tree checked against a seal has no image to describe");
	if (!have)
		rc = info_build(s, w, &built, j, err);
	pthread_mutex_lock(&s->mu);
	if (rc == IH_OK && !s->info_ready) {
		free_info(&s->info);
		s->info = built;
		memset(&built, 0, sizeof built);
		s->info_ready = 1;
	}
	if (rc == IH_OK && !(*out = info_copy(&s->info)))
		rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
	pthread_mutex_unlock(&s->mu);
	free_info(&built);
	return rc;
}
