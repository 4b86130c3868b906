-- spec/support/restore_helpers.lua - helpers shared by spec/restore_spec.lua
-- and spec/cli_restore_spec.lua: running the CLI, extra cached images, and
-- the "old image or repaired image" oracle of the crash-safety specs.
--
--   local H = require "support.restore_helpers"
--
-- Like spec/support/fixtures.lua, images built here are cached in the
-- fixture cache (shared by the plain and the ASan pass of tools/run-tests)
-- and are pristine: copy them (F.copy) before damaging.

local F = require "support.fixtures"
local q = F.q

local H = {}

H.CLI = F.root() .. "/bin/imagehealth"

-- The mkhive test tool: $IMAGEHEALTH_BUILD/mkhive, else build/mkhive (the
-- ASan build directory has no tools of its own).
function H.mkhive()
  local build = os.getenv("IMAGEHEALTH_BUILD")
  for _, p in ipairs{build and (build .. "/mkhive"), F.root() .. "/build/mkhive"} do
    if p and F.exists(p) then
      return p
    end
  end
  error("mkhive not built (run make)")
end

-- Runs the CLI with args (a string, already quoted) in a shell.  opts:
--   state = directory for XDG_STATE_HOME (default: a fresh one per call)
--   env = "VAR=value ..." put before the command
--   prefix = shell text before the command (e.g. "ulimit -f 100;")
--   shell = "sh" (default) or "bash"
-- Returns exit code (negative: killed by that signal), stdout, stderr.
function H.run_cli(args, opts)
  opts = opts or {}
  local dir = F.tmpdir("ihcli")
  local out, err = dir .. "/stdout", dir .. "/stderr"
  local state = opts.state or (dir .. "/xdg")
  local inner = string.format("%s exec env XDG_STATE_HOME=%s %s %s %s", opts.prefix or "",
    q(state), opts.env or "", q(H.CLI), args)
  local cmd = string.format("%s -c %s >%s 2>%s </dev/null", opts.shell or "sh", q(inner), q(out),
    q(err))
  local _, how, code = os.execute(cmd)
  if how == "signal" then
    code = -code
  elseif code > 128 and code < 160 then
    code = -(code - 128) -- the shell reports a killed child as 128 + signal
  end
  return code, F.read_file(out), F.read_file(err)
end

------------------------------------------------------------------ images

local memo = {}

-- Builds `out` once per fixture cache with build(out); returns out.
local function cached(name, build)
  if memo[name] then
    return memo[name]
  end
  local dir = F.cache_dir() .. "/restore"
  F.sh("mkdir -p " .. q(dir))
  local out = dir .. "/" .. name
  if not F.exists(out .. ".done") then
    build(out)
    F.write_file(out .. ".done", "")
  end
  memo[name] = out
  return out
end

-- A small tree (the known files and /data of the fixture tree, ~0.5 MB)
-- in the cache; returns its directory.
function H.small_tree()
  return cached("small-tree", function(out)
    local src = F.tree().dir
    F.sh(string.format("rm -rf %s && mkdir -p %s && cp -a %s/hello.txt %s/docs %s/data %s/deep %s/",
      q(out), q(out), q(src), q(src), q(src), q(src), q(out)))
  end)
end

-- The small tree captured with LZX and an integrity table (--check): every
-- write step of a restore happens on it, the integrity step included.
function H.small_check_image()
  return cached("small-check.wim", function(out)
    F.capture(H.small_tree(), out, {compress = "LZX", check = true})
  end)
end

-- A tree with one big (32 MB) file of base64 text and a small one: its
-- LZX compression takes the restore about a second, long enough to act
-- while it writes.  Returns the directory.
function H.big_tree()
  return cached("big-tree", function(out)
    F.sh(string.format("rm -rf %s && mkdir -p %s/data", q(out), q(out)))
    -- base64 text: LZX works hard on it (random bytes it would store raw)
    F.sh(string.format("head -c 24000000 /dev/urandom | base64 >%s", q(out .. "/data/big.txt")))
    F.write_file(out .. "/small.txt", "a small file\n")
  end)
end

function H.big_image()
  return cached("big.wim", function(out)
    F.capture(H.big_tree(), out, {compress = "LZX", name = "Big"})
  end)
end

