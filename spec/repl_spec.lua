-- spec/repl_spec.lua - finding one's way at the Lua REPL without the README
-- (issue 11): every object prints a one-line summary, report entries and
-- source entries included; ih.version, ih.formats, ih.help(); errors that
-- concatenate; internal methods kept private.

local ih = require "imagehealth"
local F = require "support.fixtures"

local function one_line(v, prefix)
  local s = tostring(v)
  assert.is_nil(s:find("table: 0x", 1, true), s)
  assert.is_nil(s:find("\n", 1, true), "more than one line: " .. s)
  if prefix then
    assert.equal(prefix, s:sub(1, #prefix), s)
  end
  return s
end

local healthy, restored, checked

lazy_setup(function()
  healthy = F.image("LZX")
  local tree = F.tree()
  local img = F.fresh("LZX")
  F.damage_file_data(img, tree.duplicate[1])
  local s <close> = assert(ih.open(img, {state_dir = F.tmpdir("replstate")}))
  local st
  st, checked = s:check_health{scan = true}
  assert.equal("repairable", st)
  st, restored = s:restore_health{sources = {"/no/such/source", healthy}, no_policy = true}
  assert.equal("healthy", st, tostring(restored))
end)

describe("at the REPL", function()
  it("report entries print one line each", function()
    local d = checked.damaged[1]
    local s = one_line(d, "imagehealth.Damage: ")
    assert.matches(d.sha1:sub(1, 12), s, 1, true)
    assert.matches(d.paths[1], s, 1, true)
    one_line(checked.damaged, "imagehealth.List: ")
    one_line(checked.problems, "imagehealth.List: ")
    one_line(restored.repaired[1], "imagehealth.Repair: ")
    assert.matches(healthy, tostring(restored.repaired[1]), 1, true)
    one_line(restored.repaired, "imagehealth.List: ")
    one_line(restored.unrepaired, "imagehealth.List: ")
    one_line(restored.dropped, "imagehealth.List: ")
    one_line(restored.sources, "imagehealth.List: ")
    one_line(restored.policy, "imagehealth.Policy: ")
    one_line(d.refs[1], "imagehealth.Ref: ")
  end)

  it("source entries print one line each, saying why one is unusable", function()
    local bad = one_line(restored.sources[1], "imagehealth.Source: ")
    assert.matches("/no/such/source", bad, 1, true)
    assert.matches("unusable", bad, 1, true)
    local good = one_line(restored.sources[2], "imagehealth.Source: ")
    assert.matches("1 blob used", good, 1, true)
  end)

  it("the report a restore started from is a report too", function()
    assert.is_true(getmetatable(restored.before) == ih.Report)
    assert.equal("repairable", restored.before.state)
  end)

  it("report:files() iterates the damaged files", function()
    local n = 0
    for path, dmg, image in checked:files() do
      n = n + 1
      assert.is_string(path)
      assert.equal(1, image)
      one_line(dmg, "imagehealth.Damage: ")
    end
    assert.is_true(n >= 2)
  end)

  it("module tables print one line: errors, states, formats, versions", function()
    one_line(ih.errors, "imagehealth.errors: ")
    one_line(ih.errors.busy, "imagehealth.ErrorCode: busy")
    assert.matches("0x800F0902", tostring(ih.errors.busy), 1, true)
    one_line(ih.states, "imagehealth.states: ")
    one_line(ih.formats, "imagehealth.formats: ")
    one_line(ih.versions, "imagehealth.versions: ")
    assert.equal(ih.version, ih.versions.imagehealth)
    assert.equal(_VERSION, ih.versions.lua)
    local names = {}
    for _, f in ipairs(ih.formats) do names[f.name] = true end
    assert.is_true(names.wim and names.esd and names.swm)
  end)

  it("sessions, jobs, tokens and image info print one line", function()
    local s <close> = assert(ih.open(healthy))
    one_line(s, "imagehealth.Session: ")
    local info = s:info()
    one_line(info.images[1], "imagehealth.ImageInfo: ")
    local j <close> = assert(s:check_health_job{})
    one_line(j, "imagehealth.Job: ")
    j:wait()
    one_line(j:progress(), "imagehealth.Progress: ")
    one_line(ih.cancel_token(), "imagehealth.CancelToken ")
  end)

  it("ih.help() lists what there is, and help on a topic", function()
    local text = ih.help()
    assert.is_string(text)
    for _, w in ipairs{"ih.open", "check_health", "restore_health", "ih.formats", "job:wait",
                       "report:files"} do
      assert.matches(w, text, 1, true)
    end
    assert.matches("restore_health", ih.help("restore_health"), 1, true)
    assert.matches("sources", ih.help("restore_health"), 1, true)
    local s <close> = assert(ih.open(healthy))
    assert.matches("check_health", ih.help(s), 1, true)
  end)

  it("errors concatenate on either side", function()
    local e = ih.error("busy", "image locked")
    assert.equal("failed: " .. tostring(e), "failed: " .. e)
    assert.equal(tostring(e) .. "!", e .. "!")
    assert.matches("image locked", "x" .. e .. "y", 1, true)
    local _, err = ih.open("/no/such/image.wim")
    assert.matches("not_found", "open: " .. err, 1, true)
  end)

  it("errors can be written with io.write and file:write via tostring or ..", function()
    local e = ih.error("busy", "image locked")
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(e:string(), "\n")
    f:write("" .. e, "\n")
    f:close()
    local text = F.read_file(path)
    os.remove(path)
    assert.matches("image locked\n.*image locked\n", text)
  end)

  it("internal methods are private", function()
    local s <close> = assert(ih.open(healthy))
    assert.is_nil(s.check_start)
    assert.is_nil(s.restore_start)
    local j <close> = assert(s:check_health_job{})
    assert.is_nil(j.wait_raw)
    assert.is_nil(j.result_raw)
    assert.equal("healthy", (j:wait()))
  end)
end)
