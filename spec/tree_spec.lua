-- spec/tree_spec.lua - applied image trees through the CLI and the Lua
-- API: a captured image applied with `wimlib-imagex apply`, then files
-- modified, truncated, deleted and replaced (a directory by a file and the
-- reverse); `check DIR --reference` lists exactly those, `restore` makes
-- `diff -r` against a fresh apply clean with modes and mtimes equal and
-- extra files untouched; the same on a sealed tree without the WIM; a link
-- leading out of the tree is refused and nothing outside changes.

local F = require "support.fixtures"
local H = require "support.restore_helpers"
local json = {decode = require "support.json_decode"}
local q = F.q
local run = H.run_cli

local T, tree, wim

local function apply(dir)
  F.sh(string.format("rm -rf %s && wimlib-imagex apply %s 1 %s >/dev/null", q(dir), q(wim), q(dir)))
  return dir
end

-- The damage every case does, and what the check must say of it.
local function damage(d)
  F.sh(table.concat({
    "cd " .. q(d),
    "echo changed >> hello.txt",                  -- modified (size)
    "truncate -s 10 lib/7z.so",                   -- truncated
    "rm docs/readme.txt",                         -- deleted
    "rm -r deep/a/b/c && echo not-a-dir > deep/a/b/c", -- a directory replaced by a file
    "rm empty.txt && mkdir empty.txt && echo x > empty.txt/inside", -- a file by a directory
    "echo extra > extra.txt",                     -- extra: never touched
  }, " && "))
end

local WANT = {
  ["/deep/a/b/c"] = "wrong_type",
  ["/deep/a/b/c/d"] = "missing",
  ["/deep/a/b/c/d/leaf.txt"] = "missing",
  ["/docs/readme.txt"] = "missing",
  ["/empty.txt"] = "wrong_type",
  ["/hello.txt"] = "modified",
  ["/lib/7z.so"] = "modified",
}

local function findings(r)
  local got = {}
  for _, d in ipairs(r.damaged) do
    got[d.path] = d.reason
  end
  return got
end

-- mode and mtime (ns) of every path below dir, extra.txt aside
local function stats(dir)
  local out = F.sh("cd " .. q(dir) .. " && find . ! -name extra.txt -printf '%p %m %T@\\n' | sort")
  return out
end

lazy_setup(function()
  T = F.tmpdir("ihtree")
  tree = F.tree()
  wim = F.capture(tree, T .. "/ref.wim")
  apply(T .. "/fresh")
end)

