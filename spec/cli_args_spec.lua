-- spec/cli_args_spec.lua - the CLI's grammar comes from lua-argparse (help per
-- command, argparse's errors with our exit status 3), and its --json output
-- is valid JSON that an independent decoder (lua-cjson) reads back to the
-- report's own fields, also for paths that are not valid UTF-8 (issue 11).

local ih = require "imagehealth"
local cjson = require "cjson"
local args = require "imagehealth.cli.args"
local F = require "support.fixtures"
local H = require "support.restore_helpers"
local q = F.q
local run = H.run_cli

-- lua-cjson's null, arrays as plain tables
local function decode(s)
  local ok, v = pcall(cjson.decode, s)
  assert(ok, "not JSON: " .. tostring(v) .. "\n" .. s)
  return v
end

local T, healthy, damaged

lazy_setup(function()
  T = F.tmpdir("ihargs")
  healthy = F.image("LZX")
  damaged = F.fresh("LZX")
  F.damage_file_data(damaged, "/data/text.txt")
end)

local function words(s)
  return (s:gsub("%s+", " "))
end

describe("the CLI's grammar (lua-argparse)", function()
  it("is built by argparse", function()
    assert.is_table(package.loaded.argparse)
    assert.matches("^0%.", package.loaded.argparse.version)
  end)

  it("COMMAND --help lists exactly that command's options", function()
    local want = {
      info = {"--index N", "--threads N", "--state-dir DIR", "--json", "--reference REF"},
      check = {"--scan", "--deep", "--index N", "--threads N", "--state-dir DIR", "--json",
               "--progress", "--no-progress", "--reference REF", "--case-insensitive",
               "--http-ca-file F"},
      restore = {"--source S", "--limit-access", "--no-policy", "--path-map WIN=DIR", "--rebuild",
                 "--dry-run", "--use-record", "--no-reference-source", "--http-ca-file F",
                 "--http-header H", "--http-retries N", "--http-whole-file-max BYTES", "--json"},
      seal = {"--reference REF", "--output FILE", "--http-ca-file F"},
    }
    local not_for = {info = {"--scan", "--source"}, check = {"--source", "--output"},
                     restore = {"--scan", "--deep", "--output"}, seal = {"--scan", "--source"}}
    for cmd, flags in pairs(want) do
      local code, out, err = run(cmd .. " --help")
      assert.equal(0, code, cmd)
      assert.equal("", err)
      assert.matches("^Usage: imagehealth " .. cmd .. " ", out)
      -- argparse's own wording for its -h
      assert.matches("%-h, %-%-help%s+Show this help message and exit%.", out)
      for _, flag in ipairs(flags) do
        assert.matches("\n%s+" .. flag:gsub("%p", "%%%0"), out, nil, cmd .. " " .. flag)
      end
      for _, flag in ipairs(not_for[cmd]) do
        assert.is_nil(out:find("\n%s+" .. flag:gsub("%p", "%%%0")), cmd .. " " .. flag)
      end
    end
  end)

  it("--help names every command; --version", function()
    local code, out = run("--help")
    assert.equal(0, code)
    for _, cmd in ipairs{"info", "check", "restore", "seal"} do
      assert.matches("\n%s+" .. cmd .. "%s+%u", out)
    end
    assert.matches("imagehealth COMMAND --help", out, 1, true)
    code, out = run("-V")
    assert.equal(0, code)
    assert.equal("imagehealth " .. ih.version .. "\n", out)
  end)

  it("usage errors: argparse's message, the command, a hint, exit 3", function()
    local cases = {
      {"check " .. q(healthy) .. " --bogus", "check: unknown option '--bogus'"},
      {"check " .. q(healthy) .. " --scna", "check: unknown option '--scna'\nDid you mean '--scan'?"},
      {"check " .. q(healthy) .. " --index", "check: option '--index' requires an argument"},
      {"check", "check: missing argument 'IMAGE|DIR'"},
      {"info a b", "info: too many arguments"},
      {"fsck x", "unknown command 'fsck'"},
      {"check " .. q(healthy) .. " --source x", "check: option '--source' is for 'restore' only"},
      {"restore x --dry-run --rebuild",
       "restore: option '--rebuild' can not be used together with option '--dry-run'"},
      {"restore x --limit-access=yes", "restore: option '--limit-access' does not take arguments"},
      {"restore x --http-retries=-1", "restore: --http-retries needs a non-negative integer"},
    }
    for _, c in ipairs(cases) do
      local code, out, err = run(c[1])
      assert.equal(3, code, c[1])
      assert.equal("", out, c[1])
      assert.equal("imagehealth: " .. c[2], err:sub(1, #c[2] + 13), c[1])
      local cmd = c[2]:match("^(%l+): ")
      assert.matches("\nTry 'imagehealth " .. (cmd and (cmd .. " ") or "") .. "%-%-help' for more "
        .. "information%.\n$", err, nil, c[1])
    end
  end)

  it("shapes the values: order kept, integers, pairs, the http table", function()
    local o = assert(args.parse({"restore", "--source=a", "img", "--source", "b", "--path-map",
      "C:\\S=/mnt/s", "--http-header", "X-A: 1", "--http-retries", "2", "--http-stall-timeout",
      "0.5", "--http-netrc", "--index", "3", "--json"}, error))
    assert.equal("restore", o.command)
    assert.equal("img", o.image)
    assert.same({"a", "b"}, o.sources)
    assert.same({{"C:\\S", "/mnt/s"}}, o.path_map)
    assert.same({headers = {"X-A: 1"}, retries = 2, stall_timeout = 0.5, netrc = true}, o.http)
    assert.equal(3, o.index)
    assert.equal("integer", math.type(o.index))
    assert.is_true(o.json)
    o = assert(args.parse({"check", "--json", "img", "--scan"}, error))
    assert.same({"check", "img", true, true}, {o.command, o.image, o.json, o.scan})
    assert.is_nil(o.http)
    assert.is_nil(o.sources)
    local bad, msg, cmd = args.parse({"check", "img", "--threads", "0"}, error)
    assert.is_nil(bad)
    assert.equal("--threads needs a positive integer, not '0'", msg)
    assert.equal("check", cmd)
  end)
end)

describe("the CLI's --json (dkjson), read back by lua-cjson", function()
  it("check --json equals the report's fields", function()
    local code, out = run("check --scan --json " .. q(damaged))
    assert.equal(1, code)
    local v = decode(out)
    local s <close> = assert(ih.open(damaged))
    local state, r = s:check_health{scan = true}
    assert.equal(state, v.state)
    for _, k in ipairs{"image", "index", "state", "health", "scanned", "blobs_checked",
                       "bytes_checked", "scan_kind"} do
      assert.equal(r[k], v[k], k)
    end
    assert.equal(#r.damaged, #v.damaged)
    assert.equal(1, #v.damaged)
    for i, d in ipairs(r.damaged) do
      local j = v.damaged[i]
      for _, k in ipairs{"sha1", "size", "reason", "part", "offset", "stored_size"} do
        assert.equal(d[k], j[k], k)
      end
      assert.same(d.paths, j.paths)
      assert.same(d.images, j.images)
    end
    assert.same({}, v.problems)
  end)

  it("info --json equals the info table, and is the same bytes on every run", function()
    local code, out = run("info --json " .. q(healthy))
    assert.equal(0, code)
    local v = decode(out)
    local s <close> = assert(ih.open(healthy))
    local info = assert(s:info())
    assert.equal(info.path, v.image)
    for _, k in ipairs{"guid", "compression", "chunk_size", "image_count", "blob_count",
                       "file_size", "has_integrity"} do
      assert.equal(info[k], v[k], k)
    end
    for i, im in ipairs(info.images) do
      for _, k in ipairs{"index", "name", "file_count", "dir_count", "blob_count",
                         "total_bytes"} do
        assert.equal(im[k], v.images[i][k], k)
      end
    end
    -- keys sorted: a fresh process (another hash seed) prints the same bytes
    for _ = 1, 3 do
      assert.equal(out, select(2, run("info --json " .. q(healthy))))
    end
    local keys = {}
    for k in out:sub(2, out:find('"images"') - 1):gmatch('"([%w_]+)":') do
      keys[#keys + 1] = k
    end
    local sorted = {table.unpack(keys)}
    table.sort(sorted)
    assert.is_true(#keys > 8)
    assert.same(sorted, keys)
  end)

  it("a path that is not valid UTF-8 still gives valid JSON (U+FFFD)", function()
    local odd = T .. "/caf\233-\255.wim" -- Latin-1 é and a stray byte
    F.sh("cp " .. q(healthy) .. " " .. q(odd))
    local code, out = run("check --json " .. q(odd))
    assert.equal(0, code)
    assert.is_truthy(utf8.len(out), "output is not UTF-8")
    assert.equal(T .. "/caf\u{FFFD}-\u{FFFD}.wim", decode(out).image)
    -- an applied tree whose extra file has such a name
    local dir = T .. "/applied"
    F.sh("mkdir -p " .. q(dir) .. " && wimlib-imagex apply " .. q(healthy) .. " 1 " .. q(dir)
      .. " >/dev/null && echo x > " .. q(dir .. "/odd\255name"))
    code, out = run("check " .. q(dir) .. " --reference " .. q("wim:" .. healthy .. ":1")
      .. " --json")
    assert.equal(0, code, out)
    assert.is_truthy(utf8.len(out), "output is not UTF-8")
    assert.same({"/odd\u{FFFD}name"}, decode(out).extra)
  end)
end)
