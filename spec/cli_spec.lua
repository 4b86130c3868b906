-- spec/cli_spec.lua - bin/imagehealth: commands, exit codes, --json output,
-- the progress bar, running from the checkout; plus the JSON encoder and the
-- rockspec it ships with.
--
-- Fixtures come from spec/support/fixtures.lua.

local ih = require "imagehealth"
local json = require "imagehealth.json"
local F = require "support.fixtures"
local q = F.q
local sh = F.sh
local read_file = F.read_file

------------------------------------------------------------------ helpers

local ROOT = F.root()
local CLI = ROOT .. "/bin/imagehealth"

local function read_cmd(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

local T -- temp dir

-- Runs the CLI with args (a string, already quoted); returns exit code,
-- stdout, stderr.  The state store goes to the temp dir.
local function run(args, opts)
  opts = opts or {}
  local out, err = T .. "/stdout", T .. "/stderr"
  local cmd = string.format("cd %s && XDG_STATE_HOME=%s %s %s %s >%s 2>%s </dev/null",
    q(opts.cwd or T), q(T .. "/xdg"), opts.env or "", opts.cli or q(CLI), args, q(out), q(err))
  local _, how, code = os.execute(cmd)
  assert(how == "exit", "CLI killed by a signal: " .. tostring(code))
  return code, read_file(out), read_file(err)
end

local json_decode = require "support.json_decode"

local function is_array(t)
  local mt = getmetatable(t)
  return mt and mt.__name == "array"
end

------------------------------------------------------------------ fixtures

local tree, healthy, damaged, dmg, damaged_utf8, utf8_path, broken, notwim

lazy_setup(function()
  T = F.tmpdir("ihcli")
  tree = F.tree()
  healthy = F.image("LZX")
  damaged = F.fresh("LZX")
  dmg = F.damage_file_data(damaged, "/data/text.txt")
  utf8_path = "/docs/\u{fc}n\u{ef}c\u{f6}de.txt"
  damaged_utf8 = F.fresh("LZX")
  F.damage_file_data(damaged_utf8, utf8_path)
  broken = F.fresh("LZX")
  F.damage_header(broken, "blob_table")
  notwim = T .. "/not-a.wim"
  sh("cp /etc/services " .. q(notwim))
end)

------------------------------------------------------------------ specs

describe("imagehealth CLI", function()
  it("prints help and version", function()
    local code, out, err = run("--help")
    assert.equal(0, code)
    assert.matches("^Usage: imagehealth", out)
    assert.matches("check IMAGE", out, 1, true)
    assert.matches("restore IMAGE", out, 1, true)
    assert.equal("", err)
    code, out = run("--version")
    assert.equal(0, code)
    assert.equal("imagehealth " .. ih.version .. "\n", out)
  end)

  it("exits 3 with a message on usage errors", function()
    for _, args in ipairs{"", "frobnicate x.wim", "check", "check " .. q(healthy) .. " --bogus",
                          "check " .. q(healthy) .. " --index", "check " .. q(healthy) .. " --index 0",
                          "check " .. q(healthy) .. " --threads x", "info a b"} do
      local code, out, err = run(args)
      assert.equal(3, code, args)
      assert.equal("", out, args)
      assert.matches("^imagehealth: ", err, nil, args)
    end
  end)

  it("info describes the image", function()
    local code, out = run("info " .. q(healthy))
    assert.equal(0, code)
    assert.matches(healthy, out, 1, true)
    assert.matches('"imagehealth-test"', out, 1, true)
    assert.matches("LZX", out, 1, true)
  end)

  it("info --json prints one JSON object", function()
    local code, out = run("info --json " .. q(healthy))
    assert.equal(0, code)
    local v = json_decode(out)
    assert.equal(healthy, v.image)
    assert.equal(1, v.image_count)
    assert.equal("LZX", v.compression)
    assert.equal(32, #v.guid)
    assert.is_true(is_array(v.images))
    assert.equal("imagehealth-test", v.images[1].name)
    assert.equal(tree.count + 1, v.images[1].file_count) -- and the symbolic link
    assert.is_true(v.images[1].metadata_ok)
  end)

  it("check: healthy image exits 0, without a progress bar when stderr is not a terminal", function()
    local code, out, err = run("check " .. q(healthy))
    assert.equal(0, code)
    assert.matches("^healthy: ", out)
    assert.matches("--scan", out, 1, true) -- suggests a full scan
    assert.equal("", err)
    code, out, err = run("check --scan " .. q(healthy))
    assert.equal(0, code)
    assert.matches("^healthy: no damage found; full scan of ", out)
    assert.equal("", err)
  end)

  it("check --scan: damaged image exits 1 and names the damaged file", function()
    local code, out, err = run("check --scan " .. q(damaged))
    assert.equal(1, code)
    assert.matches("^repairable: 1 damaged blob", out)
    assert.matches("State:    repairable (DISM 1)", out, 1, true)
    assert.matches(dmg.sha1, out, 1, true)
    assert.matches("\n  image 1:\n    /data/text.txt\n", out, 1, true)
    -- advice: the restore command, with a source
    assert.matches("`imagehealth restore " .. damaged .. " --source GOOD.wim`", out, 1, true)
    assert.equal("", err)
  end)

  it("check: a later quick check recalls the damage (exit 1)", function()
    local sd = q(T .. "/state-recall")
    assert.equal(1, (run("check --scan --state-dir " .. sd .. " " .. q(damaged))))
    local code, out = run("check --state-dir " .. sd .. " " .. q(damaged))
    assert.equal(1, code)
    assert.matches("/data/text.txt", out, 1, true)
  end)

  it("check --json: exactly one object matching the schema", function()
    local code, out, err = run("check --scan --json " .. q(damaged))
    assert.equal(1, code)
    assert.equal("", err)
    assert.matches("^{.*}\n$", out)
    local v = json_decode(out)
    assert.equal(damaged, v.image)
    assert.equal("repairable", v.state)
    assert.equal(1, v.health)
    assert.is_true(v.scanned)
    assert.equal(0, v.index)
    assert.is_true(is_array(v.damaged))
    assert.equal(1, #v.damaged)
    local d = v.damaged[1]
    assert.equal(dmg.sha1, d.sha1)
    assert.equal(tree.files["/data/text.txt"].size, d.size)
    assert.matches("^%x+$", d.sha1)
    assert.equal(40, #d.sha1)
    assert.equal("integer", math.type(d.size))
    assert.is_true(d.reason == "hash_mismatch" or d.reason == "decompression_failure")
    assert.same({1}, d.images)
    assert.same({"/data/text.txt"}, d.paths)
    assert.same(dmg.affected, d.paths)
    assert.is_true(is_array(v.problems))
    assert.is_number(v.seconds)
    assert.is_true(v.blobs_checked > 0)
    assert.is_true(v.bytes_checked > 0)
  end)

  it("check --json: healthy gives empty arrays, not objects", function()
    local code, out = run("check --scan --json " .. q(healthy))
    assert.equal(0, code)
    assert.matches('"damaged":[]', out, 1, true)
    assert.matches('"problems":[]', out, 1, true)
    local v = json_decode(out)
    assert.equal("healthy", v.state)
    assert.is_true(v.scanned)
  end)

  it("check --json: non-ASCII paths pass through as UTF-8", function()
    local code, out = run("check --scan --json " .. q(damaged_utf8))
    assert.equal(1, code)
    assert.matches('"' .. utf8_path .. '"', out, 1, true)
    assert.same({utf8_path}, json_decode(out).damaged[1].paths)
  end)

  it("check: unreadable structure exits 2 (nonrepairable)", function()
    local code, out = run("check " .. q(broken))
    assert.equal(2, code)
    assert.matches("^nonrepairable: ", out)
    assert.matches("Problems (", out, 1, true)
    code, out = run("check --json " .. q(broken))
    assert.equal(2, code)
    local v = json_decode(out)
    assert.equal("nonrepairable", v.state)
    assert.is_true(#v.problems >= 1)
    assert.equal("nonrepairable", v.problems[1].severity)
  end)

  it("checks an ESD and a split set, and one image of several", function()
    for _, kind in ipairs{"solid", "split"} do
      local code, out = run("check --scan " .. q(F.image(kind)))
      assert.equal(0, code, kind)
      assert.matches("^healthy: no damage found", out)
    end
    local code, out = run("info --json --index 2 " .. q(F.image("multi")))
    assert.equal(0, code)
    local v = json_decode(out)
    assert.equal(2, v.image_count)
    assert.equal(2, v.index)
    assert.equal(1, #v.images)
    assert.equal("second", v.images[1].name)
    code, out = run("check --scan --json --index 2 " .. q(F.image("multi")))
    assert.equal(0, code)
    assert.equal(2, json_decode(out).index)
  end)

  it("exits 3 with the error and its HRESULT on stderr", function()
    local code, out, err = run("check " .. q(T .. "/missing.wim"))
    assert.equal(3, code)
    assert.equal("", out)
    assert.matches("^imagehealth: not_found %(0x80070002%): ", err)
    code, out, err = run("check --json " .. q(notwim))
    assert.equal(3, code)
    assert.equal("", out)
    assert.matches("not_wim (0xC1420113)", err, 1, true)
    code, _, err = run("info --index 5 " .. q(healthy))
    assert.equal(3, code)
    assert.matches("bad_index (0xC0040005)", err, 1, true)
  end)

  it("--progress draws a bar on stderr even when it is not a terminal", function()
    local code, out, err = run("check --scan --progress " .. q(healthy))
    assert.equal(0, code)
    assert.matches("^healthy", out)
    assert.matches("\r", err, 1, true)
    assert.matches("%d+%.%d%%", err)
    assert.matches("MB/s", err, 1, true)
    assert.is_nil(out:find("\r", 1, true))
  end)

  it("draws the progress bar when stderr is a terminal", function()
    if not os.execute("command -v script >/dev/null 2>&1") then
      pending("script(1) is not available")
      return
    end
    -- script(1) gives the command a pseudo-terminal
    local inner = string.format("XDG_STATE_HOME=%s %s check --scan %s", q(T .. "/xdg"), q(CLI),
      q(healthy))
    local out = read_cmd(string.format("script -qec %s /dev/null </dev/null", q(inner)))
    assert.matches("\r", out, 1, true)
    assert.matches("%d+%.%d%%", out)
    assert.matches("healthy: no damage found", out, 1, true)
  end)

  it("runs from the checkout from any directory, and through a symlink", function()
    local env = "env -u LUA_PATH -u LUA_INIT -u LUA_INIT_5_4"
    local code, out = run("check " .. q(healthy), {cwd = "/", env = env})
    assert.equal(0, code)
    assert.matches("^healthy", out)
    sh("ln -sf " .. q(CLI) .. " " .. q(T .. "/ih-link"))
    code, out = run("--version", {cwd = "/", env = env, cli = q(T .. "/ih-link")})
    assert.equal(0, code)
    assert.matches("^imagehealth ", out)
  end)
end)

describe("imagehealth.json (on dkjson)", function()
  it("encodes scalars, arrays and objects (keys sorted)", function()
    assert.equal('null', json.encode(nil))
    assert.equal('true', json.encode(true))
    assert.equal('42', json.encode(42))
    assert.equal('-7', json.encode(-7))
    assert.equal('1.5', json.encode(1.5))
    assert.equal('2.0', json.encode(2.0))
    assert.equal('null', json.encode(0 / 0))
    assert.equal('null', json.encode(math.huge))
    assert.equal('[1,"a",false]', json.encode{1, "a", false})
    assert.equal('{"a":1,"b":[],"c":{}}', json.encode{c = {}, a = 1, b = json.array()})
    assert.equal('[null,2]', json.encode{json.null, 2})
  end)

  it("escapes quotes, backslashes and every control character", function()
    assert.equal([["a\"b\\c/d"]], json.encode('a"b\\c/d'))
    assert.equal([["\n\r\t\b\f\u0000\u001f\u007f"]], json.encode("\n\r\t\b\f\0\31\127"))
    for i = 0, 31 do
      local e = json.encode(string.char(i))
      assert.is_nil(e:find("%c"), "raw control char " .. i)
      assert.equal(string.char(i), json_decode(e))
    end
  end)

  it("passes UTF-8 through and replaces invalid bytes with U+FFFD", function()
    assert.equal('"caf\195\169 \226\130\172 \240\159\152\128"',
      json.encode("caf\195\169 \226\130\172 \240\159\152\128"))
    for raw, want in pairs{["a\255b"] = "a\u{FFFD}b", ["\195"] = "\u{FFFD}",
                           ["\237\160\128x"] = ("\u{FFFD}"):rep(3) .. "x"} do -- a surrogate: each byte
      local e = json.encode(raw)
      assert.is_truthy(utf8.len(e), e)
      assert.equal(want, json_decode(e))
    end
  end)

  it("round-trips through a decoder", function()
    local v = {image = "/x/y.wim", state = "repairable", scanned = true, seconds = 0.125,
               damaged = {{sha1 = string.rep("ab", 20), size = 123456789012, paths = {"/a b/\"c\""}}}}
    assert.same(v, json_decode(json.encode(v)))
    assert.same(v, json_decode(json.encode(v, {indent = "  "})))
  end)

  it("refuses values JSON cannot hold", function()
    assert.has_error(function() json.encode(print) end)
    local t = {}
    t.self = t
    assert.has_error(function() json.encode(t) end)
  end)
end)

describe("imagehealth-scm-1.rockspec", function()
  local function load_rockspec()
    local env = {}
    local chunk = assert(loadfile(ROOT .. "/imagehealth-scm-1.rockspec", "t", env))
    chunk()
    return env
  end

  it("builds the C module with the Makefile, which links the libraries", function()
    local spec = load_rockspec()
    assert.equal("imagehealth", spec.package)
    assert.equal("scm-1", spec.version)
    assert.equal("make", spec.build.type)
    local target = spec.build.build_target
    assert.equal("build/lua/imagehealth/core.so", target)
    assert.equal(target, spec.build.install.lib["imagehealth.core"])
    assert.is_false(spec.build.install_pass)
    local makefile = read_file(ROOT .. "/Makefile")
    assert.matches("wildcard src/core/*.c", makefile, 1, true)
    assert.matches("wildcard src/lua/*.c", makefile, 1, true)
    assert.matches("/lua/imagehealth/core.so:", makefile, 1, true)
    for _, lib in ipairs{"-lwim", "crypto", "-lhivex", "-lpthread"} do
      assert.matches(lib, makefile, 1, true)
    end
  end)

  it("declares the CLI's argparse and dkjson; the module itself loads neither", function()
    local spec = load_rockspec()
    local deps = table.concat(spec.dependencies, "\n")
    assert.matches("\nargparse >= ", deps)
    assert.matches("\ndkjson >= ", deps)
    -- a fresh interpreter: open, check, report to text; then see what was loaded
    local script = [[
      local ih = require "imagehealth"
      local s = assert(ih.open(IMG))
      local _, r = s:check_health{scan = true}
      assert(r:summary() and #r:lines() > 0 and tostring(r))
      for _, m in ipairs{"argparse", "dkjson", "cjson", "imagehealth.json", "imagehealth.cli"} do
        if package.loaded[m] then io.write(m, " ") end
      end
      io.write("done")
    ]]
    local out = read_cmd("lua5.4 -e " .. q(string.format("IMG = %q", damaged)) .. " -e " .. q(script)
      .. " 2>&1")
    assert.equal("done", out)
  end)

  it("installs every Lua module and the CLI", function()
    local spec = load_rockspec()
    local n = 0
    for file in read_cmd("cd " .. q(ROOT) .. " && find lua/imagehealth -name '*.lua'"):gmatch("[^\n]+") do
      n = n + 1
      local name = file:match("^lua/(.*)%.lua$"):gsub("/init$", ""):gsub("/", ".")
      assert.equal(file, spec.build.install.lua[name], name)
    end
    assert.is_true(n > 10)
    local listed = 0
    for _ in pairs(spec.build.install.lua) do
      listed = listed + 1
    end
    assert.equal(n, listed) -- and nothing that is not there
    assert.equal("bin/imagehealth", spec.build.install.bin.imagehealth)
  end)
end)
