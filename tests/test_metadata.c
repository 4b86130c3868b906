/* test_metadata.c - the metadata walker against wimlib on a real capture
 * (paths, stream hashes, counts), on hand-built trees for the rules wimlib
 * applies, and on hostile buffers: every truncation, random damage, cycles,
 * depth; and random damage cross-checked with `wimlib-imagex dir`. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "metadata.h"
#include "sha1.h"
#include "testutil.h"
#include "wimtest.h"
#include "util.h"

/* ------------------------------------------------------------- helpers */


static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b = NULL;
	*len = 0;
	if (!f)
		return NULL;
	for (;;) {
		uint8_t *nb = realloc(b, *len + 65536);
		if (!nb)
			break;
		b = nb;
		size_t n = fread(b + *len, 1, 65536, f);
		*len += n;
		if (n < 65536)
			break;
	}
	fclose(f);
	return b;
}

static int spit(const char *path, const void *b, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	int ok = fwrite(b, 1, len, f) == len;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static void write_text(const char *dir, const char *name, const char *text)
{
	char p[1024];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	spit(p, text, strlen(text));
}

/* A list of strings, for comparing path sets. */
struct strs {
	char **v;
	size_t n, cap;
};

static void strs_add(struct strs *s, const char *str)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->v = realloc(s->v, s->cap * sizeof *s->v);
	}
	s->v[s->n++] = strdup(str);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void strs_sort(struct strs *s)
{
	if (s->n)
		qsort(s->v, s->n, sizeof *s->v, cmp_str);
}

static void strs_free(struct strs *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof *s);
}

static int strs_equal(const struct strs *a, const struct strs *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i], b->v[i]))
			return 0;
	return 1;
}

