/*
 * imagehealth_core.c - the C half of the Lua binding: luaopen_imagehealth_core.
 *
 * Knows Lua and the public C API (imagehealth.h) only.  Three userdata types
 * hold a pointer to a C object:
 *
 *   imagehealth.Session     ih_session *
 *   imagehealth.Job         ih_job *       (plus the cancel token it uses)
 *   imagehealth.CancelToken ih_cancel *
 *
 * For each, `close`, `__close` and `__gc` are one idempotent function that
 * frees the C object and nulls the pointer; any other method called on a
 * closed object raises "attempt to use a closed <type>".
 *
 * Session methods: info, check_start{...} and restore_start{...} (each
 * gives a Job; the Lua layer wraps them as check_health / restore_health),
 * path, closed, close.  A job's result() is the report as a plain table:
 * the check fields, and for a restore its repaired, unrepaired, sources,
 * bytes_written, rebuilt and policy (see lua/imagehealth/report.lua).
 *
 * Expected failures return nil plus an imagehealth.Error table (fields code,
 * hresult, message); misuse of arguments raises.  Nothing here ever runs Lua
 * on another thread: the core's worker threads only fill the job's queue, and
 * the Lua layer (lua/imagehealth/)  drives the job from the calling
 * coroutine, so that a progress callback may yield.
 *
 * The Lua layer adds methods to these types with core.interpose(), in the
 * manner of cqueues.
 */
#include <dlfcn.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

#include "imagehealth.h"

#define SESSION_MT "imagehealth.Session"
#define JOB_MT "imagehealth.Job"
#define TOKEN_MT "imagehealth.CancelToken"
#define ERROR_MT "imagehealth.Error"

#if LUA_VERSION_NUM < 504
#error "imagehealth needs Lua 5.4"
#endif

/* ------------------------------------------------------------ helpers */

typedef struct lsession {
	ih_session *s;
	dev_t dev;     /* the image file, to find other sessions on it */
	ino_t ino;
} lsession;

/* Registry keys: the weak-keyed set of every Session of this state, and
 * the list of functions core.on_fd_close registered. */
#define SESSIONS_KEY "imagehealth.sessions"
#define FD_HOOKS_KEY "imagehealth.fd_close_hooks"

/* What a job costs on the C side (event queue, worker threads and their
 * buffers, the eventfd), in KiB, told to the collector when one starts so
 * that dropped jobs are reclaimed promptly. */
#define JOB_COST_KB 1024

/* User values of a Session: 1 = weak-keyed table of its jobs, 2 = path. */
enum { SESSION_UV_JOBS = 1, SESSION_UV_PATH, SESSION_NUV = SESSION_UV_PATH };

enum job_kind { JOB_QUICK = 0, JOB_SCAN, JOB_RESTORE };

typedef struct ljob {
	ih_job *j;
	ih_job *rel;         /* after close: released (fd closed, threads joined
				off this thread), its outcome still to be read */
	ih_cancel *cancel;   /* our own reference to the job's token, or NULL */
	int collected;       /* ih_job_result was called; result in the uservalues */
	enum job_kind kind;
} ljob;

/* User values of a Job: 1 = its Session, 2 = result table, 3 = error. */
enum { JOB_UV_SESSION = 1, JOB_UV_RESULT, JOB_UV_ERROR, JOB_NUV = JOB_UV_ERROR };

typedef struct ltoken {
	ih_cancel *c;
} ltoken;

static void setfield_str(lua_State *L, const char *k, const char *v)
{
	lua_pushstring(L, v ? v : "");
	lua_setfield(L, -2, k);
}

static void setfield_int(lua_State *L, const char *k, lua_Integer v)
{
	lua_pushinteger(L, v);
	lua_setfield(L, -2, k);
}

/* Sizes and counts are uint64_t; lua_Integer is 64-bit signed.  Values past
 * 2^63 cannot occur in a real image, but clamp rather than wrap. */
static void setfield_u64(lua_State *L, const char *k, uint64_t v)
{
	lua_pushinteger(L, v > (uint64_t)LUA_MAXINTEGER ? LUA_MAXINTEGER : (lua_Integer)v);
	lua_setfield(L, -2, k);
}

static void setfield_num(lua_State *L, const char *k, double v)
{
	lua_pushnumber(L, v);
	lua_setfield(L, -2, k);
}

static void setfield_bool(lua_State *L, const char *k, int v)
{
	lua_pushboolean(L, v);
	lua_setfield(L, -2, k);
}

static void push_hex(lua_State *L, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	luaL_Buffer b;
	char *out = luaL_buffinitsize(L, &b, 2 * n);
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	luaL_pushresultsize(&b, 2 * n);
}

static int closed_error(lua_State *L, const char *tname)
{
	return luaL_error(L, "attempt to use a closed %s", tname);
}

/* The userdata at idx of each type, raising if it is not one or if it was
 * closed. */
static lsession *check_session(lua_State *L, int idx)
{
	lsession *ls = luaL_checkudata(L, idx, SESSION_MT);
	if (!ls->s)
		closed_error(L, SESSION_MT);
	return ls;
}

static ljob *check_job(lua_State *L, int idx)
{
	ljob *lj = luaL_checkudata(L, idx, JOB_MT);
	if (!lj->j)
		closed_error(L, JOB_MT);
	return lj;
}

static ltoken *check_token(lua_State *L, int idx)
{
	ltoken *t = luaL_checkudata(L, idx, TOKEN_MT);
	if (!t->c)
		closed_error(L, TOKEN_MT);
	return t;
}

/* ------------------------------------------------------------ errors */

static void push_error_table(lua_State *L, ih_errcode code, uint32_t hresult,
			     const char *message)
{
	lua_createtable(L, 0, 3);
	setfield_str(L, "code", ih_errcode_name(code));
	setfield_int(L, "hresult", (lua_Integer)hresult);
	setfield_str(L, "message", message);
	luaL_setmetatable(L, ERROR_MT);
}

/* Pushes nil, err; returns 2. */
static int push_fail(lua_State *L, const ih_error *e)
{
	lua_pushnil(L);
	push_error_table(L, e->code, e->hresult ? e->hresult : ih_errcode_hresult(e->code),
			 e->message[0] ? e->message : ih_errcode_name(e->code));
	return 2;
}

static int error_tostring(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "code");
	lua_getfield(L, 1, "hresult");
	lua_getfield(L, 1, "message");
	const char *code = lua_tostring(L, -3);
	lua_Integer hr = lua_tointeger(L, -2);
	const char *msg = lua_tostring(L, -1);
	/* lua_pushfstring has no %X: format the HRESULT ourselves. */
	char hex[16];
	snprintf(hex, sizeof hex, "%08" PRIX32, (uint32_t)hr);
	if (msg && *msg)
		lua_pushfstring(L, "imagehealth: %s (0x%s): %s", code ? code : "error", hex, msg);
	else
		lua_pushfstring(L, "imagehealth: %s (0x%s)", code ? code : "error", hex);
	return 1;
}

/* err .. x and x .. err: as tostring(err) would read */
static int error_concat(lua_State *L)
{
	luaL_tolstring(L, 1, NULL);
	luaL_tolstring(L, 2, NULL);
	lua_concat(L, 2);
	return 1;
}

static ih_errcode code_by_name(const char *name)
{
	for (int c = 0; c < IH_ERR__COUNT; c++)
		if (strcmp(ih_errcode_name((ih_errcode)c), name) == 0)
			return (ih_errcode)c;
	return IH_ERR__COUNT;
}

