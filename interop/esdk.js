#!/usr/bin/env node
// Interop driver around the AWS Encryption SDK for JavaScript
// (@aws-crypto/client-node), called by the Go interop tests.
//
//   node interop/esdk.js encrypt SPEC.json IN OUT
//   node interop/esdk.js decrypt SPEC.json IN OUT
//
// decrypt prints one JSON line to stdout:
//   {"context": {...}, "suite": "0478"}
// On any failure one line goes to stderr, the exit status is 1 and OUT is
// not created (output is written to a temporary file next to OUT and only
// renamed into place on success).
//
// SPEC.json:
//   {
//     "keyrings": [   // one or more; several => multi-keyring, first is the generator
//       {"type": "raw-aes", "namespace": "NS", "name": "NAME", "keyFile": "key.bin",
//        "utf8Sorting": false},           // optional, see below
//       {"type": "raw-rsa", "namespace": "NS", "name": "NAME",
//        "publicKeyFile": "pub.pem", "privateKeyFile": "priv.pem",
//        "padding": "pkcs1" | "oaep-sha1" | "oaep-sha256" | "oaep-sha384" | "oaep-sha512"}
//     ],
//     "suite": "0478" | "0578",           // encrypt only; absent = SDK default (0578)
//     "frameLength": 4096,                // encrypt only, optional
//     "context": {"k": "v"},              // encrypt: encryption context;
//                                         // decrypt: every pair must be in the message's context
//     "stream": false,                    // optional: encryptStream/decryptStream
//     "maxEncryptedDataKeys": 0           // optional, 0/absent = SDK default (no limit)
//   }
// Relative key file paths are resolved against the directory of SPEC.json.
//
// raw-aes "utf8Sorting": the JS SDK's RawAesKeyringNode by default (false)
// orders the encryption context it uses as the key-wrapping AAD with
// String.prototype.localeCompare, not by UTF-8 bytes as the ESDK
// specification (and the message header) does. The two orders differ for
// e.g. {"B": .., "a": ..}. Absent = SDK default.
'use strict'

const fs = require('fs')
const path = require('path')
const crypto = require('crypto')
const { pipeline } = require('stream/promises')
const {
  buildClient,
  CommitmentPolicy,
  AlgorithmSuiteIdentifier,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
  RawRsaKeyringNode,
  MultiKeyringNode,
} = require('@aws-crypto/client-node')

let tmpPath = null

function fail(err) {
  let msg = err && err.message ? err.message : String(err)
  if (err && err.name && err.name !== 'Error') msg = `${err.name}: ${msg}`
  msg = msg.replace(/\s*[\r\n]+\s*/g, ' ').trim() || 'unknown error'
  if (tmpPath) {
    try {
      fs.unlinkSync(tmpPath)
    } catch (_) {
      // already gone
    }
    tmpPath = null
  }
  try {
    fs.writeSync(2, `esdk.js: ${msg}\n`)
  } catch (_) {
    // nothing more we can do
  }
  process.exit(1)
}

process.on('uncaughtException', fail)
process.on('unhandledRejection', fail)

function usage() {
  throw new Error('usage: esdk.js encrypt|decrypt SPEC.json IN OUT')
}

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

function checkStringMap(v, what) {
  if (!isObject(v)) throw new Error(`${what} must be an object of strings`)
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') throw new Error(`${what}[${JSON.stringify(k)}] must be a string`)
  }
  return v
}

function resolveFile(specDir, p, what) {
  if (typeof p !== 'string' || p === '') throw new Error(`${what} must be a non-empty string`)
  return path.resolve(specDir, p)
}

const AES_SUITES = {
  16: RawAesWrappingSuiteIdentifier.AES128_GCM_IV12_TAG16_NO_PADDING,
  24: RawAesWrappingSuiteIdentifier.AES192_GCM_IV12_TAG16_NO_PADDING,
  32: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
}

