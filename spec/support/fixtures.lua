-- spec/support/fixtures.lua - test fixtures and oracles for imagehealth.
--
--   local F = require "support.fixtures"
--
-- Pure Lua 5.4 plus shell commands (wimlib-imagex, 7z, coreutils).  Nothing
-- here uses the project's own C code: these are the independent yardsticks
-- the project is measured against.
--
-- Trees and captured images are built once per test run and cached on disk
-- (in $IMAGEHEALTH_FIXTURE_CACHE when set, e.g. by tools/run-tests, else in
-- a temporary directory removed when the Lua state closes).  Cached images
-- are pristine: never damage them, damage a copy (F.copy).  The damage
-- helpers refuse to write into the cache.
--
-- Paths inside an image are written "/dir/file" ('/' separators, leading
-- '/'), as `wimlib-imagex dir` prints them.  Temp dirs are removed when the
-- Lua state closes unless $IMAGEHEALTH_KEEP_TMP is set.
--
-- Overview (details at each function):
--   trees     F.tree(variant) (cached), F.make_tree(dir, opts), F.KNOWN
--   images    F.image(kind) (cached, pristine), F.fresh(kind) (a copy),
--             F.capture, F.append, F.split, F.parts, F.copy, F.KINDS
--   listing   F.list(wim, image), F.paths_by_sha1, F.paths_of_sha1s
--   reader    F.wiminfo(path), F.chunks(path, entry), F.blobs_of_file
--   damage    F.damage_file_data, F.damage_chunk_table, F.damage_metadata,
--             F.damage_blob_table, F.damage_header, F.truncate, F.flip,
--             F.poke
--   oracles   F.verify (wimlib-imagex verify), F.sevenzip_test (7z t),
--             F.extract, F.same_tree
--   shell     F.run, F.sh, F.q, F.read_file, F.write_file, F.sha1_file, ...
--
-- What the oracles say (wimlib-imagex 1.13.6, 7-Zip 26.02 as p7zip-full):
--   * data damage in a non-solid resource: 7z names exactly the files of
--     that blob ("ERROR: Data Error : dir/file" for XPRESS/LZX/LZMS, "CRC
--     Failed" for uncompressed); verify stops at the first bad blob, exit 2
--     ("Failed to decompress data!") or 28 (SHA-1 mismatch, uncompressed),
--     and with an integrity table (--check) exit 13 before reading data.
--   * data damage in a solid resource: wimlib fails the whole chunk (every
--     blob in it: `affected`); 7z names a subset of those files.
--   * damaged metadata, blob-table offsets/sizes or solid chunk tables, and
--     a bad header: 7z cannot open the archive at all (cannot_open).
--   * split sets: 7z opens the set from the first .swm but always adds
--     "Unexpected end of archive" and exit 2 (ignored by F.sevenzip_test).

local F = {}

local fmt = string.format
local unpack = string.unpack

------------------------------------------------------------------ shell

-- Quote one word for /bin/sh.
function F.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
local q = F.q

-- Every external tool runs with a UTF-8 locale so that non-ASCII names
-- print the same on every machine, and without the sanitizer runtimes that
-- tools/run-tests preloads into lua5.4 for the ASan pass (they are not
-- what is under test; commands given to F.run keep LD_PRELOAD, so a
-- spawned CLI is still checked).
local ENV = "LC_ALL=C.UTF-8 LD_PRELOAD= "

-- Run a shell command; returns ok (exit 0), combined stdout+stderr, and the
-- exit code (or the signal number, negated).
function F.run(cmd)
  local p = assert(io.popen("{ " .. cmd .. " ; } 2>&1", "r"))
  local out = p:read("a")
  local ok, how, code = p:close()
  if how == "signal" then code = -code end
  return ok == true, out, code
end

-- Run a command that must succeed; returns its output.
function F.sh(cmd)
  local ok, out, code = F.run(cmd)
  if not ok then
    error(fmt("command failed (exit %s): %s\n%s", tostring(code), cmd, out), 2)
  end
  return out
end

function F.read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function F.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

function F.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

function F.file_size(path)
  local f = assert(io.open(path, "rb"))
  local n = f:seek("end")
  f:close()
  return n
end

function F.sha1_file(path)
  return (F.sh("sha1sum " .. q(path)):match("^(%x+)"))
end

function F.sha1(data)
  local t = F.tmpname()
  F.write_file(t, data)
  local h = F.sha1_file(t)
  os.remove(t)
  return h
end

local function basename(p) return p:match("([^/]*)$") end
local function dirname(p) return p:match("^(.*)/[^/]*$") or "." end
F.basename, F.dirname = basename, dirname

-- Sorted array of the keys of a set.
function F.keys(set)
  local t = {}
  for k in pairs(set) do t[#t + 1] = k end
  table.sort(t, function(a, b) return tostring(a) < tostring(b) end)
  return t
end

-- Set from an array.
function F.set(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

------------------------------------------------------------------ temp dirs

-- The state below must survive busted's insulation, which unloads modules
-- required by a spec file when that file is done: keep it in the registry.
local REG = debug.getregistry()
local STATE = REG["imagehealth.spec.fixtures"]
if not STATE then
  STATE = { tmpdirs = {}, cache = nil, memo = {} }
  REG["imagehealth.spec.fixtures"] = STATE
  -- Removed when the Lua state closes (busted exits through os.exit(_, true)
  -- or returns normally; both close the state).
  STATE.sentinel = setmetatable({}, { __gc = function()
    for _, d in ipairs(STATE.tmpdirs) do
      os.execute("rm -rf " .. q(d))
    end
  end })
end

local function tmproot()
  local t = os.getenv("TMPDIR")
  if t and t ~= "" then return t end
  return "/tmp"
end

-- A fresh empty directory, removed when the Lua state closes (unless
-- $IMAGEHEALTH_KEEP_TMP is set).
function F.tmpdir(prefix)
  local d = F.sh("mktemp -d " .. q(tmproot() .. "/" .. (prefix or "ihspec") .. ".XXXXXX")):gsub("%s+$", "")
  if not os.getenv("IMAGEHEALTH_KEEP_TMP") then
    table.insert(STATE.tmpdirs, d)
  end
  return d
end

-- A fresh file name (not created) inside a private temp dir.
function F.tmpname(suffix)
  STATE.scratch = STATE.scratch or F.tmpdir("ihscratch")
  STATE.count = (STATE.count or 0) + 1
  return fmt("%s/%d%s", STATE.scratch, STATE.count, suffix or "")
end

-- The per-run cache directory.
function F.cache_dir()
  if not STATE.cache then
    local env = os.getenv("IMAGEHEALTH_FIXTURE_CACHE")
    if env and env ~= "" then
      F.sh("mkdir -p " .. q(env))
      STATE.cache = F.sh("cd " .. q(env) .. " && pwd -P"):gsub("%s+$", "")
    else
      STATE.cache = F.tmpdir("ihcache")
    end
  end
  return STATE.cache
end

local function in_cache(path)
  local c = F.cache_dir()
  local abs = F.sh("readlink -f -- " .. q(path)):gsub("%s+$", "")
  return abs:sub(1, #c + 1) == c .. "/"
end

local function assert_writable_copy(path)
  if in_cache(path) then
    error("refusing to damage a cached pristine image (" .. path ..
          "); damage a copy made with fixtures.copy()", 3)
  end
end

------------------------------------------------------------------ the tree

-- Fixed content, byte for byte, for the small known files.
F.KNOWN = {
  ["/hello.txt"] = "Hello from the imagehealth test tree.\n",
  ["/docs/readme.txt"] = "This tree is captured into WIM files by spec/support/fixtures.lua.\n" ..
                         "Every byte of it is the same on every run.\n",
  ["/docs/with space.txt"] = "a file name with a space\n",
  ["/docs/\u{fc}n\u{ef}c\u{f6}de.txt"] = "non-ASCII file name (UTF-8 on disk, UTF-16 in the WIM)\n",
  ["/deep/a/b/c/d/leaf.txt"] = "deep leaf\n",
  ["/empty.txt"] = "",
}

-- Real files copied from the system: {source, image path}.  Missing ones are
-- skipped (the tree records what it holds).  Sizes on Debian 12:
-- 7z.so 2.7 MB, 7z 700 KB, libwim 390 KB, liblua 270 KB, wimlib-imagex 85 KB.
local SYSTEM_FILES = {
  { "/usr/lib/p7zip/7z.so", "/lib/7z.so", big = true },
  { "/usr/lib/p7zip/7z", "/bin/7z" },
  { "/usr/bin/wimlib-imagex", "/bin/wimlib-imagex" },
  { "/usr/lib/x86_64-linux-gnu/libwim.so.15", "/lib/libwim.so.15" },
  { "/usr/lib/x86_64-linux-gnu/liblua5.4.so.0", "/lib/liblua5.4.so.0" },
}
-- Whole directories copied (regular files only, sorted).
local SYSTEM_DIRS = {
  { "/usr/share/common-licenses", "/doc/licenses" },
  { "/usr/share/lua/5.4/busted", "/lua/busted" },
  { "/usr/share/lua/5.4/luassert", "/lua/luassert" },
}
-- The duplicate: same bytes at two paths, so one blob.
local DUPLICATE = { "/bin/wimlib-imagex", "/dup/wimlib-imagex.copy" }

-- Deterministic pseudo-random bytes (xorshift64*), incompressible.
function F.random_bytes(n, seed)
  local x = seed or 0x9E3779B97F4A7C15
  local parts, buf = {}, {}
  local full = n // 8
  for i = 1, full do
    x = x ~ (x >> 12); x = x ~ (x << 25); x = x ~ (x >> 27)
    buf[#buf + 1] = string.pack("<i8", x * 0x2545F4914F6CDD1D)
    if #buf == 4096 then parts[#parts + 1] = table.concat(buf); buf = {} end
  end
  parts[#parts + 1] = table.concat(buf)
  local s = table.concat(parts)
  if #s < n then
    x = x ~ (x >> 12); x = x ~ (x << 25); x = x ~ (x >> 27)
    s = s .. string.pack("<i8", x * 0x2545F4914F6CDD1D):sub(1, n - #s)
  end
  return s
end

-- Compressible text of exactly n bytes.
function F.text_bytes(n, word)
  local line = (word or "imagehealth") .. " line of compressible text 0123456789\n"
  local s = line:rep(n // #line + 1)
  return s:sub(1, n)
end

local function mkdir_p(path) F.sh("mkdir -p " .. q(path)) end

local function copy_file(src, dst)
  local data = F.read_file(src)
  mkdir_p(dirname(dst))
  F.write_file(dst, data)
  return #data
end

-- Build a real tree in `dir` (created if needed).  opts:
--   big = false       leave out the 2.7 MB 7z.so (tree ~2 MB instead of ~5)
--   variant = 2       a second version for multi-image WIMs: /hello.txt
--                     differs, /only-in-2.txt exists, /docs/with space.txt
--                     is gone; everything else is shared
--   extra = {["/p"] = "content", ...}   more files
-- Returns a tree table:
--   { dir, files = {["/p"] = {size=, source=}}, dirs = {["/d"]=true},
--     known = {["/p"] = content}, duplicate = {"/a", "/b"},
--     empty_file = "/empty.txt", empty_dir = "/empty",
--     random = "/data/random.bin", text = "/data/text.txt",
--     symlink = "/docs/link-to-readme" (-> readme.txt; not in files),
--     big = {sorted paths of files > 100 KiB}, total_bytes = n, count = n }
-- files holds regular files only; count and total_bytes are over them.
function F.make_tree(dir, opts)
  opts = opts or {}
  mkdir_p(dir)
  local tree = { dir = dir, files = {}, dirs = {}, known = {}, big = {} }
  local function add(path, size, source)
    tree.files[path] = { size = size, source = source }
    local d = dirname(path)
    while d ~= "" and d ~= "." do
      tree.dirs[d] = true
      d = dirname(d)
    end
  end
  local function put(path, content, source)
    mkdir_p(dir .. dirname(path))
    F.write_file(dir .. path, content)
    add(path, #content, source or "generated")
  end

  for p, content in pairs(F.KNOWN) do
    if not (opts.variant == 2 and p == "/docs/with space.txt") then
      local c = content
      if opts.variant == 2 and p == "/hello.txt" then
        c = "Hello from the second image.\n"
      end
      put(p, c, "known")
      tree.known[p] = c
    end
  end
  if opts.variant == 2 then
    put("/only-in-2.txt", "only in the second image\n", "known")
    tree.known["/only-in-2.txt"] = "only in the second image\n"
  end

  -- Generated, independent of the system: multi-chunk, incompressible and
  -- compressible.
  put("/data/random.bin", F.random_bytes(300000, 12345))
  put("/data/text.txt", F.text_bytes(200000))
  tree.random, tree.text = "/data/random.bin", "/data/text.txt"

  for _, e in ipairs(SYSTEM_FILES) do
    if (opts.big ~= false or not e.big) and F.exists(e[1]) then
      add(e[2], copy_file(e[1], dir .. e[2]), e[1])
    end
  end
  for _, e in ipairs(SYSTEM_DIRS) do
    local ok, out = F.run("cd " .. q(e[1]) .. " && find -L . -type f -readable | LC_ALL=C sort")
    if ok then
      for rel in out:gmatch("[^\n]+") do
        rel = rel:gsub("^%./", "")
        add(e[2] .. "/" .. rel, copy_file(e[1] .. "/" .. rel, dir .. e[2] .. "/" .. rel), e[1] .. "/" .. rel)
      end
    end
  end
  if tree.files[DUPLICATE[1]] then
    add(DUPLICATE[2], copy_file(dir .. DUPLICATE[1], dir .. DUPLICATE[2]), dir .. DUPLICATE[1])
    tree.duplicate = { DUPLICATE[1], DUPLICATE[2] }
  else
    put("/dup/one.bin", F.random_bytes(70000, 777))
    add("/dup/two.bin", copy_file(dir .. "/dup/one.bin", dir .. "/dup/two.bin"), "copy")
    tree.duplicate = { "/dup/one.bin", "/dup/two.bin" }
  end
  for p, content in pairs(opts.extra or {}) do
    put(p, content, "extra")
    tree.known[p] = content
  end
  -- One symbolic link (captured as a reparse point whose data is a blob).
  F.sh("ln -sfn readme.txt " .. q(dir .. "/docs/link-to-readme"))
  tree.symlink = "/docs/link-to-readme"
  mkdir_p(dir .. "/empty")
  tree.dirs["/empty"] = true
  tree.empty_dir = "/empty"
  tree.empty_file = "/empty.txt"

  -- Same timestamps every run (directories last: writing files bumps them).
  F.sh("find " .. q(dir) .. " -exec touch -h -d @1600000000 {} +")

  local total, count = 0, 0
  for p, f in pairs(tree.files) do
    total, count = total + f.size, count + 1
    if f.size > 100 * 1024 then tree.big[#tree.big + 1] = p end
  end
  table.sort(tree.big)
  tree.total_bytes, tree.count = total, count
  return tree
end

-- The cached tree of this run (variant 1, or 2).
function F.tree(variant)
  local key = "tree" .. (variant or 1)
  if not STATE.memo[key] then
    local dir = F.cache_dir() .. "/" .. key
    -- another process of the same run (e.g. the ASan pass) may have built it
    local marker = dir .. ".lua"
    if F.exists(marker) then
      STATE.memo[key] = assert(load(F.read_file(marker)))()
    else
      F.sh("rm -rf " .. q(dir))
      local t = F.make_tree(dir, { variant = variant })
      F.write_file(marker, "return " .. F.serialize(t))
      STATE.memo[key] = t
    end
  end
  return STATE.memo[key]
end

-- Minimal serializer for plain tables (strings, numbers, booleans).
function F.serialize(v, indent)
  indent = indent or ""
  local t = type(v)
  if t == "string" then return fmt("%q", v)
  elseif t == "number" then return math.type(v) == "integer" and tostring(v) or fmt("%.17g", v)
  elseif t == "boolean" or t == "nil" then return tostring(v)
  elseif t == "table" then
    local keys = F.keys(v)
    local out = { "{\n" }
    for _, k in ipairs(keys) do
      local ks = type(k) == "string" and fmt("[%q]", k) or "[" .. tostring(k) .. "]"
      out[#out + 1] = indent .. "  " .. ks .. " = " .. F.serialize(v[k], indent .. "  ") .. ",\n"
    end
    out[#out + 1] = indent .. "}"
    return table.concat(out)
  end
  error("cannot serialize " .. t)
end

------------------------------------------------------------------ wimlib-imagex

local WIMLIB = ENV .. "wimlib-imagex"
F.WIMLIB = WIMLIB  -- command prefix, e.g. F.sh(F.WIMLIB .. " info " .. F.q(wim))
F.TOOL_ENV = ENV

-- Capture a tree (a tree table or a directory) into `out`.  opts:
--   compress = "none" | "XPRESS" | "LZX" | "LZMS"  (default LZX; LZMS with solid)
--   solid = true        --solid (an ESD)
--   solid_chunk_size = n   --solid-chunk-size (bytes; default 64 MiB)
--   chunk_size = n      --chunk-size
--   check = true        --check (integrity table)
--   name, description   image name (default "imagehealth-test")
--   threads = n         --threads (default 2)
-- Returns out.
function F.capture(tree, out, opts)
  opts = opts or {}
  local dir = type(tree) == "table" and tree.dir or tree
  local args = { WIMLIB, "capture", q(dir), q(out), q(opts.name or "imagehealth-test") }
  if opts.description then args[#args + 1] = q(opts.description) end
  local compress = opts.compress or (opts.solid and "LZMS" or "LZX")
  args[#args + 1] = "--compress=" .. compress
  if opts.solid then args[#args + 1] = "--solid" end
  if opts.solid_chunk_size then args[#args + 1] = "--solid-chunk-size=" .. opts.solid_chunk_size end
  if opts.chunk_size then args[#args + 1] = "--chunk-size=" .. opts.chunk_size end
  if opts.check then args[#args + 1] = "--check" end
  args[#args + 1] = "--threads=" .. (opts.threads or 2)
  F.sh(table.concat(args, " "))
  return out
end

-- Append a tree as a new image.  opts as for capture (compression is the
-- WIM's).
function F.append(tree, wim, name, opts)
  opts = opts or {}
  local dir = type(tree) == "table" and tree.dir or tree
  local args = { WIMLIB, "append", q(dir), q(wim), q(name or "image") }
  if opts.check then args[#args + 1] = "--check" end
  if opts.solid then args[#args + 1] = "--solid" end
  F.sh(table.concat(args, " "))
  return wim
end

-- The parts of a split set, first to last, given the first part
-- "name.swm" (parts are name.swm, name2.swm, name3.swm, ...).  For a plain
-- WIM returns {wim}.
function F.parts(wim)
  local base = wim:match("^(.*)%.[sS][wW][mM]$")
  if not base then return { wim } end
  local list = { wim }
  local i = 2
  while F.exists(fmt("%s%d.swm", base, i)) do
    list[#list + 1] = fmt("%s%d.swm", base, i)
    i = i + 1
  end
  return list
end

-- `--ref` argument for a split set (empty for a plain WIM).
local function ref_arg(wim)
  local base = wim:match("^(.*)%.[sS][wW][mM]$")
  if not base then return "" end
  return " --ref=" .. q(base .. "*.swm")
end
F.ref_arg = ref_arg

-- Split `wim` into parts of part_mb MiB (may be fractional).  Returns the
-- list of part paths, first (= first_swm) to last.
function F.split(wim, first_swm, part_mb)
  F.sh(fmt("%s split %s %s %s", WIMLIB, q(wim), q(first_swm), tostring(part_mb)))
  return F.parts(first_swm)
end

-- Copy an image (all parts of a split set) into a fresh temp dir, or into
-- `dst` (a file path).  Returns the new path (of the first part).
function F.copy(src, dst)
  dst = dst or (F.tmpdir("ihcopy") .. "/" .. basename(src))
  local parts = F.parts(src)
  if #parts == 1 then
    F.sh("cp -- " .. q(src) .. " " .. q(dst))
    return dst
  end
  local dbase = dst:match("^(.*)%.[sS][wW][mM]$")
  assert(dbase, "copy of a split set must be named *.swm")
  for i, p in ipairs(parts) do
    F.sh("cp -- " .. q(p) .. " " .. q(i == 1 and dst or fmt("%s%d.swm", dbase, i)))
  end
  return dst
end

-- Parse `wimlib-imagex dir WIM IMAGE --detailed`.  Returns an array of
-- entries in listing order: {path=, dir=bool, attributes=n, sha1=hex or nil
-- (unnamed stream; nil when empty), size=n, streams = {{name=, sha1=, size=}}}
-- and a map path -> entry.
function F.list(wim, image)
  image = image or 1
  local out = F.sh(fmt("%s dir %s %d --detailed%s", WIMLIB, q(wim), image, ref_arg(wim)))
  local entries, by_path = {}, {}
  local cur, stream
  for line in out:gmatch("[^\n]*") do
    local path = line:match('^Full Path%s*= "(.*)"$')
    if path then
      cur = { path = path, streams = {} }
      entries[#entries + 1] = cur
      by_path[path] = cur
      stream = nil
    elseif cur then
      local attr = line:match("^Attributes%s*= 0x(%x+)")
      if attr then
        cur.attributes = tonumber(attr, 16)
        cur.dir = cur.attributes & 0x10 ~= 0
      end
      if line:match("^%s+Unnamed data stream:") then
        stream = { name = "" }
        cur.streams[#cur.streams + 1] = stream
      elseif line:match("^%s+Reparse point stream:") then
        stream = { name = "", reparse = true }
        cur.streams[#cur.streams + 1] = stream
      else
        local sname = line:match('^%s+Named data stream "(.*)":') or line:match("^%s+Named data stream (.*):")
        if sname then
          stream = { name = sname }
          cur.streams[#cur.streams + 1] = stream
        end
      end
      if stream then
        local h = line:match("^Hash%s*= 0x(%x+)")
        if h then stream.sha1 = h:lower() end
        local sz = line:match("^Uncompressed size%s*= (%d+)")
        if sz then stream.size = tonumber(sz) end
      end
    end
  end
  for _, e in ipairs(entries) do
    for _, s in ipairs(e.streams) do
      if s.sha1 and s.sha1:match("^0+$") then s.sha1 = nil end
      if s.name == "" and not s.reparse then e.sha1, e.size = s.sha1, s.size end
    end
    e.size = e.size or 0
  end
  return entries, by_path
end

-- Map sha1 -> sorted list of paths (regular files) of an image.
function F.paths_by_sha1(wim, image)
  local entries = F.list(wim, image)
  local m = {}
  for _, e in ipairs(entries) do
    if not e.dir then
      for _, s in ipairs(e.streams) do
        if s.sha1 then
          m[s.sha1] = m[s.sha1] or {}
          table.insert(m[s.sha1], e.path)
        end
      end
    end
  end
  for _, l in pairs(m) do table.sort(l) end
  return m
end

------------------------------------------------------------------ WIM reader

F.HEADER_SIZE = 208
F.RESHDR_METADATA, F.RESHDR_COMPRESSED, F.RESHDR_SOLID = 0x2, 0x4, 0x10
F.SOLID_MAGIC = 0x100000000
local COMP_NAMES = { [0x20000] = "XPRESS", [0x40000] = "LZX", [0x80000] = "LZMS" }

local function hex(s) return (s:gsub(".", function(c) return fmt("%02x", c:byte()) end)) end
F.hex = hex

local function reshdr(data, pos, base)
  local size_flags, offset, orig = unpack("<I8I8I8", data, pos)
  local flags = size_flags >> 56
  return {
    size = size_flags & 0x00FFFFFFFFFFFFFF,  -- stored (compressed) size
    flags = flags,
    offset = offset,
    original_size = orig,
    metadata = flags & 0x2 ~= 0,
    compressed = flags & 0x4 ~= 0,
    solid = flags & 0x10 ~= 0,
    at = base,                                -- file offset of this header
  }
end

local function read_at(path, offset, n)
  local f = assert(io.open(path, "rb"))
  f:seek("set", offset)
  local s = f:read(n) or ""
  f:close()
  return s
end
F.read_at = read_at

-- Read a WIM (or one part of a split set) with no help from wimlib.
-- Returns:
--   { path, size (file), magic, header_size, version, flags, chunk_size,
--     compression ("none"|"XPRESS"|"LZX"|"LZMS"), guid (hex), part,
--     total_parts, image_count, boot_index,
--     blob_table, xml, boot_metadata, integrity   -- resource headers
--       {size, flags, offset, original_size, metadata, compressed, solid, at}
--     entries = { all 50-byte blob table entries in order: the resource
--       header fields plus part, refcount, sha1 (hex), index (1-based),
--       at (file offset of the entry), blob_size (the blob's uncompressed
--       size: original_size, or for a blob inside a solid resource its
--       stored size field), and for blobs in a solid resource solid_group
--       (index into solid_groups; offset is then into the group's
--       uncompressed data); solid resource descriptors have
--       solid_resource = true },
--     blobs = {entries that are file data, not metadata, not solid
--              resource descriptors}, by_sha1 = {hex -> entry},
--     metadata = {image n -> metadata entry},
--     solid_groups = {{resources = {solid resource entries}, blobs = {...}}} }
function F.wiminfo(path)
  local h = read_at(path, 0, F.HEADER_SIZE)
  assert(#h == F.HEADER_SIZE, path .. ": shorter than a WIM header")
  local info = { path = path, size = F.file_size(path) }
  info.magic = h:sub(1, 8)
  info.header_size, info.version, info.flags, info.chunk_size = unpack("<I4I4I4I4", h, 9)
  info.guid = hex(h:sub(0x18 + 1, 0x18 + 16))
  info.part, info.total_parts, info.image_count = unpack("<I2I2I4", h, 0x28 + 1)
  info.blob_table = reshdr(h, 0x30 + 1, 0x30)
  info.xml = reshdr(h, 0x48 + 1, 0x48)
  info.boot_metadata = reshdr(h, 0x60 + 1, 0x60)
  info.boot_index = unpack("<I4", h, 0x78 + 1)
  info.integrity = reshdr(h, 0x7C + 1, 0x7C)
  info.compression = "none"
  if info.flags & 0x2 ~= 0 then
    for bit, name in pairs(COMP_NAMES) do
      if info.flags & bit ~= 0 then info.compression = name end
    end
  end

  info.entries, info.blobs, info.by_sha1, info.metadata, info.solid_groups = {}, {}, {}, {}, {}
  local bt = info.blob_table
  assert(not bt.compressed, "compressed blob tables are not supported")
  local data = read_at(path, bt.offset, bt.size)
  local n = #data // 50
  local group, in_blobs = nil, false
  for i = 1, n do
    local pos = (i - 1) * 50 + 1
    local e = reshdr(data, pos, bt.offset + pos - 1)
    e.part, e.refcount = unpack("<I2I4", data, pos + 24)
    e.sha1 = hex(data:sub(pos + 30, pos + 49))
    e.index = i
    info.entries[i] = e
    if e.solid and e.original_size == F.SOLID_MAGIC then
      -- a solid resource descriptor; consecutive ones form one group whose
      -- uncompressed data is their concatenation
      if not group or in_blobs then
        group = { resources = {}, blobs = {} }
        info.solid_groups[#info.solid_groups + 1] = group
        in_blobs = false
      end
      e.solid_resource = true
      table.insert(group.resources, e)
    else
      e.blob_size = e.original_size
      if e.solid and group then
        -- stored size = the blob's size, offset = into the group's data
        e.blob_size = e.size
        e.solid_group = #info.solid_groups
        table.insert(group.blobs, e)
        in_blobs = true
      end
      if e.metadata then
        info.metadata[#info.metadata + 1] = e
      else
        info.blobs[#info.blobs + 1] = e
        info.by_sha1[e.sha1] = e
      end
    end
  end
  return info
end

-- Chunk layout of a resource.  For a non-solid compressed resource entry:
--   { kind = "chunked", nchunks, entry_size (4|8), table_offset (file),
--     data_offset (file, first chunk), offsets = {chunk i -> offset from
--     data_offset}, sizes = {stored size of chunk i}, chunk_size }
-- For a solid resource descriptor entry:
--   { kind = "solid", original_size, chunk_size, format, nchunks,
--     table_offset, data_offset, sizes = {...}, offsets = {...} }
-- For an uncompressed resource: { kind = "raw", data_offset, nchunks = 1 }.
function F.chunks(path, e, chunk_size)
  if e.solid_resource then
    local hdr = read_at(path, e.offset, 16)
    local orig, csz, format = unpack("<I8I4I4", hdr)
    local n = (orig + csz - 1) // csz
    local tbl = read_at(path, e.offset + 16, 4 * n)
    local r = { kind = "solid", original_size = orig, chunk_size = csz, format = format,
                nchunks = n, table_offset = e.offset + 16, data_offset = e.offset + 16 + 4 * n,
                sizes = {}, offsets = {} }
    local off = 0
    for i = 1, n do
      r.sizes[i] = unpack("<I4", tbl, (i - 1) * 4 + 1)
      r.offsets[i] = off
      off = off + r.sizes[i]
    end
    return r
  end
  if not e.compressed then
    return { kind = "raw", data_offset = e.offset, nchunks = 1, offsets = { 0 }, sizes = { e.size } }
  end
  chunk_size = chunk_size or F.wiminfo(path).chunk_size
  local n = (e.original_size + chunk_size - 1) // chunk_size
  local esz = e.original_size > 0xFFFFFFFF and 8 or 4
  local tsize = (n - 1) * esz
  local tbl = read_at(path, e.offset, tsize)
  local r = { kind = "chunked", nchunks = n, entry_size = esz, table_offset = e.offset,
              data_offset = e.offset + tsize, chunk_size = chunk_size, offsets = { 0 }, sizes = {} }
  for i = 2, n do
    r.offsets[i] = unpack(esz == 4 and "<I4" or "<I8", tbl, (i - 2) * esz + 1)
  end
  local data_size = e.size - tsize
  for i = 1, n do
    r.sizes[i] = (r.offsets[i + 1] or data_size) - r.offsets[i]
  end
  return r
end

-- Find the blob table entry of a file of an image.  Returns entry, info
-- (of the part file that holds it; entry.part_path is that file too), and
-- the list entry of the file.  For split sets `wim` is the first part.
function F.blobs_of_file(wim, relpath, image)
  local _, by_path = F.list(wim, image or 1)
  local le = by_path[relpath]
  assert(le, "no such path in the image: " .. relpath)
  assert(le.sha1, "no data (empty file or directory): " .. relpath)
  for _, part in ipairs(F.parts(wim)) do
    local info = F.wiminfo(part)
    local e = info.by_sha1[le.sha1]
    if e then
      e.part_path = part
      return e, info, le
    end
  end
  error("blob " .. le.sha1 .. " of " .. relpath .. " not in any blob table")
end

-- Every path, in every image, whose data is one of the given sha1s.
-- Returns sorted union list, and {image -> sorted list}.
function F.paths_of_sha1s(wim, sha1s)
  local info = F.wiminfo(wim)
  local union, by_image = {}, {}
  for img = 1, info.image_count do
    local m = F.paths_by_sha1(wim, img)
    local s = {}
    for h in pairs(sha1s) do
      for _, p in ipairs(m[h] or {}) do s[p] = true; union[p] = true end
    end
    by_image[img] = F.keys(s)
  end
  return F.keys(union), by_image
end

------------------------------------------------------------------ damage

-- xor nbytes (default 1) at offset with 0xFF, in place.  Returns offset.
function F.flip(path, offset, nbytes)
  nbytes = nbytes or 1
  local f = assert(io.open(path, "r+b"))
  f:seek("set", offset)
  local s = f:read(nbytes)
  assert(s and #s == nbytes, fmt("flip past the end of %s (%d+%d)", path, offset, nbytes))
  f:seek("set", offset)
  f:write((s:gsub(".", function(c) return string.char(c:byte() ~ 0xFF) end)))
  f:close()
  return offset
end

-- Overwrite bytes at offset, in place.
function F.poke(path, offset, bytes)
  local f = assert(io.open(path, "r+b"))
  f:seek("set", offset)
  f:write(bytes)
  f:close()
end

-- Truncate (or extend with zeros) a file to newsize bytes.
function F.truncate(path, newsize)
  F.sh(fmt("truncate -s %d %s", newsize, q(path)))
  return newsize
end

-- Blobs of a solid group whose uncompressed range meets [lo, hi).
local function solid_blobs_in(group, lo, hi)
  local s = {}
  for _, b in ipairs(group.blobs) do
    if b.offset < hi and b.offset + b.blob_size > lo then s[b.sha1] = true end
  end
  return s
end

local function result(wim, r, sha1s)
  r.sha1s = F.keys(sha1s)
  r.affected, r.affected_by_image = F.paths_of_sha1s(wim, sha1s)
  r.affected_set = F.set(r.affected)
  return r
end

-- Damage the data of the file at relpath (image `opts.image`, default 1):
-- flip opts.nbytes (default 16) bytes in the middle of its stored data
-- (after the chunk table of a compressed resource; for a blob in a solid
-- resource, in the middle of the compressed chunk that holds the middle of
-- the blob).  In place: pass a copy.  Returns
--   { path (file written), offset, nbytes, sha1 (of the damaged blob),
--     sha1s (every blob that can read wrong: for solid, all blobs of the
--     chunk), affected (sorted image paths of those blobs, all images),
--     affected_set, affected_by_image, entry, chunk (solid: chunk index) }
function F.damage_file_data(wim, relpath, opts)
  opts = opts or {}
  local nbytes = opts.nbytes or 16
  local e, info = F.blobs_of_file(wim, relpath, opts.image)
  local part = e.part_path
  assert_writable_copy(part)
  local r = { path = part, nbytes = nbytes, sha1 = e.sha1, entry = e }
  local sha1s = { [e.sha1] = true }
  if e.solid_group then
    local group = info.solid_groups[e.solid_group]
    -- locate the resource of the group holding the middle of the blob
    local mid = e.offset + e.blob_size // 2
    local base = 0
    for _, res in ipairs(group.resources) do
      local c = F.chunks(part, res)
      if mid < base + c.original_size then
        local i = (mid - base) // c.chunk_size + 1
        local size = c.sizes[i]
        local n = math.min(nbytes, math.max(1, size // 4))
        -- at the same relative position in the compressed chunk as the
        -- blob's middle in the uncompressed chunk: the damage then tends to
        -- hit the blob itself (7z, which does not fail the whole chunk,
        -- then names it); wimlib fails the whole chunk anyway
        local ulo = (i - 1) * c.chunk_size
        local ulen = math.min(c.chunk_size, c.original_size - ulo)
        local pos = (size * (mid - base - ulo)) // ulen
        pos = math.max(0, math.min(size - n, pos - n // 2))
        r.offset = c.data_offset + c.offsets[i] + pos
        r.nbytes, r.chunk = n, i
        local lo = base + (i - 1) * c.chunk_size
        sha1s = solid_blobs_in(group, lo, lo + c.chunk_size)
        break
      end
      base = base + c.original_size
    end
    assert(r.offset, "blob offset outside its solid resource")
  else
    local c = F.chunks(part, e, info.chunk_size)
    local data_size = e.size - (c.data_offset - e.offset)
    local n = math.min(nbytes, math.max(1, data_size // 4))
    r.offset = c.data_offset + (data_size - n) // 2
    r.nbytes = n
  end
  F.flip(part, r.offset, r.nbytes)
  return result(wim, r, sha1s)
end

-- Corrupt the chunk table of the (multi-chunk) resource of relpath: adds
-- opts.delta (default 7) to entry opts.entry (default: the middle one) of a
-- non-solid compressed resource; for a solid blob, flips the compressed
-- size of its chunk in the solid resource's chunk table (every blob of that
-- resource is then unreadable).  Returns as damage_file_data, plus
-- old/new (the entry's value).
function F.damage_chunk_table(wim, relpath, opts)
  opts = opts or {}
  local e, info = F.blobs_of_file(wim, relpath, opts.image)
  local part = e.part_path
  assert_writable_copy(part)
  local r = { path = part, sha1 = e.sha1, entry = e }
  local sha1s = { [e.sha1] = true }
  if e.solid_group then
    local group = info.solid_groups[e.solid_group]
    local res = group.resources[1]
    local c = F.chunks(part, res)
    local i = opts.entry or 1
    r.offset, r.nbytes = c.table_offset + (i - 1) * 4, 4
    r.old = c.sizes[i]
    F.flip(part, r.offset, 4)
    r.new = c.sizes[i] ~ 0xFFFFFFFF
    sha1s = {}
    for _, b in ipairs(group.blobs) do sha1s[b.sha1] = true end
  else
    assert(e.compressed, relpath .. ": resource is not compressed (no chunk table)")
    local c = F.chunks(part, e, info.chunk_size)
    assert(c.nchunks >= 2, relpath .. ": single-chunk resource has no chunk table")
    local i = opts.entry or (c.nchunks // 2 + 1)  -- chunk i's offset (2..n)
    assert(i >= 2 and i <= c.nchunks, "chunk table entry out of range")
    r.offset = c.table_offset + (i - 2) * c.entry_size
    r.nbytes = c.entry_size
    r.old = c.offsets[i]
    r.new = r.old + (opts.delta or 7)
    F.poke(part, r.offset, string.pack(c.entry_size == 4 and "<I4" or "<I8", r.new))
    r.chunk = i
  end
  return result(wim, r, sha1s)
end

-- Damage the metadata resource (directory tree) of an image: flip bytes in
-- its middle.  Returns { path, offset, nbytes, image, sha1 (of the metadata
-- resource), entry, paths (every file of that image, listed before the
-- damage) }.
function F.damage_metadata(wim, image, opts)
  opts = opts or {}
  image = image or 1
  local info = F.wiminfo(wim)   -- metadata lives in the first part
  local e = assert(info.metadata[image], "no metadata resource for image " .. image)
  assert_writable_copy(wim)
  local entries = F.list(wim, image)
  local paths = {}
  for _, le in ipairs(entries) do
    if not le.dir then paths[#paths + 1] = le.path end
  end
  table.sort(paths)
  local nbytes = math.min(opts.nbytes or 16, math.max(1, e.size // 4))
  local off = e.offset + (e.size - nbytes) // 2
  if opts.at == "start" then off = e.offset end
  F.flip(wim, off, nbytes)
  return { path = wim, offset = off, nbytes = nbytes, image = image, sha1 = e.sha1,
           entry = e, paths = paths }
end

-- Damage the blob table.  opts.field:
--   "offset" (default) - flip the low byte of the offset of one blob's
--                        entry (opts.relpath, default the largest blob)
--   "sha1"             - flip the first byte of that entry's SHA-1
--   "raw"              - flip opts.nbytes bytes in the middle of the table
-- Returns { path, offset, nbytes, field, sha1 (entry's, before), entry,
--           affected, affected_set, affected_by_image (files of that blob) }.
function F.damage_blob_table(wim, opts)
  opts = opts or {}
  local info = F.wiminfo(wim)
  assert_writable_copy(wim)
  local field = opts.field or "offset"
  local r = { path = wim, field = field }
  if field == "raw" then
    local bt = info.blob_table
    r.nbytes = opts.nbytes or 16
    r.offset = bt.offset + (bt.size - r.nbytes) // 2
    F.flip(wim, r.offset, r.nbytes)
    return r
  end
  local e
  if opts.relpath then
    e = F.blobs_of_file(wim, opts.relpath, opts.image)
    assert(e.part_path == wim, "blob is in another part: " .. e.part_path)
  else
    for _, b in ipairs(info.blobs) do
      if not b.solid and (not e or b.blob_size > e.blob_size) then e = b end
    end
    e = e or info.blobs[1]
  end
  r.entry, r.sha1 = e, e.sha1
  if field == "offset" then
    r.offset, r.nbytes = e.at + 8, 1
  elseif field == "sha1" then
    r.offset, r.nbytes = e.at + 30, 1
  else
    error("unknown field " .. field)
  end
  F.flip(wim, r.offset, r.nbytes)
  return result(wim, r, { [e.sha1] = true })
end

-- Damage the header.  what:
--   "magic" (default)  flip the first byte of the magic
--   "blob_table"       point the blob table resource header past the end
--   "xml"              point the XML resource header past the end
--   "image_count"      set the image count to 0x7fffffff
--   "chunk_size"       set the chunk size to 12345 (not a power of two)
-- Returns { path, offset, nbytes, what }.
function F.damage_header(wim, what)
  what = what or "magic"
  assert_writable_copy(wim)
  local size = F.file_size(wim)
  local r = { path = wim, what = what }
  if what == "magic" then
    r.offset, r.nbytes = 0, 1
    F.flip(wim, 0, 1)
  elseif what == "blob_table" or what == "xml" then
    local at = what == "blob_table" and 0x30 or 0x48
    r.offset, r.nbytes = at + 8, 8
    F.poke(wim, r.offset, string.pack("<I8", size + 4096))
  elseif what == "image_count" then
    r.offset, r.nbytes = 0x2C, 4
    F.poke(wim, r.offset, string.pack("<I4", 0x7fffffff))
  elseif what == "chunk_size" then
    r.offset, r.nbytes = 0x14, 4
    F.poke(wim, r.offset, string.pack("<I4", 12345))
  else
    error("unknown header field " .. what)
  end
  return r
end

------------------------------------------------------------------ oracles

-- `wimlib-imagex verify` (with --ref for split sets).  Returns ok (bool),
-- output (stdout+stderr, progress lines removed), exit code.
function F.verify(wim, opts)
  opts = opts or {}
  local cmd = fmt("%s verify %s%s%s", WIMLIB, q(wim), ref_arg(wim), opts.nocheck and " --nocheck" or "")
  local ok, out, code = F.run(cmd)
  out = out:gsub("Verifying file data: [^\n]-done", "")
  return ok, out, code
end

-- `7z t` (p7zip-full; on Debian 12 it is 7-Zip 26.02).  It reads plain WIMs,
-- solid ESDs, multi-image WIMs and split sets (given the first .swm it
-- finds the other parts itself).  Returns a table:
--   { ok (bool: archive opened and no item failed; for a split set 7z always
--         complains "Unexpected end of archive" and exits 2, which is
--         ignored),
--     code (7z's exit code: 0 ok, 2 errors), output (stdout+stderr),
--     damaged = {"/p" -> true} (image-relative paths, all images),
--     list = sorted damaged paths, images = {n -> true} (images with damage),
--     files = {{image=n or nil, path="/p", error="Data Error"|"CRC Failed"|...}},
--     deleted = n (failed items 7z names "[DELETED]/N": blobs no file uses),
--     cannot_open (bool: "Open ERROR: Cannot open the file as [wim] archive"),
--     archive_errors = {lines after "ERRORS:"}, warnings = {lines after
--     "WARNINGS:"}, multi = bool (several images: 7z prefixes "N/") }
-- 7z names items "dir/file" (image index dir "N/" first when the WIM has
-- several images); they are normalized to "/dir/file".
function F.sevenzip_test(wim, opts)
  opts = opts or {}
  local info = F.wiminfo(wim)
  local multi = info.image_count > 1
  local split = info.total_parts > 1
  local ok, out, code = F.run(fmt("%s7z t -y -bsp0 %s %s </dev/null", ENV, opts.args or "", q(wim)))
  local r = { code = code, output = out, damaged = {}, images = {}, files = {},
              deleted = 0, cannot_open = false, archive_errors = {}, warnings = {},
              multi = multi }
  local block
  for line in out:gmatch("[^\n]+") do
    local kind, item = line:match("^ERROR: (.-) : (.+)$")
    if kind then
      block = nil
      if item:match("^%[DELETED%]") then
        r.deleted = r.deleted + 1
      else
        local img, path = nil, item
        if multi then
          local n, rest = item:match("^(%d+)/(.*)$")
          if n then img, path = tonumber(n), rest end
        end
        path = "/" .. path:gsub("\\", "/")
        r.damaged[path] = true
        r.images[img or 1] = true
        r.files[#r.files + 1] = { image = img, path = path, error = kind }
      end
    elseif line:match("^Open ERROR") or line:match("^Can not open") then
      r.cannot_open = true
      block = nil
    elseif line == "ERRORS:" then
      block = r.archive_errors
    elseif line == "WARNINGS:" then
      block = r.warnings
    elseif block and not line:match("^%-%-") and not line:match("^[%w ]+ = ")
           and not line:match(":%s*%d+$") then
      block[#block + 1] = line
    else
      block = nil
    end
  end
  r.list = F.keys(r.damaged)
  local serious = 0
  for _, e in ipairs(r.archive_errors) do
    if not (split and e == "Unexpected end of archive") then serious = serious + 1 end
  end
  r.ok = not r.cannot_open and #r.files == 0 and r.deleted == 0 and serious == 0 and
         (code == 0 or split)
  return r
end

-- Extract image `image` (default 1) of wim into dir (created).  Returns ok,
-- output.
function F.extract(wim, image, dir)
  F.sh("mkdir -p " .. q(dir))
  local ok, out = F.run(fmt("%s apply %s %d %s%s", WIMLIB, q(wim), image or 1, q(dir), ref_arg(wim)))
  out = out:gsub("Extracting file data: [^\n]-done", "")
  return ok, out
end

-- Byte-for-byte comparison of two directory trees (names, types, contents;
-- not timestamps or modes).  Returns true, or false and diff's report.
function F.same_tree(a, b)
  local ok, out = F.run(fmt("LC_ALL=C diff -r --no-dereference %s %s", q(a), q(b)))
  if ok then return true end
  return false, out
end

------------------------------------------------------------------ cached images

-- Kinds of cached pristine images, built on first use from F.tree():
--   none, XPRESS, LZX, LZMS   non-solid, that compression, default chunks
--   solid                     ESD: solid LZMS (default 64 MiB solid chunks:
--                             the whole tree is one chunk)
--   solid_small               solid LZMS with 128 KiB solid chunks
--   check                     LZX with an integrity table (--check)
--   multi                     LZX, two images (tree 1, tree 2)
--   split                     the LZX image split into 0.5 MiB parts; the
--                             path returned is the first part (*.swm)
F.KINDS = { "none", "XPRESS", "LZX", "LZMS", "solid", "solid_small", "check", "multi", "split" }

local BUILD = {
  none = function(out) return F.capture(F.tree(), out, { compress = "none" }) end,
  XPRESS = function(out) return F.capture(F.tree(), out, { compress = "XPRESS" }) end,
  LZX = function(out) return F.capture(F.tree(), out, { compress = "LZX" }) end,
  LZMS = function(out) return F.capture(F.tree(), out, { compress = "LZMS" }) end,
  solid = function(out) return F.capture(F.tree(), out, { solid = true }) end,
  solid_small = function(out)
    return F.capture(F.tree(), out, { solid = true, solid_chunk_size = 128 * 1024 })
  end,
  check = function(out) return F.capture(F.tree(), out, { compress = "LZX", check = true }) end,
  multi = function(out)
    F.capture(F.tree(1), out, { compress = "LZX", name = "first" })
    return F.append(F.tree(2), out, "second")
  end,
  split = function(out)
    local wim = F.image("LZX")
    F.split(wim, out, 0.5)
    return out
  end,
}
local EXT = { solid = ".esd", solid_small = ".esd", split = ".swm" }

-- Path of the cached pristine image of a kind (see F.KINDS).  Do not write
-- to it: F.copy() it first.
function F.image(kind)
  local build = assert(BUILD[kind], "unknown image kind " .. tostring(kind))
  local key = "image:" .. kind
  if not STATE.memo[key] then
    local dir = F.cache_dir() .. "/images"
    F.sh("mkdir -p " .. q(dir))
    local out = dir .. "/" .. kind .. (EXT[kind] or ".wim")
    local done = out .. ".done"
    if not F.exists(done) then
      for _, p in ipairs(F.parts(out)) do os.remove(p) end
      build(out)
      F.write_file(done, "")
    end
    STATE.memo[key] = out
  end
  return STATE.memo[key]
end

-- A fresh damageable copy of a cached image kind.
function F.fresh(kind)
  return F.copy(F.image(kind))
end

-- Repository root (the directory holding spec/).
function F.root()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = dirname(dirname(dirname(src)))
  if dir == "." or dir == "" then dir = "." end
  return (F.sh("cd " .. q(dir) .. " && pwd -P"):gsub("%s+$", ""))
end

return F
