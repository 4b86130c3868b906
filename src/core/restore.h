/* restore.h - the restore as stages over one context:
 *
 *   find damage -> plan -> fetch -> commit -> verify -> report
 *
 * plan decides what to repair (targets) and opens the sources; fetch asks
 * the sources for each target, in order, through a sink that verifies every
 * byte; commit makes the fetched bytes the image through a committer (in
 * place, a transaction per part; or a rebuilt copy renamed over); verify
 * reads the repairs back and swaps the session's view.  Each stage is its
 * own function; a stage that fails leaves the context for the cleanup,
 * which rolls back whatever was not committed. */
#ifndef IH_RESTORE_H
#define IH_RESTORE_H

#include "session.h"
#include "source/source.h"
#include "writer.h"

/* One damaged blob and what became of it. */
struct target {
	const ih_damage *dm;
	const struct wim_blob *blob; /* its entry, or NULL when missing */
	uint16_t part;
	int source;                  /* index of the source that supplied it; -1: none */
	int drop;                    /* no image uses it: remove its entry */
	int kept;                    /* its repair (or drop) was committed */
	int skipped;                 /* the caller's ACCEPT answer skipped it */
	char skip_reason[128];
	uint32_t *order;             /* the caller's ORDER answer: sources to try, or NULL */
	size_t norder;               /* (with order NULL: all, in the restore's order) */
	struct supplied sup;
	int download_failed;         /* a remote source has it, and could not deliver */
	ih_errcode code;             /* unsupplied: why (source_missing, download, policy) */
	ih_try *tries;               /* the sources asked that did not supply it, and what */
	size_t ntries;               /* each said (the report's tries) */
};

/* Frees the targets and what each holds. */
void restore_targets_free(struct target *ts, size_t nt);

struct committer;

struct restore_ctx {
	ih_session *s;
	ih_job *j;
	const ih_restore_options *opt;
	ih_report *before;           /* the damage: a full scan, or a trusted record */
	ih_restore_report *r;        /* the report being built */
	struct source *src;          /* in DISM's order: caller's, then policy's */
	size_t nsrc;
	int default_barred;          /* the default repair server was barred (1, 2 as in
				      * the report) while the host configures one */
	struct target *ts;           /* sorted by SHA-1 */
	size_t nt;
	int tail_needs;              /* part 1's tail needs rewriting even without repairs */
	struct committer *cm;
	int committed;               /* a commit happened: the image changed */
	int locked;                  /* the session's lock is exclusive */
};

struct policy;
/* Opens x->src in DISM's order: first (a spec, or NULL; a tree's reference
 * image), the caller's, the policy's (pol, read by the caller unless
 * no_policy; consumed), then the default repair server unless barred; the
 * report's policy and default-server fields filled (restore_plan.c). */
int restore_open_sources(struct restore_ctx *x, const char *first, struct policy *pol,
			 ih_error *err);

/* The stages (restore_plan.c, restore_fetch.c, restore_commit.c). */
int restore_plan(struct restore_ctx *x, ih_error *err);
int restore_fetch(struct restore_ctx *x, ih_error *err);
int restore_commit(struct restore_ctx *x, ih_error *err);

/* The report (restore_report.c): started once the damage is known (it
 * takes over x->before), finished from the targets (or, with no targets,
 * from the check as found). */
int restore_report_start(struct restore_ctx *x);
int restore_report_finish(struct restore_ctx *x, ih_error *err);
/* The outcome seen as a check (borrowing r's arrays), for the state store. */
int restore_report_as_check(const ih_restore_report *r, ih_report *out);

/* Committers: where the fetched bytes go, and how they become the image. */
struct committer_ops {
	/* The writer that the bytes of a blob of `part` are appended with. */
	int (*writer_for)(struct committer *c, uint16_t part, struct writer **wr, ih_error *err);
	/* Makes the fetched repairs the image.  On failure everything not
	 * committed is rolled back; c->committed says whether anything was. */
	int (*commit)(struct committer *c, struct restore_ctx *x, ih_error *err);
	/* Undoes whatever was not committed; frees. */
	void (*close)(struct committer *c);
};

struct committer {
	const struct committer_ops *ops;
	uint64_t bytes_written;      /* counted only once committed */
	int committed;
	int rebuilt;
};

int inplace_committer_new(struct restore_ctx *x, struct committer **out, ih_error *err);
int rebuild_committer_new(struct restore_ctx *x, struct committer **out, ih_error *err);
/* A dry run's: no writer (the sink only verifies), nothing to commit. */
int verify_committer_new(struct restore_ctx *x, struct committer **out, ih_error *err);

/* The repaired (or dropped) target whose old entry is `entry` of `part`,
 * or NULL. */
const struct target *target_at(const struct target *ts, size_t nt, uint16_t part, size_t entry);

/* A blob table being built. */
struct new_table {
	uint8_t *v;
	size_t n, cap;
};
int table_put(struct new_table *t, const struct wim_blob_entry *e);
int table_put_raw(struct new_table *t, const uint8_t raw[BLOB_ENTRY_SIZE]);
/* Entry of a repaired target, its place in the table kept (metadata entries
 * are images in table order). */
int table_put_repaired(struct new_table *t, const uint8_t old_raw[BLOB_ENTRY_SIZE],
		       const struct target *hit);
/* Repaired blobs that leave a solid resource and blobs that were missing:
 * new entries at the end. */
int table_append_new(struct new_table *t, uint16_t part, const struct target *ts, size_t nt);

/* Writes the table, the part's XML (a minimal one if it was damaged) and,
 * if the part had one, a fresh integrity table read back through rfd;
 * drops anything past them (a rejected candidate's bytes); fsyncs; fills
 * hdr from old_header with the new resource headers and the
 * write-in-progress flag cleared.  Returns 0 or -1 (wr->err). */
int write_tail(struct writer *wr, int rfd, const struct wim *w, uint16_t part,
	       const struct new_table *t, const uint8_t old_header[WIM_HEADER_SIZE],
	       const struct wim_reshdr *boot, uint8_t hdr[WIM_HEADER_SIZE]);

/* Rebuild: a compacted copy with the repairs, renamed over the original. */
struct rebuild {
	int fd;
	char *tmp;
	struct writer wr;
	int renamed;
};
int rebuild_begin(const struct wim *w, struct rebuild *rb, ih_error *err);
int rebuild_commit(const struct wim *w, struct rebuild *rb, const struct target *ts, size_t nt,
		   ih_error *err);
void rebuild_abort(struct rebuild *rb);
/* Removes IMAGE.ihtmp.XXXXXX files a killed rebuild left beside the file
 * path resolves to (the caller's own regular files no rebuild holds). */
void rebuild_sweep(const char *path);

#endif
