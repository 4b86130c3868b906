-- spec/policy_edges_spec.lua - a servicing policy cannot lead a restore out
-- of the directories path_map names (a ".." in LocalSourcePath), and a
-- policy hive that is not a regular file (a FIFO) is refused at once
-- instead of blocking the restore for ever.

local ih = require "imagehealth"
local F = require "support.fixtures"
local H = require "support.restore_helpers"
local q = F.q

local tree

lazy_setup(function()
  tree = F.tree()
end)

local function damaged(dir)
  return H.damaged_copy(dir, tree.text)
end

describe("policy sources", function()
  it("refuse a LocalSourcePath that leaves the path_map directory with ..", function()
    local d = F.tmpdir("poldotdot")
    F.sh("mkdir -p " .. q(d .. "/mapped") .. " " .. q(d .. "/elsewhere"))
    -- a good image reachable only through the ".."
    F.copy(F.image("LZX"), d .. "/elsewhere/good.wim")
    local hive = d .. "/SOFTWARE"
    local lsp = "wim:C:\\Src\\..\\elsewhere\\good.wim:1"
    F.sh(string.format("%s %s %s 2", q(H.mkhive()), q(hive), q(lsp)))
    local img = damaged(d)
    local orig = F.copy(img, d .. "/orig.wim")
    local s <close> = assert(ih.open(img, {state_dir = F.tmpdir("state")}))
    local state, r = s:restore_health{policy_hive = hive,
                                      path_map = {["C:\\Src"] = d .. "/mapped"}}
    assert.equal("repairable", state, tostring(r))
    assert.equal(lsp, r.policy.local_source_path)
    assert.equal(1, #r.sources)
    local src = r.sources[1]
    assert.equal("policy", src.origin)
    assert.equal(lsp, src.spec)
    assert.is_false(src.usable)
    assert.matches('".."', src.error, 1, true)
    -- not taken for a missing mapping (the CLI's advice would say to add one)
    assert.not_matches("path_map", src.error, 1, true)
    assert.equal(0, #r.repaired)
    assert.is_true(H.same_file(img, orig))
  end)

  it("still map a path whose names only contain dots", function()
    local d = F.tmpdir("poldots")
    F.sh("mkdir -p " .. q(d .. "/mapped/..x"))
    F.copy(F.image("LZX"), d .. "/mapped/..x/good...wim")
    local hive = d .. "/SOFTWARE"
    F.sh(string.format("%s %s %s 2", q(H.mkhive()), q(hive), q("wim:C:\\Src\\..x\\good...wim:1")))
    local img = damaged(d)
    local s <close> = assert(ih.open(img, {state_dir = F.tmpdir("state")}))
    local state, r = s:restore_health{policy_hive = hive,
                                      path_map = {["C:\\Src"] = d .. "/mapped"}}
    assert.equal("healthy", state, tostring(r))
    assert.is_true((F.verify(img)))
  end)

  it("a policy hive that is a FIFO is refused without blocking", function()
    local d = F.tmpdir("polfifo")
    local fifo = d .. "/SOFTWARE"
    F.sh("mkfifo " .. q(fifo))
    local img = damaged(d)
    -- in a child with a time limit: before the fix it blocked for ever
    local script = d .. "/run.lua"
    F.write_file(script, string.format([[
      local ih = require "imagehealth"
      local s = assert(ih.open(%q, {state_dir = %q}))
      local st, r = s:restore_health{policy_hive = %q, sources = {%q}}
      print(st, r.policy.note)
    ]], img, d .. "/state", fifo, F.image("LZX")))
    local t0 = os.time()
    local ok, out, code = F.run(string.format("timeout 20 env LUA_PATH=%s LUA_CPATH=%s lua5.4 %s",
      q(package.path), q(package.cpath), q(script)))
    assert.is_true(ok, "exit " .. tostring(code) .. ": " .. out)
    assert.is_true(os.time() - t0 < 15)
    assert.matches("^healthy", out)
    assert.matches("not a regular file", out, 1, true)
  end)
end)
