-- spec/http_spec.lua - remote sources: a real nginx on a loopback port
-- (spec/support/nginx.lua) serves pristine images; damaged copies are
-- repaired from it for every compression, a split set and solid ESDs, then
-- `wimlib-imagex verify`, `7z t` and a byte-for-byte extract agree.  nginx's
-- access log shows what was downloaded: only 206 answers, and the bytes
-- the report counts.  One spec runs over https with a test CA.  The
-- server misbehaviours are played by tests/tools/faultsrv (tests/test_http.c).

local ih = require "imagehealth"
local F = require "support.fixtures"
local H = require "support.restore_helpers"
local N = require "support.nginx"
local q = F.q

local tree, www, srv

lazy_setup(function()
  tree = F.tree()
  www = F.tmpdir("ihwww")
  for _, kind in ipairs{"none", "XPRESS", "LZX", "LZMS", "solid_small", "split"} do
    for _, p in ipairs(F.parts(F.image(kind))) do
      F.sh(string.format("ln -sf %s %s/", q(p), q(www)))
    end
  end
  srv = N.start(www, {https = true})
end)

lazy_teardown(function()
  if srv then N.stop(srv) end
end)

local function fresh(kind)
  local src = F.image(kind)
  return F.copy(src, F.tmpdir(kind) .. "/" .. F.basename(src))
end

local function restore(img, opts)
  local s <close> = assert(ih.open(img, {state_dir = F.tmpdir("state")}))
  opts.default_sources_file = opts.default_sources_file or "/nonexistent"
  return s:restore_health(opts)
end

local function assert_pristine(img, label)
  H.assert_pristine(img, tree.dir, label)
end

local function file_size_all(kind)
  local n = 0
  for _, p in ipairs(F.parts(F.image(kind))) do n = n + F.file_size(p) end
  return n
end

