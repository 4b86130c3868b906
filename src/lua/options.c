/*
 * options.c - reading option tables into the core's option structs.
 * Wrong types, out-of-range values and strings with NULs raise, naming the
 * option; strings and arrays made here stay on the Lua stack while C uses
 * them (see opt_string).
 */
#include <string.h>

#include "binding.h"

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
const char *opt_string(lua_State *L, int t, const char *k)
{
	if (lua_getfield(L, t, k) == LUA_TNIL)
		return NULL;
	if (lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "bad option '%s' (string expected, got %s)", k, luaL_typename(L, -1));
	return nul_free(L, -1, k, 0);
}

lua_Integer opt_integer(lua_State *L, int t, const char *k, lua_Integer def,
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

int opt_boolean(lua_State *L, int t, const char *k)
{
	int v = lua_getfield(L, t, k);
	if (v != LUA_TNIL && v != LUA_TBOOLEAN)
		luaL_error(L, "bad option '%s' (boolean expected, got %s)", k, luaL_typename(L, -1));
	v = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return v;
}

/* The option 'cancel' of the options table at t: a live CancelToken or
 * nil; raises otherwise.  The token stays on the stack (like opt_string's
 * strings: an __index may have made it, and nothing else holds it). */
ltoken *opt_token(lua_State *L, int t)
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

/* The list of strings at option k of the options table at t, as a C array
 * in a userdata left on the stack (the strings stay alive: the userdata
 * holds the list, which an __index may have made).  Raises on anything but
 * a list of strings. */
const char **opt_string_list(lua_State *L, int t, const char *k, size_t *n)
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
const char **opt_path_map(lua_State *L, int t, size_t *n)
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

/* Moves the value on top into the anchor table at a (a nil is dropped). */
static void keep(lua_State *L, int a)
{
	lua_rawseti(L, a, (lua_Integer)lua_rawlen(L, a) + 1);
}

/* http.headers of the http table at h: {"Name: value", ...} or {Name =
 * "value"}, as a NULL-terminated C array in a userdata pushed on top,
 * whose uservalue is the anchor table at a (holding the headers table and
 * the strings made here). */
static void http_headers(lua_State *L, int h, int a, ih_restore_options *o)
{
	size_t n = 0, i = 0;
	int ht = lua_getfield(L, h, "headers");
	if (ht != LUA_TNIL && ht != LUA_TTABLE)
		luaL_error(L, "bad option 'http.headers' (table expected, got %s)", luaL_typename(L, -1));
	int hl = lua_gettop(L);
	if (ht == LUA_TTABLE) /* (each walk ends with the key popped by lua_next) */
		for (lua_pushnil(L); lua_next(L, hl); lua_pop(L, 1))
			n++;
	const char **v = lua_newuserdatauv(L, (n + 1) * sizeof *v, 1);
	lua_pushvalue(L, a);
	lua_setiuservalue(L, -2, 1);
	for (lua_pushnil(L); ht == LUA_TTABLE && lua_next(L, hl); lua_pop(L, 1)) {
		if (lua_type(L, -2) == LUA_TNUMBER && lua_type(L, -1) == LUA_TSTRING) {
			v[i] = lua_tostring(L, -1); /* held by the headers table, kept below */
		} else if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
			v[i] = lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
			keep(L, a);
		} else {
			luaL_error(L, "bad option 'http.headers' (a list of \"Name: value\" or a map "
				      "of strings expected)");
		}
		if (strchr(v[i], '\r') || strchr(v[i], '\n'))
			luaL_error(L, "bad option 'http.headers' (a header with a line break)");
		i++;
	}
	if (ht != LUA_TTABLE)
		lua_pop(L, 1); /* the loop's first key: no table to walk */
	v[i] = NULL;
	o->http_headers = i ? v : NULL;
	o->n_http_headers = i;
	lua_insert(L, hl);   /* the userdata below the headers table */
	keep(L, a);          /* the headers table (or nil) into the anchor */
}

/* The remote sources' options at option 'http': {ca_file=, client_cert=,
 * client_key=, proxy=, netrc= (true or a file), headers= (a list of
 * "Name: value", or a map), connect_timeout=, stall_timeout=, retries=,
 * retry_wait_max=, whole_file_max=, max_redirects=, parallel=}.  The
 * headers' C array is a userdata left on the stack. */
void opt_http(lua_State *L, int t, ih_restore_options *o)
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
	/* every value C will read is kept in this table (an __index may have
	 * made it, and nothing else holds it), which the slot left holds */
	lua_newtable(L);
	int a = lua_gettop(L);
	o->http_ca_file = opt_string(L, h, "ca_file");
	keep(L, a);
	o->http_client_cert = opt_string(L, h, "client_cert");
	keep(L, a);
	o->http_client_key = opt_string(L, h, "client_key");
	keep(L, a);
	o->http_proxy = opt_string(L, h, "proxy");
	keep(L, a);
	int nt = lua_getfield(L, h, "netrc");
	if (nt == LUA_TSTRING)
		o->http_netrc_file = nul_free(L, -1, "http.netrc", 0);
	else if (nt == LUA_TBOOLEAN)
		o->http_netrc = lua_toboolean(L, -1);
	else if (nt != LUA_TNIL)
		luaL_error(L, "bad option 'http.netrc' (boolean or file name expected, got %s)",
			   luaL_typename(L, -1));
	keep(L, a);
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
	http_headers(L, h, a, o);  /* the headers' array on top, a its uservalue */
	lua_replace(L, h);         /* in the http table's place: one slot, as always */
	lua_settop(L, h);
}
