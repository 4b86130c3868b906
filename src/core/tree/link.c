/* link.c - the link wimlib makes of a reparse point when it applies an
 * image to a POSIX directory: symbolic links and junctions become symlinks
 * whose target is the reparse data's substitute name, with '\' turned into
 * '/':
 *
 *   relative ("dir\file", a symlink flagged relative)   as it is
 *   "\??\C:\dir\file", "C:\dir\file", "\dir\file"       "/dir/file"
 *
 * and an absolute target that capture made relative to the captured root
 * (the header's RP_FIX flag, and the entry not marked "not fixed") gets the
 * tree's own root in front, as wimlib's default --rpfix does.  Other
 * reparse points (volume junctions, deduplication, ...) have no POSIX form:
 * said so, never guessed. */
#include <stdio.h>
#include <stdlib.h>
#include "metadata.h"
#include "tree.h"
#include "util.h"

#define TAG_SYMLINK 0xA000000Cu
#define TAG_MOUNT_POINT 0xA0000003u
#define SYMLINK_RELATIVE 1u

/* The substitute name as UTF-8 (malloc'd); NULL when the data is invalid. */
static char *substitute_name(const struct tree_entry *e, const uint8_t *d, size_t len,
			     uint32_t *flags)
{
	/* The WIM keeps the reparse buffer without its 8-byte header. */
	size_t names = e->reparse_tag == TAG_SYMLINK ? 12 : 8;
	if (len < names)
		return NULL;
	size_t off = get_le16(d), n = get_le16(d + 2);
	*flags = e->reparse_tag == TAG_SYMLINK ? get_le32(d + 8) : 0;
	if ((off | n) & 1 || n == 0 || names + off + n > len)
		return NULL;
	char *s = malloc(IH_UTF8_MAX(n) + 1);
	if (!s)
		return NULL;
	size_t k = ih_utf16le_to_utf8(d + names + off, n, s);
	s[k] = '\0';
	if (strlen(s) != k) { /* a U+0000 inside: no path holds it */
		free(s);
		return NULL;
	}
	return s;
}

/* How many leading characters make an absolute Windows name a POSIX one
 * ("\??\C:" 6, "C:" 2, "" 0); -1 when it is relative, -2 when it has no
 * POSIX form. */
static int absolute_prefix(const char *s, uint32_t tag, uint32_t flags)
{
	size_t n = strlen(s);
	if (n >= 7 && !strncmp(s, "\\??\\", 4) && s[4] != '\\' && s[5] == ':' && s[6] == '\\')
		return 6;
	if (tag != TAG_SYMLINK)
		return -2; /* a volume junction, or a form wimlib does not apply */
	if (flags & SYMLINK_RELATIVE)
		return -1;
	if (n >= 3 && s[1] == ':' && s[2] == '\\')
		return 2;
	return s[0] == '\\' ? 0 : -1;
}

int link_target(const struct tree_entry *e, const uint8_t *data, size_t len, const char *root,
		char **out, char *why, size_t whylen)
{
	uint32_t flags = 0;
	*out = NULL;
	if (e->reparse_tag != TAG_SYMLINK && e->reparse_tag != TAG_MOUNT_POINT) {
		snprintf(why, whylen, "a reparse point of tag 0x%08x: no POSIX tree can hold it",
			 (unsigned)e->reparse_tag);
		return -1;
	}
	char *s = substitute_name(e, data, len, &flags);
	if (!s) {
		snprintf(why, whylen, "its reparse data is invalid");
		return -1;
	}
	int skip = absolute_prefix(s, e->reparse_tag, flags);
	if (skip == -2) {
		snprintf(why, whylen, "its target \"%.60s\" has no POSIX form", s);
		free(s);
		return -1;
	}
	for (char *c = s; *c; c++)
		if (*c == '\\')
			*c = '/';
	const char *rel = s + (skip > 0 ? skip : 0);
	int fix = skip >= 0 && e->rpfix;
	size_t n = (fix ? strlen(root) : 0) + strlen(rel) + 1;
	*out = malloc(n);
	if (*out)
		snprintf(*out, n, "%s%s", fix ? root : "", rel);
	free(s);
	if (!*out) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	return 0;
}
