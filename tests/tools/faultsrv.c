/* faultsrv.c - a misbehaving HTTP/1.1 file server for the tests of remote
 * sources.  Loopback only; it exits by itself after --lifetime seconds.
 *
 *   faultsrv --root DIR [--port-file F] [--lifetime S] [--delay-ms N] [--log F]
 *
 * It listens on 127.0.0.1 at a port the kernel picks (written to the port
 * file, else printed) and serves DIR/PATH for a request of /MODE/PATH,
 * honouring Range (single and multi, answering multipart/byteranges),
 * If-Range, ETag and Last-Modified like a correct server, except as MODE
 * says.  A "data request" is one asking for more than 4 KiB (the tables
 * and headers of a small WIM are asked in smaller ranges); the modes that
 * fail the first few count per request target (a query string makes a
 * target new):
 *
 *   ok          a correct server
 *   norange     200 with the whole file for every request (Range ignored)
 *   nomulti     200 with the whole file for a multi-range request (as
 *               object stores do); single ranges answered
 *   onerange    only the first range of a multi-range request, as a
 *               single-part 206
 *   badrange    data requests: a Content-Range one byte off
 *   truncate    responses over 256 bytes: half the body, then the
 *               connection closes (retries for the rest are cut again)
 *   truncate1   the first data request only
 *   reset       responses over 256 bytes: half, then a TCP reset
 *   stall       data requests: some bytes, then nothing for 8 s, then a close
 *   s401 s403 s404  that status for every request
 *   s503        the first two data requests: 503 with Retry-After: 1
 *   s429        data requests: 429 with Retry-After: 3600
 *   s500        data requests: 500, always
 *   basic       401 unless the request has Basic credentials ih:s3cr3t
 *   bearer      401 unless it has "Authorization: Bearer b34r3r"
 *   redirect    302 to /ok/PATH
 *   redirloop   302 to itself
 *   replaced    data requests are served from DIR/PATH.v2 (another file,
 *               another ETag): a file replaced after its tables were read
 *   replacedx   the same, ignoring If-Range (206 with the new file's bytes)
 *
 * A request in a proxy's form (GET http://host/MODE/PATH) is served the
 * same: the tests use faultsrv as the proxy too.
 *
 * --delay-ms delays every response (a slow link's round trip).  --log
 * appends "MODE PATH RANGE STATUS BODY_BYTES" per request. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *root = ".";
static int delay_ms;
static FILE *logf;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
/* Data requests seen per request target (mode, path and query), for the
 * modes that fail the first few. */
#define NKEYS 512
static char *keys[NKEYS];
static int counts[NKEYS];

static int count_request(const char *target)
{
	int n = 0;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < NKEYS; i++) {
		if (!keys[i]) {
			keys[i] = strdup(target);
			n = ++counts[i];
			break;
		}
		if (!strcmp(keys[i], target)) {
			n = ++counts[i];
			break;
		}
	}
	pthread_mutex_unlock(&mu);
	return n;
}

#define MAXR 256

struct rng {
	uint64_t a, b; /* [a, b] inclusive */
};

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int send_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int sendf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sendf(int fd, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	return send_all(fd, buf, (size_t)n);
}

/* Sends [a, a+n) of the file; stops after `limit` bytes (-1 when cut). */
static int send_file(int fd, int ffd, uint64_t a, uint64_t n, uint64_t limit)
{
	char buf[65536];
	uint64_t sent = 0;
	while (sent < n) {
		size_t k = n - sent < sizeof buf ? (size_t)(n - sent) : sizeof buf;
		if (sent + k > limit)
			k = (size_t)(limit - sent);
		if (k == 0)
			return -1;
		ssize_t r = pread(ffd, buf, k, (off_t)(a + sent));
		if (r <= 0)
			return -1;
		if (send_all(fd, buf, (size_t)r))
			return -1;
		sent += (uint64_t)r;
	}
	return 0;
}

