// Launches a Binder link with BinderHub's own JavaScript client (@jupyterhub/binderhub-client, from npm),
// unchanged, against the service under test. Prints each event, then the URL the client would open.
// Usage: node binderhub_client.mjs <buildEndpointUrl> <providerSpec> <query string>
import { BinderRepository } from "@jupyterhub/binderhub-client/client.js";
import { LaunchSpec } from "@jupyterhub/binderhub-client/spec.js";

// The client is written for browsers; Node has fetch but not these two globals it touches.
globalThis.window ??= globalThis;
globalThis.document ??= { cookie: "", hidden: false, addEventListener() {}, removeEventListener() {} };

const [endpoint, providerSpec, query] = process.argv.slice(2);
const repository = new BinderRepository(providerSpec, new URL(endpoint));
const launchSpec = LaunchSpec.fromSearchParams(new URLSearchParams(query || ""));
for await (const event of repository.fetch()) {
  console.log(JSON.stringify({ event }));
  if (event.phase === "ready") {
    const url = launchSpec.getJupyterServerRedirectUrl(new URL(event.url), event.token);
    console.log(JSON.stringify({ redirect: url.toString() }));
    repository.close();
    break;
  }
  if (event.phase === "failed") {
    repository.close();
    break;
  }
}
