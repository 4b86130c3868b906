/*
 * error.c - imagehealth.Error tables: how the core's failures reach Lua
 * (nil, err), print, concatenate, and the list of codes (core.errcodes).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "binding.h"

int closed_error(lua_State *L, const char *tname)
{
	return luaL_error(L, "attempt to use a closed %s", tname);
}

void push_error_table(lua_State *L, ih_errcode code, uint32_t hresult,
			     const char *message)
{
	lua_createtable(L, 0, 3);
	setfield_str(L, "code", ih_errcode_name(code));
	setfield_int(L, "hresult", (lua_Integer)hresult);
	setfield_str(L, "message", message);
	luaL_setmetatable(L, ERROR_MT);
}

/* Pushes nil, err; returns 2. */
int push_fail(lua_State *L, const ih_error *e)
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
int l_error(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	const char *msg = luaL_optstring(L, 2, NULL);
	ih_errcode c = code_by_name(name);
	if (c == IH_ERR__COUNT)
		return luaL_argerror(L, 1, lua_pushfstring(L, "unknown error code '%s'", name));
	push_error_table(L, c, ih_errcode_hresult(c), msg ? msg : name);
	return 1;
}

int l_errcodes(lua_State *L)
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

const luaL_Reg lb_error_meta[] = {
	{"__tostring", error_tostring},
	{"__concat", error_concat},
	{"string", error_tostring}, /* err:string(), for io.write */
	{NULL, NULL},
};