static int parse_ranges(const char *v, uint64_t size, struct rng *out)
{
	int n = 0;
	if (strncasecmp(v, "bytes=", 6))
		return -1;
	v += 6;
	while (*v && n < MAXR) {
		unsigned long long a = 0, b = 0;
		int used = 0;
		if (sscanf(v, "%llu-%llu%n", &a, &b, &used) == 2) {
		} else if (sscanf(v, "%llu-%n", &a, &used) == 1) {
			b = size - 1;
		} else if (sscanf(v, "-%llu%n", &b, &used) == 1) {
			a = b > size ? 0 : size - b;
			b = size - 1;
		} else {
			return -1;
		}
		if (b >= size)
			b = size - 1;
		if (a > b)
			return -1;
		out[n].a = a;
		out[n].b = b;
		n++;
		v += used;
		if (*v == ',')
			v++;
		else
			break;
	}
	return n;
}

static void logline(const char *mode, const char *path, const char *range, int status,
		    uint64_t bytes)
{
	if (!logf)
		return;
	pthread_mutex_lock(&mu);
	fprintf(logf, "%s %s \"%s\" %d %llu\n", mode, path, range, status, (unsigned long long)bytes);
	fflush(logf);
	pthread_mutex_unlock(&mu);
}

static int simple(int fd, int status, const char *text, const char *extra)
{
	return sendf(fd, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s\r\n%s", status, text,
		     strlen(text), extra ? extra : "", text);
}