/* Lines a command prints; returns its exit status. */
static int command_lines(const char *cmd, struct strs *out)
{
	FILE *p = popen(cmd, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	if (!p)
		return -1;
	while ((n = getline(&line, &cap, p)) >= 0) {
		if (n && line[n - 1] == '\n')
			line[--n] = '\0';
		strs_add(out, line);
	}
	free(line);
	return pclose(p);
}

static void hex20(const uint8_t h[20], char out[41])
{
	for (int i = 0; i < 20; i++)
		sprintf(out + 2 * i, "%02x", h[i]);
}

/* Callbacks that record "path" and "path\thash\tnamed". */
static int record_entry(void *ctx, const char *path, uint32_t attributes)
{
	(void)attributes;
	strs_add(&((struct strs *)ctx)[0], path);
	return 0;
}

static int record_stream(void *ctx, const uint8_t sha1[20], const char *path, int named)
{
	char line[8192], hex[41];
	hex20(sha1, hex);
	snprintf(line, sizeof line, "%s\t%s\t%d", path, hex, named);
	strs_add(&((struct strs *)ctx)[1], line);
	return 0;
}

/* Walks buf recording entries (rec[0]) and streams (rec[1]). */
static int walk_record(const uint8_t *buf, size_t len, struct strs rec[2], ih_meta_stats *st,
		       char *why, size_t whylen)
{
	return ih_meta_walk2(buf, len, record_entry, record_stream, rec, st, why, whylen);
}

/* ------------------------------------------------------------- real WIM */

struct meta_loc {
	size_t off, size;     /* the resource in the file (uncompressed) */
	size_t entry;         /* its blob table entry, to patch the SHA-1 */
};

/* Finds image 1's metadata resource in an uncompressed WIM. */
static int find_metadata(const uint8_t *w, size_t wlen, struct meta_loc *m)
{
	if (wlen < 208 || memcmp(w, "MSWIM\0\0\0", 8))
		return -1;
	uint64_t tsize = get_le64(w + 0x30) & 0x00FFFFFFFFFFFFFFULL;
	uint64_t toff = get_le64(w + 0x38);
	if (toff > wlen || tsize > wlen - toff)
		return -1;
	for (uint64_t e = toff; e + 50 <= toff + tsize; e += 50) {
		uint8_t flags = w[e + 7];
		uint64_t size = get_le64(w + e) & 0x00FFFFFFFFFFFFFFULL;
		uint64_t off = get_le64(w + e + 8);
		if (!(flags & 0x02))
			continue;
		if ((flags & 0x04) || off > wlen || size > wlen - off)
			return -1;
		*m = (struct meta_loc){off, size, e};
		return 0;
	}
	return -1;
}

static void make_tree(const char *dir)
{
	char p[1024];
	snprintf(p, sizeof p, "%s/sub/deeper", dir);
	tsh("mkdir -p '%s' '%s/empty dir'", p, dir);
	write_text(dir, "a.txt", "hello\n");
	write_text(dir, "emptyfile", "");
	write_text(dir, "sub/b.bin", "some data\n");
	write_text(dir, "sub/deeper/d", "deep\n");
	write_text(dir, "h\xc3\xa9llo w\xc3\xb6rld.txt", "accents\n");
	write_text(dir, "sub/\xf0\x9f\x98\x80 emoji", "emoji\n");
	write_text(dir, "same1", "same\n");
	write_text(dir, "sub/same2", "same\n");
	char a[1024], b[1024];
	snprintf(a, sizeof a, "%s/sub/b.bin", dir);
	snprintf(b, sizeof b, "%s/sub/hardlink.bin", dir);
	CHECK(link(a, b) == 0);
	snprintf(b, sizeof b, "%s/link", dir);
	CHECK(symlink("a.txt", b) == 0);
	snprintf(b, sizeof b, "%s/sub/dirlink", dir);
	CHECK(symlink("deeper", b) == 0);
}

/* Streams `wimlib-imagex dir --detailed` lists, as "path\thash\tnamed". */
static int wimlib_streams(const char *wim, struct strs *out)
{
	char cmd[2048];
	struct strs lines = {0};
	snprintf(cmd, sizeof cmd, "wimlib-imagex dir '%s' 1 --detailed 2>/dev/null", wim);
	int rc = command_lines(cmd, &lines);
	char path[4096] = "", stream[8192] = "";
	int named = 0;
	for (size_t i = 0; i < lines.n; i++) {
		const char *l = lines.v[i];
		const char *q;
		if (!strncmp(l, "Full Path", 9) && (q = strchr(l, '"'))) {
			snprintf(path, sizeof path, "%s", q + 1);
			path[strlen(path) - 1] = '\0'; /* closing quote */
		} else if (!strncmp(l, "\tNamed data stream \"", 20)) {
			snprintf(stream, sizeof stream, "%s:%s", path, l + 20);
			stream[strlen(stream) - 2] = '\0'; /* '":' */
			named = 1;
		} else if (!strcmp(l, "\tUnnamed data stream:") ||
			   !strcmp(l, "\tReparse point stream:")) {
			snprintf(stream, sizeof stream, "%s", path);
			named = 0;
		} else if (!strncmp(l, "Hash", 4) && (q = strstr(l, "= 0x"))) {
			if (strspn(q + 4, "0") != 40) {
				char line[8400];
				snprintf(line, sizeof line, "%s\t%s\t%d", stream, q + 4, named);
				strs_add(out, line);
			}
		}
	}
	strs_free(&lines);
	return rc;
}

static uint64_t info_number(const char *wim, const char *key)
{
	char cmd[2048];
	struct strs lines = {0};
	uint64_t v = UINT64_MAX;
	snprintf(cmd, sizeof cmd, "wimlib-imagex info '%s' 1 2>/dev/null", wim);
	command_lines(cmd, &lines);
	for (size_t i = 0; i < lines.n; i++)
		if (!strncmp(lines.v[i], key, strlen(key)))
			v = strtoull(lines.v[i] + strlen(key), NULL, 10);
	strs_free(&lines);
	return v;
}

static int count_bad_paths;
static int check_path(void *ctx, const uint8_t sha1[20], const char *path, int named)
{
	(void)ctx;
	(void)sha1;
	(void)named;
	if (path[0] != '/')
		count_bad_paths++;
	return 0;
}

/* Is s valid UTF-8 (no surrogates, shortest form)? */
static int valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned c = *p, n;
		uint32_t cp;
		if (c < 0x80) {
			p++;
			continue;
		} else if (c >= 0xC2 && c < 0xE0) {
			n = 1, cp = c & 0x1F;
		} else if (c >= 0xE0 && c < 0xF0) {
			n = 2, cp = c & 0x0F;
		} else if (c >= 0xF0 && c < 0xF5) {
			n = 3, cp = c & 0x07;
		} else {
			return 0;
		}
		for (unsigned i = 1; i <= n; i++) {
			if ((p[i] & 0xC0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i] & 0x3F);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
		    (cp >= 0xD800 && cp < 0xE000))
			return 0;
		p += n + 1;
	}
	return 1;
}

static int bad_utf8;
static int check_utf8(void *ctx, const char *path, uint32_t attributes)
{
	(void)ctx;
	(void)attributes;
	if (path[0] != '/' || !valid_utf8(path))
		bad_utf8++;
	return 0;
}

/* Random damage: the walker must either refuse or give sane paths. */
static void fuzz_flips(const uint8_t *meta, size_t len)
{
	uint8_t *b = malloc(len);
	unsigned seed = 12345;
	int refused = 0, accepted = 0;
	char why[128];
	for (int iter = 0; iter < 5000; iter++) {
		memcpy(b, meta, len);
		int nflips = 1 + (int)(rand_r(&seed) % 4);
		for (int k = 0; k < nflips; k++) {
			size_t at = (size_t)rand_r(&seed) % len;
			if (rand_r(&seed) % 3 == 0)
				b[at] = (uint8_t)rand_r(&seed);
			else
				b[at] ^= (uint8_t)(1u << (rand_r(&seed) % 8));
		}
		int r = ih_meta_walk2(b, len, check_utf8, check_path, NULL, NULL, why, sizeof why);
		if (r == 0)
			accepted++;
		else if (r == -1)
			refused++;
	}
	CHECK_EQ_INT(refused + accepted, 5000);
	CHECK(accepted > 0 && refused > 0);
	CHECK_EQ_INT(bad_utf8, 0);
	CHECK_EQ_INT(count_bad_paths, 0);
	free(b);
}

