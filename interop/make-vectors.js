#!/usr/bin/env node
// Regenerates the known-answer ESDK messages in testdata/esdk/ with the
// AWS Encryption SDK for JavaScript, through interop/esdk.js.
//
//   npm ci --prefix interop && node interop/make-vectors.js
//
// Keys (aes256.key, rsa3072.pub.pem, rsa3072.priv.pem) are kept if they
// already exist, so regenerating only replaces the messages (which differ on
// every run: random data keys, message ids and IVs) and their sidecars.
//
// Each NAME.esdk has a NAME.json sidecar. The sidecar is itself a valid
// esdk.js SPEC (key paths are relative to testdata/esdk/), plus:
//   plaintext, ciphertext  file names in testdata/esdk/
//   frameLengthSource      "explicit" or "sdk-default"
//   jsCanDecrypt           false for PKCS#1 v1.5 (Node >= 20 refuses to
//                          decrypt it unless run with
//                          --security-revert=CVE-2023-46809)
//   message                facts parsed from the message (EDK count,
//                          header length, frames, final frame length)
//   generator              SDK and Node versions used
'use strict'

const fs = require('fs')
const path = require('path')
const crypto = require('crypto')
const { spawnSync } = require('child_process')
const { parseMessage } = require('./msgparse')

const ESDK = path.join(__dirname, 'esdk.js')
const OUT = path.join(__dirname, '..', 'testdata', 'esdk')
const SDK_VERSION = require('@aws-crypto/client-node/package.json').version
const PKCS1_REVERT = '--security-revert=CVE-2023-46809'

fs.mkdirSync(OUT, { recursive: true })
const at = (name) => path.join(OUT, name)

function pattern(len) {
  const b = Buffer.alloc(len)
  for (let i = 0; i < len; i++) b[i] = i % 251
  return b
}

// ---- keys (kept if present) ----

const aesKey = Buffer.from(Array.from({ length: 32 }, (_, i) => i))
if (fs.existsSync(at('aes256.key'))) {
  if (!fs.readFileSync(at('aes256.key')).equals(aesKey)) throw new Error('aes256.key exists but is not 00 01 .. 1f')
} else {
  fs.writeFileSync(at('aes256.key'), aesKey)
}

if (!fs.existsSync(at('rsa3072.pub.pem')) || !fs.existsSync(at('rsa3072.priv.pem'))) {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', {
    modulusLength: 3072,
    publicExponent: 0x10001,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  })
  fs.writeFileSync(at('rsa3072.pub.pem'), publicKey)
  fs.writeFileSync(at('rsa3072.priv.pem'), privateKey)
  console.log('generated new RSA-3072 key pair')
}
{
  // sanity: the two PEM files form one RSA-3072 pair
  const pub = crypto.createPublicKey(fs.readFileSync(at('rsa3072.pub.pem')))
  const priv = crypto.createPrivateKey(fs.readFileSync(at('rsa3072.priv.pem')))
  if (pub.asymmetricKeyDetails.modulusLength !== 3072) throw new Error('rsa3072.pub.pem is not RSA-3072')
  const a = pub.export({ format: 'jwk' })
  const b = crypto.createPublicKey(priv).export({ format: 'jwk' })
  if (a.n !== b.n || a.e !== b.e) throw new Error('rsa3072 public and private keys do not match')
}

// ---- plaintexts ----

fs.writeFileSync(at('plain-10000.bin'), pattern(10000))
fs.writeFileSync(at('plain-8192.bin'), pattern(8192))
fs.writeFileSync(at('plain-0.bin'), Buffer.alloc(0))

// ---- messages ----

const aes = { type: 'raw-aes', namespace: 'hsmenv-test', name: 'aes256', keyFile: 'aes256.key' }
const rsa = (padding) => ({
  type: 'raw-rsa',
  namespace: 'hsmenv-test',
  name: 'rsa3072',
  publicKeyFile: 'rsa3072.pub.pem',
  privateKeyFile: 'rsa3072.priv.pem',
  padding,
})

