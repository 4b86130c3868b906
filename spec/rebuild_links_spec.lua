-- spec/rebuild_links_spec.lua - restore with rebuild = true on files that
-- are not plain single names owned by the caller: owner and mode kept (or
-- the rebuild refused before writing when the owner cannot be kept), a
-- symlink's target rebuilt with the link kept, a hard-linked image refused,
-- and temporaries a killed rebuild left removed by the next restore.
-- Oracles: stat(1), `wimlib-imagex verify`, cmp.

local ih = require "imagehealth"
local F = require "support.fixtures"
local H = require "support.restore_helpers"
local q = F.q

local tree

lazy_setup(function()
  tree = F.tree()
end)

local function stat(fmt, path)
  return (F.sh("stat -c " .. q(fmt) .. " -- " .. q(path)):gsub("%s+$", ""))
end

-- A copy of the LZX image in dir (made if needed) with one file damaged.
local function damaged_in(dir, name)
  return H.damaged_copy(dir, tree.text, name)
end

local function rebuild(img, open_opts)
  local s <close> = assert(ih.open(img, open_opts or {state_dir = F.tmpdir("state")}))
  return s:restore_health{sources = {F.image("LZX")}, rebuild = true, no_policy = true}
end

describe("restore with rebuild", function()
  it("keeps the image's owner and mode (a 0600 image of nobody stays so)", function()
    if F.sh("id -u"):match("^0") == nil then
      pending("needs root to give the image to nobody")
      return
    end
    local img = damaged_in(F.tmpdir("own"))
    F.sh("chown nobody: " .. q(img) .. " && chmod 0600 " .. q(img))
    local before = stat("%a %U %g", img)
    local state, r = rebuild(img)
    assert.equal("healthy", state, tostring(r))
    assert.is_true(r.rebuilt)
    assert.equal(before, stat("%a %U %g", img))
    assert.equal("600 nobody", stat("%a %U", img))
    assert.is_true((F.verify(img)))
    assert.same({}, H.temporaries_beside(img))
  end)

  it("refuses before writing when the copy could not be given the owner", function()
    if F.sh("id -u"):match("^0") == nil or not F.run("command -v runuser") then
      pending("needs root and runuser to act as nobody")
      return
    end
    -- A directory nobody can write, outside the private TMPDIR (0700).
    local d = F.sh("mktemp -d /tmp/ihnobody.XXXXXX"):gsub("%s+$", "")
    finally(function() F.run("rm -rf " .. q(d)) end)
    F.sh("chmod 0755 " .. q(d))
    local img = damaged_in(d .. "/w")
    local src = F.copy(F.image("LZX"), d .. "/good.wim")
    F.sh("chown nobody: " .. q(d .. "/w") .. " && chmod 0666 " .. q(img) ..
         " && chmod 0644 " .. q(src))
    local orig = F.copy(img, d .. "/orig.wim")
    local script = d .. "/run.lua"
    F.write_file(script, string.format([[
      local ih = require "imagehealth"
      local s = assert(ih.open(%q, {state_dir = %q}))
      local st, r = s:restore_health{sources = {%q}, rebuild = true, no_policy = true}
      print(st == nil and "ERR" or st, tostring(r))
    ]], img, d .. "/w/state", src))
    F.sh("chmod 0644 " .. q(script))
    -- the module as nobody can read it (the checkout may be private)
    local init = assert(package.searchpath("imagehealth", package.path))
    local so = assert(package.searchpath("imagehealth.core", package.cpath))
    F.sh("mkdir -p " .. q(d .. "/mod/imagehealth") .. " && cp " .. q(init:match("^(.*)/[^/]*$")) ..
         "/*.lua " .. q(d .. "/mod/imagehealth/") .. " && cp " .. q(so) .. " " ..
         q(d .. "/mod/imagehealth/core.so") .. " && chmod -R a+rX " .. q(d .. "/mod"))
    local ok, out = F.run(string.format(
      "runuser -u nobody -- env LUA_PATH=%s LUA_CPATH=%s lua5.4 %s",
      q(d .. "/mod/?.lua;" .. d .. "/mod/?/init.lua;;"), q(d .. "/mod/?.so;;"), q(script)))
    assert.is_true(ok, out)
    assert.matches("^ERR", out)
    assert.matches("owner", out, 1, true)
    assert.matches("without --rebuild", out, 1, true)
    -- nothing written: the image is as it was, root's, and no copy is left
    assert.is_true(H.same_file(img, orig))
    assert.equal("666 root", stat("%a %U", img))
    assert.same({}, H.temporaries_beside(img))
  end)

  it("on a symlink rebuilds the file it points to and keeps the link", function()
    local real = damaged_in(F.tmpdir("real"))
    local link = F.tmpdir("link") .. "/link.wim"
    F.sh("ln -s " .. q(real) .. " " .. q(link))
    local state, r = rebuild(link)
    assert.equal("healthy", state, tostring(r))
    assert.is_true(r.rebuilt)
    assert.is_true((F.run("test -L " .. q(link))))
    assert.equal(real, (F.sh("readlink -- " .. q(link)):gsub("%s+$", "")))
    local ok, out = F.verify(real)
    assert.is_true(ok, "the real image was not repaired:\n" .. out)
    assert.same({}, H.temporaries_beside(real))
    assert.same({}, H.temporaries_beside(link))
  end)

  it("refuses an image with another hard link, saying to repair in place", function()
    local img = damaged_in(F.tmpdir("hard"))
    local other = F.dirname(img) .. "/other.wim"
    F.sh("ln " .. q(img) .. " " .. q(other))
    local orig = F.copy(img, F.tmpdir("orig") .. "/orig.wim")
    local state, err = rebuild(img)
    assert.is_nil(state)
    assert.matches("hard link", tostring(err), 1, true)
    assert.matches("without --rebuild", tostring(err), 1, true)
    assert.is_true(H.same_file(img, orig))
    assert.equal("2", stat("%h", img))
    assert.same({}, H.temporaries_beside(img))
    -- in place, both names are repaired
    local s <close> = assert(ih.open(img, {state_dir = F.tmpdir("state")}))
    assert.equal("healthy", (s:restore_health{sources = {F.image("LZX")}, no_policy = true}))
    assert.is_true((F.verify(other)))
  end)
end)

