-- json_decode.lua - a small strict JSON decoder for the specs, to check the
-- CLI's --json output independently of the project's own encoder.

-- A minimal strict JSON decoder (RFC 8259); arrays get a metatable named
-- "array" so that [] and {} can be told apart.
local function json_decode(s)
  local pos = 1
  local function fail(msg)
    error(string.format("JSON error at %d: %s near %q", pos, msg, s:sub(pos, pos + 20)), 0)
  end
  local function ws()
    pos = s:find("[^ \t\r\n]", pos) or #s + 1
  end
  local value
  local function str()
    pos = pos + 1
    local out = {}
    while true do
      local c = s:sub(pos, pos)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = pos + 1; break end
      if c:byte() < 0x20 then fail("raw control character in string") end
      if c == "\\" then
        local e = s:sub(pos + 1, pos + 1)
        local simple = ({['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f",
                         n = "\n", r = "\r", t = "\t"})[e]
        if simple then
          out[#out + 1] = simple
          pos = pos + 2
        elseif e == "u" then
          local hex = s:match("^%x%x%x%x", pos + 2) or fail("bad \\u escape")
          local cp = tonumber(hex, 16)
          pos = pos + 6
          if cp >= 0xD800 and cp <= 0xDBFF then
            local lo = s:match("^\\u(%x%x%x%x)", pos) or fail("lone surrogate")
            cp = 0x10000 + (cp - 0xD800) * 0x400 + (tonumber(lo, 16) - 0xDC00)
            pos = pos + 6
          end
          out[#out + 1] = utf8.char(cp)
        else
          fail("bad escape")
        end
      else
        out[#out + 1] = c
        pos = pos + 1
      end
    end
    return table.concat(out)
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      pos = pos + 1
      local t = {}
      ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1; return t end
      while true do
        ws()
        if s:sub(pos, pos) ~= '"' then fail("key expected") end
        local k = str()
        ws()
        if s:sub(pos, pos) ~= ":" then fail("':' expected") end
        pos = pos + 1
        t[k] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return t end
        if d ~= "," then fail("',' or '}' expected") end
      end
    elseif c == "[" then
      pos = pos + 1
      local t = setmetatable({}, {__name = "array"})
      ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1; return t end
      while true do
        t[#t + 1] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return t end
        if d ~= "," then fail("',' or ']' expected") end
      end
    elseif c == '"' then
      return str()
    elseif s:match("^true", pos) then
      pos = pos + 4; return true
    elseif s:match("^false", pos) then
      pos = pos + 5; return false
    elseif s:match("^null", pos) then
      pos = pos + 4; return nil
    else
      local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos) or fail("value expected")
      pos = pos + #num
      return math.tointeger(tonumber(num)) or tonumber(num) or fail("bad number")
    end
  end
  local v = value()
  ws()
  if pos <= #s then fail("trailing data") end
  return v
end

return json_decode
