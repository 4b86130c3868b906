/*
 * token.c - imagehealth.CancelToken: a shareable cancel flag (ih_cancel)
 * that any number of jobs may watch.
 */
#include "binding.h"

static ltoken *check_token(lua_State *L, int idx)
{
	ltoken *t = luaL_checkudata(L, idx, TOKEN_MT);
	if (!t->c)
		closed_error(L, TOKEN_MT);
	return t;
}

int l_cancel_token(lua_State *L)
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

const luaL_Reg lb_token_methods[] = {
	{"cancel", token_cancel},
	{"cancelled", token_cancelled},
	{"closed", token_closed},
	{"close", token_close},
	{NULL, NULL},
};

const luaL_Reg lb_token_meta[] = {
	{"__gc", token_close},
	{"__close", token_close},
	{"__tostring", token_tostring},
	{NULL, NULL},
};
