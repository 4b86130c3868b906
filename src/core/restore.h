/* restore.h - what the restore's pieces share: the damaged blobs being
 * repaired, and writing a WIM's tail (blob table, XML, integrity table,
 * header fields) for the in-place and the rebuild writers alike. */
#ifndef IH_RESTORE_H
#define IH_RESTORE_H

#include "session.h"
#include "source.h"
#include "writer.h"

/* One damaged blob and what became of it. */
struct target {
	const ih_damage *dm;
	const struct wim_blob *blob; /* its entry, or NULL when missing */
	uint16_t part;
	int source;                  /* -1: not repaired */
	int drop;                    /* no image uses it: remove its entry */
	struct supplied sup;
};

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
 * fsyncs; fills hdr from old_header with the new resource headers and the
 * write-in-progress flag cleared.  Returns 0 or -1 (wr->err). */
int write_tail(struct writer *wr, int rfd, const struct wim *w, uint16_t part,
	       const struct new_table *t, const uint8_t old_header[WIM_HEADER_SIZE],
	       const struct wim_reshdr *boot, uint8_t hdr[WIM_HEADER_SIZE]);

ih_errcode write_code(int e);

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
