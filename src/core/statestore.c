/* statestore.c - what the last full scan of an exact file found, one small
 * text file per image, keyed by the WIM's GUID and each part's size and
 * mtime.  Written atomically (temporary file, fsync, rename); never inside
 * the image. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "session.h"
#include "util.h"

#define STATE_MAGIC "imagehealth-state 1"

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

void state_record_free(struct state_record *rec)
{
	free(rec->damage);
	memset(rec, 0, sizeof *rec);
}

int state_load(const ih_session *s, uint32_t image, struct state_record *rec)
{
	char path[4200], line[256];
	FILE *f;
	unsigned parts_ok = 0;
	int ok = 0;

	memset(rec, 0, sizeof *rec);
	state_path(s, image, path, sizeof path);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(line, sizeof line, f) || strncmp(line, STATE_MAGIC, strlen(STATE_MAGIC)))
		goto out;
	while (fgets(line, sizeof line, f)) {
		unsigned k;
		unsigned long long size, n1;
		long long mtime;
		char hex[64];
		int st;
		double t;
		if (sscanf(line, "part %u %llu %lld", &k, &size, &mtime) == 3) {
			if (k == 0 || k > s->w->nparts || s->w->parts[k - 1].size != size ||
			    s->w->parts[k - 1].mtime_ns != mtime)
				goto out; /* another file, or changed since */
			parts_ok++;
		} else if (sscanf(line, "scanned_at %lf", &t) == 1) {
			rec->scanned_at = t;
		} else if (sscanf(line, "state %d", &st) == 1) {
			rec->state = (ih_health)st;
		} else if (sscanf(line, "damage %63s %llu %d", hex, &n1, &st) == 3) {
			struct recorded_damage *nd = realloc(rec->damage, (rec->n + 1) * sizeof *nd);
			if (!nd || strlen(hex) != 40 || ih_sha1_from_hex(hex, nd[rec->n].sha1)) {
				if (nd)
					rec->damage = nd;
				goto out;
			}
			rec->damage = nd;
			nd[rec->n].size = n1;
			nd[rec->n].reason = (ih_reason)st;
			rec->n++;
		}
	}
	ok = parts_ok == s->w->nparts;
out:
	fclose(f);
	if (!ok)
		state_record_free(rec);
	return ok ? 0 : -1;
}

int state_save(const ih_session *s, uint32_t image, const struct state_record *rec,
	       ih_error *err)
{
	char path[4200], tmp[4300];
	FILE *f;
	int fd;

	if (make_dirs(s->state_dir) < 0)
		return ih_fail(err, ih_errno_code(errno), "cannot create state directory %s: %s",
			       s->state_dir, strerror(errno));
	state_path(s, image, path, sizeof path);
	snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
	fd = mkstemp(tmp);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return ih_fail(err, ih_errno_code(e), "cannot write %s: %s", tmp, strerror(e));
	}
	fprintf(f, "%s\nimage %u\n", STATE_MAGIC, image);
	for (unsigned k = 0; k < s->w->nparts; k++)
		fprintf(f, "part %u %llu %lld\n", k + 1, (unsigned long long)s->w->parts[k].size,
			(long long)s->w->parts[k].mtime_ns);
	fprintf(f, "scanned_at %.3f\nstate %d\n", rec->scanned_at, (int)rec->state);
	for (size_t i = 0; i < rec->n; i++) {
		char hex[41];
		ih_sha1_hex(rec->damage[i].sha1, hex);
		fprintf(f, "damage %s %llu %d\n", hex, (unsigned long long)rec->damage[i].size,
			(int)rec->damage[i].reason);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		int e = errno;
		fclose(f);
		unlink(tmp);
		return ih_fail(err, ih_errno_code(e), "cannot write %s: %s", tmp, strerror(e));
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return ih_fail(err, ih_errno_code(e), "cannot write %s: %s", path, strerror(e));
	}
	return IH_OK;
}

int state_save_report(const ih_session *s, const ih_report *r)
{
	int rc = IH_OK;
	for (uint32_t i = ih_session_first(s); i <= ih_session_last(s) && rc == IH_OK; i++) {
		struct state_record rec = {.state = r->state, .scanned_at = ih_wallclock()};
		rec.damage = calloc(r->n_damage + 1, sizeof *rec.damage);
		if (!rec.damage)
			return IH_ERR_NOMEM;
		for (size_t k = 0; k < r->n_damage; k++) {
			const ih_damage *dm = &r->damage[k];
			int hits = dm->n_images == 0; /* blobs no image uses count everywhere */
			for (size_t m = 0; m < dm->n_images; m++)
				hits |= dm->images[m] == i;
			if (!hits)
				continue;
			memcpy(rec.damage[rec.n].sha1, dm->sha1, 20);
			rec.damage[rec.n].size = dm->size;
			rec.damage[rec.n].reason = dm->reason;
			rec.n++;
		}
		rc = state_save(s, i, &rec, NULL);
		state_record_free(&rec);
	}
	return rc;
}
