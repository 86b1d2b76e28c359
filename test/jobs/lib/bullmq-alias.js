'use strict';
// Preloaded with `node -r` so that require('bullmq') in example-worker.js (written as users
// write it) resolves to the major under test: BULLMQ_MAJOR=5 -> bullmq5, 6 -> bullmq6.
const Module = require('node:module');
const target = `bullmq${process.env.BULLMQ_MAJOR || '6'}`;
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  return resolve.call(this, request === 'bullmq' ? target : request, ...rest);
};