const vectors = [
  {
    name: 'aes-0478-frame4096',
    description: 'raw AES-256 keyring, committing suite without signature, 10000 bytes in 4096-byte frames, non-ASCII context',
    plaintext: 'plain-10000.bin',
    keyrings: [aes],
    suite: '0478',
    frameLength: 4096,
    context: { purpose: 'kat', ключ: '値' },
  },
  {
    name: 'aes-0578-frame1000',
    description: 'raw AES-256 keyring, committing suite with ECDSA P-384 signature, 10000 bytes in 1000-byte frames',
    plaintext: 'plain-10000.bin',
    keyrings: [aes],
    suite: '0578',
    frameLength: 1000,
    context: { purpose: 'kat' },
  },
  {
    name: 'rsa-oaep256-0478',
    description: 'raw RSA-3072 keyring, OAEP with SHA-256 (MGF1 SHA-256), SDK default frame length, empty context',
    plaintext: 'plain-10000.bin',
    keyrings: [rsa('oaep-sha256')],
    suite: '0478',
    context: {},
  },
  {
    name: 'multi-0478-empty',
    description: 'multi-keyring: raw AES-256 generator + raw RSA-3072 OAEP-SHA1 child, empty plaintext',
    plaintext: 'plain-0.bin',
    keyrings: [aes, rsa('oaep-sha1')],
    suite: '0478',
    frameLength: 4096,
    context: { a: '1' },
  },
  {
    name: 'rsa-pkcs1-0478',
    description: 'raw RSA-3072 keyring, PKCS#1 v1.5 padding (Node >= 20 cannot decrypt this without --security-revert=CVE-2023-46809)',
    plaintext: 'plain-10000.bin',
    keyrings: [rsa('pkcs1')],
    suite: '0478',
    context: {},
  },
  {
    name: 'aes-exact-multiple',
    description: 'raw AES-256 keyring, 8192 bytes = exactly 2 frames of 4096: shows how the JS SDK frames an exact multiple',
    plaintext: 'plain-8192.bin',
    keyrings: [aes],
    suite: '0478',
    frameLength: 4096,
    context: {},
  },
]

function utf8Compare(a, b) {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

function node(args) {
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} failed (${r.status}): ${r.stderr.trim()}`)
  return r
}

for (const v of vectors) {
  // RawAesKeyringNode (default utf8Sorting=false) orders the key-wrapping AAD
  // with localeCompare; keep the vectors to contexts where that equals the
  // UTF-8 byte order required by the ESDK specification.
  const keys = Object.keys(v.context)
  const byLocale = [...keys].sort((a, b) => a.localeCompare(b))
  const byUtf8 = [...keys].sort(utf8Compare)
  if (byLocale.join('\0') !== byUtf8.join('\0')) throw new Error(`${v.name}: context order differs between localeCompare and UTF-8`)

  const ciphertext = `${v.name}.esdk`
  const sidecar = {
    description: v.description,
    generator: `interop/make-vectors.js via interop/esdk.js, @aws-crypto/client-node ${SDK_VERSION}, Node ${process.version}`,
    plaintext: v.plaintext,
    ciphertext,
    keyrings: v.keyrings,
    suite: v.suite,
    frameLength: v.frameLength,
    frameLengthSource: v.frameLength === undefined ? 'sdk-default' : 'explicit',
    context: v.context,
    jsCanDecrypt: !v.keyrings.some((k) => k.padding === 'pkcs1'),
  }
  const sidecarPath = at(`${v.name}.json`)
  fs.writeFileSync(sidecarPath, JSON.stringify(sidecar, null, 2) + '\n')
  fs.rmSync(at(ciphertext), { force: true })
  node([ESDK, 'encrypt', sidecarPath, at(v.plaintext), at(ciphertext)])

  // Verify: decrypt it again with the JS SDK (PKCS#1 v1.5 needs the revert flag).
  const tmpOut = at(`.${v.name}.check`)
  fs.rmSync(tmpOut, { force: true })
  const nodeArgs = sidecar.jsCanDecrypt ? [] : [PKCS1_REVERT]
  const r = node([...nodeArgs, ESDK, 'decrypt', sidecarPath, at(ciphertext), tmpOut])
  const same = fs.readFileSync(tmpOut).equals(fs.readFileSync(at(v.plaintext)))
  fs.rmSync(tmpOut)
  if (!same) throw new Error(`${v.name}: decrypted plaintext differs`)
  // (node --security-revert prints a SECURITY WARNING line to stdout first)
  const info = JSON.parse(r.stdout.trim().split('\n').pop())
  if (info.suite !== v.suite) throw new Error(`${v.name}: suite ${info.suite}`)

  const bytes = fs.readFileSync(at(ciphertext))
  const msg = parseMessage(bytes)
  const last = msg.frames[msg.frames.length - 1]
  sidecar.frameLength = msg.frameLength
  sidecar.message = {
    bytes: bytes.length,
    encryptedDataKeys: msg.edks.map((e) => ({
      providerId: e.providerId,
      providerInfoHex: e.providerInfo.toString('hex'),
      ciphertextLength: e.ciphertext.length,
    })),
    headerContext: msg.context,
    headerLength: msg.headerLength,
    bodyOffset: msg.headerLength + 16,
    regularFrames: msg.frames.length - 1,
    finalFrameSequenceNumber: last.seq,
    finalFrameContentLength: last.contentLength,
    signatureLength: msg.signature ? msg.signature.length : 0,
  }
  fs.writeFileSync(sidecarPath, JSON.stringify(sidecar, null, 2) + '\n')
  console.log(
    `${ciphertext}: ${bytes.length} bytes, header ${msg.headerLength}+16, ${msg.edks.length} EDK(s), ` +
      `${msg.frames.length - 1} regular frame(s) + final #${last.seq} with ${last.contentLength} bytes` +
      (msg.signature ? `, signature ${msg.signature.length} bytes` : '')
  )
}