/* One request; returns 0 to keep the connection, -1 to close it. */
static int serve(int fd, char *req)
{
	char method[16], target[2048], range[4096] = "", ifrange[256] = "", auth[512] = "";
	if (sscanf(req, "%15s %2047s", method, target) != 2)
		return -1;
	for (char *l = strstr(req, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
		char *h = l + 2;
		if (!strncasecmp(h, "Range:", 6))
			sscanf(h + 6, " %4095[^\r\n]", range);
		else if (!strncasecmp(h, "If-Range:", 9))
			sscanf(h + 9, " %255[^\r\n]", ifrange);
		else if (!strncasecmp(h, "Authorization:", 14))
			sscanf(h + 14, " %511[^\r\n]", auth);
	}
	/* a proxy's request: the absolute URL's path is served */
	if (!strncmp(target, "http://", 7)) {
		char *p = strchr(target + 7, '/');
		memmove(target, p ? p : "/", strlen(p ? p : "/") + 1);
	}
	if (delay_ms)
		sleep_ms(delay_ms);
	char mode[32], key[2048];
	snprintf(key, sizeof key, "%s", target);
	const char *rest = target[0] == '/' ? strchr(target + 1, '/') : NULL;
	if (!rest || rest - target - 1 >= (long)sizeof mode || strstr(rest, "..")) {
		logline("-", target, range, 404, 0);
		return simple(fd, 404, "Not Found", NULL);
	}
	memcpy(mode, target + 1, (size_t)(rest - target - 1));
	mode[rest - target - 1] = '\0';
	char *q = strchr(rest, '?');
	if (q)
		*q = '\0';

	if (!strcmp(mode, "s401") || !strcmp(mode, "s403") || !strcmp(mode, "s404")) {
		int st = atoi(mode + 1);
		logline(mode, rest, range, st, 0);
		return simple(fd, st, st == 401 ? "Unauthorized" : st == 403 ? "Forbidden" : "Not Found",
			      st == 401 ? "WWW-Authenticate: Basic realm=\"x\"\r\n" : NULL);
	}
	/* basic: user ih, password s3cr3t; bearer: token b34r3r */
	if ((!strcmp(mode, "basic") && strcmp(auth, "Basic aWg6czNjcjN0")) ||
	    (!strcmp(mode, "bearer") && strcmp(auth, "Bearer b34r3r"))) {
		logline(mode, rest, range, 401, 0);
		return simple(fd, 401, "Unauthorized", "WWW-Authenticate: Basic realm=\"x\"\r\n");
	}
	if (!strcmp(mode, "redirect") || !strcmp(mode, "redirloop")) {
		char loc[2300];
		snprintf(loc, sizeof loc, "Location: /%s%s\r\n",
			 !strcmp(mode, "redirect") ? "ok" : "redirloop", rest);
		logline(mode, rest, range, 302, 0);
		return simple(fd, 302, "Found", loc);
	}

	char path[4096];
	snprintf(path, sizeof path, "%s%s", root, rest);
	int ffd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (ffd < 0 || fstat(ffd, &st) || !S_ISREG(st.st_mode)) {
		if (ffd >= 0)
			close(ffd);
		logline(mode, rest, range, 404, 0);
		return simple(fd, 404, "Not Found", NULL);
	}
	uint64_t size = (uint64_t)st.st_size;
	struct rng rs[MAXR];
	int nr = range[0] ? parse_ranges(range, size, rs) : 0;
	uint64_t asked = 0;
	for (int i = 0; i < nr; i++)
		asked += rs[i].b - rs[i].a + 1;
	int data = asked > 4096;
	int nth = data ? count_request(key) : 0;
	if (data && (!strcmp(mode, "replaced") || !strcmp(mode, "replacedx"))) {
		char p2[4200];
		snprintf(p2, sizeof p2, "%s.v2", path);
		int f2 = open(p2, O_RDONLY | O_CLOEXEC);
		if (f2 >= 0) {
			close(ffd);
			ffd = f2;
			fstat(ffd, &st);
			size = (uint64_t)st.st_size;
			nr = parse_ranges(range, size, rs);
		}
	}
	char etag[64], lastmod[64];
	snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st.st_mtim.tv_sec ^
		 (unsigned long long)st.st_mtim.tv_nsec, (unsigned long long)size);
	struct tm tm;
	gmtime_r(&st.st_mtim.tv_sec, &tm);
	strftime(lastmod, sizeof lastmod, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	char validators[256];
	snprintf(validators, sizeof validators, "ETag: %s\r\nLast-Modified: %s\r\nAccept-Ranges: bytes\r\n",
		 etag, lastmod);
	int rc = 0;

	if (data && !strcmp(mode, "s503") && nth <= 2) {
		logline(mode, rest, range, 503, 0);
		rc = simple(fd, 503, "Service Unavailable", "Retry-After: 1\r\n");
		goto out;
	}
	if (data && !strcmp(mode, "s429")) {
		logline(mode, rest, range, 429, 0);
		rc = simple(fd, 429, "Too Many Requests", "Retry-After: 3600\r\n");
		goto out;
	}
	if (data && !strcmp(mode, "s500")) {
		logline(mode, rest, range, 500, 0);
		rc = simple(fd, 500, "Internal Server Error", NULL);
		goto out;
	}
	int whole = nr <= 0 || !strcmp(mode, "norange") || (nr > 1 && !strcmp(mode, "nomulti"));
	if (ifrange[0] && strcmp(ifrange, etag) && strcmp(ifrange, lastmod) &&
	    strcmp(mode, "replacedx"))
		whole = 1;
	if (whole) {
		logline(mode, rest, range, 200, size);
		rc = sendf(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
			   "Content-Length: %llu\r\n%s\r\n", (unsigned long long)size, validators);
		if (!rc)
			rc = send_file(fd, ffd, 0, size, UINT64_MAX);
		goto out;
	}
	if (nr > 1 && !strcmp(mode, "onerange"))
		nr = 1;
	if (nr == 1) {
		uint64_t a = rs[0].a, n = rs[0].b - rs[0].a + 1, shown_a = a;
		if (data && !strcmp(mode, "badrange"))
			shown_a = a + 1;
		uint64_t limit = UINT64_MAX;
		int cut = 0;
		if ((data && ((!strcmp(mode, "truncate1") && nth == 1) || !strcmp(mode, "stall"))) ||
		    (n > 256 && (!strcmp(mode, "truncate") || !strcmp(mode, "reset")))) {
			limit = n / 2;
			cut = 1;
		}
		logline(mode, rest, range, 206, cut ? limit : n);
		rc = sendf(fd, "HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\n"
			   "Content-Range: bytes %llu-%llu/%llu\r\nContent-Length: %llu\r\n%s\r\n",
			   (unsigned long long)shown_a, (unsigned long long)(shown_a + n - 1),
			   (unsigned long long)size, (unsigned long long)n, validators);
		if (!rc)
			send_file(fd, ffd, a, n, limit);
		if (cut) {
			if (!strcmp(mode, "stall"))
				sleep(8); /* then the connection closes */
			if (!strcmp(mode, "reset")) {
				struct linger lg = {1, 0};
				setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
			}
			rc = -1;
		}
		goto out;
	}
	/* multipart/byteranges */
	{
		static const char *B = "IHFAULTSRVBOUNDARY";
		char part[MAXR][160];
		uint64_t len = 0;
		for (int i = 0; i < nr; i++) {
			snprintf(part[i], sizeof part[i],
				 "\r\n--%s\r\nContent-Type: application/octet-stream\r\n"
				 "Content-Range: bytes %llu-%llu/%llu\r\n\r\n", B,
				 (unsigned long long)rs[i].a, (unsigned long long)rs[i].b,
				 (unsigned long long)size);
			len += strlen(part[i]) + rs[i].b - rs[i].a + 1;
		}
		char tail[64];
		snprintf(tail, sizeof tail, "\r\n--%s--\r\n", B);
		len += strlen(tail);
		logline(mode, rest, range, 206, len);
		rc = sendf(fd, "HTTP/1.1 206 Partial Content\r\nContent-Type: multipart/byteranges; "
			   "boundary=%s\r\nContent-Length: %llu\r\n%s\r\n", B, (unsigned long long)len,
			   validators);
		for (int i = 0; i < nr && !rc; i++)
			rc = send_all(fd, part[i], strlen(part[i])) ||
			     send_file(fd, ffd, rs[i].a, rs[i].b - rs[i].a + 1, UINT64_MAX);
		if (!rc)
			rc = send_all(fd, tail, strlen(tail));
	}
out:
	close(ffd);
	(void)method;
	return rc ? -1 : 0;
}

static void *conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[16384];
	size_t have = 0;
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	for (;;) {
		char *end = NULL;
		while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
			if (have + 1 >= sizeof buf)
				goto done;
			ssize_t r = recv(fd, buf + have, sizeof buf - 1 - have, 0);
			if (r <= 0)
				goto done;
			have += (size_t)r;
		}
		*end = '\0';
		size_t used = (size_t)(end + 4 - buf);
		if (serve(fd, buf))
			goto done;
		memmove(buf, buf + used, have - used);
		have -= used;
	}
