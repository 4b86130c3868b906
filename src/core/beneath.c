/* beneath.c - opening paths below a root, never leaving it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <linux/openat2.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "beneath.h"

static int name_ok(const char *name, size_t n)
{
	if (n == 0 || n > NAME_MAX || (n == 1 && name[0] == '.') ||
	    (n == 2 && name[0] == '.' && name[1] == '.'))
		return 0;
	return memchr(name, '\0', n) == NULL;
}

/* name in dirfd, exact first, then (nocase) a case-insensitive match. */
static int open_component(int dirfd, const char *name, int flags, int nocase)
{
	int fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 || errno != ENOENT || !nocase)
		return fd;
	int lfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
	struct dirent *e;
	if (!d) {
		if (lfd >= 0)
			close(lfd);
		errno = ENOENT;
		return -1;
	}
	fd = -1;
	errno = ENOENT;
	while ((e = readdir(d)))
		if (!strcasecmp(e->d_name, name)) {
			fd = openat(dirfd, e->d_name, flags | O_NOFOLLOW | O_CLOEXEC);
			break;
		}
	int saved = errno;
	closedir(d);
	errno = saved;
	return fd;
}

static int open_walk(int rootfd, const char *p, int flags, int nocase)
{
	int dirfd = rootfd;
	char comp[NAME_MAX + 1];
	for (;;) {
		while (*p == '/')
			p++;
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (!name_ok(p, n)) {
			if (dirfd != rootfd)
				close(dirfd);
			errno = n ? EINVAL : ENOENT;
			return -1;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		p += n;
		while (*p == '/')
			p++;
		int last = *p == '\0';
		int fd = open_component(dirfd, comp, last ? flags : O_PATH | O_DIRECTORY, nocase);
		int saved = errno;
		if (dirfd != rootfd)
			close(dirfd);
		if (fd < 0) {
			errno = saved;
			return -1;
		}
		if (last)
			return fd;
		dirfd = fd;
	}
}

int ih_open_beneath(int rootfd, const char *rel, int flags, int nocase)
{
	static int no_openat2;
	const char *p = rel;
	while (*p == '/')
		p++;
	if (!*p)
		return openat(rootfd, ".", flags | O_CLOEXEC);
	if (!__atomic_load_n(&no_openat2, __ATOMIC_RELAXED)) {
		struct open_how how = {
			.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
		};
		long fd = syscall(SYS_openat2, rootfd, p, &how, sizeof how);
		if (fd >= 0 || (errno != ENOSYS && errno != EPERM && !(errno == ENOENT && nocase)))
			return (int)fd;
		if (errno == ENOSYS || errno == EPERM)
			__atomic_store_n(&no_openat2, 1, __ATOMIC_RELAXED);
	}
	return open_walk(rootfd, p, flags, nocase);
}
