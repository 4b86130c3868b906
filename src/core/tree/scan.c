/* scan.c - checking an applied tree against its manifest.
 *
 * One walk of the tree (below its root, never following a link) matches
 * every name against the manifest: extra names are listed and never
 * descended into, wrong types are findings, names the manifest has and the
 * walk never met are missing.  The quick check compares sizes and mtimes
 * (a different mtime alone is a suspect, said as such); the full scan
 * hashes every file on all threads, each streaming its file through a
 * fixed buffer, with progress and cancel through the job. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "sha1.h"
#include "tree.h"
#include "util.h"

#define HASH_BUF (256u << 10)
#define EXTRA_MAX 10000

enum { HR_OK = 0, HR_MODIFIED, HR_UNREADABLE, HR_SIZE };

struct finding {
	size_t idx;
	ih_reason reason;
	ih_tree_type found;
	char detail[160];
};

struct scanctx {
	ih_session *s;
	struct tree *t;
	const struct manifest *m;
	ih_job *j;
	struct tree_scan *ts;
	int scan;
	struct finding *f;
	size_t nf, capf;
	char **extra;
	size_t nextra, capextra, extra_omitted;
	/* Files to hash: queued by the walk, taken by the hashing threads
	 * while it goes on.  Blocks never move, so a taken job stays put. */
	struct hjob **blocks;
	size_t nblocks, njobs, next;
	pthread_mutex_t qmu;
	pthread_cond_t qcv;
	int walk_done;
	atomic_int stop;
	atomic_int worker_nomem;
	uint64_t files_checked, links_ok;
	int nomem;
};

struct hjob {
	size_t idx;
	int err;
	uint8_t result;
	uint8_t got[20];
	uint64_t size;
};
#define JOB_BLOCK 4096

static const char *rel_of(const struct scanctx *c, size_t idx)
{
	return c->ts->actual[idx] ? c->ts->actual[idx] : c->m->v[idx].path;
}

static struct finding *add_finding(struct scanctx *c, size_t idx, ih_reason reason,
				   ih_tree_type found)
{
	if (c->nf == c->capf) {
		size_t n = c->capf ? 2 * c->capf : 64;
		struct finding *nv = realloc(c->f, n * sizeof *nv);
		if (!nv) {
			c->nomem = 1;
			return NULL;
		}
		c->f = nv;
		c->capf = n;
	}
	struct finding *f = &c->f[c->nf++];
	f->idx = idx;
	f->reason = reason;
	f->found = found;
	f->detail[0] = '\0';
	return f;
}

static int push_str(char ***v, size_t *n, size_t *cap, char *s)
{
	if (!s)
		return -1;
	if (*n == *cap) {
		size_t nc = *cap ? 2 * *cap : 64;
		char **nv = realloc(*v, nc * sizeof *nv);
		if (!nv) {
			free(s);
			return -1;
		}
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = s;
	return 0;
}

static int push_job(struct scanctx *c, size_t idx)
{
	int rc = 0;
	pthread_mutex_lock(&c->qmu);
	if (c->njobs == c->nblocks * JOB_BLOCK) {
		struct hjob **nb = realloc(c->blocks, (c->nblocks + 1) * sizeof *nb);
		struct hjob *b = calloc(JOB_BLOCK, sizeof *b);
		if (nb)
			c->blocks = nb;
		if (!nb || !b) {
			free(b);
			rc = -1;
			goto out;
		}
		c->blocks[c->nblocks++] = b;
	}
	c->blocks[c->njobs / JOB_BLOCK][c->njobs % JOB_BLOCK].idx = idx;
	c->njobs++;
	atomic_fetch_add(&c->j->bytes_total, c->m->v[idx].size);
	atomic_fetch_add(&c->j->blobs_total, 1);
	pthread_cond_signal(&c->qcv);
out:
	pthread_mutex_unlock(&c->qmu);
	return rc;
}

static struct hjob *job_at(struct scanctx *c, size_t k)
{
	return &c->blocks[k / JOB_BLOCK][k % JOB_BLOCK];
}

/* The next job, waiting for the walk to queue one; NULL when there are no
 * more (or the scan stops). */
static struct hjob *take_job(struct scanctx *c)
{
	struct hjob *h = NULL;
	pthread_mutex_lock(&c->qmu);
	for (;;) {
		if (atomic_load(&c->stop) || ih_job_cancelled(c->j))
			break;
		if (c->next < c->njobs) {
			h = job_at(c, c->next++);
			break;
		}
		if (c->walk_done)
			break;
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 20 * 1000000L; /* notice a cancel */
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&c->qcv, &c->qmu, &until);
	}
	pthread_mutex_unlock(&c->qmu);
	return h;
}

