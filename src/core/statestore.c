/* statestore.c - what the last full scan of an exact file found, one small
 * file per image, keyed by the WIM's GUID and each part's size and mtime.
 * Written atomically (temporary file, fsync, rename); never inside the
 * image.  A record is a cache, never a proof: it is read only from a
 * directory the caller owns and nobody else may write, only when it is a
 * regular file of the caller's that nobody else may write, and only when
 * its checksum matches and all of it parses; else it is ignored whole.
 *
 *   imagehealth-state 4
 *   image N
 *   part K SIZE MTIME_NS          one per part; all must match the file
 *   scanned_at UNIX_TIME
 *   state 0|1|2
 *   layout HEX                    SHA-256 of the raw headers and blob tables
 *   metaraw HEX|-                 SHA-256 of image N's raw metadata resource
 *   problem KIND SEVERITY TEXT    problems the scan found
 *   damage SHA1 SIZE REASON TEXT  a damaged blob, then its uses in image N:
 *   meta IMAGE                      it is that image's metadata resource
 *   ref IMAGE TEXT                  a file using it (TEXT is its path)
 *   end
 *   sha256 HEX                    of every byte before this line
 *
 * TEXT is LENGTH:BYTES (decimal length, then exactly that many bytes, no
 * NUL): a field of any length and content cannot be read as anything else.
 * Every line ends with '\n' right after its last field.
 *
 * The quick check takes a record's findings without decoding any metadata
 * when layout and metaraw match the file as it is now.
 *
 * Beside them, one fingerprint record per file (GUID-HASH.fingerprints), kept
 * after a full scan of every blob (and of nothing else: it is a cache of
 * that scan), in the same encoding:
 *
 *   imagehealth-fingerprints 1
 *   part K SIZE MTIME_NS          one per part; sizes must match the file
 *   layout HEX
 *   scanned_at UNIX_TIME
 *   chunk BYTES
 *   fp HEX                        SHA-256 of each chunk, parts in order
 *   damage SHA1 REASON TEXT       each blob the scan found damaged
 *   badint PART ENTRY             each integrity chunk that did not match
 *   end
 *   sha256 HEX */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "fingerprint.h"
#include "session.h"
#include "util.h"

#define STATE_MAGIC "imagehealth-state 4\n"
#define FP_MAGIC "imagehealth-fingerprints 1\n"
/* A record holds damaged paths: bounded so a planted one cannot take
 * memory without end (a few hundred thousand paths fit). */
#define RECORD_MAX ((off_t)128 << 20)

/* GUID, then a hash of the file's real path: copies of one image (same
 * GUID) in different places keep records of their own.  The name only,
 * relative to the state directory. */
static void state_name(const ih_session *s, uint32_t image, char *buf, size_t len)
{
	char guid[33], *real = realpath(s->w->path, NULL);
	const char *p = real ? real : s->w->path;
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
	for (int i = 0; i < 16; i++)
		snprintf(guid + 2 * i, 3, "%02x", s->w->hdr.guid[i]);
	for (; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
	free(real);
	if (image == 0) /* the whole file's fingerprint record */
		snprintf(buf, len, "%s-%016llx.fingerprints", guid, (unsigned long long)h);
	else
		snprintf(buf, len, "%s-%016llx-%u.state", guid, (unsigned long long)h, image);
}

/* mkdir -p */
static int make_dirs(const char *dir)
{
	char buf[4096];
	if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) {
		errno = ENAMETOOLONG;
		return -1;
	}
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

/* Whether st may hold what we trust: ours (or root's, for the directories
 * above), and nobody else may write it, unless it is a sticky directory
 * (like /tmp) where others cannot rename or remove what is ours. */
static int owned_safely(const struct stat *st, int allow_root, int allow_sticky)
{
	uid_t me = geteuid();
	if (st->st_uid != me && !(allow_root && st->st_uid == 0))
		return 0;
	if (!(st->st_mode & (S_IWGRP | S_IWOTH)))
		return 1;
	return allow_sticky && S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX);
}

/* Opens the state directory if it is one records may live in: the
 * directory itself the caller's and writable by nobody else, every
 * directory above it root's or the caller's and not writable by others
 * (sticky ones aside).  Returns an fd, or -1 with *note set. */