-- An image that carries a servicing policy: the small tree plus
-- Windows/System32/config/SOFTWARE (made by mkhive) whose LocalSourcePath is
-- 'wim:C:\Src\pristine.wim:1;D:\Nowhere' and UseWindowsUpdate 2, captured
-- with LZX as <dir>/pristine.wim.  Map C:\Src to <dir> and the policy's
-- first source is that pristine image.  Returns {dir =, pristine =, tree =,
-- local_source_path =}.
H.POLICY_LSP = "wim:C:\\Src\\pristine.wim:1;D:\\Nowhere"
function H.policy_image()
  local dir = cached("policy", function(out)
    local tree = out .. "/tree"
    F.sh(string.format("rm -rf %s && mkdir -p %s && cp -a %s/. %s/ && mkdir -p %s",
      q(out), q(tree), q(H.small_tree()), q(tree), q(tree .. "/Windows/System32/config")))
    F.sh(string.format("%s %s %s 2", q(H.mkhive()),
      q(tree .. "/Windows/System32/config/SOFTWARE"), q(H.POLICY_LSP)))
    F.capture(tree, out .. "/pristine.wim", {compress = "LZX"})
  end)
  return {dir = dir, pristine = dir .. "/pristine.wim", tree = dir .. "/tree",
          local_source_path = H.POLICY_LSP}
end

-- Are two files byte-identical?
-- A copy of the LZX fixture image, named dir/name (default img.wim), with
-- the data of the tree's file `file` damaged.
function H.damaged_copy(dir, file, name)
  F.sh("mkdir -p " .. F.q(dir))
  local img = F.copy(F.image("LZX"), dir .. "/" .. (name or "img.wim"))
  F.damage_file_data(img, file)
  return img
end

-- Every oracle agrees img is the pristine image of tree_dir: wimlib-imagex
-- verify, 7z t, and image 1 extracted equals the tree byte for byte.
function H.assert_pristine(img, tree_dir, label)
  local assert = require "luassert"
  local ok, out = F.verify(img)
  assert.is_true(ok, label .. ": wimlib-imagex verify failed:\n" .. out)
  local z = F.sevenzip_test(img)
  assert.is_true(z.ok, label .. ": 7z t failed:\n" .. z.output)
  local x = F.tmpdir("x")
  local eok, eout = F.extract(img, 1, x)
  assert.is_true(eok, label .. ": extract failed:\n" .. eout)
  local same, diff = F.same_tree(tree_dir, x)
  assert.is_true(same, label .. ": the extracted tree differs:\n" .. tostring(diff))
  F.sh("rm -rf " .. F.q(x))
end

function H.same_file(a, b)
  return (F.run("cmp -s " .. q(a) .. " " .. q(b)))
end

------------------------------------------------------------------ oracles

-- Is `img` still the old image `orig` (a copy taken before the restore)?
-- True when every byte of orig past the header is unchanged, the header
-- differs at most in the write-in-progress flag, and anything past orig's
-- end is junk left by an interrupted append.  Returns ok, why.
function H.is_old_image(img, orig)
  local size = F.file_size(orig)
  if F.file_size(img) < size then
    return false, "shorter than before"
  end
  local ok = F.run(string.format("cmp -s -i %d -n %d %s %s", F.HEADER_SIZE, size - F.HEADER_SIZE,
    q(img), q(orig)))
  if not ok then
    return false, "bytes past the header differ"
  end
  local a, b = F.read_at(img, 0, F.HEADER_SIZE), F.read_at(orig, 0, F.HEADER_SIZE)
  local fa = string.unpack("<I4", a, 0x10 + 1)
  local fb = string.unpack("<I4", b, 0x10 + 1)
  if a:sub(1, 0x10) .. a:sub(0x15) ~= b:sub(1, 0x10) .. b:sub(0x15) or (fa | 0x40) ~= (fb | 0x40) then
    return false, "the header differs beyond the write-in-progress flag"
  end
  return true
end

-- The crash-safety oracle: after an interrupted restore, img opens in
-- wimlib and is either the old image (verify fails only because of the
-- damage it had: its bytes are those of orig) or the repaired one (verify
-- passes).  Returns "old" or "new"; raises with details otherwise.
function H.old_or_new(img, orig, label)
  local ok, out = F.run(F.WIMLIB .. " info " .. q(img) .. F.ref_arg(img))
  if not ok then
    error(string.format("%s: wimlib cannot open the image after the crash:\n%s", label, out), 2)
  end
  local verified, vout = F.verify(img)
  if verified then
    return "new"
  end
  local old, why = H.is_old_image(img, orig)
  if not old then
    error(string.format("%s: neither the old image (%s) nor a repaired one:\n%s", label, why, vout), 2)
  end
  return "old"
end

-- No temporary file of a rebuild left beside path.
function H.temporaries_beside(path)
  local _, out = F.run("ls -a " .. q(F.dirname(path)))
  local left = {}
  for name in out:gmatch("[^\n]+") do
    if name:find(".ihtmp.", 1, true) then
      left[#left + 1] = name
    end
  end
  return left
end

------------------------------------------------------------------ JSON

H.json_decode = require "support.json_decode"

function H.is_array(t)
  local mt = getmetatable(t)
  return mt and mt.__name == "array"
end

return H
