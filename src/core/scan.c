/* scan.c - the full scan: every blob read, decompressed and SHA-1 checked,
 * and the integrity table verified, on worker threads.
 *
 * Work is a flat list of tasks taken in order from an atomic counter: whole
 * non-solid blobs (streamed chunk by chunk), single chunks of solid
 * resources (decompressed in parallel, hashed in order under the resource's
 * lock), and integrity-table chunks.  Big blobs go first so no thread is
 * left alone with one at the end; the rest follow in file order.
 *
 * A fingerprint re-scan first hashes the file's raw bytes (fingerprint
 * chunks, or the integrity table's chunks) on all threads, then reads as
 * above only the blobs whose stored bytes are not all proven unchanged;
 * the other blobs get the verdict the record holds for them (the integrity
 * table's: the verdict of the bytes as written).  The record is of the
 * same layout (raw headers and blob tables): the same entries, chunk
 * tables and solid headers, so the same bytes give the same verdict. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <openssl/evp.h>
#include "job.h"
#include "session.h"
#include "sha1.h"
#include "util.h"

#define BIG_BLOB (32u << 20)
#define INTEGRITY_WINDOW (1u << 20)
#define FIRST_ROUND 1.0  /* seconds into the blob pass before damage events are posted */

enum task_kind { T_BLOB, T_SOLID_CHUNK, T_INTEGRITY, T_FP };

struct task {
	uint8_t kind;
	uint32_t idx;      /* blob, solid resource or part index */
	uint64_t n;        /* chunk number */
	uint64_t order;    /* sort key */
};

struct solid_state {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t next_chunk;   /* next chunk to hash */
	size_t cur;            /* index into the resource's blob list */
	int started;           /* the current blob's digest has begun */
	ih_reason failed;      /* the current blob lost data */
	char detail[160];
	ih_sha1_ctx *md;
};

/* Which byte ranges of a part may have changed since the record: units
 * (fingerprint or integrity chunks) from base, covering [lo, hi); pre
 * holds prefix counts of changed units (NULL: nothing is proven). */
struct part_map {
	uint64_t base, lo, hi, n;
	uint32_t unit;
	uint64_t *pre;
};

static int range_changed(const struct part_map *m, uint64_t off, uint64_t end)
{
	if (!m->pre || off >= end || off < m->lo || end > m->hi)
		return 1;
	uint64_t a = (off - m->base) / m->unit, b = (end - 1 - m->base) / m->unit;
	if (b >= m->n)
		return 1;
	return m->pre[b + 1] != m->pre[a];
}

struct scan {
	ih_session *s;
	const struct wim *w;
	ih_job *j;
	struct damage_set *d;
	const uint8_t *want;   /* blobs of the selected image(s), or NULL: all */
	struct task *tasks;
	size_t ntasks;
	atomic_size_t next;
	atomic_int stop;
	struct solid_state *ss;
	pthread_mutex_t mu;    /* guards the fields below */
	pthread_cond_t cv;
	int running;
	int rc;
	ih_error err;
	struct fp_bad_int *bad_int;
	size_t nbad_int, cap_bad_int;
	struct scan_opts *so;
	struct part_map *maps;  /* per part, once the changes are known; NULL: deep */
	int integrity_is_fp;    /* integrity chunks are the fingerprints now */
	atomic_uint_fast64_t deep_bytes, fp_bytes, int_bytes;
	uint64_t unchanged_bytes;  /* blob bytes proven unchanged */
	size_t posted;          /* damage entries [0, posted) need no event (any more) */
	double next_round;      /* when post_damage may walk the trees again */
};

struct worker {
	struct scan *sc;
	struct ih_reader r;
	ih_sha1_ctx *md;
	EVP_MD_CTX *md256;
};

static int add_bad_int(struct scan *sc, uint16_t part, uint32_t entry)
{
	if (sc->nbad_int == sc->cap_bad_int) {
		size_t nc = sc->cap_bad_int ? sc->cap_bad_int * 2 : 16;
		struct fp_bad_int *nb = realloc(sc->bad_int, nc * sizeof *nb);
		if (!nb)
			return -1;
		sc->bad_int = nb;
		sc->cap_bad_int = nc;
	}
	sc->bad_int[sc->nbad_int++] = (struct fp_bad_int){part, entry};
	return 0;
}

__attribute__((format(printf, 3, 0)))
static void scan_error(struct scan *sc, int code, const char *fmt, const char *a, int e)
{
	pthread_mutex_lock(&sc->mu);
	if (!sc->rc)
		sc->rc = ih_fail(&sc->err, (ih_errcode)code, fmt, a, strerror(e));
	pthread_mutex_unlock(&sc->mu);
	atomic_store(&sc->stop, 1);
}

/* Damage goes into the set; its event is posted by post_damage, once its
 * paths are known. */
static void report_damage(struct scan *sc, const struct wim_blob *b, ih_reason reason,
			  const char *detail)
{
	/* a solid resource holds other images' blobs too: not ours to report */
	if (sc->want && !sc->want[b - sc->w->blobs])
		return;
	damage_add(sc->d, sc->w, b->sha1, b, reason, detail);
}

