-- restore_blob_table_spec.lua - damage to blob table entries, repaired:
-- the files' blobs are fetched by the hashes the metadata names, and an
-- entry nothing uses any more is removed, so the image verifies again.
local ih = require "imagehealth"
local F = require "support.fixtures"

describe("restoring damaged blob table entries", function()
  local tree = F.tree()

  it("replaces a blob whose entry lost its SHA-1, and drops the stray entry", function()
    local w = F.fresh("LZX")
    local d = F.damage_blob_table(w, {field = "sha1", relpath = tree.duplicate[1]})
    assert.is_false((F.verify(w)))
    local s = assert(ih.open(w, {state_dir = F.tmpdir("state")}))
    local state, report = s:restore_health{sources = {F.image("LZX")}, no_policy = true}
    s:close()
    assert.are.equal("healthy", state)
    assert.are.equal(1, #report.repaired)
    assert.are.equal(d.sha1, report.repaired[1].sha1)
    assert.are.equal(1, #report.dropped)
    assert.are_not.equal(d.sha1, report.dropped[1].sha1)
    assert.are.equal(0, #report.unrepaired)
    assert.is_true((F.verify(w)))
    local out = F.tmpdir("x")
    assert.is_true((F.extract(w, 1, out)))
    assert.is_true((F.same_tree(tree.dir, out)))
  end)

  it("keeps a stray entry when the session sees only one image", function()
    local w = F.fresh("multi")
    F.damage_blob_table(w, {field = "sha1", relpath = tree.duplicate[1]})
    local s = assert(ih.open(w, {index = 1, state_dir = F.tmpdir("state")}))
    local state, report = s:restore_health{sources = {F.image("multi")}, no_policy = true}
    s:close()
    assert.are.equal("healthy", state)
    assert.are.equal(0, #report.dropped)
  end)
end)