/* Random damage to the real metadata, with the SHA-1 fixed so that wimlib
 * reads it too: both must accept or refuse alike, and list the same paths. */
static void differential(const char *dir, const uint8_t *wim, size_t wlen,
			 const struct meta_loc *m)
{
	uint8_t *w = malloc(wlen);
	char path[1024], cmd[2048];
	unsigned seed = 777;
	int agree = 0, compared = 0, skipped = 0;
	const int iters = 300;
	snprintf(path, sizeof path, "%s/mut.wim", dir);
	/* timeout: a damaged tree could send wimlib into a long recursion */
	snprintf(cmd, sizeof cmd, "timeout 20 wimlib-imagex dir '%s' 1 2>/dev/null", path);
	uint32_t sd_len = (get_le32(wim + m->off) + 7) & ~7u;
	for (int iter = 0; iter < iters; iter++) {
		memcpy(w, wim, wlen);
		uint8_t *meta = w + m->off;
		int nflips = 1 + (int)(rand_r(&seed) % 3);
		for (int k = 0; k < nflips; k++) {
			size_t at = sd_len + (size_t)rand_r(&seed) % (m->size - sd_len);
			if (rand_r(&seed) % 2)
				meta[at] = (uint8_t)rand_r(&seed);
			else
				meta[at] ^= (uint8_t)(1u << (rand_r(&seed) % 8));
		}
		ih_sha1(meta, m->size, w + m->entry + 30);
		spit(path, w, wlen);

		struct strs ours[2] = {{0}, {0}}, theirs = {0};
		char why[128];
		int r = walk_record(meta, m->size, ours, NULL, why, sizeof why);
		int rc = command_lines(cmd, &theirs);
		int fffd = 0;
		for (size_t i = 0; i < ours[0].n; i++)
			fffd |= strstr(ours[0].v[i], "\xef\xbf\xbd") != NULL;
		if (fffd) {
			skipped++; /* wimlib prints WTF-8 where we print U+FFFD */
		} else {
			compared++;
			strs_sort(&ours[0]);
			strs_sort(&theirs);
			int same = (r == 0) == (rc == 0) && (r != 0 || strs_equal(&ours[0], &theirs));
			if (same)
				agree++;
			else
				fprintf(stderr, "differential %d: ours %d (%s, %zu paths), wimlib %d (%zu)\n",
					iter, r, why, ours[0].n, rc, theirs.n);
		}
		strs_free(&ours[0]);
		strs_free(&ours[1]);
		strs_free(&theirs);
	}
	CHECK_EQ_INT(agree, compared);
	CHECK(compared > iters / 2);
	(void)skipped;
	free(w);
}