/* Copies entry dm's refs into memory the job keeps, for its event. */
static int keep_refs(ih_job *j, const ih_damage *dm, ih_event *ev)
{
	size_t bytes = dm->n_refs * sizeof(ih_ref);
	ev->n_refs_omitted = dm->n_refs_omitted;
	if (!dm->n_refs)
		return 0; /* no paths: refs stay NULL */
	for (size_t k = 0; k < dm->n_refs; k++)
		bytes += strlen(dm->refs[k].path) + 1;
	ih_ref *v = ih_job_keep(j, bytes);
	if (!v)
		return -1;
	char *p = (char *)(v + dm->n_refs);
	for (size_t k = 0; k < dm->n_refs; k++) {
		size_t len = strlen(dm->refs[k].path) + 1;
		v[k].image = dm->refs[k].image;
		v[k].path = memcpy(p, dm->refs[k].path, len);
		p += len;
	}
	ev->refs = v;
	ev->n_refs = dm->n_refs;
	return 0;
}

/* The events of damage found since the last call, each with its paths:
 * the trees are walked for them now (the walk the report would make at
 * the end), so a round costs a walk of every selected tree; rounds are
 * spaced to keep walking under a ninth of the scan's time, and the final
 * one (at the end of the scan) posts the rest.  IH_OK or an error. */
static int post_damage(struct scan *sc, int final)
{
	struct damage_set *d = sc->d;
	double t0 = ih_now();
	size_t to;
	int rc;
	char hex[41];

	if (!final && t0 < sc->next_round)
		return IH_OK;
	pthread_mutex_lock(&d->mu);
	to = d->n;
	pthread_mutex_unlock(&d->mu);
	if (to == sc->posted)
		return IH_OK;
	rc = damage_walk_refs(d, sc->w, sc->so->metas, sc->so->nmetas, d->walked, to, sc->so->known,
			      &sc->stop);
	if (rc || atomic_load(&sc->stop))
		return rc;
	sc->next_round = ih_now() + 8 * (ih_now() - t0);
	pthread_mutex_lock(&d->mu);
	if (d->walked < to)
		d->walked = to;
	for (; sc->posted < to && !rc; sc->posted++) {
		const ih_damage *dm = &d->v[sc->posted];
		ih_event ev = {.type = IH_EVENT_DAMAGE, .size = dm->size, .reason = (int)dm->reason,
			       .is_metadata = dm->is_metadata};
		memcpy(ev.sha1, dm->sha1, 20);
		ih_sha1_hex(dm->sha1, hex);
		snprintf(ev.text, sizeof ev.text, "%s %s %s", hex, ih_reason_name(dm->reason),
			 dm->detail);
		rc = keep_refs(sc->j, dm, &ev) ? IH_ERR_NOMEM : IH_OK;
		if (!rc)
			ih_job_post_event(sc->j, &ev);
	}
	pthread_mutex_unlock(&d->mu);
	return rc;
}

static int hash_chunk(void *ctx, const uint8_t *data, size_t len)
{
	struct worker *wk = ctx;
	ih_sha1_update(wk->md, data, len);
	atomic_fetch_add_explicit(&wk->sc->j->bytes_done, len, memory_order_relaxed);
	atomic_fetch_add_explicit(&wk->sc->deep_bytes, len, memory_order_relaxed);
	return 0;
}

static void do_blob(struct worker *wk, const struct wim_blob *b)
{
	struct scan *sc = wk->sc;
	ih_reason reason = 0;
	char detail[160] = "";
	uint8_t hash[20];
	int rc;

	ih_sha1_init(wk->md);
	rc = ih_read_blob(&wk->r, b, hash_chunk, wk, &sc->stop, &reason, detail, sizeof detail);
	if (rc == IH_READ_ERROR) {
		scan_error(sc, errno == ENOMEM ? IH_ERR_NOMEM : IH_ERR_IO, "%s: read error: %s",
			   sc->w->parts[b->part - 1].path, errno ? errno : EIO);
		return;
	}
	if (rc == IH_READ_STOPPED)
		return;
	if (rc == IH_READ_DAMAGED) {
		report_damage(sc, b, reason, detail);
	} else {
		ih_sha1_final(wk->md, hash);
		if (memcmp(hash, b->sha1, 20))
			report_damage(sc, b, IH_REASON_HASH_MISMATCH,
				      "data does not match its SHA-1");
	}
	atomic_fetch_add_explicit(&sc->j->blobs_done, 1, memory_order_relaxed);
}

/* Feeds chunk [cstart, cend) of a solid resource (data NULL: lost) into its
 * blobs in offset order.  Caller holds ss->mu and it is this chunk's turn. */
