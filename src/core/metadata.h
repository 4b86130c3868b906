/* metadata.h - walks the directory tree stored in a WIM metadata resource.
 *
 * The caller hands over the resource already decompressed and checked
 * against its SHA-1.  The walker is still safe on hostile bytes (it is
 * fuzzed): every read is bounds-checked, the tree is walked with an explicit
 * stack no deeper than wimlib allows (16384 levels), and the total work is
 * linear in the buffer size even when subdirectory offsets form cycles or
 * share lists.
 *
 * Acceptance follows wimlib (src/dentry.c, src/security.c): a buffer wimlib
 * refuses is refused here, and entries wimlib silently drops (unnamed
 * entries, "." and "..", names with an embedded NUL, later duplicates of a
 * case-sensitive name in one directory, children of non-directories) are
 * dropped here too.  As in wimlib, a directory is an entry with
 * FILE_ATTRIBUTE_DIRECTORY and without FILE_ATTRIBUTE_REPARSE_POINT: a
 * junction or a symlink to a directory is a file, and its subdir offset is
 * ignored.  Two deliberate differences: an unpaired UTF-16 surrogate
 * becomes U+FFFD (wimlib emits WTF-8), and a tree whose subdirectory lists
 * are re-read so often that the work exceeds twice the buffer size (only
 * possible with shared or cyclic subdir offsets) is refused. */
#ifndef IH_METADATA_H
#define IH_METADATA_H

#include <stddef.h>
#include <stdint.h>

#define IH_META_MAX_DEPTH 16384      /* wimlib's limit on nested directory lists */
#define IH_META_MAX_PATH (1u << 20)  /* longest UTF-8 path accepted, in bytes */

#define IH_FILE_ATTRIBUTE_DIRECTORY 0x00000010u
#define IH_FILE_ATTRIBUTE_REPARSE_POINT 0x00000400u

typedef struct ih_meta_stats {
	uint64_t files;   /* non-directories, reparse points included (once per
			   * name, like wimlib's FILECOUNT) */
	uint64_t dirs;    /* directories, the root excluded (DIRCOUNT - 1) */
	uint64_t streams; /* stream callbacks made (non-zero hashes) */
} ih_meta_stats;

/* What a walk returns: IH_META_OK, one of the failures below, or the
 * positive value a callback returned to stop the walk.  Kept apart so that
 * running out of memory never reads as "invalid metadata". */
enum ih_meta_result {
	IH_META_OK = 0,
	IH_META_INVALID = -1, /* buf is not a valid metadata resource (errmsg says why) */
	IH_META_NOMEM = -2,   /* out of memory, in the walker or in a callback */
};

/* Called once per (path, stream) with a non-zero hash: the main hash and
 * every extra stream entry of every entry, the root included.  path is UTF-8,
 * '/'-separated and starts with '/', as `wimlib-imagex dir` prints it (the
 * root is "/"); a named data stream is "/dir/file:streamname".  Unnamed
 * streams (the file data, or a reparse point's reparse data) get the plain
 * path and is_named_stream = 0.  path is valid only during the call.
 * Return 0 to go on, a positive value to stop the walk (the walk returns
 * it), or a negative value when the callback ran out of memory (the walk
 * returns IH_META_NOMEM). */
typedef int (*ih_meta_stream_fn)(void *ctx, const uint8_t sha1[20], const char *path,
				 int is_named_stream);

/* Returns an ih_meta_result or a callback's positive stop value.  fn and
 * stats may be NULL; stats holds the counts of what was walked even when the
 * walk stopped early. */
int ih_meta_walk(const uint8_t *buf, size_t len, ih_meta_stream_fn fn, void *ctx,
		 ih_meta_stats *stats, char *errmsg, size_t errlen);

/* Called once per directory entry kept, the root ("/") first; directories
 * before their contents.  Returns as an ih_meta_stream_fn does. */
typedef int (*ih_meta_entry_fn)(void *ctx, const char *path, uint32_t attributes);

/* Like ih_meta_walk, reporting entries as well as streams (either callback
 * may be NULL).  For checking an applied tree, or listing every path. */
int ih_meta_walk2(const uint8_t *buf, size_t len, ih_meta_entry_fn entry_fn,
		  ih_meta_stream_fn stream_fn, void *ctx, ih_meta_stats *stats,
		  char *errmsg, size_t errlen);

/* One entry as ih_meta_walk3 reports it: what checking an applied tree
 * needs.  Valid only during the call. */
typedef struct ih_meta_file {
	const char *path;          /* as for ih_meta_entry_fn */
	size_t name_off;           /* the entry's own name is path + name_off */
	int name_has_slash;        /* the name holds a '/': no POSIX tree can hold it */
	uint32_t attributes;
	uint8_t data_sha1[20];     /* the unnamed data stream (zero: empty, or none);
				    * for a reparse point, its reparse data */
	uint64_t creation_time;    /* FILETIME: 100 ns since 1601-01-01 */
	uint64_t last_access_time;
	uint64_t last_write_time;
	uint32_t named_streams;    /* named data streams with content */
	uint32_t reparse_tag;      /* a reparse point's tag (IO_REPARSE_TAG_*), else 0 */
	int not_rpfixed;           /* a reparse point whose absolute target was not
				    * made relative to the captured root */
} ih_meta_file;
typedef int (*ih_meta_file_fn)(void *ctx, const ih_meta_file *f);

/* Like ih_meta_walk2, with each entry's facts (fn may be NULL). */
int ih_meta_walk3(const uint8_t *buf, size_t len, ih_meta_file_fn fn, void *ctx,
		  ih_meta_stats *stats, char *errmsg, size_t errlen);

/* Converts nbytes of UTF-16LE to UTF-8 at out, which must hold
 * IH_UTF8_MAX(nbytes) bytes; returns the bytes written (no NUL added).
 * Surrogate pairs are combined; unpaired surrogates and a dangling odd byte
 * become U+FFFD.  U+0000 is copied as a 0 byte. */
#define IH_UTF8_MAX(nbytes) (3 * (((size_t)(nbytes) + 1) / 2))
size_t ih_utf16le_to_utf8(const uint8_t *in, size_t nbytes, char *out);

#endif