static void test_real_wim(void)
{
	char dir[] = "/tmp/ih-test-metadata-XXXXXX";
	char src[256], wimpath[256];
	if (!mkdtemp(dir)) {
		CHECK(!"mkdtemp");
		return;
	}
	snprintf(src, sizeof src, "%s/tree", dir);
	snprintf(wimpath, sizeof wimpath, "%s/out.wim", dir);
	make_tree(src);
	CHECK_EQ_INT(tsh("wimlib-imagex capture '%s' '%s' --compress=none >/dev/null 2>&1", src,
			wimpath), 0);

	size_t wlen;
	uint8_t *wim = slurp(wimpath, &wlen);
	struct meta_loc m;
	CHECK(wim != NULL);
	if (!wim || find_metadata(wim, wlen, &m)) {
		CHECK(!"metadata resource not found");
		goto out;
	}
	const uint8_t *meta = wim + m.off;

	/* Paths: exactly what wimlib lists. */
	struct strs ours[2] = {{0}, {0}}, theirs = {0}, theirs_streams = {0};
	ih_meta_stats st;
	char why[128], cmd[2048];
	CHECK_EQ_INT(walk_record(meta, m.size, ours, &st, why, sizeof why), 0);
	snprintf(cmd, sizeof cmd, "wimlib-imagex dir '%s' 1 2>/dev/null", wimpath);
	CHECK_EQ_INT(command_lines(cmd, &theirs), 0);
	strs_sort(&ours[0]);
	strs_sort(&theirs);
	CHECK(strs_equal(&ours[0], &theirs));
	CHECK_EQ_INT(ours[0].n, 15);
	CHECK(theirs.n > 0 && !strcmp(theirs.v[0], "/"));

	/* Streams: the same (path, hash) pairs as --detailed. */
	CHECK_EQ_INT(wimlib_streams(wimpath, &theirs_streams), 0);
	strs_sort(&ours[1]);
	strs_sort(&theirs_streams);
	CHECK(strs_equal(&ours[1], &theirs_streams));
	CHECK_EQ_INT(ours[1].n, 10); /* 8 files with data, 2 symlinks */
	CHECK_EQ_INT(st.streams, ours[1].n);

	/* Counts: wimlib's DIRCOUNT includes the root. */
	CHECK_EQ_INT(st.files, info_number(wimpath, "File Count:"));
	CHECK_EQ_INT(st.dirs + 1, info_number(wimpath, "Directory Count:"));
	CHECK_EQ_INT(st.files, 11); /* the symlink to a directory is a file */
	CHECK_EQ_INT(st.dirs, 3);

	/* Every truncation is refused, none crashes. */
	int refused = 0;
	for (size_t l = 0; l < m.size; l++) {
		uint8_t *t = malloc(l ? l : 1); /* exact size, so ASan sees overreads */
		memcpy(t, meta, l);
		if (ih_meta_walk(t, l, NULL, NULL, NULL, why, sizeof why) == -1 && why[0])
			refused++;
		free(t);
	}
	CHECK_EQ_INT(refused, m.size);
	CHECK_EQ_INT(ih_meta_walk(NULL, 0, NULL, NULL, NULL, why, sizeof why), -1);

	fuzz_flips(meta, m.size);
	differential(dir, wim, wlen, &m);

	strs_free(&ours[0]);
	strs_free(&ours[1]);
	strs_free(&theirs);
	strs_free(&theirs_streams);
out:
	free(wim);
	tsh("rm -rf '%s'", dir);
}

/* ------------------------------------------------------------- hand-built */

/* A metadata resource built by hand. */
struct mb {
	uint8_t *b;
	size_t len, cap;
};

static size_t mb_put(struct mb *m, const void *p, size_t n)
{
	if (m->len + n > m->cap) {
		m->cap = (m->len + n) * 2 + 256;
		m->b = realloc(m->b, m->cap);
	}
	size_t at = m->len;
	if (p)
		memcpy(m->b + at, p, n);
	else
		memset(m->b + at, 0, n);
	m->len += n;
	return at;
}

static void mb_align(struct mb *m)
{
	while (m->len & 7)
		mb_put(m, NULL, 1);
}

static void mb_security(struct mb *m)
{
	uint8_t sd[8] = {8, 0, 0, 0, 0, 0, 0, 0};
	mb_put(m, sd, 8);
}

static void mb_end(struct mb *m)
{
	mb_put(m, NULL, 8);
}

struct tstream {
	const char *name; /* ASCII; NULL: unnamed */
	uint8_t hash;     /* every byte of the SHA-1; 0: zero hash */
};

/* Appends a dentry named by UTF-16 units; returns its offset. */
static size_t mb_dentry16(struct mb *m, const uint16_t *name, size_t units, uint32_t attr,
			  uint8_t hash, const struct tstream *st, unsigned nst)
{
	uint8_t fixed[102] = {0};
	size_t name_nbytes = 2 * units;
	size_t length = (102 + (units ? name_nbytes + 2 : 0) + 7) & ~(size_t)7;
	put_le64(fixed, length);
	put_le32(fixed + 8, attr);
	put_le32(fixed + 12, 0xFFFFFFFF);
	memset(fixed + 64, hash, 20);
	put_le16(fixed + 96, (uint16_t)nst);
	put_le16(fixed + 100, (uint16_t)name_nbytes);
	size_t at = mb_put(m, fixed, sizeof fixed);
	for (size_t i = 0; i < units; i++) {
		uint8_t u[2];
		put_le16(u, name[i]);
		mb_put(m, u, 2);
	}
	if (units)
		mb_put(m, NULL, 2);
	mb_align(m);
	for (unsigned i = 0; i < nst; i++) {
		size_t nlen = st[i].name ? strlen(st[i].name) : 0;
		uint8_t e[38] = {0};
		size_t elen = (38 + (nlen ? 2 * nlen + 2 : 0) + 7) & ~(size_t)7;
		put_le64(e, elen);
		memset(e + 16, st[i].hash, 20);
		put_le16(e + 36, (uint16_t)(2 * nlen));
		mb_put(m, e, sizeof e);
		for (size_t k = 0; k < nlen; k++) {
			uint8_t u[2];
			put_le16(u, (uint8_t)st[i].name[k]);
			mb_put(m, u, 2);
		}
		if (nlen)
			mb_put(m, NULL, 2);
		mb_align(m);
	}
	return at;
}

