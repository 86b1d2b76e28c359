// The email Worker for roomcast's offline notifications (docs/jobs.md quotes this file, and
// test/jobs/bullmq.test.js runs it against bullmq 5 and 6).
//
//   npm install bullmq ioredis
//   REDIS_URL=redis://127.0.0.1:6379 node example-worker.js
//
// roomcast adds one job per notification for a user who is offline on every node: queue
// "email", job name "send-email", job id = the notification's id, data = the whole
// notification as it was published. Attempts, backoff and retention come with each job.
'use strict';
const { Worker } = require('bullmq');
const IORedis = require('ioredis');

const connection = new IORedis(process.env.REDIS_URL || 'redis://127.0.0.1:6379', {
  maxRetriesPerRequest: null, // BullMQ requires it for a Worker's connection
});

// Put your mailer here. Throwing (or rejecting) fails this attempt: BullMQ retries the job per
// its attempts and backoff, then keeps it in the failed set.
async function sendEmail(message) {
  console.log(JSON.stringify({ sent: message }));
}

const worker = new Worker('email', async (job) => {
  const n = job.data; // {"id", "user", "ns", "event", "data": {...}, "email": {...}}
  await sendEmail({
    to: n.user,
    subject: n.email?.subject ?? n.data?.title ?? 'New notification',
    text: n.data?.message ?? JSON.stringify(n.data),
    notificationId: n.id,
  });
}, { connection, prefix: 'bull', concurrency: 10 });

worker.on('failed', (job, err) => {
  console.error(`email job ${job?.id} attempt ${job?.attemptsMade} failed: ${err.message}`);
});

process.on('SIGTERM', async () => {
  await worker.close();
  await connection.quit();
  process.exit(0);
});
