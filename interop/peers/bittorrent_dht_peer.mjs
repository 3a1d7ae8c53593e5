#!/usr/bin/env node
// One webtorrent bittorrent-dht node for Xorro's interop tests, driven over stdin/stdout.
//
//   node bittorrent_dht_peer.mjs --bind 127.1.1.9:0 [--bootstrap 127.1.1.1:40000,...]
//
// The node binds one loopback address and contacts only the loopback nodes it is given:
// with no --bootstrap it is started with `bootstrap: false` (leaving `bootstrap` unset means
// bittorrent-dht's public routers). It prints one JSON line when it is up:
//
//   {"event": "ready", "impl": "bittorrent-dht", "version": "11.0.12", "addr": "ip:port",
//    "id": "<hex node id>"}
//
// then reads one JSON command a line on stdin and answers each with one JSON line on stdout,
// in order: {"ok": true, ...} or {"ok": false, "error": "..."}. Every command may carry
// "timeout" (seconds, default 20). Byte strings are hex unless said otherwise.
//
//   {"cmd": "add_nodes", "addrs": ["ip:port"], "lookup": true}
//       addNode for each (pings it, adds it when it answers), then with "lookup" a find_node
//       lookup for our own id (bittorrent-dht's own bootstrap). -> {}
//   {"cmd": "routing_table"}                -> {"nodes": [{"id": hex, "addr": "ip:port"}]}
//   {"cmd": "ping", "addr": "ip:port"}      -> {"id": hex}  (a direct KRPC ping)
//   {"cmd": "find_node", "addr": "ip:port", "target": hex}
//       a direct find_node query          -> {"id": hex, "nodes": [{"id", "addr"}]}
//   {"cmd": "lookup_nodes", "target": hex}
//       an iterative find_node lookup     -> {"closest": [{"id", "addr"}]}  (closest first)
//   {"cmd": "get_peers", "info_hash": hex} -> {"peers": ["ip:port"], "remote_peers": [...]}
//       (bittorrent-dht also reports the peers it stores itself; remote_peers came in replies)
//   {"cmd": "announce", "info_hash": hex, "port": n}   -> {"acked": n}
//   {"cmd": "put_immutable", "data": "text"}  (stored as the bencoded string)
//       -> {"target": hex, "success": n}
//   {"cmd": "get_immutable", "target": hex}  -> {"value": hex of the bencoded item | null}
//   {"cmd": "put_mutable", "seed": hex32, "key": hex32, "salt": "text", "data": "text",
//    "seq": n}                               -> {"target": hex, "success": n}
//   {"cmd": "get_mutable", "key": hex32, "salt": "text"}
//       -> {"value": hex | null, "seq": n, "signature": hex}
//   {"cmd": "traffic"}  -> {"sent": {"ip:port": {"q:ping": n, "r": n, ...}}, "received": {...},
//                           "refused_repeats": {"ip:port": n}}
//       (refused_repeats: errors sent for a mutable put of the very item it holds, see below)
//   {"cmd": "quit"}

import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import readline from 'node:readline'
import { parseArgs } from 'node:util'

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const log = (...a) => console.error(...a)

const pkgRoot = new URL('../js/node_modules/', import.meta.url)
let DHT, bencode, dhtVersion
try {
  DHT = (await import(new URL('bittorrent-dht/index.js', pkgRoot))).default
  bencode = (await import(new URL('bencode/index.js', pkgRoot))).default
  dhtVersion = JSON.parse(fs.readFileSync(new URL('bittorrent-dht/package.json', pkgRoot))).version
} catch (e) {
  out({ event: 'error', error: `cannot load bittorrent-dht from interop/js (${e.message}): run ./scripts/install-peers.sh` })
  process.exit(3)
}

const { values: args } = parseArgs({
  options: {
    bind: { type: 'string' },
    bootstrap: { type: 'string', default: '' }
  }
})

function loopback (addr) {
  const i = addr.lastIndexOf(':')
  const host = addr.slice(0, i)
  const port = Number(addr.slice(i + 1))
  if (!net.isIPv4(host) || !host.startsWith('127.')) throw new Error(`${addr} is not a loopback address`)
  return { host, port }
}

const bind = loopback(args.bind)
const bootstrap = args.bootstrap.split(',').filter(Boolean).map(loopback)

// ed25519 from a 32-byte seed via node:crypto (PKCS#8 / SPKI DER prefixes).
const signer = (seed) => {
  const key = crypto.createPrivateKey({
    key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]),
    format: 'der',
    type: 'pkcs8'
  })
  return (buf) => crypto.sign(null, buf, key)
}
const verify = (sig, buf, k) => {
  try {
    const key = crypto.createPublicKey({
      key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(k)]),
      format: 'der',
      type: 'spki'
    })
    return crypto.verify(null, buf, key, sig)
  } catch {
    return false
  }
}
const sha1 = (b) => crypto.createHash('sha1').update(b).digest()