static void solid_feed(struct scan *sc, const struct wim_solid *s, struct solid_state *ss,
		       uint64_t cstart, uint64_t cend, const uint8_t *data, ih_reason why,
		       const char *detail)
{
	while (ss->cur < s->nblobs) {
		const struct wim_blob *b = &sc->w->blobs[s->blobs[ss->cur]];
		uint64_t bend = b->offset + b->size;
		if (b->offset >= cend)
			break;
		if (!ss->started) {
			ih_sha1_init(ss->md);
			ss->started = 1;
			ss->failed = 0;
			if (b->offset < cstart) { /* overlaps a blob already passed */
				ss->failed = IH_REASON_BAD_ENTRY;
				snprintf(ss->detail, sizeof ss->detail,
					 "blob overlaps another in its solid resource");
			}
		}
		if (!data && !ss->failed) {
			ss->failed = why;
			snprintf(ss->detail, sizeof ss->detail, "%s", detail);
		}
		if (data && !ss->failed) {
			uint64_t ps = b->offset > cstart ? b->offset : cstart;
			uint64_t pe = bend < cend ? bend : cend;
			ih_sha1_update(ss->md, data + (ps - cstart), (size_t)(pe - ps));
		}
		if (bend > cend)
			break; /* continues in the next chunk */
		if (ss->failed) {
			report_damage(sc, b, ss->failed, ss->detail);
		} else {
			uint8_t hash[20];
			ih_sha1_final(ss->md, hash);
			if (memcmp(hash, b->sha1, 20))
				report_damage(sc, b, IH_REASON_HASH_MISMATCH,
					      "data does not match its SHA-1");
		}
		atomic_fetch_add_explicit(&sc->j->blobs_done, 1, memory_order_relaxed);
		ss->started = 0;
		ss->cur++;
	}
}

static void do_solid_chunk(struct worker *wk, uint32_t k, uint64_t c)
{
	struct scan *sc = wk->sc;
	const struct wim_solid *s = &sc->w->solids[k];
	struct solid_state *ss = &sc->ss[k];
	const uint8_t *data = NULL;
	size_t len = 0;
	ih_reason reason = 0;
	char detail[160] = "";
	uint64_t cs = s->sh.chunk_size;
	int rc = ih_read_solid_chunk(&wk->r, s, c, &data, &len, &reason, detail, sizeof detail);

	if (rc == IH_READ_ERROR) {
		scan_error(sc, errno == ENOMEM ? IH_ERR_NOMEM : IH_ERR_IO, "%s: read error: %s",
			   sc->w->parts[s->part - 1].path, errno ? errno : EIO);
		data = NULL;
	}
	pthread_mutex_lock(&ss->mu);
	while (ss->next_chunk != c && !atomic_load(&sc->stop))
		pthread_cond_wait(&ss->cv, &ss->mu);
	if (ss->next_chunk == c) {
		uint64_t cend = c + 1 == s->nchunks ? s->sh.usize : (c + 1) * cs;
		solid_feed(sc, s, ss, c * cs, cend, rc == IH_READ_OK ? data : NULL, reason, detail);
		ss->next_chunk++;
		if (c + 1 == s->nchunks) /* blobs past the end lost their tail */
			solid_feed(sc, s, ss, cend, UINT64_MAX, NULL, IH_REASON_BAD_ENTRY,
				   "blob extends past the end of its solid resource");
		atomic_fetch_add_explicit(&sc->j->bytes_done, cend - c * cs, memory_order_relaxed);
		atomic_fetch_add_explicit(&sc->deep_bytes, cend - c * cs, memory_order_relaxed);
	}
	pthread_cond_broadcast(&ss->cv);
	pthread_mutex_unlock(&ss->mu);
}

static void do_integrity(struct worker *wk, uint16_t part, uint32_t entry)
{
	struct scan *sc = wk->sc;
	const struct wim_part *p = &sc->w->parts[part - 1];
	uint32_t cs = get_le32(p->integrity + 8);
	uint64_t start = WIM_HEADER_SIZE + (uint64_t)entry * cs;
	uint64_t end = p->hdr.blob_table.offset + p->hdr.blob_table.stored_size;
	uint8_t hash[20];
	int bad = 0;

	if (start + cs < end)
		end = start + cs;
	if (ih_reader_reserve_in(&wk->r, INTEGRITY_WINDOW))
	{
		scan_error(sc, IH_ERR_NOMEM, "%s: %s", "integrity", ENOMEM);
		return;
	}
	ih_sha1_init(wk->md);
	for (uint64_t off = start; off < end && !bad;) {
		size_t n = end - off < INTEGRITY_WINDOW ? (size_t)(end - off) : INTEGRITY_WINDOW;
		if (atomic_load_explicit(&sc->stop, memory_order_relaxed))
			return;
		if (wim_pread(sc->w, part, wk->r.in, n, off)) {
			if (errno) {
				scan_error(sc, IH_ERR_IO, "%s: read error: %s", p->path, errno);
				return;
			}
			bad = 1;
			break;
		}
		ih_sha1_update(wk->md, wk->r.in, n);
		atomic_fetch_add_explicit(&sc->j->bytes_done, n, memory_order_relaxed);
		if (sc->integrity_is_fp)
			atomic_fetch_add_explicit(&sc->fp_bytes, n, memory_order_relaxed);
		atomic_fetch_add_explicit(&sc->int_bytes, n, memory_order_relaxed);
		off += n;
	}
	if (!bad) {
		ih_sha1_final(wk->md, hash);
		bad = memcmp(hash, p->integrity + INTEGRITY_HEADER_SIZE + 20 * (size_t)entry, 20) != 0;
	}
	if (bad) {
		pthread_mutex_lock(&sc->mu);
		int oom = add_bad_int(sc, part, entry);
		pthread_mutex_unlock(&sc->mu);
		if (oom) /* a lost mismatch would be a false verdict */
			scan_error(sc, IH_ERR_NOMEM, "%s: %s", "integrity", ENOMEM);
	}
}

