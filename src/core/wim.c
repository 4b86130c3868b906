/* wim.c - opening a WIM or split set: header, blob table, solid resources,
 * XML and integrity table.  Damage found here does not fail the open; it is
 * recorded as problems or per-blob flags for the health check to report.
 * Only "this is no WIM at all" and I/O errors fail. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "wim.h"
#include "util.h"
#include "xmlinfo.h"

#define XML_MAX (64u << 20)
#define INTEGRITY_MAX (64u << 20)

const char *wim_ctype_name(int ctype)
{
	switch (ctype) {
	case CTYPE_NONE: return "none";
	case CTYPE_XPRESS: return "XPRESS";
	case CTYPE_LZX: return "LZX";
	case CTYPE_LZMS: return "LZMS";
	}
	return "unknown";
}

void problem_add(struct problem_list *l, ih_problem_kind kind, ih_health sev, const char *fmt, ...)
{
	ih_problem *p;
	va_list ap;
	if (sev == IH_NONREPAIRABLE)
		l->nonrepairable = 1;
	if (l->n > PROBLEMS_MAX) {
		/* Past the cap only the count grows: the last entry says how many
		 * more there were, with the worst severity among them. */
		p = &l->v[l->n - 1];
		l->omitted++;
		if (sev > p->severity)
			p->severity = sev;
		snprintf(p->message, sizeof p->message, "... and %zu more problems", l->omitted);
		return;
	}
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 8;
		p = realloc(l->v, ncap * sizeof *p);
		if (!p) {
			l->oom = 1;
			return;
		}
		l->v = p;
		l->cap = ncap;
	}
	p = l->v;
	p += l->n++;
	p->kind = kind;
	p->severity = sev;
	if (l->n > PROBLEMS_MAX) {
		l->omitted = 1;
		p->kind = IH_PROBLEM_OTHER;
		snprintf(p->message, sizeof p->message, "... and 1 more problem");
		return;
	}
	va_start(ap, fmt);
	vsnprintf(p->message, sizeof p->message, fmt, ap);
	va_end(ap);
}

/* Problems found while opening make the whole image nonrepairable. */
#define wim_problem(w, kind, sev, ...)                              \
	do {                                                        \
		problem_add(&(w)->problems, kind, sev, __VA_ARGS__); \
		(w)->nonrepairable |= (sev) == IH_NONREPAIRABLE;    \
	} while (0)