describe("restore_health from nginx", function()
  -- The solid ESD is "solid_small" (128 KiB solid chunks): with wimlib's
  -- default 64 MiB chunk the whole image is one chunk, so damage anywhere
  -- fails every blob and each is decoded from that chunk again (14 s here,
  -- from a local source as much: the reader's cost, not the download's).
  local CASES = {
    {"none", 3}, {"XPRESS", 3}, {"LZX", 3}, {"LZMS", 3},
    {"solid_small", 5}, {"split", 4},
  }
  for _, case in ipairs(CASES) do
    local kind, max_trips = case[1], case[2]
    it(string.format("repairs a damaged %s image, fetching only what it needs", kind), function()
      local img = fresh(kind)
      local dmg = F.damage_file_data(img, tree.text)
      assert.is_false((F.verify(img)))
      N.log(srv)
      local url = srv.url .. "/" .. F.basename(F.image(kind))
      local state, r = restore(img, {sources = {url}})
      assert.equal("healthy", state, tostring(r))
      for _, sha1 in ipairs(dmg.sha1s) do
        local found
        for _, rp in ipairs(r.repaired) do found = found or rp.sha1 == sha1 end
        assert.is_true(found, "not repaired: " .. sha1)
      end
      local s1 = r.sources[1]
      assert.equal(url, s1.spec)
      assert.equal("http", s1.kind)
      assert.is_true(s1.usable)
      assert.equal(#r.repaired, s1.blobs_used)
      assert.equal(0, s1.failures)
      assert.equal(0, s1.retries)
      assert.is_true(s1.round_trips <= max_trips, "round trips: " .. s1.round_trips)
      -- nginx saw exactly the requests and bytes the report counts, all 206
      local log = N.log(srv)
      local bytes = 0
      for _, l in ipairs(log) do
        assert.equal(206, l.status, l.uri .. " " .. l.range)
        bytes = bytes + l.bytes
      end
      assert.equal(s1.requests, #log)
      assert.equal(s1.bytes_fetched, bytes)
      -- less than the whole image
      assert.is_true(bytes < file_size_all(kind) * 0.9,
        string.format("%d bytes fetched of %d", bytes, file_size_all(kind)))
      assert_pristine(img, kind)
    end)
  end

  it("fetches only the solid chunks that hold the damaged blobs", function()
    -- 128 KiB solid chunks: a damaged chunk fails every blob in it, and
    -- each of them needs the chunks that hold it, nothing else
    local img = fresh("solid_small")
    F.damage_file_data(img, "/hello.txt")
    local pristine = F.image("solid_small")
    local info = F.wiminfo(pristine)
    N.log(srv)
    local state, r = restore(img, {sources = {srv.url .. "/solid_small.esd"}})
    assert.equal("healthy", state, tostring(r))
    -- the chunks the repaired blobs lie in, by the fixture's own reader
    local need, tables, all = {}, 0, 0
    for _, group in ipairs(info.solid_groups) do
      local base = 0
      for _, res in ipairs(group.resources) do
        local c = F.chunks(pristine, res)
        tables = tables + 16 + 4 * c.nchunks
        all = all + c.nchunks
        for _, rp in ipairs(r.repaired) do
          local e = info.by_sha1[rp.sha1]
          local lo, hi = e.offset - base, e.offset + e.blob_size - base
          for i = 1, c.nchunks do
            local clo = (i - 1) * c.chunk_size
            if clo < hi and clo + c.chunk_size > lo then
              need[c.data_offset + c.offsets[i]] = c.sizes[i]
            end
          end
        end
        base = base + c.original_size
      end
    end
    local chunk_bytes, nneed = 0, 0
    for _, n in pairs(need) do chunk_bytes, nneed = chunk_bytes + n, nneed + 1 end
    assert.is_true(nneed < all, nneed .. " of " .. all .. " chunks needed")
    local min = 208 + info.blob_table.size + info.xml.size + tables + chunk_bytes
    local got = r.sources[1].bytes_fetched
    assert.is_true(got >= chunk_bytes, got .. " < " .. chunk_bytes)
    assert.is_true(got <= min * 1.05 + 4096 * r.sources[1].requests,
      string.format("fetched %d, minimum %d (chunks %d)", got, min, chunk_bytes))
    assert_pristine(img, "solid_small")
  end)

  it("repairs over https with a test CA; verification is on by default", function()
    local img = fresh("LZX")
    F.damage_file_data(img, tree.text)
    local url = srv.https_url .. "/LZX.wim"
    -- not trusted without the CA
    local state, r = restore(img, {sources = {url}})
    assert.equal("repairable", state, tostring(r))
    assert.equal("unusable", r.sources[1].status)
    assert.equal("download_failed", r.unrepaired[1].code)
    assert.equal(0x800F0906, r.unrepaired[1].hresult)
    -- trusted with it; HTTP/2, every request on one connection
    N.log(srv)
    state, r = restore(img, {sources = {url}, http = {ca_file = srv.ca,
      headers = {["X-Imagehealth-Test"] = "map form", "X-Other: list form"}}})
    assert.equal("healthy", state, tostring(r))
    assert.equal(1, r.sources[1].blobs_used)
    local log, conns = N.log(srv), {}
    assert.equal(r.sources[1].requests, #log)
    for _, e in ipairs(log) do -- both forms of header reached the server
      assert.equal("map form|list form", e.test_headers)
    end
    for _, l in ipairs(log) do
      assert.equal("HTTP/2.0", l.protocol)
      assert.equal(206, l.status)
      conns[l.connection] = true
    end
    assert.equal(1, #F.keys(conns))
    assert_pristine(img, "https")
  end)

  it("never follows a redirect from https to http", function()
    local img = fresh("LZX")
    F.damage_file_data(img, tree.text)
    local state, r = restore(img, {sources = {srv.https_url .. "/tohttp/LZX.wim"},
                                   http = {ca_file = srv.ca}})
    assert.equal("repairable", state, tostring(r))
    assert.matches("refused scheme", r.sources[1].error)
  end)

  it("asks the default repair server last, and never with limit_access", function()
    local img = fresh("LZX")
    F.damage_file_data(img, tree.text)
    local list = F.tmpname(".list")
    F.write_file(list, "# lab mirror\n" .. srv.url .. "/LZX.wim\n")
    local state, r = restore(img, {limit_access = true, default_sources_file = list})
    assert.equal("repairable", state, tostring(r))
    assert.equal(0, #r.sources)
    assert.equal("policy_disallowed", r.unrepaired[1].code)
    assert.equal(0x800F0907, r.unrepaired[1].hresult)
    state, r = restore(img, {default_sources_file = list})
    assert.equal("healthy", state, tostring(r))
    assert.equal("default", r.sources[1].origin)
    assert_pristine(img, "default server")
  end)
end)

describe("remote source options", function()
  it("are checked: unknown keys, wrong types, header line breaks raise", function()
    local img = fresh("LZX")
    local s <close> = assert(ih.open(img, {state_dir = F.tmpdir("state")}))
    for _, case in ipairs{
      {{bogus = 1}, "unknown key bogus"},
      {{retries = "x"}, "integer expected"},
      {{stall_timeout = -1}, "a number >= 0 expected"},
      {{netrc = 3}, "boolean or file name expected"},
      {{headers = {"X-A: 1\r\nX-B: 2"}}, "line break"},
      {{headers = "Authorization: x"}, "table expected"},
    } do
      local ok, err = pcall(s.restore_health, s, {sources = {srv.url .. "/LZX.wim"}, http = case[1],
                                                  default_sources_file = "/nonexistent"})
      assert.is_false(ok)
      assert.matches(case[2], tostring(err), 1, true)
    end
  end)
end)

describe("imagehealth restore --source URL", function()
  it("repairs from a URL, reports the remote figures, and never prints a credential", function()
    local img = fresh("LZX")
    F.damage_file_data(img, tree.text)
    local url = srv.url:gsub("^http://", "http://ih:pAssw0rd@") .. "/LZX.wim?sig=t0ken"
    local code, out, err = H.run_cli(string.format("restore %s --source %s --http-header %s --json",
      q(img), q(url), q("Authorization: Bearer s3cr3t")), {env = "IMAGEHEALTH_REPAIR_SOURCES="})
    assert.equal(0, code, err)
    for _, secret in ipairs{"pAssw0rd", "t0ken", "s3cr3t"} do
      assert.is_nil(out:find(secret, 1, true), secret)
      assert.is_nil(err:find(secret, 1, true), secret)
    end
    local r = H.json_decode(out)
    assert.equal("http", r.sources[1].kind)
    assert.equal(srv.url .. "/LZX.wim?...", r.sources[1].spec)
    assert.is_true(r.sources[1].requests >= 3)
    assert.equal(3, r.sources[1].round_trips)
    assert.is_true(F.verify(img))
  end)

  it("says why the repair server was not asked with --limit-access", function()
    local img = fresh("LZX")
    F.damage_file_data(img, tree.text)
    local env = "IMAGEHEALTH_REPAIR_SOURCES=" .. q(srv.url .. "/LZX.wim")
    local code, out = H.run_cli(string.format("restore %s --limit-access --no-policy", q(img)),
      {env = env})
    assert.equal(1, code, out)
    assert.matches("0x800F0907", out, 1, true)
    assert.matches("not asked", out, 1, true)
    -- without it, the repair server repairs
    code, out = H.run_cli(string.format("restore %s --no-policy --json", q(img)), {env = env})
    assert.equal(0, code, out)
    local r = H.json_decode(out)
    assert.equal("default", r.sources[1].origin)
  end)
end)