/* One fingerprint chunk of a part's raw bytes. */
static void do_fp(struct worker *wk, uint16_t part, uint64_t n)
{
	struct scan *sc = wk->sc;
	struct fp_set *f = sc->so->fp_out;
	const struct wim_part *p = &sc->w->parts[part - 1];
	uint64_t start = n * f->chunk, end = start + f->chunk;
	uint8_t *out = f->fp[f->first[part - 1] + n];

	if (end > p->size)
		end = p->size;
	if ((!wk->md256 && !(wk->md256 = fp_md_new())) ||
	    ih_reader_reserve_in(&wk->r, INTEGRITY_WINDOW)) {
		scan_error(sc, IH_ERR_NOMEM, "%s: %s", "fingerprints", ENOMEM);
		return;
	}
	if (fp_hash_range(sc->w, part, start, end, wk->r.in, INTEGRITY_WINDOW, wk->md256, out)) {
		if (errno) {
			scan_error(sc, IH_ERR_IO, "%s: read error: %s", p->path, errno);
			return;
		}
		memset(out, 0, FP_LEN); /* the file shrank: matches no fingerprint */
	}
	atomic_fetch_add_explicit(&sc->j->bytes_done, end - start, memory_order_relaxed);
	atomic_fetch_add_explicit(&sc->fp_bytes, end - start, memory_order_relaxed);
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct scan *sc = wk->sc;

	for (;;) {
		size_t i = atomic_fetch_add(&sc->next, 1);
		if (i >= sc->ntasks || atomic_load_explicit(&sc->stop, memory_order_relaxed))
			break;
		const struct task *t = &sc->tasks[i];
		switch (t->kind) {
		case T_BLOB: do_blob(wk, &sc->w->blobs[t->idx]); break;
		case T_SOLID_CHUNK: do_solid_chunk(wk, t->idx, t->n); break;
		case T_INTEGRITY: do_integrity(wk, (uint16_t)t->idx, (uint32_t)t->n); break;
		case T_FP: do_fp(wk, (uint16_t)t->idx, t->n); break;
		}
	}
	pthread_mutex_lock(&sc->mu);
	sc->running--;
	pthread_cond_broadcast(&sc->cv);
	pthread_mutex_unlock(&sc->mu);
	return NULL;
}

