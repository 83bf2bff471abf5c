/** The frame a message crosses nodes in (src/cluster/wire.ts): everything comes back; anything else is refused, never thrown. */
import { describe, expect, test } from 'bun:test'
import type { Message } from '../src/message.ts'
import { Batch, batchHeader, eachFrame, encodeFrame, frameMessage, sentBy } from '../src/cluster/wire.ts'

const message = (extra: Partial<Message> = {}): Message => ({ topic: 'sensors/ü温/1', payload: Buffer.from([0, 1, 254, 255]), qos: 1, retain: false, properties: undefined, expiresAt: 0, origin: undefined, ...extra })

describe('cluster wire frames', () => {
  test('a message comes back whole: topic, payload, QoS, retain, origin, expiry, MQTT 5 properties', () => {
    const cases: Message[] = [
      message(),
      message({ qos: 0, retain: true, origin: 'client-ü', expiresAt: 1_764_460_800_123 }),
      message({ qos: 2, payload: Buffer.alloc(0), properties: { contentType: 'a/b', correlationData: Buffer.from([9, 8]), userProperties: { k: ['1', '2'] }, responseTopic: 'r/1', payloadFormatIndicator: true } }),
      message({ topic: '', payload: Buffer.alloc(70_000, 7) }),
    ]
    for (const m of cases) {
      const frame = encodeFrame('node-1', m)
      expect(sentBy(frame, Buffer.from('node-1'))).toBe(true)
      expect(sentBy(frame, Buffer.from('node-2'))).toBe(false)
      expect(sentBy(frame, Buffer.from('node-'))).toBe(false)
      const back = frameMessage(frame)!
      expect({ ...back, payload: [...back.payload] }).toEqual({ ...m, payload: [...m.payload], owned: false, remote: true })
    }
  })

  test('a frame cut short at any byte, of another version, or of garbage is refused (null), never thrown', () => {
    const whole = encodeFrame('node-1', message({ origin: 'c', properties: { contentType: 'x' } }))
    // Cut anywhere before its 4-byte payload: refused. (Within the payload it is a shorter payload: the body's length is NATS's.)
    for (let end = 0; end < whole.length - 4; end++) expect(frameMessage(whole.subarray(0, end))).toBeNull()
    const other = Buffer.from(whole)
    other[0] = 2
    expect(frameMessage(other)).toBeNull()
    for (let seed = 1; seed < 2000; seed++) {
      const junk = Buffer.from(Array.from({ length: seed % 64 }, (_, i) => (seed * 31 + i * 7) & 0xff))
      expect(() => frameMessage(junk)).not.toThrow()
    }
  })

  test('a batch carries its run and sequence and several frames in order, each whole; a single frame passes as itself; a batch cut short is refused', () => {
    const messages = [message({ qos: 0, topic: 'a' }), message({ qos: 0, topic: 'b', payload: Buffer.alloc(0) }), message({ qos: 0, topic: 'c', payload: Buffer.alloc(3000, 1), properties: { contentType: 'x' } })]
    const frames = messages.map((m) => encodeFrame('n', m))
    const writing = new Batch(8) // smaller than what goes in: it grows
    for (const m of messages) writing.add('n', m)
    const batch = writing.finish(0xfffffffe, 2 ** 40 + 7)
    expect(writing.count).toBe(3)
    expect(batch.length).toBe(13 + frames.reduce((n, f) => n + 4 + f.length, 0)) // each frame as encodeFrame writes it
    expect(batchHeader(batch)).toEqual({ run: 0xfffffffe, seq: 2 ** 40 + 7 })
    expect(batchHeader(frames[0]!)).toBeNull()
    const topics: string[] = []
    expect(eachFrame(batch, (f) => topics.push(frameMessage(f)!.topic))).toBe(true)
    expect(topics).toEqual(['a', 'b', 'c'])
    const single: string[] = []
    expect(eachFrame(frames[0]!, (f) => single.push(frameMessage(f)!.topic))).toBe(true)
    expect(single).toEqual(['a'])
    for (let end = 1; end < batch.length; end++) {
      const seen: string[] = []
      const whole = eachFrame(batch.subarray(0, end), (f) => seen.push(frameMessage(f)?.topic ?? 'refused'))
      // Every frame handed on is whole; a cut inside a frame's length or bytes says so.
      expect(seen.every((t) => t !== 'refused')).toBe(true)
      expect(whole).toBe([13, frames[0]!.length + 17, frames[0]!.length + frames[1]!.length + 21].includes(end))
    }
  })
})