// Never leave `bootstrap` unset: that means the public routers.
const dht = new DHT({
  bootstrap: bootstrap.length ? bootstrap.map((b) => `${b.host}:${b.port}`) : false,
  verify
})
dht.on('warning', (e) => log(`warning: ${e.message}`))
dht.on('error', (e) => log(`error: ${e.message}`))
// Bind before the first query leaves (bootstrap runs on the next tick).
dht.listen(bind.port, bind.host)

// Count what goes out and comes in, from the raw datagrams.
const sent = {}
const received = {}
const count = (table, ep, buf) => {
  let kind = '?'
  try {
    const m = bencode.decode(buf)
    const y = m.y ? Buffer.from(m.y).toString() : '?'
    kind = y === 'q' ? `q:${Buffer.from(m.q || '').toString()}` : y
  } catch {}
  const t = (table[ep] ||= {})
  t[kind] = (t[kind] || 0) + 1
}
const sock = dht._rpc.socket.socket
const origSend = sock.send.bind(sock)
// k-rpc-socket calls send(buf, offset, length, port, host, cb); a send made before the
// socket is bound is queued by node:dgram and replayed as send([buf], port, host, cb).
sock.send = (...args) => {
  const long = typeof args[3] === 'number'
  const [port, host] = long ? [args[3], args[4]] : [args[1], args[2]]
  const cb = args[args.length - 1]
  if (!host || !String(host).startsWith('127.')) {
    log(`refusing to send to non-loopback ${host}:${port}`)
    if (typeof cb === 'function') process.nextTick(cb, new Error('non-loopback destination'))
    return
  }
  let payload = long ? args[0].subarray(args[1], args[1] + args[2]) : args[0]
  if (Array.isArray(payload)) payload = Buffer.concat(payload)
  count(sent, `${host}:${port}`, payload)
  return origSend(...args)
}
sock.on('message', (buf, rinfo) => count(received, `${rinfo.address}:${rinfo.port}`, buf))

// bittorrent-dht refuses a mutable put whose seq equals the one it holds (302, "sequence
// number less than current"; 301 when the put carries a cas), even for the very item it
// holds, where BEP 44 says a node SHOULD take it and reset its timeout. A put sent again
// because its first answer was slow (or lost) meets exactly that. Such errors are counted
// apart, by the address they go to, so that a test can tell them from real refusals.
const refusedRepeats = {}
const rpcError = dht._rpc.error.bind(dht._rpc)
dht._rpc.error = (peer, query, err, ...rest) => {
  const a = query && query.a
  if (a && query.q && Buffer.from(query.q).toString() === 'put' && a.k && a.v !== undefined) {
    const key = dht._hash(a.salt ? Buffer.concat([a.k, a.salt]) : a.k).toString('hex')
    const held = dht._values.get(key)
    if (held && held.seq === a.seq && Buffer.compare(bencode.encode(held.v), bencode.encode(a.v)) === 0) {
      const ep = `${peer.address || peer.host}:${peer.port}`
      refusedRepeats[ep] = (refusedRepeats[ep] || 0) + 1
      log(`refused a repeat of the put it holds (seq ${a.seq}) from ${ep}: error ${err[0]}`)
    }
  }
  return rpcError(peer, query, err, ...rest)
}

await new Promise((resolve) => dht.listening ? resolve() : dht.once('listening', resolve))
await new Promise((resolve) => dht.ready ? resolve() : dht.once('ready', resolve))

const hex = (b) => (b ? Buffer.from(b).toString('hex') : null)
const toNode = (n) => ({ id: hex(n.id), addr: `${n.host}:${n.port}` })
const parseNodes = (buf) => {
  const nodes = []
  if (!buf) return nodes
  for (let i = 0; i + 26 <= buf.length; i += 26) {
    nodes.push({ id: hex(buf.subarray(i, i + 20)), addr: `${buf[i + 20]}.${buf[i + 21]}.${buf[i + 22]}.${buf[i + 23]}:${buf.readUInt16BE(i + 24)}` })
  }
  return nodes
}
const xor = (a, b) => Buffer.from(a.map((x, i) => x ^ b[i]))

