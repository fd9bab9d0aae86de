// kafkajs 2.2.4 against a running broker ($VLTAVA_BOOTSTRAP), under node's
// built-in test runner. tests/python/test_kafkajs.py starts the broker and
// runs this file. kafkajs is a pure JavaScript client with old request
// versions: Produce v7, Fetch v11, ListOffsets v3 (no leader epoch in the
// response), Metadata v6, JoinGroup v5, SyncGroup v3, OffsetCommit v5,
// OffsetFetch v4.
//
// Every wait has a deadline; nothing sleeps to synchronise.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import kafkajs from 'kafkajs';

const { Kafka, logLevel } = kafkajs;

const bootstrap = process.env.VLTAVA_BOOTSTRAP;
assert.ok(bootstrap, 'set VLTAVA_BOOTSTRAP to the broker address');
const WAIT_MS = 30_000;

const kafka = new Kafka({
  clientId: 'vltava-kafkajs-tests',
  brokers: [bootstrap],
  logLevel: logLevel.ERROR,
  connectionTimeout: 5_000,
  requestTimeout: 15_000,
  retry: { retries: 3 },
});
const admin = kafka.admin();

before(async () => {
  await admin.connect();
});

after(async () => {
  await admin.disconnect();
});

async function createTopic(topic, numPartitions) {
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions, replicationFactor: 1 }],
    waitForLeaders: true,
  });
  assert.equal(created, true, `topic ${topic} created`);
}

/** Produces each record to its partition; checks the offset it was given. */
async function produce(topic, records) {
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  try {
    for (const r of records) {
      const [meta] = await producer.send({
        topic,
        acks: -1,
        messages: [
          {
            partition: r.partition,
            key: r.key,
            value: r.value,
            headers: r.headers,
            timestamp: String(r.timestamp),
          },
        ],
      });
      assert.deepEqual(
        [meta.partition, meta.errorCode, meta.baseOffset],
        [r.partition, 0, String(r.offset)],
      );
    }
  } finally {
    await producer.disconnect();
  }
}

/** A consumed message as the tests compare it. */
function seen(partition, message) {
  const headers = {};
  for (const [k, v] of Object.entries(message.headers ?? {})) {
    headers[k] = v.toString();
  }
  return {
    partition,
    offset: Number(message.offset),
    key: message.key === null ? null : message.key.toString(),
    value: message.value === null ? null : message.value.toString(),
    headers,
    timestamp: Number(message.timestamp),
  };
}

const byPosition = (a, b) => a.partition - b.partition || a.offset - b.offset;

/**
 * Runs a group member on `topic` until `count` messages arrived, calls
 * `whileRunning(consumer)` (to commit), then stops it. Returns every message
 * it saw, sorted, including any that arrived after the first `count`.
 */
async function consumeInGroup(groupId, topic, count, whileRunning = async () => {}) {
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
  await consumer.connect();
  const got = [];
  let reached;
  const enough = new Promise((resolve) => {
    reached = resolve;
  });
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        got.push(seen(partition, message));
        if (got.length >= count) reached();
      },
    });
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`consumed ${got.length} of ${count} in ${WAIT_MS} ms`)),
        WAIT_MS,
      );
    });
    try {
      await Promise.race([enough, timeout]);
    } finally {
      clearTimeout(timer);
    }
    await whileRunning(consumer);
  } finally {
    await consumer.disconnect();
  }
  return got.sort(byPosition);
}

async function committed(groupId, topic) {
  const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return entry.partitions
    .map(({ partition, offset }) => [partition, Number(offset)])
    .sort((a, b) => a[0] - b[0]);
}

const LIMIT = { timeout: 60_000 };

test('keyed records with headers come back exactly from the beginning', LIMIT, async () => {
  const topic = 'kafkajs-records';
  await createTopic(topic, 2);
  const now = Date.now();
  const hdrs = { trace: 'abc', n: '1' };
  const records = [
    { partition: 0, offset: 0, key: 'k1', value: 'v1', headers: hdrs, timestamp: now },
    { partition: 0, offset: 1, key: 'k2', value: 'v2', headers: hdrs, timestamp: now + 1 },
    { partition: 0, offset: 2, key: 'k3', value: null, headers: hdrs, timestamp: now + 2 },
    { partition: 1, offset: 0, key: 'k4', value: 'v4', headers: {}, timestamp: now + 3 },
  ];
  await produce(topic, records);

  const got = await consumeInGroup('kafkajs-reader', topic, records.length);
  assert.deepEqual(got, records);
});

test('a group commits and a new member resumes at the committed offset', LIMIT, async () => {
  const topic = 'kafkajs-group';
  const groupId = 'kafkajs-group-1';
  await createTopic(topic, 2);
  const now = Date.now();
  const rec = (partition, offset, key, i) => ({
    partition,
    offset,
    key,
    value: `value-${key}`,
    headers: { h: 'x' },
    timestamp: now + i,
  });
  const first = [
    rec(0, 0, 'a0', 0),
    rec(0, 1, 'a1', 1),
    rec(0, 2, 'a2', 2),
    rec(1, 0, 'b0', 3),
    rec(1, 1, 'b1', 4),
  ];
  const second = [rec(0, 3, 'a3', 5), rec(1, 2, 'b2', 6)];
  await produce(topic, first);

  // Commit less than was read on partition 0: the next member starts there.
  const commit = (offsets) => async (consumer) => {
    await consumer.commitOffsets(
      offsets.map(([partition, offset]) => ({ topic, partition, offset: String(offset) })),
    );
  };
  let got = await consumeInGroup(groupId, topic, first.length, commit([[0, 2], [1, 2]]));
  assert.deepEqual(got, first);
  assert.deepEqual(await committed(groupId, topic), [[0, 2], [1, 2]]);

  await produce(topic, second);
  got = await consumeInGroup(groupId, topic, 3, commit([[0, 4], [1, 3]]));
  assert.deepEqual(got, [first[2], ...second].sort(byPosition));
  assert.deepEqual(await committed(groupId, topic), [[0, 4], [1, 3]]);
});

test('offsets by time and the partition bounds', LIMIT, async () => {
  const topic = 'kafkajs-times';
  await createTopic(topic, 1);
  const base = Date.now() - 60_000;
  const records = [0, 1, 2].map((i) => ({
    partition: 0,
    offset: i,
    key: `t${i}`,
    value: 'v',
    headers: {},
    timestamp: base + i * 1000,
  }));
  await produce(topic, records);

  const bounds = await admin.fetchTopicOffsets(topic);
  assert.deepEqual(bounds, [{ partition: 0, offset: '3', high: '3', low: '0' }]);
  const cases = [
    [base, '0'],
    [base + 500, '1'],
    [base + 2000, '2'],
    // Past the last record Kafka answers -1; kafkajs then reports the end.
    [base + 2001, '3'],
  ];
  for (const [ts, offset] of cases) {
    const got = await admin.fetchTopicOffsetsByTimestamp(topic, ts);
    assert.deepEqual(got, [{ partition: 0, offset }], `offset at ${ts}`);
  }
});
