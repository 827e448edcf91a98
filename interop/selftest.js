#!/usr/bin/env node
// Self-test of interop/esdk.js against itself (JS SDK <-> JS SDK).
// Run: node interop/selftest.js   (after npm ci --prefix interop)
// Prints one line per case and a closing "N passed, N failed" line.
'use strict'

const fs = require('fs')
const os = require('os')
const path = require('path')
const crypto = require('crypto')
const { spawnSync } = require('child_process')
const { parseMessage } = require('./msgparse')

const ESDK = path.join(__dirname, 'esdk.js')
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'esdk-selftest-'))
let passed = 0
let failed = 0
let n = 0

function pattern(len) {
  const b = Buffer.alloc(len)
  for (let i = 0; i < len; i++) b[i] = i % 251
  return b
}

function file(name, data) {
  const p = path.join(dir, name)
  fs.writeFileSync(p, data)
  return p
}

function run(op, spec, inPath, outPath, nodeArgs = []) {
  const specPath = path.join(dir, `spec-${++n}.json`)
  fs.writeFileSync(specPath, JSON.stringify(spec))
  const r = spawnSync(process.execPath, [...nodeArgs, ESDK, op, specPath, inPath, outPath], { encoding: 'utf8' })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

function check(name, fn) {
  try {
    const note = fn()
    passed++
    console.log(`ok   ${name}${note ? ` -- ${note}` : ''}`)
  } catch (e) {
    failed++
    console.log(`FAIL ${name}: ${e.message}`)
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg)
}

function expectOk(r, what) {
  assert(r.status === 0, `${what} exited ${r.status}: ${r.stderr.trim()}`)
  assert(r.stderr === '', `${what} wrote to stderr: ${r.stderr.trim()}`)
}

function expectFail(r, outPath, what) {
  assert(r.status === 1, `${what} exited ${r.status}, want 1`)
  const lines = r.stderr.split('\n').filter((l) => l !== '')
  assert(lines.length === 1, `${what}: want exactly one stderr line, got ${JSON.stringify(r.stderr)}`)
  assert(r.stdout === '', `${what}: stdout not empty: ${r.stdout}`)
  assert(!fs.existsSync(outPath), `${what}: OUT was created`)
  const leftovers = fs.readdirSync(path.dirname(outPath)).filter((f) => f.includes('.tmp-'))
  assert(leftovers.length === 0, `${what}: temp files left: ${leftovers}`)
  return lines[0]
}

// roundTrip encrypts plaintext with encSpec, decrypts with decSpec (default
// encSpec) and checks the plaintext, the suite and the context.
function roundTrip(encSpec, plaintext, decSpec) {
  decSpec = decSpec || encSpec
  const p = file(`p-${n + 1}`, plaintext)
  const c = `${p}.esdk`
  const d = `${p}.out`
  expectOk(run('encrypt', encSpec, p, c), 'encrypt')
  const msg = parseMessage(fs.readFileSync(c))
  const r = run('decrypt', decSpec, c, d)
  expectOk(r, 'decrypt')
  assert(Buffer.compare(fs.readFileSync(d), plaintext) === 0, 'plaintext differs')
  const out = JSON.parse(r.stdout)
  assert(r.stdout.endsWith('\n') && r.stdout.indexOf('\n') === r.stdout.length - 1, 'stdout is not one line')
  assert(out.suite === encSpec.suite, `suite ${out.suite}, want ${encSpec.suite}`)
  for (const [k, v] of Object.entries(encSpec.context || {})) {
    assert(out.context[k] === v, `context[${k}] = ${out.context[k]}, want ${v}`)
  }
  const extra = Object.keys(out.context).filter((k) => !(k in (encSpec.context || {})))
  if (encSpec.suite === '0578') {
    assert(extra.length === 1 && extra[0] === 'aws-crypto-public-key', `0578 extra context keys: ${extra}`)
  } else {
    assert(extra.length === 0, `unexpected context keys: ${extra}`)
  }
  return { msg, out, c }
}

const aesKeys = {}
for (const bits of [128, 192, 256]) aesKeys[bits] = file(`aes${bits}.key`, crypto.randomBytes(bits / 8))
const wrongAes = file('wrong.key', crypto.randomBytes(32))
const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', {
  modulusLength: 3072,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
})
const pub = file('rsa.pub.pem', publicKey)
const priv = file('rsa.priv.pem', privateKey)