function withTimeout (seconds, fn) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${seconds} s`)), seconds * 1000)
    fn((err, res) => {
      clearTimeout(timer)
      if (err) reject(err)
      else resolve(res)
    })
  })
}

const commands = {
  async add_nodes (c, t) {
    await Promise.all(c.addrs.map((a) => withTimeout(t, (cb) => {
      dht._sendPing(loopback(a), (err, node) => {
        if (node) dht.addNode(node)
        cb(null)
      })
    })))
    if (c.lookup !== false) {
      const id = dht._rpc.id
      await withTimeout(t, (cb) => dht._rpc.closest(id, { q: 'find_node', a: { id, target: id } }, null, cb))
    }
    return {}
  },
  async routing_table () {
    return { nodes: dht._rpc.nodes.toArray().map(toNode) }
  },
  async ping (c, t) {
    const r = await withTimeout(t, (cb) => dht._rpc.query(loopback(c.addr), { q: 'ping' }, (err, res) => cb(err, res)))
    return { id: hex(r.r && r.r.id) }
  },
  async find_node (c, t) {
    const target = Buffer.from(c.target, 'hex')
    const r = await withTimeout(t, (cb) => dht._rpc.query(loopback(c.addr), { q: 'find_node', a: { id: dht._rpc.id, target } }, (err, res) => cb(err, res)))
    return { id: hex(r.r && r.r.id), nodes: parseNodes(r.r && r.r.nodes) }
  },
  async lookup_nodes (c, t) {
    const target = Buffer.from(c.target, 'hex')
    const seen = new Map()
    await withTimeout(t, (cb) => dht._rpc.closest(target, { q: 'find_node', a: { id: dht._rpc.id, target } }, (msg, node) => {
      if (msg.r && msg.r.id && msg.r.id.length === 20) seen.set(hex(msg.r.id), { id: msg.r.id, host: node.host || node.address, port: node.port })
      return true
    }, cb))
    const closest = [...seen.values()]
      .sort((a, b) => Buffer.compare(xor(a.id, target), xor(b.id, target)))
      .slice(0, 8)
      .map(toNode)
    return { closest }
  },
  async get_peers (c, t) {
    const ih = Buffer.from(c.info_hash, 'hex')
    const peers = new Set()
    const remote = new Set()
    const onpeer = (peer, infoHash, from) => {
      if (!Buffer.from(infoHash).equals(ih)) return
      peers.add(`${peer.host}:${peer.port}`)
      if (from) remote.add(`${peer.host}:${peer.port}`)
    }
    dht.on('peer', onpeer)
    try {
      await withTimeout(t, (cb) => dht.lookup(ih, cb))
    } finally {
      dht.removeListener('peer', onpeer)
    }
    return { peers: [...peers].sort(), remote_peers: [...remote].sort() }
  },
  async announce (c, t) {
    const n = await withTimeout(t, (cb) => dht.announce(Buffer.from(c.info_hash, 'hex'), c.port, cb))
    return { acked: n }
  },
  async put_immutable (c, t) {
    const [target, n] = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('put timed out')), t * 1000)
      dht.put({ v: Buffer.from(c.data) }, (err, key, n) => {
        clearTimeout(timer)
        err ? reject(err) : resolve([key, n])
      })
    })
    return { target: hex(target), success: n }
  },
  async get_immutable (c, t) {
    const res = await withTimeout(t, (cb) => dht.get(Buffer.from(c.target, 'hex'), { cache: false }, cb))
    return { value: res && res.v ? hex(bencode.encode(res.v)) : null }
  },
  async put_mutable (c, t) {
    const k = Buffer.from(c.key, 'hex')
    const opts = { k, seq: c.seq, v: Buffer.from(c.data), sign: signer(Buffer.from(c.seed, 'hex')) }
    if (c.salt) opts.salt = Buffer.from(c.salt)
    if (typeof c.cas === 'number') opts.cas = c.cas
    const [target, n] = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('put timed out')), t * 1000)
      dht.put(opts, (err, key, n) => {
        clearTimeout(timer)
        err ? reject(err) : resolve([key, n])
      })
    })
    return { target: hex(target), success: n }
  },
  async get_mutable (c, t) {
    const k = Buffer.from(c.key, 'hex')
    const salt = c.salt ? Buffer.from(c.salt) : null
    const target = sha1(salt ? Buffer.concat([k, salt]) : k)
    const opts = { cache: false }
    if (salt) opts.salt = salt
    const res = await withTimeout(t, (cb) => dht.get(target, opts, cb))
    if (!res || !res.v) return { value: null, seq: null, signature: null }
    return { value: hex(bencode.encode(res.v)), seq: res.seq, signature: hex(res.sig) }
  },
  async traffic () {
    return { sent, received, refused_repeats: refusedRepeats }
  }
}

const rl = readline.createInterface({ input: process.stdin })
out({ event: 'ready', impl: 'bittorrent-dht', version: dhtVersion, addr: `${dht.address().address}:${dht.address().port}`, id: hex(dht.nodeId) })

// One command at a time, in order.
let chain = Promise.resolve()
const quit = () => dht.destroy(() => process.exit(0))
rl.on('line', (line) => {
  line = line.trim()
  if (!line) return
  chain = chain.then(async () => {
    let c
    try {
      c = JSON.parse(line)
      if (c.cmd === 'quit') {
        out({ ok: true })
        return quit()
      }
      const fn = commands[c.cmd]
      if (!fn) throw new Error(`unknown command ${JSON.stringify(c.cmd)}`)
      const res = await fn(c, Number(c.timeout || 20))
      out({ ...res, ok: true })
    } catch (e) {
      out({ ok: false, error: e.message })
    }
  })
})
rl.on('close', () => chain.then(quit))
