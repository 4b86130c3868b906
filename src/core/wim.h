/* wim.h - an opened WIM (or split set): parts, blob table, solid resources,
 * XML, integrity table.  Loaded once; read-only afterwards, so scanner
 * threads share it without locks. */
#ifndef IH_WIM_H
#define IH_WIM_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include "imagehealth.h"
#include "wimfmt.h"
#include "blobindex.h"

struct wim_part {
	char *path;
	int fd;
	uint64_t size;
	int64_t mtime_ns;
	struct wim_header hdr;
	uint8_t raw_header[WIM_HEADER_SIZE]; /* as read: a writer starts from it */
	uint8_t *blob_table;     /* the raw table as read, or NULL */
	int header_ok;
	uint8_t *integrity;      /* raw integrity table, or NULL */
	size_t integrity_len;
	int integrity_ok;        /* its header is consistent */
};

/* A blob the blob table lists (metadata resources included). */
struct wim_blob {
	uint8_t sha1[20];
	uint64_t size;          /* uncompressed */
	uint64_t offset;        /* file offset (non-solid) or offset in the solid resource */
	uint64_t stored_size;   /* non-solid: bytes in the file */
	uint32_t refcnt;
	uint16_t part;          /* 1-based */
	uint8_t flags;
	int32_t solid;          /* index into wim->solids, or -1 */
	uint32_t image;         /* metadata: its image (1-based), else 0 */
	size_t entry;           /* its position in its part's blob table */
	uint8_t dup;            /* a later entry with a SHA-1 seen before: ignored */
	ih_reason bad;          /* set when the entry itself is unusable */
	const char *why;        /* a literal saying why, or NULL */
};

struct wim_solid {
	uint16_t part;
	uint64_t offset, stored_size; /* the resource in the file */
	struct wim_solid_header sh;
	uint64_t nchunks;
	uint64_t *chunk_offs;   /* nchunks+1 offsets, relative to data_start */
	uint64_t data_start;    /* file offset of the first chunk */
	size_t *blobs;          /* indexes of its blobs, sorted by offset */
	size_t nblobs;
	int bad;                /* header or chunk table unusable */
	char why[96];
};

/* At most PROBLEMS_MAX problems are kept in a list; one more entry then
 * says "... and N more problems" (N in omitted), so a table of corrupt
 * entries cannot grow the list without bound. */
#define PROBLEMS_MAX 1000
struct problem_list {
	ih_problem *v;
	size_t n, cap;
	int nonrepairable;
	size_t omitted;          /* problems counted in the last entry only */
	int oom;                 /* a problem was lost for want of memory */
};
void problem_add(struct problem_list *l, ih_problem_kind kind, ih_health sev, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

struct wim {
	char *path;
	struct wim_part *parts;
	uint16_t nparts;
	struct wim_header hdr;   /* part 1's */
	int ctype;
	uint32_t chunk_size;
	struct wim_blob *blobs;
	size_t nblobs;
	size_t *metadata;        /* image i (0-based) -> blob index, or SIZE_MAX */
	uint32_t image_count;
	struct ih_blobindex index; /* sha1 -> blob index (non-metadata, first entry wins) */
	struct wim_solid *solids;
	size_t nsolids;
	uint8_t *xml;
	size_t xml_len;
	int xml_ok;
	char **image_names, **image_descs;
	struct problem_list problems; /* found while opening */
	int nonrepairable;       /* header or blob table unusable */
};

int wim_open(const char *path, struct wim **out, ih_error *err);
void wim_free(struct wim *w);
const char *wim_ctype_name(int ctype);

/* The blob with this SHA-1 (metadata resources included), or NULL: the one
 * place a blob is looked up by hash. */
const struct wim_blob *wim_find_blob(const struct wim *w, const uint8_t sha1[20]);
/* The metadata resource of image (1-based), or NULL. */
const struct wim_blob *wim_image_metadata(const struct wim *w, uint32_t image);
/* The boot image's metadata resource (header boot_index), or NULL. */
const struct wim_blob *wim_boot_metadata(const struct wim *w);

/* Reads exactly len bytes at off of a part; returns 0, or -1 (errno set,
 * EIO-like short read gives errno = 0). */
int wim_pread(const struct wim *w, uint16_t part, void *buf, size_t len, uint64_t off);

#endif
