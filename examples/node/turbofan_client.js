#!/usr/bin/env node
// turbofan_client.js: play one episode of gymrpc/Turbofan-v0 from JavaScript.
//
// This is a complete gymrpc client in one file, written to be read top to bottom.
// It talks to a gymrpc server with nothing but the .proto files of the protocol and
// the two standard gRPC packages for Node (@grpc/grpc-js, @grpc/proto-loader):
//
//   1. GetServerInfo   the handshake: refuse a server whose protocol major is not 1.
//   2. CreateSession   one turbofan engine (num_envs 1) with the requested step_size.
//   3. StreamSession   reset with a seed, then one step per block of flights, each
//                      request numbered 1, 2, 3, ... and answered by one response,
//                      until the episode terminates (failure or sale) or truncates.
//   4. CloseSession    free the server's environments.
//
// The policy is the simplest useful maintenance rule: keep flying, repair every few
// blocks, sell late. It ignores the observations on purpose; the point is the protocol.
//
// Usage:  node turbofan_client.js [--target host:port] [--token T] [--seed 7]
//                                 [--step-size 10] [--repair-every 6] [--sell-at 30]
//                                 [--verbose]
// The last line printed is `return: <float64>`, the undiscounted episode return.
// Exit status: 0 on success, 1 on any protocol, network or server error, 2 on bad flags.

'use strict';

const path = require('node:path');
const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const googleProtoFiles = require('google-proto-files');

// ---------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------

const ENV_ID = 'gymrpc/Turbofan-v0';
// The protocol version this client was written against. Minor versions only add
// things, so any 1.x server is fine; a different major must be refused.
const PROTOCOL_MAJOR = 1;

// Turbofan actions (Discrete(3)), applied at the first flight of a block.
const KEEP_FLYING = 0;
const REPAIR = 1;
const SELL = 2;
const ACTION_NAMES = ['keep flying', 'repair', 'sell'];

// info["reason"] codes of the turbofan environment.
const REASONS = { 0: 'running', 1: 'engine failure', 2: 'sold', 3: 'truncated (time limit)' };

// One observation row of the turbofan holds 9 sensor values.
const SENSORS_PER_ROW = 9;

// Unary calls are quick; anything slower than this means something is wrong, and a
// deadline turns "hangs forever" into a clean DEADLINE_EXCEEDED.
const UNARY_DEADLINE_MS = 15_000;
// The stream lives for the whole episode (at most 1000 flights, a few hundred
// requests); this bounds the episode as a whole.
const STREAM_DEADLINE_MS = 300_000;

// ---------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------

class UsageError extends Error {}

// Integer flags are parsed strictly: "6x" or "1e3" are mistakes, not numbers.
function parseIntegerFlag(name, text, min, max) {
  if (!/^-?\d+$/.test(text)) throw new UsageError(`--${name} must be an integer, got '${text}'`);
  const value = Number(text);
  if (value < min || value > max) {
    throw new UsageError(`--${name} must be in ${min}..${max}, got ${text}`);
  }
  return value;
}

function parseCommandLine(argv) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      target: { type: 'string', default: process.env.GYMRPC_TARGET || '127.0.0.1:50051' },
      token: { type: 'string', default: process.env.GYMRPC_TOKEN || '' },
      seed: { type: 'string', default: '7' },
      'step-size': { type: 'string', default: '10' },
      'repair-every': { type: 'string', default: '6' },
      'sell-at': { type: 'string', default: '30' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return { help: true };
  // Seeds are uint64 on the wire: a JS number cannot hold all of them exactly, so the
  // seed stays a BigInt and travels as a decimal string (see "Loading" below).
  if (!/^\d+$/.test(values.seed) || BigInt(values.seed) >= 2n ** 64n) {
    throw new UsageError(`--seed must be an integer in 0..2^64-1, got '${values.seed}'`);
  }
  return {
    target: values.target,
    token: values.token,
    seed: BigInt(values.seed),
    // 1..100 is the range the turbofan accepts; the server would reject others too,
    // with INVALID_ARGUMENT (reason INVALID_OPTION), but a flag error is friendlier.
    stepSize: parseIntegerFlag('step-size', values['step-size'], 1, 100),
    // 0 disables repairs / selling.
    repairEvery: parseIntegerFlag('repair-every', values['repair-every'], 0, 1_000_000),
    sellAt: parseIntegerFlag('sell-at', values['sell-at'], 0, 1_000_000),
    verbose: values.verbose,
  };
}

