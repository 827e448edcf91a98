// Minimal structural parser for ESDK message format v2 (framed) messages.
// It does no cryptography: it only walks the header, the frames and the
// optional signature footer so the framing can be inspected and asserted.
'use strict'

const SIGNED_SUITES = new Set([0x0578])

function parseMessage(buf) {
  let off = 0
  const need = (n, what) => {
    if (off + n > buf.length) throw new Error(`truncated message reading ${what} at offset ${off}`)
  }
  const u8 = (what) => {
    need(1, what)
    return buf[off++]
  }
  const u16 = (what) => {
    need(2, what)
    const v = buf.readUInt16BE(off)
    off += 2
    return v
  }
  const u32 = (what) => {
    need(4, what)
    const v = buf.readUInt32BE(off)
    off += 4
    return v
  }
  const bytes = (n, what) => {
    need(n, what)
    const v = buf.subarray(off, off + n)
    off += n
    return v
  }

  const version = u8('version')
  if (version !== 2) throw new Error(`not a v2 message (version byte ${version})`)
  const suiteId = u16('suite')
  const messageId = bytes(32, 'message id')
  const aadLength = u16('aad length')
  const aadStart = off
  const context = {}
  if (aadLength > 0) {
    const count = u16('aad count')
    for (let i = 0; i < count; i++) {
      const k = bytes(u16('aad key length'), 'aad key').toString('utf8')
      const v = bytes(u16('aad value length'), 'aad value').toString('utf8')
      context[k] = v
    }
  }
  if (off !== aadStart + aadLength) throw new Error('AAD length mismatch')
  const edkCount = u16('edk count')
  const edks = []
  for (let i = 0; i < edkCount; i++) {
    const providerId = bytes(u16('provider id length'), 'provider id').toString('utf8')
    const providerInfo = bytes(u16('provider info length'), 'provider info')
    const ciphertext = bytes(u16('edk length'), 'edk')
    edks.push({ providerId, providerInfo, ciphertext })
  }
  const contentType = u8('content type')
  if (contentType !== 2) throw new Error(`not a framed message (content type ${contentType})`)
  const frameLength = u32('frame length')
  const commitKey = bytes(32, 'commitment key')
  const headerLength = off
  const headerAuthTag = bytes(16, 'header auth tag')

  const frames = []
  for (;;) {
    const seqOrMarker = u32('sequence number')
    if (seqOrMarker === 0xffffffff) {
      const seq = u32('final sequence number')
      const iv = bytes(12, 'iv')
      const contentLength = u32('final content length')
      if (contentLength > frameLength) throw new Error('final frame longer than frame length')
      bytes(contentLength, 'final frame content')
      bytes(16, 'final frame tag')
      frames.push({ seq, final: true, iv, contentLength })
      break
    }
    const iv = bytes(12, 'iv')
    bytes(frameLength, 'frame content')
    bytes(16, 'frame tag')
    frames.push({ seq: seqOrMarker, final: false, iv, contentLength: frameLength })
  }
  const bodyEnd = off
  let signature = null
  if (SIGNED_SUITES.has(suiteId)) {
    signature = bytes(u16('signature length'), 'signature')
  }
  if (off !== buf.length) throw new Error(`${buf.length - off} trailing bytes after message`)
  return {
    version,
    suiteId,
    messageId,
    context,
    edks,
    contentType,
    frameLength,
    commitKey,
    headerLength,
    headerAuthTag,
    frames,
    bodyEnd,
    signature,
  }
}

module.exports = { parseMessage }
