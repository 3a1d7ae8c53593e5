#!/usr/bin/env node
// Drive webtorrent's bittorrent-dht against the capture harness (loopback only).
//
// Started by capture.py; prints progress lines and "DONE" when its own steps are
// over, then idles (answering the harness's queries) until stdin is closed.
//
// Steps: bootstrap (find_node) from the harness and nothing else, ping it via
// addNode, lookup (get_peers) and announce (announce_peer), BEP 44 immutable put
// and get, mutable put (with salt) and get. ed25519 comes from node:crypto.
//
// Never leave `bootstrap` unset: bittorrent-dht then uses public routers. We pass an
// explicit loopback-only list (the harness), which k-rpc also falls back to when a
// lookup runs out of nodes.

import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import { parseArgs } from 'node:util'

// bittorrent-dht is installed (npm ci) in interop/js, next to this folder.
const pkgDir = new URL('../js/node_modules/bittorrent-dht/', import.meta.url)
const { default: DHT } = await import(new URL('index.js', pkgDir))
const dhtVersion = JSON.parse(fs.readFileSync(new URL('package.json', pkgDir))).version

const { values: args } = parseArgs({
  options: {
    harness: { type: 'string' },
    'info-hash': { type: 'string' },
    seed: { type: 'string' },
    pubkey: { type: 'string', default: '' },
    salt: { type: 'string', default: '' },
    'step-timeout': { type: 'string', default: '20' }
  }
})

const log = (...a) => console.log(...a)
const [host, portStr] = args.harness.split(':')
const port = Number(portStr)
if (!net.isIPv4(host) || !host.startsWith('127.')) {
  console.error('js_client: the harness must be on 127.0.0.0/8')
  process.exit(2)
}

// ed25519 from a 32-byte seed via node:crypto (PKCS#8 / SPKI DER prefixes).
const seed = Buffer.from(args.seed, 'hex')
const privateKey = crypto.createPrivateKey({
  key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]),
  format: 'der',
  type: 'pkcs8'
})
const publicKey = Buffer.from(crypto.createPublicKey(privateKey).export({ format: 'jwk' }).x, 'base64url')
const sign = (buf) => crypto.sign(null, buf, privateKey)
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

const nodeId = crypto.createHash('sha1').update('xorro capture bittorrent-dht node id').digest()
const dht = new DHT({ bootstrap: [`${host}:${port}`], nodeId, verify })
dht.listen(0, '127.0.0.1')
dht.on('warning', (e) => log(`warning: ${e.message}`))
dht.on('error', (e) => log(`error: ${e.message}`))

const stepTimeout = Number(args['step-timeout']) * 1000
function step (name, fn) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { log(`timeout waiting for ${name}`); resolve(null) }, stepTimeout)
    fn((err, ...res) => {
      clearTimeout(timer)
      if (err) log(`${name}: error ${err.message}`)
      resolve(err ? null : res)
    })
  })
}

log(`bittorrent-dht ${dhtVersion}, node ${process.version}`)
await step('ready', (cb) => dht.once('ready', () => cb(null)))
log(`ready; listening on ${dht.address().address}:${dht.address().port}`)

// ping: addNode without an id pings the node first.
dht.addNode({ host, port })
await new Promise((resolve) => setTimeout(resolve, 500))

const infoHash = Buffer.from(args['info-hash'], 'hex')
await step('lookup', (cb) => dht.lookup(infoHash, cb))
log('lookup: done')
const r = await step('announce', (cb) => dht.announce(infoHash, 6881, cb))
log(`announce: ${r ? 'done' : 'failed'}`)

const immutable = Buffer.from('xorro immutable item from bittorrent-dht')
const put1 = await step('immutable put', (cb) => dht.put({ v: immutable }, cb))
const immTarget = put1 && put1[0]
log(`immutable put: target ${immTarget && immTarget.toString('hex')}`)
if (immTarget) {
  const got = await step('immutable get', (cb) => dht.get(immTarget, { cache: false }, cb))
  log(`immutable get: ${got && got[0] ? got[0].v.toString() : null}`)
}

const salt = Buffer.from(args.salt)
const put2 = await step('mutable put', (cb) => dht.put({
  k: publicKey,
  seq: 1,
  salt,
  v: Buffer.from('xorro mutable item from bittorrent-dht'),
  sign
}, cb))
const mutTarget = put2 && put2[0]
log(`mutable put: target ${mutTarget && mutTarget.toString('hex')}`)
if (mutTarget) {
  const got = await step('mutable get', (cb) => dht.get(mutTarget, { salt, cache: false }, cb))
  log(`mutable get: ${got && got[0] ? `${got[0].v.toString()} seq=${got[0].seq}` : null}`)
}

log('DONE')
// Idle (keep answering the harness) until the harness closes our stdin.
const idle = setTimeout(() => {}, 300000)
process.stdin.resume()
process.stdin.on('end', () => {
  clearTimeout(idle)
  dht.destroy(() => process.exit(0))
})