static int open_state_dir(const ih_session *s, int create, const char **note)
{
	static const char unsafe[] =
		"the state directory is not the caller's own or others may write to it: "
		"no record was read or kept";
	if (!s->state_dir) {
		*note = s->state_note;
		return -1;
	}
	if (create && make_dirs(s->state_dir) < 0) {
		*note = "the state directory could not be created: no record was kept";
		return -1;
	}
	char *real = realpath(s->state_dir, NULL);
	if (!real)
		return -1; /* no directory yet: simply no record */
	int fd = open(real, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	int ok = fd >= 0 && fstat(fd, &st) == 0 && owned_safely(&st, 0, 0);
	for (char *p = strrchr(real, '/'); ok && p; p = strrchr(real, '/')) {
		*p = '\0';
		ok = stat(*real ? real : "/", &st) == 0 && owned_safely(&st, 1, 1);
		if (!*real)
			break;
	}
	free(real);
	if (!ok) {
		if (fd >= 0)
			close(fd);
		*note = unsafe;
		return -1;
	}
	return fd;
}

int state_dir_open(const ih_session *s, int create, const char **note)
{
	return open_state_dir(s, create, note);
}

static void put_text(FILE *f, const char *s)
{
	fprintf(f, "%zu:%s", strlen(s), s);
}

/* ------------------------------------------------------------ parsing */

struct cur {
	const char *p, *end;
};

/* The next space-separated word (no spaces, no newline) into buf. */
static int get_word(struct cur *c, char *buf, size_t len)
{
	size_t n = 0;
	while (c->p < c->end && *c->p != ' ' && *c->p != '\n') {
		if (n + 1 >= len)
			return -1;
		buf[n++] = *c->p++;
	}
	buf[n] = '\0';
	return n ? 0 : -1;
}

/* A separator: ' ' between fields, '\n' after the last. */
static int get_sep(struct cur *c, char want)
{
	if (c->p >= c->end || *c->p != want)
		return -1;
	c->p++;
	return 0;
}

static int get_u64(struct cur *c, uint64_t *v)
{
	char w[24], *e;
	if (get_word(c, w, sizeof w) || w[0] == '-')
		return -1;
	errno = 0;
	*v = strtoull(w, &e, 10);
	return *e || errno ? -1 : 0;
}

static int get_i64(struct cur *c, int64_t *v)
{
	char w[24], *e;
	if (get_word(c, w, sizeof w))
		return -1;
	errno = 0;
	*v = strtoll(w, &e, 10);
	return *e || errno ? -1 : 0;
}

/* 64 hex digits. */
static int get_hash(struct cur *c, uint8_t out[FP_LEN])
{
	if (c->end - c->p < 2 * FP_LEN)
		return -1;
	for (int i = 0; i < 2 * FP_LEN; i++) {
		char ch = c->p[i];
		int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
		if (v < 0)
			return -1;
		if (i % 2)
			out[i / 2] = (uint8_t)(out[i / 2] | v);
		else
			out[i / 2] = (uint8_t)(v << 4);
	}
	c->p += 2 * FP_LEN;
	if (c->p < c->end && *c->p != ' ' && *c->p != '\n')
		return -1;
	return 0;
}

static void put_hash(FILE *f, const uint8_t h[FP_LEN])
{
	for (int i = 0; i < FP_LEN; i++)
		fprintf(f, "%02x", h[i]);
}

/* LENGTH:BYTES into a fresh NUL-terminated string (NULL when only
 * checking). */
static int get_text(struct cur *c, char **out)
{
	uint64_t n = 0;
	const char *p = c->p;
	while (p < c->end && *p >= '0' && *p <= '9' && n < ((uint64_t)1 << 40))
		n = n * 10 + (uint64_t)(*p++ - '0');
	if (p == c->p || p >= c->end || *p != ':' || n > (uint64_t)(c->end - p - 1))
		return -1;
	p++;
	if (memchr(p, '\0', (size_t)n))
		return -1;
	if (out) {
		*out = malloc((size_t)n + 1);
		if (!*out)
			return IH_ERR_NOMEM;
		memcpy(*out, p, (size_t)n);
		(*out)[n] = '\0';
	}
	c->p = p + n;
	return 0;
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

/* What parse_record found. */
enum { REC_OK, REC_OTHER_FILE, REC_BAD, REC_NOMEM };

static int line_end(struct cur *c)
{
	return get_sep(c, '\n');
}

/* The tag of a record's next body line, its separator consumed: 1, or 0
 * at "end" (which must close the record), or -1 when malformed. */
static int next_tag(struct cur *c, char *tag, size_t len)
{
	if (get_word(c, tag, len))
		return -1;
	if (!strcmp(tag, "end"))
		return line_end(c) || c->p != c->end ? -1 : 0;
	return get_sep(c, ' ') ? -1 : 1;
}

/* Checks (apply 0) or takes in (apply 1) the body of a record whose
 * checksum matched.  A body that does not parse to its very end is
 * REC_BAD; with apply the body has already been checked. */
static int parse_record(const ih_session *s, uint32_t image, struct cur c, int apply,
			int with_refs, struct damage_set *d, struct problem_list *pl,
			struct state_recall *out)
{
	const struct wim *w = s->w;
	char tag[16], word[48], when[32];
	uint64_t u, v, size;
	int64_t mtime;
	int other = 0;
	ih_damage *cur = NULL;

	if ((size_t)(c.end - c.p) < sizeof STATE_MAGIC - 1 ||
	    memcmp(c.p, STATE_MAGIC, sizeof STATE_MAGIC - 1))
		return REC_BAD;
	c.p += sizeof STATE_MAGIC - 1;
	/* The key: this image, and every part as it is now. */
	if (get_word(&c, tag, sizeof tag) || strcmp(tag, "image") || get_sep(&c, ' ') ||
	    get_u64(&c, &u) || line_end(&c))
		return REC_BAD;
	other |= u != image;
	for (unsigned k = 0; k < w->nparts; k++) {
		if (get_word(&c, tag, sizeof tag) || strcmp(tag, "part") || get_sep(&c, ' ') ||
		    get_u64(&c, &u) || get_sep(&c, ' ') || get_u64(&c, &size) || get_sep(&c, ' ') ||
		    get_i64(&c, &mtime) || line_end(&c))
			return REC_BAD;
		other |= u != k + 1 || size != w->parts[k].size || mtime != w->parts[k].mtime_ns;
	}
	if (get_word(&c, tag, sizeof tag) || strcmp(tag, "scanned_at") || get_sep(&c, ' ') ||
	    get_word(&c, word, sizeof word) || line_end(&c))
		return REC_BAD;
	char *e;
	double at = strtod(word, &e);
	if (*e || !(at >= 0 && at < 1e12))
		return REC_BAD;
	if (get_word(&c, tag, sizeof tag) || strcmp(tag, "state") || get_sep(&c, ' ') ||
	    get_u64(&c, &u) || u > IH_NONREPAIRABLE || line_end(&c))
		return REC_BAD;
	if (apply) {
		out->scanned_at = at;
		out->state = (ih_health)u;
	}
	uint8_t layout[FP_LEN], metaraw[FP_LEN];
	int have_metaraw = 0;
	if (get_word(&c, tag, sizeof tag) || strcmp(tag, "layout") || get_sep(&c, ' ') ||
	    get_hash(&c, layout) || line_end(&c))
		return REC_BAD;
	if (get_word(&c, tag, sizeof tag) || strcmp(tag, "metaraw") || get_sep(&c, ' '))
		return REC_BAD;
	if (c.p < c.end && *c.p == '-')
		c.p++;
	else if (get_hash(&c, metaraw))
		return REC_BAD;
	else
		have_metaraw = 1;
	if (line_end(&c))
		return REC_BAD;
	if (apply) {
		memcpy(out->layout, layout, FP_LEN);
		memcpy(out->metaraw, metaraw, FP_LEN);
		out->have_metaraw = have_metaraw;
	}
	time_t t = (time_t)at;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);

	/* Then what it found, up to "end". */
	for (;;) {
		char *text = NULL;
		int rc = REC_OK;
		int t = next_tag(&c, tag, sizeof tag);
		if (t < 0)
			return REC_BAD;
		if (t == 0)
			break;
		if (!strcmp(tag, "problem")) {
			if (get_u64(&c, &u) || u > 255 || get_sep(&c, ' ') || get_u64(&c, &v) ||
			    v > IH_NONREPAIRABLE || get_sep(&c, ' '))
				return REC_BAD;
			if ((rc = get_text(&c, apply && pl ? &text : NULL)))
				return rc == IH_ERR_NOMEM ? REC_NOMEM : REC_BAD;
			if (text) {
				int seen = 0;
				for (size_t i = 0; i < pl->n; i++)
					seen |= !strcmp(pl->v[i].message, text);
				if (!seen)
					problem_add(pl, (ih_problem_kind)u, (ih_health)v, "%s", text);
			}
		} else if (!strcmp(tag, "damage")) {
			uint8_t sha1[20];
			if (get_word(&c, word, sizeof word) || strlen(word) != 40 ||
			    ih_sha1_from_hex(word, sha1) || get_sep(&c, ' ') || get_u64(&c, &size) ||
			    get_sep(&c, ' ') || get_u64(&c, &u) || u > 255 || get_sep(&c, ' '))
				return REC_BAD;
			if ((rc = get_text(&c, apply ? &text : NULL)))
				return rc == IH_ERR_NOMEM ? REC_NOMEM : REC_BAD;
			if (apply) {
				char detail[160];
				const struct wim_blob *b = wim_find_blob(w, sha1);
				snprintf(detail, sizeof detail, "recorded by the full scan of %s: %.90s",
					 when, text);
				cur = damage_add(d, w, sha1, b, (ih_reason)u, detail);
				if (!cur && !d->oom) {
					/* known already (another image's record, or the
					 * scan): this record's refs are this image's */
					size_t *v = ih_blobindex_get(&d->idx, sha1);
					cur = v ? &d->v[*v] : NULL;
				} else if (cur && !b) {
					cur->size = size;
				}
				if (!cur) {
					free(text);
					return REC_NOMEM;
				}
				if (!with_refs)
					cur = NULL;
			}
		} else if (!strcmp(tag, "meta")) {
			if (get_u64(&c, &u) || u > UINT32_MAX)
				return REC_BAD;
			if (cur) {
				cur->is_metadata = 1;
				if (add_image(cur, (uint32_t)u))
					return REC_NOMEM;
			}
		} else if (!strcmp(tag, "ref")) {
			if (get_u64(&c, &u) || u > UINT32_MAX || get_sep(&c, ' '))
				return REC_BAD;
			if ((rc = get_text(&c, apply && cur ? &text : NULL)))
				return rc == IH_ERR_NOMEM ? REC_NOMEM : REC_BAD;
			if (text && (damage_note_ref(d, (uint32_t)u, cur->sha1, text) ||
				     add_image(cur, (uint32_t)u))) {
				free(text);
				return REC_NOMEM;
			}
		} else {
			return REC_BAD;
		}
		free(text);
		if (line_end(&c))
			return REC_BAD;
	}
	return other ? REC_OTHER_FILE : REC_OK;
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256(data, len, md);
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

#define SUM_LINE_LEN (7 + 64 + 1) /* "sha256 " HEX "\n" */

/* The whole record file, if it is one we may trust: a regular file of the
 * caller's that nobody else may write (opened without following links and
 * without blocking, so a FIFO or a device cannot hang us).  0, or
 * STATE_NO_RECORD (*note may say why), or IH_ERR_NOMEM. */
static int read_record(const ih_session *s, uint32_t image, char **buf, size_t *len,
		       const char **note)
{
	char name[128];
	struct stat st;
	int dfd = open_state_dir(s, 0, note), fd, rc = STATE_NO_RECORD;
	if (dfd < 0)
		return STATE_NO_RECORD;
	state_name(s, image, name, sizeof name);
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	close(dfd);
	if (fd < 0) {
		if (errno != ENOENT)
			*note = "a state record could not be opened (a link, or no access): ignored";
		return STATE_NO_RECORD;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		*note = "a state record is not a regular file: ignored";
	} else if (!owned_safely(&st, 0, 0)) {
		*note = "a state record is not the caller's own or others may write to it: ignored";
	} else if (st.st_size > RECORD_MAX) {
		*note = "a state record is larger than any record written: ignored";
	} else {
		*buf = ih_test_nomem() ? NULL : malloc((size_t)st.st_size + 1);
		*len = 0;
		rc = *buf ? IH_OK : IH_ERR_NOMEM;
		while (rc == IH_OK && *len < (size_t)st.st_size) {
			ssize_t n = read(fd, *buf + *len, (size_t)st.st_size - *len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				rc = STATE_NO_RECORD;
			else
				*len += (size_t)n;
		}
		if (rc != IH_OK) {
			free(*buf);
			*buf = NULL;
		}
	}
	close(fd);
	return rc;
}

int state_recall(const ih_session *s, uint32_t image, int with_refs, struct damage_set *d,
		 struct problem_list *pl, struct state_recall *out)
{
	static const char damaged[] =
		"a state record is damaged (its checksum or format is wrong): ignored";
	char *buf = NULL, hex[65];
	size_t len = 0;
	int rc = read_record(s, image, &buf, &len, &out->note);
	if (rc != IH_OK)
		return rc;
	/* The checksum first: one flipped byte anywhere and nothing is used. */
	rc = REC_BAD;
	if (len >= SUM_LINE_LEN && !memcmp(buf + len - SUM_LINE_LEN, "sha256 ", 7) &&
	    buf[len - 1] == '\n') {
		sha256_hex(buf, len - SUM_LINE_LEN, hex);
		if (!memcmp(buf + len - SUM_LINE_LEN + 7, hex, 64)) {
			struct cur c = {buf, buf + len - SUM_LINE_LEN};
			/* Then all of it must parse before any of it is used. */
			rc = parse_record(s, image, c, 0, with_refs, d, pl, out);
			if (rc == REC_OK)
				rc = parse_record(s, image, c, 1, with_refs, d, pl, out);
		}
	}
	free(buf);
	if (rc == REC_BAD)
		out->note = damaged;
	return rc == REC_OK ? IH_OK : rc == REC_NOMEM ? IH_ERR_NOMEM : STATE_NO_RECORD;
}

static void write_record(FILE *f, const ih_session *s, uint32_t image, const ih_report *r,
			 double when, const uint8_t layout[FP_LEN], const uint8_t *metaraw)
{
	fprintf(f, "%simage %u\n", STATE_MAGIC, image);
	for (unsigned k = 0; k < s->w->nparts; k++)
		fprintf(f, "part %u %llu %lld\n", k + 1, (unsigned long long)s->w->parts[k].size,
			(long long)s->w->parts[k].mtime_ns);
	fprintf(f, "scanned_at %.3f\nstate %d\nlayout ", when, (int)r->state);
	put_hash(f, layout);
	fputs("\nmetaraw ", f);
	if (metaraw)
		put_hash(f, metaraw);
	else
		fputc('-', f);
	fputc('\n', f);
	for (size_t i = 0; i < r->n_problems; i++) {
		fprintf(f, "problem %d %d ", (int)r->problems[i].kind, (int)r->problems[i].severity);
		put_text(f, r->problems[i].message);
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
		put_text(f, dm->detail);
		fputc('\n', f);
		if (dm->is_metadata && dm->n_images)
			fprintf(f, "meta %u\n", dm->images[0]);
		for (size_t i = 0; i < dm->n_refs; i++) {
			if (dm->refs[i].image != image)
				continue;
			fprintf(f, "ref %u ", image);
			put_text(f, dm->refs[i].path);
			fputc('\n', f);
		}
	}
	fputs("end\n", f);
}

/* Writes a record body made in memory, its checksum after it, atomically. */
static int save_body(int dfd, const ih_session *s, uint32_t image, char *body, size_t len)
{
	char name[128], tmp[160], hex[65];
	sha256_hex(body, len, hex);
	state_name(s, image, name, sizeof name);
	int fd = ih_create_tmp_at(dfd, name, tmp, sizeof tmp);
	if (fd < 0) {
		free(body);
		return ih_errno_code(errno);
	}
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlinkat(dfd, tmp, 0);
		free(body);
		return IH_ERR_NOMEM;
	}
	int bad = fwrite(body, 1, len, f) != len;
	bad |= fprintf(f, "sha256 %s\n", hex) < 0;
	bad |= fflush(f) || fsync(fileno(f));
	bad |= fclose(f) != 0;
	free(body);
	if (bad || renameat(dfd, tmp, dfd, name)) {
		unlinkat(dfd, tmp, 0);
		return IH_ERR_IO;
	}
	return IH_OK;
}

/* One image's record. */
static int save_one(int dfd, const ih_session *s, uint32_t image, const ih_report *r,
		    double when, const uint8_t layout[FP_LEN])
{
	char *body = NULL;
	size_t len = 0;
	uint8_t metaraw[FP_LEN];
	int have_meta = fp_metadata_hash(s->w, image, metaraw) == 0;
	FILE *m = open_memstream(&body, &len);
	if (!m)
		return IH_ERR_NOMEM;
	write_record(m, s, image, r, when, layout, have_meta ? metaraw : NULL);
	if (fclose(m)) {
		free(body);
		return IH_ERR_NOMEM;
	}
	return save_body(dfd, s, image, body, len);
}

int state_save_report_note(const ih_session *s, const ih_report *r, const char **note)
{
	const char *why = NULL;
	double when = ih_wallclock();
	uint8_t layout[FP_LEN];
	int dfd = open_state_dir(s, 1, &why), rc = IH_OK;
	if (note)
		*note = why;
	if (dfd < 0)
		return IH_ERR_ACCESS;
	fp_layout_hash(s->w, layout);
	for (uint32_t i = ih_session_first(s); i <= ih_session_last(s) && rc == IH_OK; i++)
		rc = save_one(dfd, s, i, r, when, layout);
	close(dfd);
	return rc;
}

/* ------------------------------------------------ fingerprint records */

int state_fp_save(const ih_session *s, const struct fp_record *rec)
{
	const char *why = NULL;
	char *body = NULL;
	size_t len = 0;
	int dfd, rc;
	FILE *f;

	if (rec->fps.nparts != s->w->nparts)
		return IH_ERR_INVALID_ARG;
	if ((dfd = open_state_dir(s, 1, &why)) < 0)
		return IH_ERR_ACCESS;
	if (!(f = open_memstream(&body, &len))) {
		close(dfd);
		return IH_ERR_NOMEM;
	}
	fputs(FP_MAGIC, f);
	for (unsigned k = 0; k < s->w->nparts; k++)
		fprintf(f, "part %u %llu %lld\n", k + 1, (unsigned long long)s->w->parts[k].size,
			(long long)s->w->parts[k].mtime_ns);
	fputs("layout ", f);
	put_hash(f, rec->layout);
	fprintf(f, "\nscanned_at %.3f\nchunk %u\n", rec->scanned_at, rec->fps.chunk);
	for (uint64_t i = 0; i < rec->fps.first[rec->fps.nparts]; i++) {
		fputs("fp ", f);
		put_hash(f, rec->fps.fp[i]);
		fputc('\n', f);
	}
	for (size_t i = 0; i < rec->ndmg; i++) {
		char hex[41];
		ih_sha1_hex(rec->dmg[i].sha1, hex);
		fprintf(f, "damage %s %d ", hex, (int)rec->dmg[i].reason);
		put_text(f, rec->dmg[i].detail);
		fputc('\n', f);
	}
	for (size_t i = 0; i < rec->nbad; i++)
		fprintf(f, "badint %u %u\n", rec->bad[i].part, rec->bad[i].entry);
	fputs("end\n", f);
	if (fclose(f)) {
		free(body);
		close(dfd);
		return IH_ERR_NOMEM;
	}
	rc = save_body(dfd, s, 0, body, len);
	close(dfd);
	return rc;
}

/* Appends to a growing array (doubling). */
static int grow(void *pp, size_t *cap, size_t n, size_t elem)
{
	void **p = pp;
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 16;
	void *np = realloc(*p, nc * elem);
	if (!np)
		return -1;
	*p = np;
	*cap = nc;
	return 0;
}

static int parse_fp_record(const ih_session *s, struct cur c, struct fp_record *rec)
{
	const struct wim *w = s->w;
	char tag[16], word[48], *e;
	uint64_t u, v, size;
	int64_t mtime;
	size_t dcap = 0, bcap = 0;
	uint64_t nfp = 0;

	if ((size_t)(c.end - c.p) < sizeof FP_MAGIC - 1 || memcmp(c.p, FP_MAGIC, sizeof FP_MAGIC - 1))
		return REC_BAD;
	c.p += sizeof FP_MAGIC - 1;
	for (unsigned k = 0; k < w->nparts; k++) {
		if (get_word(&c, tag, sizeof tag) || strcmp(tag, "part") || get_sep(&c, ' ') ||
		    get_u64(&c, &u) || get_sep(&c, ' ') || get_u64(&c, &size) || get_sep(&c, ' ') ||
		    get_i64(&c, &mtime) || line_end(&c))
			return REC_BAD;
		if (u != k + 1 || size != w->parts[k].size)
			return REC_OTHER_FILE; /* another size: another file */
	}
	if (get_word(&c, tag, sizeof tag) || strcmp(tag, "layout") || get_sep(&c, ' ') ||
	    get_hash(&c, rec->layout) || line_end(&c))
		return REC_BAD;
	if (get_word(&c, tag, sizeof tag) || strcmp(tag, "scanned_at") || get_sep(&c, ' ') ||
	    get_word(&c, word, sizeof word) || line_end(&c))
		return REC_BAD;
	rec->scanned_at = strtod(word, &e);
	if (*e || !(rec->scanned_at >= 0 && rec->scanned_at < 1e12))
		return REC_BAD;
	if (get_word(&c, tag, sizeof tag) || strcmp(tag, "chunk") || get_sep(&c, ' ') ||
	    get_u64(&c, &u) || u < (64u << 10) || u > (1u << 30) || line_end(&c))
		return REC_BAD;
	if (fp_set_alloc(&rec->fps, w, (uint32_t)u))
		return REC_NOMEM;
	for (;;) {
		int t = next_tag(&c, tag, sizeof tag);
		if (t < 0)
			return REC_BAD;
		if (t == 0)
			break;
		if (!strcmp(tag, "fp")) {
			if (nfp >= rec->fps.first[w->nparts] || get_hash(&c, rec->fps.fp[nfp]))
				return REC_BAD;
			nfp++;
		} else if (!strcmp(tag, "damage")) {
			char *text = NULL;
			int rc;
			if (grow(&rec->dmg, &dcap, rec->ndmg, sizeof *rec->dmg))
				return REC_NOMEM;
			struct fp_damage *dm = &rec->dmg[rec->ndmg];
			if (get_word(&c, word, sizeof word) || strlen(word) != 40 ||
			    ih_sha1_from_hex(word, dm->sha1) || get_sep(&c, ' ') || get_u64(&c, &u) ||
			    u < IH_REASON_HASH_MISMATCH || u > IH_REASON_BAD_ENTRY || get_sep(&c, ' '))
				return REC_BAD;
			if ((rc = get_text(&c, &text)))
				return rc == IH_ERR_NOMEM ? REC_NOMEM : REC_BAD;
			dm->reason = (ih_reason)u;
			snprintf(dm->detail, sizeof dm->detail, "%s", text);
			free(text);
			rec->ndmg++;
		} else if (!strcmp(tag, "badint")) {
			if (get_u64(&c, &u) || u < 1 || u > w->nparts || get_sep(&c, ' ') ||
			    get_u64(&c, &v) || v > UINT32_MAX)
				return REC_BAD;
			if (grow(&rec->bad, &bcap, rec->nbad, sizeof *rec->bad))
				return REC_NOMEM;
			rec->bad[rec->nbad++] = (struct fp_bad_int){(uint16_t)u, (uint32_t)v};
		} else {
			return REC_BAD;
		}
		if (line_end(&c))
			return REC_BAD;
	}
	return nfp == rec->fps.first[w->nparts] ? REC_OK : REC_BAD;
}

int state_fp_load(const ih_session *s, struct fp_record *rec, const char **note)
{
	char *buf = NULL, hex[65];
	size_t len = 0;
	int rc = read_record(s, 0, &buf, &len, note);
	memset(rec, 0, sizeof *rec);
	if (rc != IH_OK)
		return rc;
	rc = REC_BAD;
	if (len >= SUM_LINE_LEN && !memcmp(buf + len - SUM_LINE_LEN, "sha256 ", 7) &&
	    buf[len - 1] == '\n') {
		sha256_hex(buf, len - SUM_LINE_LEN, hex);
		if (!memcmp(buf + len - SUM_LINE_LEN + 7, hex, 64))
			rc = parse_fp_record(s, (struct cur){buf, buf + len - SUM_LINE_LEN}, rec);
	}
	free(buf);
	if (rc == REC_BAD)
		*note = "the fingerprint record is damaged (its checksum or format is wrong): "
			"ignored";
	else if (rc == REC_OTHER_FILE)
		*note = "the file's size changed since its fingerprints were recorded";
	if (rc != REC_OK)
		fp_record_free(rec);
	return rc == REC_OK ? IH_OK : rc == REC_NOMEM ? IH_ERR_NOMEM : STATE_NO_RECORD;
}

int state_save_report(const ih_session *s, const ih_report *r)
{
	return state_save_report_note(s, r, NULL);
}
