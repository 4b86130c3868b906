/* policy.c - the servicing policy stored in the image itself: the values
 * LocalSourcePath and UseWindowsUpdate under
 * HKLM\Software\Microsoft\Windows\CurrentVersion\Policies\Servicing, read
 * with libhivex from the image's Windows/System32/config/SOFTWARE hive, and
 * LocalSourcePath's Windows paths mapped to local ones. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <hivex.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "policy.h"
#include "util.h"

#define HIVE_MAX (1u << 30)

struct find_ctx {
	uint8_t sha1[20];
	int found;
};

static int find_hive(void *ctx, const uint8_t sha1[20], const char *path, int named)
{
	struct find_ctx *f = ctx;
	if (!named && !strcasecmp(path, POLICY_HIVE_PATH)) {
		memcpy(f->sha1, sha1, 20);
		f->found = 1;
		return 1;
	}
	return 0;
}

static int write_all(int fd, const uint8_t *data, size_t len)
{
	while (len) {
		ssize_t n = write(fd, data, len);
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static int copy_to_fd(void *ctx, const uint8_t *data, size_t len)
{
	return write_all(*(int *)ctx, data, len);
}

static void read_values(hive_h *h, struct policy *p)
{
	static const char *const keys[] = {"Microsoft", "Windows", "CurrentVersion", "Policies",
					   "Servicing"};
	hive_node_h node = hivex_root(h);
	for (size_t i = 0; node && i < IH_ARRAY_LEN(keys); i++)
		node = hivex_node_get_child(h, node, keys[i]);
	if (!node) {
		p->note = ih_strdup("no Policies\\Servicing key in the image's SOFTWARE hive");
		return;
	}
	hive_value_h v = hivex_node_get_value(h, node, "LocalSourcePath");
	if (v) {
		char *s = hivex_value_string(h, v);
		if (s)
			p->local_source_path = s;
	}
	v = hivex_node_get_value(h, node, "UseWindowsUpdate");
	if (v) {
		errno = 0;
		int32_t d = hivex_value_dword(h, v);
		if (errno == 0)
			p->use_windows_update = d;
	}
}

static void hive_note(struct policy *p, const char *file, const char *why)
{
	char buf[600];
	snprintf(buf, sizeof buf, "cannot read the SOFTWARE hive %s: %s", file, why);
	free(p->note);
	p->note = ih_strdup(buf);
}

int policy_read_hive_file(const char *file, struct policy *p)
{
	/* The file may be anything (a FIFO would block hivex's open for
	 * ever): look at it through a non-blocking descriptor first. */
	int fd = open(file, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		hive_note(p, file, strerror(errno));
		return -1;
	}
	int rc = policy_read_hive_fd(fd, file, p);
	close(fd);
	return rc;
}

int policy_read_hive_fd(int fd, const char *shown, struct policy *p)
{
	struct stat st;
	char path[64];
	const char *bad = fstat(fd, &st)		      ? strerror(errno)
			  : !S_ISREG(st.st_mode)	      ? "not a regular file"
			  : (uint64_t)st.st_size > HIVE_MAX ? "larger than 1 GiB"
							      : NULL;
	if (bad) {
		hive_note(p, shown, bad);
		return -1;
	}
	/* hivex opens files by name: let it read this very file through /proc. */
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	hive_h *h = hivex_open(path, 0);
	if (!h) {
		hive_note(p, shown, strerror(errno));
		return -1;
	}
	read_values(h, p);
	hivex_close(h);
	return 0;
}

int policy_read(const struct wim *w, struct image_meta *metas, size_t nmetas,
		struct policy *p)
{
	struct find_ctx f = {{0}, 0};
	char why[128];
	int rc = -1;

