-- spec/binding_options_spec.lua - how the C binding takes its arguments:
-- strings with an embedded NUL are refused (C would see only the part
-- before the NUL), and option values that an __index function makes fresh
-- (held by nothing else) stay alive while C uses them, whatever the
-- garbage collector does meanwhile (run under ASan by tools/run-tests
-- busted-asan, which then sees any use after free).

local ih = require "imagehealth"
local F = require "support.fixtures"
local H = require "support.restore_helpers"

local tree

lazy_setup(function()
  tree = F.tree()
end)

local function damaged(dir)
  return H.damaged_copy(dir, tree.text)
end

-- A string equal to s but built now (long: not one of the interned short
-- strings), so that only the caller holds it.
local function fresh(s)
  return table.concat{s:sub(1, 1), s:sub(2)} .. string.rep("", 1)
end

describe("strings with an embedded NUL", function()
  local dir, img

  before_each(function()
    dir = F.tmpdir("nul")
    img = F.copy(F.image("LZX"), dir .. "/x")
  end)

  it("are refused as the image path of open (not cut at the NUL)", function()
    local ok, e = pcall(ih.open, img .. "\0junk")
    assert.is_false(ok, "opened " .. img)
    assert.matches("bad argument #1 to 'open' (path with an embedded NUL)", e, 1, true)
    -- the same path without the NUL opens
    local s <close> = assert(ih.open(img, {state_dir = F.tmpdir("state")}))
  end)

  it("are refused in state_dir, sources, path_map and policy_hive, naming the option", function()
    local ok, e = pcall(ih.open, img, {state_dir = dir .. "\0/elsewhere"})
    assert.is_false(ok)
    assert.matches("bad option 'state_dir' (string with an embedded NUL)", e, 1, true)

    local s <close> = assert(ih.open(img, {state_dir = F.tmpdir("state")}))
    local cases = {
      {{sources = {F.image("LZX") .. "\0x"}}, "bad option 'sources' (item 1: string with an embedded NUL)"},
      {{sources = {"/nowhere", "wim:" .. F.image("LZX") .. ":1\0"}},
       "bad option 'sources' (item 2: string with an embedded NUL)"},
      {{path_map = {["C:\\Src\0"] = dir}}, "bad option 'path_map' (item 1: string with an embedded NUL)"},
      {{path_map = {{"C:\\Src", dir .. "\0/x"}}}, "bad option 'path_map' (item 1: string with an embedded NUL)"},
      {{policy_hive = dir .. "/SOFTWARE\0"}, "bad option 'policy_hive' (string with an embedded NUL)"},
    }
    for _, c in ipairs(cases) do
      local ok2, e2 = pcall(s.restore_health, s, c[1])
      assert.is_false(ok2, c[2])
      assert.matches(c[2], e2, 1, true)
    end
  end)
end)

describe("options made by __index", function()
  it("stay alive while open uses them, through full collections", function()
    local dir = F.tmpdir("gcopen")
    local img = damaged(dir)
    local sd = dir .. "/a-state-directory-with-a-long-enough-name"
    local calls = 0
    local opts = setmetatable({}, {__index = function(_, k)
      calls = calls + 1
      collectgarbage("collect") -- frees what an earlier call returned, if nothing holds it
      if k == "state_dir" then
        return fresh(sd)
      end
    end})
    local s <close> = assert(ih.open(img, opts))
    assert.is_true(calls >= 3)
    local st = s:check_health{scan = true}
    assert.equal("repairable", st)
    -- the record went into the state directory given, under its exact name
    assert.is_true((F.run("test -n \"$(ls -A " .. F.q(sd) .. ")\"")))
  end)

  it("stay alive while restore_start uses them, through full collections", function()
    local dir = F.tmpdir("gcrestore")
    local img = damaged(dir)
    local good = F.copy(F.image("LZX"), dir .. "/good.wim")
    local made = {
      sources = function() return {fresh("/no/such/source/anywhere/at/all"), fresh(good)} end,
      path_map = function() return {{fresh("C:\\Src"), fresh(dir .. "/mapped/dir")}} end,
      policy_hive = function() return fresh(dir .. "/no-such-hive-file-anywhere") end,
      cancel = function() return ih.cancel_token() end,
    }
    local opts = setmetatable({}, {__index = function(_, k)
      collectgarbage("collect")
      local f = made[k]
      local v = f and f()
      collectgarbage("collect")
      return v
    end})
    local s <close> = assert(ih.open(img, {state_dir = F.tmpdir("state")}))
    -- the binding's own method, given the table as it is (restore_health
    -- would copy the options into a plain table first)
    local j = assert(s:restore_start(opts))
    collectgarbage("collect")
    local state, r = j:wait()
    j:close()
    assert.equal("healthy", state, tostring(r))
    assert.equal(2, #r.sources)
    assert.equal("/no/such/source/anywhere/at/all", r.sources[1].spec)
    assert.equal(good, r.sources[2].spec)
    assert.equal(1, r.sources[2].blobs_used)
    assert.matches("no-such-hive-file-anywhere", r.policy.note, 1, true)
    assert.is_true((F.verify(img)))
  end)
end)
