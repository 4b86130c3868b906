/* policy.h - the image's own servicing policy (LocalSourcePath,
 * UseWindowsUpdate). */
#ifndef IH_POLICY_H
#define IH_POLICY_H

#include "session.h"

struct policy {
	char *local_source_path; /* ';'-separated, as stored; NULL if not set */
	int use_windows_update;  /* -1: not set */
	char *note;              /* why nothing could be read, or NULL */
};

/* Reads the policy from the SOFTWARE hive of the first image in metas that
 * has one.  Returns 0 (p->note explains an absent policy) or -1. */
int policy_read(const struct wim *w, struct image_meta *metas, size_t nmetas,
		struct policy *p);
int policy_read_hive_file(const char *file, struct policy *p);
/* The same from an open hive file (shown: how notes name it). */
int policy_read_hive_fd(int fd, const char *shown, struct policy *p);
/* Where an image (or a tree applied from one) keeps its SOFTWARE hive. */
#define POLICY_HIVE_PATH "/Windows/System32/config/SOFTWARE"
/* Maps a Windows path by the caller's prefix map; NULL when no prefix fits
 * or the path has a ".." component (why says which). */
char *policy_map_path(const char *winpath, const char *const *map, size_t n_map);
/* The same, saying why: POLICY_PATH_MAPPED with *out_path, _UNMAPPED (no
 * prefix fits) or _REFUSED (a ".." component), why filled; -1 out of
 * memory. */
enum { POLICY_PATH_MAPPED = 0, POLICY_PATH_UNMAPPED = 1, POLICY_PATH_REFUSED = 2 };
int policy_map_path_why(const char *winpath, const char *const *map, size_t n_map,
			char **out_path, char *why, size_t whylen);
void policy_free(struct policy *p);

#endif