static int cmp_task(const void *a, const void *b)
{
	const struct task *x = a, *y = b;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Should blob i be scanned?  Skips metadata (the quick phase read it),
 * duplicates, entries already known bad, and blobs outside `want`. */
int scan_candidate(const struct wim *w, size_t i)
{
	const struct wim_blob *b = &w->blobs[i];
	if (b->image || b->dup || b->bad || b->size == 0)
		return 0;
	return !(b->solid >= 0 && w->solids[b->solid].bad);
}

static int wanted(const struct wim *w, size_t i, const uint8_t *want)
{
	return scan_candidate(w, i) && (!want || want[i]);
}

/* Are blob i's stored bytes (a solid blob: its whole resource) possibly
 * changed since the record?  Always, in a deep scan. */
static int blob_changed(const struct scan *sc, size_t i)
{
	const struct wim *w = sc->w;
	const struct wim_blob *b = &w->blobs[i];
	if (!sc->maps)
		return 1;
	if (b->solid >= 0) {
		const struct wim_solid *s = &w->solids[b->solid];
		return range_changed(&sc->maps[s->part - 1], s->offset, s->offset + s->stored_size);
	}
	return range_changed(&sc->maps[b->part - 1], b->offset, b->offset + b->stored_size);
}

/* Must integrity chunk e of part p be hashed now?  In a deep scan, all; in
 * a fingerprint re-scan, those whose bytes (or the table) changed. */
static int integrity_changed(const struct scan *sc, unsigned p, uint32_t e)
{
	const struct wim_part *pt = &sc->w->parts[p];
	uint32_t cs = get_le32(pt->integrity + 8);
	uint64_t start = WIM_HEADER_SIZE + (uint64_t)e * cs;
	uint64_t end = pt->hdr.blob_table.offset + pt->hdr.blob_table.stored_size;
	if (!sc->maps || sc->integrity_is_fp)
		return 1;
	if (range_changed(&sc->maps[p], pt->hdr.integrity.offset,
			  pt->hdr.integrity.offset + pt->hdr.integrity.stored_size))
		return 1;
	if (start + cs < end)
		end = start + cs;
	return range_changed(&sc->maps[p], start, end);
}

/* Which tasks build_tasks makes. */
enum { B_BLOBS = 1, B_INTEGRITY = 2, B_FP = 4 };

static int build_tasks(struct scan *sc, const uint8_t *want, int what, uint64_t *bytes,
		       uint64_t *blobs)
{
	const struct wim *w = sc->w;
	size_t cap = w->nblobs + 16;
	uint64_t pos_base = 1ULL << 62;
	const struct fp_set *f = sc->so->fp_out;

	for (size_t k = 0; k < w->nsolids; k++)
		cap += w->solids[k].bad ? 0 : w->solids[k].nchunks;
	for (unsigned p = 0; p < w->nparts; p++)
		if (w->parts[p].integrity_ok)
			cap += get_le32(w->parts[p].integrity + 4);
	if ((what & B_FP) && f)
		cap += f->first[f->nparts];
	free(sc->tasks);
	sc->ntasks = 0;
	atomic_store(&sc->next, 0);
	sc->tasks = malloc(cap * sizeof *sc->tasks);
	if (!sc->tasks)
		return -1;
	*bytes = *blobs = 0;
	for (size_t i = 0; i < w->nblobs && (what & B_BLOBS); i++) {
		const struct wim_blob *b = &w->blobs[i];
		if (!wanted(w, i, want) || b->solid >= 0 || !blob_changed(sc, i))
			continue;
		struct task *t = &sc->tasks[sc->ntasks++];
		t->kind = T_BLOB;
		t->idx = (uint32_t)i;
		/* big blobs first, largest first; then file order */
		t->order = b->size >= BIG_BLOB ? (UINT64_C(1) << 61) - b->size / 4096
					       : pos_base + ((uint64_t)b->part << 48) + b->offset;
		*bytes += b->size;
		(*blobs)++;
	}
	for (size_t k = 0; k < w->nsolids && (what & B_BLOBS); k++) {
		const struct wim_solid *s = &w->solids[k];
		size_t n = 0;
		if (s->bad || (sc->maps && !range_changed(&sc->maps[s->part - 1], s->offset,
							   s->offset + s->stored_size)))
			continue;
		for (size_t i = 0; i < s->nblobs; i++)
			n += wanted(w, s->blobs[i], want);
		if (n == 0)
			continue;
		*blobs += s->nblobs;
		for (uint64_t c = 0; c < s->nchunks; c++) {
			struct task *t = &sc->tasks[sc->ntasks++];
			t->kind = T_SOLID_CHUNK;
			t->idx = (uint32_t)k;
			t->n = c;
			t->order = pos_base + ((uint64_t)s->part << 48) + s->offset + c;
		}
		*bytes += s->sh.usize;
	}
	for (unsigned p = 0; p < w->nparts && (what & B_INTEGRITY); p++) {
		const struct wim_part *pt = &w->parts[p];
		if (!pt->integrity_ok)
			continue;
		uint32_t n = get_le32(pt->integrity + 4), cs = get_le32(pt->integrity + 8);
		uint64_t end = pt->hdr.blob_table.offset + pt->hdr.blob_table.stored_size;
		for (uint32_t e = 0; e < n; e++) {
			if (!integrity_changed(sc, p, e))
				continue;
			struct task *t = &sc->tasks[sc->ntasks++];
			uint64_t start = WIM_HEADER_SIZE + (uint64_t)e * cs;
			t->kind = T_INTEGRITY;
			t->idx = p + 1;
			t->n = e;
			t->order = UINT64_MAX - 1 - ((uint64_t)(w->nparts - p) << 32) + e;
			*bytes += start < end ? (end - start < cs ? end - start : cs) : 0;
		}
	}
	for (unsigned p = 0; f && p < f->nparts && (what & B_FP); p++) {
		uint64_t n = f->first[p + 1] - f->first[p];
		for (uint64_t c = 0; c < n; c++) {
			struct task *t = &sc->tasks[sc->ntasks++];
			t->kind = T_FP;
			t->idx = p + 1;
			t->n = c;
			/* after the blobs (the cache holds what they read), before
			 * the integrity chunks */
			t->order = (UINT64_C(3) << 62) + ((uint64_t)p << 48) + c;
		}
		*bytes += w->parts[p].size;
	}
	if (sc->ntasks > 1)
		qsort(sc->tasks, sc->ntasks, sizeof *sc->tasks, cmp_task);
	return 0;
}

/* Damaged byte ranges, sorted by (part, offset), with the running maximum
 * of their ends: "does any damage touch [start, end)?" in log time, so a
 * table of a million failing integrity chunks against a million damaged
 * blobs is no quadratic walk. */
struct drange {
	uint64_t part, off, end, maxend;
};

static int cmp_drange(const void *a, const void *b)
{
	const struct drange *x = a, *y = b;
	if (x->part != y->part)
		return x->part < y->part ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

static int damage_touches(const struct drange *v, size_t n, uint64_t part, uint64_t start,
			  uint64_t end)
{
	size_t lo = 0, hi = n; /* first range not before (part, end) */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v[mid].part < part || (v[mid].part == part && v[mid].off < end))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && v[lo - 1].part == part && v[lo - 1].maxend > start;
}

/* An integrity chunk that fails is explained by a damaged blob inside it;
 * otherwise the damage is in the blob table (nothing can say what is
 * right) or in bytes no blob uses (the table just needs rewriting). */
static int judge_integrity(struct scan *sc, const struct wim *w, struct problem_list *pl)
{
	struct drange *v = NULL;
	size_t n = 0;
	if (sc->nbad_int) {
		v = malloc((sc->d->n + 1) * sizeof *v);
		if (!v)
			return -1;
	}
	for (size_t k = 0; sc->nbad_int && k < sc->d->n; k++) {
		const ih_damage *dm = &sc->d->v[k];
		if (dm->part)
			v[n++] = (struct drange){dm->part, dm->offset, dm->offset + dm->stored_size, 0};
	}
	if (n > 1)
		qsort(v, n, sizeof *v, cmp_drange);
	for (size_t k = 0; k < n; k++)
		v[k].maxend = k > 0 && v[k - 1].part == v[k].part && v[k - 1].maxend > v[k].end
				      ? v[k - 1].maxend : v[k].end;
	for (size_t i = 0; i < sc->nbad_int; i++) {
		const struct fp_bad_int *bi = &sc->bad_int[i];
		const struct wim_part *p = &w->parts[bi->part - 1];
		uint32_t cs = get_le32(p->integrity + 8);
		uint64_t start = WIM_HEADER_SIZE + (uint64_t)bi->entry * cs, end = start + cs;
		if (damage_touches(v, n, bi->part, start, end))
			continue;
		if (p->hdr.blob_table.offset < end &&
		    p->hdr.blob_table.offset + p->hdr.blob_table.stored_size > start)
			problem_add(pl, IH_PROBLEM_BLOB_TABLE, IH_NONREPAIRABLE,
				    "%s: the blob table is damaged (integrity chunk %u, bytes %llu-%llu, does not match)",
				    p->path, bi->entry, (unsigned long long)start,
				    (unsigned long long)end - 1);
		else
			problem_add(pl, IH_PROBLEM_INTEGRITY, IH_REPAIRABLE,
				    "%s: integrity chunk %u (bytes %llu-%llu) does not match, but every blob in it verifies",
				    p->path, bi->entry, (unsigned long long)start,
				    (unsigned long long)end - 1);
	}
	free(v);
	return 0;
}

/* Runs sc->tasks on the workers (started here, joined before returning);
 * this thread watches: progress every 100 ms, cancellation within 50. */
static int run_pool(struct scan *sc, struct worker *wks, int threads, ih_error *err)
{
	const struct wim *w = sc->w;
	pthread_t tids[64];
	int started = 0;

	if (sc->ntasks == 0)
		return IH_OK;
	if (threads > (int)sc->ntasks)
		threads = (int)sc->ntasks;
	if (threads > 64)
		threads = 64;
	for (int t = 0; t < threads; t++) {
		pthread_mutex_lock(&sc->mu);
		sc->running++;
		pthread_mutex_unlock(&sc->mu);
		if (pthread_create(&tids[t], NULL, worker_main, &wks[t])) {
			pthread_mutex_lock(&sc->mu);
			sc->running--;
			pthread_mutex_unlock(&sc->mu);
			break;
		}
		started++;
	}
	if (!started)
		return ih_fail(err, IH_ERR_NOMEM, "cannot start scanner threads");
	pthread_mutex_lock(&sc->mu);
	while (sc->running > 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&sc->cv, &sc->mu, &ts);
		pthread_mutex_unlock(&sc->mu);
		if (ih_job_cancelled(sc->j)) {
			atomic_store(&sc->stop, 1);
			for (size_t k = 0; k < w->nsolids; k++) {
				pthread_mutex_lock(&sc->ss[k].mu);
				pthread_cond_broadcast(&sc->ss[k].cv);
				pthread_mutex_unlock(&sc->ss[k].mu);
			}
		}
		ih_job_tick(sc->j);
		if (post_damage(sc, 0) == IH_ERR_NOMEM)
			scan_error(sc, IH_ERR_NOMEM, "%s: %s", "damage paths", ENOMEM);
		pthread_mutex_lock(&sc->mu);
	}
	pthread_mutex_unlock(&sc->mu);
	for (int t = 0; t < started; t++)
		pthread_join(tids[t], NULL);
	if (sc->rc) {
		if (err)
			*err = sc->err;
		return sc->rc;
	}
	return IH_OK;
}

