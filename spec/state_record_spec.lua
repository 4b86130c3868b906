-- state_record_spec.lua - what the Lua side says about state records: how
-- old a recalled scan is, and a restore that scans unless use_record.
local ih = require "imagehealth"
local R = require "imagehealth.report"
local F = require "support.fixtures"

describe("state records", function()
  local tree = F.tree()

  it("say when the recorded scan ran and how long ago", function()
    local t = 1796133780 -- 2026-12-01 14:03 UTC
    assert.are.equal("2026-12-01 14:03 UTC, just now", R.format_recorded(t, t + 30))
    assert.are.equal("2026-12-01 14:03 UTC, 5 minutes ago", R.format_recorded(t, t + 300))
    assert.are.equal("2026-12-01 14:03 UTC, 3 hours ago", R.format_recorded(t, t + 3 * 3600))
    assert.are.equal("2026-12-01 14:03 UTC, 2 days ago", R.format_recorded(t, t + 48 * 3600))
  end)

  it("show their age in the quick check, and a restore scans unless use_record", function()
    local w = F.fresh("LZX")
    local sd = F.tmpdir("state")
    local s = assert(ih.open(w, {state_dir = sd}))
    assert.are.equal("healthy", (s:check_health{scan = true}))
    s:close()
    -- bit rot after the scan: size and mtime as they were
    os.execute(string.format("touch -r '%s' '%s.ref'", w, w))
    F.damage_file_data(w, tree.random)
    os.execute(string.format("touch -r '%s.ref' '%s'", w, w))
    s = assert(ih.open(w, {state_dir = sd}))
    local state, r = s:check_health()
    assert.are.equal("healthy", state)
    assert.is_true(r.from_record)
    assert.matches("recorded damage from the full scan of %d+%-%d+%-%d+ %d+:%d+ UTC, just now",
      r:summary())
    state, r = s:restore_health{sources = {F.image("LZX")}, no_policy = true, use_record = true}
    assert.are.equal("healthy", state)
    assert.are.equal(0, #(r.repaired or {}))
    state, r = s:restore_health{sources = {F.image("LZX")}, no_policy = true}
    assert.are.equal("healthy", state)
    assert.is_true(r.scanned)
    assert.are.equal(1, #r.repaired)
    s:close()
  end)
end)