static size_t mb_dentry(struct mb *m, const char *ascii, uint32_t attr, uint8_t hash,
			const struct tstream *st, unsigned nst)
{
	uint16_t u[256] = {0};
	size_t n = strlen(ascii);
	for (size_t i = 0; i < n; i++)
		u[i] = (uint8_t)ascii[i];
	return mb_dentry16(m, u, n, attr, hash, st, nst);
}

static void mb_subdir(struct mb *m, size_t dentry, uint64_t target)
{
	put_le64(m->b + dentry + 16, target);
}

#define DIR IH_FILE_ATTRIBUTE_DIRECTORY

static void hash_hex(uint8_t byte, char out[41])
{
	uint8_t h[20];
	memset(h, byte, 20);
	hex20(h, out);
}

static int has_stream(const struct strs *s, const char *path, uint8_t hash, int named)
{
	char hex[41], line[1024];
	hash_hex(hash, hex);
	snprintf(line, sizeof line, "%s\t%s\t%d", path, hex, named);
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], line))
			return 1;
	return 0;
}

static int has_str(const struct strs *s, const char *str)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], str))
			return 1;
	return 0;
}

static int check_path_stop(void *ctx, const uint8_t sha1[20], const char *path, int named)
{
	(void)ctx;
	(void)sha1;
	(void)path;
	(void)named;
	return 7;
}

/* The rules: stream kinds, ignored names, duplicates, non-directories. */
static void test_rules(void)
{
	struct mb m = {0};
	mb_security(&m);
	size_t root = mb_dentry(&m, "", DIR, 0, NULL, 0);
	mb_end(&m);
	mb_subdir(&m, root, m.len);
	mb_dentry(&m, "a", 0x20, 1, NULL, 0);
	size_t d = mb_dentry(&m, "d", DIR, 0, NULL, 0);
	mb_dentry(&m, "r", IH_FILE_ATTRIBUTE_REPARSE_POINT, 5, NULL, 0);
	mb_dentry(&m, "e", 0x20, 0, NULL, 0);
	mb_dentry(&m, ".", DIR, 9, NULL, 0);
	mb_dentry(&m, "..", DIR, 9, NULL, 0);
	mb_dentry(&m, "", 0x20, 9, NULL, 0);
	uint16_t nul_name[] = {'x', 0, 'y'};
	mb_dentry16(&m, nul_name, 3, 0x20, 9, NULL, 0);
	mb_dentry(&m, "a", 0x20, 6, NULL, 0); /* duplicate: the first wins */
	mb_dentry(&m, "A", 0x20, 7, NULL, 0); /* differs in case: kept */
	size_t f = mb_dentry(&m, "f", 0x20, 0, NULL, 0);
	mb_subdir(&m, f, 0xFFFFFFFFFFull); /* a file's children are ignored */
	/* Both reparse data and file data, in extra entries, main hash zero. */
	struct tstream rp[] = {{NULL, 10}, {NULL, 11}, {"ads", 12}};
	mb_dentry(&m, "rp", IH_FILE_ATTRIBUTE_REPARSE_POINT, 0, rp, 3);
	mb_end(&m);
	mb_subdir(&m, d, m.len);
	struct tstream bs[] = {{NULL, 4}, {"s", 3}, {"zero", 0}};
	mb_dentry(&m, "b", 0x20, 0, bs, 3);
	size_t dup = mb_dentry(&m, "b", DIR, 0, NULL, 0); /* duplicate dir: not entered */
	mb_subdir(&m, dup, 3);
	mb_end(&m);

	struct strs rec[2] = {{0}, {0}};
	ih_meta_stats st;
	char why[128] = "x";
	CHECK_EQ_INT(walk_record(m.b, m.len, rec, &st, why, sizeof why), 0);
	CHECK_STR(why, "");
	CHECK_EQ_INT(st.files, 7); /* a r e A f rp d/b */
	CHECK_EQ_INT(st.dirs, 1);
	CHECK_EQ_INT(rec[0].n, 9); /* and "/" */
	CHECK(has_str(&rec[0], "/"));
	CHECK(has_str(&rec[0], "/d/b"));
	CHECK(has_str(&rec[0], "/A"));
	CHECK(!has_str(&rec[0], "/."));
	CHECK(has_stream(&rec[1], "/a", 1, 0));
	CHECK(!has_stream(&rec[1], "/a", 6, 0));
	CHECK(has_stream(&rec[1], "/A", 7, 0));
	CHECK(has_stream(&rec[1], "/r", 5, 0));
	CHECK(has_stream(&rec[1], "/rp", 10, 0));
	CHECK(has_stream(&rec[1], "/rp", 11, 0));
	CHECK(has_stream(&rec[1], "/rp:ads", 12, 1));
	CHECK(has_stream(&rec[1], "/d/b", 4, 0));
	CHECK(has_stream(&rec[1], "/d/b:s", 3, 1));
	CHECK_EQ_INT(rec[1].n, 8);
	CHECK_EQ_INT(st.streams, 8);
	strs_free(&rec[0]);
	strs_free(&rec[1]);

	/* The callback's value stops the walk and comes back. */
	CHECK_EQ_INT(ih_meta_walk(m.b, m.len, check_path_stop, NULL, &st, why, sizeof why), 7);
	CHECK_EQ_INT(st.streams, 1);

	/* A child of the root reaching past the end: refused. */
	put_le64(m.b + d + 16, m.len - 4);
	CHECK_EQ_INT(ih_meta_walk(m.b, m.len, NULL, NULL, NULL, why, sizeof why), -1);
	CHECK(why[0] != '\0');
	free(m.b);
}

