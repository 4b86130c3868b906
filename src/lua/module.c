/*
 * module.c - the C half of the Lua binding: luaopen_imagehealth_core.
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
 *
 * Files: module.c (this: the module table and the types), session.c,
 * job.c, jobreply.c (a job's requests and replies), token.c, error.c,
 * poll.c (poll(2) on a set of fds, for plain coroutine schedulers),
 * options.c (option tables into the core's structs), report.c (reports as
 * tables), push.c (small shared pushes), binding.h (what they share).
 */
#include <dlfcn.h>
#include <unistd.h>

#include "binding.h"

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
	static const luaL_Reg funcs[] = {
		{"isatty", l_isatty},
		{"open", l_open},
		{"open_start", l_open_start},
		{"cancel_token", l_cancel_token},
		{"error", l_error},
		{"interpose", l_interpose},
		{"errcodes", l_errcodes},
		{"on_fd_close", l_on_fd_close},
		{"worker_nice", l_worker_nice},
		{"wait_released", l_wait_released},
		{"poll", l_poll},
		{"monotime", l_monotime},
		{NULL, NULL},
	};

	new_type(L, SESSION_MT, lb_session_methods, lb_session_meta);
	new_type(L, JOB_MT, lb_job_methods, lb_job_meta);
	new_type(L, TOKEN_MT, lb_token_methods, lb_token_meta);
	luaL_newmetatable(L, ERROR_MT);
	luaL_setfuncs(L, lb_error_meta, 0);
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

