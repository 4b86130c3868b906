-- spec/event_loop_spec.lua - jobs an event loop can own (issue 11): closing
-- or collecting a job or its session tells the loop first (cqueues, luv, a
-- plain coroutine scheduler with imagehealth.poll), never blocks the Lua
-- state, keeps a result computed before the close (a restore closed during
-- its verify included), the collector knows what a job costs, and a session
-- nobody can reach does not hold its image against a restore.

local ih = require "imagehealth"
local F = require "support.fixtures"
local q = F.q

local has_cq, cqueues = pcall(require, "cqueues")
local has_uv, uv = pcall(require, "luv")

local T, state_dir, healthy, big

local function open(path, opts)
  opts = opts or {}
  opts.state_dir = opts.state_dir or state_dir
  return assert(ih.open(path, opts))
end

local function nfds()
  local p = assert(io.popen("ls /proc/" .. F.sh("echo $PPID"):gsub("%s+", "") .. "/fd | wc -l"))
  local n = tonumber(p:read("a"))
  p:close()
  return n
end

-- fds of this very process: /proc/self would be ls's own
local function count_fds()
  local n = 0
  for _ in io.popen("ls /proc/" .. (io.open("/proc/self/stat"):read("a"):match("^(%d+)")) .. "/fd"):lines() do
    n = n + 1
  end
  return n
end
local _ = nfds

local function count_threads()
  local st = io.open("/proc/self/status"):read("a")
  return tonumber(st:match("Threads:%s*(%d+)"))
end

local function now()
  if has_cq then return cqueues.monotime() end
  return os.clock()
end

local function wait_running(j, phase)
  local t0 = os.time()
  while not j:done() and os.time() - t0 < 30 do
    local p = j:progress()
    if p.phase == (phase or "scan") and p.bytes_done > 0 then return true end
    j:drain()
    require("imagehealth.job").private.wait_raw(j, 2)
  end
  return false
end

lazy_setup(function()
  T = F.tmpdir("iheventloop")
  state_dir = T .. "/state"
  healthy = F.image("LZX")
  -- 8 files of 2 MB of random text: a full scan on one thread lasts long
  -- enough to be caught running
  F.sh("mkdir -p " .. q(T .. "/big") .. " && for i in 0 1 2 3 4 5 6 7; do head -c 1500000 "
    .. "/dev/urandom | base64 > " .. q(T .. "/big") .. "/f$i.txt; done")
  big = F.capture(T .. "/big", T .. "/big.wim", {compress = "LZX", name = "Big"})
end)

lazy_teardown(function()
  collectgarbage()
  if T then F.sh("rm -rf " .. q(T)) end
end)

