/* test_dismapi.c - the DismAPI-shaped interface (include/dismapi.h): the
 * seed's own example call repairs an image from the source its policy
 * names; a CancelEvent stops a restore and leaves the image as it was;
 * progress comes on the caller's thread and never goes back; HRESULTs and
 * the last error message. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "dismapi.h"
#include "testutil.h"
#include "wimtest.h"

static char wd[256];

static int verify(const char *wim)
{
	return tsh("wimlib-imagex verify %s/%s >/dev/null 2>&1", wd, wim);
}

struct prog {
	pthread_t caller;
	int calls, off_thread, backwards, bad_total;
	UINT last;
	HANDLE cancel;     /* signalled once Current reaches cancel_at */
	UINT cancel_at;
	int cancelled_at;  /* Current when it signalled, or 0 */
};

static void CALLBACK on_progress(UINT cur, UINT total, PVOID user)
{
	struct prog *p = user;
	p->calls++;
	if (!pthread_equal(p->caller, pthread_self()))
		p->off_thread++;
	if (cur < p->last)
		p->backwards++;
	if (total != 1000 || cur > total)
		p->bad_total++;
	p->last = cur;
	if (p->cancel && !p->cancelled_at && cur >= p->cancel_at && cur < total) {
		p->cancelled_at = (int)cur;
		DismSetCancelEvent(p->cancel);
	}
}

static char *last_error(void)
{
	DismString *m = NULL;
	static char buf[2048];
	buf[0] = '\0';
	if (DismGetLastErrorMessage(&m) == S_OK && m) {
		snprintf(buf, sizeof buf, "%s", m->Value);
		CHECK(DismDelete(m) == S_OK);
	}
	return buf;
}

static void test_seed_example(void)
{
	const char *mk = getenv("MKHIVE") ? getenv("MKHIVE") : "build/mkhive";
	char p[600];
	DismSession Session = DISM_SESSION_DEFAULT;
	HRESULT hr;

	tsh("mkdir -p %s/ptree/a %s/ptree/Windows/System32/config && cp /usr/share/common-licenses/GPL-3 "
	    "%s/ptree/a/ && cp /usr/share/common-licenses/Apache-2.0 %s/ptree/",
	    wd, wd, wd, wd);
	CHECK(tsh("%s %s/ptree/Windows/System32/config/SOFTWARE 'wim:C:\\Src\\pristine.wim:1' 2", mk,
		  wd) == 0);
	CHECK(tsh("wimlib-imagex capture %s/ptree %s/pristine.wim img --compress=LZX >/dev/null 2>&1 && "
		  "cp %s/pristine.wim %s/pol.wim",
		  wd, wd, wd, wd) == 0);
	snprintf(p, sizeof p, "%s/pol.wim", wd);
	{
		char f[600];
		snprintf(f, sizeof f, "%s/ptree/a/GPL-3", wd);
		CHECK(tdamage(p, f) == 0);
	}
	CHECK(verify("pol.wim") != 0);

	/* not initialized yet */
	CHECK_EQ_INT(DismOpenSession(p, NULL, NULL, &Session), DISMAPI_E_DISMAPI_NOT_INITIALIZED);
	CHECK_EQ_INT(DismInitialize(DismLogErrors, NULL, NULL), S_OK);
	CHECK_EQ_INT(DismOpenSession(p, NULL, NULL, &Session), S_OK);
	CHECK(Session != DISM_SESSION_DEFAULT);
	CHECK_EQ_INT(DismShutdown(), DISMAPI_E_OPEN_SESSION_HANDLES);

	DismImageHealthState st = DismImageHealthy;
	struct prog pg = {.caller = pthread_self()};
	CHECK_EQ_INT(DismCheckImageHealth(Session, TRUE, NULL, on_progress, &pg, &st), S_OK);
	CHECK_EQ_INT(st, DismImageRepairable);
	CHECK(pg.calls >= 2 && pg.off_thread == 0 && pg.backwards == 0 && pg.bad_total == 0);
	CHECK_EQ_INT(pg.last, 1000);

	/* unmapped, the policy's Windows path is not guessed: the error names
	 * the file left and the source */
	hr = DismRestoreImageHealth(Session, NULL, 0, TRUE, NULL, NULL, NULL);
	CHECK_EQ_INT(hr, CBS_E_SOURCE_MISSING);
	{
		const char *m = last_error();
		CHECK_MSG(strstr(m, "/a/GPL-3") && strstr(m, "pristine.wim"), m);
	}
	CHECK(verify("pol.wim") != 0);

	CHECK_EQ_INT(DismSetSourcePathMap(Session, "C:\\Src", wd), S_OK);
	/* the seed's example, word for word */
	HRESULT hr2 = S_OK;
	hr2 = DismRestoreImageHealth(Session, NULL, 0, TRUE, NULL, NULL, NULL);
	CHECK_MSG(hr2 == S_OK, last_error());
	CHECK_MSG(verify("pol.wim") == 0, "pol.wim not healthy after DismRestoreImageHealth");

	st = DismImageRepairable;
	CHECK_EQ_INT(DismCheckImageHealth(Session, TRUE, NULL, NULL, NULL, &st), S_OK);
	CHECK_EQ_INT(st, DismImageHealthy);

	CHECK_EQ_INT(DismCloseSession(Session), S_OK);
	CHECK_EQ_INT(DismCloseSession(Session), DISMAPI_E_INVALID_DISM_SESSION);
	CHECK_EQ_INT(DismCheckImageHealth(Session, FALSE, NULL, NULL, NULL, &st),
		     DISMAPI_E_INVALID_DISM_SESSION);
	CHECK_EQ_INT(DismDelete((void *)&st), E_INVALIDARG);
	CHECK_EQ_INT(DismOpenSessionIndex(p, 7, &Session), DISMAPI_E_INVALID_IMAGE_INDEX);
	CHECK_EQ_INT(DismOpenSession("/nonexistent/x.wim", NULL, NULL, &Session),
		     HRESULT_ERROR_FILE_NOT_FOUND);
	CHECK_EQ_INT(DismShutdown(), S_OK);
}

