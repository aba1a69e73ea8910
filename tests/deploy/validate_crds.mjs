// Validates custom resources with the models of @kubernetes-models (JSON schemas generated
// from each project's own CRDs). Reads a JSON array of objects on stdin; writes a JSON array
// of {kind, name, errors} (errors: null when the kind has no model here).
// Usage: node validate_crds.mjs <node_modules directory holding the models>
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const load = (path) => import(pathToFileURL(join(process.argv[2], "@kubernetes-models", path)));
const { ScaledObject, TriggerAuthentication } = await load("keda/keda.sh/v1alpha1/index.js");
const { ServiceMonitor } = await load("prometheus-operator/monitoring.coreos.com/v1/index.js");

const MODELS = {
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "keda.sh/v1alpha1/TriggerAuthentication": TriggerAuthentication,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = JSON.parse(input).map((object) => {
  const Model = MODELS[`${object.apiVersion}/${object.kind}`];
  const result = { kind: object.kind, name: object.metadata?.name, errors: null };
  if (Model) {
    try {
      new Model(object).validate();
      result.errors = [];
    } catch (error) {
      result.errors = [String(error.message ?? error)];
    }
  }
  return result;
});
process.stdout.write(JSON.stringify(results));
