/** The frame a message crosses nodes in (src/cluster/wire.ts): everything comes back; anything else is refused, never thrown. */
import { describe, expect, test } from 'bun:test'
import type { Message } from '../src/message.ts'
import { decodeFrame, encodeFrame, messageOf } from '../src/cluster/wire.ts'

const message = (extra: Partial<Message> = {}): Message => ({ topic: 'sensors/ü温/1', payload: Buffer.from([0, 1, 254, 255]), qos: 1, retain: false, properties: undefined, expiresAt: 0, origin: undefined, ...extra })

describe('cluster wire frames', () => {
  test('a message comes back whole: topic, payload, QoS, retain, origin, expiry, MQTT 5 properties, run and sequence', () => {
    const cases: Array<[Message, number?, number?]> = [
      [message()],
      [message({ qos: 0, retain: true, origin: 'client-ü', expiresAt: 1_764_460_800_123 }), 0xfffffffe, 2 ** 40 + 7],
      [message({ qos: 2, payload: Buffer.alloc(0), properties: { contentType: 'a/b', correlationData: Buffer.from([9, 8]), userProperties: { k: ['1', '2'] }, responseTopic: 'r/1', payloadFormatIndicator: true } })],
      [message({ topic: '', payload: Buffer.alloc(70_000, 7) })],
    ]
    for (const [m, run, seq] of cases) {
      const frame = decodeFrame(encodeFrame('node-1', m, run, seq))!
      expect(frame.meta.node).toBe('node-1')
      expect(frame.meta.run).toBe(run)
      expect(frame.meta.seq).toBe(seq)
      const back = messageOf(frame.meta, frame.payload)
      expect({ ...back, payload: [...back.payload] }).toEqual({ ...m, payload: [...m.payload], owned: true, remote: true })
    }
  })

  test('a frame cut short at any byte, of another version, or of garbage is refused (null), never thrown', () => {
    const whole = encodeFrame('node-1', message({ origin: 'c', properties: { contentType: 'x' } }), 1, 2)
    // Cut anywhere before its 4-byte payload: refused. (Within the payload it is a shorter payload: the body's length is NATS's.)
    for (let end = 0; end < whole.length - 4; end++) expect(decodeFrame(whole.subarray(0, end))).toBeNull()
    const other = Buffer.from(whole)
    other[0] = 2
    expect(decodeFrame(other)).toBeNull()
    for (let seed = 1; seed < 2000; seed++) {
      const junk = Buffer.from(Array.from({ length: seed % 64 }, (_, i) => (seed * 31 + i * 7) & 0xff))
      expect(() => decodeFrame(junk)).not.toThrow()
    }
  })
})