/* core.error(code_name, message) -> Error table (not raised). */
static int l_error(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	const char *msg = luaL_optstring(L, 2, NULL);
	ih_errcode c = code_by_name(name);
	if (c == IH_ERR__COUNT)
		return luaL_argerror(L, 1, lua_pushfstring(L, "unknown error code '%s'", name));
	push_error_table(L, c, ih_errcode_hresult(c), msg ? msg : name);
	return 1;
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

/* ------------------------------------------------------------ cancel token */

static int l_cancel_token(lua_State *L)
{
	ltoken *t = lua_newuserdatauv(L, sizeof *t, 0);
	t->c = NULL;
	luaL_setmetatable(L, TOKEN_MT);
	t->c = ih_cancel_new();
	if (!t->c)
		return luaL_error(L, "imagehealth: out of memory");
	return 1;
}

static int token_close(lua_State *L)
{
	ltoken *t = luaL_checkudata(L, 1, TOKEN_MT);
	if (t->c) {
		ih_cancel_unref(t->c);
		t->c = NULL;
	}
	return 0;
}

static int token_cancel(lua_State *L)
{
	ltoken *t = check_token(L, 1);
	ih_cancel_trigger(t->c);
	return 0;
}

static int token_cancelled(lua_State *L)
{
	ltoken *t = check_token(L, 1);
	lua_pushboolean(L, ih_cancel_is_set(t->c));
	return 1;
}

static int token_closed(lua_State *L)
{
	ltoken *t = luaL_checkudata(L, 1, TOKEN_MT);
	lua_pushboolean(L, t->c == NULL);
	return 1;
}

static int token_tostring(lua_State *L)
{
	ltoken *t = luaL_checkudata(L, 1, TOKEN_MT);
	if (!t->c)
		lua_pushfstring(L, "%s (closed)", TOKEN_MT);
	else
		lua_pushfstring(L, "%s (%s)", TOKEN_MT,
				ih_cancel_is_set(t->c) ? "cancelled" : "not cancelled");
	return 1;
}

/* ------------------------------------------------------------ session */

/* The string at idx, refused when it holds a NUL: C would see only the part
 * before it (ih.open("x\0junk") opened x).  what names the option. */
static const char *nul_free(lua_State *L, int idx, const char *what, int item)
{
	size_t len;
	const char *v = lua_tolstring(L, idx, &len);
	if (strlen(v) != len) {
		if (item)
			luaL_error(L, "bad option '%s' (item %d: string with an embedded NUL)", what,
				   item);
		luaL_error(L, "bad option '%s' (string with an embedded NUL)", what);
	}
	return v;
}

/* Leaves the value on the stack: with an options table whose __index
 * makes fresh strings nothing else holds it, and a collection (in the next
 * __index call, say) would free it while C still uses it. */
static const char *opt_string(lua_State *L, int t, const char *k)
{
	if (lua_getfield(L, t, k) == LUA_TNIL)
		return NULL;
	if (lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "bad option '%s' (string expected, got %s)", k, luaL_typename(L, -1));
	return nul_free(L, -1, k, 0);
}

static lua_Integer opt_integer(lua_State *L, int t, const char *k, lua_Integer def,
			       lua_Integer min, lua_Integer max)
{
	lua_Integer v = def;
	if (lua_getfield(L, t, k) != LUA_TNIL) {
		int ok;
		v = lua_tointegerx(L, -1, &ok);
		if (!ok)
			luaL_error(L, "bad option '%s' (integer expected, got %s)", k,
				   lua_type(L, -1) == LUA_TNUMBER ? "float" : luaL_typename(L, -1));
		if (v < min || v > max)
			luaL_error(L, "bad option '%s' (%I out of range %I..%I)", k, v, min, max);
	}
	lua_pop(L, 1);
	return v;
}

static int opt_boolean(lua_State *L, int t, const char *k)
{
	int v = lua_getfield(L, t, k);
	if (v != LUA_TNIL && v != LUA_TBOOLEAN)
		luaL_error(L, "bad option '%s' (boolean expected, got %s)", k, luaL_typename(L, -1));
	v = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return v;
}

/* core.open(path [, {index=, state_dir=, threads=, reference=, case_insensitive=}])
 * -> Session | nil, err */
static int l_open(lua_State *L)
{
	size_t plen;
	const char *path = luaL_checklstring(L, 1, &plen);
	ih_open_options o = {0};
	if (strlen(path) != plen)
		luaL_argerror(L, 1, "path with an embedded NUL");
	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		o.index = (uint32_t)opt_integer(L, 2, "index", 0, 0, UINT32_MAX);
		o.state_dir = opt_string(L, 2, "state_dir");
		o.threads = (int)opt_integer(L, 2, "threads", 0, 0, 4096);
		o.reference = opt_string(L, 2, "reference");
		o.case_insensitive = opt_boolean(L, 2, "case_insensitive");
	}
	lsession *ls = lua_newuserdatauv(L, sizeof *ls, SESSION_NUV);
	ls->s = NULL;
	luaL_setmetatable(L, SESSION_MT);
	/* jobs: a weak-keyed set, so that close can stop them first */
	lua_createtable(L, 0, 0);
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "k");
	lua_setfield(L, -2, "__mode");
	lua_setmetatable(L, -2);
	lua_setiuservalue(L, -2, SESSION_UV_JOBS);
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, -2, SESSION_UV_PATH);

	ih_error err = {0};
	if (ih_session_open(path, &o, &ls->s, &err) != IH_OK) {
		ls->s = NULL;
		return push_fail(L, &err);
	}
	struct stat st;
	if (stat(path, &st) == 0) {
		ls->dev = st.st_dev;
		ls->ino = st.st_ino;
	}
	lua_getfield(L, LUA_REGISTRYINDEX, SESSIONS_KEY);
	lua_pushvalue(L, -2);
	lua_pushboolean(L, 1);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	return 1;
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

/* core.worker_nice(n): jobs started from now on run their threads n nicer
 * than the caller (0..19), for an event loop on a busy machine. */
static int l_worker_nice(lua_State *L)
{
	ih_set_worker_nice((int)luaL_checkinteger(L, 1));
	return 0;
}

/* core.wait_released([ms]): waits (default up to 5 s) until the threads of
 * every closed or collected job are joined (they are, off the Lua thread,
 * within moments); for tests and for a host about to exit. */
static int l_wait_released(lua_State *L)
{
	ih_jobs_wait_released((int)luaL_optinteger(L, 1, 5000));
	return 0;
}

/* core.on_fd_close(fn): fn(fd) is called before any job's fd is closed. */
static int l_on_fd_close(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TFUNCTION);
	lua_getfield(L, LUA_REGISTRYINDEX, FD_HOOKS_KEY);
	lua_pushvalue(L, 1);
	lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
	return 0;
}

/* Is another open Session of this state on the same file as ls?  With buf,
 * names them there. */
static int other_sessions(lua_State *L, const lsession *ls, char *buf, size_t len)
{
	int n = 0;
	size_t off = 0;
	if (buf && len)
		buf[0] = '\0';
	if (!ls->ino)
		return 0;
	lua_getfield(L, LUA_REGISTRYINDEX, SESSIONS_KEY);
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		lua_pop(L, 1);
		lsession *o = luaL_testudata(L, -1, SESSION_MT);
		if (o && o != ls && o->s && o->dev == ls->dev && o->ino == ls->ino) {
			n++;
			if (buf && off < len) {
				lua_getiuservalue(L, -1, SESSION_UV_PATH);
				off += (size_t)snprintf(buf + off, len - off, "%s%s: %s (%p)",
							n > 1 ? ", " : "", SESSION_MT,
							lua_tostring(L, -1) ? lua_tostring(L, -1) : "?",
							(const void *)o);
				lua_pop(L, 1);
			}
		}
	}
	lua_pop(L, 1);
	return n;
}