	p->use_windows_update = -1;
	for (size_t i = 0; i < nmetas && !f.found; i++)
		if (metas[i].ok)
			ih_meta_walk(metas[i].buf, metas[i].len, find_hive, &f, NULL, why, sizeof why);
	if (!f.found) {
		p->note = ih_strdup("the image has no " POLICY_HIVE_PATH " hive: no policy sources");
		return 0;
	}
	size_t *v = ih_blobindex_get(&w->index, f.sha1);
	if (!v || w->blobs[*v].size > HIVE_MAX) {
		p->note = ih_strdup("the image's SOFTWARE hive is missing from the blob table");
		return 0;
	}
	/* hivex reads files: give it one in memory. */
	int fd = memfd_create("SOFTWARE", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	struct ih_reader r;
	ih_reason reason;
	char detail[160];
	ih_reader_init(&r, w);
	int rr = ih_read_any_blob(&r, &w->blobs[*v], copy_to_fd, &fd, NULL, &reason, detail,
				  sizeof detail);
	ih_reader_free(&r);
	if (rr != IH_READ_OK) {
		p->note = ih_strdup("the image's SOFTWARE hive is damaged: its policy cannot be read");
	} else {
		policy_read_hive_fd(fd, "in the image", p);
		rc = 0;
	}
	close(fd);
	return rc;
}

/* Does a path name ".." as one of its components ('\\' or '/' separated)? */
static int has_dotdot(const char *path)
{
	for (const char *c = path; *c;) {
		size_t n = strcspn(c, "\\/");
		if (n == 2 && c[0] == '.' && c[1] == '.')
			return 1;
		c += n;
		c += *c != '\0';
	}
	return 0;
}

/* "C:\Sources\install.wim" -> "/mnt/sources/install.wim" by the longest
 * matching prefix, compared case-insensitively with either slash.  A path
 * with a ".." component is never mapped: the image's policy must not reach
 * outside the directories the caller mapped. */
int policy_map_path_why(const char *winpath, const char *const *map, size_t n_map,
			char **out_path, char *why, size_t whylen)
{
	*out_path = NULL;
	if (has_dotdot(winpath)) {
		snprintf(why, whylen,
			 "the Windows path %s has a \"..\" component: refused, it could lead "
			 "outside the mapped directory", winpath);
		return POLICY_PATH_REFUSED;
	}
	snprintf(why, whylen, "no path_map entry maps the Windows path %s", winpath);
	size_t best = SIZE_MAX, best_len = 0;
	for (size_t i = 0; i < n_map; i++) {
		const char *pre = map[2 * i];
		size_t n = strlen(pre);
		while (n && (pre[n - 1] == '\\' || pre[n - 1] == '/'))
			n--;
		size_t k = 0;
		for (; k < n && winpath[k]; k++) {
			char a = winpath[k] == '/' ? '\\' : (char)tolower((unsigned char)winpath[k]);
			char b = pre[k] == '/' ? '\\' : (char)tolower((unsigned char)pre[k]);
			if (a != b)
				break;
		}
		if (k == n && (winpath[n] == '\0' || winpath[n] == '\\' || winpath[n] == '/') &&
		    n >= best_len) {
			best = i;
			best_len = n;
		}
	}
	if (best == SIZE_MAX)
		return POLICY_PATH_UNMAPPED;
	const char *local = map[2 * best + 1];
	const char *rest = winpath + best_len;
	size_t len = strlen(local) + strlen(rest) + 2;
	char *out = malloc(len);
	if (!out)
		return -1;
	snprintf(out, len, "%s%s", local, rest);
	for (char *c = out + strlen(local); *c; c++)
		if (*c == '\\')
			*c = '/';
	/* no doubled slash at the join */
	size_t ll = strlen(local);
	if (ll && out[ll - 1] == '/' && out[ll] == '/')
		memmove(out + ll, out + ll + 1, strlen(out + ll));
	*out_path = out;
	return POLICY_PATH_MAPPED;
}

char *policy_map_path(const char *winpath, const char *const *map, size_t n_map)
{
	char why[8], *out;
	return policy_map_path_why(winpath, map, n_map, &out, why, sizeof why) == POLICY_PATH_MAPPED
		       ? out
		       : NULL;
}

void policy_free(struct policy *p)
{
	free(p->local_source_path);
	free(p->note);
	memset(p, 0, sizeof *p);
}
