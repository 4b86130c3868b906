/* test_session_job.c - open and info as jobs (ih_session_open_start,
 * ih_session_info_start): the outcome equals the synchronous calls', errors
 * come back from the result, a released job lets go of the image. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include "imagehealth.h"
#include "testutil.h"
#include "wimtest.h"

static char wd[256];

static ih_job *open_job(const char *path, ih_cancel *tok)
{
	ih_job *j = NULL;
	ih_error err = {0};
	char sd[300];
	snprintf(sd, sizeof sd, "%s/state", wd);
	ih_open_options o = {.state_dir = sd};
	CHECK(ih_session_open_start(path, &o, tok, &j, &err) == IH_OK && j);
	return j;
}

/* Every field of a against b (the synchronous call's). */
static int same_info(const ih_wim_info *a, const ih_wim_info *b)
{
	int same = !strcmp(a->path, b->path) && !memcmp(a->guid, b->guid, 16) &&
		   a->image_count == b->image_count && a->n_images == b->n_images &&
		   a->blob_count == b->blob_count && a->file_size == b->file_size &&
		   a->compression == b->compression && a->total_parts == b->total_parts;
	for (size_t i = 0; same && i < a->n_images; i++) {
		const ih_image_info *x = &a->images[i], *y = &b->images[i];
		same = x->index == y->index && !strcmp(x->name, y->name) &&
		       !strcmp(x->description, y->description) && x->file_count == y->file_count &&
		       x->dir_count == y->dir_count && x->blob_count == y->blob_count &&
		       x->total_bytes == y->total_bytes && x->metadata_ok == y->metadata_ok;
	}
	return same;
}

/* Whether another open file description can take the image's lock
 * exclusively (no session of this process holds it). */
static int lock_free(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int ok = fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

void test_session_job(void)
{
	char wim[300], missing[300];
	ih_error err = {0};
	snprintf(wd, sizeof wd, "/tmp/ih-sjtest-XXXXXX");
	if (!mkdtemp(wd)) {
		CHECK(0);
		return;
	}
	snprintf(wim, sizeof wim, "%s/multi.wim", wd);
	snprintf(missing, sizeof missing, "%s/nothing.wim", wd);
	CHECK(tsh("mkdir -p %s/t && cp -r /usr/share/common-licenses %s/t/ && "
		  "wimlib-imagex capture %s/t %s one >/dev/null 2>&1 && "
		  "wimlib-imagex append %s/t %s two --compress=LZX >/dev/null 2>&1 && "
		  "wimlib-imagex append %s/t/common-licenses %s three >/dev/null 2>&1",
		  wd, wd, wd, wim, wd, wim, wd, wim) == 0);

	/* open as a job, then info as a job: equal to the synchronous calls */
	{
		ih_job *j = open_job(wim, NULL);
		ih_session *s = NULL, *sync = NULL;
		ih_wim_info *info = NULL;
		const ih_wim_info *want = NULL;
		ih_job_wait_answering(j, NULL, NULL);
		CHECK(ih_job_session_result(j, &s, &err) == IH_OK && s);
		CHECK(ih_job_result(j, &(ih_report *){NULL}, &err) == IH_ERR_INVALID_ARG);
		ih_job_free(j);
		CHECK(s && ih_session_info_start(s, NULL, &j, &err) == IH_OK);
		if (s && j) {
			ih_job_wait_answering(j, NULL, NULL);
			CHECK(ih_job_restore_result(j, &(ih_restore_report *){NULL}, &err) ==
			      IH_ERR_INVALID_ARG && strstr(err.message, "ih_job_info_result"));
			CHECK(ih_job_info_result(j, &info, &err) == IH_OK && info);
			CHECK(ih_job_info_result(j, &info, &err) == IH_ERR_INVALID_ARG); /* taken */
			ih_job_free(j);
		}
		CHECK(ih_session_open(wim, NULL, &sync, &err) == IH_OK);
		CHECK(sync && ih_session_info(sync, &want, &err) == IH_OK);
		CHECK(info && want && info->image_count == 3 && info->n_images == 3);
		CHECK(info && want && same_info(info, want));
		CHECK(info && info->images[2].file_count > 5 && info->images[2].metadata_ok);
		/* the session's own info was filled by the job, and equals it */
		const ih_wim_info *cached = NULL;
		CHECK(s && ih_session_info(s, &cached, &err) == IH_OK && info && same_info(cached, info));
		/* the copy outlives the session */
		ih_session_close(s);
		ih_session_close(sync);
		CHECK(info && !strcmp(info->images[0].name, "one"));
		ih_wim_info_free(info);
	}
	/* errors come back from the result */
	{
		ih_job *j = open_job(missing, NULL);
		ih_session *s = NULL;
		ih_job_wait_answering(j, NULL, NULL);
		CHECK(ih_job_session_result(j, &s, &err) == IH_ERR_NOT_FOUND && !s);
		CHECK(strstr(err.message, "nothing.wim") != NULL);
		ih_job_free(j);
		CHECK(ih_session_open_start("", NULL, NULL, &j, &err) == IH_ERR_INVALID_ARG);
		CHECK(ih_session_info_start(NULL, NULL, &j, &err) == IH_ERR_INVALID_SESSION);
	}
	/* a cancelled token: nothing opened */
	{
		ih_cancel *tok = ih_cancel_new();
		ih_cancel_trigger(tok);
		ih_job *j = open_job(wim, tok);
		ih_session *s = NULL;
		ih_job_wait_answering(j, NULL, NULL);
		CHECK(ih_job_session_result(j, &s, &err) == IH_ERR_CANCELLED && !s);
		ih_job_free(j);
		ih_cancel_unref(tok);
		CHECK(lock_free(wim));
	}
	/* released while running (or just done) and never read: the image is
	 * let go once its threads are joined */
	for (int k = 0; k < 20; k++) {
		ih_job *j = open_job(wim, NULL);
		ih_job_release(j);
		ih_job_free(j);
	}
	ih_jobs_wait_released(5000);
	CHECK(lock_free(wim));
	tsh("rm -rf %s", wd);
}
