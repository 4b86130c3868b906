-- spec/session_job_spec.lua - open and info as jobs (issue 11):
-- ih.open_job(path, opts) and s:info_job{} for hosts that must not block
-- on a large image.  They are driven like a check's job (wait, cqueues
-- polling, progress callbacks); job:result() gives the Session / the info
-- table; errors come back as nil, err; closing a running one never hangs
-- and lets go of the image.
--
-- Oracles: s:info() (the synchronous call) for the info; `flock -x -n`
-- from another process for "nothing holds the image"; a synchronous
-- open + info in the same event loop for what blocking looks like.

local ih = require "imagehealth"
local F = require "support.fixtures"
local q = F.q

local has_cq, cqueues = pcall(require, "cqueues")

local state_dir

-- A multi-image WIM whose info takes long enough to see (every image's
-- metadata decoded): the largest of a few system directories, captured
-- uncompressed four times; cached with the other fixtures.
local function big_image()
  local out = F.cache_dir() .. "/images/many-images.wim"
  if F.exists(out .. ".done") then
    return out
  end
  local best, most = nil, 0
  for _, d in ipairs{"/usr/share/man", "/usr/include", "/usr/share/doc", "/usr/share/locale"} do
    local p = io.popen("find " .. q(d) .. " 2>/dev/null | wc -l")
    local n = tonumber(p:read("a")) or 0
    p:close()
    if n > most then
      best, most = d, n
    end
  end
  assert(best and most > 2000, "no system directory with enough files for the big image")
  F.sh("mkdir -p " .. q(F.cache_dir() .. "/images"))
  os.remove(out)
  F.capture(best, out, {compress = "none", name = "one"})
  for i = 2, 4 do
    F.append(best, out, "image " .. i)
  end
  F.write_file(out .. ".done", "")
  return out
end

-- Nothing (no session of this process) holds the image's lock.
local function unlocked(path)
  return os.execute("flock -x -n " .. q(path) .. " true")
end

-- (compared as plain tables: the Info metatable prints, it adds no fields)
local function plain(t)
  local c = {}
  for k, v in pairs(t) do
    c[k] = v
  end
  return c
end

local function same_info(a, b)
  assert.same(plain(b), plain(a))
end

lazy_setup(function()
  state_dir = F.tmpdir("state")
end)

