// Sign one event with ed25519 (Standard Webhooks v1a) and send it to an Inlet source (Node 18+).
import { createPrivateKey, randomUUID, sign } from "node:crypto";

const url = process.env.INLET_URL; // the source's receiver URL
const signingKey = process.env.INLET_SIGNING_KEY; // whsk_<base64 of the 32-byte private key>
// node:crypto imports a raw ed25519 private key wrapped in its fixed PKCS#8 header.
const privateKey = createPrivateKey({
  key: Buffer.concat([
    Buffer.from("302e020100300506032b657004220420", "hex"),
    Buffer.from(signingKey.slice(5), "base64"),
  ]),
  format: "der",
  type: "pkcs8",
});

const body = JSON.stringify({ type: "order.paid", amount: 42.5 });
const id = `msg_${randomUUID()}`; // also the idempotency key: reuse it when you retry
const timestamp = Math.floor(Date.now() / 1000).toString();
const signature = sign(null, Buffer.from(`${id}.${timestamp}.${body}`), privateKey);
const answer = await fetch(url, {
  method: "POST",
  body,
  headers: {
    "Content-Type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": timestamp,
    "webhook-signature": `v1a,${signature.toString("base64")}`,
  },
});
console.log(answer.status, await answer.text());
if (!answer.ok) process.exit(1);
