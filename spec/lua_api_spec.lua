-- spec/lua_api_spec.lua - the Lua API of imagehealth: sessions, info, health
-- checks, jobs, cancel tokens, reports, errors and object life cycles.
--
-- Fixtures come from spec/support/fixtures.lua (real WIMs captured with
-- wimlib-imagex, damage helpers, and 7z as an independent oracle), plus one
-- bigger image built here so that a scan lasts long enough to be cancelled.

local ih = require "imagehealth"
local F = require "support.fixtures"
local q = F.q
local wait_raw = require("imagehealth.job").private.wait_raw

------------------------------------------------------------------ fixtures

local T                 -- temp dir
local healthy, damaged, big, notwim, two
local tree, dmg         -- the fixture tree; what damage_file_data did
local state_dir

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- A few tens of MiB of real files, captured with LZX.
local function make_big_image(dir, out)
  F.sh("mkdir -p " .. q(dir))
  local total, n = 0, 0
  local _, listing = F.run("ls -S /usr/lib/*-linux-gnu*/*.so* /usr/lib/*.so* /usr/bin/* 2>/dev/null")
  for path in listing:gmatch("[^\n]+") do
    local f = io.open(path, "rb")
    local size = f and f:seek("end")
    if f then
      f:close()
    end
    if size and size > 200000 and size < 8000000 then
      n = n + 1
      F.sh(string.format("cp -- %s %s", q(path), q(string.format("%s/f%03d.bin", dir, n))))
      total = total + size
      if total > 48e6 then
        break
      end
    end
  end
  assert(total > 20e6, "not enough system files for the big fixture")
  return F.capture(dir, out, {compress = "LZX", name = "Big"})
end

lazy_setup(function()
  T = F.tmpdir("ihluaapi")
  state_dir = T .. "/state"
  tree = F.tree()
  healthy = F.image("LZX")
  two = F.image("multi")
  damaged = F.fresh("LZX")
  -- the duplicated file: one blob, two paths
  dmg = F.damage_file_data(damaged, tree.duplicate[1])
  big = make_big_image(T .. "/bigtree", T .. "/big.wim")
  notwim = T .. "/not-a.wim"
  F.sh("cp /etc/services " .. q(notwim))
end)

local function open(path, opts)
  opts = opts or {}
  opts.state_dir = opts.state_dir or state_dir
  return ih.open(path, opts)
end

-- Files and directories of an image, counted by `wimlib-imagex dir`.
local function count_entries(wim, image)
  local files, dirs = 0, 0
  for _, e in ipairs(F.list(wim, image)) do
    if e.dir then
      dirs = dirs + 1
    else
      files = files + 1
    end
  end
  return files, dirs
end

-- This process's open descriptors and threads (as the kernel counts them).
local PID
do
  local f = assert(io.open("/proc/self/stat"))
  PID = f:read("n")
  f:close() -- not left to the collector: the fd counts below would move
end
local function count_dir(d)
  local p = assert(io.popen("ls " .. d .. " | wc -l"))
  local n = p:read("n")
  p:close()
  return n
end
local function own_fds() return count_dir("/proc/" .. PID .. "/fd") end
local function own_threads() return count_dir("/proc/" .. PID .. "/task") end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("a")
  f:close()
  return data
end

------------------------------------------------------------------ specs

describe("imagehealth module", function()
  it("has a version, DISM health numbers and the error codes", function()
    assert.is_string(ih.version)
    assert.matches("^%d+%.%d+%.%d+", ih.version) -- IH_VERSION_STRING of imagehealth.h
    assert.equal("imagehealth " .. ih.version, ih._VERSION)
    assert.equal(ih.version, require("imagehealth.core").version)
    assert.equal(0x800F0902, ih.errors.busy.hresult)
    assert.equal(0x80070070, ih.errors.disk_full.hresult)
    assert.equal(0x800F081F, ih.errors.source_missing.hresult)
    assert.equal(0, ih.HEALTHY)
    assert.equal(1, ih.REPAIRABLE)
    assert.equal(2, ih.NONREPAIRABLE)
    assert.equal("repairable", ih.states[1])
    assert.equal(2, ih.states.nonrepairable)
    assert.equal(0x80070002, ih.errors.not_found.hresult)
    assert.equal(0xC0040004, ih.errors.invalid_session.hresult)
    assert.equal(0x800704C7, ih.errors.cancelled.hresult)
    assert.equal("nomem", ih.errors[1].code)
    for i, e in ipairs(ih.errors) do
      assert.equal(e, ih.errors[e.code])
      assert.equal(i, e.errcode)
    end
  end)

  it("makes error values that print well", function()
    local e = ih.error("busy", "image locked")
    assert.is_true(ih.is_error(e))
    assert.equal("busy", e.code)
    assert.equal(0x800F0902, e.hresult)
    assert.equal("imagehealth: busy (0x800F0902): image locked", tostring(e))
    assert.has_error(function() ih.error("no_such_code") end)
  end)
end)