/* Names: surrogate pairs combine, unpaired ones become U+FFFD. */
static void test_names(void)
{
	struct mb m = {0};
	mb_security(&m);
	size_t root = mb_dentry(&m, "", DIR, 0, NULL, 0);
	mb_end(&m);
	mb_subdir(&m, root, m.len);
	uint16_t emoji[] = {0xD83D, 0xDE00, 'x'};
	uint16_t lone_hi[] = {0xD800, 'x'};
	uint16_t lone_lo[] = {'y', 0xDC00};
	uint16_t two_hi[] = {0xD800, 0xD800, 0xDC00};
	uint16_t bmp[] = {0xE9, 0x4E2D, 0xFFFF};
	mb_dentry16(&m, emoji, 3, 0x20, 1, NULL, 0);
	mb_dentry16(&m, lone_hi, 2, 0x20, 2, NULL, 0);
	mb_dentry16(&m, lone_lo, 2, 0x20, 3, NULL, 0);
	mb_dentry16(&m, two_hi, 3, 0x20, 4, NULL, 0);
	mb_dentry16(&m, bmp, 3, 0x20, 5, NULL, 0);
	mb_end(&m);
	struct strs rec[2] = {{0}, {0}};
	CHECK_EQ_INT(walk_record(m.b, m.len, rec, NULL, NULL, 0), 0);
	CHECK(has_stream(&rec[1], "/\xf0\x9f\x98\x80x", 1, 0));
	CHECK(has_stream(&rec[1], "/\xef\xbf\xbdx", 2, 0));
	CHECK(has_stream(&rec[1], "/y\xef\xbf\xbd", 3, 0));
	CHECK(has_stream(&rec[1], "/\xef\xbf\xbd\xf0\x90\x80\x80", 4, 0));
	CHECK(has_stream(&rec[1], "/\xc3\xa9\xe4\xb8\xad\xef\xbf\xbf", 5, 0));
	strs_free(&rec[0]);
	strs_free(&rec[1]);

	/* the converter on its own: a dangling odd byte */
	char out[IH_UTF8_MAX(3)];
	uint8_t odd[] = {'a', 0, 'b'};
	size_t n = ih_utf16le_to_utf8(odd, 3, out);
	CHECK(n == 4 && !memcmp(out, "a\xef\xbf\xbd", 4));
	free(m.b);
}