describe("applied trees", function()
  it("check lists exactly the damage, restore makes the tree equal to a fresh apply", function()
    local d = apply(T .. "/t1")
    local ref = "--reference " .. q("wim:" .. wim .. ":1")
    local code, out, err = run("check " .. q(d) .. " " .. ref .. " --scan --json")
    assert.equal(0, code, out .. err)
    assert.equal("healthy", json.decode(out).state)

    damage(d)
    code, out, err = run("check " .. q(d) .. " " .. ref .. " --scan --json")
    assert.equal(1, code, err)
    local r = json.decode(out)
    assert.same(WANT, findings(r))
    assert.same({"/extra.txt"}, r.extra)
    assert.is_true(r.tree)

    -- the quick check sees the same here (sizes, types, presence)
    code, out = run("check " .. q(d) .. " " .. ref .. " --json")
    assert.equal(1, code)
    assert.same(WANT, findings(json.decode(out)))

    code, out, err = run("restore " .. q(d) .. " " .. ref .. " --json")
    assert.equal(0, code, out .. err)
    r = json.decode(out)
    assert.equal("healthy", r.state)
    local actions = {}
    for _, rp in ipairs(r.repaired) do
      actions[rp.path] = rp.action
    end
    assert.equal("rewritten", actions["/hello.txt"])
    assert.equal("created", actions["/docs/readme.txt"])
    assert.equal("replaced by its directory", actions["/deep/a/b/c"])
    assert.equal("replaced a directory (and what it held)", actions["/empty.txt"])

    assert.is_true(F.run("diff -r -x extra.txt " .. q(T .. "/fresh") .. " " .. q(d)))
    assert.equal("extra\n", F.read_file(d .. "/extra.txt"))
    -- modes and mtimes: every restored path and the directories around them
    local want, got = stats(T .. "/fresh"), stats(d)
    for _, p in ipairs{"./hello.txt", "./lib/7z.so", "./docs/readme.txt", "./deep/a/b/c",
                       "./deep/a/b/c/d/leaf.txt", "./empty.txt", "./docs", "./deep/a/b"} do
      local pat = "\n" .. p:gsub("%p", "%%%0") .. " [^\n]*"
      assert.equal(("\n" .. want):match(pat), ("\n" .. got):match(pat), p)
    end
  end)

  it("a sealed tree is checked and restored without the WIM", function()
    local d = apply(T .. "/t2")
    local state = T .. "/state"
    local seal = T .. "/t2.seal"
    local code, out, err = run("seal " .. q(d) .. " --reference " .. q("wim:" .. wim .. ":1")
      .. " --output " .. q(seal), {state = state})
    assert.equal(0, code, out .. err)
    code, out, err = run("seal " .. q(d) .. " --reference " .. q("wim:" .. wim .. ":1"), {state = state})
    assert.equal(0, code, out .. err)
    local moved = T .. "/ref.away"
    F.sh("mv " .. q(wim) .. " " .. q(moved))
    local ok, e = pcall(function()
      damage(d)
      code, out, err = run("check " .. q(d) .. " --reference " .. q("seal:" .. seal) .. " --scan --json")
      assert.equal(1, code, err)
      assert.same(WANT, findings(json.decode(out)))
      -- the state store's seal: no --reference at all
      code, out, err = run("check " .. q(d) .. " --scan --json", {state = state})
      assert.equal(1, code, err)
      assert.same(WANT, findings(json.decode(out)))
      code, out, err = run("restore " .. q(d) .. " --source " .. q(T .. "/fresh") .. " --json",
        {state = state})
      assert.equal(0, code, out .. err)
      assert.is_true(F.run("diff -r -x extra.txt " .. q(T .. "/fresh") .. " " .. q(d)))
      -- an edited seal is refused
      local bytes = F.read_file(seal)
      F.write_file(seal, bytes:sub(1, 200) .. "X" .. bytes:sub(202))
      code, out, err = run("check " .. q(d) .. " --reference " .. q("seal:" .. seal))
      assert.equal(3, code)
      assert.matches("checksum", err)
    end)
    F.sh("mv " .. q(moved) .. " " .. q(wim))
    assert(ok, e)
  end)

  it("a link leading out of the tree is refused and nothing outside changes", function()
    local d = apply(T .. "/t3")
    local outside = T .. "/outside"
    F.sh(string.format("rm -rf %s && mkdir -p %s/b/c/d && echo keep > %s/b/c/d/leaf.txt && "
      .. "echo keep > %s/hello.txt && rm -r %s/deep/a/b && ln -s %s/b %s/deep/a/b && "
      .. "rm %s/hello.txt && ln -s ../outside/hello.txt %s/hello.txt",
      q(outside), q(outside), q(outside), q(outside), q(d), q(outside), q(d), q(d), q(d)))
    local before = F.sh("cd " .. q(outside) .. " && find . -printf '%p %s %T@\\n' | sort")
    local ref = "--reference " .. q("wim:" .. wim .. ":1")
    local code, out, err = run("check " .. q(d) .. " " .. ref .. " --scan --json")
    assert.equal(1, code, err)
    local r = json.decode(out)
    local outs = 0
    for _, dm in ipairs(r.damaged) do
      if dm.found_type == "link" and dm.detail:find("leading out of the tree", 1, true) then
        outs = outs + 1
      end
    end
    assert.equal(2, outs)
    code, out, err = run("restore " .. q(d) .. " " .. ref .. " --json")
    assert.equal(1, code, err)
    r = json.decode(out)
    local refused = 0
    for _, u in ipairs(r.unrepaired) do
      if u.code == "access_denied" then refused = refused + 1 end
    end
    assert.is_true(refused >= 2)
    assert.equal(before, F.sh("cd " .. q(outside) .. " && find . -printf '%p %s %T@\\n' | sort"))
    assert.is_true(F.run("test -L " .. q(d .. "/deep/a/b") .. " && test -L " .. q(d .. "/hello.txt")))
  end)

  it("Lua: open with a reference, check, seal", function()
    local ih = require "imagehealth"
    local d = apply(T .. "/t4")
    F.sh("echo x >> " .. q(d .. "/hello.txt"))
    local s = assert(ih.open(d, {reference = "wim:" .. wim .. ":1", state_dir = T .. "/luastate"}))
    local state, r = s:check_health{scan = true}
    assert.equal("repairable", state)
    assert.equal(1, #r.damaged)
    assert.equal("/hello.txt", r.damaged[1].path)
    assert.equal("file", r.damaged[1].want_type)
    assert.matches("1 path differs from the reference", r:summary(), 1, true)
    local where = assert(s:seal(T .. "/t4.seal"))
    assert.equal(T .. "/t4.seal", where)
    state, r = s:restore_health{}
    assert.equal("healthy", state)
    assert.equal("rewritten", r.repaired[1].action)
    s:close()
    local nope, err = ih.open(T .. "/nothing-here", {reference = "wim:" .. wim .. ":1"})
    assert.is_nil(nope)
    assert.equal("not_found", err.code)
  end)
end)
