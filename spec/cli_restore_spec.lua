-- spec/cli_restore_spec.lua - `imagehealth restore`: exit codes, the human
-- report (repaired and unrepaired paths, sources, policy), --json, and the
-- options.  Crash safety, disk full and busy through the CLI are in
-- spec/restore_spec.lua.

local F = require "support.fixtures"
local H = require "support.restore_helpers"
local q = F.q

local T, tree, good

lazy_setup(function()
  T = F.tmpdir("ihclirestore")
  tree = F.tree()
  good = F.image("LZX")
end)


-- A copy of a cached image kind (default LZX) with the data of these files
-- damaged.
local function damaged(files, kind)
  local src = F.image(kind or "LZX")
  local img = F.copy(src, F.tmpdir("img") .. "/" .. F.basename(src))
  local dmg = {}
  for _, f in ipairs(files) do
    dmg[f] = F.damage_file_data(img, f)
  end
  return img, dmg
end

-- A directory source holding only these files of the fixture tree.
local function partial_source(files)
  local d = F.tmpdir("src")
  for _, f in ipairs(files) do
    F.sh(string.format("mkdir -p %s && cp %s %s", q(d .. F.dirname(f)), q(tree.dir .. f), q(d .. f)))
  end
  return d
end

local run = H.run_cli

