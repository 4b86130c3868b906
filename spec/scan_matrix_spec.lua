-- scan_matrix_spec.lua - the full scan against the independent oracles, for
-- every kind of image and every kind of damage: the verdict agrees with
-- `wimlib-imagex verify`, and the damaged path set equals what `7z t`
-- reports as data errors (for solid images, 7z's set lies within ours: 7z
-- names only the files it was extracting when the chunk broke, while the
-- whole chunk is lost) and what the fixtures predict from the blob table.
local ih = require "imagehealth"
local F = require "support.fixtures"

local function scan(path)
  local s, err = ih.open(path, {state_dir = F.tmpdir("state")})
  if not s then return nil, err end
  local state, report = s:check_health{scan = true}
  s:close()
  return state, report
end

-- Every path our report names, as a set ("/dir/file").
local function our_paths(report)
  local set = {}
  for _, d in ipairs(report.damaged) do
    for _, p in ipairs(d.paths) do set[p] = true end
  end
  return set
end

local function subset(a, b)
  for k in pairs(a) do
    if not b[k] then return false, k end
  end
  return true
end

local function same_set(a, b)
  local ok, k = subset(a, b)
  if not ok then return false, "only in the first: " .. k end
  ok, k = subset(b, a)
  if not ok then return false, "only in the second: " .. k end
  return true
end

local KINDS = {"none", "XPRESS", "LZX", "LZMS", "solid_small", "check", "split", "multi"}
local COMPRESSED = {XPRESS = true, LZX = true, LZMS = true, check = true, split = true,
                    multi = true}

describe("full scan against the oracles", function()
  local tree = F.tree()
  local target = tree.duplicate[1]   -- 3 chunks, and a second path to it

  for _, kind in ipairs(KINDS) do
    describe(kind, function()
      it("is healthy when verify and 7z say so", function()
        local w = F.image(kind)
        assert.is_true((F.verify(w)))
        assert.is_true(F.sevenzip_test(w).ok)
        local state, report = scan(w)
        assert.are.equal("healthy", state)
        assert.are.equal(0, #report.damaged)
      end)

      it("names exactly the files whose data is damaged", function()
        local w = F.fresh(kind)
        local d = F.damage_file_data(w, target)
        local ok = F.verify(w)
        assert.is_false(ok)
        local state, report = scan(w)
        assert.are.equal("repairable", state)
        local ours = our_paths(report)
        assert.is_true(same_set(ours, d.affected_set))
        assert.is_true(ours[tree.duplicate[1]] and ours[tree.duplicate[2]])
        local sz = F.sevenzip_test(w)
        if kind:match("solid") then
          assert.is_true(subset(sz.damaged, ours))
        else
          assert.is_true(same_set(ours, sz.damaged))
        end
        -- the damaged blobs are exactly those the damage can reach: the
        -- file's own blob, or for a solid image every blob of the chunk
        local got = {}
        for _, dm in ipairs(report.damaged) do
          assert.is_truthy(F.set(d.sha1s)[dm.sha1], "not an expected damaged blob: " .. dm.sha1)
          assert.is_truthy(({hash_mismatch = 1, decompression_failure = 1})[dm.reason])
          got[#got + 1] = dm.sha1
        end
        table.sort(got)
        assert.same(d.sha1s, got)
        if not kind:match("solid") then
          assert.same({d.sha1}, got)
        end
      end)

      if COMPRESSED[kind] then
        it("names the file whose chunk table is damaged", function()
          local w = F.fresh(kind)
          local d = F.damage_chunk_table(w, tree.text)  -- compressible, several chunks at any chunk size
          assert.is_false((F.verify(w)))
          local state, report = scan(w)
          assert.are.equal("repairable", state)
          local ours = our_paths(report)
          assert.is_true(same_set(ours, d.affected_set))
          assert.is_true(same_set(ours, F.sevenzip_test(w).damaged))
        end)
      end

      it("reports damaged metadata as repairable, by its hash", function()
        local w = F.fresh(kind)
        local d = F.damage_metadata(w, 1)
        assert.is_false((F.verify(w)))
        local state, report = scan(w)
        assert.are.equal("repairable", state)
        local meta
        for _, dm in ipairs(report.damaged) do
          if dm.is_metadata then meta = dm end
        end
        assert.is_truthy(meta)
        assert.are.equal(d.sha1, meta.sha1)
        assert.are.same({1}, meta.images)
      end)
    end)
  end

  describe("structure", function()
    it("a lying blob table header makes the image nonrepairable", function()
      local w = F.fresh("LZX")
      F.damage_header(w, "blob_table")
      assert.is_false((F.verify(w)))
      local state, report = scan(w)
      assert.are.equal("nonrepairable", state)
      assert.is_true(#report.problems >= 1)
    end)

    it("a file that is no WIM any more is an error, as verify says", function()
      local w = F.fresh("LZX")
      F.damage_header(w, "magic")
      assert.is_false((F.verify(w)))
      local state, err = scan(w)
      assert.is_nil(state)
      assert.are.equal("not_wim", err.code)
    end)

    it("a truncated image is nonrepairable", function()
      local w = F.fresh("LZX")
      F.truncate(w, F.file_size(w) - 3000)
      assert.is_false((F.verify(w)))
      assert.are.equal("nonrepairable", (scan(w)))
    end)

    it("a blob table entry with a wrong SHA-1 is found", function()
      local w = F.fresh("LZX")
      local d = F.damage_blob_table(w, {field = "sha1", relpath = target})
      assert.is_false((F.verify(w)))
      local state, report = scan(w)
      assert.are_not.equal("healthy", state)
      -- the files keep asking for the old hash: it is missing now
      local missing
      for _, dm in ipairs(report.damaged) do
        if dm.sha1 == d.sha1 then missing = dm end
      end
      assert.is_truthy(missing)
      assert.are.equal("missing", missing.reason)
      assert.is_true(same_set(our_paths({damaged = {missing}}), d.affected_set))
    end)

    it("a blob table entry with a wrong offset is found", function()
      local w = F.fresh("LZX")
      F.damage_blob_table(w, {field = "offset"})
      assert.is_false((F.verify(w)))
      assert.are_not.equal("healthy", (scan(w)))
    end)

    it("garbage in the blob table makes the image nonrepairable", function()
      local w = F.fresh("LZX")
      local info = F.wiminfo(w)
      F.poke(w, info.blob_table.offset + 50, string.rep("\255", 100))
      assert.is_false((F.verify(w)))
      assert.are.equal("nonrepairable", (scan(w)))
    end)

    it("an integrity table catches damage to the blob table", function()
      local w = F.fresh("check")
      F.damage_blob_table(w, {field = "raw", nbytes = 2})
      assert.is_false((F.verify(w)))
      assert.are_not.equal("healthy", (scan(w)))
    end)
  end)
end)