describe("ih.open_job", function()
  it("gives the Session from wait() and result(); s:info_job gives what s:info() gives", function()
    for _, kind in ipairs{"multi", "split", "solid"} do
      local img = F.image(kind)
      local j <close> = assert(ih.open_job(img, {state_dir = state_dir}))
      assert.equal("open", j:kind())
      assert.matches("imagehealth.Job: open", tostring(j), 1, true)
      local s <close> = j:wait()
      assert.equal("imagehealth.Session", getmetatable(s).__name, tostring(s))
      assert.equal(s, j:result()) -- the same Session, kept
      assert.equal(s, j:session())
      assert.equal(img, s:path())
      local ij <close> = assert(s:info_job{})
      assert.equal("info", ij:kind())
      local info = ij:wait()
      assert.equal(ih.Info, getmetatable(info))
      assert.equal(info, ij:result())
      local other <close> = assert(ih.open(img, {state_dir = state_dir}))
      same_info(info, other:info())
      -- and the session's own info was filled by the job
      same_info(s:info(), other:info())
      -- the session works like one ih.open gave
      local state, r = s:check_health{}
      assert.equal("healthy", state, tostring(r))
    end
  end)

  it("passes the open options (index) and refuses unknown ones at the caller's line", function()
    local img = F.image("multi")
    local s <close> = assert(ih.open_job(img, {index = 2, state_dir = state_dir, threads = 1}):wait())
    local info = s:info()
    assert.equal(2, info.index)
    assert.equal(1, #info.images)
    assert.equal(2, info.images[1].index)
    for _, f in ipairs{
      function() ih.open_job(img, {indx = 1}) end,
      function() ih.open_job(img, {index = "x"}) end,
      function() ih.open_job(img, {progress = 1}) end,
      function() ih.open_job(42) end,
      function() s:info_job{progres = print} end,
      function() s:info_job{poll = "cqueues"} end,
    } do
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.matches("session_job_spec%.lua:%d+:", err)
    end
    local ok, err = pcall(ih.open_job, img, {indx = 1})
    assert.is_false(ok)
    assert.matches("unknown option 'indx'", err)
    ok, err = pcall(s.info_job, s, {progress = 1})
    assert.is_false(ok)
    assert.matches("bad option 'progress' to 'info_job' %(function expected, got number%)", err)
  end)

  it("gives errors as nil, err from wait() and result() (missing file, not a WIM, bad index)", function()
    local missing = F.tmpdir("missing") .. "/nothing.wim"
    local j <close> = assert(ih.open_job(missing, {state_dir = state_dir}))
    local s, err = j:wait()
    assert.is_nil(s)
    assert.is_true(ih.is_error(err))
    assert.equal("not_found", err.code)
    assert.equal(0x80070002, err.hresult)
    assert.matches("nothing.wim", err.message, 1, true)
    local s2, err2 = j:result()
    assert.is_nil(s2)
    assert.equal("not_found", err2.code)
    assert.is_nil(j:session())
    local text = F.tmpdir("text") .. "/x.wim"
    F.write_file(text, string.rep("not a wim\n", 100))
    local _, e3 = ih.open_job(text, {state_dir = state_dir}):wait()
    assert.equal("not_wim", e3.code)
    local _, e4 = ih.open_job(F.image("multi"), {index = 9, state_dir = state_dir}):wait()
    assert.equal("bad_index", e4.code)
  end)

  it("closed while it runs: never blocks, no hang, the image is let go", function()
    local img = big_image()
    local worst = 0
    for _ = 1, 10 do
      local j = assert(ih.open_job(img, {state_dir = state_dir}))
      local t0 = os.clock()
      j:close()
      worst = math.max(worst, os.clock() - t0)
      -- a result computed before the close can still be read, else cancelled
      local s, err = j:result()
      if s then
        s:close()
      else
        assert.equal("cancelled", err.code)
      end
    end
    assert.is_true(worst < 0.02, "close took " .. worst .. " s of CPU")
    require("imagehealth.core").wait_released(5000)
    collectgarbage()
    collectgarbage()
    assert.is_truthy(unlocked(img))
    -- dropped without a close: collected, the image let go too
    for _ = 1, 5 do
      ih.open_job(img, {state_dir = state_dir})
    end
    collectgarbage()
    collectgarbage()
    require("imagehealth.core").wait_released(5000)
    assert.is_truthy(unlocked(img))
  end)

  it("counts in progress callbacks and honours its cancel token", function()
    local img = F.image("multi")
    local seen = {}
    local s <close> = assert(ih.open_job(img, {state_dir = state_dir}):wait{progress = function(ev)
      seen[#seen + 1] = ev.type
    end})
    assert.equal("done", seen[#seen])
    local phases = {}
    local info = assert(s:info_job{progress = function(ev) phases[#phases + 1] = ev end}:wait())
    assert.equal(2, #info.images)
    assert.equal("done", phases[#phases].type)
    local tok = ih.cancel_token()
    tok:cancel()
    local none, err = ih.open_job(img, {state_dir = state_dir, cancel = tok}):wait()
    assert.is_nil(none)
    assert.equal("cancelled", err.code)
  end)
end)

describe("s:info_job", function()
  it("closed with its session while it runs: no hang, the session is closed", function()
    local img = big_image()
    local s = assert(ih.open(img, {state_dir = state_dir}))
    local j = assert(s:info_job{})
    local t0 = os.clock()
    s:close()
    assert.is_true(os.clock() - t0 < 0.02)
    assert.is_true(j:closed())
    local info, err = j:result()
    assert.is_true(info ~= nil or err.code == "cancelled", tostring(err))
    require("imagehealth.core").wait_released(5000)
    collectgarbage()
    assert.is_truthy(unlocked(img))
  end)

  it("is refused while a restore runs on the session (busy); fine beside a check", function()
    local img = F.copy(F.image("LZX"), F.tmpdir("busy") .. "/x.wim")
    F.damage_file_data(img, F.tree().text)
    local s <close> = assert(ih.open(img, {state_dir = state_dir}))
    local cj <close> = assert(s:check_health_job{scan = true})
    local ij <close> = assert(s:info_job{})
    assert.equal(1, #assert(ij:wait()).images)
    cj:wait()
    -- a restore that waits on its scripted source: it runs until answered
    -- (by rj:wait() below)
    local rj <close> = assert(s:restore_health_job{sources = {{name = "x", lookup = function() end}}})
    local none, err = s:info_job{}
    assert.is_nil(none)
    assert.equal("busy", err.code)
    rj:wait()
  end)
end)

describe("open_job and info_job under cqueues", function()
  it("keep a 10 ms timer ticking while a big multi-image image opens and its info is read", function()
    if not has_cq then
      pending("cqueues is not installed")
      return
    end
    local img = big_image()
    -- one run of the loop: work() in a coroutine, a 10 ms timer beside it;
    -- the ticks' times while work ran
    local function run(work)
      local cq = cqueues.new()
      local ticks, running, out = {}, true, nil
      local t0, t1
      cq:wrap(function()
        cqueues.sleep(0.02) -- the timer first
        t0 = cqueues.monotime()
        out = table.pack(work())
        t1 = cqueues.monotime()
        running = false
      end)
      cq:wrap(function()
        while running do
          ticks[#ticks + 1] = cqueues.monotime()
          cqueues.sleep(0.01)
        end
      end)
      assert(cq:loop())
      -- the longest the loop went without a tick while work ran
      local gap, last, n = 0, t0, 0
      for _, t in ipairs(ticks) do
        if t > t0 and t <= t1 then
          gap = math.max(gap, t - last)
          last = t
          n = n + 1
        end
      end
      gap = math.max(gap, t1 - last)
      return t1 - t0, gap, n, table.unpack(out, 1, out.n)
    end
    -- what blocking looks like: the synchronous calls stall the loop for
    -- their whole duration (the oracle this spec would catch)
    local d_sync, gap_sync = run(function()
      local s <close> = assert(ih.open(img, {state_dir = state_dir}))
      return #s:info().images
    end)
    assert.is_true(gap_sync >= 0.9 * d_sync, string.format("sync: %.3f s, gap %.3f s", d_sync, gap_sync))
    -- the jobs: the loop runs on
    local d, gap, n, s, info = run(function()
      local s = assert(ih.open_job(img, {state_dir = state_dir, poll = cqueues.poll}):wait())
      local info = assert(s:info_job{poll = cqueues.poll}:wait())
      return s, info
    end)
    local msg = string.format("jobs: %.3f s, %d ticks, longest gap %.3f s (sync: %.3f s)", d, n, gap,
      d_sync)
    assert.is_true(d_sync > 0.03, msg) -- the image is big enough to tell
    assert.is_true(n >= 2, msg)
    assert.is_true(gap < 0.5 * d, msg)
    assert.equal(4, #info.images)
    local other <close> = assert(ih.open(img, {state_dir = state_dir}))
    same_info(info, other:info())
    s:close()
  end)

  it("closing an open_job a coroutine is waiting on ends that wait (no hang)", function()
    if not has_cq then
      pending("cqueues is not installed")
      return
    end
    local img = big_image()
    local cq = cqueues.new()
    local j = assert(ih.open_job(img, {state_dir = state_dir}))
    local got, ended = nil, false
    cq:wrap(function()
      got = table.pack(j:wait{poll = cqueues.poll})
      ended = true
    end)
    cq:wrap(function()
      j:close()
    end)
    local t0 = cqueues.monotime()
    assert(cq:loop(10))
    assert.is_true(ended)
    assert.is_true(cqueues.monotime() - t0 < 5)
    if got[1] then
      got[1]:close() -- it had opened before the close
    else
      assert.equal("cancelled", got[2].code)
    end
    require("imagehealth.core").wait_released(5000)
    collectgarbage()
    assert.is_truthy(unlocked(img))
  end)
end)