/* Prefix counts of changed units into m. */
static int map_from(struct part_map *m, uint64_t base, uint64_t lo, uint64_t hi, uint32_t unit,
		    uint64_t n, int (*is_changed)(void *, uint64_t), void *ctx)
{
	*m = (struct part_map){.base = base, .lo = lo, .hi = hi, .unit = unit, .n = n};
	if (unit == 0 || !(m->pre = malloc((n + 1) * sizeof *m->pre)))
		return unit == 0 ? 0 : -1;
	m->pre[0] = 0;
	for (uint64_t u = 0; u < n; u++)
		m->pre[u + 1] = m->pre[u] + (is_changed(ctx, u) != 0);
	return 0;
}

struct fp_cmp {
	const struct fp_set *now, *then;
	uint64_t first;
};

static int fp_differs(void *ctx, uint64_t u)
{
	const struct fp_cmp *c = ctx;
	return memcmp(c->now->fp[c->first + u], c->then->fp[c->first + u], FP_LEN) != 0;
}

static int byte_set(void *ctx, uint64_t u)
{
	return ((const uint8_t *)ctx)[u];
}

/* After the first pass of a re-scan: which ranges changed, part by part. */
static int build_maps(struct scan *sc)
{
	const struct wim *w = sc->w;
	sc->maps = calloc(w->nparts, sizeof *sc->maps);
	if (!sc->maps)
		return -1;
	for (unsigned p = 0; p < w->nparts; p++) {
		const struct wim_part *pt = &w->parts[p];
		if (sc->so->mode == IH_SCAN_FINGERPRINT) {
			const struct fp_set *f = sc->so->fp_out;
			struct fp_cmp c = {f, &sc->so->rec->fps, f->first[p]};
			if (map_from(&sc->maps[p], 0, 0, pt->size, f->chunk, f->first[p + 1] - f->first[p],
				     fp_differs, &c))
				return -1;
		} else if (pt->integrity_ok) {
			uint32_t n = get_le32(pt->integrity + 4), cs = get_le32(pt->integrity + 8);
			uint8_t *bad = calloc((size_t)n + 1, 1);
			if (!bad)
				return -1;
			for (size_t i = 0; i < sc->nbad_int; i++)
				if (sc->bad_int[i].part == p + 1 && sc->bad_int[i].entry < n)
					bad[sc->bad_int[i].entry] = 1;
			int rc = map_from(&sc->maps[p], WIM_HEADER_SIZE, WIM_HEADER_SIZE,
					  pt->hdr.blob_table.offset + pt->hdr.blob_table.stored_size,
					  cs, n, byte_set, bad);
			free(bad);
			if (rc)
				return -1;
			/* A changed blob table: any entry may now name other bytes or
			 * another SHA-1 than the writer's, so nothing in this part is
			 * proven by the integrity table. */
			if (range_changed(&sc->maps[p], pt->hdr.blob_table.offset,
					  pt->hdr.blob_table.offset + pt->hdr.blob_table.stored_size)) {
				free(sc->maps[p].pre);
				sc->maps[p].pre = NULL;
			}
		} /* else: no map, nothing in this part is proven */
	}
	return 0;
}