/* Closes a job without blocking: tells the event loops to forget its fd,
 * then releases it (cancelled if running, fd closed, threads joined on a
 * thread of the core's).  Its outcome can still be read from lj->rel. */
static void job_release(lua_State *L, ljob *lj)
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
static void job_free(lua_State *L, ljob *lj)
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

static int session_close(lua_State *L)
{
	lsession *ls = luaL_checkudata(L, 1, SESSION_MT);
	if (!ls->s)
		return 0;
	/* Stop and free the session's jobs first: they use it. */
	if (lua_getiuservalue(L, 1, SESSION_UV_JOBS) == LUA_TTABLE) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			lua_pop(L, 1);
			ljob *lj = luaL_testudata(L, -1, JOB_MT);
			if (lj)
				job_release(L, lj);
		}
	}
	lua_pop(L, 1);
	ih_session *s = ls->s;
	ls->s = NULL;
	ih_session_close(s);
	return 0;
}

static int session_closed(lua_State *L)
{
	lsession *ls = luaL_checkudata(L, 1, SESSION_MT);
	lua_pushboolean(L, ls->s == NULL);
	return 1;
}

static int session_path(lua_State *L)
{
	luaL_checkudata(L, 1, SESSION_MT);
	lua_getiuservalue(L, 1, SESSION_UV_PATH);
	return 1;
}

static void push_image_info(lua_State *L, const ih_image_info *im)
{
	lua_createtable(L, 0, 8);
	setfield_int(L, "index", im->index);
	setfield_str(L, "name", im->name);
	setfield_str(L, "description", im->description);
	setfield_u64(L, "file_count", im->file_count);
	setfield_u64(L, "dir_count", im->dir_count);
	setfield_u64(L, "blob_count", im->blob_count);
	setfield_u64(L, "total_bytes", im->total_bytes);
	setfield_bool(L, "metadata_ok", im->metadata_ok);
}

/* session:info() -> table | nil, err */
/* session:seal([file]) -> path | nil, err: records an applied tree's
 * reference manifest (file nil: in the state store). */
static int session_seal(lua_State *L)
{
	lsession *ls = check_session(L, 1);
	const char *file = luaL_optstring(L, 2, NULL);
	char *where = NULL;
	ih_error err = {0};
	if (ih_tree_seal(ls->s, file, &where, &err) != IH_OK)
		return push_fail(L, &err);
	lua_pushstring(L, where ? where : "");
	free(where);
	return 1;
}

static int session_info(lua_State *L)
{
	lsession *ls = check_session(L, 1);
	const ih_wim_info *wi = NULL;
	ih_error err = {0};
	if (ih_session_info(ls->s, &wi, &err) != IH_OK)
		return push_fail(L, &err);
	lua_createtable(L, 0, 18);
	setfield_str(L, "path", wi->path);
	push_hex(L, wi->guid, sizeof wi->guid);
	lua_setfield(L, -2, "guid");
	setfield_int(L, "version", wi->version);
	setfield_int(L, "flags", wi->flags);
	setfield_int(L, "chunk_size", wi->chunk_size);
	setfield_str(L, "compression", wi->compression_name ? wi->compression_name : "unknown");
	setfield_int(L, "compression_type", wi->compression);
	setfield_bool(L, "solid", wi->solid);
	setfield_int(L, "parts", wi->total_parts);
	setfield_int(L, "image_count", wi->image_count);
	setfield_int(L, "boot_index", wi->boot_index);
	setfield_u64(L, "blob_count", wi->blob_count);
	setfield_u64(L, "file_size", wi->file_size);
	setfield_bool(L, "has_integrity", wi->has_integrity);
	setfield_int(L, "index", wi->selected_index);
	lua_createtable(L, (int)wi->n_images, 0);
	for (size_t i = 0; i < wi->n_images; i++) {
		push_image_info(L, &wi->images[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "images");
	return 1;
}

static int session_tostring(lua_State *L)
{
	lsession *ls = luaL_checkudata(L, 1, SESSION_MT);
	lua_getiuservalue(L, 1, SESSION_UV_PATH);
	const char *path = lua_tostring(L, -1);
	if (!path)
		path = "?";
	if (!ls->s) {
		lua_pushfstring(L, "%s: %s (closed)", SESSION_MT, path);
		return 1;
	}
	const ih_wim_info *wi = NULL;
	ih_error err = {0};
	if (ih_session_info(ls->s, &wi, &err) != IH_OK) {
		lua_pushfstring(L, "%s: %s", SESSION_MT, path);
		return 1;
	}
	unsigned n = wi->image_count;
	if (wi->selected_index)
		lua_pushfstring(L, "%s: %s (image %d of %d, %s%s)", SESSION_MT, path,
				(int)wi->selected_index, (int)n,
				wi->compression_name ? wi->compression_name : "?",
				wi->solid ? ", solid" : "");
	else
		lua_pushfstring(L, "%s: %s (%d image%s, %s%s)", SESSION_MT, path, (int)n,
				n == 1 ? "" : "s", wi->compression_name ? wi->compression_name : "?",
				wi->solid ? ", solid" : "");
	return 1;
}

/* The option 'cancel' of the options table at t: a live CancelToken or
 * nil; raises otherwise.  The token stays on the stack (like opt_string's
 * strings: an __index may have made it, and nothing else holds it). */
static ltoken *opt_token(lua_State *L, int t)
{
	ltoken *tok = NULL;
	if (lua_getfield(L, t, "cancel") != LUA_TNIL) {
		tok = luaL_testudata(L, -1, TOKEN_MT);
		if (!tok)
			luaL_error(L, "bad option 'cancel' (%s expected, got %s)", TOKEN_MT,
				   luaL_typename(L, -1));
		if (!tok->c)
			luaL_error(L, "bad option 'cancel' (attempt to use a closed %s)", TOKEN_MT);
	}
	return tok;
}

/* A new Job userdata for the session at index 1, on top of the stack,
 * holding its own reference to the token. */
static ljob *new_job(lua_State *L, ltoken *tok, enum job_kind kind)
{
	/* the C side of a job is far bigger than its userdata */
	lua_gc(L, LUA_GCSTEP, JOB_COST_KB);
	ljob *lj = lua_newuserdatauv(L, sizeof *lj, JOB_NUV);
	memset(lj, 0, sizeof *lj);
	luaL_setmetatable(L, JOB_MT);
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, -2, JOB_UV_SESSION);
	lj->kind = kind;
	if (tok) /* the token userdata may be closed or collected while the job runs */
		lj->cancel = ih_cancel_ref(tok->c);
	return lj;
}

/* Registers the Job on top of the stack with the session at index 1, so
 * that session:close() stops it. */
static void register_job(lua_State *L)
{
	lua_getiuservalue(L, 1, SESSION_UV_JOBS);
	lua_pushvalue(L, -2);
	lua_pushboolean(L, 1);
	lua_rawset(L, -3);
	lua_pop(L, 1);
}

/* session:check_start{scan=, deep=, threads=, cancel=, no_record=} -> Job | nil, err */
static int session_check_start(lua_State *L)
{
	lsession *ls = check_session(L, 1);
	ih_check_options o = {0};
	ltoken *tok = NULL;
	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		o.scan = opt_boolean(L, 2, "scan");
		o.no_record = opt_boolean(L, 2, "no_record");
		o.deep = opt_boolean(L, 2, "deep");
		o.threads = (int)opt_integer(L, 2, "threads", 0, 0, 4096);
		tok = opt_token(L, 2);
	}
	ljob *lj = new_job(L, tok, o.scan ? JOB_SCAN : JOB_QUICK);
	o.cancel = lj->cancel;
	ih_error err = {0};
	if (ih_check_start(ls->s, &o, &lj->j, &err) != IH_OK) {
		lj->j = NULL;
		job_free(L, lj);
		return push_fail(L, &err);
	}
	register_job(L);
	return 1;
}

