// Two socket.io-client 4 clients chat through chat-service's /socket.io/ (the seed's events).
//
//   node scenario.js <base URL> <transports: default | websocket | polling> [<alice's token>]
//
// alice (signed in with the token in `auth`, or a guest) connects and gets `welcome` and
// `history`; bob (a guest) connects: alice gets `userJoined`. alice sends `chatMessage` with an
// ack: both get it, alice's ack carries it. bob moves to another room with `join` (ack), then
// disconnects; alice gets `userLeft`. With `default`, both clients must have upgraded from
// polling to WebSocket before chatting; with `polling`, they never upgrade. Exit 0: all held;
// otherwise the first failure is printed and the exit status is 1.
"use strict";
const { io } = require("socket.io-client");

const [base, mode, token] = process.argv.slice(2);
const PATIENCE_MS = 10000;

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
}

function once(emitter, event) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${PATIENCE_MS} ms`)), PATIENCE_MS);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

function options(auth) {
  const common = { auth, reconnection: false, forceNew: true };
  if (mode === "websocket") return { ...common, transports: ["websocket"] };
  if (mode === "polling") return { ...common, transports: ["polling"], upgrade: false };
  return common;
}

async function connect(auth) {
  const socket = io(base, options(auth));
  const welcome = once(socket, "welcome");
  const history = once(socket, "history");
  const [connected] = await Promise.race([
    once(socket, "connect").then(() => [true]),
    once(socket, "connect_error").then(([error]) => fail(`connect_error: ${error.message}`)),
  ]);
  check(connected, "connected");
  const [hello] = await welcome;
  const [past] = await history;
  check(Array.isArray(past.messages), `history.messages: ${JSON.stringify(past)}`);
  if (mode === "default" && socket.io.engine.transport.name !== "websocket") {
    await once(socket.io.engine, "upgrade");
  }
  const expected = mode === "polling" ? "polling" : "websocket";
  check(socket.io.engine.transport.name === expected,
    `transport ${socket.io.engine.transport.name}, expected ${expected}`);
  return { socket, hello };
}

async function main() {
  const alice = await connect(token ? { token } : {});
  check(typeof alice.hello.message === "string", `welcome.message: ${JSON.stringify(alice.hello)}`);
  if (token) {
    check(typeof alice.hello.user_id === "number" && !/^guest-/.test(alice.hello.user),
      `alice is signed in: ${JSON.stringify(alice.hello)}`);
  }
  const joined = once(alice.socket, "userJoined");
  const bob = await connect({});
  check(/^guest-/.test(bob.hello.user), `bob is a guest: ${JSON.stringify(bob.hello)}`);
  const [joinedEvent] = await joined;
  check(joinedEvent.user === bob.hello.user && typeof joinedEvent.message === "string",
    `userJoined: ${JSON.stringify(joinedEvent)}`);

  const text = `hello from ${mode} ${Date.now()}`;
  const aliceGets = once(alice.socket, "chatMessage");
  const bobGets = once(bob.socket, "chatMessage");
  const ack = await alice.socket.timeout(PATIENCE_MS).emitWithAck("chatMessage", {
    text,
    timestamp: new Date().toISOString(),
  });
  check(ack.ok === true && ack.message.text === text, `ack: ${JSON.stringify(ack)}`);
  for (const [who, pending] of [["alice", aliceGets], ["bob", bobGets]]) {
    const [message] = await pending;
    check(message.text === text && message.user === alice.hello.user && message.id === ack.message.id,
      `${who} got ${JSON.stringify(message)}`);
    check(!Number.isNaN(new Date(message.timestamp).getTime()), `timestamp: ${message.timestamp}`);
  }
  const refused = await alice.socket.timeout(PATIENCE_MS).emitWithAck("chatMessage", { text: "  " });
  check(refused.ok === false && refused.error.code === "validation_failed",
    `blank text refused: ${JSON.stringify(refused)}`);

  const left = once(alice.socket, "userLeft");
  const moved = await bob.socket.timeout(PATIENCE_MS).emitWithAck("join", { room: "elsewhere" });
  check(moved.ok === true && moved.room === "elsewhere", `join ack: ${JSON.stringify(moved)}`);
  const [leftEvent] = await left;
  check(leftEvent.user === bob.hello.user && leftEvent.room === "general",
    `userLeft: ${JSON.stringify(leftEvent)}`);
  bob.socket.disconnect();
  alice.socket.disconnect();
  console.log(`ok ${mode}: ${alice.hello.user} and ${bob.hello.user} chatted`);
  process.exit(0);
}

main().catch((error) => fail(error.stack || String(error)));
