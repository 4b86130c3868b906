/*
 * job.c - imagehealth.Job: a check or restore running on the core's
 * threads.  The Lua layer polls its fd (cqueues, luv or its own wait),
 * drains its events and reads its result.  close/__close never block (the
 * threads are joined off the Lua thread) and leave the outcome readable;
 * event loops are told before the fd goes.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "binding.h"

ljob *check_job(lua_State *L, int idx)
{
	ljob *lj = luaL_checkudata(L, idx, JOB_MT);
	if (!lj->j)
		closed_error(L, JOB_MT);
	return lj;
}

/* ------------------------------------------------------------ progress */

static void push_progress_fields(lua_State *L, const ih_progress *p)
{
	setfield_str(L, "phase", ih_phase_name(p->phase));
	setfield_u64(L, "bytes_done", p->bytes_done);
	setfield_u64(L, "bytes_total", p->bytes_total);
	setfield_u64(L, "blobs_done", p->blobs_done);
	setfield_u64(L, "blobs_total", p->blobs_total);
	setfield_num(L, "elapsed", p->elapsed);
	/* percent: by bytes when known, else by blobs; absent when unknown */
	double pct = -1;
	if (p->phase == IH_PHASE_DONE)
		pct = 100;
	else if (p->bytes_total)
		pct = 100.0 * (double)p->bytes_done / (double)p->bytes_total;
	else if (p->blobs_total)
		pct = 100.0 * (double)p->blobs_done / (double)p->blobs_total;
	if (pct >= 0)
		setfield_num(L, "percent", pct > 100 ? 100 : pct);
}

static const char *event_type_name(ih_event_type t)
{
	switch (t) {
	case IH_EVENT_PROGRESS: return "progress";
	case IH_EVENT_DAMAGE: return "damage";
	case IH_EVENT_MESSAGE: return "message";
	case IH_EVENT_DONE: return "done";
	case IH_EVENT_REQUEST: return "request"; /* not shown: see job_drain */
	}
	return "unknown";
}

/* Before a job's fd is closed, every event loop that may poll it must
 * forget it, or it polls a descriptor that is closed or, worse, reused:
 * cqueues (if loaded) by cqueues.cancel(fd), others (imagehealth.luv) by
 * the functions registered with core.on_fd_close.  Errors are dropped:
 * this runs from close and __gc. */
static void loop_forget_fd(lua_State *L, int fd)
{
	int top = lua_gettop(L);
	if (fd < 0)
		return;
	if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) == LUA_TTABLE &&
	    lua_getfield(L, -1, "cqueues") == LUA_TTABLE &&
	    lua_getfield(L, -1, "cancel") == LUA_TFUNCTION) {
		lua_pushinteger(L, fd);
		lua_pcall(L, 1, 0, 0);
	}
	lua_settop(L, top);
	if (lua_getfield(L, LUA_REGISTRYINDEX, FD_HOOKS_KEY) == LUA_TTABLE) {
		lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
		for (lua_Integer i = 1; i <= n; i++) {
			lua_rawgeti(L, top + 1, i);
			lua_pushinteger(L, fd);
			lua_pcall(L, 1, 0, 0);
			lua_settop(L, top + 1);
		}
	}
	lua_settop(L, top);
}

/* Closes a job without blocking: tells the event loops to forget its fd,
 * then releases it (cancelled if running, fd closed, threads joined on a
 * thread of the core's).  Its outcome can still be read from lj->rel. */
void job_release(lua_State *L, ljob *lj)
{
	if (lj->j) {
		ih_job *j = lj->j;
		lj->j = NULL;
		loop_forget_fd(L, ih_job_fd(j));
		ih_job_release(j);
		lj->rel = j;
	}
}

/* Frees what a job holds (never blocks: see job_release). */
void job_free(lua_State *L, ljob *lj)
{
	job_release(L, lj);
	if (lj->rel) {
		ih_job *j = lj->rel;
		lj->rel = NULL;
		ih_job_free(j);
	}
	if (lj->cancel) {
		ih_cancel_unref(lj->cancel);
		lj->cancel = NULL;
	}
}