const RSA_PADDINGS = {
  pkcs1: { padding: crypto.constants.RSA_PKCS1_PADDING, oaepHash: undefined },
  'oaep-sha1': { padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
  'oaep-sha256': { padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
  'oaep-sha384': { padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha384' },
  'oaep-sha512': { padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha512' },
}

function buildKeyring(k, i, specDir) {
  const where = `keyrings[${i}]`
  if (!isObject(k)) throw new Error(`${where} must be an object`)
  if (typeof k.namespace !== 'string' || k.namespace === '') throw new Error(`${where}.namespace missing`)
  if (typeof k.name !== 'string' || k.name === '') throw new Error(`${where}.name missing`)
  switch (k.type) {
    case 'raw-aes': {
      const key = fs.readFileSync(resolveFile(specDir, k.keyFile, `${where}.keyFile`))
      const wrappingSuite = AES_SUITES[key.length]
      if (!wrappingSuite) throw new Error(`${where}: AES key must be 16, 24 or 32 bytes, got ${key.length}`)
      const input = {
        keyNamespace: k.namespace,
        keyName: k.name,
        unencryptedMasterKey: new Uint8Array(key),
        wrappingSuite,
      }
      if (k.utf8Sorting !== undefined) {
        if (typeof k.utf8Sorting !== 'boolean') throw new Error(`${where}.utf8Sorting must be a boolean`)
        input.utf8Sorting = k.utf8Sorting
      }
      return new RawAesKeyringNode(input)
    }
    case 'raw-rsa': {
      const pad = RSA_PADDINGS[k.padding]
      if (!pad) throw new Error(`${where}.padding must be one of ${Object.keys(RSA_PADDINGS).join(', ')}`)
      const rsaKey = {}
      if (k.publicKeyFile) {
        rsaKey.publicKey = fs.readFileSync(resolveFile(specDir, k.publicKeyFile, `${where}.publicKeyFile`), 'utf8')
      }
      if (k.privateKeyFile) {
        rsaKey.privateKey = fs.readFileSync(resolveFile(specDir, k.privateKeyFile, `${where}.privateKeyFile`), 'utf8')
      }
      if (!rsaKey.publicKey && !rsaKey.privateKey) throw new Error(`${where}: publicKeyFile or privateKeyFile required`)
      const input = { keyNamespace: k.namespace, keyName: k.name, rsaKey, padding: pad.padding }
      if (pad.oaepHash) input.oaepHash = pad.oaepHash
      return new RawRsaKeyringNode(input)
    }
    default:
      throw new Error(`${where}.type must be "raw-aes" or "raw-rsa", got ${JSON.stringify(k.type)}`)
  }
}

function parseSuite(s) {
  if (typeof s !== 'string' || !/^[0-9a-fA-F]{4}$/.test(s)) throw new Error('suite must be 4 hex digits, e.g. "0478"')
  const id = parseInt(s, 16)
  if (AlgorithmSuiteIdentifier[id] === undefined) throw new Error(`unknown algorithm suite ${s}`)
  return id
}

function suiteHex(id) {
  return Number(id).toString(16).padStart(4, '0')
}

function tempFor(out) {
  const dir = path.dirname(path.resolve(out))
  return path.join(dir, `.${path.basename(out)}.tmp-${process.pid}-${crypto.randomBytes(6).toString('hex')}`)
}

async function main() {
  const argv = process.argv.slice(2)
  if (argv.length !== 4) usage()
  const [op, specFile, inFile, outFile] = argv
  if (op !== 'encrypt' && op !== 'decrypt') usage()

  let spec
  try {
    spec = JSON.parse(fs.readFileSync(specFile, 'utf8'))
  } catch (e) {
    throw new Error(`cannot read spec ${specFile}: ${e.message}`)
  }
  if (!isObject(spec)) throw new Error('spec must be a JSON object')
  const specDir = path.dirname(path.resolve(specFile))

  if (!Array.isArray(spec.keyrings) || spec.keyrings.length === 0) throw new Error('spec.keyrings must be a non-empty array')
  const keyrings = spec.keyrings.map((k, i) => buildKeyring(k, i, specDir))
  const keyring =
    keyrings.length === 1 ? keyrings[0] : new MultiKeyringNode({ generator: keyrings[0], children: keyrings.slice(1) })

  // commitmentPolicy (optional): REQUIRE_ENCRYPT_REQUIRE_DECRYPT (default),
  // REQUIRE_ENCRYPT_ALLOW_DECRYPT or FORBID_ENCRYPT_ALLOW_DECRYPT (which
  // writes legacy v1 messages, for the Go side's v1 decrypt tests).
  const policyName = spec.commitmentPolicy || 'REQUIRE_ENCRYPT_REQUIRE_DECRYPT'
  if (CommitmentPolicy[policyName] === undefined) throw new Error(`unknown commitmentPolicy ${policyName}`)
  const clientOptions = { commitmentPolicy: CommitmentPolicy[policyName] }
  if (spec.maxEncryptedDataKeys !== undefined && spec.maxEncryptedDataKeys !== null && spec.maxEncryptedDataKeys !== 0) {
    if (!Number.isInteger(spec.maxEncryptedDataKeys) || spec.maxEncryptedDataKeys < 1) {
      throw new Error('maxEncryptedDataKeys must be a positive integer')
    }
    clientOptions.maxEncryptedDataKeys = spec.maxEncryptedDataKeys
  }
  const client =
    clientOptions.maxEncryptedDataKeys === undefined
      ? buildClient(clientOptions.commitmentPolicy)
      : buildClient(clientOptions)

  const context = spec.context === undefined || spec.context === null ? {} : checkStringMap(spec.context, 'context')
  const stream = spec.stream === true
  if (spec.stream !== undefined && typeof spec.stream !== 'boolean') throw new Error('stream must be a boolean')

  tmpPath = tempFor(outFile)

  if (op === 'encrypt') {
    // suite absent => the SDK's default for the commitment policy (0578)
    const opts = { encryptionContext: context }
    if (spec.suite !== undefined && spec.suite !== null) opts.suiteId = parseSuite(spec.suite)
    if (spec.frameLength !== undefined && spec.frameLength !== null) {
      if (!Number.isInteger(spec.frameLength)) throw new Error('frameLength must be an integer')
      opts.frameLength = spec.frameLength
    }
    if (stream) {
      await pipeline(
        fs.createReadStream(inFile),
        client.encryptStream(keyring, opts),
        fs.createWriteStream(tmpPath, { flags: 'wx' })
      )
    } else {
      const plaintext = fs.readFileSync(inFile)
      const { result } = await client.encrypt(keyring, plaintext, opts)
      fs.writeFileSync(tmpPath, result, { flag: 'wx' })
    }
    fs.renameSync(tmpPath, outFile)
    tmpPath = null
    return
  }

  // decrypt
  let header
  if (stream) {
    const dec = client.decryptStream(keyring)
    dec.once('MessageHeader', (h) => {
      header = h
    })
    await pipeline(fs.createReadStream(inFile), dec, fs.createWriteStream(tmpPath, { flags: 'wx' }))
  } else {
    const ciphertext = fs.readFileSync(inFile)
    const { plaintext, messageHeader } = await client.decrypt(keyring, ciphertext)
    header = messageHeader
    fs.writeFileSync(tmpPath, plaintext, { flag: 'wx' })
  }
  if (!header) throw new Error('no message header was parsed')
  const got = header.encryptionContext || {}
  for (const [k, v] of Object.entries(context)) {
    if (!Object.prototype.hasOwnProperty.call(got, k)) {
      throw new Error(`encryption context mismatch: key ${JSON.stringify(k)} not in message`)
    }
    if (got[k] !== v) {
      throw new Error(`encryption context mismatch: key ${JSON.stringify(k)} has value ${JSON.stringify(got[k])}, want ${JSON.stringify(v)}`)
    }
  }
  fs.renameSync(tmpPath, outFile)
  tmpPath = null
  const ctx = {}
  for (const [k, v] of Object.entries(got)) ctx[k] = v
  fs.writeSync(1, JSON.stringify({ context: ctx, suite: suiteHex(header.suiteId) }) + '\n')
}

main().then(() => {
  process.exitCode = 0
}, fail)