static void walk_finished(struct scanctx *c)
{
	pthread_mutex_lock(&c->qmu);
	c->walk_done = 1;
	pthread_cond_broadcast(&c->qcv);
	pthread_mutex_unlock(&c->qmu);
}

static ih_tree_type type_of(mode_t m)
{
	return S_ISREG(m) ? IH_TREE_FILE : S_ISDIR(m) ? IH_TREE_DIR : S_ISLNK(m) ? IH_TREE_LINK
									: IH_TREE_OTHER;
}

static ih_tree_type type_of_dirent(unsigned char d)
{
	switch (d) {
	case DT_REG: return IH_TREE_FILE;
	case DT_DIR: return IH_TREE_DIR;
	case DT_LNK: return IH_TREE_LINK;
	case DT_UNKNOWN: return IH_TREE_NONE;
	default: return IH_TREE_OTHER;
	}
}

static char *join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	if (a == 1)
		a = 0; /* the root "/" */
	char *p = malloc(a + b + 2);
	if (!p)
		return NULL;
	memcpy(p, dir, a);
	p[a] = '/';
	memcpy(p + a + 1, name, b + 1);
	return p;
}

static int64_t ts_cmp(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec != b->tv_sec ? (int64_t)a->tv_sec - (int64_t)b->tv_sec
				       : (int64_t)a->tv_nsec - (int64_t)b->tv_nsec;
}

