// Perseus's server for one Gryadka node: a proposer of the gryadka package (Cache,
// AcceptorClient, Proposer; quorum: a majority of the acceptors), served to Perseus's client
// over a small subset of the Redis protocol (RESP2). One request at a time per connection,
// answered in order.
//
//   AUTH password          when PERSEUS_SECRET is set, before anything else
//   PING                   +PONG
//   INFO                   the versions: gryadka, the local Redis, Node.js
//   GET key                a read through the proposer: the value, or a null bulk string
//   SET key value          a blind write through the proposer
//   CAS key expected new   writes new only if the key holds expected ("": if it is absent)
//
// Gryadka's own answers: "NO" (the change certainly did not take effect) is sent as
// `-NO …`, "UNKNOWN" (it may have) as `-UNKNOWN …`, a failed compare as `-CASFAILED …`.
//
// Usage: node server.js --id N --listen ADDR:PORT --acceptors A:P,A:P,A:P --local I
// (NODE_PATH names the node_modules the gryadka package is installed in; PERSEUS_SECRET, if
// set, is the password of the acceptors' Redis servers and of this server.)
"use strict";

const net = require("net");
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const redis = require("redis");
// Requiring it promisifies the Redis client, as the package's own acceptors expect.
require("gryadka/src/utils/redisAsyncClient");
const { Cache } = require("gryadka/src/Cache");
const { AcceptorClient } = require("gryadka/src/AcceptorClient");
const { Proposer } = require("gryadka/src/Proposer");

const MAX_ARGS = 8;
const MAX_BULK = 1 << 20;

function args() {
  const out = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i + 1 < argv.length; i += 2) {
    out[argv[i].replace(/^--/, "")] = argv[i + 1];
  }
  for (const k of ["id", "listen", "acceptors", "local"]) {
    if (out[k] === undefined) {
      console.error(`server.js: --${k} is missing`);
      process.exit(2);
    }
  }
  return out;
}

function hostPort(text) {
  const i = text.lastIndexOf(":");
  return { host: text.slice(0, i), port: parseInt(text.slice(i + 1), 10) };
}

const opts = args();
const secret = process.env.PERSEUS_SECRET || null;
const packageDir = path.dirname(require.resolve("gryadka/package.json"));
const version = JSON.parse(fs.readFileSync(path.join(packageDir, "package.json"))).version;
const scripts = {};
for (const name of ["accept", "prepare"]) {
  const text = fs.readFileSync(path.join(packageDir, "src", "lua", name + ".lua"), "utf8");
  scripts[name] = { text, sha: crypto.createHash("sha1").update(text).digest("hex") };
}

// A Redis client as the package's own (a reconnection every 2 s), with the lab's password.
function redisClient(addr) {
  const options = { host: addr.host, port: addr.port, retry_strategy: () => 2000 };
  if (secret) options.password = secret;
  return redis.createClient(options);
}

const acceptorAddrs = opts.acceptors.split(",").map(hostPort);
const acceptors = acceptorAddrs.map((addr) => {
  const a = new AcceptorClient({
    storage: addr,
    accept: scripts.accept.sha,
    prepare: scripts.prepare.sha,
    isTransient: false,
  });
  a.redis = redisClient(addr);
  a.redis.on("error", () => {}); // a lost acceptor is a failed vote, not a crash
  return a;
});
const majority = Math.floor(acceptors.length / 2) + 1;
const proposer = new Proposer(new Cache(parseInt(opts.id, 10)), acceptors, {
  read: majority,
  write: majority,
});
let redisVersion = "unknown";

// The node's own acceptor gets the scripts (Redis keeps them in memory only), again after
// every reconnection, so a restarted Redis has them before it votes.
const local = acceptors[parseInt(opts.local, 10)].redis;
local.on("ready", () => {
  for (const s of Object.values(scripts)) {
    local.send_command("SCRIPT", ["LOAD", s.text], (err) => {
      if (err) console.error(`SCRIPT LOAD: ${err.message}`);
    });
  }
  local.send_command("INFO", ["server"], (err, info) => {
    const m = !err && /redis_version:([^\r\n]+)/.exec(info);
    if (m) redisVersion = m[1];
  });
});

class Refusal {
  constructor(code, details) {
    this.code = code;
    this.details = details;
  }
}

function detail(d) {
  let text;
  try {
    text = JSON.stringify(d);
  } catch (e) {
    text = String(d);
  }
  return (text || "").replace(/[\r\n]/g, " ").slice(0, 200);
}

