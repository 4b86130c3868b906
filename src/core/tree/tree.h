/* tree.h - sessions on an applied image tree: a directory made by
 * `wimlib-imagex apply` (or an ntfs-3g mount, or a deployment share),
 * checked file by file against the image it came from.
 *
 * The reference manifest is the image's directory tree (every path with
 * its type, the SHA-1 and size of its data, its timestamps), read from
 * the reference WIM or from a seal (a manifest recorded earlier).  The tree
 * is read only through descriptors below its root, never following a
 * link; the restore reuses the plan/fetch stages and sources of restore.h
 * with its own committer (a spool of verified bytes, then per file a
 * temporary file in the same directory, fsync, rename). */
#ifndef IH_TREE_H
#define IH_TREE_H

#include <sys/stat.h>
#include "session.h"

/* Prefix of every name the restore creates (temporary files): a name with
 * it is never an extra file, and a later restore removes it. */
#define TREE_TMP_PREFIX ".imagehealth-tmp."

struct tree_entry {
	char *path;              /* "/dir/file" as in the image; "/" is the root */
	char *key;               /* path, upcased (fold.c) when names compare case-insensitively */
	ih_tree_type type;
	uint8_t sha1[20];        /* data (zero: empty file, or a directory) */
	uint64_t size;
	uint64_t atime, mtime;   /* FILETIME: 100 ns since 1601 */
	uint32_t attributes;
	uint32_t named_streams;
	uint32_t reparse_tag;    /* links: the reparse point's tag; sha1/size: its data */
	uint8_t rpfix;           /* links: an absolute target wimlib makes the tree's own */
	size_t parent;           /* index of its directory; SIZE_MAX for the root */
	int dup;                 /* same key as an earlier entry: not applied (as wimlib) */
};

struct manifest {
	struct tree_entry *v;
	size_t n, cap;
	size_t *order;           /* indexes by key */
	int ci;
	uint32_t index;
	uint8_t guid[16];
	char *reference;         /* the reference spec as given */
	uint64_t named_streams, links;
};

struct tree {
	char *root;              /* the directory (absolute) */
	int rootfd;              /* O_RDONLY|O_DIRECTORY */
	struct manifest m;
	int have_manifest;       /* 0: the reference could not be read (why) */
	char why[400];
	char *ref_source;        /* spec of the reference image as a source, or NULL (sealed) */
	char *shown;             /* the reference as reports name it */
	int ci;
};

/* Opens the tree side of session s on dir (s->state_dir set; s->w set
 * when the reference is a WIM).  IH_OK or an error (hostile reference
 * names included). */
int tree_open(ih_session *s, const char *dir, const ih_open_options *opt, ih_error *err);
void tree_free(struct tree *t);
/* Whether path with opt makes a tree session. */
int tree_wanted(const char *path, const ih_open_options *opt);

/* manifest.c */
int manifest_from_image(struct manifest *m, const struct wim *w, uint32_t index, int ci,
			char *why, size_t whylen, ih_error *err);
/* Sorts and indexes (marks case duplicates).  0 or -1 (ENOMEM). */
int manifest_index(struct manifest *m);
size_t manifest_find(const struct manifest *m, const char *key);
void manifest_free(struct manifest *m);
/* The key path is compared by (fold.c): upcased as NTFS does when ci,
 * else path itself; malloc'd, NULL when out of memory. */
char *manifest_key(const char *path, int ci);
/* Whether a relative component is one a tree may hold. */
int tree_name_ok(const char *name, size_t n);

/* link.c: the target wimlib gives the link of a reparse point when it
 * applies to a POSIX directory root: 0, or -1 (why says why: a tag or a
 * target no POSIX tree can hold). */
int link_target(const struct tree_entry *e, const uint8_t *data, size_t len, const char *root,
		char **out, char *why, size_t whylen);

/* seal.c */
int seal_write(const struct manifest *m, int fd);
int seal_read(int fd, struct manifest *m, int ci, char *why, size_t whylen, ih_error *err);
/* The state store's seal name for a tree root. */
void seal_store_name(const char *root, char *buf, size_t len);

/* scan.c: what the walk of the tree found, kept for the restore. */
struct tree_scan {
	uint8_t *found;          /* per manifest entry: ih_tree_type found there (+1: seen) */
	char **actual;           /* per entry: the tree's own path when it differs (case) */
	char **stale;            /* our temporary files left by a killed restore */
	size_t nstale;
	uint8_t *link_out;       /* per entry: a link there leads out of the tree */
};
int tree_scan_run(ih_session *s, ih_job *j, int scan, int threads, ih_report **out,
		  struct tree_scan *ts, ih_error *err);
void tree_scan_free(struct tree_scan *ts, size_t n);

/* Path helpers (fsops.c): rel is "/a/b" below the root. */
/* A descriptor of the directory rel, reached without following a link. */
int tree_open_dir(int rootfd, const char *rel);
/* The regular file rel, read-only, non-blocking, never through a link;
 * its fstat in *st (may be NULL). */
int tree_open_file(int rootfd, const char *rel, struct stat *st);
/* rel opened for reading (non-blocking, never through a link), with no
 * look at what it is: the full scan's reads bound themselves. */
int tree_open_read(int rootfd, const char *rel);
/* Removes the directory name in dirfd with everything below it, never
 * following a link.  0 or -1. */
int tree_remove_all(int dirfd, const char *name);
/* Whether the link name in dirfd (at depth `depth` below the root) leads
 * out of the tree; its target in buf. */
int tree_link_leaves(int dirfd, const char *name, int depth, char *buf, size_t len);
void tree_filetime_to_ts(uint64_t ft, struct timespec *ts);

/* The hooks of the session's check and restore. */
int tree_check_run(ih_session *s, ih_job *j, const ih_check_options *opt, ih_report **out,
		   ih_error *err);
int tree_restore_job(ih_job *j, ih_session *s, const ih_restore_options *opt, ih_error *err);

#endif