describe("event loops: cqueues", function()
  before_each(function()
    if not has_cq then pending("lua-cqueues is not installed") end
  end)

  it("a job polled then closed does not hang the next poll (the fd is reused)", function()
    if not has_cq then return end
    local s <close> = open(healthy)
    local cq = cqueues.new()
    local results = {}
    cq:wrap(function()
      for i = 1, 5 do
        local j = assert(s:check_health_job{scan = true})
        while not j:done() do
          cqueues.poll(j)
          j:drain()
        end
        results[i] = (j:result())
        j:close()               -- the fd goes; the next job gets its number
      end
    end)
    local ok, err = cq:loop(20)
    assert.is_true(ok, tostring(err))
    assert.is_true(cq:empty(), "the loop stopped with the coroutine still waiting")
    assert.same({"healthy", "healthy", "healthy", "healthy", "healthy"}, results)
  end)

  it("ten jobs at once, each closed after its result, lose no result", function()
    if not has_cq then return end
    local s <close> = open(healthy)
    local cq = cqueues.new()
    local got = 0
    for _ = 1, 10 do
      cq:wrap(function()
        for _ = 1, 3 do
          local j = assert(s:check_health_job{scan = true})
          while not j:done() do
            cqueues.poll(j)
            j:drain()
          end
          if j:result() == "healthy" then got = got + 1 end
          j:close()
        end
      end)
    end
    local ok, err = cq:loop(60)
    assert.is_true(ok, tostring(err))
    assert.equal(30, got)
  end)

  it("a job closed mid-scan wakes its poller, and the loop goes on", function()
    if not has_cq then return end
    local s <close> = open(big, {threads = 1})
    local cq = cqueues.new()
    local j = assert(s:check_health_job{scan = true, threads = 1})
    local woke, state, err, after
    cq:wrap(function()
      state, err = j:wait{poll = cqueues.poll}
      woke = true
      -- the next job, likely on the same fd number, runs under the same loop
      after = (s:check_health{poll = cqueues.poll})
    end)
    cq:wrap(function()
      cqueues.sleep(0.05)
      assert.is_false(j:done())
      j:close()
    end)
    local ok, lerr = cq:loop(30)
    assert.is_true(ok, tostring(lerr))
    assert.is_true(woke)
    assert.is_nil(state)
    assert.equal("cancelled", err.code)
    assert.equal("healthy", after)
  end)

  it("a session closed while a scan waits on its job: the loop ends", function()
    if not has_cq then return end
    local s = open(big, {threads = 1})
    local cq = cqueues.new()
    local state, err, finished
    cq:wrap(function()
      state, err = s:check_health{scan = true, threads = 1, poll = cqueues.poll}
      finished = true
    end)
    cq:wrap(function()
      cqueues.sleep(0.05)
      s:close()
    end)
    local ok, lerr = cq:loop(10)
    assert.is_true(ok, tostring(lerr))
    assert.is_true(finished)
    assert.is_nil(state)
    assert.equal("cancelled", err.code)
  end)
end)

describe("event loops: luv", function()
  before_each(function()
    if not has_uv then pending("lua-luv is not installed") end
  end)

  it("ten jobs at once with imagehealth.luv, the loop live meanwhile", function()
    if not has_uv then return end
    local ihuv = require "imagehealth.luv"
    local s <close> = open(healthy)
    local got, ticks = 0, 0
    local left = 10
    local timer = uv.new_timer()
    timer:start(10, 10, function() ticks = ticks + 1 end)
    for _ = 1, 10 do
      ihuv.spawn(function()
        for _ = 1, 3 do
          local j <close> = assert(s:check_health_job{scan = true})
          if j:wait{poll = ihuv.poll} == "healthy" then got = got + 1 end
        end
        left = left - 1
        if left == 0 then timer:stop(); timer:close() end
      end)
    end
    uv.run()
    assert.equal(30, got)
    assert.equal(0, left)
  end)

  it("a job polled then closed: the next poll on the reused fd works", function()
    if not has_uv then return end
    local ihuv = require "imagehealth.luv"
    local s <close> = open(healthy)
    local results = {}
    ihuv.spawn(function()
      for i = 1, 5 do
        local j = assert(s:check_health_job{scan = true})
        while not j:done() do
          ihuv.poll(j)
          j:drain()
        end
        results[i] = (j:result())
        j:close()
      end
    end)
    uv.run()
    assert.same({"healthy", "healthy", "healthy", "healthy", "healthy"}, results)
  end)

  it("a job closed mid-scan wakes its poller and stops its handle", function()
    if not has_uv then return end
    local ihuv = require "imagehealth.luv"
    local s <close> = open(big, {threads = 1})
    local j = assert(s:check_health_job{scan = true, threads = 1})
    local state, err, after
    ihuv.spawn(function()
      state, err = j:wait{poll = ihuv.poll}
      after = (s:check_health{poll = ihuv.poll})
    end)
    local t = uv.new_timer()
    t:start(50, 0, function()
      t:close()
      j:close()
    end)
    uv.run()
    assert.is_nil(state)
    assert.equal("cancelled", err.code)
    assert.equal("healthy", after)
    assert.equal(0, ihuv.active())
  end)
  it("a session closed while a scan waits on its job: the loop ends", function()
    if not has_uv then return end
    local ihuv = require "imagehealth.luv"
    local s = open(big, {threads = 1})
    local state, err, finished
    ihuv.spawn(function()
      state, err = s:check_health{scan = true, threads = 1, poll = ihuv.poll}
      finished = true
    end)
    local t = uv.new_timer()
    t:start(50, 0, function()
      t:close()
      s:close()
    end)
    uv.run()        -- returns only once no handle is left: none may leak
    assert.is_true(finished)
    assert.is_nil(state)
    assert.equal("cancelled", err.code)
    assert.equal(0, ihuv.active())
  end)
end)