/* One entry the walk met in the directory dfd (the manifest's entry didx). */
static void meet(struct scanctx *c, int dfd, int depth, size_t didx, const char *name,
		 unsigned char d_type,
		 size_t **work, size_t *nwork, size_t *capwork)
{
	const struct manifest *m = c->m;
	char *mpath = join(m->v[didx].path, name);
	char *apath = join(rel_of(c, didx), name);
	char *key = mpath ? manifest_key(mpath, m->ci) : NULL;
	struct stat st;
	int have_st = 0;

	if (!mpath || !apath || !key) {
		c->nomem = 1;
		goto out;
	}
	ih_tree_type found = type_of_dirent(d_type);
	if (found == IH_TREE_NONE) {
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW))
			goto out; /* gone meanwhile */
		have_st = 1;
		found = type_of(st.st_mode);
	}
	if (!strncmp(name, TREE_TMP_PREFIX, strlen(TREE_TMP_PREFIX)) &&
	    (found == IH_TREE_FILE || found == IH_TREE_LINK)) {
		/* A temporary file (or link) of a restore that was killed:
		 * the next restore removes it. */
		if (push_str(&c->ts->stale, &c->ts->nstale, &(size_t){c->ts->nstale}, apath) == 0)
			apath = NULL;
		else
			c->nomem = 1;
		goto out;
	}
	size_t idx = manifest_find(m, key);
	/* Not the reference's, or a second name for one already met (names
	 * equal but for case, in a case-insensitive comparison): extra. */
	if (idx == SIZE_MAX || m->v[idx].parent != didx || c->ts->found[idx]) {
		if (c->nextra < EXTRA_MAX) {
			if (push_str(&c->extra, &c->nextra, &c->capextra, apath))
				c->nomem = 1;
			apath = NULL;
		} else {
			c->extra_omitted++;
		}
		goto out;
	}
	const struct tree_entry *e = &m->v[idx];
	c->ts->found[idx] = (uint8_t)found;
	if (strcmp(apath, e->path)) {
		c->ts->actual[idx] = apath;
		apath = NULL;
	}
	if (found != e->type) {
		struct finding *f = add_finding(c, idx, IH_REASON_WRONG_TYPE, found);
		if (!f)
			goto out;
		if (found == IH_TREE_LINK) {
			char target[128];
			int out = tree_link_leaves(dfd, name, depth, target, sizeof target);
			c->ts->link_out[idx] = (uint8_t)out;
			snprintf(f->detail, sizeof f->detail, "a link to %.60s%s where the reference has a %s",
				 target, out ? " (leading out of the tree: never followed)" : "",
				 ih_tree_type_name(e->type));
		} else {
			snprintf(f->detail, sizeof f->detail, "a %s where the reference has a %s",
				 ih_tree_type_name(found), ih_tree_type_name(e->type));
		}
		goto out;
	}
	if (found == IH_TREE_DIR) {
		if (*nwork == *capwork) {
			size_t n = *capwork ? 2 * *capwork : 64;
			size_t *nv = realloc(*work, n * sizeof *nv);
			if (!nv) {
				c->nomem = 1;
				goto out;
			}
			*work = nv;
			*capwork = n;
		}
		(*work)[(*nwork)++] = idx;
		goto out;
	}
	if (found == IH_TREE_LINK) {
		c->links_ok++;
		goto out;
	}
	c->files_checked++;
	if (!c->scan) { /* a full scan learns the size when it opens the file */
		if (!have_st && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW))
			goto out;
		if (e->size != UINT64_MAX && (uint64_t)st.st_size != e->size) {
			struct finding *f = add_finding(c, idx, IH_REASON_MODIFIED, found);
			if (f)
				snprintf(f->detail, sizeof f->detail, "%llu bytes, the reference's %llu",
					 (unsigned long long)st.st_size, (unsigned long long)e->size);
			goto out;
		}
	}
	if (c->scan && ih_is_zero_hash(e->sha1))
		goto out; /* empty in the reference, and empty here: nothing to read */
	if (c->scan) {
		if (push_job(c, idx))
			c->nomem = 1;
		goto out;
	}
	struct timespec want;
	tree_filetime_to_ts(e->mtime, &want);
	if (ts_cmp(&st.st_mtim, &want)) {
		struct finding *f = add_finding(c, idx, IH_REASON_SUSPECT, found);
		if (f)
			snprintf(f->detail, sizeof f->detail,
				 "modified time differs from the reference's (size equal): a suspect, "
				 "not read; a full scan tells");
	}
out:
	free(mpath);
	free(apath);
	free(key);
}

static int depth_of(const char *path)
{
	int d = 0;
	for (const char *p = path; *p; p++)
		d += *p == '/';
	return path[1] ? d : 0;
}

/* A record of getdents64 (linux_dirent64). */
struct dent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* The walk: directories the manifest has and the tree has as directories. */
static int walk_tree(struct scanctx *c, ih_error *err)
{
	size_t *work = NULL, nwork = 0, capwork = 0;
	int rc = IH_OK;
	enum { DENTS = 32768 };
	char *dents = malloc(DENTS); /* malloc's alignment suits the records */

	c->ts->found[0] = IH_TREE_DIR;
	work = malloc(64 * sizeof *work);
	if (!work || !dents) {
		free(work);
		free(dents);
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	capwork = 64;
	work[nwork++] = 0;
	while (nwork && !c->nomem && rc == IH_OK) {
		size_t didx = work[--nwork];
		int dfd = tree_open_dir(c->t->rootfd, rel_of(c, didx));
		int depth = depth_of(c->m->v[didx].path);
		/* getdents64 itself: a DIR stream costs two fcntl calls a directory */
		long got = dfd >= 0 ? 1 : -1;
		while (got > 0 && !c->nomem) {
			got = syscall(SYS_getdents64, dfd, dents, DENTS);
			for (long off = 0; off < got;) {
				const struct dent64 *de = (const struct dent64 *)(dents + off);
				off += de->d_reclen;
				if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
					meet(c, dfd, depth, didx, de->d_name, de->d_type, &work, &nwork,
					     &capwork);
			}
		}
		if (got < 0) {
			struct finding *f = add_finding(c, didx, IH_REASON_MODIFIED, IH_TREE_DIR);
			if (f)
				snprintf(f->detail, sizeof f->detail, "directory cannot be read: %s",
					 strerror(errno));
		}
		if (dfd >= 0)
			close(dfd);
		if (!c->scan)
			atomic_fetch_add(&c->j->blobs_done, 1);
		ih_job_tick(c->j);
		if (ih_job_cancelled(c->j))
			rc = IH_ERR_CANCELLED;
	}
	free(work);
	free(dents);
	if (c->nomem)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	return rc == IH_ERR_CANCELLED ? ih_fail(err, rc, "check cancelled") : rc;
}

/* The size of the open file fd, for a finding's detail. */
static uint64_t size_of(int fd, uint64_t fallback)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? (uint64_t)st.st_size : fallback;
}

