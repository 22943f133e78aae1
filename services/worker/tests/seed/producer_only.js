// Preloaded by the worker's crate test (`node --require ./producer_only.js seed_queue.js`).
// seed_queue.js is the seed's example unchanged (docs chapter 7.5.3): it starts its producer and
// its consumer, both on `tasks_queue` at amqp://localhost. With this file loaded, only the
// producer reaches the queue, so the worker under test is the queue's only consumer: the
// consumer's `channel.consume` closes that consumer's connection (once its earlier requests
// are answered) instead of consuming. The process then exits once the producer has closed its
// own connection.
'use strict';

const path = require('path');

const { Channel } = require(
  path.join(path.dirname(require.resolve('amqplib')), 'lib', 'channel_model.js'),
);

Channel.prototype.consume = async function consumeNothing(queue) {
  console.log(`[harness] the seed's consumer of ${queue} is left out`);
  // Queued behind the consumer's `prefetch`, whose reply then has arrived before the close.
  await this.checkQueue(queue);
  await new Promise((resolve) => this.connection.close(resolve));
  return { consumerTag: '' };
};