const aes = (bits, extra) => ({ type: 'raw-aes', namespace: 'ns', name: `aes${bits}`, keyFile: aesKeys[bits], ...extra })
const rsa = (padding, extra) => ({
  type: 'raw-rsa',
  namespace: 'ns',
  name: 'rsa',
  publicKeyFile: pub,
  privateKeyFile: priv,
  padding,
  ...extra,
})
const p10000 = pattern(10000)

for (const bits of [128, 192, 256]) {
  for (const suite of ['0478', '0578']) {
    check(`raw-aes ${bits} suite ${suite}`, () => {
      roundTrip({ keyrings: [aes(bits)], suite, frameLength: 4096, context: { purpose: 'test' } }, p10000)
    })
  }
}

for (const padding of ['oaep-sha1', 'oaep-sha256', 'oaep-sha384', 'oaep-sha512']) {
  for (const suite of ['0478', '0578']) {
    check(`raw-rsa ${padding} suite ${suite}`, () => {
      roundTrip({ keyrings: [rsa(padding)], suite, context: {} }, p10000)
    })
  }
}

check('raw-rsa pkcs1: encrypt works, decrypt refused by Node', () => {
  const p = file('pkcs1.in', p10000)
  const c = `${p}.esdk`
  const spec = { keyrings: [rsa('pkcs1')], suite: '0478' }
  expectOk(run('encrypt', spec, p, c), 'encrypt')
  const msg = parseMessage(fs.readFileSync(c))
  assert(msg.edks.length === 1 && msg.edks[0].ciphertext.length === 384, 'expected one 384-byte RSA EDK')
  const err = expectFail(run('decrypt', spec, c, `${p}.out`), `${p}.out`, 'pkcs1 decrypt')
  // The keyring swallows Node's error; this is what Node itself says:
  let nodeErr = ''
  try {
    crypto.privateDecrypt({ key: privateKey, padding: crypto.constants.RSA_PKCS1_PADDING }, msg.edks[0].ciphertext)
  } catch (e) {
    nodeErr = e.message
  }
  assert(/no longer supported/.test(nodeErr), `expected Node to refuse PKCS#1 v1.5 decryption, got ${JSON.stringify(nodeErr)}`)
  // With the CVE revert flag Node decrypts it again.
  const r = run('decrypt', spec, c, `${p}.out`, ['--security-revert=CVE-2023-46809'])
  assert(r.status === 0, `decrypt with --security-revert exited ${r.status}: ${r.stderr.trim()}`)
  assert(Buffer.compare(fs.readFileSync(`${p}.out`), p10000) === 0, 'plaintext differs')
  return `${err} / Node: ${nodeErr}`
})

check('public-key-only rsa keyring encrypts, private-key-only decrypts', () => {
  roundTrip(
    { keyrings: [rsa('oaep-sha256', { privateKeyFile: undefined })], suite: '0478' },
    p10000,
    { keyrings: [rsa('oaep-sha256', { publicKeyFile: undefined })] }
  )
})

check('frame length 1', () => {
  const { msg } = roundTrip({ keyrings: [aes(256)], suite: '0478', frameLength: 1, context: { a: 'b' } }, pattern(100))
  const last = msg.frames[msg.frames.length - 1]
  return `${msg.frames.length} frames, final frame seq ${last.seq} content ${last.contentLength}`
})

check('empty plaintext', () => {
  const { msg } = roundTrip({ keyrings: [aes(256)], suite: '0478', frameLength: 4096 }, Buffer.alloc(0))
  assert(msg.frames.length === 1 && msg.frames[0].final && msg.frames[0].contentLength === 0, 'want one empty final frame')
})

check('empty plaintext, suite 0578, stream', () => {
  roundTrip({ keyrings: [aes(256)], suite: '0578', stream: true }, Buffer.alloc(0))
})

check('default frame length is 4096', () => {
  const { msg } = roundTrip({ keyrings: [aes(256)], suite: '0478' }, p10000)
  assert(msg.frameLength === 4096, `frame length ${msg.frameLength}`)
})

check('exact multiple of frame length', () => {
  const { msg } = roundTrip({ keyrings: [aes(256)], suite: '0478', frameLength: 4096 }, pattern(8192))
  return msg.frames.map((f) => `${f.final ? 'final' : 'regular'}#${f.seq}:${f.contentLength}`).join(' ')
})