/* Security data, root and dentry fields that wimlib refuses or tolerates. */
static void test_structure(void)
{
	char why[128];
	ih_meta_stats st;
	struct mb m = {0};

	/* An image whose root is an end-of-directory entry is empty. */
	mb_security(&m);
	mb_end(&m);
	CHECK_EQ_INT(ih_meta_walk(m.b, m.len, check_path, NULL, &st, why, sizeof why), 0);
	CHECK_EQ_INT(st.files + st.dirs + st.streams, 0);
	/* A root that is a file, or a reparse point, is refused. */
	m.len = 8;
	mb_dentry(&m, "", 0x20, 1, NULL, 0);
	mb_end(&m);
	CHECK_EQ_INT(ih_meta_walk(m.b, m.len, NULL, NULL, NULL, why, sizeof why), -1);
	put_le32(m.b + 8 + 8, DIR | IH_FILE_ATTRIBUTE_REPARSE_POINT);
	CHECK_EQ_INT(ih_meta_walk(m.b, m.len, NULL, NULL, NULL, why, sizeof why), -1);
	/* A directory root without children, named: the name is ignored. */
	m.len = 8;
	mb_dentry(&m, "rootname", DIR, 1, NULL, 0);
	mb_end(&m);
	struct strs rec[2] = {{0}, {0}};
	CHECK_EQ_INT(walk_record(m.b, m.len, rec, &st, why, sizeof why), 0);
	CHECK(rec[0].n == 1 && !strcmp(rec[0].v[0], "/"));
	CHECK(has_stream(&rec[1], "/", 1, 0));
	strs_free(&rec[0]);
	strs_free(&rec[1]);

	/* Security data: length 0 means 8; descriptors must fit. */
	put_le32(m.b, 0);
	CHECK_EQ_INT(ih_meta_walk(m.b, m.len, NULL, NULL, NULL, why, sizeof why), 0);
	put_le32(m.b + 4, 1); /* one size, but no room for it */
	CHECK_EQ_INT(ih_meta_walk(m.b, m.len, NULL, NULL, NULL, why, sizeof why), -1);
	put_le32(m.b + 4, 0x80000001u);
	CHECK_EQ_INT(ih_meta_walk(m.b, m.len, NULL, NULL, NULL, why, sizeof why), -1);
	put_le32(m.b, 0xFFFFFFF9u); /* aligns (32-bit) to 0, hence 8, as in wimlib */
	put_le32(m.b + 4, 0);
	CHECK_EQ_INT(ih_meta_walk(m.b, m.len, NULL, NULL, NULL, why, sizeof why), 0);
	put_le32(m.b, 0xFFFFFFF0u);
	CHECK_EQ_INT(ih_meta_walk(m.b, m.len, NULL, NULL, NULL, why, sizeof why), -1);
	CHECK_EQ_INT(ih_meta_walk(m.b, 7, NULL, NULL, NULL, why, sizeof why), -1);
	free(m.b);

	/* Security data with two descriptors (one empty), then the root. */
	memset(&m, 0, sizeof m);
	uint8_t sd[32] = {0};
	put_le32(sd, 8 + 16 + 5); /* aligned up to 32 */
	put_le32(sd + 4, 2);
	put_le64(sd + 8, 5);
	put_le64(sd + 16, 0);
	mb_put(&m, sd, sizeof sd);
	mb_dentry(&m, "", DIR, 0, NULL, 0);
	mb_end(&m);
	CHECK_EQ_INT(ih_meta_walk(m.b, m.len, NULL, NULL, NULL, why, sizeof why), 0);
	put_le64(m.b + 8, 0x100000000ull); /* sizes are 32-bit at most */
	CHECK_EQ_INT(ih_meta_walk(m.b, m.len, NULL, NULL, NULL, why, sizeof why), -1);
	put_le64(m.b + 8, 17); /* 8 + 16 + 17 > 32 */
	CHECK_EQ_INT(ih_meta_walk(m.b, m.len, NULL, NULL, NULL, why, sizeof why), -1);
	free(m.b);

	/* Dentry fields. */
	memset(&m, 0, sizeof m);
	mb_security(&m);
	size_t root = mb_dentry(&m, "", DIR, 0, NULL, 0);
	mb_end(&m);
	mb_subdir(&m, root, m.len);
	size_t a = mb_dentry(&m, "ab", 0x20, 1, NULL, 0); /* 102 + 6 -> 112 */
	struct tstream one[] = {{"s", 2}};
	size_t b = mb_dentry(&m, "b", 0x20, 0, one, 1);
	mb_end(&m);
	uint8_t *orig = malloc(m.len);
	memcpy(orig, m.b, m.len);
#define EXPECT_AFTER(stmt, want)                                                             \
	do {                                                                                 \
		memcpy(m.b, orig, m.len);                                                    \
		stmt;                                                                        \
		CHECK_EQ_INT(ih_meta_walk(m.b, m.len, NULL, NULL, NULL, why, sizeof why), want); \
	} while (0)
	EXPECT_AFTER((void)0, 0);
	EXPECT_AFTER(put_le16(m.b + a + 100, 5), -1);             /* odd name length */
	EXPECT_AFTER(put_le16(m.b + a + 98, 3), -1);              /* odd short name length */
	EXPECT_AFTER(put_le16(m.b + a + 100, 20), -1);            /* name overruns length */
	EXPECT_AFTER(put_le16(m.b + a + 98, 2), 0);               /* short name fits the padding */
	EXPECT_AFTER(put_le16(m.b + a + 98, 4), -1);              /* ... but not this one */
	EXPECT_AFTER(put_le64(m.b + a, 101), -1);                 /* shorter than 102 bytes */
	EXPECT_AFTER(put_le64(m.b + a, 0xFFFFFFFFFFFFFFFFull), 0); /* aligns to 0: end of list */
	EXPECT_AFTER(put_le64(m.b + a, 1ull << 40), -1);          /* runs past the end */
	EXPECT_AFTER(put_le16(m.b + b + 96, 2), -1);              /* a missing stream entry */
	EXPECT_AFTER(put_le64(m.b + b + 112, 30), -1);            /* stream entry too short */
	EXPECT_AFTER(put_le64(m.b + b + 112, 37), 0);             /* aligned up to 40: fine */
	EXPECT_AFTER(put_le64(m.b + b + 112, 1ull << 40), -1);    /* stream entry too long */
	EXPECT_AFTER(put_le16(m.b + b + 112 + 36, 3), -1);        /* odd stream name length */
	EXPECT_AFTER(put_le16(m.b + b + 112 + 36, 12), -1);       /* stream name overruns */
	EXPECT_AFTER(put_le64(m.b + root + 16, 4), -1);           /* children inside the security data */
	EXPECT_AFTER(put_le64(m.b + root + 16, m.len - 7), -1);   /* a list past the end */
	EXPECT_AFTER(put_le64(m.b + root + 16, m.len), -1);
#undef EXPECT_AFTER
	free(orig);
	free(m.b);
}