/* A fingerprint re-scan: what the record says of the blobs and integrity
 * chunks this scan does not read again. */
static int recall_unchanged(struct scan *sc, const uint8_t *want, uint64_t *unchanged)
{
	const struct wim *w = sc->w;
	const struct fp_record *rec = sc->so->rec;
	*unchanged = 0;
	/* checked, by their raw bytes: counted as a deep scan counts them */
	for (size_t i = 0; i < w->nblobs; i++)
		if (wanted(w, i, want) && !blob_changed(sc, i)) {
			(*unchanged)++;
			sc->unchanged_bytes += w->blobs[i].size;
		}
	if (sc->so->mode != IH_SCAN_FINGERPRINT)
		return 0; /* integrity table: bytes as written, nothing damaged */
	for (size_t k = 0; k < rec->ndmg; k++) {
		const size_t *v = ih_blobindex_get(&w->index, rec->dmg[k].sha1);
		if (!v || !wanted(w, *v, want) || blob_changed(sc, *v))
			continue;
		report_damage(sc, &w->blobs[*v], rec->dmg[k].reason, rec->dmg[k].detail);
	}
	for (size_t k = 0; k < rec->nbad; k++) {
		unsigned p = rec->bad[k].part - 1u;
		if (p >= w->nparts || !w->parts[p].integrity_ok ||
		    rec->bad[k].entry >= get_le32(w->parts[p].integrity + 4) ||
		    integrity_changed(sc, p, rec->bad[k].entry))
			continue;
		if (add_bad_int(sc, rec->bad[k].part, rec->bad[k].entry))
			return -1;
	}
	return sc->d->oom ? -1 : 0;
}

int scan_blobs(ih_session *s, ih_job *j, int threads, const uint8_t *want,
	       struct scan_opts *so, struct damage_set *d, struct problem_list *pl, ih_error *err)
{
	struct scan sc = {.s = s, .w = s->w, .j = j, .d = d, .want = want, .so = so};
	struct worker *wks = NULL;
	uint64_t bytes, blobs, unchanged = 0;
	int rc = IH_OK;

