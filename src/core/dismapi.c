/* dismapi.c - the DismAPI-shaped interface (include/dismapi.h) on top of the
 * ih_* API.  Sessions are numbered handles in a table guarded by one mutex;
 * each operation starts an ih_job and waits for it on the caller's thread,
 * polling the job's fd and the CancelEvent fd, so that the Progress callback
 * runs on the caller's thread and never on a worker. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "dismapi.h"
#include "imagehealth.h"
#include "util.h"

#define DISM_PROGRESS_TOTAL 1000u

struct dsession {
	DismSession id;
	ih_session *s;
	char *path;
	char **map; /* pairs */
	size_t n_map;
	int busy;   /* an operation runs on it */
	struct dsession *next;
};

/* What DismDelete may free. */
struct dalloc {
	DismString str;
	struct dalloc *next;
	char text[];
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_init;
static DismSession g_next_id = 1;
static struct dsession *g_sessions;
static struct dalloc *g_allocs;
static _Thread_local char t_last[2048];

static HRESULT set_msg(HRESULT hr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static HRESULT set_msg(HRESULT hr, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t_last, sizeof t_last, fmt, ap);
	va_end(ap);
	return hr;
}

static HRESULT from_ih(int rc, const ih_error *err)
{
	HRESULT hr = (HRESULT)(err && err->hresult ? err->hresult : ih_errcode_hresult((ih_errcode)rc));
	if (rc == IH_ERR_INVALID_SESSION)
		hr = DISMAPI_E_INVALID_DISM_SESSION;
	return set_msg(hr, "%s", err && err->message[0] ? err->message : ih_errcode_name((ih_errcode)rc));
}

HRESULT WINAPI DismInitialize(DismLogLevel LogLevel, PCWSTR LogFilePath, PCWSTR ScratchDirectory)
{
	(void)LogFilePath;
	(void)ScratchDirectory;
	if ((int)LogLevel < DismLogErrors || LogLevel > DismLogErrorsWarningsInfo)
		return set_msg(E_INVALIDARG, "unknown log level %d", (int)LogLevel);
	pthread_mutex_lock(&g_mu);
	g_init = 1;
	pthread_mutex_unlock(&g_mu);
	t_last[0] = '\0';
	return S_OK;
}

HRESULT WINAPI DismShutdown(void)
{
	HRESULT hr = S_OK;
	pthread_mutex_lock(&g_mu);
	if (!g_init)
		hr = set_msg(DISMAPI_E_DISMAPI_NOT_INITIALIZED, "DismInitialize was not called");
	else if (g_sessions)
		hr = set_msg(DISMAPI_E_OPEN_SESSION_HANDLES,
			     "sessions are still open (session %u on %s): close them first",
			     g_sessions->id, g_sessions->path);
	else
		g_init = 0;
	pthread_mutex_unlock(&g_mu);
	return hr;
}

static HRESULT open_session(PCWSTR path, UINT index, DismSession *out)
{
	ih_error err = {0};
	ih_session *s = NULL;
	struct dsession *d;
	int init;
	if (!out || !path || !*path)
		return set_msg(E_INVALIDARG, "DismOpenSession needs an image path and a session pointer");
	pthread_mutex_lock(&g_mu);
	init = g_init;
	pthread_mutex_unlock(&g_mu);
	if (!init)
		return set_msg(DISMAPI_E_DISMAPI_NOT_INITIALIZED, "DismInitialize was not called");
	int rc = ih_session_open(path, &(ih_open_options){.index = index}, &s, &err);
	if (rc) {
		if (rc == IH_ERR_BAD_INDEX)
			return set_msg(DISMAPI_E_INVALID_IMAGE_INDEX, "%s", err.message);
		return from_ih(rc, &err);
	}
	d = calloc(1, sizeof *d);
	if (!d || !(d->path = ih_strdup(path))) {
		free(d);
		ih_session_close(s);
		return set_msg(E_OUTOFMEMORY, "out of memory");
	}
	d->s = s;
	pthread_mutex_lock(&g_mu);
	d->id = g_next_id++;
	if (g_next_id == DISM_SESSION_DEFAULT)
		g_next_id = 1;
	d->next = g_sessions;
	g_sessions = d;
	pthread_mutex_unlock(&g_mu);
	*out = d->id;
	t_last[0] = '\0';
	return S_OK;
}

HRESULT WINAPI DismOpenSession(PCWSTR ImagePath, PCWSTR WindowsDirectory, PCWSTR SystemDrive,
			       DismSession *Session)
{
	if (WindowsDirectory || SystemDrive)
		return set_msg(E_INVALIDARG, "WindowsDirectory and SystemDrive must be NULL: "
					     "a session opens an image file");
	return open_session(ImagePath, 0, Session);
}

HRESULT WINAPI DismOpenSessionIndex(PCWSTR ImagePath, UINT ImageIndex, DismSession *Session)
{
	if (ImageIndex == 0)
		return set_msg(DISMAPI_E_INVALID_IMAGE_INDEX, "image indexes start at 1");
	return open_session(ImagePath, ImageIndex, Session);
}

/* Caller holds g_mu. */
static struct dsession **find_locked(DismSession id)
{
	for (struct dsession **p = &g_sessions; *p; p = &(*p)->next)
		if ((*p)->id == id)
			return p;
	return NULL;
}

static void dsession_free(struct dsession *d)
{
	ih_session_close(d->s);
	for (size_t i = 0; i < 2 * d->n_map; i++)
		free(d->map[i]);
	free(d->map);
	free(d->path);
	free(d);
}

HRESULT WINAPI DismCloseSession(DismSession Session)
{
	struct dsession *d = NULL;
	HRESULT hr = S_OK;
	pthread_mutex_lock(&g_mu);
	struct dsession **p = find_locked(Session);
	if (!p)
		hr = set_msg(DISMAPI_E_INVALID_DISM_SESSION, "no open session %u", Session);
	else if ((*p)->busy)
		hr = set_msg(DISMAPI_E_BUSY, "session %u is running an operation", Session);
	else {
		d = *p;
		*p = d->next;
	}
	pthread_mutex_unlock(&g_mu);
	if (d)
		dsession_free(d);
	return hr;
}

/* Marks the session busy for one operation. */
static HRESULT acquire(DismSession id, struct dsession **out)
{
	HRESULT hr = S_OK;
	pthread_mutex_lock(&g_mu);
	struct dsession **p = find_locked(id);
	if (!g_init)
		hr = set_msg(DISMAPI_E_DISMAPI_NOT_INITIALIZED, "DismInitialize was not called");
	else if (!p)
		hr = set_msg(DISMAPI_E_INVALID_DISM_SESSION, "no open session %u", id);
	else if ((*p)->busy)
		hr = set_msg(DISMAPI_E_BUSY, "session %u is running another operation", id);
	else {
		(*p)->busy = 1;
		*out = *p;
	}
	pthread_mutex_unlock(&g_mu);
	return hr;
}

static void release(struct dsession *d)
{
	pthread_mutex_lock(&g_mu);
	d->busy = 0;
	pthread_mutex_unlock(&g_mu);
}

HRESULT WINAPI DismSetSourcePathMap(DismSession Session, PCWSTR WindowsPrefix, PCWSTR LocalPath)
{
	struct dsession *d;
	HRESULT hr;
	if (!WindowsPrefix || !*WindowsPrefix || !LocalPath || !*LocalPath)
		return set_msg(E_INVALIDARG, "a Windows prefix and a local path are needed");
	if ((hr = acquire(Session, &d)) != S_OK)
		return hr;
	char **m = realloc(d->map, (d->n_map + 1) * 2 * sizeof *m);
	char *a = ih_strdup(WindowsPrefix), *b = ih_strdup(LocalPath);
	if (m)
		d->map = m;
	if (!m || !a || !b) {
		free(a);
		free(b);
		hr = set_msg(E_OUTOFMEMORY, "out of memory");
	} else {
		d->map[2 * d->n_map] = a;
		d->map[2 * d->n_map + 1] = b;
		d->n_map++;
	}
	release(d);
	return hr;
}

/* ---------------------------------------------------------- waiting */

/* Thousandths of the whole operation where each phase starts and ends. */
static void band(int restore, ih_phase p, unsigned *lo, unsigned *hi)
{
	static const unsigned chk[][2] = {
		[IH_PHASE_START] = {0, 0},      [IH_PHASE_QUICK] = {0, 50},
		[IH_PHASE_SCAN] = {50, 950},    [IH_PHASE_INTEGRITY] = {950, 990},
		[IH_PHASE_REPORT] = {990, 999}, [IH_PHASE_PLAN] = {999, 999},
		[IH_PHASE_FETCH] = {999, 999},  [IH_PHASE_WRITE] = {999, 999},
		[IH_PHASE_VERIFY] = {999, 999}, [IH_PHASE_DONE] = {1000, 1000},
	};
	static const unsigned rst[][2] = {
		[IH_PHASE_START] = {0, 0},      [IH_PHASE_QUICK] = {0, 20},
		[IH_PHASE_SCAN] = {20, 450},    [IH_PHASE_INTEGRITY] = {450, 480},
		[IH_PHASE_REPORT] = {480, 500}, [IH_PHASE_PLAN] = {500, 550},
		[IH_PHASE_FETCH] = {550, 800},  [IH_PHASE_WRITE] = {800, 950},
		[IH_PHASE_VERIFY] = {950, 999}, [IH_PHASE_DONE] = {1000, 1000},
	};
	const unsigned(*t)[2] = restore ? rst : chk;
	if ((unsigned)p > IH_PHASE_DONE)
		p = IH_PHASE_START;
	*lo = t[p][0];
	*hi = t[p][1];
}

static unsigned current_of(int restore, const ih_progress *pr)
{
	unsigned lo, hi;
	band(restore, pr->phase, &lo, &hi);
	uint64_t done = pr->bytes_total ? pr->bytes_done : pr->blobs_done;
	uint64_t total = pr->bytes_total ? pr->bytes_total : pr->blobs_total;
	if (!total || done > total)
		done = total = 1, done = pr->phase == IH_PHASE_DONE;
	return lo + (unsigned)((double)(hi - lo) * (double)done / (double)total);
}

/* Waits for j on this thread: calls Progress as it moves, cancels it when
 * the CancelEvent fd becomes readable, answers requests nobody here can
 * answer.  Returns 1 if it cancelled the job. */
static int wait_job(ih_job *j, int restore, HANDLE cancel, DISM_PROGRESS_CALLBACK progress,
		    PVOID user)
{
	unsigned last = 0;
	int cancelled = 0, cfd = cancel ? DISM_HANDLE_FD(cancel) : -1;
	if (progress)
		progress(0, DISM_PROGRESS_TOTAL, user);
	for (;;) {
		struct pollfd pf[2] = {{.fd = ih_job_fd(j), .events = POLLIN},
				       {.fd = cancelled ? -1 : cfd, .events = POLLIN}};
		int n = poll(pf, 2, 100);
		if (n > 0 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR)) && !cancelled) {
			ih_job_cancel(j);
			cancelled = 1;
		}
		ih_event evs[32];
		size_t k;
		while ((k = ih_job_events(j, evs, 32)) > 0) {
			for (size_t i = 0; i < k; i++)
				if (evs[i].type == IH_EVENT_REQUEST)
					ih_job_reply_end(j, evs[i].request_id, 0,
							 "DismRestoreImageHealth answers no requests");
			if (k < 32)
				break;
		}
		int done = ih_job_done(j);
		if (progress) {
			ih_progress pr;
			ih_job_progress(j, &pr);
			unsigned cur = done ? last : current_of(restore, &pr);
			if (cur > last) {
				last = cur;
				progress(cur, DISM_PROGRESS_TOTAL, user);
			}
		}
		if (done)
			return cancelled;
	}
}