/* Hashes one file: open, read, close and nothing else.  The walk saw a
 * regular file there; the reads ask for one byte more than the reference's
 * size, so the short read that ends the file also tells that it is no
 * longer (no fstat, no read of the end of the file), and a file replaced
 * meanwhile by something endless is never read past that. */
static void hash_one(struct scanctx *c, struct hjob *h, ih_sha1_ctx *md, uint8_t *buf)
{
	const struct tree_entry *e = &c->m->v[h->idx];
	int fd = tree_open_read(c->t->rootfd, rel_of(c, h->idx));
	if (fd < 0) {
		h->result = HR_UNREADABLE;
		h->err = errno;
		return;
	}
	uint64_t want = e->size == UINT64_MAX ? UINT64_MAX - 1 : e->size, got = 0;
	if (want > HASH_BUF)
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	ih_sha1_init(md);
	for (;;) {
		uint64_t ask = want - got + 1;
		size_t lim = ask < HASH_BUF ? (size_t)ask : HASH_BUF;
		ssize_t n = read(fd, buf, lim);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			h->result = HR_UNREADABLE;
			h->err = errno;
			break;
		}
		if (got + (uint64_t)n > want) {
			h->result = HR_SIZE; /* longer: no need to read the rest */
			break;
		}
		ih_sha1_update(md, buf, (size_t)n);
		got += (uint64_t)n;
		atomic_fetch_add_explicit(&c->j->bytes_done, (uint64_t)n, memory_order_relaxed);
		if ((size_t)n < lim || ih_job_cancelled(c->j))
			break; /* a short read: the end of a regular file */
	}
	if (h->result == HR_OK && e->size != UINT64_MAX && got != want && !ih_job_cancelled(c->j))
		h->result = HR_SIZE; /* shorter */
	if (h->result == HR_SIZE)
		h->size = size_of(fd, got);
	close(fd);
	if (h->result != HR_OK)
		return;
	ih_sha1_final(md, h->got);
	atomic_fetch_add_explicit(&c->j->blobs_done, 1, memory_order_relaxed);
	if (memcmp(h->got, e->sha1, 20))
		h->result = HR_MODIFIED;
}

/* Hashes jobs until there are no more; the calling thread (tick = 1) also
 * posts progress. */
static void hash_jobs(struct scanctx *c, int tick)
{
	uint8_t *buf = malloc(HASH_BUF);
	ih_sha1_ctx *md = ih_sha1_new();
	struct hjob *h;
	if (buf && md) {
		while ((h = take_job(c))) {
			hash_one(c, h, md, buf);
			if (tick)
				ih_job_tick(c->j);
		}
	} else {
		atomic_store(&c->worker_nomem, 1);
		atomic_store(&c->stop, 1);
	}
	ih_sha1_free(md);
	free(buf);
}

static void *hash_worker(void *arg)
{
	hash_jobs(arg, 0);
	return NULL;
}