/* The list of strings at option k of the options table at t, as a C array
 * in a userdata left on the stack (the strings stay alive: the userdata
 * holds the list, which an __index may have made).  Raises on anything but
 * a list of strings. */
static const char **opt_string_list(lua_State *L, int t, const char *k, size_t *n)
{
	*n = 0;
	if (lua_getfield(L, t, k) == LUA_TNIL) {
		lua_pop(L, 1);
		lua_pushnil(L); /* keeps the stack shape */
		return NULL;
	}
	if (!lua_istable(L, -1))
		luaL_error(L, "bad option '%s' (table expected, got %s)", k, luaL_typename(L, -1));
	int list = lua_gettop(L);
	size_t len = (size_t)luaL_len(L, list);
	const char **v = lua_newuserdatauv(L, (len + 1) * sizeof *v, 1);
	lua_pushvalue(L, list);
	lua_setiuservalue(L, -2, 1);
	for (size_t i = 0; i < len; i++) {
		if (lua_rawgeti(L, list, (lua_Integer)i + 1) != LUA_TSTRING)
			luaL_error(L, "bad option '%s' (item %d: string expected, got %s)", k,
				   (int)i + 1, luaL_typename(L, -1));
		v[i] = nul_free(L, -1, k, (int)i + 1);
		lua_pop(L, 1);
	}
	v[len] = NULL;
	lua_remove(L, list);
	*n = len;
	return v;
}

/* The path map at option 'path_map': a list of {windows_prefix, local_dir}
 * pairs (the Lua layer turns a map into such a list, sorted), as the flat
 * array ih_restore_options wants, in a userdata left on the stack. */