static void final_progress(DISM_PROGRESS_CALLBACK progress, PVOID user)
{
	if (progress)
		progress(DISM_PROGRESS_TOTAL, DISM_PROGRESS_TOTAL, user);
}

HRESULT WINAPI DismCheckImageHealth(DismSession Session, BOOL ScanImage, HANDLE CancelEvent,
				    DISM_PROGRESS_CALLBACK Progress, PVOID UserData,
				    DismImageHealthState *ImageHealth)
{
	struct dsession *d;
	ih_error err = {0};
	ih_job *j = NULL;
	ih_report *r = NULL;
	HRESULT hr;
	if (!ImageHealth)
		return set_msg(E_INVALIDARG, "ImageHealth is NULL");
	if ((hr = acquire(Session, &d)) != S_OK)
		return hr;
	int rc = ih_check_start(d->s, &(ih_check_options){.scan = ScanImage ? 1 : 0}, &j, &err);
	if (rc == IH_OK) {
		wait_job(j, 0, CancelEvent, Progress, UserData);
		rc = ih_job_result(j, &r, &err);
		ih_job_free(j);
	}
	release(d);
	if (rc)
		return from_ih(rc, &err);
	*ImageHealth = (DismImageHealthState)r->state;
	set_msg(S_OK, "%s: %s, %zu damaged blob(s), %zu problem(s)", r->image_path,
		ih_health_name(r->state), r->n_damage, r->n_problems);
	ih_report_free(r);
	final_progress(Progress, UserData);
	return S_OK;
}