int wim_pread(const struct wim *w, uint16_t part, void *buf, size_t len, uint64_t off)
{
	const struct wim_part *p = &w->parts[part - 1];
	uint8_t *b = buf;
	while (len) {
		ssize_t n = pread(p->fd, b, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = 0; /* short: past the end of the file */
			return -1;
		}
		b += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Does [off, off+len) lie in the part, after its header? */
static int in_part(const struct wim_part *p, uint64_t off, uint64_t len)
{
	return off >= WIM_HEADER_SIZE && off <= p->size && len <= p->size - off;
}

static const char *file_type_name(mode_t m)
{
	if (S_ISDIR(m)) return "a directory";
	if (S_ISFIFO(m)) return "a FIFO";
	if (S_ISCHR(m)) return "a character device";
	if (S_ISBLK(m)) return "a block device";
	if (S_ISSOCK(m)) return "a socket";
	return "not a file";
}

static int open_part(const char *path, struct wim_part *p, ih_error *err)
{
	struct stat st;
	uint8_t buf[WIM_HEADER_SIZE];
	char why[128];
	ssize_t n;

	/* Non-blocking, so that a FIFO or a device cannot hang the open; the
	 * type is checked on the descriptor itself (no race with a rename). */
	p->fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (p->fd < 0)
		return ih_fail(err, ih_errno_code(errno), "%s: %s", path, strerror(errno));
	p->path = ih_strdup(path);
	if (!p->path)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	if (fstat(p->fd, &st) < 0)
		return ih_fail(err, IH_ERR_IO, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return ih_fail(err, IH_ERR_NOT_WIM, "%s: not a regular file (%s)", path,
			       file_type_name(st.st_mode));
	int fl = fcntl(p->fd, F_GETFL);
	if (fl < 0 || fcntl(p->fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		return ih_fail(err, IH_ERR_IO, "%s: %s", path, strerror(errno));
	p->size = (uint64_t)st.st_size;
	p->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	n = pread(p->fd, buf, sizeof buf, 0);
	if (n < 0)
		return ih_fail(err, IH_ERR_IO, "%s: %s", path, strerror(errno));
	if ((size_t)n < sizeof buf || memcmp(buf, WIM_MAGIC, 8) != 0)
		return ih_fail(err, IH_ERR_NOT_WIM,
			       "%s: not a WIM, ESD or SWM file (%s)", path,
			       (size_t)n < sizeof buf ? "shorter than a WIM header"
						       : "no MSWIM magic number");
	memcpy(p->raw_header, buf, sizeof buf);
	p->header_ok = wimfmt_parse_header(buf, sizeof buf, &p->hdr, why, sizeof why) == 0;
	return IH_OK;
}

/* Split sets: "name.swm", "name2.swm", "name3.swm", ... next to the first. */
static char *part_path(const char *first, unsigned n)
{
	const char *slash = strrchr(first, '/');
	const char *dot = strrchr(first, '.');
	size_t stem = (dot && (!slash || dot > slash)) ? (size_t)(dot - first) : strlen(first);
	size_t len = strlen(first) + 8;
	char *s = malloc(len);
	if (s)
		snprintf(s, len, "%.*s%u%s", (int)stem, first, n, first + stem);
	return s;
}

static void load_integrity(struct wim *w, struct wim_part *p)
{
	const struct wim_reshdr *r = &p->hdr.integrity;
	struct wim_integrity_header ih;
	uint64_t covered;

	if (r->offset == 0 && r->stored_size == 0)
		return;
	if (!in_part(p, r->offset, r->stored_size) || r->stored_size > INTEGRITY_MAX ||
	    r->stored_size < INTEGRITY_HEADER_SIZE) {
		wim_problem(w, IH_PROBLEM_INTEGRITY, IH_REPAIRABLE,
			    "%s: integrity table lies outside the file", p->path);
		return;
	}
	p->integrity = malloc(r->stored_size);
	if (!p->integrity)
		return;
	p->integrity_len = r->stored_size;
	if (wim_pread(w, p->hdr.part_number, p->integrity, p->integrity_len, r->offset)) {
		wim_problem(w, IH_PROBLEM_INTEGRITY, IH_REPAIRABLE,
			    "%s: integrity table unreadable", p->path);
		return;
	}
	covered = p->hdr.blob_table.offset + p->hdr.blob_table.stored_size - WIM_HEADER_SIZE;
	if (wimfmt_parse_integrity(p->integrity, p->integrity_len, &ih, covered)) {
		wim_problem(w, IH_PROBLEM_INTEGRITY, IH_REPAIRABLE,
			    "%s: integrity table header is inconsistent", p->path);
		return;
	}
	p->integrity_ok = 1;
}

static int add_blob(struct wim *w, size_t *cap, struct wim_blob **out)
{
	if (w->nblobs == *cap) {
		size_t ncap = *cap ? *cap * 2 : 256;
		struct wim_blob *nb = realloc(w->blobs, ncap * sizeof *nb);
		if (!nb)
			return -1;
		w->blobs = nb;
		*cap = ncap;
	}
	*out = &w->blobs[w->nblobs++];
	memset(*out, 0, sizeof **out);
	(*out)->solid = -1;
	return 0;
}

static void mark_bad(struct wim_blob *b, ih_reason r, const char *why)
{
	b->bad = r;
	b->why = why;
}

/* Reads a solid resource's header and chunk table. */
static void load_solid(struct wim *w, struct wim_part *p, struct wim_solid *s)
{
	uint8_t hb[SOLID_HEADER_SIZE];
	uint64_t tsize;
	uint8_t *table;

	if (!in_part(p, s->offset, s->stored_size)) {
		s->bad = IH_REASON_TRUNCATED;
		snprintf(s->why, sizeof s->why, "solid resource extends past the end of the file");
		return;
	}
	if (s->stored_size < SOLID_HEADER_SIZE || wim_pread(w, s->part, hb, sizeof hb, s->offset) ||
	    wimfmt_parse_solid_header(hb, sizeof hb, &s->sh)) {
		s->bad = IH_REASON_DECOMPRESS;
		snprintf(s->why, sizeof s->why, "solid resource header is invalid");
		return;
	}
	s->nchunks = wimfmt_num_chunks(s->sh.usize, s->sh.chunk_size);
	tsize = s->nchunks * 4;
	if (s->nchunks > (s->stored_size - SOLID_HEADER_SIZE) / 4) {
		s->bad = IH_REASON_DECOMPRESS;
		snprintf(s->why, sizeof s->why, "solid chunk table larger than the resource");
		return;
	}
	table = malloc(tsize ? tsize : 1);
	s->chunk_offs = malloc((s->nchunks + 1) * sizeof *s->chunk_offs);
	if (!table || !s->chunk_offs) {
		free(table);
		s->bad = IH_REASON_DECOMPRESS;
		snprintf(s->why, sizeof s->why, "out of memory");
		return;
	}
	s->data_start = s->offset + SOLID_HEADER_SIZE + tsize;
	if (wim_pread(w, s->part, table, tsize, s->offset + SOLID_HEADER_SIZE) ||
	    wimfmt_solid_chunk_offsets(table, s->nchunks,
				       s->stored_size - SOLID_HEADER_SIZE - tsize,
				       s->sh.chunk_size, s->chunk_offs)) {
		s->bad = IH_REASON_DECOMPRESS;
		snprintf(s->why, sizeof s->why, "solid chunk table is invalid");
	}
	free(table);
}

/* A run of consecutive solid entries: its resource entries are
 * solids[first .. first+count). */
struct solid_run {
	size_t start, end;       /* entries [start, end) */
	size_t first, count;
};

static int add_solid(struct wim *w, size_t *cap, const struct wim_blob_entry *r, uint16_t part)
{
	if (w->nsolids == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct wim_solid *ns = realloc(w->solids, ncap * sizeof *ns);
		if (!ns)
			return -1;
		w->solids = ns;
		*cap = ncap;
	}
	struct wim_solid *s = &w->solids[w->nsolids++];
	memset(s, 0, sizeof *s);
	s->part = part;
	s->offset = r->res.offset;
	s->stored_size = r->res.stored_size;
	return 0;
}

/* A resource's place in its part, for finding overlaps by sorting. */
struct span {
	uint64_t part, off, end;
	size_t ix;               /* blob or solid index */
	int solid;
};

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	if (x->part != y->part)
		return x->part < y->part ? -1 : 1;
	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	if (x->solid != y->solid)
		return x->solid < y->solid ? -1 : 1;
	return x->ix < y->ix ? -1 : x->ix > y->ix;
}

/* Sorts spans.  A blob table lists its resources nearly in file order, so
 * insertion sort finishes in about n steps; past a budget of moves (a
 * table in any other order) it leaves the rest to qsort. */
static void sort_spans(struct span *v, size_t n)
{
	size_t budget = 4 * n + 64;
	for (size_t i = 1; i < n; i++) {
		struct span x = v[i];
		size_t j = i;
		for (; j > 0 && cmp_span(&v[j - 1], &x) > 0 && budget; j--, budget--)
			v[j] = v[j - 1];
		v[j] = x;
		if (!budget) {
			qsort(v, n, sizeof *v, cmp_span);
			return;
		}
	}
}

/* Sorts spans and passes to bad() those that start inside an earlier one
 * (of identical ones the first is kept). */
static void find_overlaps(struct span *v, size_t n, void (*bad)(struct wim *, const struct span *),
			  struct wim *w)
{
	uint64_t part = 0, end = 0;
	sort_spans(v, n);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && v[i].part == part && v[i].off < end) {
			bad(w, &v[i]);
			continue;
		}
		part = v[i].part;
		end = v[i].end;
	}
}

static void solid_overlaps(struct wim *w, const struct span *sp)
{
	struct wim_solid *s = &w->solids[sp->ix];
	s->bad = IH_REASON_BAD_ENTRY;
	snprintf(s->why, sizeof s->why, "solid resource overlaps another resource");
}

/* Solid resources of one part that overlap an earlier one (the same bytes
 * listed twice, or ranges that cross) are damage and are not loaded:
 * otherwise a resource listed a thousand times costs a thousand chunk
 * tables.  Resources outside the file are left to load_solid. */
static int mark_overlapping_solids(struct wim *w, const struct wim_part *p, size_t from)
{
	struct span *v = malloc((w->nsolids - from + 1) * sizeof *v);
	size_t n = 0;
	if (!v)
		return -1;
	for (size_t k = from; k < w->nsolids; k++) {
		const struct wim_solid *s = &w->solids[k];
		if (in_part(p, s->offset, s->stored_size) && s->stored_size)
			v[n++] = (struct span){s->part, s->offset, s->offset + s->stored_size, k, 1};
	}
	find_overlaps(v, n, solid_overlaps, w);
	free(v);
	return 0;
}

/* One part's blob table. */
static int load_blob_table(struct wim *w, struct wim_part *p, size_t *cap, size_t *scap,
			   ih_error *err)
{
	const struct wim_reshdr *bt = &p->hdr.blob_table;
	size_t n = bt->orig_size / BLOB_ENTRY_SIZE;
	uint8_t *buf;
	int solid_ok = p->hdr.version == WIM_VERSION_SOLID;
	struct solid_run *runs = NULL;
	size_t nruns = 0, cur = 0, solids_from = w->nsolids;
	uint32_t next_image = 0;

	if (!in_part(p, bt->offset, bt->stored_size)) {
		wim_problem(w, IH_PROBLEM_BLOB_TABLE, IH_NONREPAIRABLE,
			    "%s: blob table at %llu+%llu lies outside the file (%llu bytes; truncated?)",
			    p->path, (unsigned long long)bt->offset,
			    (unsigned long long)bt->stored_size, (unsigned long long)p->size);
		return IH_OK;
	}
	buf = malloc(bt->stored_size ? bt->stored_size : 1);
	if (!buf)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory reading the blob table");
	if (wim_pread(w, p->hdr.part_number, buf, bt->stored_size, bt->offset)) {
		free(buf);
		return ih_fail(err, IH_ERR_IO, "%s: cannot read the blob table: %s", p->path,
			       strerror(errno ? errno : EIO));
	}

#define IS_SOLID(i) (solid_ok && (buf[(i) * BLOB_ENTRY_SIZE + 7] & RESHDR_FLAG_SOLID))
	/* First the solid runs and their resource entries (which wimlib's
	 * writer puts first in a run, but may be anywhere in it): each entry
	 * is looked at once, whatever the runs look like. */
	for (size_t i = 0; i < n;) {
		if (!IS_SOLID(i)) {
			i++;
			continue;
		}
		struct solid_run *nr = realloc(runs, (nruns + 1) * sizeof *nr);
		if (!nr)
			goto nomem;
		runs = nr;
		nr += nruns++;
		nr->start = i;
		nr->first = w->nsolids;
		for (; i < n && IS_SOLID(i); i++) {
			struct wim_blob_entry r;
			wimfmt_get_blob_entry(buf + i * BLOB_ENTRY_SIZE, &r);
			if (r.res.orig_size == SOLID_RESOURCE_MAGIC &&
			    add_solid(w, scap, &r, p->hdr.part_number))
				goto nomem;
		}
		nr->end = i;
		nr->count = w->nsolids - nr->first;
		if (nr->count == 0)
			wim_problem(w, IH_PROBLEM_BLOB_TABLE, IH_NONREPAIRABLE,
				    "%s: blob table entries %zu-%zu are solid but no solid resource is among them",
				    p->path, nr->start, nr->end - 1);
	}
	if (mark_overlapping_solids(w, p, solids_from))
		goto nomem;
	for (size_t k = solids_from; k < w->nsolids; k++)
		if (!w->solids[k].bad)
			load_solid(w, p, &w->solids[k]);

	for (size_t i = 0; i < n; i++) {
		struct wim_blob_entry e;
		struct wim_blob *b;
		int is_solid = IS_SOLID(i);
		const struct solid_run *run = NULL;

		wimfmt_get_blob_entry(buf + i * BLOB_ENTRY_SIZE, &e);
		if (is_solid) {
			while (runs[cur].end <= i)
				cur++;
			run = &runs[cur];
			if (run->count == 0)
				continue; /* reported once, above */
			if (e.res.orig_size == SOLID_RESOURCE_MAGIC)
				continue; /* a resource entry, handled above */
		}
		if (ih_is_zero_hash(e.sha1))
			continue;
		if (add_blob(w, cap, &b))
			goto nomem;
		memcpy(b->sha1, e.sha1, 20);
		b->entry = i;
		b->refcnt = e.refcnt;
		b->part = p->hdr.part_number;
		b->flags = e.res.flags;
		if (e.part_number != p->hdr.part_number || (e.res.flags & ~0x1Fu)) {
			/* Bits no writer sets, or another part's number: the table
			 * itself is corrupt, and no entry in it can be trusted. */
			wim_problem(w, IH_PROBLEM_BLOB_TABLE, IH_NONREPAIRABLE,
				    "%s: blob table entry %zu is corrupt (flags 0x%02x, part %u)",
				    p->path, i, e.res.flags, (unsigned)e.part_number);
			w->nblobs--;
			continue;
		}

		if (is_solid) {
			/* Blob entry: offset into the run's concatenated data,
			 * its size in the stored-size field. */
			uint64_t off = e.res.offset;
			b->size = e.res.stored_size;
			for (size_t k = run->first; k < run->first + run->count; k++) {
				struct wim_solid *s = &w->solids[k];
				uint64_t us = s->bad ? 0 : s->sh.usize;
				if (!s->bad && off <= us && b->size <= us - off) {
					b->solid = (int32_t)k;
					b->offset = off;
					break;
				}
				if (s->bad && b->solid < 0)
					b->solid = (int32_t)k; /* best guess: blame the bad one */
				off = off >= us ? off - us : 0;
			}
			if (b->solid < 0)
				mark_bad(b, IH_REASON_BAD_ENTRY, "solid blob lies outside its resources");
		} else {
			b->size = e.res.orig_size;
			b->offset = e.res.offset;
			b->stored_size = e.res.stored_size;
			if (!(e.res.flags & RESHDR_FLAG_COMPRESSED) && b->stored_size != b->size)
				mark_bad(b, IH_REASON_BAD_ENTRY,
					 "uncompressed resource with differing sizes");
			else if ((e.res.flags & RESHDR_FLAG_COMPRESSED) &&
				 (b->stored_size < wimfmt_chunk_table_size(b->size, w->chunk_size) ||
				  w->ctype == CTYPE_NONE))
				mark_bad(b, IH_REASON_BAD_ENTRY, "compressed resource smaller than its chunk table");
			else if (b->offset > p->size || b->stored_size > p->size - b->offset)
				mark_bad(b, IH_REASON_TRUNCATED, "resource extends past the end of the file");
			else if (b->offset < WIM_HEADER_SIZE)
				mark_bad(b, IH_REASON_BAD_ENTRY, "resource overlaps the header");
		}

		if (e.res.flags & RESHDR_FLAG_METADATA) {
			if (e.refcnt == 0 || p->hdr.part_number != 1 || b->solid >= 0 ||
			    next_image >= w->image_count) {
				w->nblobs--; /* ignored, as wimlib and WIMGAPI do */
				continue;
			}
			b->image = ++next_image;
			w->metadata[next_image - 1] = (size_t)(b - w->blobs);
		}
	}
#undef IS_SOLID
	free(runs);
	p->blob_table = buf; /* kept: a restore rewrites it */
	if (p->hdr.part_number == 1 && next_image < w->image_count)
		wim_problem(w, IH_PROBLEM_BLOB_TABLE, IH_NONREPAIRABLE,
			    "blob table lists %u metadata resources for %u images", next_image,
			    w->image_count);
	return IH_OK;
nomem:
	free(runs);
	free(buf);
	return ih_fail(err, IH_ERR_NOMEM, "out of memory");
}

static void load_xml(struct wim *w)
{
	struct wim_part *p = &w->parts[0];
	const struct wim_reshdr *r = &p->hdr.xml;

	w->image_names = calloc(w->image_count + 1, sizeof *w->image_names);
	w->image_descs = calloc(w->image_count + 1, sizeof *w->image_descs);
	if (!w->image_names || !w->image_descs)
		return;
	if (!in_part(p, r->offset, r->stored_size) || r->stored_size > XML_MAX ||
	    (r->flags & RESHDR_FLAG_COMPRESSED)) {
		wim_problem(w, IH_PROBLEM_XML, IH_REPAIRABLE,
			    "XML data lies outside the file or is oversized");
		return;
	}
	w->xml_len = r->stored_size;
	w->xml = malloc(w->xml_len ? w->xml_len : 1);
	if (!w->xml || wim_pread(w, 1, w->xml, w->xml_len, r->offset)) {
		wim_problem(w, IH_PROBLEM_XML, IH_REPAIRABLE, "XML data unreadable");
		return;
	}
	if (ih_xml_image_names(w->xml, w->xml_len, w->image_count, w->image_names,
			       w->image_descs) != 0) {
		wim_problem(w, IH_PROBLEM_XML, IH_REPAIRABLE, "XML data is damaged (not well-formed)");
		return;
	}
	w->xml_ok = 1;
}

/* Sorts a solid resource's blob list by offset (then entry order). */
struct blob_pos {
	uint64_t off;
	size_t ix;
};

static int cmp_blob_pos(const void *a, const void *b)
{
	const struct blob_pos *x = a, *y = b;
	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return x->ix < y->ix ? -1 : x->ix > y->ix;
}

static int sort_solid_blobs(struct wim *w, struct wim_solid *s)
{
	struct blob_pos *v;
	if (s->nblobs < 2)
		return 0;
	v = malloc(s->nblobs * sizeof *v);
	if (!v)
		return -1;
	for (size_t i = 0; i < s->nblobs; i++)
		v[i] = (struct blob_pos){w->blobs[s->blobs[i]].offset, s->blobs[i]};
	qsort(v, s->nblobs, sizeof *v, cmp_blob_pos);
	for (size_t i = 0; i < s->nblobs; i++)
		s->blobs[i] = v[i].ix;
	free(v);
	return 0;
}

static void blob_overlaps(struct wim *w, const struct span *sp)
{
	if (sp->solid)
		solid_overlaps(w, sp);
	else
		mark_bad(&w->blobs[sp->ix], IH_REASON_BAD_ENTRY,
			 "resource overlaps another resource in the file");
}

/* Resources that share bytes with an earlier one are damage: read once
 * each, a thousand entries claiming one region would otherwise cost a
 * thousand reads of it (and a thousand copies of a metadata tree). */
static int mark_overlaps(struct wim *w)
{
	struct span *v = malloc((w->nblobs + w->nsolids + 1) * sizeof *v);
	size_t n = 0;
	if (!v)
		return -1;
	for (size_t i = 0; i < w->nblobs; i++) {
		const struct wim_blob *b = &w->blobs[i];
		if (b->solid < 0 && !b->bad && !b->dup && b->stored_size)
			v[n++] = (struct span){b->part, b->offset, b->offset + b->stored_size, i, 0};
	}
	for (size_t k = 0; k < w->nsolids; k++) {
		const struct wim_solid *s = &w->solids[k];
		if (!s->bad)
			v[n++] = (struct span){s->part, s->offset, s->offset + s->stored_size, k, 1};
	}
	find_overlaps(v, n, blob_overlaps, w);
	free(v);
	return 0;
}

/* Metadata is read whole and every selected image's tree is held at once:
 * together the trees may claim at most META_TOTAL_FACTOR times the file's
 * size (each one alone is held to that by the reader of it, too). */
#define META_TOTAL_FACTOR 512
static void metadata_budget(struct wim *w)
{
	uint64_t total = 0, budget = w->parts[0].size * META_TOTAL_FACTOR;
	for (uint32_t i = 0; i < w->image_count; i++) {
		struct wim_blob *b;
		if (w->metadata[i] == SIZE_MAX || (b = &w->blobs[w->metadata[i]])->bad)
			continue;
		if (b->size > budget - total) {
			mark_bad(b, IH_REASON_BAD_ENTRY,
				 "metadata resources together claim more than 512 times the file size");
			continue;
		}
		total += b->size;
	}
}

/* Every non-metadata blob into the SHA-1 index, hashed PREFETCH_AHEAD
 * entries ahead of its insertion so that the slot is in the cache by then
 * (a 100k-blob table is larger than the cache: a miss per entry else). */
#define PREFETCH_AHEAD 16
static int index_blobs(struct wim *w)
{
	uint64_t h[PREFETCH_AHEAD];
	for (size_t i = 0; i < w->nblobs + PREFETCH_AHEAD; i++) {
		if (i >= PREFETCH_AHEAD) {
			size_t k = i - PREFETCH_AHEAD;
			struct wim_blob *b = &w->blobs[k];
			int created;
			if (!b->image) {
				if (!ih_blobindex_put_hashed(&w->index, b->sha1, h[k % PREFETCH_AHEAD],
							     k, &created))
					return -1;
				b->dup = !created; /* later duplicates are ignored, as wimlib does */
			}
		}
		if (i < w->nblobs) {
			h[i % PREFETCH_AHEAD] = ih_blobindex_hash(w->blobs[i].sha1);
			ih_blobindex_prefetch(&w->index, h[i % PREFETCH_AHEAD]);
		}
	}
	return 0;
}

static int build_index(struct wim *w, ih_error *err)
{
	size_t *fill;
	if (ih_blobindex_init(&w->index, w->nblobs) || index_blobs(w))
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	if (mark_overlaps(w))
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	metadata_budget(w);
	/* Solid resources list their blobs in offset order for the scanner:
	 * counted first, then filled, then sorted (any order in, n log n). */
	for (size_t i = 0; i < w->nblobs; i++) {
		const struct wim_blob *b = &w->blobs[i];
		if (b->solid >= 0 && !b->image && !b->dup)
			w->solids[b->solid].nblobs++;
	}
	fill = calloc(w->nsolids + 1, sizeof *fill);
	if (!fill)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	for (size_t k = 0; k < w->nsolids; k++) {
		struct wim_solid *s = &w->solids[k];
		if (s->nblobs && !(s->blobs = malloc(s->nblobs * sizeof *s->blobs))) {
			free(fill);
			return ih_fail(err, IH_ERR_NOMEM, "out of memory");
		}
	}
	for (size_t i = 0; i < w->nblobs; i++) {
		const struct wim_blob *b = &w->blobs[i];
		if (b->solid >= 0 && !b->image && !b->dup)
			w->solids[b->solid].blobs[fill[b->solid]++] = i;
	}
	free(fill);
	for (size_t k = 0; k < w->nsolids; k++)
		if (sort_solid_blobs(w, &w->solids[k]))
			return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	return IH_OK;
}

int wim_open(const char *path, struct wim **out, ih_error *err)
{
	struct wim *w = calloc(1, sizeof *w);
	size_t cap = 0, scap = 0;
	int rc;
	char why[128];

	if (!w)
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	w->path = ih_strdup(path);
	w->parts = calloc(1, sizeof *w->parts);
	if (!w->path || !w->parts) {
		wim_free(w);
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	w->nparts = 1;
	w->parts[0].fd = -1;
	rc = open_part(path, &w->parts[0], err);
	if (rc) {
		wim_free(w);
		return rc;
	}
	/* Parsed again for the reason, if the header is bad. */
	if (wimfmt_parse_header(w->parts[0].raw_header, WIM_HEADER_SIZE, &w->hdr, why,
				sizeof why) != 0) {
		wim_problem(w, IH_PROBLEM_HEADER, IH_NONREPAIRABLE, "WIM header is invalid: %s", why);
		*out = w;
		return IH_OK;
	}
	w->ctype = w->hdr.ctype;
	w->chunk_size = w->hdr.chunk_size;
	w->image_count = w->hdr.image_count;
	if (w->hdr.flags & WIM_HDR_FLAG_WRITE_IN_PROGRESS)
		wim_problem(w, IH_PROBLEM_HEADER, IH_REPAIRABLE,
			    "an earlier write to the image was interrupted (write-in-progress flag "
			    "set); the image its header describes is intact; a restore clears the "
			    "flag, and --rebuild also drops the unused bytes");
	if (w->hdr.part_number != 1) {
		unsigned part = w->hdr.part_number;
		wim_free(w);
		return ih_fail(err, IH_ERR_INVALID_ARG,
			       "%s is part %u of a split set; open the first part (.swm)", path, part);
	}
	if (w->hdr.total_parts > 1) {
		struct wim_part *np = realloc(w->parts, w->hdr.total_parts * sizeof *np);
		if (!np) {
			wim_free(w);
			return ih_fail(err, IH_ERR_NOMEM, "out of memory");
		}
		w->parts = np;
		for (unsigned k = 2; k <= w->hdr.total_parts; k++) {
			struct wim_part *p = &w->parts[k - 1];
			char *pp = part_path(path, k);
			memset(p, 0, sizeof *p);
			p->fd = -1;
			w->nparts = (uint16_t)k;
			rc = pp ? open_part(pp, p, err) : ih_fail(err, IH_ERR_NOMEM, "out of memory");
			if (rc == IH_ERR_NOT_FOUND)
				rc = ih_fail(err, IH_ERR_MISSING_PART,
					     "part %u of %u of split image %s is missing (expected %s)",
					     k, w->hdr.total_parts, path, pp);
			else if (rc == IH_OK && (memcmp(p->hdr.guid, w->hdr.guid, 16) ||
						 p->hdr.part_number != k ||
						 p->hdr.total_parts != w->hdr.total_parts))
				rc = ih_fail(err, IH_ERR_MISSING_PART,
					     "%s is not part %u of split image %s (GUID or part number differs)",
					     pp, k, path);
			free(pp);
			if (rc) {
				wim_free(w);
				return rc;
			}
		}
	}
	w->metadata = malloc((w->image_count + 1) * sizeof *w->metadata);
	if (!w->metadata) {
		wim_free(w);
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < w->image_count; i++)
		w->metadata[i] = SIZE_MAX;
	/* One allocation for every entry of every part (plus room for none). */
	for (unsigned k = 0; k < w->nparts; k++)
		if (w->parts[k].header_ok && w->parts[k].hdr.blob_table.orig_size / BLOB_ENTRY_SIZE <
						     w->parts[k].size / BLOB_ENTRY_SIZE)
			cap += (size_t)(w->parts[k].hdr.blob_table.orig_size / BLOB_ENTRY_SIZE);
	w->blobs = malloc((cap + 1) * sizeof *w->blobs);
	if (!w->blobs) {
		wim_free(w);
		return ih_fail(err, IH_ERR_NOMEM, "out of memory");
	}
	for (unsigned k = 0; k < w->nparts; k++) {
		struct wim_part *p = &w->parts[k];
		if (!p->header_ok) {
			wim_problem(w, IH_PROBLEM_HEADER, IH_NONREPAIRABLE,
				    "%s: WIM header is invalid", p->path);
			continue;
		}
		rc = load_blob_table(w, p, &cap, &scap, err);
		if (rc) {
			wim_free(w);
			return rc;
		}
		load_integrity(w, p);
	}
	/* Every check reads the metadata resources first: start reading them
	 * now, while the index is built. */
	for (uint32_t i = 0; i < w->image_count; i++)
		if (w->metadata[i] != SIZE_MAX) {
			const struct wim_blob *b = &w->blobs[w->metadata[i]];
			posix_fadvise(w->parts[0].fd, (off_t)b->offset, (off_t)b->stored_size,
				      POSIX_FADV_WILLNEED);
		}
	load_xml(w);
	rc = build_index(w, err);
	if (rc) {
		wim_free(w);
		return rc;
	}
	*out = w;
	return IH_OK;
}

void wim_free(struct wim *w)
{
	if (!w)
		return;
	for (unsigned k = 0; k < w->nparts; k++) {
		if (w->parts[k].fd >= 0)
			close(w->parts[k].fd);
		free(w->parts[k].path);
		free(w->parts[k].integrity);
		free(w->parts[k].blob_table);
	}
	for (size_t k = 0; k < w->nsolids; k++) {
		free(w->solids[k].chunk_offs);
		free(w->solids[k].blobs);
	}
	if (w->image_names)
		for (uint32_t i = 0; i <= w->image_count; i++) {
			free(w->image_names[i]);
			free(w->image_descs[i]);
		}
	free(w->image_names);
	free(w->image_descs);
	free(w->solids);
	free(w->parts);
	free(w->path);
	free(w->blobs);
	free(w->metadata);
	free(w->xml);
	free(w->problems.v);
	ih_blobindex_free(&w->index);
	free(w);
}

/* ---------------------------------------------------------- finding blobs */

const struct wim_blob *wim_image_metadata(const struct wim *w, uint32_t image)
{
	if (image == 0 || image > w->image_count || w->metadata[image - 1] == SIZE_MAX)
		return NULL;
	return &w->blobs[w->metadata[image - 1]];
}

const struct wim_blob *wim_find_blob(const struct wim *w, const uint8_t sha1[20])
{
	size_t *v = ih_blobindex_get(&w->index, sha1);
	if (v)
		return &w->blobs[*v];
	/* metadata resources are not in the index: one per image */
	for (uint32_t i = 1; i <= w->image_count; i++) {
		const struct wim_blob *m = wim_image_metadata(w, i);
		if (m && !memcmp(m->sha1, sha1, 20))
			return m;
	}
	return NULL;
}

const struct wim_blob *wim_boot_metadata(const struct wim *w)
{
	return wim_image_metadata(w, w->hdr.boot_index);
}