/* ------------------------------------------------------------ jobs */

/* close and __close: never blocks; the outcome stays readable */
static int job_close(lua_State *L)
{
	ljob *lj = luaL_checkudata(L, 1, JOB_MT);
	job_release(L, lj);
	return 0;
}

static int job_gc(lua_State *L)
{
	ljob *lj = luaL_checkudata(L, 1, JOB_MT);
	job_free(L, lj);
	return 0;
}

static int job_closed(lua_State *L)
{
	ljob *lj = luaL_checkudata(L, 1, JOB_MT);
	lua_pushboolean(L, lj->j == NULL);
	return 1;
}

static int job_pollfd(lua_State *L)
{
	ljob *lj = check_job(L, 1);
	lua_pushinteger(L, ih_job_fd(lj->j));
	return 1;
}

static int job_events(lua_State *L)
{
	check_job(L, 1);
	lua_pushliteral(L, "r");
	return 1;
}

/* cqueues/luv protocol: seconds until the poller should look again even
 * without readiness.  The fd is readable once the job is done, so nil (wait
 * for the fd) while running; 0 when done. */
static int job_timeout(lua_State *L)
{
	ljob *lj = check_job(L, 1);
	if (ih_job_done(lj->j))
		lua_pushnumber(L, 0);
	else
		lua_pushnil(L);
	return 1;
}

static int job_progress(lua_State *L)
{
	ljob *lj = check_job(L, 1);
	ih_progress p;
	memset(&p, 0, sizeof p);
	ih_job_progress(lj->j, &p);
	lua_createtable(L, 0, 8);
	push_progress_fields(L, &p);
	return 1;
}

/* Also on a closed job: whether its outcome is known (see result). */
static int job_done(lua_State *L)
{
	ljob *lj = luaL_checkudata(L, 1, JOB_MT);
	if (lj->j || lj->rel)
		lua_pushboolean(L, ih_job_done(lj->j ? lj->j : lj->rel));
	else if (lj->collected)
		lua_pushboolean(L, 1);
	else
		return closed_error(L, JOB_MT);
	return 1;
}

static int job_cancel(lua_State *L)
{
	ljob *lj = check_job(L, 1);
	ih_job_cancel(lj->j);
	return 0;
}

/* job:wait_raw([timeout_ms]) -> done: blocks in C up to timeout_ms (default
 * 0; < 0 forever) for an event or the end of the job.  Blocks the whole Lua
 * state: the Lua layer calls it with short timeouts. */
static int job_wait_raw(lua_State *L)
{
	ljob *lj = check_job(L, 1);
	lua_Integer ms = luaL_optinteger(L, 2, 0);
	if (ms > INT32_MAX)
		ms = INT32_MAX;
	if (ms < -1)
		ms = -1;
	lua_pushboolean(L, ih_job_wait(lj->j, (int)ms));
	return 1;
}


/* job:drain([max]) -> list of event tables (possibly empty) */
static int job_drain(lua_State *L)
{
	ljob *lj = check_job(L, 1);
	lua_Integer max = luaL_optinteger(L, 2, 4096);
	luaL_argcheck(L, max > 0, 2, "must be positive");
	ih_event buf[32];
	lua_Integer n = 0;
	lua_createtable(L, 8, 0);
	while (n < max) {
		size_t want = sizeof buf / sizeof buf[0];
		if ((lua_Integer)want > max - n)
			want = (size_t)(max - n);
		size_t got = ih_job_events(lj->j, buf, want);
		for (size_t i = 0; i < got; i++) {
			const ih_event *e = &buf[i];
			if (e->type == IH_EVENT_REQUEST) {
				/* for the Lua drive loop to answer (job.lua); never
				 * shown to a progress callback */
				if (!push_request(L, lj->j, e->request_id))
					continue;
				lua_rawseti(L, -2, ++n);
				continue;
			}
			lua_createtable(L, 0, 10);
			setfield_str(L, "type", event_type_name(e->type));
			push_progress_fields(L, &e->progress);
			if (e->text[0]) {
				size_t len = strnlen(e->text, sizeof e->text);
				lua_pushlstring(L, e->text, len);
				lua_setfield(L, -2, "text");
			}
			if (e->type == IH_EVENT_DAMAGE) {
				push_hex(L, e->sha1, sizeof e->sha1);
				lua_setfield(L, -2, "sha1");
				setfield_u64(L, "size", e->size);
				setfield_str(L, "reason", ih_reason_name((ih_reason)e->reason));
				setfield_bool(L, "is_metadata", e->is_metadata);
				/* refs and paths, as the report's damage entry has them */
				push_refs(L, e->refs, e->n_refs);
				setfield_u64(L, "refs_omitted", e->n_refs_omitted);
			}
			lua_rawseti(L, -2, ++n);
		}
		if (got < want)
			break;
	}
	return 1;
}