/* "left: /a (image 1), /b ...; sources: ..." into t_last. */
static HRESULT restore_failure(const ih_restore_report *r)
{
	size_t off = 0;
	HRESULT hr = r->state == IH_NONREPAIRABLE ? HRESULT_ERROR_FILE_CORRUPT : CBS_E_SOURCE_MISSING;
	off += (size_t)snprintf(t_last, sizeof t_last, "%s is %s after the restore: %zu damaged blob(s) left",
				r->image_path, ih_health_name(r->state), r->n_unrepaired);
	for (size_t i = 0; i < r->n_unrepaired && off < sizeof t_last; i++) {
		const ih_damage *dm = &r->unrepaired[i];
		if (dm->code == IH_ERR_DOWNLOAD && hr == CBS_E_SOURCE_MISSING)
			hr = CBS_E_DOWNLOAD_FAILURE;
		if (dm->is_metadata)
			off += (size_t)snprintf(t_last + off, sizeof t_last - off,
						"%s metadata of image %u", i ? ";" : ":",
						dm->n_images ? dm->images[0] : 0);
		else
			off += (size_t)snprintf(t_last + off, sizeof t_last - off, "%s %s%s",
						i ? ";" : ":", dm->n_refs ? dm->refs[0].path : "(no path)",
						dm->n_refs > 1 ? " and others" : "");
	}
	for (size_t i = 0; i < r->n_sources && off < sizeof t_last; i++)
		off += (size_t)snprintf(t_last + off, sizeof t_last - off, "%s source %s%s%s",
					i ? ";" : ". Tried:", r->sources[i].spec,
					r->sources[i].error ? ": " : "",
					r->sources[i].error ? r->sources[i].error : "");
	if (!r->n_sources && off < sizeof t_last)
		snprintf(t_last + off, sizeof t_last - off, ". No source was given and the policy names none%s%s",
			 r->policy_note ? ": " : "", r->policy_note ? r->policy_note : "");
	if (r->n_problems && off < sizeof t_last)
		snprintf(t_last + strlen(t_last), sizeof t_last - strlen(t_last), ". Problem: %s",
			 r->problems[0].message);
	return hr;
}