describe("ih.open", function()
  it("returns not_found for a missing path", function()
    local s, err = ih.open(T .. "/does/not/exist.wim")
    assert.is_nil(s)
    assert.is_true(ih.is_error(err))
    assert.equal("not_found", err.code)
    assert.equal(0x80070002, err.hresult)
    assert.is_string(err.message)
    assert.matches("^imagehealth: not_found %(0x80070002%): ", tostring(err))
  end)

  it("returns not_wim for a file that is not a WIM", function()
    local s, err = ih.open(notwim)
    assert.is_nil(s)
    assert.equal("not_wim", err.code)
    assert.equal(0xC1420113, err.hresult)
    assert.matches("not_wim %(0xC1420113%)", tostring(err))
  end)

  it("returns not_wim for a WIM whose magic is damaged", function()
    local copy = F.fresh("LZX")
    F.damage_header(copy, "magic")
    local s, err = ih.open(copy)
    assert.is_nil(s)
    assert.equal("not_wim", err.code)
  end)

  it("returns not_wim for an empty file", function()
    write_file(T .. "/empty.wim", "")
    local s, err = ih.open(T .. "/empty.wim")
    assert.is_nil(s)
    assert.equal("not_wim", err.code)
  end)

  it("returns bad_index for an index past the last image", function()
    local s, err = ih.open(healthy, {index = 3})
    assert.is_nil(s)
    assert.equal("bad_index", err.code)
    assert.equal(0xC0040005, err.hresult)
  end)

  it("raises on misuse of its arguments", function()
    assert.has_error(function() ih.open() end)
    assert.has_error(function() ih.open(42) end)
    assert.has_error(function() ih.open(healthy, "index=1") end)
    assert.has_error(function() ih.open(healthy, {index = "one"}) end)
    assert.has_error(function() ih.open(healthy, {index = 1.5}) end)
    assert.has_error(function() ih.open(healthy, {index = -1}) end)
    assert.has_error(function() ih.open(healthy, {state_dir = 7}) end)
  end)
end)

