-- symbols_spec.lua - what the built objects export: the Lua module only its
-- luaopen_ entry, the C library only the public ih_* API (everything else
-- is built hidden), and every function the public header declares.
local build = os.getenv("IMAGEHEALTH_BUILD") or "build"

local function exported(path)
  local p = assert(io.popen("nm -D --defined-only " .. path .. " 2>/dev/null"))
  local names = {}
  for line in p:lines() do
    local kind, name = line:match("^%x*%s+(%a)%s+(%S+)$")
    if kind and kind:match("[TtDdBbRrWwVvi]") then names[#names + 1] = name end
  end
  p:close()
  table.sort(names)
  return names
end

describe("exported symbols", function()
  it("the Lua module exports luaopen_imagehealth_core alone", function()
    assert.same({ "luaopen_imagehealth_core" }, exported(build .. "/lua/imagehealth/core.so"))
  end)

  it("the C library exports the public API and nothing else", function()
    local names = exported(build .. "/libimagehealth.so")
    local others = {}
    for _, n in ipairs(names) do
      if not n:match("^ih_") then others[#others + 1] = n end
    end
    assert.same({}, others)
    -- every function the header declares is there
    local declared = {}
    for line in io.lines("include/imagehealth.h") do
      local name = line:match("^[%w_ %*]-%f[%w_](ih_[%w_]+)%(")
      if name then declared[name] = true end
    end
    local have = {}
    for _, n in ipairs(names) do have[n] = true end
    local missing = {}
    for n in pairs(declared) do
      if not have[n] then missing[#missing + 1] = n end
    end
    table.sort(missing)
    assert.is_true(next(declared) ~= nil)
    assert.same({}, missing)
    -- internal helpers are hidden
    assert.is_nil(have.wim_open)
    assert.is_nil(have.ih_fail)
  end)
end)
