-- spec/rock_spec.lua - the rock: `luarocks --lua-version 5.4 make` builds and
-- installs the module from a copy of this tree into a tree of its own, and
-- the module and the CLI run from there (issue 11).  Runs in the plain pass
-- only: the build is the same in the sanitizer pass.
--
-- The CLI's dependencies (argparse, dkjson) come from Debian packages here,
-- which no LuaRocks manifest lists and no LuaRocks server is reachable for:
-- tools/install-deps (which `make test` and `make demo` run) tells LuaRocks
-- they are provided, in the user's LuaRocks config, so the plain command
-- resolves the declared dependencies against the Debian modules' versions.

local F = require "support.fixtures"
local q = F.q

local build = os.getenv("IMAGEHEALTH_BUILD") or "build"

describe("the rock", function()
  it("luarocks make installs a module that loads from the rock tree", function()
    if build:match("asan") then
      pending("the rock is built once, in the plain pass")
      return
    end
    if not F.run("command -v luarocks >/dev/null") then
      error("luarocks is not installed (tools/install-deps installs it)")
    end
    local root = F.root()
    local T = F.tmpdir("ihrock")
    local src, tree = T .. "/src", T .. "/tree"
    -- the files of the checkout (committed or not), without build output
    F.sh("mkdir -p " .. q(src) .. " && cd " .. q(root) .. " && git ls-files -z --cached --others "
      .. "--exclude-standard | grep -zv '^fuzz/corpus' | xargs -0 cp --parents -t " .. q(src)
      .. " 2>/dev/null; true")
    assert.is_true(F.exists(src .. "/imagehealth-scm-1.rockspec"))
    local ok, out = F.run("cd " .. q(src) .. " && luarocks --lua-version 5.4 make"
      .. " --tree " .. q(tree) .. " imagehealth-scm-1.rockspec 2>&1")
    assert.is_true(ok, out .. "\n(tools/install-deps registers Debian's argparse and dkjson"
      .. " with LuaRocks: run it once)")
    -- a fresh interpreter, its paths from the rock tree alone
    local script = [[
      local ih = require "imagehealth"
      local core = package.searchpath("imagehealth.core", package.cpath)
      io.write(ih.version, " ", core, " ", tostring(require("imagehealth.help") ~= nil), "\n")
    ]]
    local ok2, out2 = F.run("eval \"$(luarocks --lua-version 5.4 --tree " .. q(tree) .. " path)\" && "
      .. "unset IMAGEHEALTH_BUILD && cd / && LUA_PATH=\"$LUA_PATH\" lua5.4 -e " .. q(script) .. " 2>&1")
    assert.is_true(ok2, out2)
    local v, core, help = out2:match("^(%S+) (%S+) (%S+)")
    assert.equal(require("imagehealth").version, v)
    assert.equal(tree, core:sub(1, #tree), out2)
    assert.equal("true", help)
    assert.is_true(F.exists(tree .. "/bin/imagehealth"))
    -- the installed CLI, with its modules from the rock tree and argparse
    -- and dkjson from the system
    local ok3, out3 = F.run("eval \"$(luarocks --lua-version 5.4 --tree " .. q(tree) .. " path)\" && "
      .. "unset IMAGEHEALTH_BUILD && cd / && " .. q(tree .. "/bin/imagehealth") .. " info --json "
      .. q(F.image("LZX")))
    assert.is_true(ok3, out3)
    assert.equal(F.image("LZX"), require("cjson").decode(out3).image)
    F.sh("rm -rf " .. q(T))
  end)

  it("declares the CLI's dependencies, which the Debian packages satisfy", function()
    local T = F.tmpdir("ihrockdeps")
    local ok, out = F.run("cd " .. q(F.root()) .. " && luarocks --lua-version 5.4 make --only-deps"
      .. " --tree " .. q(T .. "/tree") .. " imagehealth-scm-1.rockspec 2>&1")
    F.sh("rm -rf " .. q(T))
    assert.is_true(ok, out)
    for _, dep in ipairs{"argparse", "dkjson"} do
      assert.matches("depends on " .. dep .. " [^\n]*provided", out)
    end
  end)
end)
