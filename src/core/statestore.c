/* statestore.c - what the last full scan of an exact file found, one small
 * text file per image, keyed by the WIM's GUID and each part's size and
 * mtime.  Written atomically (temporary file, fsync, rename); never inside
 * the image.
 *
 *   imagehealth-state 2
 *   image N
 *   part K SIZE MTIME_NS          one per part; all must match the file
 *   scanned_at UNIX_TIME
 *   state 0|1|2
 *   problem KIND SEVERITY TEXT    problems the scan found
 *   damage SHA1 SIZE REASON TEXT  a damaged blob, then its uses in image N:
 *   meta IMAGE                      it is that image's metadata resource
 *   ref IMAGE PATH                  a file using it
 *
 * TEXT and PATH are escaped (%XX for '%' and bytes below 0x20). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "session.h"
#include "util.h"

#define STATE_MAGIC "imagehealth-state 2\n"
#define LINE_MAX_LEN (16u << 10)

/* GUID, then a hash of the file's real path: copies of one image (same
 * GUID) in different places keep records of their own. */
static void state_path(const ih_session *s, uint32_t image, char *buf, size_t len)
{
	char guid[33], *real = realpath(s->w->path, NULL);
	const char *p = real ? real : s->w->path;
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
	for (int i = 0; i < 16; i++)
		snprintf(guid + 2 * i, 3, "%02x", s->w->hdr.guid[i]);
	for (; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
	free(real);
	snprintf(buf, len, "%s/%s-%016llx-%u.state", s->state_dir, guid, (unsigned long long)h,
		 image);
}

/* mkdir -p */
static int make_dirs(const char *dir)
{
	char buf[4096];
	snprintf(buf, sizeof buf, "%s", dir);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(buf, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

static void put_escaped(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == '%')
			fprintf(f, "%%%02X", c);
		else
			fputc(c, f);
	}
}

/* Unescapes in place; returns s. */
static char *unescape(char *s)
{
	char *o = s;
	for (char *p = s; *p; p++) {
		unsigned v;
		if (*p == '%' && sscanf(p + 1, "%2x", &v) == 1 && p[1] && p[2]) {
			*o++ = (char)v;
			p += 2;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return s;
}

/* The text after the first n space-separated fields of line, or "". */
static char *rest_after(char *line, int n)
{
	char *p = line;
	for (int i = 0; i < n && p; i++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p)
		return line + strlen(line);
	p[strcspn(p, "\n")] = '\0';
	return unescape(p);
}

static int add_image(ih_damage *dm, uint32_t image)
{
	for (size_t i = 0; i < dm->n_images; i++)
		if (dm->images[i] == image)
			return 0;
	uint32_t *ni = realloc(dm->images, (dm->n_images + 1) * sizeof *ni);
	if (!ni)
		return -1;
	dm->images = ni;
	ni[dm->n_images++] = image;
	return 0;
}

int state_recall(const ih_session *s, uint32_t image, int with_refs, struct damage_set *d,
		 struct problem_list *pl, struct state_recall *out)
{
	char path[4200], *line = malloc(LINE_MAX_LEN);
	FILE *f;
	unsigned parts_ok = 0;
	int ok = 0;
	ih_damage *cur = NULL;

	if (!line)
		return -1;
	state_path(s, image, path, sizeof path);
	f = fopen(path, "r");
	if (!f) {
		free(line);
		return -1;
	}
	/* First the key: the record must be of this very file. */
	if (!fgets(line, LINE_MAX_LEN, f) || strcmp(line, STATE_MAGIC))
		goto out;
	while (fgets(line, LINE_MAX_LEN, f)) {
		unsigned k;
		unsigned long long size;
		long long mtime;
		if (sscanf(line, "part %u %llu %lld", &k, &size, &mtime) == 3) {
			if (k == 0 || k > s->w->nparts || s->w->parts[k - 1].size != size ||
			    s->w->parts[k - 1].mtime_ns != mtime)
				goto out;
			parts_ok++;
		} else if (sscanf(line, "scanned_at %lf", &out->scanned_at) == 1) {
			continue;
		} else if (!strncmp(line, "state ", 6)) {
			break;
		}
	}
	if (parts_ok != s->w->nparts)
		goto out;
	out->state = (ih_health)atoi(line + 6);
	ok = 1;

	/* Then what it found. */
	char when[32];
	time_t t = (time_t)out->scanned_at;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
	while (fgets(line, LINE_MAX_LEN, f)) {
		char hex[48];
		unsigned long long size;
		int reason, kind, sev;
		unsigned im;
		if (sscanf(line, "damage %47s %llu %d", hex, &size, &reason) == 3) {
			uint8_t sha1[20];
			char detail[160];
			cur = NULL;
			if (strlen(hex) != 40 || ih_sha1_from_hex(hex, sha1))
				continue;
			size_t *v = ih_blobindex_get(&s->w->index, sha1);
			const struct wim_blob *b = v ? &s->w->blobs[*v] : NULL;
			for (uint32_t i = 0; !b && i < s->w->image_count; i++)
				if (s->w->metadata[i] != SIZE_MAX &&
				    !memcmp(s->w->blobs[s->w->metadata[i]].sha1, sha1, 20))
					b = &s->w->blobs[s->w->metadata[i]];
			snprintf(detail, sizeof detail, "recorded by the full scan of %s: %.90s", when,
				 rest_after(line, 4));
			size_t before = d->n;
			cur = damage_add(d, s->w, sha1, b, (ih_reason)reason, detail);
			if (cur && !b)
				cur->size = size;
			if (d->n == before) /* already known: refs come only once */
				cur = NULL;
			if (!with_refs)
				cur = NULL;
		} else if (sscanf(line, "meta %u", &im) == 1 && cur) {
			cur->is_metadata = 1;
			add_image(cur, im);
		} else if (sscanf(line, "ref %u", &im) == 1 && cur) {
			damage_note_ref(d, im, cur->sha1, rest_after(line, 2));
			add_image(cur, im);
		} else if (sscanf(line, "problem %d %d", &kind, &sev) == 2 && pl) {
			const char *msg = rest_after(line, 3);
			int seen = 0;
			for (size_t i = 0; i < pl->n; i++)
				seen |= !strcmp(pl->v[i].message, msg);
			if (!seen)
				problem_add(pl, (ih_problem_kind)kind, (ih_health)sev, "%s", msg);
		}
	}
out:
	fclose(f);
	free(line);
	return ok ? 0 : -1;
}

static int write_record(FILE *f, const ih_session *s, uint32_t image, const ih_report *r,
			double when)
{
	fprintf(f, "%simage %u\n", STATE_MAGIC, image);
	for (unsigned k = 0; k < s->w->nparts; k++)
		fprintf(f, "part %u %llu %lld\n", k + 1, (unsigned long long)s->w->parts[k].size,
			(long long)s->w->parts[k].mtime_ns);
	fprintf(f, "scanned_at %.3f\nstate %d\n", when, (int)r->state);
	for (size_t i = 0; i < r->n_problems; i++) {
		fprintf(f, "problem %d %d ", (int)r->problems[i].kind, (int)r->problems[i].severity);
		put_escaped(f, r->problems[i].message);
		fputc('\n', f);
	}
	for (size_t k = 0; k < r->n_damage; k++) {
		const ih_damage *dm = &r->damage[k];
		int hits = dm->n_images == 0; /* blobs no image uses count everywhere */
		char hex[41];
		for (size_t m = 0; m < dm->n_images; m++)
			hits |= dm->images[m] == image;
		if (!hits)
			continue;
		ih_sha1_hex(dm->sha1, hex);
		fprintf(f, "damage %s %llu %d ", hex, (unsigned long long)dm->size, (int)dm->reason);
		put_escaped(f, dm->detail);
		fputc('\n', f);
		if (dm->is_metadata && dm->n_images)
			fprintf(f, "meta %u\n", dm->images[0]);
		for (size_t i = 0; i < dm->n_refs; i++) {
			if (dm->refs[i].image != image)
				continue;
			fprintf(f, "ref %u ", image);
			put_escaped(f, dm->refs[i].path);
			fputc('\n', f);
		}
	}
	return ferror(f) ? -1 : 0;
}

int state_save_report(const ih_session *s, const ih_report *r)
{
	double when = ih_wallclock();
	if (make_dirs(s->state_dir) < 0)
		return ih_errno_code(errno);
	for (uint32_t i = ih_session_first(s); i <= ih_session_last(s); i++) {
		char path[4200], tmp[4300];
		FILE *f;
		int fd, bad;
		state_path(s, i, path, sizeof path);
		fd = ih_mkstemp(path, ".", tmp, sizeof tmp);
		if (fd < 0)
			return ih_errno_code(errno);
		f = fdopen(fd, "w");
		if (!f) {
			close(fd);
			unlink(tmp);
			return IH_ERR_NOMEM;
		}
		bad = write_record(f, s, i, r, when) || fflush(f) || fsync(fileno(f));
		bad |= fclose(f) != 0;
		if (bad || rename(tmp, path)) {
			unlink(tmp);
			return IH_ERR_IO;
		}
	}
	return IH_OK;
}
