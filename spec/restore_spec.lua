-- spec/restore_spec.lua - s:restore_health: repair from every kind of source
-- in every compression, lying sources, partial repair, policy sources, the
-- state store, crash safety (through the CLI, in subprocesses), disk full,
-- busy, cancel and rebuild.
--
-- The yardsticks are independent of the project: `wimlib-imagex verify`,
-- `7z t`, and extracting the image with wimlib and comparing every file
-- with the tree it was captured from (spec/support/fixtures.lua).

local ih = require "imagehealth"
local F = require "support.fixtures"
local H = require "support.restore_helpers"
local q = F.q

local T, tree

lazy_setup(function()
  T = F.tmpdir("ihrestore")
  tree = F.tree()
end)


-- A damageable copy of a cached image kind, alone in its own directory.
local function fresh(kind)
  local src = F.image(kind)
  return F.copy(src, F.tmpdir(kind) .. "/" .. F.basename(src))
end

-- Opens img (with a state dir of its own unless given) and restores it.
local function restore(img, opts, open_opts)
  open_opts = open_opts or {}
  open_opts.state_dir = open_opts.state_dir or F.tmpdir("state")
  local s <close> = assert(ih.open(img, open_opts))
  return s:restore_health(opts)
end

local function find(list, sha1)
  for _, e in ipairs(list or {}) do
    if e.sha1 == sha1 then
      return e
    end
  end
end

local assert_pristine = H.assert_pristine -- verify, 7z t, byte-for-byte extract

------------------------------------------------------------------ matrix