// ---------------------------------------------------------------------------------
// The policy: repair every few blocks, sell late
// ---------------------------------------------------------------------------------

// `block` counts the steps of the episode from 1. Selling wins over repairing.
function chooseAction(block, { repairEvery, sellAt }) {
  if (sellAt > 0 && block >= sellAt) return SELL;
  if (repairEvery > 0 && block % repairEvery === 0) return REPAIR;
  return KEEP_FLYING;
}

// ---------------------------------------------------------------------------------
// Loading the protocol
// ---------------------------------------------------------------------------------

// proto-loader reads the .proto files at run time: no code generation step. The
// include path needs the repository's proto/ directory (for gymrpc/v1/*.proto) and a
// directory holding google/rpc/status.proto, which env_service.proto imports for
// per-request errors; the google-proto-files package has it (and error_details.proto,
// loaded too so that this client can read the ErrorInfo in error details).
// google/protobuf/{struct,duration}.proto need no directory: protobufjs, under
// proto-loader, ships the well-known types.
const PROTO_DIR = path.resolve(__dirname, '..', '..', 'proto');
const GOOGLE_PROTO_DIR = path.dirname(googleProtoFiles.getProtoPath());

const packageDefinition = protoLoader.loadSync(
  ['gymrpc/v1/env_service.proto', 'google/rpc/error_details.proto'],
  {
    includeDirs: [PROTO_DIR, GOOGLE_PROTO_DIR],
    // Keep the .proto field names (session_id, not sessionId) so the code reads like
    // the protocol's documentation.
    keepCase: true,
    // 64-bit integers (sequence numbers, seeds, tensor shapes, limits) arrive as
    // decimal strings: a JS number silently rounds above 2^53. Convert with BigInt()
    // or, for values known to be small, Number(). On the way out, protobufjs accepts
    // numbers or decimal strings for 64-bit fields; this client sends strings.
    longs: String,
    // Enums arrive as their names ("DATA_TYPE_FLOAT64"), and may be sent as names.
    enums: String,
    // Unset scalar fields read as their default (0, "", empty bytes) and unset
    // message fields as null, as in every other protobuf language.
    defaults: true,
    // For every oneof, a virtual field names the member that is set, for example
    // response.response === 'step' or value.kind === 'array_value'.
    oneofs: true,
  },
);
const gymrpcV1 = grpc.loadPackageDefinition(packageDefinition).gymrpc.v1;

// ---------------------------------------------------------------------------------
// Tensors: numbers travel as raw little-endian bytes (tensor.proto)
// ---------------------------------------------------------------------------------

