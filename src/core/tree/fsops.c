/* fsops.c - reaching paths of an applied tree without ever leaving it:
 * openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS where the kernel has
 * it, else one component at a time with O_NOFOLLOW.  A link anywhere on the
 * way makes the open fail (ELOOP), so a link in the tree that points out of
 * it is never followed, for reading or for writing. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "beneath.h"
#include "tree.h"

static int open_beneath(int rootfd, const char *rel, int flags)
{
	return ih_open_beneath(rootfd, rel, flags, 0);
}

int tree_open_dir(int rootfd, const char *rel)
{
	return open_beneath(rootfd, rel, O_RDONLY | O_DIRECTORY);
}

int tree_open_file(int rootfd, const char *rel, struct stat *stp)
{
	int fd = open_beneath(rootfd, rel, O_RDONLY | O_NONBLOCK);
	struct stat own, *st = stp ? stp : &own;
	if (fd >= 0 && (fstat(fd, st) || !S_ISREG(st->st_mode))) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	return fd;
}

int tree_open_read(int rootfd, const char *rel)
{
	return open_beneath(rootfd, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
}

static int remove_below(int dirfd, int depth)
{
	DIR *d = fdopendir(dirfd);
	struct dirent *e;
	int rc = 0;
	if (!d) {
		close(dirfd);
		return -1;
	}
	while (rc == 0 && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW)) {
			rc = -1;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			int sub = depth < 4096 ? openat(dirfd, e->d_name,
							O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
					       : -1;
			rc = sub < 0 ? -1 : remove_below(sub, depth + 1);
			if (rc == 0)
				rc = unlinkat(dirfd, e->d_name, AT_REMOVEDIR);
		} else {
			rc = unlinkat(dirfd, e->d_name, 0); /* a link itself, never its target */
		}
	}
	closedir(d);
	return rc;
}

int tree_remove_all(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || remove_below(fd, 0))
		return -1;
	return unlinkat(dirfd, name, AT_REMOVEDIR);
}

int tree_link_leaves(int dirfd, const char *name, int depth, char *buf, size_t len)
{
	ssize_t n = readlinkat(dirfd, name, buf, len - 1);
	if (n < 0) {
		snprintf(buf, len, "?");
		return 1;
	}
	buf[n] = '\0';
	if (buf[0] == '/')
		return 1;
	for (const char *p = buf; *p;) {
		const char *e = strchr(p, '/');
		size_t k = e ? (size_t)(e - p) : strlen(p);
		if (k == 2 && p[0] == '.' && p[1] == '.') {
			if (--depth < 0)
				return 1;
		} else if (k && !(k == 1 && p[0] == '.')) {
			depth++;
		}
		p += k;
		while (*p == '/')
			p++;
	}
	return 0;
}

/* FILETIME (100 ns since 1601) to a timespec, as wimlib applies it. */
void tree_filetime_to_ts(uint64_t ft, struct timespec *ts)
{
	ts->tv_sec = (time_t)((int64_t)(ft / 10000000) - 11644473600LL);
	ts->tv_nsec = (long)(ft % 10000000) * 100;
}