/* Cycles and shared lists cost bounded work; depth is limited like wimlib. */
static void test_hostile_trees(void)
{
	char why[128];
	struct mb m = {0};

	/* A directory whose children are its own list. */
	mb_security(&m);
	size_t root = mb_dentry(&m, "", DIR, 0, NULL, 0);
	mb_end(&m);
	size_t list = m.len;
	mb_subdir(&m, root, list);
	size_t loop = mb_dentry(&m, "loop", DIR, 1, NULL, 0);
	mb_end(&m);
	mb_subdir(&m, loop, list);
	clock_t t0 = clock();
	CHECK_EQ_INT(ih_meta_walk(m.b, m.len, NULL, NULL, NULL, why, sizeof why), -1);
	CHECK(strstr(why, "cyclic") != NULL);
	/* The root listing itself: an unnamed entry, dropped as in wimlib. */
	mb_subdir(&m, root, 8);
	CHECK_EQ_INT(ih_meta_walk(m.b, m.len, NULL, NULL, NULL, why, sizeof why), 0);
	free(m.b);

	/* Two directories sharing the list that holds them: 2^depth if
	 * followed blindly (wimlib would take forever here). */
	memset(&m, 0, sizeof m);
	mb_security(&m);
	root = mb_dentry(&m, "", DIR, 0, NULL, 0);
	mb_end(&m);
	list = m.len;
	mb_subdir(&m, root, list);
	size_t x = mb_dentry(&m, "x", DIR, 0, NULL, 0);
	size_t y = mb_dentry(&m, "y", DIR, 0, NULL, 0);
	mb_end(&m);
	mb_subdir(&m, x, list);
	mb_subdir(&m, y, list);
	CHECK_EQ_INT(ih_meta_walk(m.b, m.len, NULL, NULL, NULL, why, sizeof why), -1);
	/* A shared list that is not a cycle is read twice, as wimlib does. */
	mb_dentry(&m, "z", 0x20, 3, NULL, 0);
	mb_end(&m);
	mb_subdir(&m, x, m.len - 8 - 112);
	mb_subdir(&m, y, m.len - 8 - 112);
	struct strs rec[2] = {{0}, {0}};
	CHECK_EQ_INT(walk_record(m.b, m.len, rec, NULL, why, sizeof why), 0);
	CHECK(has_stream(&rec[1], "/x/z", 3, 0) && has_stream(&rec[1], "/y/z", 3, 0));
	strs_free(&rec[0]);
	strs_free(&rec[1]);
	free(m.b);
	CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);

	/* Depth: the list of the n-th nested directory is at depth n; wimlib
	 * refuses depth 16384. */
	for (int n = IH_META_MAX_DEPTH - 1; n <= IH_META_MAX_DEPTH; n++) {
		memset(&m, 0, sizeof m);
		mb_security(&m);
		size_t prev = mb_dentry(&m, "", DIR, 0, NULL, 0);
		mb_end(&m);
		for (int i = 0; i < n; i++) {
			mb_subdir(&m, prev, m.len);
			prev = mb_dentry(&m, "d", DIR, 0, NULL, 0);
			mb_end(&m);
		}
		mb_subdir(&m, prev, m.len);
		mb_end(&m);
		ih_meta_stats st;
		int r = ih_meta_walk(m.b, m.len, NULL, NULL, &st, why, sizeof why);
		CHECK_EQ_INT(r, n < IH_META_MAX_DEPTH ? 0 : -1);
		if (r == 0)
			CHECK_EQ_INT(st.dirs, n);
		free(m.b);
	}

	/* Many siblings with one name: duplicates found in O(n log n). */
	memset(&m, 0, sizeof m);
	mb_security(&m);
	root = mb_dentry(&m, "", DIR, 0, NULL, 0);
	mb_end(&m);
	mb_subdir(&m, root, m.len);
	for (int i = 0; i < 20000; i++)
		mb_dentry(&m, "same name", 0x20, (uint8_t)(i % 250 + 1), NULL, 0);
	mb_end(&m);
	ih_meta_stats st;
	t0 = clock();
	CHECK_EQ_INT(ih_meta_walk(m.b, m.len, NULL, NULL, &st, why, sizeof why), 0);
	CHECK_EQ_INT(st.files, 1);
	CHECK_EQ_INT(st.streams, 1);
	CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);
	free(m.b);
}

void test_metadata(void)
{
	test_rules();
	test_names();
	test_structure();
	test_hostile_trees();
	test_real_wim();
}
