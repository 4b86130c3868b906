/*
 * push.c - small pushes shared by reports, events and requests: lists of
 * images and strings, a blob's refs and paths.
 */
#include "binding.h"

/* A list of image numbers, and a list of strings, as Lua sequences. */
void push_images(lua_State *L, const uint32_t *v, size_t n)
{
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		lua_pushinteger(L, v[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

void push_strings(lua_State *L, char *const *v, size_t n)
{
	lua_createtable(L, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		lua_pushstring(L, v[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

/* Sets t.refs = {{image=, path=}, ...} and t.paths = {path, ...} on the
 * table on top of the stack. */
void push_refs(lua_State *L, const ih_ref *refs, size_t n)
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