/* After the walk: the findings of the hashing. */
static int hash_findings(struct scanctx *c, ih_error *err)
{
	if (atomic_load(&c->worker_nomem))
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	if (ih_job_cancelled(c->j))
		return ih_fail(err, IH_ERR_CANCELLED, "check cancelled");
	for (size_t k = 0; k < c->njobs; k++) {
		const struct hjob *h = job_at(c, k);
		struct finding *f;
		char hex[41];
		if (h->result == HR_OK)
			continue;
		f = add_finding(c, h->idx, IH_REASON_MODIFIED, IH_TREE_FILE);
		if (!f)
			return ih_fail(err, IH_ERR_NOMEM, "out of memory");
		ih_sha1_hex(h->got, hex);
		if (h->result == HR_UNREADABLE)
			snprintf(f->detail, sizeof f->detail, "cannot be read: %s", strerror(h->err));
		else if (h->result == HR_SIZE)
			snprintf(f->detail, sizeof f->detail, "%llu bytes, the reference's %llu",
				 (unsigned long long)h->size, (unsigned long long)c->m->v[h->idx].size);
		else
			snprintf(f->detail, sizeof f->detail, "content differs: SHA-1 %s", hex);
	}
	return IH_OK;
}

static const struct manifest *cmp_m;
static int cmp_finding(const void *a, const void *b)
{
	const struct finding *x = a, *y = b;
	return strcmp(cmp_m->v[x->idx].path, cmp_m->v[y->idx].path);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int make_report(struct scanctx *c, ih_report *r)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	const struct manifest *m = c->m;
	pthread_mutex_lock(&mu);
	cmp_m = m;
	if (c->nf)
		qsort(c->f, c->nf, sizeof *c->f, cmp_finding);
	pthread_mutex_unlock(&mu);
	if (c->nextra)
		qsort(c->extra, c->nextra, sizeof *c->extra, cmp_str);
	r->damage = calloc(c->nf + 1, sizeof *r->damage);
	if (!r->damage)
		return -1;
	for (size_t i = 0; i < c->nf; i++) {
		const struct finding *f = &c->f[i];
		const struct tree_entry *e = &m->v[f->idx];
		ih_damage *dm = &r->damage[r->n_damage++];
		memcpy(dm->sha1, e->sha1, 20);
		dm->size = e->size == UINT64_MAX ? 0 : e->size;
		dm->reason = f->reason;
		dm->want_type = e->type;
		dm->found_type = f->found;
		memcpy(dm->detail, f->detail, sizeof dm->detail);
		dm->images = malloc(sizeof *dm->images);
		dm->refs = calloc(1, sizeof *dm->refs);
		if (!dm->images || !dm->refs || !(dm->refs[0].path = ih_strdup(e->path)))
			return -1;
		dm->images[0] = m->index;
		dm->n_images = 1;
		dm->refs[0].image = m->index;
		dm->n_refs = 1;
	}
	r->extra = c->extra;
	r->n_extra = c->nextra;
	r->n_extra_omitted = c->extra_omitted;
	c->extra = NULL;
	c->nextra = 0;
	return 0;
}

void tree_scan_free(struct tree_scan *ts, size_t n)
{
	if (ts->actual)
		for (size_t i = 0; i < n; i++)
			free(ts->actual[i]);
	for (size_t i = 0; i < ts->nstale; i++)
		free(ts->stale[i]);
	free(ts->stale);
	free(ts->actual);
	free(ts->found);
	free(ts->link_out);
	memset(ts, 0, sizeof *ts);
}

int tree_scan_run(ih_session *s, ih_job *j, int scan, int threads, ih_report **out,
		  struct tree_scan *ts, ih_error *err)
{
	struct tree *t = s->tree;
	struct scanctx c = {.s = s, .t = t, .m = &t->m, .j = j, .ts = ts, .scan = scan};
	ih_report *r = calloc(1, sizeof *r);
	double t0 = ih_now();
	int rc = IH_OK;

