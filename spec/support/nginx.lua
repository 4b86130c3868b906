-- spec/support/nginx.lua - a real nginx on a loopback port, owned by the
-- spec that starts it: its config, port, logs and lifetime.
--
--   local N = require "support.nginx"
--   local srv = N.start(root, {https = true})   -- serves root/ (and over TLS)
--   srv.url .. "/x.wim", srv.https_url, srv.ca (the test CA's certificate)
--   N.log(srv) -> list of {status=, bytes=, range=, protocol=, connection=, uri=}
--                 since the last N.log
--   N.stop(srv)
--
-- nginx runs under `timeout`, so it goes away by itself even if the spec
-- dies; N.stop ends it (by the pid it wrote) and waits for it.

local F = require "support.fixtures"
local q = F.q

local N = {}

-- A test CA and a server certificate for 127.0.0.1, signed by it.
function N.make_ca(dir)
  F.sh(string.format([[cd %s &&
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=imagehealth-test-ca 2>/dev/null &&
    openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null &&
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >srv.ext &&
    openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile srv.ext 2>/dev/null]],
    q(dir)))
  return {ca = dir .. "/ca.pem", cert = dir .. "/srv.pem", key = dir .. "/srv.key"}
end

local CONF = [[
worker_processes 1;
daemon off;
pid %s/nginx.pid;
error_log %s/error.log;
%s
events { worker_connections 128; }
http {
  log_format ih '$status $body_bytes_sent "$http_range" $server_protocol $connection "$http_x_imagehealth_test|$http_x_other" $uri';
  access_log %s/access.log ih;
  client_body_temp_path %s/tmp;
  proxy_temp_path %s/tmp;
  fastcgi_temp_path %s/tmp;
  uwsgi_temp_path %s/tmp;
  scgi_temp_path %s/tmp;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:%d;
    root %s;
  }
  %s
}
]]

local TLS = [[
  server {
    listen 127.0.0.1:%d ssl http2;
    ssl_certificate %s;
    ssl_certificate_key %s;
    root %s;
    location /tohttp/ { rewrite ^/tohttp/(.*)$ http://127.0.0.1:%d/$1 redirect; }
  }
]]

local function running(pidfile)
  local f = io.open(pidfile)
  if not f then return false end
  f:close()
  return true
end

-- Starts nginx serving root.  opts.https: also over TLS with a test CA.
function N.start(root, opts)
  opts = opts or {}
  local dir = F.tmpdir("ihnginx")
  F.sh("mkdir -p " .. q(dir .. "/tmp"))
  local tls = opts.https and N.make_ca(dir) or nil
  local user = (F.sh("id -u"):match("^0") and "user root;") or ""
  for _ = 1, 20 do
    local port = math.random(20000, 60000)
    local https_port = port + 1
    local conf = string.format(CONF, dir, dir, user, dir, dir, dir, dir, dir, dir, port, root,
      tls and string.format(TLS, https_port, tls.cert, tls.key, root, port) or "")
    F.write_file(dir .. "/nginx.conf", conf)
    os.remove(dir .. "/error.log")
    os.execute(string.format("LD_PRELOAD= timeout 300 nginx -c %s -e %s >/dev/null 2>&1 </dev/null &",
      q(dir .. "/nginx.conf"), q(dir .. "/error.log")))
    -- up when it answers (or failed to bind: try another port)
    for _ = 1, 100 do
      if F.run(string.format("LD_PRELOAD= curl -s -o /dev/null http://127.0.0.1:%d/", port)) then
        local srv = {dir = dir, port = port, url = "http://127.0.0.1:" .. port, root = root,
                     log_seen = 0}
        if tls then
          srv.https_url = "https://127.0.0.1:" .. https_port
          srv.ca = tls.ca
        end
        return srv
      end
      local err = F.exists(dir .. "/error.log") and F.read_file(dir .. "/error.log") or ""
      if err:find("Address already in use", 1, true) then break end
      F.run("sleep 0.05")
    end
    N.stop({dir = dir})
  end
  error("nginx did not start:\n" .. (F.exists(dir .. "/error.log") and F.read_file(dir .. "/error.log") or ""))
end

-- The access log lines since the last call.
function N.log(srv)
  local path = srv.dir .. "/access.log"
  local lines = {}
  if not F.exists(path) then return lines end
  local all = F.read_file(path)
  local i = 0
  for status, bytes, range, proto, conn, test_hdrs, uri in
      all:gmatch('(%d+) (%d+) "([^"]*)" (%S+) (%d+) "([^"]*)" ([^\n]*)\n') do
    i = i + 1
    if i > srv.log_seen then
      -- test_headers: the X-Imagehealth-Test and X-Other headers the request carried
      lines[#lines + 1] = {status = tonumber(status), bytes = tonumber(bytes), range = range,
                           protocol = proto, connection = tonumber(conn), uri = uri,
                           test_headers = test_hdrs}
    end
  end
  srv.log_seen = i
  return lines
end

function N.stop(srv)
  local pidfile = srv.dir .. "/nginx.pid"
  if running(pidfile) then
    local pid = F.read_file(pidfile):match("%d+")
    if pid then
      os.execute("kill -TERM " .. pid .. " 2>/dev/null")
      for _ = 1, 100 do
        if not F.run("kill -0 " .. pid .. " 2>/dev/null") then break end
        F.run("sleep 0.02")
      end
    end
  end
end

return N