describe("plain coroutine schedulers: imagehealth.poll", function()
  local ihpoll = require "imagehealth.poll"

  -- runs the coroutine the way a scheduler does: resume, wait for what it
  -- yielded, resume again; -> resumes, seconds spent inside resumes, wall
  local function schedule(co, check)
    local resumes, inside, t_start = 0, 0, ihpoll.now()
    while true do
      local t0 = ihpoll.now()
      local ok, w = coroutine.resume(co)
      inside = inside + (ihpoll.now() - t0)
      assert.is_true(ok, tostring(w))
      if coroutine.status(co) == "dead" then break end
      resumes = resumes + 1
      assert.is_true(ihpoll.is_wait(w), "yielded " .. tostring(w))
      if check then check(w) end
      assert.equal(1, #ihpoll.ready({w}, 10), "the job's fd was not readable within 10 s")
    end
    return resumes, inside, ihpoll.now() - t_start
  end

  it("a job's wait yields its fd to the scheduler instead of blocking, and never spins", function()
    local s <close> = open(big, {threads = 1})
    local j <close> = assert(s:check_health_job{scan = true, threads = 1})
    local state
    local co = coroutine.create(function() state = j:wait{poll = ihpoll.wait} end)
    local resumes, inside, wall = schedule(co, function(w)
      assert.equal(j:pollfd(), w.fd)
      assert.equal("r", w.events)
    end)
    assert.equal("healthy", state)
    -- it yielded while the scan ran, once per batch of events (a progress
    -- event every 100 ms), not in a loop
    assert.is_true(resumes >= 3, "resumes: " .. resumes)
    assert.is_true(resumes < 10 * wall / 0.1 + 20, string.format("%d resumes in %.2f s", resumes, wall))
    -- the time went to the scheduler's wait, not to blocking inside a resume
    -- (job:wait without poll blocks up to 200 ms at a time in C)
    assert.is_true(inside < 0.25 * wall, string.format("%.3f s of %.3f s inside resumes", inside, wall))
  end)

  it("a job closed while its coroutine waits: its Wait is ready at once and the wait ends", function()
    local s <close> = open(big, {threads = 1})
    local j = assert(s:check_health_job{scan = true, threads = 1})
    local state, err
    local co = coroutine.create(function() state, err = j:wait{poll = ihpoll.wait} end)
    local ok, w = coroutine.resume(co)
    assert.is_true(ok, tostring(w))
    assert.is_true(ihpoll.is_wait(w))
    assert.is_false(j:done())
    j:close()
    assert.is_true(w.closed, "the close did not mark the Wait")
    local t0 = ihpoll.now()
    local ready = ihpoll.ready({w}) -- no timeout: must not hang on the gone fd
    assert.is_true(ihpoll.now() - t0 < 0.5)
    assert.same({w}, ready)
    assert.is_true(coroutine.resume(co))
    assert.equal("dead", coroutine.status(co))
    assert.is_nil(state)
    assert.equal("cancelled", err.code)
  end)

  it("a session closed while a scan waits on its job: the wait ends, cancelled", function()
    local s = open(big, {threads = 1})
    local state, err
    local co = coroutine.create(function()
      state, err = s:check_health{scan = true, threads = 1, poll = ihpoll.wait}
    end)
    local ok, w = coroutine.resume(co)
    assert.is_true(ok, tostring(w))
    assert.is_true(ihpoll.is_wait(w))
    s:close()
    assert.same({w}, ihpoll.ready({w}, 5))
    assert.is_true(coroutine.resume(co))
    assert.equal("dead", coroutine.status(co))
    assert.is_nil(state)
    assert.equal("cancelled", err.code)
  end)

  it("outside a coroutine the wait blocks on the fd, and a whole check works", function()
    local s <close> = open(healthy)
    assert.equal("healthy", (s:check_health{scan = true, poll = ihpoll.wait}))
  end)

  it("core.poll: ready fds, the timeout kept, closed numbers ready, bad arguments refused", function()
    local core = require "imagehealth.core"
    local s <close> = open(healthy)
    local j <close> = assert(s:check_health_job{})
    assert.equal("healthy", (j:wait()))
    local fd = j:pollfd()       -- a done job's fd stays readable
    assert.same({fd}, core.poll({fd}, 1000))
    assert.same({fd}, core.poll({fd}, 1000, {"r"}))
    local t0 = ihpoll.now()
    assert.same({}, core.poll({}, 50))
    local dt = ihpoll.now() - t0
    assert.is_true(dt >= 0.045 and dt < 1, string.format("waited %.3f s for 50 ms", dt))
    -- a descriptor that is not open is ready (POLLNVAL): whoever waits looks
    assert.same({999999}, core.poll({999999}, 5000))
    assert.has_error(function() core.poll({"x"}, 0) end)
    assert.has_error(function() core.poll({fd}, 0, {"q"}) end)
    assert.has_error(function() core.poll(fd, 0) end)
  end)
end)

-- (deep: a record left by an earlier scan would make a scan of `big` a
-- fingerprint re-scan, over before it could be seen running)
describe("job lifetimes", function()
  it("closing a running job takes under 20 ms", function()
    local s <close> = open(big)
    local worst, best = 0, math.huge
    for _ = 1, 3 do
      local j = assert(s:check_health_job{scan = true, deep = true})
      assert.is_true(wait_running(j), "the scan ended before it could be closed")
      local t0 = now()
      j:close()
      local dt = now() - t0
      worst, best = math.max(worst, dt), math.min(best, dt)
    end
    -- the best of three: see the next test
    assert.is_true(best < 0.020, string.format("close took %.1f ms at best, %.1f ms at worst",
      best * 1000, worst * 1000))
  end)

  it("collecting a running job takes under 20 ms beyond the collection itself", function()
    local s <close> = open(big)
    collectgarbage()
    local t0 = now()
    collectgarbage()
    local base = now() - t0      -- a full collection of this state, no job in it
    -- the best of three (a loaded machine may preempt any one of them; a
    -- join of the worker threads would cost every one 50 ms and more)
    local best, worst = math.huge, 0
    for _ = 1, 3 do
      local j = assert(s:check_health_job{scan = true, deep = true})
      assert.is_true(wait_running(j))
      j = nil -- luacheck: ignore
      t0 = now()
      collectgarbage()
      local dt = now() - t0 - base
      best, worst = math.min(best, dt), math.max(worst, dt)
    end
    assert.is_true(best < 0.020, string.format("collection took %.1f ms at best, %.1f ms at worst, "
      .. "beyond %.1f ms without a job", best * 1000, worst * 1000, base * 1000))
  end)

  it("a state closed while released jobs are being reaped exits cleanly", function()
    -- the reapers' threads must not run on into exit() (libraries' cleanup)
    local script = F.tmpname(".lua")
    F.write_file(script, string.format([[
      local ih = require "imagehealth"
      local s = assert(ih.open(%q, {threads = 2}))
      for _ = 1, 4 do s:check_health_job{scan = true, deep = true}:close() end
      local j = s:check_health_job{scan = true, deep = true}
      s:close()
      print("closed")
    ]], big))
    for _ = 1, 5 do
      local ok, out = F.run("lua5.4 " .. q(script))
      assert.is_true(ok, out)
      assert.equal("closed\n", out)
    end
    os.remove(script)
  end)

  it("closing a session with a running job takes under 20 ms", function()
    local s = open(big)
    local j = assert(s:check_health_job{scan = true, deep = true})
    assert.is_true(wait_running(j))
    local t0 = now()
    s:close()
    local dt = now() - t0
    assert.is_true(dt < 0.020, string.format("close took %.1f ms", dt * 1000))
    assert.is_true(j:closed())
  end)

  it("a result computed before the close can still be read", function()
    local s <close> = open(healthy)
    local j = assert(s:check_health_job{scan = true, deep = true})
    while not j:done() do require("imagehealth.job").private.wait_raw(j, 5) end
    j:close()
    assert.equal("healthy", (j:result()))
    assert.equal("healthy", (j:wait()))
  end)

  it("a restore closed during its verify completes, and its outcome is read after the close", function()
    local core = require "imagehealth.core"
    -- one 40 MB blob, uncompressed: its re-verification lasts long enough
    -- to be caught, polling the phase every millisecond
    local dir = T .. "/one"
    F.sh("mkdir -p " .. q(dir) .. " && head -c 40000000 /dev/urandom > " .. q(dir) .. "/blob.bin")
    local src = F.capture(dir, T .. "/one.wim", {compress = "none", name = "One"})
    local caught, img, j
    for _ = 1, 3 do
      img = T .. "/one-damaged.wim"
      F.copy(src, img)
      F.damage_file_data(img, "/blob.bin")
      local s = open(img, {threads = 1})
      j = assert(s:restore_health_job{sources = {src}, no_policy = true, threads = 1})
      while not j:done() and j:progress().phase ~= "verify" do
        j:drain()
        core.poll({}, 1)
      end
      if not j:done() then
        j:close()
        s:close()
        caught = true
        break
      end
      j:close()
      s:close()
    end
    assert.is_true(caught, "the verify phase was never caught running")
    local t0 = now()
    while not j:done() and now() - t0 < 30 do core.poll({}, 5) end
    assert.is_true(j:done(), "the closed restore never completed")
    local state, report = j:result()
    assert.equal("healthy", state, tostring(report))
    assert.equal(1, #report.repaired)
    assert.is_true(F.verify(img))
  end)

  it("dropped jobs are reclaimed without an explicit collection", function()
    local s <close> = open(healthy)
    collectgarbage()
    local fds0, threads0 = count_fds(), count_threads()
    local most_fds, most_threads = 0, 0
    for _ = 1, 300 do
      assert(s:check_health_job{scan = true})    -- dropped at once
      most_fds = math.max(most_fds, count_fds() - fds0)
      most_threads = math.max(most_threads, count_threads() - threads0)
    end
    -- each live job holds an eventfd and threads: a few dozen at most
    -- (5 when this file runs alone; 87 once in a whole run on a loaded
    -- machine; unreclaimed, 300 jobs would hold 300 eventfds and more)
    assert.is_true(most_fds < 150, "fds held at once: " .. most_fds)
    assert.is_true(most_threads < 128, "threads at once: " .. most_threads)
  end)

  it("re-opening an image: the unreachable first session does not make a restore busy", function()
    local img = F.fresh("LZX")
    local tree = F.tree()
    F.damage_file_data(img, tree.duplicate[1])
    local s = open(img)
    s = open(img)    -- the REPL way: the first one is unreachable now
    local state, report = s:restore_health{sources = {healthy}, no_policy = true}
    assert.equal("healthy", state, tostring(report))
    s:close()
  end)

  it("a busy restore names the session of this process that holds the image", function()
    local img = F.fresh("LZX")
    local s1 <close> = open(img)
    local s2 <close> = open(img)
    local state, err = s2:restore_health{sources = {healthy}, no_policy = true}
    assert.is_nil(state)
    assert.equal("busy", err.code)
    assert.matches("held in this process by", err.message, 1, true)
    assert.matches(img, err.message, 1, true)
    assert.is_truthy(s1)
  end)
end)