/* An open job's outcome: the Session (also kept as the job's session). */
static int collect_session(lua_State *L, ih_job *j, ih_error *err)
{
	ih_session *s = NULL;
	int rc = ih_job_session_result(j, &s, err);
	if (rc != IH_OK)
		return rc;
	lua_getiuservalue(L, 1, JOB_UV_SESSION); /* the path */
	push_opened_session(L, s, -1);
	lua_remove(L, -2);
	lua_pushvalue(L, -1);
	lua_setiuservalue(L, 1, JOB_UV_SESSION);
	return IH_OK;
}

/* Takes the finished job's outcome: pushes the report table (an open job:
 * the Session; an info job: the info table) and returns IH_OK, or returns
 * the error. */
static int collect_result(lua_State *L, ljob *lj, ih_job *j, ih_error *err)
{
	int rc;
	if (lj->kind == JOB_OPEN)
		return collect_session(L, j, err);
	if (lj->kind == JOB_INFO) {
		ih_wim_info *wi = NULL;
		rc = ih_job_info_result(j, &wi, err);
		if (rc == IH_OK) {
			push_wim_info(L, wi);
			ih_wim_info_free(wi);
		}
		return rc;
	}
	if (lj->kind == JOB_RESTORE) {
		ih_restore_report *rr = NULL;
		rc = ih_job_restore_result(j, &rr, err);
		if (rc == IH_OK) {
			push_restore_report(L, rr);
			ih_restore_report_free(rr);
		} else if (rc == IH_ERR_BUSY) {
			/* say which session of this process holds the image */
			lua_getiuservalue(L, 1, JOB_UV_SESSION);
			lsession *ls = luaL_testudata(L, -1, SESSION_MT);
			char who[300];
			if (ls && other_sessions(L, ls, who, sizeof who)) {
				size_t ml = strlen(err->message);
				snprintf(err->message + ml, sizeof err->message - ml,
					 " (held in this process by %s: close it, or drop it and "
					 "collectgarbage())", who);
			}
			lua_pop(L, 1);
		}
	} else {
		ih_report *rep = NULL;
		rc = ih_job_result(j, &rep, err);
		if (rc == IH_OK) {
			push_report(L, rep);
			ih_report_free(rep);
		}
	}
	return rc;
}

/* job:result() -> report table | nil, err.  Raises if the job is still
 * running.  The outcome is collected once and kept, so result() may be
 * called again, even after close(). */
