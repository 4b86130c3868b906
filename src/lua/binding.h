/*
 * binding.h - what the files of the Lua binding (src/lua/) share: the
 * userdata types, registry keys, field setters, and the few functions one
 * file offers another.  Knows Lua and the public C API only.
 */
#ifndef IH_LUA_BINDING_H
#define IH_LUA_BINDING_H

#include <stdint.h>
#include <sys/types.h>

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

enum job_kind { JOB_QUICK = 0, JOB_SCAN, JOB_RESTORE, JOB_OPEN, JOB_INFO };

typedef struct ljob {
	ih_job *j;
	ih_job *rel;         /* after close: released (fd closed, threads joined
				off this thread), its outcome still to be read */
	ih_cancel *cancel;   /* our own reference to the job's token, or NULL */
	int collected;       /* ih_job_result was called; result in the uservalues */
	enum job_kind kind;
} ljob;

/* User values of a Job: 1 = its Session (an open job: its path, then the
 * Session it opened), 2 = result, 3 = error. */
enum { JOB_UV_SESSION = 1, JOB_UV_RESULT, JOB_UV_ERROR, JOB_NUV = JOB_UV_ERROR };

typedef struct ltoken {
	ih_cancel *c;
} ltoken;

/* ------------------------------------------------------------ fields */

static inline void setfield_str(lua_State *L, const char *k, const char *v)
{
	lua_pushstring(L, v ? v : "");
	lua_setfield(L, -2, k);
}

static inline void setfield_int(lua_State *L, const char *k, lua_Integer v)
{
	lua_pushinteger(L, v);
	lua_setfield(L, -2, k);
}

/* Sizes and counts are uint64_t; lua_Integer is 64-bit signed.  Values past
 * 2^63 cannot occur in a real image, but clamp rather than wrap. */
static inline void setfield_u64(lua_State *L, const char *k, uint64_t v)
{
	lua_pushinteger(L, v > (uint64_t)LUA_MAXINTEGER ? LUA_MAXINTEGER : (lua_Integer)v);
	lua_setfield(L, -2, k);
}

static inline void setfield_num(lua_State *L, const char *k, double v)
{
	lua_pushnumber(L, v);
	lua_setfield(L, -2, k);
}

static inline void setfield_bool(lua_State *L, const char *k, int v)
{
	lua_pushboolean(L, v);
	lua_setfield(L, -2, k);
}

static inline void push_hex(lua_State *L, const uint8_t *p, size_t n)
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

static inline void setfield_optstr(lua_State *L, const char *k, const char *v)
{
	if (v) {
		lua_pushstring(L, v);
		lua_setfield(L, -2, k);
	}
}

/* push.c */
void push_images(lua_State *L, const uint32_t *v, size_t n);
void push_strings(lua_State *L, char *const *v, size_t n);
void push_refs(lua_State *L, const ih_ref *refs, size_t n);

/* error.c */
int closed_error(lua_State *L, const char *tname);
void push_error_table(lua_State *L, ih_errcode code, uint32_t hresult, const char *message);
int push_fail(lua_State *L, const ih_error *e);
int l_error(lua_State *L);
int l_errcodes(lua_State *L);
extern const luaL_Reg lb_error_meta[];

/* options.c */
const char *opt_string(lua_State *L, int t, const char *k);
lua_Integer opt_integer(lua_State *L, int t, const char *k, lua_Integer def,
			lua_Integer min, lua_Integer max);
int opt_boolean(lua_State *L, int t, const char *k);
ltoken *opt_token(lua_State *L, int t);
const char **opt_string_list(lua_State *L, int t, const char *k, size_t *n);
const char **opt_path_map(lua_State *L, int t, size_t *n);
void opt_http(lua_State *L, int t, ih_restore_options *o);

/* token.c */
int l_cancel_token(lua_State *L);
extern const luaL_Reg lb_token_methods[], lb_token_meta[];

/* session.c */
int l_open(lua_State *L);
int l_open_start(lua_State *L);
void push_opened_session(lua_State *L, ih_session *s, int path_idx);
void push_wim_info(lua_State *L, const ih_wim_info *wi);
int other_sessions(lua_State *L, const lsession *ls, char *buf, size_t len);
extern const luaL_Reg lb_session_methods[], lb_session_meta[];

/* job.c */
ljob *check_job(lua_State *L, int idx); /* raises when closed */
void job_release(lua_State *L, ljob *lj);
void job_free(lua_State *L, ljob *lj);
extern const luaL_Reg lb_job_methods[], lb_job_meta[];

/* jobreply.c */
int push_request(lua_State *L, ih_job *j, uint64_t id);
int lb_job_reply_data(lua_State *L);
int lb_job_reply_end(lua_State *L);
int lb_job_reply_order(lua_State *L);

/* poll.c */
int l_poll(lua_State *L);
int l_monotime(lua_State *L);

/* report.c */
void push_report(lua_State *L, const ih_report *r);
void push_restore_report(lua_State *L, const ih_restore_report *r);

#endif