	memset(ts, 0, sizeof *ts);
	if (!r)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	r->tree = 1;
	r->image_path = ih_strdup(t->root);
	r->reference = ih_strdup(t->shown ? t->shown : t->m.reference ? t->m.reference : "");
	r->index = t->m.index;
	if (!r->image_path || !r->reference) {
		ih_report_free(r);
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	if (!t->have_manifest) {
		r->problems = calloc(1, sizeof *r->problems);
		if (!r->problems) {
			ih_report_free(r);
			return ih_fail(err, IH_ERR_NOMEM, "out of memory");
		}
		r->n_problems = 1;
		r->problems[0].kind = IH_PROBLEM_METADATA;
		r->problems[0].severity = IH_NONREPAIRABLE;
		snprintf(r->problems[0].message, sizeof r->problems[0].message, "%.250s", t->why);
		r->state = IH_NONREPAIRABLE;
		r->seconds = ih_now() - t0;
		*out = r;
		return IH_OK;
	}
	size_t n = t->m.n;
	ts->found = calloc(n + 1, 1);
	ts->link_out = calloc(n + 1, 1);
	ts->actual = calloc(n + 1, sizeof *ts->actual);
	if (!ts->found || !ts->actual || !ts->link_out) {
		rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* A full scan hashes on the other threads while the walk goes on,
	 * then on this one too. */
	pthread_t tid[64];
	int started = 0;
	pthread_mutex_init(&c.qmu, NULL);
	pthread_cond_init(&c.qcv, NULL);
	ih_job_set_phase(j, scan ? IH_PHASE_SCAN : IH_PHASE_QUICK, 0, 0);
	for (int i = 1; scan && i < threads && i < 64; i++)
		if (pthread_create(&tid[started], NULL, hash_worker, &c) == 0)
			started++;
	rc = walk_tree(&c, err);
	if (rc)
		atomic_store(&c.stop, 1);
	walk_finished(&c);
	if (rc == IH_OK && scan)
		hash_jobs(&c, 1);
	for (int i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	pthread_cond_destroy(&c.qcv);
	pthread_mutex_destroy(&c.qmu);
	if (rc == IH_OK) {
		for (size_t i = 1; i < n; i++) {
			const struct tree_entry *e = &t->m.v[i];
			if (e->dup || ts->found[i])
				continue;
			struct finding *f = add_finding(&c, i, IH_REASON_MISSING, IH_TREE_NONE);
			if (f)
				snprintf(f->detail, sizeof f->detail, "the reference's %s is not in the tree",
					 ih_tree_type_name(e->type));
		}
		if (c.nomem)
			rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	if (rc == IH_OK && scan) {
		rc = hash_findings(&c, err);
		r->scanned = 1;
		r->bytes_checked = atomic_load(&j->bytes_done);
	}
	if (rc == IH_OK) {
		ih_job_set_phase(j, IH_PHASE_REPORT, 0, 0);
		if (make_report(&c, r))
			rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	r->files_checked = c.files_checked;
	r->blobs_checked = c.files_checked;
	r->named_streams_skipped = t->m.named_streams;
	r->links_unverified = c.links_ok;
	r->state = r->n_damage ? IH_REPAIRABLE : IH_HEALTHY;
	r->seconds = ih_now() - t0;
out:
	free(c.f);
	for (size_t i = 0; i < c.nextra; i++)
		free(c.extra[i]);
	free(c.extra);
	for (size_t i = 0; i < c.nblocks; i++)
		free(c.blocks[i]);
	free(c.blocks);
	if (rc) {
		ih_report_free(r);
		tree_scan_free(ts, n);
		return rc;
	}
	*out = r;
	return IH_OK;
}

int tree_check_run(ih_session *s, ih_job *j, const ih_check_options *opt, ih_report **out,
		   ih_error *err)
{
	struct tree_scan ts;
	int threads = opt->threads > 0 ? opt->threads : s->threads;
	int rc = tree_scan_run(s, j, opt->scan, threads, out, &ts, err);
	if (rc == IH_OK)
		tree_scan_free(&ts, s->tree->m.n);
	return rc;
}
