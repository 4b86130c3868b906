-- spec/scripted_restore_spec.lua - restores scripted in Lua (issue 9):
-- scripted sources ({name =, lookup = function(blob)}), per-blob source
-- order, accept / on_unrepairable / on_repaired policies, dry runs
-- (restore_plan), strict options, structured damage events, scripted
-- functions that yield (a plain coroutine scheduler, cqueues) or raise.
--
-- Oracles: `wimlib-imagex verify`, `7z t`, a byte-for-byte extract
-- (spec/support/fixtures.lua), and `cmp` for "the image is as it was".

local ih = require "imagehealth"
local F = require "support.fixtures"
local H = require "support.restore_helpers"
local q = F.q

local tree

lazy_setup(function()
  tree = F.tree()
end)

local function fresh(kind)
  local src = F.image(kind)
  return F.copy(src, F.tmpdir(kind) .. "/" .. F.basename(src))
end

local function open(img)
  return assert(ih.open(img, {state_dir = F.tmpdir("state")}))
end

-- Every part of img byte-identical to its copy made before (cmp).
local function snapshot(img)
  local snaps = {}
  for _, p in ipairs(F.parts(img)) do
    local c = F.tmpname(".snap")
    F.sh("cp -p " .. q(p) .. " " .. q(c))
    snaps[#snaps + 1] = {p, c}
  end
  return function()
    for _, pc in ipairs(snaps) do
      local ok = os.execute("cmp -s " .. q(pc[1]) .. " " .. q(pc[2]))
      if not ok then
        return false, pc[1]
      end
    end
    return true
  end
end

local function assert_pristine(img, label)
  H.assert_pristine(img, tree.dir, label)
end

-- A scripted source serving the tree's files by the blob's first path.
local function tree_source(name, log)
  return {name = name, lookup = function(blob)
    if log then
      log[#log + 1] = blob
    end
    local p = blob.paths[1]
    if not p or not tree.files[p] then
      return nil, "not a regular file of the tree" -- (a symlink's blob is its reparse data)
    end
    local data = F.read_file(tree.dir .. p)
    if not data then
      return nil, "not in the tree: " .. p
    end
    return data
  end}
end

local function by_sha1(list)
  local m = {}
  for _, e in ipairs(list or {}) do
    m[e.sha1] = e
  end
  return m
end

------------------------------------------------------------------ sources

describe("a scripted source", function()
  for _, kind in ipairs{"none", "XPRESS", "LZMS", "solid", "split"} do
    it("repairs a " .. kind .. " image with good bytes", function()
      local img = fresh(kind)
      local dmg = F.damage_file_data(img, tree.text)
      assert.is_false((F.verify(img)))
      local log = {}
      local s <close> = open(img)
      local events = {}
      -- (the pristine image after it serves what is no regular file: a
      -- solid chunk holds a symlink's reparse data too)
      local state, r = s:restore_health{sources = {tree_source("tree", log), F.image(kind)},
        progress = function(ev) events[#events + 1] = ev end}
      assert.equal("healthy", state, tostring(r))
      local scripted = 0
      for _, sha1 in pairs(dmg.sha1s) do
        local rp = by_sha1(r.repaired)[sha1]
        assert.is_table(rp, "not repaired: " .. sha1)
        if rp.paths[1] and tree.files[rp.paths[1]] then
          assert.equal(1, rp.source)
          assert.equal("script:tree", rp.source_spec)
          scripted = scripted + 1
        end
      end
      assert.is_true(scripted >= 1)
      assert.equal("script", r.sources[1].kind)
      assert.equal(scripted, r.sources[1].blobs_used)
      assert.equal(0, r.sources[1].blobs_rejected)
      -- the lookup saw the blob as the issue describes it
      local b = log[1]
      assert.is_string(b.sha1)
      assert.equal(40, #b.sha1)
      assert.is_number(b.size)
      assert.is_table(b.paths)
      assert.same({1}, b.images)
      assert.is_string(b.reason)
      for _, ev in ipairs(events) do
        assert.are_not.equal("request", ev.type) -- requests never reach progress
      end
      assert_pristine(img, kind)
    end)
  end

  it("that lies is skipped for the next source and counted under its name", function()
    local img = fresh("LZX")
    F.damage_file_data(img, tree.text)
    local liar = {name = "liar", lookup = function(blob)
      local data = F.read_file(tree.dir .. blob.paths[1])
      return data:sub(1, 10) .. string.char((data:byte(11) + 1) % 256) .. data:sub(12)
    end}
    local s <close> = open(img)
    local state, r = s:restore_health{sources = {liar, tree_source("good")}}
    assert.equal("healthy", state, tostring(r))
    assert.equal("script:liar", r.sources[1].spec)
    assert.equal(#r.repaired, r.sources[1].blobs_rejected)
    assert.equal(0, r.sources[1].blobs_used)
    assert.equal(#r.repaired, r.sources[2].blobs_used)
    for _, rp in ipairs(r.repaired) do
      assert.equal(2, rp.source)
    end
    assert.matches("rejected mismatched data from %[1%] script:liar", r:summary())
    assert_pristine(img, "liar")
  end)

  it("may answer with a reader function, or nil and a reason", function()
    local img = fresh("XPRESS")
    F.damage_file_data(img, tree.text)
    local none = {name = "empty", lookup = function() return nil, "not here" end}
    local pieces = {name = "pieces", lookup = function(blob)
      local data = F.read_file(tree.dir .. blob.paths[1])
      local off = 1
      return function()
        if off > #data then
          return nil
        end
        local p = data:sub(off, off + 999)
        off = off + 1000
        return p
      end
    end}
    local s <close> = open(img)
    local state, r = s:restore_health{sources = {none, pieces}}
    assert.equal("healthy", state, tostring(r))
    assert.equal(0, r.sources[1].blobs_used)
    assert.equal(#r.repaired, r.sources[2].blobs_used)
    assert_pristine(img, "reader")
  end)

  it("keeps what each source said of a blob: a lookup's nil, reason; wrong bytes", function()
    local img = fresh("LZX")
    local d1 = F.damage_file_data(img, tree.text)
    local d2 = F.damage_file_data(img, tree.random)
    local inner = tree_source("inner")
    local mirror = {name = "mirror", lookup = function(blob)
      if blob.paths[1] == tree.text then
        return nil, "not on this mirror"
      end
      return inner.lookup(blob)
    end}
    local liar = {name = "liar", lookup = function() return "not the bytes" end}
    local told
    local s <close> = open(img)
    local state, r = s:restore_health{sources = {mirror, liar},
      order = function(_, sources) return {sources[2], sources[1]} end,
      on_unrepairable = function(blob) told = blob end}
    assert.equal("repairable", state, tostring(r))
    assert.equal(1, #r.unrepaired)
    local u = r.unrepaired[1]
    assert.equal(d1.sha1, u.sha1)
    assert.equal("source_missing", u.code)
    assert.same({
      {source = 2, name = "liar", spec = "script:liar", status = "wrong_bytes"},
      {source = 1, name = "mirror", spec = "script:mirror", status = "not_found",
       reason = "not on this mirror"},
    }, u.tried)
    -- the repaired blob says which source served it, and who failed before
    local rp = by_sha1(r.repaired)[d2.sha1]
    assert.equal(1, rp.source)
    assert.equal("mirror", rp.source_name)
    assert.equal("script:mirror", rp.source_spec)
    assert.equal(1, #rp.tried)
    assert.equal("wrong_bytes", rp.tried[1].status)
    assert.equal(2, rp.tried[1].source)
    -- per-source counts
    assert.equal(1, r.sources[1].blobs_not_found)
    assert.equal(1, r.sources[1].blobs_used)
    assert.equal(2, r.sources[2].blobs_rejected)
    assert.equal(0, r.sources[2].blobs_not_found)
    -- the hook sees it too, and people read it
    assert.same(u.tried, told.tried)
    local text = tostring(r)
    assert.matches("tried: [2] liar: wrong bytes (rejected); [1] mirror: not found (not on this mirror)",
      text, 1, true)
    assert.matches("%[1%] script:mirror %(script, caller%): 1 blob used, [^\n]- read, 1 blob not found",
      text)
    assert.matches("imagehealth.Try: [1] mirror: not found (not on this mirror)", tostring(u.tried[2]),
      1, true)
  end)

  it("that yields on every lookup works under a plain coroutine scheduler", function()
    local img = fresh("LZX")
    F.damage_file_data(img, tree.text)
    F.damage_file_data(img, tree.random)
    local yields = 0
    local src = {name = "yielding", lookup = function(blob)
      coroutine.yield("lookup")
      local data = F.read_file(tree.dir .. blob.paths[1])
      local done = false
      return function()
        coroutine.yield("read")
        if done then return nil end
        done = true
        return data
      end
    end}
    local state, r
    local co = coroutine.create(function()
      local s <close> = open(img)
      state, r = s:restore_health{sources = {src}, order = function(_, sources)
        coroutine.yield("order")
        return sources
      end}
    end)
    -- the scheduler: resume until done, counting the yields it sees
    while coroutine.status(co) ~= "dead" do
      local ok, what = coroutine.resume(co)
      assert(ok, what)
      if what then
        yields = yields + 1
      end
    end
    assert.equal("healthy", state, tostring(r))
    assert.is_true(#r.repaired >= 2)
    assert.is_true(yields >= 4 * #r.repaired, "yields: " .. yields)
    assert_pristine(img, "yielding")
  end)

  it("that yields on every lookup works under cqueues", function()
    local ok, cqueues = pcall(require, "cqueues")
    if not ok then
      pending("cqueues is not installed")
      return
    end
    local img = fresh("LZX")
    F.damage_file_data(img, tree.text)
    local sleeps, ticks = 0, 0
    local src = {name = "cq", lookup = function(blob)
      cqueues.sleep(0.001)
      sleeps = sleeps + 1
      return F.read_file(tree.dir .. blob.paths[1])
    end}
    local cq = cqueues.new()
    local state, r
    local running = true
    cq:wrap(function()
      local s <close> = open(img)
      state, r = s:restore_health{sources = {src}, poll = cqueues.poll}
      running = false
    end)
    cq:wrap(function() -- the loop keeps running meanwhile
      while running do
        ticks = ticks + 1
        cqueues.sleep(0.005)
      end
    end)
    assert(cq:loop())
    assert.equal("healthy", state, tostring(r))
    assert.equal(#r.repaired, sleeps)
    assert.is_true(ticks > 0)
    assert_pristine(img, "cqueues")
  end)

  it("that raises cancels the restore: the error has the traceback, the image is as it was", function()
    local img = fresh("split")
    F.damage_file_data(img, tree.text)
    F.damage_file_data(img, tree.random)
    local same = snapshot(img)
    local calls = 0
    local function explode(blob)
      calls = calls + 1
      if calls == 2 then
        error("mirror exploded on " .. blob.sha1)
      end
      return F.read_file(tree.dir .. blob.paths[1])
    end
    local s <close> = open(img)
    local state, err = s:restore_health{sources = {{name = "boom", lookup = explode}}}
    assert.is_nil(state)
    assert.is_true(ih.is_error(err))
    assert.equal("cancelled", err.code)
    assert.is_true(err.raised)
    assert.matches("the lookup of scripted source 'boom' raised an error: .*mirror exploded", err.message)
    assert.matches("stack traceback:", err.traceback)
    assert.matches("scripted_restore_spec%.lua:%d+: in function", err.traceback)
    assert.is_true(same())
    -- and the session goes on: a restore after it works
    local state2, r2 = s:restore_health{sources = {tree_source("tree")}}
    assert.equal("healthy", state2, tostring(r2))
    assert_pristine(img, "after raise")
  end)

  it("whose lookup never returns is bounded by the cancel token", function()
    local img = fresh("LZX")
    F.damage_file_data(img, tree.text)
    local same = snapshot(img)
    local token = ih.cancel_token()
    local t0 = os.time()
    local co = coroutine.wrap(function()
      local s <close> = open(img)
      return s:restore_health{sources = {{name = "stuck", lookup = function()
        while true do coroutine.yield() end
      end}}, cancel = token}
    end)
    local state, err = co()
    local n = 0
    while state == nil and err == nil do
      n = n + 1
      if n == 50 then token:cancel() end
      state, err = co()
    end
    -- a yielded lookup is the caller's: cancelling gives control back only
    -- when it returns; here it never does, so the job's own bound is what
    -- ends it: the worker stops waiting, the restore is cancelled.
    assert.is_true(n >= 50)
    assert.is_true(os.time() - t0 < 30)
    assert.is_nil(state)
    assert.equal("cancelled", err.code)
    assert.is_true(same())
  end)
end)

local wait_raw = require("imagehealth.job").private.wait_raw

describe("a restore_health_job", function()
  -- what an event loop does: poll the job's fd, drain, and at the end take
  -- the result; the requests are answered inside drain()
  local function drive_by_drain(j)
    while not j:done() do
      wait_raw(j, 20) -- (stands in for the loop's poll of j:pollfd())
      for _, ev in ipairs(j:drain()) do
        assert.are_not.equal("request", ev.type)
      end
    end
    j:drain()
    return j:result()
  end

  it("driven by pollfd/drain/result answers its scripted source", function()
    local img = fresh("LZX")
    F.damage_file_data(img, tree.text)
    local s <close> = open(img)
    local j <close> = assert(s:restore_health_job{sources = {tree_source("tree")}})
    local state, r = drive_by_drain(j)
    assert.equal("healthy", state, tostring(r))
    assert.equal(1, r.sources[1].blobs_used)
    assert_pristine(img, "drain")
  end)

  it("whose scripted source raises gives the error with its traceback from result()", function()
    local img = fresh("LZX")
    F.damage_file_data(img, tree.text)
    local same = snapshot(img)
    local s <close> = open(img)
    local j <close> = assert(s:restore_health_job{sources = {{name = "boom", lookup = function()
      error("no network")
    end}}})
    local state, err = drive_by_drain(j)
    assert.is_nil(state)
    assert.equal("cancelled", err.code)
    assert.matches("scripted source 'boom' raised an error: .*no network", err.message)
    assert.matches("stack traceback:", err.traceback)
    assert.is_true(same())
  end)
end)

------------------------------------------------------------------ policies

describe("restore policies", function()
  it("order sends different blobs to different sources; the report shows each", function()
    local img = fresh("LZMS")
    local d1 = F.damage_file_data(img, tree.text)
    local d2 = F.damage_file_data(img, tree.random)
    local a, b = tree_source("a"), tree_source("b")
    local seen = 0
    local s <close> = open(img)
    local state, r = s:restore_health{sources = {a, b, tree.dir}, order = function(blob, sources)
      seen = seen + 1
      assert.equal(3, #sources)
      assert.equal(a, sources[1])
      if blob.paths[1] == tree.text then
        return {b, a}
      end
      return {a}
    end}
    assert.equal("healthy", state, tostring(r))
    assert.equal(#r.repaired, seen)
    local m = by_sha1(r.repaired)
    assert.equal(2, m[d1.sha1].source)
    assert.equal("script:b", m[d1.sha1].source_spec)
    assert.equal(1, m[d2.sha1].source)
    assert.equal("script:a", m[d2.sha1].source_spec)
    assert.equal(0, r.sources[3].blobs_used) -- the directory was never asked
    assert.equal(0, r.sources[3].bytes_read)
    assert_pristine(img, "order")
  end)

  it("accept skips blobs (skipped by policy, with paths); on_* hooks are told, in order", function()
    local img = fresh("LZX")
    local d1 = F.damage_file_data(img, tree.text)
    local d2 = F.damage_file_data(img, tree.random)
    local calls = {}
    local s <close> = open(img)
    local state, r = s:restore_health{sources = {tree_source("tree")},
      accept = function(blob)
        if blob.paths[1] == tree.text then
          return false, "not today"
        end
        return true
      end,
      on_repaired = function(blob, source)
        calls[#calls + 1] = {"repaired", blob.sha1, source}
      end,
      on_unrepairable = function(blob)
        calls[#calls + 1] = {"unrepairable", blob.sha1, blob.code, blob.paths[1]}
      end}
    assert.equal("repairable", state, tostring(r))
    assert.equal(1, #r.unrepaired)
    local u = r.unrepaired[1]
    assert.equal(d1.sha1, u.sha1)
    assert.equal("policy_disallowed", u.code)
    assert.equal(0x800F0907, u.hresult)
    assert.equal("not today", u.policy_reason)
    assert.same({tree.text}, u.paths)
    assert.is_table(by_sha1(r.repaired)[d2.sha1])
    assert.equal(2, #calls)
    assert.equal("repaired", calls[1][1])
    assert.equal(d2.sha1, calls[1][2])
    assert.equal("tree", calls[1][3].name)
    assert.same({"unrepairable", d1.sha1, "policy_disallowed", tree.text}, calls[2])
    assert.matches("skipped by policy", tostring(r))
    -- text.txt is still damaged; everything else reads right
    local z = F.sevenzip_test(img)
    assert.is_false(z.ok)
  end)
end)

------------------------------------------------------------------ dry run

describe("restore_plan (a dry run)", function()
  for _, kind in ipairs{"XPRESS", "split"} do
    it("leaves a " .. kind .. " image byte-identical and agrees with the restore after it", function()
      local img = fresh(kind)
      local dmg = F.damage_file_data(img, tree.text)
      local same = snapshot(img)
      local liar = {name = "liar", lookup = function() return "nope" end}
      local s <close> = open(img)
      local sources = {liar, tree_source("tree"), F.image(kind)}
      local state, plan = s:restore_plan{sources = sources}
      assert.equal("repairable", state, tostring(plan))
      assert.is_true(plan.dry_run)
      assert.equal(0, plan.bytes_written)
      assert.is_true(plan.bytes_planned > 0)
      assert.is_true(same())
      assert.is_table(by_sha1(plan.repaired)[dmg.sha1])
      assert.matches("would", plan:summary())
      local state2, r = s:restore_health{sources = sources}
      assert.equal("healthy", state2, tostring(r))
      assert.is_false(r.dry_run)
      assert.equal(#plan.repaired, #r.repaired)
      local pm = by_sha1(plan.repaired)
      for _, rp in ipairs(r.repaired) do
        assert.equal(rp.source, pm[rp.sha1].source)
        assert.equal(rp.size, pm[rp.sha1].size)
      end
      assert.equal(plan.bytes_planned, (function()
        local n = 0
        for _, rp in ipairs(r.repaired) do n = n + rp.size end
        return n
      end)())
      assert_pristine(img, "after plan")
    end)
  end

  it("says what no source has", function()
    local img = fresh("LZX")
    local dmg = F.damage_file_data(img, tree.text)
    local s <close> = open(img)
    local state, plan = s:restore_plan{sources = {{name = "none", lookup = function() return nil end}}}
    assert.equal("repairable", state)
    assert.equal(0, #plan.repaired)
    assert.equal(dmg.sha1, plan.unrepaired[1].sha1)
    assert.equal("source_missing", plan.unrepaired[1].code)
  end)

  it("imagehealth restore --dry-run writes nothing", function()
    local img = fresh("LZX")
    F.damage_file_data(img, tree.text)
    local same = snapshot(img)
    local code, out, err = H.run_cli("restore --dry-run --source " .. q(tree.dir) .. " " .. q(img))
    assert.is_true(same(), out .. err)
    assert.equal(1, code, out .. err) -- still repairable
    assert.matches("would", out .. err)
    assert.matches("dry run", out .. err)
  end)
end)

------------------------------------------------------------------ every compression

-- The issue's checks on every compression and a split set, in one pass per
-- image: a source that raises leaves it byte-identical; a dry run (a liar
-- first, then a source that yields on every lookup and read, under a plain
-- coroutine scheduler) leaves it byte-identical too; the restore after it
-- (the same sources, an order policy, waiting under cqueues when there is
-- one) agrees with the plan, and the image is pristine after (verify, 7z t,
-- a byte-for-byte extract).
describe("scripted restores on every compression", function()
  local has_cq, cqueues = pcall(require, "cqueues")

  -- Runs f() as a plain scheduler would: resumes until it ends, counting
  -- the yields that reach it.
  local function scheduled(f)
    local co = coroutine.create(f)
    local yields, res = 0, nil
    while coroutine.status(co) ~= "dead" do
      res = table.pack(coroutine.resume(co))
      assert(res[1], res[2])
      if coroutine.status(co) ~= "dead" then
        yields = yields + 1
      end
    end
    return yields, table.unpack(res, 2, res.n)
  end

  -- Runs f() in a cqueues loop (without cqueues: under the plain scheduler).
  local function in_loop(f)
    if not has_cq then
      return select(2, scheduled(f))
    end
    local out
    local cq = cqueues.new()
    cq:wrap(function() out = table.pack(f()) end)
    assert(cq:loop())
    return table.unpack(out, 1, out.n)
  end

  for _, kind in ipairs{"none", "XPRESS", "LZX", "LZMS", "solid", "split"} do
    it(kind .. ": raise, plan, restore", function()
      local img = fresh(kind)
      local d1 = F.damage_file_data(img, tree.text)
      local d2 = F.damage_file_data(img, tree.random)
      local same = snapshot(img)
      local s <close> = open(img)
      -- 1. a lookup that raises: the error, and the image as it was
      local state, err = s:restore_health{sources = {{name = "boom", lookup = function()
        error("mirror down")
      end}}}
      assert.is_nil(state)
      assert.equal("cancelled", err.code)
      assert.matches("mirror down", err.traceback)
      assert.is_true(same())
      -- 2. the plan
      local liar = {name = "liar", lookup = function(blob) return string.rep("x", blob.size) end}
      -- a plain yield goes to the scheduler around the restore: under
      -- cqueues, through the controller to its caller, so there it yields
      -- to the controller instead (cqueues.sleep(0))
      local yield = coroutine.yield
      local yielding = {name = "yielding", lookup = function(blob)
        yield()
        local inner = tree_source("inner").lookup
        local data, why = inner(blob)
        if not data then return nil, why end
        local sent = false
        return function()
          yield()
          if sent then return nil end
          sent = true
          return data
        end
      end}
      -- (the pristine image last: a solid chunk holds more than regular files)
      local sources = {liar, yielding, F.image(kind)}
      local order = function(_, list) return list end
      local yields, pstate, plan = scheduled(function()
        return s:restore_plan{sources = sources, order = order}
      end)
      assert.equal("repairable", pstate, tostring(plan))
      assert.is_true(same())
      assert.is_true(yields >= 2 * 2, "yields: " .. yields)
      local pm = by_sha1(plan.repaired)
      assert.is_table(pm[d1.sha1])
      assert.is_table(pm[d2.sha1])
      assert.equal(2, pm[d1.sha1].source)
      assert.equal(2, pm[d2.sha1].source)
      assert.equal(0, #plan.unrepaired)
      -- 3. the restore: as planned, and pristine after
      local yields_cq = 0
      if has_cq then
        yield = function()
          yields_cq = yields_cq + 1
          cqueues.sleep(0)
        end
      end
      local rstate, r = in_loop(function()
        return s:restore_health{sources = sources, order = order,
          poll = has_cq and cqueues.poll or nil}
      end)
      assert.equal("healthy", rstate, tostring(r))
      assert.equal(#plan.repaired, #r.repaired)
      for _, rp in ipairs(r.repaired) do
        assert.equal(pm[rp.sha1].source, rp.source)
        assert.equal(pm[rp.sha1].size, rp.size)
        -- the liar was asked first each time, and is on record for it
        assert.equal("wrong_bytes", rp.tried[1].status)
        assert.equal("liar", rp.tried[1].name)
      end
      assert.equal(#r.repaired, r.sources[1].blobs_rejected)
      assert.is_true(not has_cq or yields_cq >= 2 * 2, "cqueues yields: " .. yields_cq)
      assert_pristine(img, kind)
    end)
  end
end)

------------------------------------------------------------------ options, events

describe("strict options", function()
  local img
  lazy_setup(function()
    img = F.image("LZX")
  end)

  local function refused(f, key)
    local ok, err = pcall(f)
    assert.is_false(ok)
    assert.matches("unknown option '" .. key .. "'", err)
    assert.matches("known: ", err)
    -- at the caller's line, not inside the library
    assert.matches("scripted_restore_spec%.lua:%d+:", err)
  end

  it("refuses unknown keys of every options table, naming the known ones", function()
    local s <close> = assert(ih.open(img, {state_dir = F.tmpdir("state")}))
    refused(function() s:check_health{scna = true} end, "scna")
    refused(function() s:check_health_job{scna = true} end, "scna")
    refused(function() s:restore_health{dry_run = true} end, "dry_run")
    refused(function() s:restore_health_job{dry_run = true} end, "dry_run")
    refused(function() s:restore_plan{rebuild = true} end, "rebuild")
    refused(function() s:restore_plan_job{on_repaired = print} end, "on_repaired")
    refused(function() ih.open(img, {indx = 1}) end, "indx")
    local j <close> = assert(s:check_health_job{})
    refused(function() j:wait{progres = print} end, "progres")
    local function nop() end
    local ok, err = pcall(function() s:check_health{scan = true, progress = nop, poll = nop,
      threads = 1, no_record = true} end)
    assert.is_true(ok, err)
  end)

  it("points other misuse at the caller's line", function()
    local s <close> = assert(ih.open(img, {state_dir = F.tmpdir("state")}))
    for _, f in ipairs{
      function() s:check_health{threads = "x"} end,
      function() s:restore_health{sources = {{name = "x"}}} end,
      function() s:restore_health{order = 1} end,
      function() ih.open(img, {index = "x"}) end,
    } do
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.matches("scripted_restore_spec%.lua:%d+:", err)
    end
  end)
end)

describe("events", function()
  it("damage events carry sha1, size, reason as fields", function()
    local img = fresh("LZX")
    local dmg = F.damage_file_data(img, tree.text)
    local s <close> = open(img)
    local got = {}
    local state, report = s:check_health{scan = true, progress = function(ev)
      if ev.type == "damage" then got[#got + 1] = ev end
    end}
    assert.equal("repairable", state)
    assert.equal(1, #got)
    assert.equal(dmg.sha1, got[1].sha1)
    assert.equal(tree.files[tree.text].size, got[1].size)
    assert.is_string(got[1].reason)
    assert.is_false(got[1].is_metadata)
    -- and the paths of the files the blob belongs to: the report's, which
    -- are the ones the damage helper found with wimlib-imagex
    assert.equal(1, #report.damaged)
    assert.same(report.damaged[1].paths, got[1].paths)
    assert.same(dmg.affected, got[1].paths)
    assert.is_true(#got[1].paths >= 1)
  end)
end)

------------------------------------------------------------------ examples

describe("examples", function()
  it("cqueues_blob_server.lua repairs through a blob server over a cqueues socket", function()
    if not pcall(require, "cqueues") then
      pending("cqueues is not installed")
      return
    end
    local img = fresh("LZX")
    F.damage_file_data(img, tree.text)
    local cmd = string.format("cd %s && lua5.4 examples/cqueues_blob_server.lua %s %s 2>&1",
      q(F.root()), q(img), q(tree.dir))
    local p = io.popen(cmd)
    local out = p:read("a")
    local ok = p:close()
    assert.is_true(ok, out)
    assert.matches("healthy", out)
    assert.matches("served %d+ blob", out)
    assert_pristine(img, "cqueues example")
  end)

  it("nightly.lua repairs with its ordering policy and its scripted blob cache", function()
    local lib, mirror, blobs = F.tmpdir("lib"), F.tmpdir("mirror"), F.tmpdir("blobs")
    local img = F.copy(F.image("LZX"), lib .. "/install.wim")
    -- a small file (the cache first) and a big one (the mirror first, and
    -- the mirror has no copy: the cache after it)
    local small
    local paths = F.keys(tree.files)
    table.sort(paths)
    for _, p in ipairs(paths) do
      local sz = tree.files[p].size
      if sz > 1000 and sz < 60000 and p ~= tree.text then
        small = p
        break
      end
    end
    F.damage_file_data(img, small)
    F.damage_file_data(img, tree.text)
    for _, p in ipairs{small, tree.text} do
      F.sh("cp " .. q(tree.dir .. p) .. " " .. q(blobs .. "/" .. F.sha1_file(tree.dir .. p)))
    end
    local cmd = string.format("cd %s && lua5.4 examples/nightly.lua %s %s %s %s 2>&1", q(F.root()),
      q(lib), q(mirror), q(F.tmpdir("state")), q(blobs))
    local p = io.popen(cmd)
    local out = p:read("a")
    local ok = p:close()
    assert.is_true(ok, out)
    assert.matches("healthy %(was repairable%): repaired 2 damaged blobs", out)
    assert.matches("2 from script:blob%-cache", out)
    assert_pristine(img, "nightly")
  end)
end)
