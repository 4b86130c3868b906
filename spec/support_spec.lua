-- spec/support_spec.lua - the test fixtures and oracles themselves
-- (spec/support/fixtures.lua), checked against wimlib-imagex, 7z and
-- sha1sum.  Nothing here uses the project's C code or Lua module: if these
-- fail, the fixtures are wrong, not imagehealth.

local F = require "support.fixtures"

local function sorted(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  return c
end

local function subset(a, b) -- every element of list a is in list b
  local s = F.set(b)
  for _, v in ipairs(a) do
    if not s[v] then return false, v end
  end
  return true
end

describe("fixtures: the tree", function()
  local tree

  setup(function()
    tree = F.tree()
  end)

  it("is 3-6 MB of real files with subdirectories", function()
    assert.is_true(tree.total_bytes >= 3e6 and tree.total_bytes <= 6.5e6,
                   "total " .. tree.total_bytes)
    assert.is_true(tree.count >= 50)
    assert.is_true(tree.dirs["/lua/busted/languages"] or tree.dirs["/doc/licenses"])
    assert.is_true(#tree.big >= 3, "files > 100 KiB")
    for _, p in ipairs(tree.big) do
      assert.is_true(F.file_size(tree.dir .. p) > 100 * 1024)
    end
  end)

  it("has a duplicate, an empty file, an empty dir and known contents", function()
    local a, b = tree.duplicate[1], tree.duplicate[2]
    assert.are.equal(F.sha1_file(tree.dir .. a), F.sha1_file(tree.dir .. b))
    assert.is_true(F.file_size(tree.dir .. a) > 32768, "duplicate spans chunks")
    assert.are.equal(0, F.file_size(tree.dir .. tree.empty_file))
    assert.are.equal("", F.sh("ls -A " .. F.q(tree.dir .. tree.empty_dir)))
    for p, content in pairs(tree.known) do
      assert.are.equal(content, F.read_file(tree.dir .. p))
    end
    assert.are.equal("readme.txt", F.sh("readlink " .. F.q(tree.dir .. tree.symlink)):gsub("\n$", ""))
  end)

  it("is the same byte for byte every time it is built", function()
    local d = F.tmpdir() .. "/again"
    local again = F.make_tree(d)
    assert.are.equal(tree.total_bytes, again.total_bytes)
    assert.is_true(F.same_tree(tree.dir, d))
  end)

  it("makes deterministic generated data", function()
    local r1, r2 = F.random_bytes(1000, 7), F.random_bytes(1000, 7)
    assert.are.equal(1000, #r1)
    assert.are.equal(r1, r2)
    assert.are_not.equal(r1, F.random_bytes(1000, 8))
    assert.are.equal(12345, #F.text_bytes(12345))
  end)

  it("gives fresh temp dirs", function()
    local a, b = F.tmpdir(), F.tmpdir()
    assert.are_not.equal(a, b)
    assert.are.equal("", F.sh("ls -A " .. F.q(a)))
  end)
end)

describe("fixtures: captures", function()
  local expect = {
    none = { compression = "none" },
    XPRESS = { compression = "XPRESS", chunk = 32768 },
    LZX = { compression = "LZX", chunk = 32768 },
    LZMS = { compression = "LZMS", chunk = 131072, version = 0xE00 }, -- wimlib: 0xE00 for any LZMS
    solid = { compression = "LZMS", solid = true, solid_chunk = 64 * 1024 * 1024 },
    solid_small = { compression = "LZMS", solid = true, solid_chunk = 128 * 1024 },
    check = { compression = "LZX", chunk = 32768, integrity = true },
    multi = { compression = "LZX", chunk = 32768, images = 2 },
  }
  for _, kind in ipairs(F.KINDS) do
    if expect[kind] then
      it(kind .. " captures and verifies clean with wimlib and 7z", function()
        local e = expect[kind]
        local wim = F.image(kind)
        local ok, out = F.verify(wim)
        assert.is_true(ok, out)
        local z = F.sevenzip_test(wim)
        assert.is_true(z.ok, z.output)
        local info = F.wiminfo(wim)
        assert.are.equal("MSWIM\0\0\0", info.magic)
        assert.are.equal(208, info.header_size)
        assert.are.equal(e.compression, info.compression)
        assert.are.equal(e.images or 1, info.image_count)
        assert.are.equal(e.images or 1, #info.metadata)
        assert.are.equal(1, info.total_parts)
        if e.chunk then assert.are.equal(e.chunk, info.chunk_size) end
        assert.are.equal(e.integrity and true or false, info.integrity.offset ~= 0)
        if e.solid then
          assert.are.equal(0xE00, info.version)
          assert.is_true(#info.solid_groups >= 1)
          local c = F.chunks(wim, info.solid_groups[1].resources[1])
          assert.are.equal(e.solid_chunk, c.chunk_size)
        else
          assert.are.equal(e.version or 0x10D00, info.version)
          assert.are.equal(0, #info.solid_groups)
        end
      end)
    end
  end

  it("split makes >= 3 parts that verify with --ref and open in 7z", function()
    local first = F.image("split")
    local parts = F.parts(first)
    assert.is_true(#parts >= 3, #parts .. " parts")
    for i, p in ipairs(parts) do
      local info = F.wiminfo(p)
      assert.are.equal(i, info.part)
      assert.are.equal(#parts, info.total_parts)
    end
    local ok, out = F.verify(first)
    assert.is_true(ok, out)
    local z = F.sevenzip_test(first)
    assert.is_true(z.ok, z.output)
  end)

  it("split of a file into fractional MiB parts", function()
    local d = F.tmpdir()
    local parts = F.split(F.image("LZX"), d .. "/p.swm", 0.75)
    assert.is_true(#parts >= 2)
    assert.are.equal(d .. "/p.swm", parts[1])
    assert.are.equal(d .. "/p2.swm", parts[2])
  end)
end)

describe("fixtures: WIM reader", function()
  it("maps files to blob entries whose SHA-1 is the file's", function()
    local tree = F.tree()
    for _, kind in ipairs { "none", "LZX", "solid", "split" } do
      local wim = F.image(kind)
      for _, p in ipairs { "/lib/7z.so", "/hello.txt", tree.duplicate[2], "/data/random.bin" } do
        local e = F.blobs_of_file(wim, p)
        assert.are.equal(F.sha1_file(tree.dir .. p), e.sha1, kind .. " " .. p)
        assert.are.equal(F.file_size(tree.dir .. p), e.blob_size, kind .. " " .. p)
        assert.is_true(F.exists(e.part_path))
      end
    end
  end)

  it("counts one blob for the duplicate and none for empty files", function()
    local tree = F.tree()
    local wim = F.image("LZX")
    local a = F.blobs_of_file(wim, tree.duplicate[1])
    local b = F.blobs_of_file(wim, tree.duplicate[2])
    assert.are.equal(a.index, b.index)
    local _, by_path = F.list(wim, 1)
    assert.is_nil(by_path[tree.empty_file].sha1)
    assert.are.equal(0, by_path[tree.empty_file].size)
    assert.is_true(by_path[tree.empty_dir].dir)
  end)

  it("reads chunk tables of multi-chunk LZX resources", function()
    local wim = F.image("LZX")
    local info = F.wiminfo(wim)
    local e = F.blobs_of_file(wim, "/lib/7z.so")
    assert.is_true(e.compressed)
    local c = F.chunks(wim, e, info.chunk_size)
    assert.are.equal((e.original_size + 32767) // 32768, c.nchunks)
    assert.are.equal(4, c.entry_size)
    assert.are.equal(e.offset + (c.nchunks - 1) * 4, c.data_offset)
    local sum = 0
    for i = 1, c.nchunks do
      assert.is_true(c.sizes[i] > 0 and c.sizes[i] <= 32768)
      sum = sum + c.sizes[i]
    end
    assert.are.equal(e.size - (c.nchunks - 1) * 4, sum)
  end)

  it("groups solid blobs under their solid resource", function()
    local info = F.wiminfo(F.image("solid_small"))
    local g = info.solid_groups[1]
    local c = F.chunks(info.path, g.resources[1])
    local total = 0
    for _, b in ipairs(g.blobs) do total = total + b.blob_size end
    assert.are.equal(c.original_size, total)
    assert.are.equal(c.nchunks, #c.sizes)
  end)
end)

describe("fixtures: damage and oracles", function()
  it("refuse to damage the cached pristine images", function()
    assert.has_error(function() F.damage_file_data(F.image("LZX"), "/hello.txt") end)
    assert.is_true(F.verify(F.image("LZX")))
  end)

  for _, kind in ipairs { "none", "XPRESS", "LZX", "LZMS", "check" } do
    it("file data in " .. kind .. ": verify fails, 7z names exactly the file and its duplicate", function()
      local tree = F.tree()
      local wim = F.fresh(kind)
      local d = F.damage_file_data(wim, tree.duplicate[1])
      assert.are.same(sorted(tree.duplicate), d.affected)
      assert.are.equal(F.sha1_file(tree.dir .. tree.duplicate[1]), d.sha1)
      local ok, out, code = F.verify(wim)
      assert.is_false(ok)
      if kind == "check" then
        assert.are.equal(13, code) -- integrity table checked first
        assert.matches("failed integrity check", out)
      else
        assert.is_true(code == 2 or code == 28, "code " .. tostring(code))
      end
      local z = F.sevenzip_test(wim)
      assert.is_false(z.ok)
      assert.are.same(d.affected, z.list)
    end)
  end

  it("file data in solid ESDs: 7z names a subset of the damaged chunk's files", function()
    local wim = F.fresh("solid_small")
    local d = F.damage_file_data(wim, "/data/random.bin")
    assert.is_not_nil(d.chunk)
    assert.is_true(d.affected_set["/data/random.bin"])
    assert.is_false(F.verify(wim))
    local z = F.sevenzip_test(wim)
    assert.is_false(z.ok)
    assert.is_true(#z.list >= 1)
    assert.is_true(subset(z.list, d.affected))
    assert.is_true(z.damaged["/data/random.bin"])

    wim = F.fresh("solid")
    d = F.damage_file_data(wim, "/hello.txt")
    assert.is_false(F.verify(wim))
    z = F.sevenzip_test(wim)
    assert.is_true(#z.list >= 1)
    assert.is_true(subset(z.list, d.affected))
  end)

  it("file data in a split set: damages the right part", function()
    local wim = F.fresh("split")
    local d = F.damage_file_data(wim, "/lua/busted/core.lua")
    assert.are_not.equal(wim, d.path) -- not in the first part
    assert.is_false(F.verify(wim))
    local z = F.sevenzip_test(wim)
    assert.are.same({ "/lua/busted/core.lua" }, z.list)
  end)

  it("shared data in a multi-image WIM: both images named", function()
    local tree = F.tree()
    local wim = F.fresh("multi")
    local d = F.damage_file_data(wim, tree.duplicate[1])
    assert.are.same(sorted(tree.duplicate), d.affected_by_image[1])
    assert.are.same(sorted(tree.duplicate), d.affected_by_image[2])
    local z = F.sevenzip_test(wim)
    assert.is_true(z.multi)
    assert.are.same({ [1] = true, [2] = true }, z.images)
    assert.are.equal(4, #z.files)
    assert.are.same(d.affected, z.list)

    wim = F.fresh("multi")
    d = F.damage_file_data(wim, "/hello.txt", { image = 2 })
    assert.are.same({}, d.affected_by_image[1])
    assert.are.same({ "/hello.txt" }, d.affected_by_image[2])
    z = F.sevenzip_test(wim)
    assert.are.same({ [2] = true }, z.images)
    assert.are.same({ "/hello.txt" }, z.list)
  end)

  it("chunk table: the file is unreadable", function()
    local wim = F.fresh("LZX")
    local d = F.damage_chunk_table(wim, "/lib/7z.so")
    assert.are.equal(d.old + 7, d.new)
    assert.are.same({ "/lib/7z.so" }, d.affected)
    local ok, _, code = F.verify(wim)
    assert.is_false(ok)
    assert.are.equal(2, code)
    assert.are.same({ "/lib/7z.so" }, F.sevenzip_test(wim).list)
  end)

  it("metadata: verify fails, 7z cannot open the image", function()
    local wim = F.fresh("LZX")
    local d = F.damage_metadata(wim, 1)
    assert.are.equal(F.tree().count + 1, #d.paths) -- files + the symlink
    assert.is_true(d.entry.metadata)
    assert.is_false(F.verify(wim))
    assert.is_true(F.sevenzip_test(wim).cannot_open)
  end)

  it("blob table: a wrong SHA-1 leaves the file without data", function()
    local wim = F.fresh("LZX")
    local d = F.damage_blob_table(wim, { field = "sha1", relpath = "/bin/7z" })
    assert.are.same({ "/bin/7z" }, d.affected)
    local ok, out, code = F.verify(wim)
    assert.is_false(ok)
    assert.are.equal(55, code)
    assert.matches('"/bin/7z": blob not found', out, 1, true)
    local z = F.sevenzip_test(wim)
    assert.are.same({ "/bin/7z" }, z.list)
    assert.are.equal(1, z.deleted)
  end)

  it("blob table: a wrong offset fails verify", function()
    local wim = F.fresh("LZX")
    local d = F.damage_blob_table(wim)
    assert.are.same({ "/lib/7z.so" }, d.affected) -- the largest blob
    assert.is_false(F.verify(wim))
  end)

  it("header: bad magic is not a WIM any more", function()
    local wim = F.fresh("LZX")
    F.damage_header(wim, "magic")
    local ok, out, code = F.verify(wim)
    assert.is_false(ok)
    assert.are.equal(43, code)
    assert.matches("Invalid magic characters", out, 1, true)
    assert.is_true(F.sevenzip_test(wim).cannot_open)
    for _, what in ipairs { "blob_table", "xml", "image_count", "chunk_size" } do
      wim = F.fresh("LZX")
      F.damage_header(wim, what)
      assert.is_false(F.verify(wim), what)
    end
  end)

  it("truncation fails verify", function()
    local wim = F.fresh("LZX")
    F.truncate(wim, F.file_size(wim) - 100)
    local ok, _, code = F.verify(wim)
    assert.is_false(ok)
    assert.are.equal(65, code)
  end)

  it("flip is its own inverse", function()
    local wim = F.fresh("LZX")
    local before = F.sha1_file(wim)
    F.flip(wim, 1000, 10)
    assert.are_not.equal(before, F.sha1_file(wim))
    F.flip(wim, 1000, 10)
    assert.are.equal(before, F.sha1_file(wim))
  end)
end)

describe("fixtures: extract and same_tree", function()
  it("extracts images equal to the captured trees", function()
    local d = F.tmpdir()
    assert.is_true(F.extract(F.image("LZX"), 1, d .. "/lzx"))
    assert.is_true(F.same_tree(F.tree().dir, d .. "/lzx"))
    assert.is_true(F.extract(F.image("split"), 1, d .. "/split"))
    assert.is_true(F.same_tree(F.tree().dir, d .. "/split"))
    assert.is_true(F.extract(F.image("multi"), 2, d .. "/two"))
    assert.is_true(F.same_tree(F.tree(2).dir, d .. "/two"))
    local same, report = F.same_tree(F.tree(1).dir, d .. "/two")
    assert.is_false(same)
    assert.matches("only-in-2.txt", report, 1, true)
  end)

  it("a damaged file does not extract", function()
    local wim = F.fresh("LZX")
    F.damage_file_data(wim, "/hello.txt")
    assert.is_false(F.extract(wim, 1, F.tmpdir() .. "/x"))
  end)
end)