describe("Session", function()
  it("describes the image with info()", function()
    local s <close> = assert(open(two))
    local info = assert(s:info())
    assert.equal(two, info.path)
    assert.matches("^%x+$", info.guid)
    assert.equal(32, #info.guid)
    assert.equal(0x10D00, info.version)
    assert.equal("LZX", info.compression)
    assert.equal(32768, info.chunk_size)
    assert.is_false(info.solid)
    assert.equal(1, info.parts)
    assert.equal(2, info.image_count)
    assert.is_number(info.boot_index)
    local raw = F.wiminfo(two)
    assert.equal(#raw.blobs, info.blob_count)
    assert.equal(raw.guid, info.guid)
    assert.equal(F.file_size(two), info.file_size)
    assert.is_false(info.has_integrity)
    assert.equal(2, #info.images)
    for i, name in ipairs{"first", "second"} do
      local im = info.images[i]
      local files, dirs = count_entries(two, i)
      assert.equal(i, im.index)
      assert.equal(name, im.name)
      assert.equal("", im.description)
      assert.equal(files, im.file_count)     -- the symbolic link counts as a file
      assert.equal(dirs - 1, im.dir_count)   -- the root does not count
      assert.is_true(im.blob_count > 50)
      assert.is_true(im.total_bytes >= tree.total_bytes - 100)
      assert.is_true(im.metadata_ok)
    end
    -- readable in the REPL
    local text = tostring(info)
    assert.matches(two, text, 1, true)
    assert.matches('"first"', text, 1, true)
    assert.matches("LZX", text, 1, true)
  end)

  it("describes only the selected image when opened with an index", function()
    local s <close> = assert(open(two, {index = 2}))
    local info = assert(s:info())
    assert.equal(2, info.index)
    assert.equal(1, #info.images)
    assert.equal(2, info.images[1].index)
    assert.equal("second", info.images[1].name)
  end)

  it("prints as type, path, images and compression", function()
    local s = assert(open(healthy))
    assert.equal("imagehealth.Session: " .. healthy .. " (1 image, LZX)", tostring(s))
    local s2 <close> = assert(open(two))
    assert.equal("imagehealth.Session: " .. two .. " (2 images, LZX)", tostring(s2))
    s:close()
    assert.equal("imagehealth.Session: " .. healthy .. " (closed)", tostring(s))
  end)

  it("closes at the end of a <close> block", function()
    local saved
    do
      local s <close> = assert(open(healthy))
      saved = s
      assert.is_false(s:closed())
    end
    assert.is_true(saved:closed())
  end)

  it("closes idempotently (close, __close, __gc are one function)", function()
    local s = assert(open(healthy))
    s:close()
    s:close()
    getmetatable(s).__close(s)
    getmetatable(s).__gc(s)
    assert.is_true(s:closed())
    assert.equal(healthy, s:path())
  end)

  it("raises a clear error when used after close", function()
    local s = assert(open(healthy))
    s:close()
    assert.has_error(function() s:info() end, "attempt to use a closed imagehealth.Session")
    assert.has_error(function() s:check_health() end, "attempt to use a closed imagehealth.Session")
    assert.has_error(function() s:check_health_job{scan = true} end,
      "attempt to use a closed imagehealth.Session")
  end)

  it("is collected without being closed", function()
    collectgarbage()
    collectgarbage()
    -- jobs closed by earlier tests are joined off the Lua thread: let
    -- their threads (which open files while they stop) end first
    require("imagehealth.core").wait_released()
    local before = own_fds()
    for _ = 1, 20 do
      local s = assert(open(healthy))
      s:info()
    end
    assert.is_true(own_fds() >= before + 20) -- they hold descriptors...
    collectgarbage()
    collectgarbage()
    -- ...which __gc closed (a descriptor another test's thread holds for a
    -- moment on a loaded machine may come and go: look again for a while)
    local deadline, n = os.time() + 5, nil
    repeat
      n = own_fds()
      if n <= before then break end
      require("imagehealth.core").wait_released(100)
    until os.time() >= deadline
    assert.is_true(n <= before, n .. " fds, " .. before .. " before")
  end)

  it("has the type names and metatables the convention asks for", function()
    local s <close> = assert(open(healthy))
    local mt = getmetatable(s)
    assert.equal("imagehealth.Session", mt.__name)
    assert.equal(mt.__gc, mt.__close)
    local j <close> = assert(s:check_health_job{})
    assert.equal("imagehealth.Job", getmetatable(j).__name)
    local t <close> = ih.cancel_token()
    assert.equal("imagehealth.CancelToken", getmetatable(t).__name)
  end)
end)

describe("check_health", function()
  it("quick check of a healthy image: healthy, not scanned", function()
    local s <close> = assert(open(healthy, {state_dir = T .. "/state-quick"}))
    local state, report = s:check_health()
    assert.equal("healthy", state, tostring(report))
    assert.equal("healthy", report.state)
    assert.equal(ih.HEALTHY, report.health)
    assert.is_false(report.scanned)
    assert.equal(healthy, report.image)
    assert.same({}, report.damaged)
    assert.same({}, report.problems)
    assert.matches("^healthy: ", report:summary())
    assert.matches("quick check", tostring(report))
  end)

  it("full scan of a healthy image: healthy, every blob checked", function()
    local s <close> = assert(open(healthy))
    local events = {}
    local state, report = s:check_health{scan = true, progress = function(ev)
      events[#events + 1] = ev
    end}
    assert.equal("healthy", state, tostring(report))
    assert.is_true(report.scanned)
    assert.is_true(report.blobs_checked >= 7)
    assert.is_true(report.bytes_checked > 100000)
    assert.is_number(report.seconds)
    assert.equal(0, #report.damaged)
    assert.matches("^healthy: no damage found; full scan of %d+ blobs", report:summary())
    -- events: typed, with progress fields; the last is "done"
    assert.is_true(#events >= 2)
    for _, ev in ipairs(events) do
      assert.is_true(ev.type == "progress" or ev.type == "damage" or ev.type == "message"
        or ev.type == "done")
      assert.is_string(ev.phase)
      assert.is_number(ev.bytes_done)
      assert.is_number(ev.elapsed)
      if ev.percent then
        assert.is_true(ev.percent >= 0 and ev.percent <= 100)
      end
      assert.matches("^imagehealth.Event: ", tostring(ev))
    end
    assert.equal("done", events[#events].type)
  end)

  it("finds a damaged blob and names the file it belongs to", function()
    local s <close> = assert(open(damaged, {state_dir = T .. "/state-damaged"}))
    local damage_events = {}
    local state, report = s:check_health{scan = true, progress = function(ev)
      if ev.type == "damage" then
        damage_events[#damage_events + 1] = ev
      end
    end}
    assert.equal("repairable", state, tostring(report))
    assert.equal(ih.REPAIRABLE, report.health)
    assert.equal(1, #report.damaged)
    local d = report.damaged[1]
    assert.equal(dmg.sha1, d.sha1)
    assert.equal(tree.files[tree.duplicate[1]].size, d.size)
    assert.is_true(d.reason == "hash_mismatch" or d.reason == "decompression_failure", d.reason)
    assert.is_false(d.is_metadata)
    assert.is_false(d.solid)
    assert.equal(1, d.part)
    assert.is_true(d.offset > 208)
    assert.is_true(d.stored_size > 0)
    assert.same({1}, d.images)
    -- both paths of the duplicated file, as wimlib-imagex lists them
    assert.same(dmg.affected, d.paths)
    assert.same(tree.duplicate, d.paths)
    assert.same({{image = 1, path = tree.duplicate[1]}, {image = 1, path = tree.duplicate[2]}},
      d.refs)
    assert.is_string(d.detail)
    assert.is_true(#damage_events >= 1)
    -- each damage event names the files of its blob, as the report does
    -- (and as wimlib-imagex lists them)
    for _, ev in ipairs(damage_events) do
      assert.equal(dmg.sha1, ev.sha1)
      assert.same(d.paths, ev.paths)
      assert.same(tree.duplicate, ev.paths)
      assert.equal(0, ev.refs_omitted)
    end
    -- files() iterates the damaged files
    local files = {}
    for path, dmg, image in report:files() do
      files[#files + 1] = {path, dmg.sha1, image}
    end
    assert.same({{tree.duplicate[1], dmg.sha1, 1}, {tree.duplicate[2], dmg.sha1, 1}}, files)
    -- the same files 7z names when testing the archive
    local oracle = F.sevenzip_test(damaged)
    assert.is_false(oracle.ok)
    local names = {}
    for path in report:files() do
      names[#names + 1] = path
    end
    assert.same(oracle.list, names)
    -- the summary and the text name it
    local summary = report:summary()
    assert.matches("^repairable: 1 damaged blob %(", summary)
    assert.matches("hitting 2 files in image 1", summary, 1, true)
    assert.matches(tree.duplicate[1], tostring(report), 1, true)
    assert.matches(tree.duplicate[2], tostring(report), 1, true)
    assert.matches(dmg.sha1, tostring(report), 1, true)
  end)

  it("names the image whose directory tree (metadata resource) is damaged", function()
    local copy = F.fresh("multi")
    local dm = F.damage_metadata(copy, 2)
    local s <close> = assert(open(copy, {state_dir = T .. "/state-meta"}))
    local state, report = s:check_health{scan = true}
    assert.is_string(state, tostring(report))
    local meta
    for _, d in ipairs(report.damaged) do
      if d.is_metadata then
        meta = d
      end
    end
    assert.is_table(meta, tostring(report))
    assert.equal(dm.sha1, meta.sha1)
    -- the core's images list: the metadata resource's own image, even
    -- though no file path can be named
    assert.same({2}, meta.images)
    assert.matches("metadata", report:summary(), 1, true)
  end)

  it("a later quick check recalls the damage an earlier scan recorded", function()
    local sd = T .. "/state-recall"
    do
      local s <close> = assert(open(damaged, {state_dir = sd}))
      assert.equal("repairable", (s:check_health{scan = true}))
    end
    local s <close> = assert(open(damaged, {state_dir = sd}))
    local state, report = s:check_health{scan = false}
    assert.equal("repairable", state, tostring(report))
    assert.is_false(report.scanned)
    assert.is_true(report.from_record)
    assert.same(tree.duplicate, report.damaged[1].paths)
  end)

  it("checks one image when opened with an index", function()
    local s <close> = assert(open(two, {index = 2}))
    local state, report = s:check_health{scan = true}
    assert.equal("healthy", state, tostring(report))
    assert.equal(2, report.index)
  end)

  it("raises on misuse of its options", function()
    local s <close> = assert(open(healthy))
    assert.has_error(function() s:check_health("scan") end)
    assert.has_error(function() s:check_health{progress = 42} end)
    assert.has_error(function() s:check_health{cancel = "yes"} end)
    assert.has_error(function() s:check_health{threads = "many"} end)
    assert.has_error(function() s:check_health{scan = "yes"} end)
  end)

  it("propagates an error raised by the progress callback and stops the job", function()
    local s <close> = assert(open(big))
    assert.has_error(function()
      s:check_health{scan = true, progress = function() error("stop here", 0) end}
    end, "stop here")
    -- the session is still usable
    assert.equal("healthy", (s:check_health()))
  end)
end)

-- Waits until job has read some bytes and asserts it is still running:
-- a cancel after this is a cancel of a running job.
local function running(j)
  local deadline = os.time() + 30 -- a loaded machine may be slow to start it
  while j:progress().bytes_done == 0 and not j:done() and os.time() < deadline do
    wait_raw(j, 5)
    j:drain() -- else the fd stays readable and wait_raw returns at once
  end
  assert.is_true(j:progress().bytes_done > 0)
  assert.is_false(j:done(), "the job ended before it could be cancelled")
end

describe("cancellation", function()
  it("a token cancelled before the start gives nil, cancelled", function()
    local s <close> = assert(open(big))
    local tok = ih.cancel_token()
    tok:cancel()
    assert.is_true(tok:cancelled())
    local state, err = s:check_health{scan = true, cancel = tok}
    assert.is_nil(state)
    assert.equal("cancelled", err.code)
    assert.equal(0x800704C7, err.hresult)
    assert.matches("^imagehealth: cancelled %(0x800704C7%)", tostring(err))
  end)

  it("from the progress callback", function()
    local s <close> = assert(open(big))
    local tok = ih.cancel_token()
    assert.is_false(tok:cancelled())
    local at, total
    -- cancelled once the scan has really read something, not all of it
    local state, err = s:check_health{scan = true, threads = 1, cancel = tok, progress = function(ev)
      if not at and ev.bytes_done > 0 then
        at, total = ev.bytes_done, ev.bytes_total
        tok:cancel()
      end
    end}
    assert.is_nil(state)
    assert.equal("cancelled", err.code)
    assert.is_true(at > 0 and at < total, tostring(at) .. " of " .. tostring(total))
  end)

  it("from another coroutine while the scanning one yields in its callback", function()
    local s <close> = assert(open(big))
    local tok = ih.cancel_token()
    local result
    local scanner = coroutine.create(function()
      result = table.pack(s:check_health{scan = true, threads = 1, cancel = tok,
        progress = function() coroutine.yield() end})
    end)
    local canceller = coroutine.create(function()
      tok:cancel()
    end)
    assert(coroutine.resume(scanner))        -- runs until the first event
    assert.equal("suspended", coroutine.status(scanner))
    assert(coroutine.resume(canceller))
    while coroutine.status(scanner) ~= "dead" do
      assert(coroutine.resume(scanner))
    end
    assert.is_nil(result[1])
    assert.equal("cancelled", result[2].code)
  end)

  it("one token cancels several jobs", function()
    local s1 <close> = assert(open(big))
    local s2 <close> = assert(open(big))
    local tok = ih.cancel_token()
    local j1 <close> = assert(s1:check_health_job{scan = true, threads = 1, cancel = tok})
    local j2 <close> = assert(s2:check_health_job{scan = true, threads = 1, cancel = tok})
    running(j1)
    running(j2)
    tok:cancel()
    local a, e1 = j1:wait()
    local b, e2 = j2:wait()
    assert.is_nil(a)
    assert.is_nil(b)
    assert.equal("cancelled", e1.code)
    assert.equal("cancelled", e2.code)
  end)

  it("job:cancel() cancels one job", function()
    local s <close> = assert(open(big))
    local j <close> = assert(s:check_health_job{scan = true, threads = 1})
    running(j)
    j:cancel()
    local state, err = j:wait()
    assert.is_nil(state)
    assert.equal("cancelled", err.code)
  end)

  it("a token outlives its userdata while a job uses it", function()
    local s <close> = assert(open(healthy))
    local tok = ih.cancel_token()
    local j <close> = assert(s:check_health_job{scan = true, cancel = tok})
    tok:close()
    tok:close()
    assert.has_error(function() tok:cancel() end, "attempt to use a closed imagehealth.CancelToken")
    tok = nil -- luacheck: ignore
    collectgarbage()
    assert.equal("healthy", (j:wait()))
  end)

  it("prints its state", function()
    local tok = ih.cancel_token()
    assert.equal("imagehealth.CancelToken (not cancelled)", tostring(tok))
    tok:cancel()
    assert.equal("imagehealth.CancelToken (cancelled)", tostring(tok))
    tok:close()
    assert.equal("imagehealth.CancelToken (closed)", tostring(tok))
  end)
end)

describe("coroutines", function()
  it("two scans interleave under a plain scheduler, each callback yielding", function()
    local sa <close> = assert(open(big))
    local sb <close> = assert(open(damaged))
    local log = {}
    local results = {}
    local function task(name, s)
      return coroutine.create(function()
        results[name] = table.pack(s:check_health{scan = true, progress = function(ev)
          log[#log + 1] = name
          assert.is_true(coroutine.isyieldable())
          coroutine.yield(ev)
        end})
      end)
    end
    local tasks = {task("A", sa), task("B", sb)}
    -- round robin until both are dead
    local alive = #tasks
    while alive > 0 do
      alive = 0
      for _, co in ipairs(tasks) do
        if coroutine.status(co) ~= "dead" then
          local ok, err = coroutine.resume(co)
          assert(ok, err)
          if coroutine.status(co) ~= "dead" then
            alive = alive + 1
          end
        end
      end
    end
    assert.equal("healthy", results.A[1], tostring(results.A[2]))
    assert.equal("repairable", results.B[1], tostring(results.B[2]))
    assert.same(tree.duplicate, results.B[2].damaged[1].paths)
    -- the events of both appear interleaved: a B before the last A and an
    -- A after the first B
    local first_b, last_a
    for i, name in ipairs(log) do
      if name == "B" and not first_b then
        first_b = i
      end
      if name == "A" then
        last_a = i
      end
    end
    assert.is_truthy(first_b)
    assert.is_true(first_b < last_a, table.concat(log))
  end)
end)

describe("Job", function()
  it("speaks the pollable protocol: pollfd, events, timeout", function()
    local s <close> = assert(open(healthy))
    local j <close> = assert(s:check_health_job{scan = true})
    local fd = j:pollfd()
    assert.equal("integer", math.type(fd))
    assert.is_true(fd >= 0)
    assert.equal("r", j:events())
    local t = j:timeout()
    assert.is_true(t == nil or type(t) == "number")
    -- the fd becomes readable: the kernel's view of the eventfd
    local readable = false
    for _ = 1, 200 do
      local info = read_file("/proc/self/fdinfo/" .. fd)
      local count = info:match("eventfd%-count:%s*(%x+)")
      if count and tonumber(count, 16) > 0 then
        readable = true
        break
      end
      wait_raw(j, 10)
    end
    assert.is_true(readable)
    assert.equal("healthy", (j:wait()))
    assert.equal(0, j:timeout())
  end)

  it("works under cqueues (polling the job object itself)", function()
    local ok, cqueues = pcall(require, "cqueues")
    if not ok then
      pending("lua-cqueues is not installed")
      return
    end
    local s <close> = assert(open(damaged))
    local j <close> = assert(s:check_health_job{scan = true})
    local cq = cqueues.new()
    local events, state, report = {}, nil, nil
    cq:wrap(function()
      while not j:done() do
        cqueues.poll(j)              -- yields to the controller until readable
        for _, ev in ipairs(j:drain()) do
          events[#events + 1] = ev
        end
      end
      for _, ev in ipairs(j:drain()) do
        events[#events + 1] = ev
      end
      state, report = j:result()
    end)
    assert(cq:loop(10))
    assert.equal("repairable", state)
    assert.same(tree.duplicate, report.damaged[1].paths)
    assert.equal("done", events[#events].type)
  end)

  it("check_health{poll = cqueues.poll} never blocks the cqueues loop", function()
    local ok, cqueues = pcall(require, "cqueues")
    if not ok then
      pending("lua-cqueues is not installed")
      return
    end
    local s <close> = assert(open(big))
    local cq = cqueues.new()
    local ticks, state, report, finished = 0, nil, nil, false
    cq:wrap(function()
      state, report = s:check_health{scan = true, threads = 1, poll = cqueues.poll}
      finished = true
    end)
    cq:wrap(function()
      while not finished do
        ticks = ticks + 1
        cqueues.sleep(0.005)
      end
    end)
    assert(cq:loop(30))
    assert.equal("healthy", state, tostring(report))
    -- the other coroutine ran all along (a blocking wait would starve it)
    assert.is_true(ticks >= 3, "ticks: " .. ticks)
  end)

  it("reports progress and prints its phase and percent", function()
    local s <close> = assert(open(big))
    local j <close> = assert(s:check_health_job{scan = true})
    local p = j:progress()
    assert.is_string(p.phase)
    assert.is_number(p.bytes_done)
    assert.is_number(p.bytes_total)
    assert.is_number(p.blobs_done)
    assert.is_number(p.blobs_total)
    assert.is_number(p.elapsed)
    assert.matches("^imagehealth.Job: full scan, ", tostring(j))
    assert.equal("healthy", (j:wait()))
    assert.equal("done", j:progress().phase)
    assert.matches("^imagehealth.Job: full scan, done", tostring(j))
    assert.is_true(j:done())
  end)

  it("refuses result() while running and keeps it after close", function()
    local s <close> = assert(open(big))
    local j = assert(s:check_health_job{scan = true, threads = 1})
    if not j:done() then
      assert.has_error(function() j:result() end)
    end
    local state, report = j:wait()
    assert.equal("healthy", state)
    local state2, report2 = j:result()
    assert.equal(state, state2)
    assert.equal(report, report2)
    j:close()
    j:close()
    assert.is_true(j:closed())
    assert.equal("healthy", (j:result()))
    assert.matches("%(closed%)$", tostring(j))
    assert.has_error(function() j:progress() end, "attempt to use a closed imagehealth.Job")
    assert.has_error(function() j:pollfd() end, "attempt to use a closed imagehealth.Job")
  end)

  it("wait() takes a progress callback", function()
    local s <close> = assert(open(healthy))
    local j <close> = assert(s:check_health_job{scan = true})
    local n = 0
    assert.equal("healthy", (j:wait{progress = function() n = n + 1 end}))
    assert.is_true(n >= 1)
  end)

  it("closing the session stops and closes its running jobs", function()
    local s = assert(open(big))
    local j = assert(s:check_health_job{scan = true, threads = 1})
    s:close()
    assert.is_true(j:closed())
    assert.is_true(s:closed())
  end)

  it("running jobs are collected safely", function()
    collectgarbage()
    collectgarbage()
    -- earlier tests' jobs are still being joined off the Lua thread: let
    -- them finish first, or the counts below could drop on their own
    require("imagehealth.core").wait_released()
    local fds, threads = own_fds(), own_threads()
    local s = assert(open(big))
    for _ = 1, 3 do
      local j = s:check_health_job{scan = true, threads = 1}
      assert.is_false(j:done()) -- running: its threads are there to be joined
    end
    s = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    -- the jobs were stopped and their threads joined (off the Lua thread,
    -- so within a moment, not at once), the session closed (at most as
    -- many as before: a thread of an earlier test may have ended meanwhile)
    -- (seen back at or under the counts before: a descriptor something
    -- else holds for a moment on a loaded machine must not fail it)
    local deadline, nt, nf = os.time() + 10, nil, nil
    repeat
      nt, nf = own_threads(), own_fds()
      if nt <= threads and nf <= fds then break end
      os.execute("sleep 0.05")
    until os.time() >= deadline
    assert.is_true(nt <= threads, nt .. " threads, " .. threads .. " before")
    assert.is_true(nf <= fds, nf .. " fds, " .. fds .. " before")
  end)
end)
