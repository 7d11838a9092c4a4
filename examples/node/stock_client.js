// Microsoft's JavaScript stack against the emulator over HTTPS: @azure/identity's
// ClientSecretCredential gets a token from the emulator's own token endpoint, and
// @microsoft/microsoft-graph-client 3 creates, filters, selects, batches and deletes, then
// rides out two injected 429s with its stock retry handler, proven through the request
// journal. Configuration only: nothing of either package is patched.
//
//   cargo run --release -- --tls-listen 127.0.0.1:8443 --auth strict --app my-app:s3cret &
//   (cd examples/node && npm ci)
//   NODE_EXTRA_CA_CERTS=data/tls/ca.pem node examples/node/stock_client.js \
//       --authority https://127.0.0.1:8443 --tenant contoso --client-id my-app --client-secret s3cret
//
// It exits non-zero, naming the step, if any answer is not what Graph would give.

"use strict";

const { parseArgs } = require("node:util");
const { randomUUID } = require("node:crypto");
const { ClientSecretCredential } = require("@azure/identity");
const {
  BatchRequestContent,
  BatchResponseContent,
  Client,
} = require("@microsoft/microsoft-graph-client");
const {
  TokenCredentialAuthenticationProvider,
} = require("@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials");

function check(step, ok, got) {
  if (!ok) {
    console.error(`FAILED at ${step}: unexpected answer: ${JSON.stringify(got)}`);
    process.exit(1);
  }
}

// The emulator's admin routes (loopback only without an admin key), on the same origin.
async function admin(origin, method, path, body) {
  const answer = await fetch(origin + path, {
    method,
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  check(`${method} ${path}`, answer.ok, answer.status);
  const text = await answer.text();
  return text ? JSON.parse(text) : null;
}

function clientFor(authority, tenant, clientId, clientSecret) {
  const credential = new ClientSecretCredential(tenant, clientId, clientSecret, {
    authorityHost: authority,
    disableInstanceDiscovery: true,
  });
  const authProvider = new TokenCredentialAuthenticationProvider(credential, {
    scopes: ["https://graph.microsoft.com/.default"],
  });
  return Client.initWithMiddleware({
    authProvider,
    baseUrl: `${authority}/`,
    defaultVersion: "beta",
    // The client attaches tokens only to Graph's hosts and these, and only over HTTPS.
    customHosts: new Set([new URL(authority).hostname]),
  });
}

async function crud(client, origin, prefix) {
  const flows = client.api("/identity/userFlows");
  const created = await flows.post({
    id: `${prefix}SignIn`,
    userFlowType: "signIn",
    userFlowTypeVersion: 1,
  });
  check("create", created.id === `B2C_1_${prefix}SignIn`, created);
  console.log(`created ${created.id}`);

  // Two more through one $batch. BatchRequestContent keeps the path of each item's URL,
  // and Graph (and the emulator) want item URLs relative to the version: so no /beta here.
  const batch = new BatchRequestContent();
  for (const [n, type] of [["Reset", "passwordReset"], ["Profile", "profileUpdate"]]) {
    batch.addRequest({
      id: n,
      request: new Request(`${origin}/identity/userFlows`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ id: `${prefix}${n}`, userFlowType: type, userFlowTypeVersion: 1 }),
      }),
    });
  }
  const answered = new BatchResponseContent(
    await client.api("/$batch").post(await batch.getContent()),
  );
  const statuses = [...answered.getResponses().entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([, response]) => response.status);
  check("batch of two creates", statuses.join() === "201,201", statuses);
  console.log(`batch answered [${statuses.join(", ")}]`);

  const filtered = await client
    .api("/identity/userFlows")
    .filter(`startswith(id,'B2C_1_${prefix}')`)
    .orderby("id")
    .get();
  const ids = filtered.value.map((flow) => flow.id);
  const expected = ["Profile", "Reset", "SignIn"].map((n) => `B2C_1_${prefix}${n}`);
  check("list with $filter and $orderby", ids.join() === expected.join(), ids);
  console.log(`filtered: ${ids.join(", ")}`);

  const selected = await client
    .api(`/identity/userFlows/B2C_1_${prefix}Reset`)
    .select("id,userFlowType")
    .get();
  check(
    "get with $select",
    selected.userFlowType === "passwordReset" && selected.userFlowTypeVersion === undefined,
    selected,
  );
  console.log(`selected ${Object.keys(selected).filter((k) => !k.startsWith("@")).join(",")}`);

  for (const id of ids) {
    await client.api(`/identity/userFlows/${id}`).delete();
  }
  const left = await client.api("/identity/userFlows").filter(`startswith(id,'B2C_1_${prefix}')`).get();
  check("delete", left.value.length === 0, left);
  console.log(`deleted ${ids.length} flows`);
}

// Two 429s on the next creates: the stock RetryHandler waits each Retry-After and tries again
// with the same client-request-id, which finds the attempts in the journal's summary.
async function retry(client, origin, tenant, prefix) {
  const rule = {
    id: "two-429s",
    match: { operation: "create" },
    times: 2,
    effect: { status: 429, retryAfter: 1 },
  };
  const clientRequestId = `retried-${randomUUID()}`;
  await admin(origin, "PUT", "/_emulator/faults", { seed: 1, rules: [rule] });
  try {
    const created = await client
      .api("/identity/userFlows")
      .header("client-request-id", clientRequestId)
      .post({ id: `${prefix}Retried`, userFlowType: "signIn", userFlowTypeVersion: 1 });
    check("create through two 429s", created.id === `B2C_1_${prefix}Retried`, created);
  } finally {
    await admin(origin, "DELETE", "/_emulator/faults");
  }
  const summary = await admin(
    origin,
    "GET",
    `/_emulator/requests/summary?tenant=${encodeURIComponent(tenant)}`,
  );
  const attempts = summary.value.find((r) => r.clientRequestId === clientRequestId);
  check("the retried create in the journal", attempts !== undefined, summary);
  check("journal: 429, 429, 201", attempts.statuses.join() === "429,429,201", attempts);
  check("journal: every retry waited its Retry-After", attempts.honoured === true, attempts);
  console.log(
    `created B2C_1_${prefix}Retried after two 429s; journal [${attempts.statuses.join(", ")}] ` +
      `waits [${attempts.waitsMs.join(", ")}] ms, honoured`,
  );
  await client.api(`/identity/userFlows/B2C_1_${prefix}Retried`).delete();
}

async function main() {
  const { values } = parseArgs({
    options: {
      authority: { type: "string", default: "https://127.0.0.1:8443" },
      tenant: { type: "string", default: "contoso" },
      "client-id": { type: "string", default: "my-app" },
      "client-secret": { type: "string", default: "s3cret" },
    },
  });
  const authority = values.authority.replace(/\/+$/, "");
  const client = clientFor(authority, values.tenant, values["client-id"], values["client-secret"]);
  const prefix = `Node${randomUUID().slice(0, 8)}`;
  await crud(client, authority, prefix);
  // The journal files requests under the tenant as the emulator resolves it (a GUID lower-cased).
  const guid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  const tenant = guid.test(values.tenant) ? values.tenant.toLowerCase() : values.tenant;
  await retry(client, authority, tenant, prefix);
}

main().catch((error) => {
  console.error(`FAILED: ${error.stack ?? error}`);
  process.exit(1);
});
