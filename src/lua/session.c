/*
 * session.c - imagehealth.Session: an open image (or applied tree), its
 * info, and the jobs it starts (check_start, restore_start).  Closing it
 * first releases its jobs.  Every open Session of the state is kept in a
 * weak set, so that a busy error can name the one holding the image.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "binding.h"

static lsession *check_session(lua_State *L, int idx)
{
	lsession *ls = luaL_checkudata(L, idx, SESSION_MT);
	if (!ls->s)
		closed_error(L, SESSION_MT);
	return ls;
}

/* The open options of the table at t (the path's checked by the caller).
 * An http table (for an http(s) reference) goes into an ih_restore_options
 * in a userdata left on the stack, above the one slot opt_http leaves. */
static void open_options(lua_State *L, int t, ih_open_options *o)
{
	memset(o, 0, sizeof *o);
	if (lua_isnoneornil(L, t))
		return;
	luaL_checktype(L, t, LUA_TTABLE);
	o->index = (uint32_t)opt_integer(L, t, "index", 0, 0, UINT32_MAX);
	o->state_dir = opt_string(L, t, "state_dir");
	o->threads = (int)opt_integer(L, t, "threads", 0, 0, 4096);
	o->reference = opt_string(L, t, "reference");
	o->case_insensitive = opt_boolean(L, t, "case_insensitive");
	ih_restore_options *ro = lua_newuserdatauv(L, sizeof *ro, 0);
	memset(ro, 0, sizeof *ro);
	opt_http(L, t, ro);             /* nil when there is no http table */
	o->http = lua_isnil(L, -1) ? NULL : ro;
}

static const char *check_path(lua_State *L, int idx)
{
	size_t plen;
	const char *path = luaL_checklstring(L, idx, &plen);
	if (strlen(path) != plen)
		luaL_argerror(L, idx, "path with an embedded NUL");
	return path;
}

/* A new Session userdata (not yet open) for the path at path_idx, on top. */
static lsession *new_session(lua_State *L, int path_idx)
{
	path_idx = lua_absindex(L, path_idx);
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
	lua_pushvalue(L, path_idx);
	lua_setiuservalue(L, -2, SESSION_UV_PATH);
	return ls;
}

/* The Session on top now holds s: its file noted, and it is registered
 * among the state's sessions. */
static void session_opened(lua_State *L, lsession *ls, ih_session *s, const char *path)
{
	struct stat st;
	ls->s = s;
	if (stat(path, &st) == 0) {
		ls->dev = st.st_dev;
		ls->ino = st.st_ino;
	}
	lua_getfield(L, LUA_REGISTRYINDEX, SESSIONS_KEY);
	lua_pushvalue(L, -2);
	lua_pushboolean(L, 1);
	lua_rawset(L, -3);
	lua_pop(L, 1);
}

/* core.open(path [, {index=, state_dir=, threads=, reference=, case_insensitive=}])
 * -> Session | nil, err */
int l_open(lua_State *L)
{
	const char *path = check_path(L, 1);
	ih_open_options o;
	ih_session *s = NULL;
	ih_error err = {0};
	open_options(L, 2, &o);
	lsession *ls = new_session(L, 1);
	if (ih_session_open(path, &o, &s, &err) != IH_OK)
		return push_fail(L, &err);
	session_opened(L, ls, s, path);
	return 1;
}

/* An open job's outcome: a Session for s, on top (its path at path_idx). */
void push_opened_session(lua_State *L, ih_session *s, int path_idx)
{
	const char *path = lua_tostring(L, path_idx);
	lsession *ls = new_session(L, path_idx);
	session_opened(L, ls, s, path ? path : "");
}

/* Is another open Session of this state on the same file as ls?  With buf,
 * names them there. */
int other_sessions(lua_State *L, const lsession *ls, char *buf, size_t len)
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

/* The info table (see lua/imagehealth/init.lua's Info) of wi, on top. */
void push_wim_info(lua_State *L, const ih_wim_info *wi)
{
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
}

/* session:info() -> table | nil, err */
static int session_info(lua_State *L)
{
	lsession *ls = check_session(L, 1);
	const ih_wim_info *wi = NULL;
	ih_error err = {0};
	if (ih_session_info(ls->s, &wi, &err) != IH_OK)
		return push_fail(L, &err);
	push_wim_info(L, wi);
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

/* A new Job userdata for the session at index 1 (an open job: its path),
 * on top of the stack, holding its own reference to the token. */
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

/* core.open_start(path [, {index=, state_dir=, threads=, reference=,
 * case_insensitive=, cancel=}]) -> Job | nil, err: ih.open as a job; its
 * result is the Session. */
int l_open_start(lua_State *L)
{
	const char *path = check_path(L, 1);
	ih_open_options o;
	ltoken *tok = NULL;
	lua_settop(L, 2);
	open_options(L, 2, &o);
	if (!lua_isnil(L, 2))
		tok = opt_token(L, 2);
	ljob *lj = new_job(L, tok, JOB_OPEN);
	ih_error err = {0};
	if (ih_session_open_start(path, &o, lj->cancel, &lj->j, &err) != IH_OK) {
		lj->j = NULL;
		job_free(L, lj);
		return push_fail(L, &err);
	}
	return 1;
}

/* session:info_start{cancel=} -> Job | nil, err: info as a job; its result
 * is the info table. */
static int session_info_start(lua_State *L)
{
	lsession *ls = check_session(L, 1);
	ltoken *tok = NULL;
	lua_settop(L, 2);
	if (!lua_isnil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		tok = opt_token(L, 2);
	}
	ljob *lj = new_job(L, tok, JOB_INFO);
	ih_error err = {0};
	if (ih_session_info_start(ls->s, lj->cancel, &lj->j, &err) != IH_OK) {
		lj->j = NULL;
		job_free(L, lj);
		return push_fail(L, &err);
	}
	register_job(L);
	return 1;
}

const luaL_Reg lb_session_methods[] = {
	{"info_start", session_info_start},
	{"info", session_info},
	{"seal", session_seal},
	{"check_start", session_check_start},
	{"restore_start", session_restore_start},
	{"path", session_path},
	{"closed", session_closed},
	{"close", session_close},
	{NULL, NULL},
};

const luaL_Reg lb_session_meta[] = {
	{"__gc", session_close},
	{"__close", session_close},
	{"__tostring", session_tostring},
	{NULL, NULL},
};