async function change(key, fn) {
  const r = await proposer.changeQuery(key, fn, (x) => x, null);
  if (r.status === "OK") return r.details;
  if (r.details && r.details.isCASError) throw new Refusal("CASFAILED", "the key changed since it was read");
  throw new Refusal(r.status === "UNKNOWN" ? "UNKNOWN" : "NO", detail(r.details));
}

class CASError {
  constructor() {
    this.core = this;
    this.isCASError = true;
  }
  append() {
    return this;
  }
}

const bulk = (s) => (s === null || s === undefined ? "$-1\r\n" : `$${Buffer.byteLength(s)}\r\n${s}\r\n`);

async function execute(conn, argv) {
  const cmd = argv[0].toString("utf8").toUpperCase();
  const a = argv.slice(1).map((b) => b.toString("utf8"));
  if (cmd === "AUTH") {
    if (a.length !== 1) return "-ERR wrong number of arguments for 'auth'\r\n";
    if (secret === null || a[0] === secret) {
      conn.authed = true;
      return "+OK\r\n";
    }
    return "-WRONGPASS invalid password\r\n";
  }
  if (!conn.authed) return "-NOAUTH Authentication required.\r\n";
  try {
    switch (cmd) {
      case "PING":
        return "+PONG\r\n";
      case "INFO":
        return bulk(`gryadka_version:${version}\r\nredis_version:${redisVersion}\r\nnode_version:${process.version}\r\n`);
      case "GET":
        if (a.length !== 1) break;
        return bulk(await change(a[0], (x) => [x, null]));
      case "SET":
        if (a.length !== 2) break;
        await change(a[0], () => [a[1], null]);
        return "+OK\r\n";
      case "CAS": {
        if (a.length !== 3) break;
        const expected = a[1] === "" ? null : a[1];
        await change(a[0], (x) => (x === expected ? [a[2], null] : [x, new CASError()]));
        return "+OK\r\n";
      }
      default:
        return `-ERR unknown command '${cmd.slice(0, 32)}'\r\n`;
    }
    return `-ERR wrong number of arguments for '${cmd.toLowerCase()}'\r\n`;
  } catch (e) {
    if (e instanceof Refusal) return `-${e.code} ${e.details}\r\n`;
    return `-UNKNOWN ${detail(e && e.message)}\r\n`;
  }
}

// Parses one RESP2 array of bulk strings from buf at off: [argv, next offset], null if it is
// not all there yet; throws on anything else.
function parse(buf, off) {
  const line = (at) => {
    const end = buf.indexOf("\r\n", at);
    if (end < 0) {
      if (buf.length - at > 64) throw new Error("line too long");
      return null;
    }
    return [buf.toString("latin1", at, end), end + 2];
  };
  const head = line(off);
  if (!head) return null;
  const [h, afterHead] = head;
  const n = h[0] === "*" ? parseInt(h.slice(1), 10) : NaN;
  if (!(n >= 1 && n <= MAX_ARGS)) throw new Error("expected an array of 1 to 8 bulk strings");
  let at = afterHead;
  const argv = [];
  for (let i = 0; i < n; i++) {
    const l = line(at);
    if (!l) return null;
    const len = l[0][0] === "$" ? parseInt(l[0].slice(1), 10) : NaN;
    if (!(len >= 0 && len <= MAX_BULK)) throw new Error("expected a bulk string of at most 1 MiB");
    if (buf.length < l[1] + len + 2) return null;
    argv.push(buf.subarray(l[1], l[1] + len));
    at = l[1] + len + 2;
  }
  return [argv, at];
}

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  const conn = { authed: secret === null };
  let buf = Buffer.alloc(0);
  let chain = Promise.resolve();
  socket.on("data", (data) => {
    buf = buf.length ? Buffer.concat([buf, data]) : data;
    try {
      for (;;) {
        const p = parse(buf, 0);
        if (!p) break;
        buf = buf.subarray(p[1]);
        const argv = p[0];
        chain = chain
          .then(() => execute(conn, argv))
          .then((reply) => {
            if (!socket.destroyed) socket.write(reply);
          })
          .catch(() => socket.destroy()); // never reached: execute answers every error
      }
    } catch (e) {
      socket.end(`-ERR protocol: ${e.message}\r\n`);
    }
  });
  socket.on("error", () => {});
});

const listen = hostPort(opts.listen);
server.listen(listen.port, listen.host, () => {
  console.log(
    `gryadka ${version} proposer ${opts.id} on ${opts.listen}, acceptors ${opts.acceptors} (quorum ${majority}), node ${process.version}`
  );
});
