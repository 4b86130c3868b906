#!/usr/bin/env lua5.4
-- nightly.lua - the lab's nightly job: scan every image in a library, repair
-- the damaged ones from a mirror, and print one line per image.
--
--   lua5.4 examples/nightly.lua LIBRARY_DIR MIRROR_DIR [STATE_DIR]
--
-- The repair policy is plain Lua: here, the mirror copy with the same file
-- name comes first, then every other image in the mirror (any of them may
-- hold the blobs), and images that are beyond repair are only reported.
local ih = require "imagehealth"

local library, mirror, state_dir = arg[1], arg[2], arg[3]
if not library or not mirror then
  io.stderr:write("usage: nightly.lua LIBRARY_DIR MIRROR_DIR [STATE_DIR]\n")
  os.exit(3)
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
      state, report = s:restore_health{sources = sources_for(image), limit_access = true}
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