static const char **opt_path_map(lua_State *L, int t, size_t *n)
{
	*n = 0;
	if (lua_getfield(L, t, "path_map") == LUA_TNIL) {
		lua_pop(L, 1);
		lua_pushnil(L);
		return NULL;
	}
	if (!lua_istable(L, -1))
		luaL_error(L, "bad option 'path_map' (table expected, got %s)", luaL_typename(L, -1));
	int list = lua_gettop(L);
	size_t len = (size_t)luaL_len(L, list);
	const char **v = lua_newuserdatauv(L, (2 * len + 1) * sizeof *v, 1);
	lua_pushvalue(L, list); /* holds the pairs and their strings */
	lua_setiuservalue(L, -2, 1);
	for (size_t i = 0; i < len; i++) {
		if (lua_rawgeti(L, list, (lua_Integer)i + 1) != LUA_TTABLE)
			luaL_error(L, "bad option 'path_map' (item %d: {windows_prefix, local_dir} "
				      "expected, got %s)", (int)i + 1, luaL_typename(L, -1));
		for (int k = 1; k <= 2; k++) {
			if (lua_rawgeti(L, -1, k) != LUA_TSTRING)
				luaL_error(L, "bad option 'path_map' (item %d: {windows_prefix, "
					      "local_dir} expected, item [%d] is %s)",
					   (int)i + 1, k, luaL_typename(L, -1));
			v[2 * i + (size_t)k - 1] = nul_free(L, -1, "path_map", (int)i + 1);
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	v[2 * len] = NULL;
	lua_remove(L, list);
	*n = len;
	return v;
}

/* A number option >= 0 (seconds, sizes). */
static double opt_number(lua_State *L, int t, const char *k)
{
	double v = 0;
	if (lua_getfield(L, t, k) != LUA_TNIL) {
		int ok;
		v = lua_tonumberx(L, -1, &ok);
		if (!ok || v < 0 || v != v)
			luaL_error(L, "bad option 'http.%s' (a number >= 0 expected, got %s)", k,
				   ok ? "a negative number" : luaL_typename(L, -1));
	}
	lua_pop(L, 1);
	return v;
}

/* The remote sources' options at option 'http': {ca_file=, client_cert=,
 * client_key=, proxy=, netrc= (true or a file), headers= (a list of
 * "Name: value", or a map), connect_timeout=, stall_timeout=, retries=,
 * retry_wait_max=, whole_file_max=, max_redirects=, parallel=}.  The
 * headers' C array is a userdata left on the stack. */
static void opt_http(lua_State *L, int t, ih_restore_options *o)
{
	if (lua_getfield(L, t, "http") == LUA_TNIL) {
		lua_pop(L, 1);
		lua_pushnil(L); /* keeps the stack shape */
		return;
	}
	if (!lua_istable(L, -1))
		luaL_error(L, "bad option 'http' (table expected, got %s)", luaL_typename(L, -1));
	int h = lua_gettop(L);
	static const char *const known[] = {"ca_file", "client_cert", "client_key", "proxy", "netrc",
		"headers", "connect_timeout", "stall_timeout", "retries", "retry_wait_max",
		"whole_file_max", "max_redirects", "parallel", NULL};
	lua_pushnil(L);
	while (lua_next(L, h)) {
		int ok = lua_type(L, -2) == LUA_TSTRING;
		for (int i = 0; ok && known[i]; i++)
			if (!strcmp(lua_tostring(L, -2), known[i]))
				ok = 2;
		if (ok != 2)
			luaL_error(L, "bad option 'http' (unknown key %s)",
				   lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "(not a string)");
		lua_pop(L, 1);
	}
	o->http_ca_file = opt_string(L, h, "ca_file");
	o->http_client_cert = opt_string(L, h, "client_cert");
	o->http_client_key = opt_string(L, h, "client_key");
	o->http_proxy = opt_string(L, h, "proxy");
	int nt = lua_getfield(L, h, "netrc");
	if (nt == LUA_TSTRING)
		o->http_netrc_file = lua_tostring(L, -1);
	else if (nt == LUA_TBOOLEAN)
		o->http_netrc = lua_toboolean(L, -1);
	else if (nt != LUA_TNIL)
		luaL_error(L, "bad option 'http.netrc' (boolean or file name expected, got %s)",
			   luaL_typename(L, -1));
	lua_pop(L, 1);
	o->http_connect_timeout = opt_number(L, h, "connect_timeout");
	o->http_stall_timeout = opt_number(L, h, "stall_timeout");
	o->http_retry_wait_max = opt_number(L, h, "retry_wait_max");
	o->http_whole_file_max = (uint64_t)opt_integer(L, h, "whole_file_max", 0, 0, LUA_MAXINTEGER);
	o->http_retries = (int)opt_integer(L, h, "retries", 0, -1, 100);
	if (o->http_retries == 0) {
		lua_getfield(L, h, "retries");
		if (!lua_isnil(L, -1))
			o->http_retries = -1; /* 0 given: no retries */
		lua_pop(L, 1);
	}
	o->http_max_redirects = (int)opt_integer(L, h, "max_redirects", 0, -1, 50);
	if (o->http_max_redirects == 0) {
		lua_getfield(L, h, "max_redirects");
		if (!lua_isnil(L, -1))
			o->http_max_redirects = -1; /* 0 given: none followed */
		lua_pop(L, 1);
	}
	o->http_parallel = (int)opt_integer(L, h, "parallel", 0, 0, 64);
	/* headers: {"Name: value", ...} or {Name = "value"} */
	int ht = lua_getfield(L, h, "headers");
	if (ht == LUA_TNIL) {
		lua_pop(L, 2);
		lua_pushnil(L);
		return;
	}
	if (ht != LUA_TTABLE)
		luaL_error(L, "bad option 'http.headers' (table expected, got %s)", luaL_typename(L, -1));
	int hl = lua_gettop(L);
	size_t n = 0;
	lua_pushnil(L);
	while (lua_next(L, hl)) {
		n++;
		lua_pop(L, 1);
	}
	const char **v = lua_newuserdatauv(L, (n + 1) * sizeof *v, 1);
	lua_newtable(L); /* the strings made here, kept alive by the userdata */
	lua_setiuservalue(L, -2, 1);
	size_t i = 0;
	lua_pushnil(L);
	while (lua_next(L, hl)) {
		if (lua_type(L, -2) == LUA_TNUMBER && lua_type(L, -1) == LUA_TSTRING) {
			v[i] = lua_tostring(L, -1);
		} else if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
			lua_getiuservalue(L, -3, 1);
			lua_pushfstring(L, "%s: %s", lua_tostring(L, -4), lua_tostring(L, -3));
			v[i] = lua_tostring(L, -1);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
			lua_pop(L, 1);
		} else {
			luaL_error(L, "bad option 'http.headers' (a list of \"Name: value\" or a map "
				      "of strings expected)");
		}
		if (strchr(v[i], '\r') || strchr(v[i], '\n'))
			luaL_error(L, "bad option 'http.headers' (a header with a line break)");
		i++;
		lua_pop(L, 1);
	}
	v[i] = NULL;
	o->http_headers = v;
	o->n_http_headers = i;
	lua_replace(L, h);   /* the userdata takes the http table's place */
	lua_settop(L, h);
}

/* session:restore_start{sources=, limit_access=, path_map=, no_policy=,
 * rebuild=, threads=, cancel=, policy_hive=} -> Job | nil, err */
static int session_restore_start(lua_State *L)
{
	lsession *ls = check_session(L, 1);
	ih_restore_options o = {0};
	ltoken *tok = NULL;
	lua_settop(L, 2);
	if (!lua_isnil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		o.sources = opt_string_list(L, 2, "sources", &o.n_sources);    /* at 3 */
		o.path_map = opt_path_map(L, 2, &o.n_path_map);                 /* at 4 */
		o.limit_access = opt_boolean(L, 2, "limit_access");
		o.no_policy = opt_boolean(L, 2, "no_policy");
		o.rebuild = opt_boolean(L, 2, "rebuild");
		o.use_record = opt_boolean(L, 2, "use_record");
		o.no_reference_source = opt_boolean(L, 2, "no_reference_source");
		o.dry_run = opt_boolean(L, 2, "dry_run");
		o.ask_order = opt_boolean(L, 2, "ask_order");
		o.ask_accept = opt_boolean(L, 2, "ask_accept");
		o.threads = (int)opt_integer(L, 2, "threads", 0, 0, 4096);
		o.policy_hive = opt_string(L, 2, "policy_hive");
		o.default_sources_file = opt_string(L, 2, "default_sources_file");
		opt_http(L, 2, &o);                                             /* at 5 */
		tok = opt_token(L, 2);
	}
	/* a session of the same file nobody can reach any more (`s =
	 * ih.open(x)` twice at the REPL) would hold its shared lock until a
	 * collection: collect now */
	if (other_sessions(L, ls, NULL, 0))
		lua_gc(L, LUA_GCCOLLECT);
	ljob *lj = new_job(L, tok, JOB_RESTORE);
	o.cancel = lj->cancel;

	ih_error err = {0};
	int rc = ih_restore_start(ls->s, &o, &lj->j, &err);
	if (rc != IH_OK) {
		lj->j = NULL;
		job_free(L, lj);
		return push_fail(L, &err);
	}
	register_job(L);
	return 1;
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

/* A list of image numbers, and a list of strings, as Lua sequences. */
static void push_images(lua_State *L, const uint32_t *v, size_t n)
{
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		lua_pushinteger(L, v[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

static void push_strings(lua_State *L, char *const *v, size_t n)
{
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		lua_pushstring(L, v[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

static void push_refs(lua_State *L, const ih_ref *refs, size_t n);

static const char *request_kind_name(ih_request_kind k)
{
	switch (k) {
	case IH_REQUEST_BLOB: return "blob";
	case IH_REQUEST_ORDER: return "order";
	case IH_REQUEST_ACCEPT: return "accept";
	}
	return "unknown";
}

/* A request event: {type = "request", id =, kind = "blob"|"order"|"accept",
 * source = (blob: 1-based index in the restore's sources), sha1 =, size =,
 * reason =, is_metadata =, paths =, refs =, images =, n_sources =}.  0 (and
 * nothing pushed) when the worker no longer wants it: it is ended. */
static int push_request(lua_State *L, ih_job *j, uint64_t id)
{
	ih_request rq;
	if (ih_job_request(j, id, &rq) != IH_OK) {
		ih_job_reply_end(j, id, 0, NULL);
		return 0;
	}
	lua_createtable(L, 0, 14);
	setfield_str(L, "type", "request");
	setfield_u64(L, "id", rq.id);
	setfield_str(L, "kind", request_kind_name(rq.kind));
	if (rq.source >= 0)
		setfield_int(L, "source", (lua_Integer)rq.source + 1);
	push_hex(L, rq.sha1, sizeof rq.sha1);
	lua_setfield(L, -2, "sha1");
	setfield_u64(L, "size", rq.size);
	setfield_str(L, "reason", ih_reason_name((ih_reason)rq.reason));
	setfield_bool(L, "is_metadata", rq.is_metadata);
	setfield_u64(L, "n_sources", rq.n_sources);
	push_refs(L, rq.refs, rq.n_refs);
	lua_createtable(L, (int)rq.n_images, 0);
	for (uint32_t i = 0; i < rq.n_images; i++) {
		lua_pushinteger(L, rq.images[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "images");
	return 1;
}

static uint64_t check_request_id(lua_State *L, int idx)
{
	lua_Integer id = luaL_checkinteger(L, idx);
	luaL_argcheck(L, id > 0, idx, "request id expected");
	return (uint64_t)id;
}

/* true, or false and the code's name ("busy": retry once the job's fd is
 * readable; "cancelled": the worker no longer wants it). */
static int push_reply_rc(lua_State *L, int rc)
{
	if (rc == IH_OK) {
		lua_pushboolean(L, 1);
		return 1;
	}
	lua_pushboolean(L, 0);
	lua_pushstring(L, ih_errcode_name((ih_errcode)rc));
	return 2;
}

/* job:reply_data(id, bytes) -> true | false, "busy"|"cancelled"|... */
static int job_reply_data(lua_State *L)
{
	ljob *lj = check_job(L, 1);
	uint64_t id = check_request_id(L, 2);
	size_t len;
	const char *data = luaL_checklstring(L, 3, &len);
	return push_reply_rc(L, ih_job_reply_data(lj->j, id, data, len));
}

/* job:reply_end(id, found [, reason]) -> true | false, code */
static int job_reply_end(lua_State *L)
{
	ljob *lj = check_job(L, 1);
	uint64_t id = check_request_id(L, 2);
	int found = lua_toboolean(L, 3);
	const char *reason = luaL_optstring(L, 4, NULL);
	return push_reply_rc(L, ih_job_reply_end(lj->j, id, found, reason));
}

/* job:reply_order(id, {i, ...}) -> true | false, code: an ORDER request's
 * answer, the 1-based indexes of the sources to try, in order. */
static int job_reply_order(lua_State *L)
{
	ljob *lj = check_job(L, 1);
	uint64_t id = check_request_id(L, 2);
	luaL_checktype(L, 3, LUA_TTABLE);
	lua_Integer n = luaL_len(L, 3);
	luaL_argcheck(L, n >= 0 && n <= 65536, 3, "too many sources");
	uint32_t *v = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *v, 0);
	for (lua_Integer i = 0; i < n; i++) {
		int ok;
		lua_Integer x = (lua_rawgeti(L, 3, i + 1), lua_tointegerx(L, -1, &ok));
		lua_pop(L, 1);
		luaL_argcheck(L, ok && x >= 1 && x <= UINT32_MAX, 3, "source indexes (integers >= 1) expected");
		v[i] = (uint32_t)(x - 1);
	}
	int rc = n ? ih_job_reply_data(lj->j, id, v, (size_t)n * sizeof *v) : IH_OK;
	if (rc == IH_OK)
		rc = ih_job_reply_end(lj->j, id, 1, NULL);
	return push_reply_rc(L, rc);
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
				/* paths = as the report's damage entry has them */
				lua_createtable(L, (int)e->n_refs, 0);
				lua_Integer np = 0;
				for (size_t k = 0; k < e->n_refs; k++)
					if (e->refs[k].path && e->refs[k].path[0]) {
						lua_pushstring(L, e->refs[k].path);
						lua_rawseti(L, -2, ++np);
					}
				lua_setfield(L, -2, "paths");
				setfield_u64(L, "refs_omitted", e->n_refs_omitted);
			}
			lua_rawseti(L, -2, ++n);
		}
		if (got < want)
			break;
	}
	return 1;
}

static const char *problem_kind_name(ih_problem_kind k)
{
	switch (k) {
	case IH_PROBLEM_HEADER: return "header";
	case IH_PROBLEM_BLOB_TABLE: return "blob_table";
	case IH_PROBLEM_XML: return "xml";
	case IH_PROBLEM_INTEGRITY: return "integrity";
	case IH_PROBLEM_METADATA: return "metadata";
	case IH_PROBLEM_OTHER: return "other";
	}
	return "other";
}

/* Sets t.refs = {{image=, path=}, ...} and t.paths = {path, ...} on the
 * table on top of the stack. */
static void push_refs(lua_State *L, const ih_ref *refs, size_t n)
{
	lua_createtable(L, (int)n, 0);
	lua_createtable(L, (int)n, 0);
	lua_Integer npaths = 0;
	for (size_t i = 0; i < n; i++) {
		const ih_ref *r = &refs[i];
		lua_createtable(L, 0, 2);
		setfield_int(L, "image", r->image);
		if (r->path)
			setfield_str(L, "path", r->path);
		lua_rawseti(L, -3, (lua_Integer)i + 1);
		if (r->path && r->path[0]) {
			lua_pushstring(L, r->path);
			lua_rawseti(L, -2, ++npaths);
		}
	}
	lua_setfield(L, -3, "paths");
	lua_setfield(L, -2, "refs");
}

static void push_damage(lua_State *L, const ih_damage *d)
{
	lua_createtable(L, 0, 14);
	push_hex(L, d->sha1, sizeof d->sha1);
	lua_setfield(L, -2, "sha1");
	setfield_u64(L, "size", d->size);
	setfield_str(L, "reason", ih_reason_name(d->reason));
	setfield_bool(L, "is_metadata", d->is_metadata);
	setfield_bool(L, "solid", d->solid);
	setfield_int(L, "part", d->part);
	setfield_u64(L, "offset", d->offset);
	setfield_u64(L, "stored_size", d->stored_size);
	size_t dlen = strnlen(d->detail, sizeof d->detail);
	lua_pushlstring(L, d->detail, dlen);
	lua_setfield(L, -2, "detail");

	/* refs = {{image=, path=}, ...} as the core gives them (sorted);
	 * paths = the paths alone; images = the images hit, as the core gives
	 * them (sorted, unique; for metadata damage, the image whose directory
	 * tree it is). */
	push_refs(L, d->refs, d->n_refs);
	setfield_u64(L, "refs_omitted", d->n_refs_omitted); /* paths beyond the core's cap */
	push_images(L, d->images, d->n_images);
	lua_setfield(L, -2, "images");
	if (d->want_type) { /* an applied tree: one entry per path */
		setfield_str(L, "want_type", ih_tree_type_name(d->want_type));
		setfield_str(L, "found_type", ih_tree_type_name(d->found_type));
		if (d->n_refs)
			setfield_str(L, "path", d->refs[0].path);
	}
}

static const char *source_kind_name(ih_source_kind k)
{
	return k == IH_SOURCE_DIR ? "dir" : k == IH_SOURCE_SCRIPT ? "script" : k == IH_SOURCE_HTTP ? "http" : "wim";
}

static const char *source_origin_name(ih_source_origin o)
{
	return o == IH_ORIGIN_POLICY ? "policy" : o == IH_ORIGIN_DEFAULT ? "default" : "caller";
}

static void setfield_optstr(lua_State *L, const char *k, const char *v)
{
	if (v) {
		lua_pushstring(L, v);
		lua_setfield(L, -2, k);
	}
}

static const char *source_status_name(ih_source_status st)
{
	return st == IH_SOURCE_USABLE ? "usable" : st == IH_SOURCE_UNMAPPED ? "unmapped"
	       : st == IH_SOURCE_NOT_CONTACTED ? "not_contacted" : "unusable";
}

static void push_problems(lua_State *L, const ih_problem *v, size_t n)
{
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		const ih_problem *p = &v[i];
		lua_createtable(L, 0, 3);
		setfield_str(L, "kind", problem_kind_name(p->kind));
		setfield_str(L, "severity", ih_health_name(p->severity));
		size_t mlen = strnlen(p->message, sizeof p->message);
		lua_pushlstring(L, p->message, mlen);
		lua_setfield(L, -2, "message");
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

/* A list of damage entries; with codes, each says why it is left. */
static void push_damage_list(lua_State *L, const ih_damage *v, size_t n, int with_code)
{
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		push_damage(L, &v[i]);
		if (with_code && v[i].code != IH_OK) {
			setfield_str(L, "code", ih_errcode_name(v[i].code));
			setfield_int(L, "hresult", (lua_Integer)ih_errcode_hresult(v[i].code));
			if (v[i].policy_reason[0]) {
				size_t rl = strnlen(v[i].policy_reason, sizeof v[i].policy_reason);
				lua_pushlstring(L, v[i].policy_reason, rl);
				lua_setfield(L, -2, "policy_reason");
			}
		}
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

static void push_sources(lua_State *L, const ih_source_report *v, size_t n)
{
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		const ih_source_report *sr = &v[i];
		lua_createtable(L, 0, 12);
		setfield_str(L, "spec", sr->spec ? sr->spec : "");
		setfield_str(L, "kind", source_kind_name(sr->kind));
		setfield_str(L, "origin", source_origin_name(sr->origin));
		setfield_optstr(L, "path", sr->path);
		setfield_int(L, "index", sr->index);
		setfield_bool(L, "usable", sr->status == IH_SOURCE_USABLE);
		setfield_str(L, "status", source_status_name(sr->status));
		setfield_optstr(L, "error", sr->error);
		if (sr->error_code != IH_OK)
			setfield_str(L, "error_code", ih_errcode_name(sr->error_code));
		setfield_u64(L, "bytes_read", sr->bytes_read);
		setfield_u64(L, "blobs_used", sr->blobs_used);
		setfield_u64(L, "blobs_rejected", sr->blobs_rejected);
		if (sr->kind == IH_SOURCE_HTTP) {
			setfield_u64(L, "requests", sr->requests);
			setfield_u64(L, "bytes_fetched", sr->bytes_fetched);
			setfield_u64(L, "bytes_asked", sr->bytes_total);
			setfield_u64(L, "retries", sr->retries);
			setfield_u64(L, "failures", sr->failures);
			setfield_u64(L, "round_trips", sr->round_trips);
			push_strings(L, sr->notes, sr->n_notes);
			lua_setfield(L, -2, "notes");
		}
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

static void push_repaired(lua_State *L, const ih_restore_report *r)
{
	lua_createtable(L, (int)r->n_repaired, 0);
	for (size_t i = 0; i < r->n_repaired; i++) {
		const ih_repair *rp = &r->repaired[i];
		lua_createtable(L, 0, 9);
		push_hex(L, rp->sha1, sizeof rp->sha1);
		lua_setfield(L, -2, "sha1");
		setfield_u64(L, "size", rp->size);
		if (rp->source >= 0 && (size_t)rp->source < r->n_sources) {
			setfield_int(L, "source", (lua_Integer)rp->source + 1);
			setfield_str(L, "source_spec", r->sources[rp->source].spec);
		}
		setfield_bool(L, "raw_copy", rp->raw_copy);
		push_refs(L, rp->refs, rp->n_refs);
		setfield_bool(L, "is_metadata", rp->is_metadata);
		setfield_optstr(L, "action", rp->action);
		if (rp->action && rp->n_refs)
			setfield_str(L, "path", rp->refs[0].path);
		push_images(L, rp->images, rp->n_images);
		lua_setfield(L, -2, "images");
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

/* An applied tree's fields of a check report (into the table on top). */
static void push_tree_fields(lua_State *L, const ih_report *r)
{
	if (!r->tree)
		return;
	setfield_bool(L, "tree", 1);
	setfield_optstr(L, "reference", r->reference);
	setfield_u64(L, "files_checked", r->files_checked);
	push_strings(L, r->extra, r->n_extra);
	lua_setfield(L, -2, "extra");
	setfield_u64(L, "extra_omitted", r->n_extra_omitted);
	setfield_u64(L, "named_streams_skipped", r->named_streams_skipped);
	setfield_u64(L, "links_unverified", r->links_unverified);
}

/* How a check found what it found (into the table on top): a restore's
 * report repeats its check's. */
static void push_scan_fields(lua_State *L, const ih_report *r)
{
	setfield_bool(L, "scanned", r->scanned);
	setfield_bool(L, "from_record", r->from_record);
	if (r->recorded_at > 0)
		setfield_num(L, "recorded_at", r->recorded_at);
	if (r->record_note)
		setfield_str(L, "record_note", r->record_note);
	setfield_u64(L, "blobs_checked", r->blobs_checked);
	setfield_u64(L, "bytes_checked", r->bytes_checked);
	setfield_str(L, "scan_kind", ih_scan_kind_name(r->scan_kind));
	setfield_u64(L, "bytes_deep_scanned", r->bytes_deep_scanned);
	setfield_u64(L, "bytes_fingerprinted", r->bytes_fingerprinted);
	if (r->scan_note)
		setfield_str(L, "scan_note", r->scan_note);
}

/* A check's report (see lua/imagehealth/report.lua). */
static void push_report(lua_State *L, const ih_report *r)
{
	lua_createtable(L, 0, 16);
	setfield_str(L, "state", ih_health_name(r->state));
	setfield_int(L, "health", r->state);
	push_scan_fields(L, r);
	setfield_str(L, "image", r->image_path);
	setfield_int(L, "index", r->index);
	setfield_num(L, "seconds", r->seconds);
	push_damage_list(L, r->damage, r->n_damage, 0);
	lua_setfield(L, -2, "damaged");
	push_problems(L, r->problems, r->n_problems);
	lua_setfield(L, -2, "problems");
	push_tree_fields(L, r);
}

/* A restore's report: the state after, what was repaired and what is
 * left (damaged = unrepaired, each with its code), the sources, and the
 * check it started from as `before` (its scan figures repeated at the top
 * level, as a check report has them). */
static void push_restore_report(lua_State *L, const ih_restore_report *r)
{
	const ih_report *c = r->check;
	lua_createtable(L, 0, 24);
	setfield_str(L, "state", ih_health_name(r->state));
	setfield_int(L, "health", r->state);
	push_scan_fields(L, c);
	setfield_str(L, "image", r->image_path);
	setfield_int(L, "index", r->index);
	setfield_num(L, "seconds", r->seconds);
	setfield_bool(L, "restored", 1);
	setfield_str(L, "state_before", ih_health_name(c->state));
	setfield_int(L, "health_before", c->state);
	setfield_u64(L, "bytes_written", r->bytes_written);
	setfield_bool(L, "rebuilt", r->rebuilt);
	setfield_bool(L, "dry_run", r->dry_run);
	if (r->dry_run)
		setfield_u64(L, "bytes_planned", r->bytes_planned);
	setfield_bool(L, "limit_access", r->limit_access);
	setfield_int(L, "default_sources", (lua_Integer)r->n_default_sources);
	if (r->default_barred)
		setfield_str(L, "default_barred", r->default_barred == 1 ? "limit_access" : "policy");
	setfield_bool(L, "no_policy", r->no_policy);
	push_tree_fields(L, c);
	push_report(L, c);
	lua_setfield(L, -2, "before");
	push_damage_list(L, r->unrepaired, r->n_unrepaired, 1);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "damaged");
	lua_setfield(L, -2, "unrepaired");
	push_problems(L, r->problems, r->n_problems);
	lua_setfield(L, -2, "problems");
	push_sources(L, r->sources, r->n_sources);
	lua_setfield(L, -2, "sources");
	push_repaired(L, r);
	lua_setfield(L, -2, "repaired");
	push_damage_list(L, r->dropped, r->n_dropped, 0);
	lua_setfield(L, -2, "dropped");
	lua_createtable(L, 0, 3);
	setfield_optstr(L, "local_source_path", r->policy_local_source_path);
	if (r->policy_use_windows_update != -1)
		setfield_int(L, "use_windows_update", r->policy_use_windows_update);
	setfield_optstr(L, "note", r->policy_note);
	lua_setfield(L, -2, "policy");
}

/* Takes the finished job's outcome: pushes the report table and returns
 * IH_OK, or returns the error. */
static int collect_result(lua_State *L, ljob *lj, ih_job *j, ih_error *err)
{
	int rc;
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

static int job_session(lua_State *L)
{
	luaL_checkudata(L, 1, JOB_MT);
	lua_getiuservalue(L, 1, JOB_UV_SESSION);
	return 1;
}

static int job_tostring(lua_State *L)
{
	ljob *lj = luaL_checkudata(L, 1, JOB_MT);
	const char *kind = lj->kind == JOB_RESTORE ? "restore"
			   : lj->kind == JOB_SCAN    ? "full scan"
						     : "quick check";
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

/* ------------------------------------------------------------ module */

/* core.interpose(typename, key, value) -> previous value: lets the Lua layer
 * add or wrap methods of the C types, as cqueues does. */
static int l_interpose(lua_State *L)
{
	const char *tname = luaL_checkstring(L, 1);
	luaL_checkany(L, 3);
	if (luaL_getmetatable(L, tname) != LUA_TTABLE)
		return luaL_argerror(L, 1, lua_pushfstring(L, "unknown type '%s'", tname));
	lua_getfield(L, -1, "__index");
	lua_pushvalue(L, 2);
	lua_rawget(L, -2);          /* previous */
	lua_pushvalue(L, 2);
	lua_pushvalue(L, 3);
	lua_rawset(L, -4);
	return 1;
}

static int l_errcodes(lua_State *L)
{
	lua_createtable(L, IH_ERR__COUNT - 1, 0);
	for (int c = 1; c < IH_ERR__COUNT; c++) {
		lua_createtable(L, 0, 3);
		setfield_str(L, "code", ih_errcode_name((ih_errcode)c));
		setfield_int(L, "hresult", ih_errcode_hresult((ih_errcode)c));
		setfield_int(L, "errcode", c);
		lua_rawseti(L, -2, c);
	}
	return 1;
}

static void new_type(lua_State *L, const char *tname, const luaL_Reg *methods,
		     const luaL_Reg *meta)
{
	luaL_newmetatable(L, tname); /* sets __name */
	luaL_setfuncs(L, meta, 0);
	lua_newtable(L);
	luaL_setfuncs(L, methods, 0);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
}

/* core.isatty(fd) -> boolean: for the CLI's progress bar, without
 * spawning a shell to ask. */
static int l_isatty(lua_State *L)
{
	lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
	return 1;
}

IH_API int luaopen_imagehealth_core(lua_State *L);

static int state_closing(lua_State *L)
{
	(void)L;
	ih_jobs_wait_released(5000);
	return 0;
}

/* Threads of the core may outlive the Lua state (a released job's reaper
 * joins its workers after lua_close, which dlcloses C modules): keep this
 * library mapped for the life of the process. */
static void pin_library(void)
{
	static int pinned;
	Dl_info info;
	if (pinned)
		return;
	pinned = 1;
	if (dladdr((void *)pin_library, &info) && info.dli_fname)
		(void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE | RTLD_NOLOAD);
}

int luaopen_imagehealth_core(lua_State *L)
{
	pin_library();
	static const luaL_Reg session_methods[] = {
		{"info", session_info},
		{"seal", session_seal},
		{"check_start", session_check_start},
		{"restore_start", session_restore_start},
		{"path", session_path},
		{"closed", session_closed},
		{"close", session_close},
		{NULL, NULL},
	};
	static const luaL_Reg session_meta[] = {
		{"__gc", session_close},
		{"__close", session_close},
		{"__tostring", session_tostring},
		{NULL, NULL},
	};
	static const luaL_Reg job_methods[] = {
		{"pollfd", job_pollfd},
		{"events", job_events},
		{"timeout", job_timeout},
		{"progress", job_progress},
		{"drain", job_drain},
		{"done", job_done},
		{"cancel", job_cancel},
		{"wait_raw", job_wait_raw},
		{"reply_data", job_reply_data},
		{"reply_end", job_reply_end},
		{"reply_order", job_reply_order},
		{"result", job_result},
		{"result_raw", job_result},
		{"session", job_session},
		{"closed", job_closed},
		{"close", job_close},
		{NULL, NULL},
	};
	static const luaL_Reg job_meta[] = {
		{"__gc", job_gc},
		{"__close", job_close},
		{"__tostring", job_tostring},
		{NULL, NULL},
	};
	static const luaL_Reg token_methods[] = {
		{"cancel", token_cancel},
		{"cancelled", token_cancelled},
		{"closed", token_closed},
		{"close", token_close},
		{NULL, NULL},
	};
	static const luaL_Reg token_meta[] = {
		{"__gc", token_close},
		{"__close", token_close},
		{"__tostring", token_tostring},
		{NULL, NULL},
	};
	static const luaL_Reg error_meta[] = {
		{"__tostring", error_tostring},
		{"__concat", error_concat},
		{"string", error_tostring}, /* err:string(), for io.write */
		{NULL, NULL},
	};
	static const luaL_Reg funcs[] = {
		{"isatty", l_isatty},
		{"open", l_open},
		{"cancel_token", l_cancel_token},
		{"error", l_error},
		{"interpose", l_interpose},
		{"errcodes", l_errcodes},
		{"on_fd_close", l_on_fd_close},
		{"worker_nice", l_worker_nice},
		{"wait_released", l_wait_released},
		{NULL, NULL},
	};

	new_type(L, SESSION_MT, session_methods, session_meta);
	new_type(L, JOB_MT, job_methods, job_meta);
	new_type(L, TOKEN_MT, token_methods, token_meta);
	luaL_newmetatable(L, ERROR_MT);
	luaL_setfuncs(L, error_meta, 0);
	lua_pushvalue(L, -1);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);

	/* a sentinel finalized when the state closes, after every job (it is
	 * marked for finalization first, so finalized last): waits for the
	 * threads of released jobs, which must not run on into exit() */
	if (lua_getfield(L, LUA_REGISTRYINDEX, "imagehealth.sentinel") == LUA_TNIL) {
		lua_newuserdatauv(L, 1, 0);
		lua_createtable(L, 0, 1);
		lua_pushcfunction(L, state_closing);
		lua_setfield(L, -2, "__gc");
		lua_setmetatable(L, -2);
		lua_setfield(L, LUA_REGISTRYINDEX, "imagehealth.sentinel");
	}
	lua_pop(L, 1);
	/* registry: every session (weak keys), fd-close hooks */
	if (lua_getfield(L, LUA_REGISTRYINDEX, SESSIONS_KEY) != LUA_TTABLE) {
		lua_newtable(L);
		lua_createtable(L, 0, 1);
		lua_pushliteral(L, "k");
		lua_setfield(L, -2, "__mode");
		lua_setmetatable(L, -2);
		lua_setfield(L, LUA_REGISTRYINDEX, SESSIONS_KEY);
	}
	lua_pop(L, 1);
	if (lua_getfield(L, LUA_REGISTRYINDEX, FD_HOOKS_KEY) != LUA_TTABLE) {
		lua_newtable(L);
		lua_setfield(L, LUA_REGISTRYINDEX, FD_HOOKS_KEY);
	}
	lua_pop(L, 1);

	luaL_newlib(L, funcs);
	lua_pushinteger(L, IH_HEALTHY);
	lua_setfield(L, -2, "HEALTHY");
	lua_pushinteger(L, IH_REPAIRABLE);
	lua_setfield(L, -2, "REPAIRABLE");
	lua_pushinteger(L, IH_NONREPAIRABLE);
	lua_setfield(L, -2, "NONREPAIRABLE");
	lua_pushstring(L, IH_VERSION_STRING);
	lua_setfield(L, -2, "version");
	return 1;
}