check('multi-keyring aes+rsa: decrypt with each and both', () => {
  const enc = { keyrings: [aes(256), rsa('oaep-sha1')], suite: '0478', frameLength: 4096, context: { a: '1' } }
  const { msg, c } = roundTrip(enc, p10000)
  assert(msg.edks.length === 2, `want 2 EDKs, got ${msg.edks.length}`)
  for (const keyrings of [[aes(256)], [rsa('oaep-sha1', { publicKeyFile: undefined })], [rsa('oaep-sha1'), aes(256)]]) {
    const d = path.join(dir, `multi-${++n}.out`)
    expectOk(run('decrypt', { keyrings }, c, d), `decrypt with ${keyrings.map((k) => k.type)}`)
    assert(Buffer.compare(fs.readFileSync(d), p10000) === 0, 'plaintext differs')
  }
})

check('multi-keyring rsa generator + aes child', () => {
  roundTrip({ keyrings: [rsa('oaep-sha512'), aes(128)], suite: '0578' }, p10000)
})

check('non-ASCII context', () => {
  const { out } = roundTrip({ keyrings: [aes(256)], suite: '0478', context: { ключ: '値', a: 'b', '😀': 'ü' } }, p10000)
  return JSON.stringify(out.context)
})

check('stream mode both ways and crossed with buffer mode', () => {
  const base = { keyrings: [aes(256), rsa('oaep-sha256')], suite: '0578', frameLength: 1000, context: { s: 't' } }
  const big = crypto.randomBytes(300000)
  roundTrip({ ...base, stream: true }, big)
  roundTrip({ ...base, stream: true }, big, { ...base, stream: false })
  roundTrip({ ...base, stream: false }, big, { ...base, stream: true })
})

check('decrypt context check passes for a subset', () => {
  const enc = { keyrings: [aes(256)], suite: '0478', context: { a: '1', b: '2' } }
  roundTrip(enc, p10000, { keyrings: [aes(256)], context: { b: '2' } })
})

// ---- failures ----

function failingDecrypt(name, encSpec, decSpec, mutate, plaintext) {
  check(name, () => {
    const p = file(`f-${n + 1}`, plaintext || p10000)
    const c = `${p}.esdk`
    const d = `${p}.out`
    expectOk(run('encrypt', encSpec, p, c), 'encrypt')
    if (mutate) fs.writeFileSync(c, mutate(fs.readFileSync(c)))
    return expectFail(run('decrypt', decSpec, c, d), d, 'decrypt')
  })
}

const aesEnc = { keyrings: [aes(256)], suite: '0478', frameLength: 4096, context: { a: '1' } }
const wrongKeyring = [{ type: 'raw-aes', namespace: 'ns', name: 'aes256', keyFile: wrongAes }]
failingDecrypt('wrong AES key', aesEnc, { keyrings: wrongKeyring })
failingDecrypt('wrong AES key (stream)', aesEnc, { keyrings: wrongKeyring, stream: true })
failingDecrypt('wrong key name', aesEnc, { keyrings: [aes(256, { name: 'other' })] })
failingDecrypt('wrong context value', aesEnc, { keyrings: [aes(256)], context: { a: '2' } })
failingDecrypt('missing context key', aesEnc, { keyrings: [aes(256)], context: { zz: '1' } })
failingDecrypt('missing context key (stream)', aesEnc, { keyrings: [aes(256)], context: { zz: '1' }, stream: true })
failingDecrypt('truncated message', aesEnc, { keyrings: [aes(256)] }, (b) => b.subarray(0, b.length - 1))
failingDecrypt('truncated message (stream)', aesEnc, { keyrings: [aes(256)], stream: true }, (b) => b.subarray(0, b.length - 1))
failingDecrypt('tampered body byte', aesEnc, { keyrings: [aes(256)] }, (b) => {
  const x = Buffer.from(b)
  x[x.length - 20] ^= 1
  return x
})
failingDecrypt('tampered body byte (stream)', aesEnc, { keyrings: [aes(256)], stream: true }, (b) => {
  const x = Buffer.from(b)
  x[x.length - 20] ^= 1
  return x
})
failingDecrypt('tampered signature (0578)', { ...aesEnc, suite: '0578' }, { keyrings: [aes(256)] }, (b) => {
  const x = Buffer.from(b)
  x[x.length - 5] ^= 1
  return x
})
failingDecrypt('trailing garbage after signature (0578)', { ...aesEnc, suite: '0578' }, { keyrings: [aes(256)] }, (b) =>
  Buffer.concat([b, Buffer.from([0])])
)
for (const stream of [false, true]) {
  check(`trailing garbage after final frame (0478) is ACCEPTED by the SDK${stream ? ' (stream)' : ''}`, () => {
    const p = file(`tg-${n + 1}`, p10000)
    expectOk(run('encrypt', aesEnc, p, `${p}.esdk`), 'encrypt')
    fs.appendFileSync(`${p}.esdk`, Buffer.from('garbage'))
    expectOk(run('decrypt', { keyrings: [aes(256)], stream }, `${p}.esdk`, `${p}.out`), 'decrypt')
    assert(Buffer.compare(fs.readFileSync(`${p}.out`), p10000) === 0, 'plaintext differs')
  })
}
failingDecrypt(
  'maxEncryptedDataKeys=1 on a 2-EDK message',
  { keyrings: [aes(256), rsa('oaep-sha1')], suite: '0478' },
  { keyrings: [aes(256)], maxEncryptedDataKeys: 1 }
)

