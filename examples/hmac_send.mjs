// Sign one event with a source's secret (Inlet-Signature) and send it to that Inlet source (Node 18+).
import { createHmac, randomUUID } from "node:crypto";

const url = process.env.INLET_URL; // the source's receiver URL
const secret = process.env.INLET_SECRET; // whsec_…, shown once when the source was created
if (!url || !secret) throw new Error("set INLET_URL and INLET_SECRET");

const body = JSON.stringify({ type: "order.paid", amount: 42.5 });
const t = Math.floor(Date.now() / 1000);
const signature = createHmac("sha256", secret).update(`${t}.${body}`).digest("hex");
const answer = await fetch(url, {
  method: "POST",
  body, // sign exactly the bytes you send
  headers: {
    "Content-Type": "application/json",
    "Idempotency-Key": randomUUID(), // one per logical event: reuse it when you retry
    "Inlet-Signature": `t=${t},v1=${signature}`,
  },
});
console.log(answer.status, await answer.text());
if (!answer.ok) process.exit(1);
