-- scan_kind_spec.lua - which kind of scan ran, from Lua and the CLI
-- (issue 13): deep = true / --deep forces the decompression scan; a later
-- --scan of an unchanged file is a fingerprint re-scan with the same
-- verdict and the same damaged paths; the quick check takes the record
-- without decoding; reports say which kind ran and how much was
-- deep-scanned.
local ih = require "imagehealth"
local F = require "support.fixtures"
local q = F.q

local CLI = F.root() .. "/bin/imagehealth"
local decode = require "support.json_decode"

local function paths(r)
  local t = {}
  for _, d in ipairs(r.damaged or {}) do
    for _, p in ipairs(d.paths or {}) do t[#t + 1] = p end
  end
  table.sort(t)
  return table.concat(t, "\n")
end

describe("scan kinds", function()
  local tree = F.tree()

  it("deep, then fingerprint re-scans that agree with it, and the quick check from the record",
    function()
    local w = F.fresh("LZX")
    local sd = F.tmpdir("state")
    local s = assert(ih.open(w, {state_dir = sd}))
    local state, r = s:check_health{scan = true, deep = true}
    assert.are.equal("healthy", state)
    assert.are.equal("deep", r.scan_kind)
    assert.is_true(r.bytes_deep_scanned > 0)
    s:close()
    F.damage_file_data(w, tree.random)
    s = assert(ih.open(w, {state_dir = sd}))
    local fstate, fr = s:check_health{scan = true, no_record = true}
    local dstate, dr = s:check_health{scan = true, deep = true, no_record = true}
    s:close()
    assert.are.equal("fingerprint", fr.scan_kind)
    assert.are.equal("deep", dr.scan_kind)
    assert.are.equal("repairable", fstate)
    assert.are.equal(dstate, fstate)
    assert.are.equal(paths(dr), paths(fr))
    assert.is_true(fr.bytes_deep_scanned <= dr.bytes_deep_scanned)
    assert.matches("deep%-scanned", fr:summary())
    -- the fingerprint re-scan recorded what it found: a quick check takes
    -- it without decoding anything
    s = assert(ih.open(w, {state_dir = sd}))
    state, r = s:check_health{scan = true}
    assert.are.equal("repairable", state)
    state, r = s:check_health()
    s:close()
    assert.are.equal("repairable", state)
    assert.are.equal("quick_record", r.scan_kind)
    assert.are.equal(paths(dr), paths(r))
    assert.matches("nothing was decoded", r:summary())
  end)

  it("the CLI's --deep, and the kind of scan in its text and JSON", function()
    local w = F.fresh("LZX")
    local sd = F.tmpdir("state")
    local ok, out = F.run(string.format("%s check %s --deep --json --state-dir %s", q(CLI), q(w),
      q(sd)))
    assert.is_true(ok, out)
    local r = decode(out)
    assert.are.equal("deep", r.scan_kind)
    assert.is_true(r.scanned)
    ok, out = F.run(string.format("%s check %s --scan --state-dir %s", q(CLI), q(w), q(sd)))
    assert.is_true(ok, out)
    assert.matches("hashed against the last full scan's fingerprints", out)
    ok, out = F.run(string.format("%s restore %s --deep --state-dir %s", q(CLI), q(w), q(sd)))
    assert.is_false(ok)
    assert.matches("deep", out)
  end)
end)