check('maxEncryptedDataKeys=1 refuses to encrypt with 2 keyrings', () => {
  const p = file('medk.in', p10000)
  return expectFail(
    run('encrypt', { keyrings: [aes(256), aes(128)], suite: '0478', maxEncryptedDataKeys: 1 }, p, `${p}.esdk`),
    `${p}.esdk`,
    'encrypt'
  )
})

check('maxEncryptedDataKeys=2 allows 2 EDKs', () => {
  roundTrip({ keyrings: [aes(256), aes(128)], suite: '0478', maxEncryptedDataKeys: 2 }, p10000)
})

for (const [name, spec] of [
  ['non-committing suite 0178 refused', { keyrings: [aes(256)], suite: '0178' }],
  ['suite 0378 refused (non-committing)', { keyrings: [aes(256)], suite: '0378' }],
  ['bad suite string', { keyrings: [aes(256)], suite: 'xyz' }],
  ['frame length 0', { keyrings: [aes(256)], suite: '0478', frameLength: 0 }],
  ['no keyrings', { keyrings: [], suite: '0478' }],
  ['bad padding', { keyrings: [rsa('oaep-md5')], suite: '0478' }],
  ['reserved context key', { keyrings: [aes(256)], suite: '0578', context: { 'aws-crypto-public-key': 'x' } }],
  ['17-byte AES key', { keyrings: [{ ...aes(256), keyFile: file('k17', crypto.randomBytes(17)) }], suite: '0478' }],
]) {
  check(name, () => {
    const p = file(`bad-${n + 1}`, p10000)
    return expectFail(run('encrypt', spec, p, `${p}.esdk`), `${p}.esdk`, 'encrypt')
  })
}

check('missing input file', () => {
  const out = path.join(dir, 'nothing.esdk')
  return expectFail(run('encrypt', aesEnc, path.join(dir, 'does-not-exist'), out), out, 'encrypt')
})

// The JS RawAesKeyringNode orders the wrapping AAD with localeCompare unless
// utf8Sorting is set; the header itself is always UTF-8 byte ordered.
const caseCtx = { B: '1', a: '2' }
check('utf8Sorting default is self-consistent for {"B","a"}', () => {
  roundTrip({ keyrings: [aes(256)], suite: '0478', context: caseCtx }, p10000)
})
failingDecrypt(
  'utf8Sorting=true encrypt, default decrypt fails for {"B","a"}',
  { keyrings: [aes(256, { utf8Sorting: true })], suite: '0478', context: caseCtx },
  { keyrings: [aes(256)] }
)
check('utf8Sorting=true both sides works for {"B","a"}', () => {
  roundTrip({ keyrings: [aes(256, { utf8Sorting: true })], suite: '0478', context: caseCtx }, p10000)
})
check('utf8Sorting irrelevant for {"purpose","ключ"}', () => {
  const ctx = { purpose: 'kat', ключ: '値' }
  roundTrip({ keyrings: [aes(256, { utf8Sorting: true })], suite: '0478', context: ctx }, p10000, { keyrings: [aes(256)] })
  roundTrip({ keyrings: [aes(256)], suite: '0478', context: ctx }, p10000, { keyrings: [aes(256, { utf8Sorting: true })] })
})

fs.rmSync(dir, { recursive: true, force: true })
console.log(`${passed} passed, ${failed} failed`)
process.exitCode = failed === 0 ? 0 : 1
