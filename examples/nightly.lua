#!/usr/bin/env lua5.4
-- nightly.lua - the lab's nightly job: scan every image in a library, repair
-- the damaged ones from a mirror, and print one line per image.
--
--   lua5.4 examples/nightly.lua LIBRARY_DIR MIRROR_DIR [STATE_DIR [BLOB_DIR]]
--
-- The repair policy is plain Lua: the mirror copy with the same file name
-- comes first, then every other image in the mirror (any of them may hold
-- the blobs), then a scripted source: a directory of loose files named by
-- their SHA-1 (BLOB_DIR, say a cache other machines fill).  An ordering
-- policy sends small blobs to that cache first (cheap to look up, and it
-- spares the big mirror images) and everything else to the mirror first.
-- Images that are beyond repair are only reported; each blob left damaged
-- is listed by on_unrepairable.
local ih = require "imagehealth"

local library, mirror, state_dir, blob_dir = arg[1], arg[2], arg[3], arg[4]
if not library or not mirror then
  io.stderr:write("usage: nightly.lua LIBRARY_DIR MIRROR_DIR [STATE_DIR [BLOB_DIR]]\n")
  os.exit(3)
end

-- The scripted source: BLOB_DIR/<sha1>, if there is one.  Its bytes are
-- checked by SHA-1 like any source's: a wrong file is skipped and counted.
local blob_cache = {name = "blob-cache", lookup = function(blob)
  if not blob_dir then
    return nil, "no blob cache"
  end
  local f = io.open(blob_dir .. "/" .. blob.sha1, "rb")
  if not f then
    return nil, "not in the cache"
  end
  -- a reader: pieces until nil, so a big blob is never one string
  return function()
    local piece = f:read(1 << 20)
    if not piece then
      f:close()
    end
    return piece
  end
end}

local SMALL = 64 * 1024

-- The ordering policy: for each damaged blob, the sources to try, in order.
local function order(blob, sources)
  local list = {}
  if blob.size <= SMALL then
    list[1] = blob_cache
  end
  for _, src in ipairs(sources) do
    if src ~= blob_cache then
      list[#list + 1] = src
    end
  end
  if blob.size > SMALL then
    list[#list + 1] = blob_cache
  end
  return list
end

local function images_in(dir)
  local list = {}
  local p = io.popen("find '" .. dir:gsub("'", "'\\''") .. "' -maxdepth 1 -type f " ..
                     "\\( -name '*.wim' -o -name '*.esd' -o -name '*.swm' \\) | sort")
  for path in p:lines() do
    -- a split set is opened by its first part only
    if not path:match("%d%.swm$") then list[#list + 1] = path end
  end
  p:close()
  return list
end

local function sources_for(image)
  local name = image:match("[^/]+$")
  local sources = {mirror .. "/" .. name}
  for _, other in ipairs(images_in(mirror)) do
    if other:match("[^/]+$") ~= name then sources[#sources + 1] = other end
  end
  sources[#sources + 1] = blob_cache
  return sources
end

local worst = 0
for _, image in ipairs(images_in(library)) do
  local s, err = ih.open(image, {state_dir = state_dir})
  if not s then
    print(("%-40s error: %s"):format(image, tostring(err)))
    worst = 3
  else
    local state, report = s:check_health{scan = true}
    if state == "repairable" then
      state, report = s:restore_health{sources = sources_for(image), limit_access = true,
        order = order,
        on_unrepairable = function(blob)
          print(("%-40s   left damaged: %s (%s)"):format("", blob.paths[1] or blob.sha1,
            blob.code))
        end}
    end
    if not state then
      print(("%-40s error: %s"):format(image, tostring(report)))
      worst = 3
    else
      print(("%-40s %s"):format(image, report:summary()))
      worst = math.max(worst, ih.states[state])
    end
    s:close()
  end
end
os.exit(worst)
