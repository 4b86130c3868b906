-- report_spec.lua - the Report object as a person and a script read it:
-- sizes and times formatted, files per image, lines, the restore's own
-- listing of what came from where.
local ih = require "imagehealth"
local F = require "support.fixtures"

describe("reports", function()
  local tree = F.tree()

  it("formats sizes the way the CLI prints them", function()
    assert.are.equal("0 bytes", ih.format_bytes(0))
    assert.are.equal("1023 bytes", ih.format_bytes(1023))
    assert.are.equal("1.00 KiB", ih.format_bytes(1024))
    assert.are.equal("2.50 MiB", ih.format_bytes(2.5 * 1024 * 1024))
  end)

  it("lists damaged files per image, in lines and in tostring", function()
    local w = F.fresh("multi")
    local d = F.damage_file_data(w, tree.duplicate[1])
    local s = assert(ih.open(w, {state_dir = F.tmpdir("state")}))
    local state, report = s:check_health{scan = true}
    s:close()
    assert.are.equal("repairable", state)
    local per, images = report:files_by_image()
    assert.is_true(#images >= 1)
    local seen = {}
    for _, image in ipairs(images) do
      for _, path in ipairs(per[image]) do seen[path] = true end
    end
    for path in pairs(d.affected_set) do assert.is_true(seen[path], path) end
    local text = table.concat(report:lines(), "\n")
    assert.is_truthy(tostring(report):find(text, 1, true))
    assert.matches("repairable", text)
    assert.matches(tree.duplicate[1], text, 1, true)
    local n = 0
    for path, damage, image in report:files() do
      n = n + 1
      assert.is_string(path)
      assert.are.equal(d.sha1, damage.sha1)
      assert.is_number(image)
    end
    -- each (image, path) once: the multi-image WIM holds the file twice
    assert.are.equal(#report.damaged[1].refs, n)
  end)

  it("says for each repaired file which source it came from", function()
    local pristine = F.image("LZX")
    local w = F.fresh("LZX")
    local d = F.damage_file_data(w, tree.duplicate[1])
    local s = assert(ih.open(w, {state_dir = F.tmpdir("state")}))
    local state, report = s:restore_health{sources = {pristine}, no_policy = true}
    s:close()
    assert.are.equal("healthy", state)
    assert.are.equal("repairable", report.state_before)
    local files = {}
    for path, repair, image, source in report:repaired_files() do
      files[path] = true
      assert.are.equal(d.sha1, repair.sha1)
      assert.are.equal(1, image)
      assert.are.equal(pristine, source.spec)
    end
    assert.are.same(d.affected_set, files)
    local text = tostring(report)
    assert.matches(pristine, text, 1, true)
    assert.matches("healthy", report:summary())
  end)
end)