describe("imagehealth restore", function()
  it("--help describes the restore command and its options", function()
    local code, out = run("restore --help")
    assert.equal(0, code)
    out = out:gsub("%s+", " ") -- as wrapped to the terminal
    for _, s in ipairs{"Usage: imagehealth restore IMAGE", "--source S", "wim:PATH[:INDEX]",
                       "--limit-access", "--no-policy", "--path-map WIN=DIR", "--rebuild",
                       "--dry-run", "--use-record", "--http-header H", "--json",
                       "1 repairable (after restore: some damage left"} do
      assert.matches(s, out, 1, true)
    end
  end)

  it("exit 0: repairs from a source, naming the repaired file and where it came from", function()
    local img, dmg = damaged{tree.text}
    local code, out, err = run("restore --source " .. q(good) .. " " .. q(img))
    assert.equal(0, code, out .. err)
    assert.equal("", err)
    assert.matches("^healthy %(was repairable%): repaired 1 damaged blob %(195 KiB, 1 file%): 1 from "
      .. good:gsub("%p", "%%%0"), out)
    assert.matches("State:    healthy (DISM 0), was repairable (DISM 1)", out, 1, true)
    assert.matches("Repaired files (1):\n  image 1:\n    " .. tree.text .. "  <- [1] " .. good, out, 1,
      true)
    assert.matches(dmg[tree.text].sha1 .. "  195 KiB  from [1] " .. good, out, 1, true)
    assert.matches("Sources (1, in the order tried):\n  [1] " .. good .. " (wim, caller): 1 blob used",
      out, 1, true)
    assert.matches("Policy:   none (the image has no", out, 1, true)
    assert.matches("Nothing left to do", out, 1, true)
    assert.is_true((F.verify(img)))
  end)

  it("exit 1: names the files no source had, with 0x800F081F and advice", function()
    local img, dmg = damaged{tree.text, tree.random}
    local src = partial_source{tree.text}
    local code, out, err = run("restore --source " .. q(src) .. " " .. q(img))
    assert.equal(1, code, out .. err)
    assert.equal("", err)
    assert.matches("^repairable: repaired 1 of 2 damaged blobs", out)
    assert.matches("left unrepaired: no source has it (0x800F081F source missing): " .. tree.random,
      out, 1, true)
    assert.matches("    " .. tree.text .. "  <- [1] " .. src, out, 1, true)
    assert.matches("Not repaired (1): no source has them (0x800F081F source missing)\n  "
      .. dmg[tree.random].sha1, out, 1, true)
    assert.matches("Files not repaired (1):\n  image 1:\n    " .. tree.random, out, 1, true)
    assert.matches("[1] " .. src .. " (dir, caller): 1 blob used", out, 1, true)
    assert.matches("Add a --source that has these files", out, 1, true)
    -- with no source at all (and no policy): the same exit, nothing written
    code, out = run("restore --no-policy " .. q(img))
    assert.equal(1, code)
    assert.matches("repaired nothing", out, 1, true)
    assert.matches("Sources:  none given", out, 1, true)
  end)

  it("calls out a source whose bytes do not hash right", function()
    local img = damaged{tree.text}
    local liar = F.tmpdir("liar")
    F.sh("mkdir -p " .. q(liar .. "/data"))
    F.write_file(liar .. tree.text, F.text_bytes(tree.files[tree.text].size, "liar"))
    local code, out = run("restore --source " .. q(liar) .. " --source " .. q(good) .. " " .. q(img))
    assert.equal(0, code, out)
    assert.matches("[1] " .. liar .. " (dir, caller): 0 blobs used", out, 1, true)
    assert.matches("MISMATCHED: 1 candidate", out, 1, true)
    assert.matches("rejected mismatched data from [1] " .. liar, out, 1, true)
    assert.matches("<- [2] " .. good, out, 1, true)
  end)

  it("exit 2 for a nonrepairable image, which it leaves alone", function()
    local img = F.copy(good, F.tmpdir("broken") .. "/broken.wim")
    F.damage_header(img, "blob_table")
    local orig = F.copy(img, F.tmpdir("orig") .. "/orig.wim")
    local code, out = run("restore --source " .. q(good) .. " " .. q(img))
    assert.equal(2, code, out)
    assert.matches("^nonrepairable", out)
    assert.matches("replace it with a known-good copy", out, 1, true)
    code, out = run("restore --json --source " .. q(good) .. " " .. q(img))
    assert.equal(2, code)
    local v = H.json_decode(out)
    assert.equal("nonrepairable", v.state)
    assert.equal("nonrepairable", v.state_before)
    assert.equal(0, v.bytes_written)
    assert.is_true(H.same_file(img, orig))
  end)

  it("exit 3 on errors and on usage errors", function()
    local code, out, err = run("restore --source " .. q(good) .. " " .. q(T .. "/missing.wim"))
    assert.equal(3, code)
    assert.equal("", out)
    assert.matches("^imagehealth: not_found %(0x80070002%): ", err)
    for _, args in ipairs{"restore", "restore " .. q(good) .. " --source",
                          "restore " .. q(good) .. " --source=",
                          "restore " .. q(good) .. " --path-map C:",
                          "restore " .. q(good) .. " --scan",
                          "check " .. q(good) .. " --source " .. q(good),
                          "check " .. q(good) .. " --rebuild",
                          "restore " .. q(good) .. " --limit-access=yes"} do
      code, out, err = run(args)
      assert.equal(3, code, args)
      assert.equal("", out, args)
      assert.matches("^imagehealth: ", err, nil, args)
    end
  end)

  it("--json: the check schema plus repaired, unrepaired, bytes_written, sources, policy", function()
    local img, dmg = damaged{tree.text, tree.random}
    local src = partial_source{tree.text}
    local code, out, err = run("restore --json --limit-access --source " .. q(src) .. " " .. q(img))
    assert.equal(1, code, out .. err)
    assert.equal("", err)
    assert.matches("^{.*}\n$", out)
    local v = H.json_decode(out)
    assert.equal(img, v.image)
    assert.equal("repairable", v.state)
    assert.equal(1, v.health)
    assert.equal("repairable", v.state_before)
    assert.is_true(v.restored)
    assert.is_true(v.limit_access)
    assert.is_boolean(v.scanned)
    assert.is_number(v.seconds)
    assert.is_true(H.is_array(v.problems))
    assert.is_true(H.is_array(v.repaired))
    assert.equal(1, #v.repaired)
    local rp = v.repaired[1]
    assert.equal(dmg[tree.text].sha1, rp.sha1)
    assert.equal(tree.files[tree.text].size, rp.size)
    assert.equal(1, rp.source)
    assert.equal(src, rp.source_spec)
    assert.same({tree.text}, rp.paths)
    assert.same({1}, rp.images)
    assert.is_true(H.is_array(rp.paths) and H.is_array(rp.images))
    for _, key in ipairs{"unrepaired", "damaged"} do
      assert.is_true(H.is_array(v[key]), key)
      assert.equal(1, #v[key], key)
      local u = v[key][1]
      assert.equal(dmg[tree.random].sha1, u.sha1)
      assert.same({tree.random}, u.paths)
      assert.same({1}, u.images)
      assert.equal(0x800F081F, u.hresult)
      assert.equal("source_missing", u.code)
      assert.is_string(u.reason)
      assert.equal("integer", math.type(u.size))
      -- what each source said of it
      assert.is_true(H.is_array(u.tried), key)
      assert.equal(1, #u.tried, key)
      assert.equal(1, u.tried[1].source)
      assert.equal(src, u.tried[1].spec)
      assert.equal("not_found", u.tried[1].status)
    end
    assert.is_true(H.is_array(rp.tried))
    assert.equal(0, #rp.tried)
    assert.equal("integer", math.type(v.bytes_written))
    assert.is_true(v.bytes_written > 0)
    assert.is_true(H.is_array(v.sources))
    assert.equal(1, #v.sources)
    local s1 = v.sources[1]
    assert.equal(src, s1.spec)
    assert.equal("dir", s1.kind)
    assert.equal("caller", s1.origin)
    assert.equal(src, s1.path)
    assert.is_true(s1.usable)
    assert.equal(1, s1.blobs_used)
    assert.equal(0, s1.blobs_rejected)
    assert.equal(1, s1.blobs_not_found)
    assert.equal(tree.files[tree.text].size, s1.bytes_read)
    assert.is_table(v.policy)
    assert.is_nil(v.policy.use_windows_update)
    assert.matches("no /Windows/System32/config/SOFTWARE hive", v.policy.note, 1, true)
  end)

  it("--json of a healthy image: empty arrays, nothing written", function()
    local img = F.copy(good, F.tmpdir("healthy") .. "/h.wim")
    local code, out = run("restore --json --source " .. q(good) .. " " .. q(img))
    assert.equal(0, code, out)
    for _, key in ipairs{"repaired", "unrepaired", "damaged", "sources"} do
      assert.matches('"' .. key .. '":[]', out, 1, true)
    end
    local v = H.json_decode(out)
    assert.equal("healthy", v.state)
    assert.equal("healthy", v.state_before)
    assert.equal(0, v.bytes_written)
  end)

  it("--path-map maps the Windows paths of the image's policy", function()
    local P = H.policy_image()
    local img = F.copy(P.pristine, F.tmpdir("pol") .. "/pol.wim")
    F.damage_file_data(img, tree.text)
    local code, out = run("restore --path-map " .. q("C:\\Src=" .. P.dir) .. " " .. q(img))
    assert.equal(0, code, out)
    assert.matches("<- [1] wim:C:\\Src\\pristine.wim:1 (" .. P.pristine .. ")", out, 1, true)
    assert.matches("(wim, policy, image 1): 1 blob used", out, 1, true)
    assert.matches("[2] D:\\Nowhere (dir, policy): unusable: ", out, 1, true)
    assert.matches("UseWindowsUpdate 2: never use the remote default", out, 1, true)
    -- mapped to places that do not have them: the JSON says so
    img = F.copy(P.pristine, F.tmpdir("pol") .. "/pol.wim")
    F.damage_file_data(img, tree.text)
    code, out = run("restore --json --path-map " .. q("C:\\=" .. T .. "/nowhere") .. " --path-map "
      .. q("d:=" .. T .. "/nowhere-d") .. " " .. q(img))
    assert.equal(1, code, out)
    local v = H.json_decode(out)
    assert.equal(2, #v.sources)
    assert.equal(T .. "/nowhere/Src/pristine.wim", v.sources[1].path)
    assert.equal(T .. "/nowhere-d/Nowhere", v.sources[2].path)
    for _, src in ipairs(v.sources) do
      assert.is_false(src.usable)
      assert.equal("policy", src.origin)
      assert.matches("No such file", src.error, 1, true)
    end
    assert.equal(P.local_source_path, v.policy.local_source_path)
    assert.equal(2, v.policy.use_windows_update)
  end)

  it("--rebuild writes a compacted copy and leaves no temporary file", function()
    local img = damaged{tree.text}
    local code, out = run("restore --rebuild --source " .. q(good) .. " " .. q(img))
    assert.equal(0, code, out)
    assert.matches("into a rebuilt copy of the image", out, 1, true)
    assert.same({}, H.temporaries_beside(img))
    assert.is_true((F.verify(img)))
  end)

  it("--index N restores one image of several", function()
    local img = F.copy(F.image("multi"), F.tmpdir("multi") .. "/multi.wim")
    -- /hello.txt of image 2 differs from image 1's: only image 2 is hit
    F.damage_file_data(img, "/hello.txt", {image = 2})
    local code, out = run("restore --index 2 --source " .. q(F.image("multi")) .. " " .. q(img))
    assert.equal(0, code, out)
    assert.matches("(image 2)", out, 1, true)
    assert.is_true((F.verify(img)))
  end)

  it("--progress shows the restore's phases on stderr", function()
    local img = damaged{tree.text}
    local code, out, err = run("restore --progress --source " .. q(good) .. " " .. q(img))
    assert.equal(0, code, out .. err)
    assert.matches("\r", err, 1, true)
    assert.matches("write", err, 1, true)
    assert.is_nil(out:find("\r", 1, true))
  end)
end)