static void test_cancel_event(void)
{
	char p[600], src[600];
	DismSession s;
	CHECK(tbig_image(wd) == 0);
	tsh("cp %s/big.wim %s/cb.wim", wd, wd);
	snprintf(p, sizeof p, "%s/cb.wim", wd);
	for (int i = 0; i < 8; i++) {
		char f[600];
		snprintf(f, sizeof f, "%s/big/f%d.txt", wd, i);
		CHECK(tdamage(p, f) == 0);
	}
	tsh("cp %s/cb.wim %s/cb.orig", wd, wd);
	snprintf(src, sizeof src, "%s/big", wd);
	PCWSTR sources[] = {src};

	CHECK_EQ_INT(DismInitialize(DismLogErrorsWarnings, NULL, NULL), S_OK);
	CHECK_EQ_INT(DismOpenSession(p, NULL, NULL, &s), S_OK);
	HANDLE ev = DismCreateCancelEvent();
	CHECK(ev != NULL);
	/* cancelled once the scan is over (Current 500 of 1000: finding sources,
	 * fetching, compressing anew) */
	struct prog pg = {.caller = pthread_self(), .cancel = ev, .cancel_at = 500};
	HRESULT hr = DismRestoreImageHealth(s, sources, 1, TRUE, ev, on_progress, &pg);
	CHECK_EQ_INT(hr, HRESULT_ERROR_CANCELLED);
	CHECK(pg.cancelled_at >= 500);
	CHECK(pg.off_thread == 0 && pg.backwards == 0);
	CHECK(pg.last < 1000);
	CHECK_MSG(strstr(last_error(), "cancelled") != NULL, "message says cancelled");
	CHECK_MSG(tsh("cmp -s %s/cb.wim %s/cb.orig", wd, wd) == 0, "image byte-identical after cancel");
	CHECK_EQ_INT(DismCloseCancelEvent(ev), S_OK);

	/* an already-signalled eventfd of the caller's own: nothing written */
	HANDLE ev2 = DismCreateCancelEvent();
	CHECK_EQ_INT(DismSetCancelEvent(ev2), S_OK);
	CHECK_EQ_INT(DismRestoreImageHealth(s, sources, 1, TRUE, ev2, NULL, NULL), HRESULT_ERROR_CANCELLED);
	CHECK(tsh("cmp -s %s/cb.wim %s/cb.orig", wd, wd) == 0);
	DismCloseCancelEvent(ev2);

	/* and without a cancel, the same call repairs it */
	CHECK_MSG(DismRestoreImageHealth(s, sources, 1, TRUE, NULL, NULL, NULL) == S_OK, last_error());
	CHECK(verify("cb.wim") == 0);
	CHECK_EQ_INT(DismCloseSession(s), S_OK);
	CHECK_EQ_INT(DismShutdown(), S_OK);
}

void test_dismapi(void)
{
	const char *old = getenv("XDG_STATE_HOME");
	char *saved = old ? strdup(old) : NULL;
	char sd[300];
	snprintf(wd, sizeof wd, "/tmp/ih-dtest-XXXXXX");
	if (!mkdtemp(wd)) {
		CHECK(0);
		free(saved);
		return;
	}
	/* DismOpenSession has no state directory parameter: the default one,
	 * here a fresh one */
	snprintf(sd, sizeof sd, "%s/state", wd);
	setenv("XDG_STATE_HOME", sd, 1);
	test_seed_example();
	test_cancel_event();
	if (saved)
		setenv("XDG_STATE_HOME", saved, 1);
	else
		unsetenv("XDG_STATE_HOME");
	free(saved);
	tsh("rm -rf %s", wd);
}