	pthread_mutex_init(&sc.mu, NULL);
	pthread_cond_init(&sc.cv, NULL);
	sc.posted = d->n; /* found before the scan: no events, as ever */
	if (so->mode == IH_SCAN_FINGERPRINT && (!so->rec || !so->fp_out))
		so->mode = IH_SCAN_DEEP;
	sc.ss = calloc(s->w->nsolids + 1, sizeof *sc.ss);
	if (threads < 1)
		threads = 1;
	if (threads > 64)
		threads = 64;
	wks = calloc((size_t)threads, sizeof *wks);
	if (!sc.ss || !wks) {
		rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t k = 0; k < s->w->nsolids; k++) {
		pthread_mutex_init(&sc.ss[k].mu, NULL);
		pthread_cond_init(&sc.ss[k].cv, NULL);
	}
	for (int t = 0; t < threads; t++) {
		ih_reader_init(&wks[t].r, s->w);
		wks[t].sc = &sc;
		if (!(wks[t].md = ih_sha1_new())) {
			rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
			goto out;
		}
	}

	/* A re-scan: first the raw bytes against the fingerprints. */
	if (so->mode != IH_SCAN_DEEP) {
		int what = so->mode == IH_SCAN_FINGERPRINT ? B_FP : B_INTEGRITY | B_FP;
		sc.integrity_is_fp = so->mode == IH_SCAN_INTEGRITY;
		if (build_tasks(&sc, want, what, &bytes, &blobs)) {
			rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
			goto out;
		}
		ih_job_set_phase(j, IH_PHASE_SCAN, bytes, 0);
		rc = run_pool(&sc, wks, threads, err);
		if (rc || ih_job_cancelled(j))
			goto out;
		if (build_maps(&sc) || recall_unchanged(&sc, want, &unchanged)) {
			rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
			goto out;
		}
		sc.integrity_is_fp = 0;
	}

	/* Then every blob not proven unchanged, decompressed and hashed. */
	int what = so->mode == IH_SCAN_DEEP ? B_BLOBS | B_INTEGRITY | B_FP
		   : so->mode == IH_SCAN_FINGERPRINT ? B_BLOBS | B_INTEGRITY : B_BLOBS;
	if (build_tasks(&sc, want, what, &bytes, &blobs)) {
		rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* A digest only for resources the scan reads (not for bad ones). */
	for (size_t i = 0; i < sc.ntasks; i++) {
		struct solid_state *ss = &sc.ss[sc.tasks[i].idx];
		if (sc.tasks[i].kind == T_SOLID_CHUNK && !ss->md && !(ss->md = ih_sha1_new())) {
			rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	/* The first walk for paths waits a second into the blob pass: a short
	 * one (a re-scan of a few changed blobs) walks once, at its end, as
	 * its report would anyway. */
	sc.next_round = ih_now() + FIRST_ROUND;
	ih_job_set_phase(j, IH_PHASE_SCAN, bytes + sc.unchanged_bytes, blobs + unchanged);
	atomic_fetch_add(&j->blobs_done, unchanged);
	atomic_fetch_add(&j->bytes_done, sc.unchanged_bytes);
	rc = run_pool(&sc, wks, threads, err);
	if (rc == IH_OK && !ih_job_cancelled(j) && judge_integrity(&sc, s->w, pl))
		rc = ih_fail(err, IH_ERR_NOMEM, "out of memory");
	if (rc == IH_OK && !ih_job_cancelled(j) && (rc = post_damage(&sc, 1)) != IH_OK)
		rc = ih_fail(err, rc, rc == IH_ERR_NOMEM ? "out of memory" : "%s: cannot read the metadata again for the damaged files' paths",
			     s->w->path);
out:
	so->bytes_deep = atomic_load(&sc.deep_bytes);
	so->bytes_checked = so->bytes_deep + sc.unchanged_bytes + atomic_load(&sc.int_bytes);
	so->bytes_fp = atomic_load(&sc.fp_bytes);
	if (rc == IH_OK) {
		so->bad_int = sc.bad_int;
		so->nbad_int = sc.nbad_int;
		sc.bad_int = NULL;
	}
	if (wks)
		for (int t = 0; t < threads; t++) {
			ih_reader_free(&wks[t].r);
			ih_sha1_free(wks[t].md);
			fp_md_free(wks[t].md256);
		}
	if (sc.ss)
		for (size_t k = 0; k < s->w->nsolids; k++) {
			pthread_mutex_destroy(&sc.ss[k].mu);
			pthread_cond_destroy(&sc.ss[k].cv);
			ih_sha1_free(sc.ss[k].md);
		}
	if (sc.maps)
		for (unsigned p = 0; p < s->w->nparts; p++)
			free(sc.maps[p].pre);
	free(sc.maps);
	free(sc.ss);
	free(wks);
	free(sc.tasks);
	free(sc.bad_int);
	pthread_mutex_destroy(&sc.mu);
	pthread_cond_destroy(&sc.cv);
	return rc;
}