describe("the next restore after a killed rebuild", function()
  it("removes only the caller's own IMAGE.ihtmp.XXXXXX regular files", function()
    local dir = F.tmpdir("left")
    local img = damaged_in(dir)
    local function put(name) F.write_file(dir .. "/" .. name, "left by a killed rebuild") end
    put("img.wim.ihtmp.aB3xZ9")           -- removed
    put("img.wim.ihtmp.Q1w2E3")           -- removed
    put("img.wim.ihtmp.aB3xZ")            -- kept: 5 characters
    put("img.wim.ihtmp.aB3xZ9.keep")      -- kept: more after the pattern
    put("img.wim.ihtmp.a-3xZ9")           -- kept: not a mkstemp character
    put("other.wim.ihtmp.aB3xZ9")         -- kept: another image's
    F.sh("mkdir " .. q(dir .. "/img.wim.ihtmp.Dir123"))          -- kept: a directory
    F.sh("ln -s img.wim.ihtmp.aB3xZ " .. q(dir .. "/img.wim.ihtmp.Lnk123")) -- kept: a symlink
    local root = F.sh("id -u"):match("^0") ~= nil
    if root then
      put("img.wim.ihtmp.Nob123")         -- kept: not the caller's
      F.sh("chown nobody " .. q(dir .. "/img.wim.ihtmp.Nob123"))
    end
    -- an ordinary restore (in place) of that image
    local s <close> = assert(ih.open(img, {state_dir = F.tmpdir("state")}))
    local state, r = s:restore_health{sources = {F.image("LZX")}, no_policy = true}
    assert.equal("healthy", state, tostring(r))
    local left = H.temporaries_beside(img)
    table.sort(left)
    local want = {"img.wim.ihtmp.Dir123", "img.wim.ihtmp.Lnk123", "img.wim.ihtmp.a-3xZ9",
                  "img.wim.ihtmp.aB3xZ", "img.wim.ihtmp.aB3xZ9.keep", "other.wim.ihtmp.aB3xZ9"}
    if root then want[#want + 1] = "img.wim.ihtmp.Nob123" end
    table.sort(want)
    assert.same(want, left)
    assert.is_true((F.verify(img)))
  end)
end)