HRESULT WINAPI DismRestoreImageHealth(DismSession Session, PCWSTR *SourcePaths,
				      UINT SourcePathCount, BOOL LimitAccess,
				      HANDLE CancelEvent, DISM_PROGRESS_CALLBACK Progress,
				      PVOID UserData)
{
	struct dsession *d;
	ih_error err = {0};
	ih_job *j = NULL;
	ih_restore_report *r = NULL;
	HRESULT hr;
	if (SourcePathCount && !SourcePaths)
		return set_msg(E_INVALIDARG, "SourcePathCount is %u and SourcePaths NULL", SourcePathCount);
	for (UINT i = 0; i < SourcePathCount; i++)
		if (!SourcePaths[i])
			return set_msg(E_INVALIDARG, "SourcePaths[%u] is NULL", i);
	if ((hr = acquire(Session, &d)) != S_OK)
		return hr;
	ih_restore_options ro = {
		.sources = SourcePaths,
		.n_sources = SourcePathCount,
		.limit_access = LimitAccess ? 1 : 0,
		.path_map = (const char *const *)d->map,
		.n_path_map = d->n_map,
	};
	int rc = ih_restore_start(d->s, &ro, &j, &err);
	int cancelled = 0;
	if (rc == IH_OK) {
		cancelled = wait_job(j, 1, CancelEvent, Progress, UserData);
		rc = ih_job_restore_result(j, &r, &err);
		ih_job_free(j);
	}
	if (rc == IH_ERR_CANCELLED || (rc && cancelled)) {
		set_msg(HRESULT_ERROR_CANCELLED, "the restore of %s was cancelled; the image is unchanged",
			d->path);
		release(d);
		return HRESULT_ERROR_CANCELLED;
	}
	release(d);
	if (rc)
		return from_ih(rc, &err);
	if (r->state != IH_HEALTHY) {
		hr = restore_failure(r);
	} else {
		hr = S_OK;
		set_msg(S_OK, "%s is healthy: %zu blob(s) repaired", r->image_path, r->n_repaired);
		final_progress(Progress, UserData);
	}
	ih_restore_report_free(r);
	return hr;
}

