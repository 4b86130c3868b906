/* host.c - a small C program that embeds Lua 5.4 with imagehealth linked
 * in: it preloads the C module (package.preload["imagehealth.core"]), so
 * that no core.so need be installed, and runs a Lua script with the
 * remaining arguments in `arg`.  The Lua half (lua/imagehealth/) is found
 * by LUA_PATH as usual.
 *
 *   build/ih-host script.lua [args...]
 */
#include <stdio.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_imagehealth_core(lua_State *L);

static int traceback(lua_State *L)
{
	luaL_traceback(L, L, lua_tostring(L, 1), 1);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s script.lua [args...]\n", argv[0]);
		return 2;
	}
	lua_State *L = luaL_newstate();
	if (!L)
		return 1;
	luaL_openlibs(L);
	/* package.preload["imagehealth.core"] = luaopen_imagehealth_core */
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
	lua_pushcfunction(L, luaopen_imagehealth_core);
	lua_setfield(L, -2, "imagehealth.core");
	lua_pop(L, 1);
	/* arg = {[0] = script, ...} */
	lua_createtable(L, argc - 2, 1);
	for (int i = 1; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i - 1);
	}
	lua_setglobal(L, "arg");
	lua_pushcfunction(L, traceback);
	int rc = luaL_loadfile(L, argv[1]);
	if (rc == LUA_OK) {
		for (int i = 2; i < argc; i++)
			lua_pushstring(L, argv[i]);
		rc = lua_pcall(L, argc - 2, 0, 1);
	}
	if (rc != LUA_OK)
		fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
	lua_close(L);
	return rc == LUA_OK ? 0 : 1;
}
