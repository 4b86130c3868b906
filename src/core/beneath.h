/* beneath.h - opening a path below a directory without ever leaving it:
 * openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS where the kernel has
 * it, else one component at a time with O_NOFOLLOW.  A link anywhere on the
 * way makes the open fail (ELOOP), so a link that points out of the root is
 * never followed; "." and ".." components and names over NAME_MAX are
 * refused (EINVAL). */
#ifndef IH_BENEATH_H
#define IH_BENEATH_H

/* Opens rel ("/dir/file", or "" for the root itself) below rootfd with
 * flags (O_NOFOLLOW and O_CLOEXEC are added).  With nocase, a component
 * that does not exist is looked for case-insensitively (Windows names are
 * case-insensitive; a Linux copy of an image keeps their case).  Returns
 * the descriptor, or -1 with errno set. */
int ih_open_beneath(int rootfd, const char *rel, int flags, int nocase);

#endif