// float16 has no DataView getter before Node 24; decode it by hand.
function float16At(view, offset) {
  const bits = view.getUint16(offset, true);
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

// Item size and element reader of every DataType. DataView is used rather than typed
// arrays over the buffer because typed arrays use the machine's byte order and need
// aligned offsets; the protocol fixes little-endian, and a Buffer that protobufjs
// decoded may start at any offset of a larger pooled buffer.
const DTYPES = {
  DATA_TYPE_BOOL: {
    size: 1,
    read(view, offset) {
      const byte = view.getUint8(offset);
      // The protocol allows only 0 and 1; anything else is a malformed tensor.
      if (byte > 1) throw new Error(`bool byte ${byte} at offset ${offset} is not 0 or 1`);
      return byte === 1;
    },
  },
  DATA_TYPE_INT8: { size: 1, read: (view, offset) => view.getInt8(offset) },
  DATA_TYPE_INT16: { size: 2, read: (view, offset) => view.getInt16(offset, true) },
  DATA_TYPE_INT32: { size: 4, read: (view, offset) => view.getInt32(offset, true) },
  // 64-bit integers become BigInts: exact whatever their size.
  DATA_TYPE_INT64: { size: 8, read: (view, offset) => view.getBigInt64(offset, true) },
  DATA_TYPE_UINT8: { size: 1, read: (view, offset) => view.getUint8(offset) },
  DATA_TYPE_UINT16: { size: 2, read: (view, offset) => view.getUint16(offset, true) },
  DATA_TYPE_UINT32: { size: 4, read: (view, offset) => view.getUint32(offset, true) },
  DATA_TYPE_UINT64: { size: 8, read: (view, offset) => view.getBigUint64(offset, true) },
  DATA_TYPE_FLOAT16: { size: 2, read: float16At },
  DATA_TYPE_FLOAT32: { size: 4, read: (view, offset) => view.getFloat32(offset, true) },
  DATA_TYPE_FLOAT64: { size: 8, read: (view, offset) => view.getFloat64(offset, true) },
};

// Decode a gymrpc.v1.Tensor into { dtype, shape, values } with values a flat array in
// row-major order, checking every encoding rule of tensor.proto on the way: a known
// dtype, non-negative dimensions, and exactly product(shape) * itemsize bytes.
// `expected` may name the dtype and shape the caller relies on; `where` names the
// field in error messages.
function decodeTensor(tensor, where, expected = {}) {
  if (tensor == null) throw new Error(`${where}: missing tensor`);
  const dtype = DTYPES[tensor.dtype];
  // An enum value this client does not know arrives as a bare number.
  if (dtype === undefined) throw new Error(`${where}: unknown dtype ${tensor.dtype}`);
  const shape = tensor.shape.map((dimension) => {
    const size = BigInt(dimension);
    if (size < 0n || size > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new Error(`${where}: bad dimension ${dimension} in shape [${tensor.shape}]`);
    }
    return Number(size);
  });
  // An empty shape is a scalar: the empty product is 1 element.
  const count = shape.reduce((product, size) => product * size, 1);
  const data = tensor.data;
  if (data.length !== count * dtype.size) {
    throw new Error(
      `${where}: ${data.length} data bytes for shape [${shape}] of ${tensor.dtype}; ` +
        `expected ${count} x ${dtype.size} = ${count * dtype.size}`,
    );
  }
  if (expected.dtype !== undefined && tensor.dtype !== expected.dtype) {
    throw new Error(`${where}: dtype ${tensor.dtype}, expected ${expected.dtype}`);
  }
  if (expected.shape !== undefined && shape.join(',') !== expected.shape.join(',')) {
    throw new Error(`${where}: shape [${shape}], expected [${expected.shape}]`);
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const values = new Array(count);
  for (let i = 0; i < count; i += 1) values[i] = dtype.read(view, i * dtype.size);
  return { dtype: tensor.dtype, shape, values };
}

// Encode integers as a DATA_TYPE_INT64 Tensor of shape (n,): 8 little-endian bytes each.
function int64Tensor(integers) {
  const data = Buffer.alloc(integers.length * 8);
  integers.forEach((integer, i) => data.writeBigInt64LE(BigInt(integer), i * 8));
  return { dtype: 'DATA_TYPE_INT64', shape: [String(integers.length)], data };
}

// Observations and actions are Values (value.proto); for Box and Discrete spaces the
// Value holds an array_value Tensor whose first dimension is the sub-environment.
function arrayOf(value, where) {
  if (value == null || value.kind !== 'array_value') {
    throw new Error(`${where}: expected an array_value, got ${value ? value.kind : 'nothing'}`);
  }
  return value.array_value;
}

// Read info[key] for sub-environment `index` from a vector info dict (a ValueMap),
// honouring the `_key` mask that says which sub-environments carry the key. Returns
// undefined when the key is absent or masked out for that sub-environment.
function infoItem(info, key, index = 0) {
  const entries = new Map((info ? info.entries : []).map((entry) => [entry.key, entry.value]));
  if (!entries.has(key) || !entries.has(`_${key}`)) return undefined;
  const mask = decodeTensor(arrayOf(entries.get(`_${key}`), `info._${key}`), `info._${key}`, {
    dtype: 'DATA_TYPE_BOOL',
  });
  if (!mask.values[index]) return undefined;
  return decodeTensor(arrayOf(entries.get(key), `info.${key}`), `info.${key}`).values[index];
}

// ---------------------------------------------------------------------------------
// Errors: google.rpc.Status, with an ErrorInfo in its details (errors.proto)
// ---------------------------------------------------------------------------------

// Message types from the package definition can decode raw bytes themselves.
const STATUS_TYPE = packageDefinition['google.rpc.Status'];
const ERROR_INFO_TYPE = packageDefinition['google.rpc.ErrorInfo'];
const ERROR_INFO_URL = 'type.googleapis.com/google.rpc.ErrorInfo';

// "INVALID_ARGUMENT: <message> [INVALID_ACTION]": the gRPC code by name, the server's
// message (a complete sentence meant for users) and the machine-readable reason.
function describeStatus(status) {
  const codeName = grpc.status[status.code] || `code ${status.code}`;
  const info = (status.details || []).find((detail) => detail.type_url === ERROR_INFO_URL);
  const reason = info ? ` [${ERROR_INFO_TYPE.deserialize(info.value).reason}]` : '';
  return `${codeName}: ${status.message}${reason}`;
}

// A failed call (unary or a whole stream) carries the same google.rpc.Status, encoded
// in the `grpc-status-details-bin` trailer; gRPC's own errors (no connection,
// deadline) have no such trailer and are described from the code and text alone.
function describeCallError(error) {
  const [details] = error.metadata ? error.metadata.get('grpc-status-details-bin') : [];
  if (details) return describeStatus(STATUS_TYPE.deserialize(details));
  // (grpc-js appends an empty "Resolution note:" to connection errors; drop it.)
  const message = (error.details || error.message).replace(/\.?\s*Resolution note:\s*$/, '');
  return describeStatus({ code: error.code, message });
}

// ---------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------

// Every call carries the token, when there is one, as `authorization: Bearer <token>`.
// (grpc-js refuses call credentials on an insecure channel, so plain metadata it is.)
function callMetadata(token) {
  const metadata = new grpc.Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  return metadata;
}

// A unary call as a promise, with a deadline.
function unary(client, method, request, token) {
  return new Promise((resolve, reject) => {
    const options = { deadline: Date.now() + UNARY_DEADLINE_MS };
    client[method](request, callMetadata(token), options, (error, response) => {
      if (error) reject(new Error(`${method} failed: ${describeCallError(error)}`));
      else resolve(response);
    });
  });
}

// One StreamSession stream, used in lock step: send one request, read its response.
// (The protocol allows pipelining several requests ahead; a policy that needs each
// observation to choose the next action cannot use it, so this client does not.)
class SessionStream {
  constructor(client, sessionId, token) {
    this.sessionId = sessionId;
    this.call = client.StreamSession(callMetadata(token), {
      deadline: Date.now() + STREAM_DEADLINE_MS,
    });
    // Node streams are async iterables: next() resolves with the next response, or
    // rejects with the call's error status if the whole stream fails.
    this.responses = this.call[Symbol.asyncIterator]();
    // Sequence numbers MUST increase strictly per session; this session is new, so
    // 1, 2, 3, ... BigInt because the field is a uint64.
    this.sequence = 0n;
  }

  // Send {sequence, <kind>: body} and return the matching response's <kind> member.
  async request(kind, body) {
    this.sequence += 1n;
    this.call.write({ sequence: this.sequence.toString(), [kind]: body });
    let next;
    try {
      next = await this.responses.next();
    } catch (error) {
      throw new Error(`StreamSession failed: ${describeCallError(error)}`);
    }
    if (next.done) throw new Error(`StreamSession ended before answering request ${this.sequence}`);
    const response = next.value;
    // Responses come in request order, each echoing its request's sequence.
    if (BigInt(response.sequence) !== this.sequence) {
      throw new Error(`response for sequence ${response.sequence}, expected ${this.sequence}`);
    }
    // A failed request gets an `error` (a google.rpc.Status) instead of a result. The
    // stream would go on, but this client cannot do anything useful after one.
    if (response.response === 'error') {
      const problem = describeStatus(response.error);
      throw new Error(`${kind} (sequence ${this.sequence}) failed: ${problem}`);
    }
    if (response.response !== kind) {
      throw new Error(`expected a ${kind} response, got ${response.response}`);
    }
    return response[kind];
  }

  // Half-close: the server then ends the stream with OK once all responses are sent.
  async close() {
    this.call.end();
    try {
      const next = await this.responses.next();
      if (!next.done) throw new Error('StreamSession sent a response nobody asked for');
    } catch (error) {
      if (error.code === undefined) throw error;
      throw new Error(`StreamSession failed: ${describeCallError(error)}`);
    }
  }

  // Drop the stream without waiting (on errors).
  cancel() {
    this.call.cancel();
  }
}

// ---------------------------------------------------------------------------------
// The episode
// ---------------------------------------------------------------------------------

// The batched observation of the turbofan: float32, shape (num_envs, step_size, 9),
// one row of 9 sensors per flight of the block.
function decodeObservations(value, stepSize, where) {
  return decodeTensor(arrayOf(value, where), where, {
    dtype: 'DATA_TYPE_FLOAT32',
    shape: [1, stepSize, SENSORS_PER_ROW],
  });
}

// The only element of a per-environment tensor of shape (num_envs,) = (1,).
function onlyElement(tensor, where, dtype) {
  return decodeTensor(tensor, where, { dtype, shape: [1] }).values[0];
}

async function playEpisode(stream, args) {
  const reset = await stream.request('reset', {
    session_id: stream.sessionId,
    // `seeding` is a oneof: setting `seed` seeds sub-environment i with seed + i.
    seed: args.seed.toString(),
  });
  decodeObservations(reset.observations, args.stepSize, 'reset.observations');

  let episodeReturn = 0; // a JS number is an IEEE-754 float64, like the rewards
  let blocks = 0;
  for (;;) {
    blocks += 1;
    const action = chooseAction(blocks, args);
    const step = await stream.request('step', {
      session_id: stream.sessionId,
      // Discrete(3) batched over num_envs = 1: an int64 tensor of shape (1,).
      actions: { array_value: int64Tensor([action]) },
    });
    const observations = decodeObservations(step.observations, args.stepSize, 'step.observations');
    const reward = onlyElement(step.rewards, 'step.rewards', 'DATA_TYPE_FLOAT64');
    const terminated = onlyElement(step.terminations, 'step.terminations', 'DATA_TYPE_BOOL');
    const truncated = onlyElement(step.truncations, 'step.truncations', 'DATA_TYPE_BOOL');
    episodeReturn += reward;
    if (args.verbose) {
      // Rows after the last real flight of a block (an episode that ended inside it)
      // repeat the last real row; info["n_valid"] (an int64, so a BigInt) counts the
      // real ones. Row-major order: element [0, row, column] is at row * 9 + column.
      const valid = Number(infoItem(step.info, 'n_valid') ?? BigInt(args.stepSize));
      const hpcTout = observations.values[(valid - 1) * SENSORS_PER_ROW + 0];
      console.log(
        `block ${blocks}: ${ACTION_NAMES[action]}, reward ${reward}, ` +
          `${valid} sub-steps, HPC_Tout ${hpcTout.toFixed(2)} K`,
      );
    }
    if (terminated || truncated) {
      return {
        episodeReturn,
        blocks,
        reason: infoItem(step.info, 'reason'),
        subSteps: infoItem(step.info, 'step'),
        repairs: infoItem(step.info, 'repairs'),
      };
    }
  }
}

async function main(args) {
  const credentials = grpc.credentials.createInsecure();

  // 1. Handshake.
  const handshakeClient = new gymrpcV1.EnvService(args.target, credentials);
  let server;
  try {
    server = await unary(handshakeClient, 'GetServerInfo', {}, args.token);
  } finally {
    handshakeClient.close();
  }
  const version = server.protocol_version || { major: 0, minor: 0 };
  if (version.major !== PROTOCOL_MAJOR) {
    throw new Error(
      `server speaks gymrpc protocol ${version.major}.${version.minor}; ` +
        `this client speaks ${PROTOCOL_MAJOR}.x`,
    );
  }
  console.log(
    `server ${server.server_version}, protocol ${version.major}.${version.minor}, ` +
      `caller ${server.identity.user} (${server.identity.role})`,
  );

  // The real channel matches the server's message limit, as the protocol asks: gRPC's
  // 4 MiB default receive limit is too small for large batches. (One engine never
  // needs it; a client with thousands of envs does.)
  const maxBytes = Math.min(Number(server.limits.max_message_bytes) || 0, 2 ** 31 - 1);
  const channelOptions =
    maxBytes > 0
      ? { 'grpc.max_receive_message_length': maxBytes, 'grpc.max_send_message_length': maxBytes }
      : {};
  const client = new gymrpcV1.EnvService(args.target, credentials, channelOptions);

  try {
    // 2. Create the session. env_options values are Values: step_size is an int.
    const { session } = await unary(
      client,
      'CreateSession',
      {
        env_id: ENV_ID,
        num_envs: 1,
        autoreset_mode: 'AUTORESET_MODE_NEXT_STEP',
        env_options: { step_size: { int_value: String(args.stepSize) } },
      },
      args.token,
    );
    // Check the spaces are what this client encodes: actions Discrete(3) of int64
    // (DATA_TYPE_UNSPECIFIED means int64 for Discrete).
    const actionSpace = session.single_action_space;
    if (
      actionSpace.kind !== 'discrete' ||
      Number(actionSpace.discrete.n) !== 3 ||
      !['DATA_TYPE_INT64', 'DATA_TYPE_UNSPECIFIED'].includes(actionSpace.discrete.dtype)
    ) {
      throw new Error(`unexpected action space ${JSON.stringify(actionSpace)}`);
    }
    console.log(`session ${session.session_id}: ${session.env_id}, step_size ${args.stepSize}`);

    // 3. Play, then 4. close the session whatever happened.
    let result;
    const stream = new SessionStream(client, session.session_id, args.token);
    try {
      result = await playEpisode(stream, args);
      await stream.close();
    } catch (error) {
      stream.cancel();
      throw error;
    } finally {
      try {
        await unary(client, 'CloseSession', { session_id: session.session_id }, args.token);
      } catch (error) {
        // Do not hide the error that brought us here; the server reaps idle sessions.
        console.error(`warning: ${error.message}`);
      }
    }

    const reason = REASONS[result.reason] || `reason ${result.reason}`;
    console.log(
      `played ${result.blocks} blocks (${result.subSteps} sub-steps, ` +
        `${result.repairs} repairs); the episode ended: ${reason}`,
    );
    // String(x) of a JS number is the shortest decimal that reads back as the same
    // float64, so this is the exact return, not a rounding of it.
    console.log(`return: ${String(result.episodeReturn)}`);
  } finally {
    client.close();
  }
}

// ---------------------------------------------------------------------------------

if (require.main === module) {
  let args;
  try {
    args = parseCommandLine(process.argv.slice(2));
  } catch (error) {
    console.error(`error: ${error.message}`);
    process.exit(2);
  }
  if (args.help) {
    console.log(
      'usage: node turbofan_client.js [--target host:port] [--token T] [--seed N]\n' +
        '       [--step-size N] [--repair-every N] [--sell-at N] [--verbose]',
    );
    process.exit(0);
  }
  // Exit explicitly: a channel that gRPC is still tearing down must not keep the
  // process alive, and the status code is what scripts and tests look at.
  main(args).then(
    () => process.exit(0),
    (error) => {
      console.error(`error: ${error.message}`);
      process.exit(1);
    },
  );
}

module.exports = { chooseAction, decodeTensor, int64Tensor, infoItem };
