// Two socket.io-client 4 clients, one with the default transports (long-polling, then the
// upgrade to WebSocket) and one with WebSocket only, meet in one room and chat (the seed's events).
//
//   node two_clients.js <base URL> <room>
//
// Both connect as guests, then `join` <room> with an ack ({"ok":true,"room"}); each sends a
// `chatMessage` with an ack and the other gets it. The default client must have upgraded from
// polling to WebSocket, the other never polled. Behind a gateway spreading sessions over chat
// instances sharing Redis, the two may sit on different instances: the room spans them.
// Exit 0: all held (one line `ok …` on stdout); otherwise the first failure is printed and the
// exit status is 1.
"use strict";
const { io } = require("socket.io-client");

const [base, room] = process.argv.slice(2);
const PATIENCE_MS = 10000;

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
}

// The first `event` on `emitter` whose first argument satisfies `wanted`.
function waitFor(emitter, event, wanted = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${PATIENCE_MS} ms`)), PATIENCE_MS);
    const listener = (...args) => {
      if (!wanted(...args)) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args);
    };
    emitter.on(event, listener);
  });
}

// Connects with `transports` ("default" or "websocket"); resolves once connected, welcomed and
// on its final transport, with the engine's upgrades counted.
async function connect(name, transports) {
  const options = { reconnection: false, forceNew: true };
  if (transports === "websocket") options.transports = ["websocket"];
  const socket = io(base, options);
  const engine = socket.io.engine;
  const first = engine.transport.name;
  let upgrades = 0;
  engine.on("upgrade", () => {
    upgrades += 1;
  });
  const welcome = waitFor(socket, "welcome");
  await Promise.race([
    waitFor(socket, "connect"),
    waitFor(socket, "connect_error").then(([error]) => fail(`${name} connect_error: ${error.message}`)),
  ]);
  const [hello] = await welcome;
  if (transports === "default" && engine.transport.name !== "websocket") {
    await waitFor(engine, "upgrade");
  }
  check(engine.transport.name === "websocket", `${name} is on ${engine.transport.name}`);
  if (transports === "default") {
    check(first === "polling" && upgrades === 1, `${name} opened on ${first}, ${upgrades} upgrades`);
  } else {
    check(first === "websocket" && upgrades === 0, `${name} opened on ${first}, ${upgrades} upgrades`);
  }
  return { socket, user: hello.user };
}

async function join(client) {
  const answer = await client.socket.timeout(PATIENCE_MS).emitWithAck("join", { room });
  check(answer.ok === true && answer.room === room && answer.user === client.user,
    `join ack of ${client.user}: ${JSON.stringify(answer)}`);
}

// `from` sends a chatMessage to the room; `to` must get it.
async function say(from, to) {
  const text = `${from.user} to ${to.user} ${Date.now()}`;
  const arrives = waitFor(to.socket, "chatMessage", (message) => message && message.text === text);
  const ack = await from.socket.timeout(PATIENCE_MS).emitWithAck("chatMessage", { text });
  check(ack.ok === true && ack.message.text === text && ack.message.room === room,
    `ack of ${from.user}: ${JSON.stringify(ack)}`);
  const [message] = await arrives;
  check(message.user === from.user && message.room === room && message.id === ack.message.id,
    `${to.user} got ${JSON.stringify(message)}`);
}

async function main() {
  // The WebSocket-only client first: its one request and the other's handshake are the two
  // session openings a round-robin gateway places next to each other.
  const websocket = await connect("websocket", "websocket");
  const polling = await connect("default", "default");
  await join(polling);
  const arrived = waitFor(polling.socket, "userJoined",
    (event) => event && event.room === room && event.user === websocket.user);
  await join(websocket);
  await arrived;
  await say(polling, websocket);
  await say(websocket, polling);
  polling.socket.disconnect();
  websocket.socket.disconnect();
  console.log(`ok: ${polling.user} (polling, upgraded) and ${websocket.user} (websocket) chatted in ${room}`);
  process.exit(0);
}

main().catch((error) => fail(error.stack || String(error)));