describe("restore_health repairs", function()
  -- Every compression with one kind of source, and every kind of source on
  -- LZX.  Sources of another compression than the target are recompressed.
  local MATRIX = {
    {"none", "a directory tree", function() return tree.dir end, "dir"},
    {"XPRESS", "wim:PATH", function() return "wim:" .. F.image("XPRESS") end, "wim"},
    {"LZMS", "wim:PATH:INDEX", function() return "wim:" .. F.image("LZMS") .. ":1" end, "wim"},
    {"solid", "esd:PATH", function() return "esd:" .. F.image("solid") end, "wim"},
    {"split", "a bare path (a split set, by its first part)", function() return F.image("split") end, "wim"},
    {"LZX", "wim:PATH", function() return "wim:" .. F.image("LZX") end, "wim"},
    {"LZX", "wim:PATH:INDEX", function() return "wim:" .. F.image("XPRESS") .. ":1" end, "wim"},
    {"LZX", "esd:PATH", function() return "esd:" .. F.image("solid") end, "wim"},
    {"LZX", "a bare path", function() return F.image("LZMS") end, "wim"},
    {"LZX", "a directory tree", function() return tree.dir end, "dir"},
  }
  for _, case in ipairs(MATRIX) do
    local kind, what, source, skind = case[1], case[2], case[3], case[4]
    it(string.format("%s from %s", kind == "solid" and "a solid ESD" or kind == "split"
      and "a split set" or "a " .. kind .. " WIM", what), function()
      local img = fresh(kind)
      local dmg = F.damage_file_data(img, tree.text)
      assert.is_false((F.verify(img)))
      local src = source()
      local state, r = restore(img, {sources = {src}})
      assert.is_string(state, tostring(r))
      assert.equal("healthy", state, tostring(r))
      assert.is_true(r.restored)
      assert.equal("repairable", r.state_before)
      assert.equal(0, #r.unrepaired)
      assert.equal(r.damaged, r.unrepaired)
      for _, sha1 in ipairs(dmg.sha1s) do
        local rp = find(r.repaired, sha1)
        assert.is_table(rp, "not repaired: " .. sha1)
        assert.equal(1, rp.source)
        assert.equal(src, rp.source_spec)
      end
      local rp = find(r.repaired, dmg.sha1)
      assert.same({tree.text}, rp.paths)
      assert.same({1}, rp.images)
      assert.equal(tree.files[tree.text].size, rp.size)
      assert.is_true(r.bytes_written > 0)
      assert.equal(1, #r.sources)
      local s1 = r.sources[1]
      assert.equal(src, s1.spec)
      assert.equal(skind, s1.kind)
      assert.equal("caller", s1.origin)
      assert.is_true(s1.usable)
      assert.equal(#r.repaired, s1.blobs_used)
      assert.is_true(s1.bytes_read > 0)
      assert.equal(0, s1.blobs_rejected)
      assert.is_false(r.rebuilt)
      assert.matches("^healthy %(was repairable%): repaired ", r:summary())
      assert_pristine(img, tree.dir, kind .. " from " .. what)
    end)
  end
end)

------------------------------------------------------------------ lying, partial

describe("restore_health with bad sources", function()
  it("skips sources that lie (right name or SHA-1, wrong bytes) for the next one", function()
    local img = fresh("LZX")
    local dmg = F.damage_file_data(img, tree.text)
    -- a directory whose file has the right name and size and wrong bytes
    local liar_dir = F.tmpdir("liar")
    local good = F.read_file(tree.dir .. tree.text)
    F.sh("mkdir -p " .. q(liar_dir .. "/data"))
    F.write_file(liar_dir .. tree.text, good:sub(1, 1000) .. "X" .. good:sub(1002))
    -- a WIM damaged the same way: it has the blob, and it does not read right
    local liar_wim = F.copy(img, F.tmpdir("liarwim") .. "/liar.wim")
    local good_src = "wim:" .. F.image("LZX") .. ":1"
    local state, r = restore(img, {sources = {liar_dir, liar_wim, good_src}})
    assert.equal("healthy", state, tostring(r))
    assert.equal(3, #r.sources)
    assert.is_true(r.sources[1].blobs_rejected >= 1)
    assert.equal(0, r.sources[1].blobs_used)
    assert.is_true(r.sources[2].blobs_rejected >= 1)
    assert.equal(0, r.sources[2].blobs_used)
    assert.equal(1, r.sources[3].blobs_used)
    assert.equal(3, find(r.repaired, dmg.sha1).source)
    assert.matches("rejected mismatched data from [1]", r:summary(), 1, true)
    local text = tostring(r)
    assert.matches("[1] " .. liar_dir .. " (dir, caller): 0 blobs used", text, 1, true)
    assert.matches("MISMATCHED", text, 1, true)
    assert_pristine(img, tree.dir, "after lying sources")
  end)

  it("partial repair: what no source has is listed with 0x800F081F, the rest is committed", function()
    local img = fresh("LZX")
    local d_text = F.damage_file_data(img, tree.text)
    local d_rand = F.damage_file_data(img, tree.random)
    -- a source that has the text file only
    local partial = F.tmpdir("partial")
    F.sh(string.format("mkdir -p %s/data && cp %s %s/data/", q(partial), q(tree.dir .. tree.text),
      q(partial)))
    local sd = F.tmpdir("state")
    local state, r = restore(img, {sources = {partial}, no_policy = true}, {state_dir = sd})
    assert.equal("repairable", state, tostring(r))
    assert.equal("repairable", r.state_before)
    assert.equal(1, #r.repaired)
    assert.equal(d_text.sha1, r.repaired[1].sha1)
    assert.same({tree.text}, r.repaired[1].paths)
    assert.equal(1, #r.unrepaired)
    local u = r.unrepaired[1]
    assert.equal(d_rand.sha1, u.sha1)
    assert.same({tree.random}, u.paths)
    assert.same({1}, u.images)
    assert.equal(0x800F081F, u.hresult)
    assert.equal("source_missing", u.code)
    assert.equal(r.damaged, r.unrepaired)
    assert.is_true(r.bytes_written > 0)
    local summary = r:summary()
    assert.matches("repaired 1 of 2 damaged blobs", summary, 1, true)
    assert.matches("0x800F081F", summary, 1, true)
    assert.matches(tree.random, summary, 1, true)
    local text = tostring(r)
    assert.matches("Files not repaired (1):\n  image 1:\n    " .. tree.random, text, 1, true)
    assert.matches(tree.text .. "  <- [1] " .. partial, text, 1, true)
    for path, d in r:files() do
      assert.equal(tree.random, path)
      assert.equal(u, d)
    end
    -- verify still fails, on the missing file only
    assert.is_false((F.verify(img)))
    local z = F.sevenzip_test(img)
    assert.same({tree.random}, z.list)
    -- the repaired file extracts right
    local x = F.tmpdir("x1")
    F.sh(string.format("%s extract %s 1 %s --dest-dir=%s", F.WIMLIB, q(img), q(tree.text), q(x)))
    assert.is_true(H.same_file(x .. "/text.txt", tree.dir .. tree.text))
    -- a quick check knows what is left at once
    local s <close> = assert(ih.open(img, {state_dir = sd}))
    local st2, r2 = s:check_health{}
    assert.equal("repairable", st2)
    assert.is_true(r2.from_record)
    assert.equal(1, #r2.damaged)
    assert.equal(d_rand.sha1, r2.damaged[1].sha1)
    -- and a good source finishes the job
    local st3, r3 = s:restore_health{sources = {F.image("LZX")}}
    assert.equal("healthy", st3, tostring(r3))
    assert.equal(1, #r3.repaired)
    assert.equal(d_rand.sha1, r3.repaired[1].sha1)
    assert_pristine(img, tree.dir, "after the second restore")
  end)

  it("with no source at all: repairable, nothing written, the file unchanged", function()
    local img = fresh("LZX")
    local dmg = F.damage_file_data(img, tree.text)
    local before = F.copy(img, F.tmpdir("orig") .. "/orig.wim")
    local state, r = restore(img, {no_policy = true})
    assert.equal("repairable", state)
    assert.equal(0, #r.repaired)
    assert.equal(0, #r.sources)
    assert.equal(0, r.bytes_written)
    assert.equal(dmg.sha1, r.unrepaired[1].sha1)
    assert.equal("source_missing", r.unrepaired[1].code)
    assert.is_true(r.no_policy)
    assert.matches("nothing was written", r:summary(), 1, true)
    assert.is_true(H.same_file(img, before))
  end)

  it("reports a source that cannot be opened, and goes on to the next", function()
    local img = fresh("LZX")
    F.damage_file_data(img, tree.text)
    local missing = T .. "/no/such.wim"
    local state, r = restore(img, {sources = {"wim:" .. missing, F.image("LZX")}})
    assert.equal("healthy", state)
    assert.is_false(r.sources[1].usable)
    assert.matches("no/such.wim", r.sources[1].error, 1, true)
    assert.equal(missing, r.sources[1].path)
    assert.equal("wim", r.sources[1].kind)
    assert.matches("unusable: ", tostring(r), 1, true)
    assert.equal(2, r.repaired[1].source)
  end)
end)

------------------------------------------------------------------ policy

describe("restore_health with the image's servicing policy", function()
  local P
  lazy_setup(function()
    P = H.policy_image()
  end)

  it("repairs from the LocalSourcePath the image carries, through path_map", function()
    local img = F.copy(P.pristine, F.tmpdir("pol") .. "/pol.wim")
    local dmg = F.damage_file_data(img, tree.text)
    -- a map (sorted by key, the longest prefix wins) as well as a list of pairs
    for _, pm in ipairs{{["C:\\Src"] = P.dir, ["C:\\"] = "/nonexistent"},
                        {{"c:\\src\\", P.dir}}} do
      local copy = F.copy(img, F.tmpdir("polc") .. "/pol.wim")
      local state, r = restore(copy, {path_map = pm})
      assert.equal("healthy", state, tostring(r))
      assert.equal(P.local_source_path, r.policy.local_source_path)
      assert.equal(2, r.policy.use_windows_update)
      assert.equal(2, #r.sources)
      local s1, s2 = r.sources[1], r.sources[2]
      assert.equal("policy", s1.origin)
      assert.equal("wim:C:\\Src\\pristine.wim:1", s1.spec)
      assert.equal(P.pristine, s1.path)
      assert.equal(1, s1.index)
      assert.is_true(s1.usable)
      assert.equal("policy", s2.origin)
      assert.equal("D:\\Nowhere", s2.spec)
      assert.is_false(s2.usable)
      assert.matches("path_map", s2.error, 1, true)
      assert.equal(1, find(r.repaired, dmg.sha1).source)
      local text = tostring(r)
      assert.matches("UseWindowsUpdate 2: never use the remote default", text, 1, true)
      assert.matches('LocalSourcePath "' .. P.local_source_path .. '"', text, 1, true)
      assert_pristine(copy, P.tree, "policy source")
    end
  end)

  it("tries the caller's sources before the policy's", function()
    local img = F.copy(P.pristine, F.tmpdir("pol2") .. "/pol.wim")
    local dmg = F.damage_file_data(img, tree.text)
    local empty = F.tmpdir("empty")
    local state, r = restore(img, {sources = {empty, P.pristine},
                                   path_map = {["C:\\Src"] = P.dir}})
    assert.equal("healthy", state)
    assert.equal(4, #r.sources)
    assert.same({"caller", "caller", "policy", "policy"},
      {r.sources[1].origin, r.sources[2].origin, r.sources[3].origin, r.sources[4].origin})
    assert.equal(2, find(r.repaired, dmg.sha1).source)
    assert.equal(0, r.sources[3].blobs_used)
  end)

  it("ignores the policy with no_policy, and says why it could not map a path", function()
    local img = F.copy(P.pristine, F.tmpdir("pol3") .. "/pol.wim")
    F.damage_file_data(img, tree.text)
    local state, r = restore(img, {no_policy = true})
    assert.equal("repairable", state)
    assert.equal(0, #r.sources)
    assert.is_nil(r.policy.local_source_path)
    assert.matches("Policy:   not read (no_policy)", tostring(r), 1, true)
    -- without a path_map the policy's sources cannot be used.  (Through
    -- the CLI, in a subprocess: a core that crashed here would take busted
    -- down with it.)
    local code, out, err = H.run_cli("restore --json " .. q(img))
    assert.equal(1, code, "restore without path_map: " .. out .. err)
    assert.equal("", err)
    local v = H.json_decode(out)
    assert.equal("repairable", v.state)
    assert.equal(2, #v.sources)
    assert.is_false(v.sources[1].usable)
    assert.matches("path_map", v.sources[1].error, 1, true)
    assert.equal(2, v.policy.use_windows_update)
  end)
end)

------------------------------------------------------------------ state, rebuild

describe("restore_health and the state store", function()
  it("after a restore, a quick check says healthy at once (from the record)", function()
    local img = fresh("LZX")
    F.damage_file_data(img, tree.text)
    local sd = F.tmpdir("state")
    local state = restore(img, {sources = {F.image("LZX")}}, {state_dir = sd})
    assert.equal("healthy", state)
    local s <close> = assert(ih.open(img, {state_dir = sd}))
    local st, r = s:check_health{}
    assert.equal("healthy", st)
    assert.is_true(r.from_record)
    assert.is_false(r.scanned)
    -- a restore of a healthy image has nothing to do and writes nothing
    local st2, r2 = s:restore_health{sources = {F.image("LZX")}}
    assert.equal("healthy", st2)
    assert.equal("healthy", r2.state_before)
    assert.equal(0, #r2.repaired)
    assert.equal(0, r2.bytes_written)
    assert.matches("^healthy: nothing to repair", r2:summary())
  end)

  it("rebuild = true repairs into a new file and leaves no temporary file", function()
    local img = fresh("LZX")
    F.damage_file_data(img, tree.text)
    F.damage_file_data(img, tree.random)
    local sd = F.tmpdir("state")
    local s <close> = assert(ih.open(img, {state_dir = sd}))
    local state, r = s:restore_health{sources = {F.image("LZX")}, rebuild = true}
    assert.equal("healthy", state, tostring(r))
    assert.is_true(r.rebuilt)
    assert.equal(2, #r.repaired)
    assert.same({}, H.temporaries_beside(img))
    assert.matches("into a rebuilt copy", r:summary(), 1, true)
    -- the session follows the new file
    local st = s:check_health{scan = true}
    assert.equal("healthy", st)
    assert_pristine(img, tree.dir, "rebuild")
  end)
end)

------------------------------------------------------------------ crash safety

describe("restore crash safety (CLI in a subprocess)", function()
  local good, ref_bytes

  lazy_setup(function()
    good = H.small_check_image()
    -- a reference run: how many bytes a complete restore writes
    local img = F.copy(good, F.tmpdir("ref") .. "/k.wim")
    F.damage_file_data(img, tree.text)
    local state, r = restore(img, {sources = {good}})
    assert(state == "healthy", tostring(r))
    ref_bytes = r.bytes_written
    assert(ref_bytes > 1000, "a restore wrote only " .. ref_bytes .. " bytes")
  end)

  local function crash_case(at, expect)
    local dir = F.tmpdir("crash")
    local img = F.copy(good, dir .. "/k.wim")
    F.damage_file_data(img, tree.text)
    local orig = F.copy(img, dir .. "/k.orig.wim")
    local state = dir .. "/xdg"
    local code, out, err = H.run_cli("restore --no-progress --source " .. q(good) .. " " .. q(img),
      {env = "IMAGEHEALTH_CRASH_AT=" .. at, state = state})
    assert.is_true(code ~= 0 and code ~= 1, at .. ": the process did not die (exit " .. code
      .. ")\n" .. out .. err)
    local got = H.old_or_new(img, orig, at)
    if expect then
      assert.equal(expect, got, at)
    end
    -- a second restore finishes the job
    code, out, err = H.run_cli("restore --no-progress --source " .. q(good) .. " " .. q(img),
      {state = state})
    assert.equal(0, code, at .. ": second restore:\n" .. out .. err)
    assert.is_true((F.verify(img)), at .. ": verify after the second restore")
    return got
  end

  it("dies at each write step and leaves the old or the repaired image", function()
    local steps = {flag = "old", resources = "old", blob_table = "old", xml = "old",
                   integrity = "old", fsync = "old", header = "new", done = "new"}
    for _, step in ipairs{"flag", "resources", "blob_table", "xml", "integrity", "fsync", "header",
                          "done"} do
      crash_case("step:" .. step, steps[step])
    end
  end)

  it("dies after N bytes written, for several N, and leaves the old image", function()
    for _, n in ipairs{1, ref_bytes // 3, ref_bytes * 2 // 3, ref_bytes - 1} do
      crash_case("bytes:" .. n, "old")
    end
  end)

  it("survives kill -9 in the middle of a restore of a bigger image", function()
    local big = H.big_image()
    local dir = F.tmpdir("kill")
    local img = F.copy(big, dir .. "/big.wim")
    F.damage_file_data(img, "/data/big.txt")
    local orig = F.copy(img, dir .. "/big.orig.wim")
    -- a directory source: the 32 MB file is compressed anew, about a second
    -- of appending; kill -9 once the fetch phase shows on the progress bar
    local script = string.format([[
      XDG_STATE_HOME=%s %s restore --progress --source %s %s >%s 2>%s </dev/null &
      pid=$!
      i=0
      while [ $i -lt 500 ] && ! grep -q fetch %s; do sleep 0.02; i=$((i+1)); done
      sleep 0.05
      kill -9 $pid
      wait $pid
      echo "status=$?"]], q(dir .. "/xdg"), q(H.CLI), q(H.big_tree()), q(img), q(dir .. "/out"), q(dir .. "/err"),
      q(dir .. "/err"))
    local out = F.sh(script)
    local status = tonumber(out:match("status=(%d+)"))
    assert.equal(137, status, "not killed by SIGKILL: " .. out .. F.read_file(dir .. "/err"))
    H.old_or_new(img, orig, "kill -9")
    local code, o2, e2 = H.run_cli("restore --no-progress --source " .. q(H.big_tree()) .. " "
      .. q(img), {state = dir .. "/xdg"})
    assert.equal(0, code, o2 .. e2)
    assert.is_true((F.verify(img)))
  end)
end)

------------------------------------------------------------------ errors

describe("restore errors", function()
  it("disk full: exit 3, disk_full (0x80070070), the image byte-identical", function()
    local img = fresh("LZX")
    F.damage_file_data(img, tree.text)
    local orig = F.copy(img, F.tmpdir("orig") .. "/orig.wim")
    local kb = F.file_size(img) // 1024 + 1 -- bash: ulimit -f counts KiB
    local code, out, err = H.run_cli("restore --source " .. q(F.image("LZX")) .. " " .. q(img),
      {shell = "bash", prefix = "ulimit -f " .. kb .. ";"})
    assert.equal(3, code, out .. err)
    assert.equal("", out)
    assert.matches("disk_full (0x80070070)", err, 1, true)
    assert.is_true(H.same_file(img, orig))
  end)

  it("busy: a CLI restore fails at once while a session holds the image, changing nothing", function()
    local img = fresh("LZX")
    F.damage_file_data(img, tree.text)
    local orig = F.copy(img, F.tmpdir("orig") .. "/orig.wim")
    local s <close> = assert(ih.open(img, {state_dir = F.tmpdir("state")}))
    local t0 = tonumber(F.sh("date +%s%N")) / 1e9
    local code, out, err = H.run_cli("restore --source " .. q(F.image("LZX")) .. " " .. q(img))
    local dt = tonumber(F.sh("date +%s%N")) / 1e9 - t0
    assert.equal(3, code, out .. err)
    assert.matches("busy (0x800F0902)", err, 1, true)
    assert.is_true(dt < 10, "took " .. dt .. " s")
    assert.is_true(H.same_file(img, orig))
    -- a second session in this process is refused the same way
    local s2 <close> = assert(ih.open(img, {state_dir = F.tmpdir("state")}))
    local st, e2 = s2:restore_health{sources = {F.image("LZX")}}
    assert.is_nil(st)
    assert.equal("busy", e2.code)
    assert.equal(0x800F0902, e2.hresult)
    s:close()
    assert.is_true(H.same_file(img, orig))
    -- once the other session is gone, it works
    assert.equal("healthy", (s2:restore_health{sources = {F.image("LZX")}}))
  end)

  it("cancel from the progress callback while writing: cancelled, the file byte-identical; "
    .. "meanwhile the image is busy", function()
    local dir = F.tmpdir("cancel")
    local img = F.copy(H.big_image(), dir .. "/big.wim")
    F.damage_file_data(img, "/data/big.txt")
    local orig = F.copy(img, dir .. "/big.orig.wim")
    local sd = F.tmpdir("state")
    local s <close> = assert(ih.open(img, {state_dir = sd}))
    local tok <close> = ih.cancel_token()
    local phases, open_err, job_err = {}, nil, nil
    local state, err = s:restore_health{sources = {H.big_tree()}, cancel = tok,
      progress = function(ev)
        phases[ev.phase] = true
        if ev.phase == "fetch" and not tok:cancelled() then
          -- the restore holds the image: no other session, no other job
          local s2
          s2, open_err = ih.open(img, {state_dir = sd})
          assert(s2 == nil, "a second session opened during the restore")
          local j
          j, job_err = s:restore_health_job{}
          assert(j == nil, "a second job started during the restore")
          tok:cancel()
        end
      end}
    assert.is_nil(state)
    assert.is_true(ih.is_error(err))
    assert.equal("cancelled", err.code)
    assert.equal(0x800704C7, err.hresult)
    assert.is_true(phases.fetch)
    assert.equal("busy", open_err.code)
    assert.equal("busy", job_err.code)
    assert.is_true(H.same_file(img, orig))
    -- the session is usable after, and the damage is on record
    local st, r = s:check_health{}
    assert.equal("repairable", st)
    assert.is_true(r.from_record)
  end)

  it("a nonrepairable image gives a report, not an error", function()
    local img = fresh("LZX")
    F.damage_header(img, "blob_table")
    local orig = F.copy(img, F.tmpdir("orig") .. "/orig.wim")
    local state, r = restore(img, {sources = {F.image("LZX")}})
    assert.equal("nonrepairable", state)
    assert.equal("nonrepairable", r.state_before)
    assert.is_true(r.restored)
    assert.equal(0, #r.repaired)
    assert.equal(0, r.bytes_written)
    assert.is_true(#r.problems >= 1)
    assert.matches("^nonrepairable: the image's structure cannot be read", r:summary())
    assert.is_true(H.same_file(img, orig))
  end)
end)

------------------------------------------------------------------ API

describe("restore_health API", function()
  it("restore_health_job gives a Job driven like a check's", function()
    local img = fresh("LZX")
    local dmg = F.damage_file_data(img, tree.text)
    local s <close> = assert(ih.open(img, {state_dir = F.tmpdir("state")}))
    local j <close> = assert(s:restore_health_job{sources = {F.image("LZX")}, limit_access = true})
    assert.matches("^imagehealth.Job: restore, ", tostring(j))
    local events = 0
    local state, r = j:wait{progress = function() events = events + 1 end}
    assert.equal("healthy", state)
    assert.is_true(events > 0)
    assert.is_true(r.limit_access)
    assert.matches("Limit access: yes", tostring(r), 1, true)
    assert.equal(dmg.sha1, r.repaired[1].sha1)
    -- result() again gives the same report
    local st2, r2 = j:result()
    assert.equal(state, st2)
    assert.equal(r, r2)
    assert.is_true(ih.Report == getmetatable(r))
    local n = 0
    for path, rp, image, src in r:repaired_files() do
      n = n + 1
      assert.equal(tree.text, path)
      assert.equal(r.repaired[1], rp)
      assert.equal(1, image)
      assert.equal(r.sources[1], src)
    end
    assert.equal(1, n)
  end)

  it("takes a single source as a string", function()
    local img = fresh("LZX")
    F.damage_file_data(img, tree.text)
    local state, r = restore(img, {sources = F.image("LZX")})
    assert.equal("healthy", state)
    assert.equal(F.image("LZX"), r.sources[1].spec)
  end)

  it("raises on misuse of its options", function()
    local s <close> = assert(ih.open(F.image("LZX"), {state_dir = F.tmpdir("state")}))
    for _, bad in ipairs{
      {sources = 5}, {sources = {1}}, {sources = {"a", {}}}, {path_map = "C:=/x"},
      {path_map = {{"C:\\"}}}, {path_map = {["C:\\"] = 5}}, {limit_access = "yes"},
      {rebuild = 1}, {threads = -1}, {cancel = {}}, {progress = 5},
    } do
      assert.has_error(function() s:restore_health(bad) end)
    end
    assert.has_error(function() s:restore_health("x") end)
    s:close()
    assert.has_error(function() s:restore_health{} end, "attempt to use a closed imagehealth.Session")
  end)
end)