done:
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *port_file = NULL;
	int lifetime = 120;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--root") && i + 1 < argc)
			root = argv[++i];
		else if (!strcmp(argv[i], "--port-file") && i + 1 < argc)
			port_file = argv[++i];
		else if (!strcmp(argv[i], "--lifetime") && i + 1 < argc)
			lifetime = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--delay-ms") && i + 1 < argc)
			delay_ms = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--log") && i + 1 < argc)
			logf = fopen(argv[++i], "a");
		else {
			fprintf(stderr, "usage: faultsrv --root DIR [--port-file F] [--lifetime S] "
					"[--delay-ms N] [--log F]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned)(lifetime > 0 ? lifetime : 120)); /* stops by itself */
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sa;
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 64) ||
	    getsockname(ls, (struct sockaddr *)&sa, &sl)) {
		perror("faultsrv");
		return 1;
	}
	if (port_file) {
		char tmp[4200];
		snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
		FILE *f = fopen(tmp, "w");
		if (!f)
			return 1;
		fprintf(f, "%u\n", ntohs(sa.sin_port));
		fclose(f);
		rename(tmp, port_file);
	} else {
		printf("%u\n", ntohs(sa.sin_port));
		fflush(stdout);
	}
	for (;;) {
		int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		pthread_t t;
		if (pthread_create(&t, NULL, conn, (void *)(intptr_t)c)) {
			close(c);
			continue;
		}
		pthread_detach(t);
	}
}