/* ---------------------------------------------------------- strings */

HRESULT WINAPI DismGetLastErrorMessage(DismString **ErrorMessage)
{
	if (!ErrorMessage)
		return E_INVALIDARG;
	size_t n = strlen(t_last);
	struct dalloc *a = malloc(sizeof *a + n + 1);
	if (!a)
		return E_OUTOFMEMORY;
	memcpy(a->text, t_last, n + 1);
	a->str.Value = a->text;
	pthread_mutex_lock(&g_mu);
	a->next = g_allocs;
	g_allocs = a;
	pthread_mutex_unlock(&g_mu);
	*ErrorMessage = &a->str;
	return S_OK;
}

HRESULT WINAPI DismDelete(VOID *DismStructure)
{
	struct dalloc *a = NULL;
	if (!DismStructure)
		return E_INVALIDARG;
	pthread_mutex_lock(&g_mu);
	for (struct dalloc **p = &g_allocs; *p; p = &(*p)->next)
		if (&(*p)->str == DismStructure) {
			a = *p;
			*p = a->next;
			break;
		}
	pthread_mutex_unlock(&g_mu);
	if (!a)
		return set_msg(E_INVALIDARG, "DismDelete: not a structure this API returned");
	free(a);
	return S_OK;
}

/* ---------------------------------------------------------- cancel events */

HANDLE WINAPI DismCreateCancelEvent(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd == 0) { /* fd 0 would read as NULL */
		int again = fcntl(fd, F_DUPFD_CLOEXEC, 1);
		close(fd);
		fd = again;
	}
	if (fd < 0) {
		set_msg(E_OUTOFMEMORY, "eventfd: %s", strerror(errno));
		return NULL;
	}
	return DISM_FD_HANDLE(fd);
}

HRESULT WINAPI DismSetCancelEvent(HANDLE CancelEvent)
{
	uint64_t one = 1;
	if (!CancelEvent)
		return set_msg(E_INVALIDARG, "no cancel event");
	if (write(DISM_HANDLE_FD(CancelEvent), &one, sizeof one) < 0 && errno != EAGAIN)
		return set_msg(E_INVALIDARG, "cannot signal the cancel event: %s", strerror(errno));
	return S_OK;
}

HRESULT WINAPI DismCloseCancelEvent(HANDLE CancelEvent)
{
	if (!CancelEvent)
		return set_msg(E_INVALIDARG, "no cancel event");
	return close(DISM_HANDLE_FD(CancelEvent)) == 0 ? S_OK
						       : set_msg(E_INVALIDARG, "close: %s", strerror(errno));
}