static int job_result(lua_State *L)
{
	ljob *lj = luaL_checkudata(L, 1, JOB_MT);
	lua_settop(L, 1);
	if (!lj->collected) {
		ih_job *j = lj->j ? lj->j : lj->rel;
		if (!j)
			return closed_error(L, JOB_MT);
		if (!ih_job_done(j)) {
			if (!lj->j) {
				/* closed while it ran: cancelled, unless the cancel
				 * came too late (a restore committing) */
				lua_pushnil(L);
				push_error_table(L, IH_ERR_CANCELLED, ih_errcode_hresult(IH_ERR_CANCELLED),
						 "the job was closed before it ended (if the cancel "
						 "came too late, its outcome can be read once "
						 "job:done() is true)");
				return 2;
			}
			return luaL_error(L, "imagehealth.Job: result() called while the job "
					     "is still running (call wait() first)");
		}
		ih_error err = {0};
		int rc = collect_result(L, lj, j, &err);
		lj->collected = 1;
		if (!lj->j && lj->rel) { /* nothing more to read from it */
			lj->rel = NULL;
			ih_job_free(j);
		}
		if (rc == IH_OK) {
			lua_setiuservalue(L, 1, JOB_UV_RESULT);
		} else {
			push_fail(L, &err);
			lua_setiuservalue(L, 1, JOB_UV_ERROR);
			lua_pop(L, 1);
		}
	}
	if (lua_getiuservalue(L, 1, JOB_UV_RESULT) != LUA_TNIL)
		return 1;
	lua_pushnil(L);
	lua_getiuservalue(L, 1, JOB_UV_ERROR);
	return 2;
}

/* job:session() -> the Session it runs on (an open job: the one it opened,
 * once its result was read; else nil) */
static int job_session(lua_State *L)
{
	luaL_checkudata(L, 1, JOB_MT);
	if (lua_getiuservalue(L, 1, JOB_UV_SESSION) != LUA_TUSERDATA)
		lua_pushnil(L);
	return 1;
}

static const char *job_kind_name(enum job_kind k)
{
	switch (k) {
	case JOB_QUICK: return "quick check";
	case JOB_SCAN: return "full scan";
	case JOB_RESTORE: return "restore";
	case JOB_OPEN: return "open";
	case JOB_INFO: return "info";
	}
	return "job";
}

/* job:kind() -> "quick check" | "full scan" | "restore" | "open" | "info" */
static int job_kind(lua_State *L)
{
	ljob *lj = luaL_checkudata(L, 1, JOB_MT);
	lua_pushstring(L, job_kind_name(lj->kind));
	return 1;
}

static int job_tostring(lua_State *L)
{
	ljob *lj = luaL_checkudata(L, 1, JOB_MT);
	const char *kind = job_kind_name(lj->kind);
	if (!lj->j) {
		lua_pushfstring(L, "%s: %s (closed)", JOB_MT, kind);
		return 1;
	}
	ih_progress p;
	memset(&p, 0, sizeof p);
	ih_job_progress(lj->j, &p);
	int done = ih_job_done(lj->j);
	char pct[32] = "";
	if (p.bytes_total)
		snprintf(pct, sizeof pct, " %.1f%%", 100.0 * (double)p.bytes_done / (double)p.bytes_total);
	else if (p.blobs_total)
		snprintf(pct, sizeof pct, " %.1f%%", 100.0 * (double)p.blobs_done / (double)p.blobs_total);
	char el[32];
	snprintf(el, sizeof el, "%.1f", p.elapsed);
	lua_pushfstring(L, "%s: %s, %s%s%s, %s s", JOB_MT, kind,
			done ? "done" : "phase ", done ? "" : ih_phase_name(p.phase),
			done ? "" : pct, el);
	return 1;
}

const luaL_Reg lb_job_methods[] = {
	{"pollfd", job_pollfd},
	{"events", job_events},
	{"timeout", job_timeout},
	{"progress", job_progress},
	{"drain", job_drain},
	{"done", job_done},
	{"cancel", job_cancel},
	{"wait_raw", job_wait_raw},
	{"reply_data", lb_job_reply_data},
	{"reply_end", lb_job_reply_end},
	{"reply_order", lb_job_reply_order},
	{"result", job_result},
	{"result_raw", job_result},
	{"session", job_session},
	{"kind", job_kind},
	{"closed", job_closed},
	{"close", job_close},
	{NULL, NULL},
};

const luaL_Reg lb_job_meta[] = {
	{"__gc", job_gc},
	{"__close", job_close},
	{"__tostring", job_tostring},
	{NULL, NULL},
};
