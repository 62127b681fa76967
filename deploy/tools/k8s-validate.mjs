#!/usr/bin/env node
// k8s-validate.mjs FILE... -- validates rendered Kubernetes manifests offline, two ways:
//   1. schema: kubernetes-models' ajv validators, generated from the Kubernetes 1.33 OpenAPI
//      spec (types, required fields, enums, int32 formats); prometheus-operator CRDs from
//      @kubernetes-models/prometheus-operator;
//   2. strict: every field must exist in the API (what `kubectl apply --validate=strict` does
//      on a server): built-in kinds are walked along @kubernetes/client-node's model metadata
//      (Kubernetes 1.34), CRD kinds along the type declarations of their model package.
// A kind neither knows is an error, not a pass. Prints one line per object and a closing
// "N passed, N failed"; exit code 1 on any failure.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import * as k8s from "@kubernetes/client-node";

const require = createRequire(import.meta.url);

// ---- schema (ajv) -------------------------------------------------------------------------
const CRD_PACKAGES = { "monitoring.coreos.com": "@kubernetes-models/prometheus-operator" };

function modelModule(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (CRD_PACKAGES[group]) return `${CRD_PACKAGES[group]}/${group}/${version}/${kind}`;
  return group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
}

async function schemaErrors(obj) {
  let mod;
  try {
    mod = await import(modelModule(obj.apiVersion, obj.kind));
  } catch {
    return [`no schema for ${obj.apiVersion} ${obj.kind}`];
  }
  const Model = mod[obj.kind] || mod.default;
  try {
    new Model(obj).validate();
    return [];
  } catch (e) {
    return String(e.message || e)
      .split(/,\s*(?=data\/)|\n/)
      .map((s) => s.trim())
      .filter(Boolean);
  }
}

// ---- strict: built-in kinds along client-node's attributeTypeMap --------------------------
function clientNodeType(apiVersion, kind) {
  const version = apiVersion.split("/").pop(); // v1, v2, v1beta1
  const name = version.charAt(0).toUpperCase() + version.slice(1) + kind;
  return typeof k8s[name]?.getAttributeTypeMap === "function" ? name : null;
}

function walkClientNode(val, type, where, errs) {
  if (val === null || val === undefined) return;
  const arr = /^Array<(.+)>$/.exec(type);
  if (arr) {
    if (!Array.isArray(val)) errs.push(`${where}: expected a list`);
    else val.forEach((v, i) => walkClientNode(v, arr[1], `${where}[${i}]`, errs));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof val !== "object" || Array.isArray(val)) errs.push(`${where}: expected a map`);
    else for (const [k, v] of Object.entries(val)) walkClientNode(v, map[1], `${where}.${k}`, errs);
    return;
  }
  const cls = k8s[type];
  if (!cls || typeof cls.getAttributeTypeMap !== "function") return; // scalar, IntOrString, any
  if (typeof val !== "object" || Array.isArray(val)) {
    errs.push(`${where}: expected an object (${type})`);
    return;
  }
  const attrs = new Map(cls.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(val)) {
    if (!attrs.has(k)) errs.push(`${where}.${k}: unknown field (not in ${type})`);
    else walkClientNode(v, attrs.get(k), `${where}.${k}`, errs);
  }
}

// ---- strict: CRD kinds along the model package's .d.ts ------------------------------------
// The declarations are generated in one regular shape: `"name"?: TYPE;` members, TYPE being
// {..}, Array<..>, a scalar, a string literal, a union, an index signature or an imported
// interface (IObjectMeta...). This small parser turns them into a tree to walk.
function parseDts(src, iface) {
  const start = src.indexOf(`export interface ${iface} {`);
  if (start < 0) throw new Error(`no interface ${iface}`);
  const toks = [];
  const re = /\s*("(?:[^"\\]|\\.)*"|[A-Za-z_$][\w$.]*|-?\d+(?:\.\d+)?|[{}<>\[\]:;?|(),])/y;
  re.lastIndex = src.indexOf("{", start);
  let m;
  let depth = 0;
  while ((m = re.exec(src))) {
    toks.push(m[1]);
    depth += m[1] === "{" ? 1 : m[1] === "}" ? -1 : 0;
    if (depth === 0) break;
  }
  let i = 0;
  const peek = () => toks[i];
  const next = () => toks[i++];
  function type() {
    const alts = [primary()];
    while (peek() === "|") {
      next();
      alts.push(primary());
    }
    let t = alts.length === 1 ? alts[0] : { kind: "union", alts };
    while (peek() === "[" && toks[i + 1] === "]") {
      i += 2;
      t = { kind: "array", of: t };
    }
    return t;
  }
  function primary() {
    const t = next();
    if (t === "{") return object();
    if (t === "(") {
      const inner = type();
      next(); // )
      return inner;
    }
    if (t === "Array") {
      next(); // <
      const of = type();
      next(); // >
      return { kind: "array", of };
    }
    if (t === "Record") {
      next(); // <
      type();
      next(); // ,
      const of = type();
      next(); // >
      return { kind: "map", of };
    }
    if (/^I[A-Z]/.test(t)) return { kind: "ref", name: t };
    return { kind: "scalar", name: t };
  }
  function object() {
    const props = new Map();
    let index = null;
    while (peek() !== "}") {
      if (peek() === "[") {
        while (next() !== "]");
        next(); // :
        index = type();
      } else {
        const key = JSON.parse(next());
        if (peek() === "?") next();
        next(); // :
        props.set(key, type());
      }
      if (peek() === ";") next();
    }
    next(); // }
    return { kind: "object", props, index };
  }
  next(); // the interface's {
  return object();
}

const REFS = { IObjectMeta: "V1ObjectMeta", ILabelSelector: "V1LabelSelector" };

function walkShape(val, shape, where, errs) {
  if (val === null || val === undefined || !shape) return;
  switch (shape.kind) {
    case "array":
      if (Array.isArray(val)) val.forEach((v, i) => walkShape(v, shape.of, `${where}[${i}]`, errs));
      return;
    case "map":
      if (typeof val === "object") for (const [k, v] of Object.entries(val)) walkShape(v, shape.of, `${where}.${k}`, errs);
      return;
    case "ref":
      if (REFS[shape.name]) walkClientNode(val, REFS[shape.name], where, errs);
      return;
    case "union":
      return; // scalars in practice (string literals); the ajv schema checks them
    case "object":
      if (typeof val !== "object" || Array.isArray(val)) return; // ajv reports the type
      for (const [k, v] of Object.entries(val)) {
        if (shape.props.has(k)) walkShape(v, shape.props.get(k), `${where}.${k}`, errs);
        else if (shape.index) walkShape(v, shape.index, `${where}.${k}`, errs);
        else errs.push(`${where}.${k}: unknown field`);
      }
      return;
    default:
  }
}

const crdShapes = new Map();
function crdShape(apiVersion, kind) {
  const key = `${apiVersion}/${kind}`;
  if (!crdShapes.has(key)) {
    let shape = null;
    const [group, version] = apiVersion.split("/");
    if (CRD_PACKAGES[group]) {
      const js = require.resolve(`${CRD_PACKAGES[group]}/${group}/${version}/${kind}`);
      shape = parseDts(fs.readFileSync(js.replace(/\.js$/, ".d.ts"), "utf8"), `I${kind}`);
    }
    crdShapes.set(key, shape);
  }
  return crdShapes.get(key);
}

function strictErrors(obj) {
  const errs = [];
  // Built-in API groups: the core group, the unqualified ones (apps, policy, autoscaling...)
  // and *.k8s.io; anything else is a custom resource.
  const group = obj.apiVersion.includes("/") ? obj.apiVersion.split("/")[0] : "";
  const builtin = !group.includes(".") || group.endsWith(".k8s.io");
  const t = builtin ? clientNodeType(obj.apiVersion, obj.kind) : null;
  if (t) {
    walkClientNode(obj, t, "", errs);
    return errs;
  }
  const shape = crdShape(obj.apiVersion, obj.kind);
  if (!shape) return [`no strict field list for ${obj.apiVersion} ${obj.kind}`];
  walkShape(obj, shape, "", errs);
  return errs;
}

// ---- main -----------------------------------------------------------------------------------
export async function validateDocs(docs) {
  const results = [];
  for (const obj of docs) {
    const id = `${obj?.kind ?? "?"}/${obj?.metadata?.name ?? "?"}`;
    if (!obj || typeof obj !== "object" || !obj.apiVersion || !obj.kind) {
      results.push({ id, errors: ["not a Kubernetes object (apiVersion/kind missing)"] });
      continue;
    }
    const errors = [...(await schemaErrors(obj)), ...strictErrors(obj)];
    results.push({ id, errors });
  }
  return results;
}

export function loadDocs(file) {
  const text = fs.readFileSync(file, "utf8");
  const docs = YAML.parseAllDocuments(text);
  for (const d of docs) if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
  return docs.map((d) => d.toJS()).filter((d) => d !== null);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const files = process.argv.slice(2);
  if (!files.length) {
    console.error("usage: k8s-validate.mjs RENDERED.yaml...");
    process.exit(2);
  }
  let passed = 0;
  let failed = 0;
  for (const f of files) {
    for (const r of await validateDocs(loadDocs(f))) {
      if (r.errors.length) {
        failed++;
        console.log(`FAIL ${path.basename(f)} ${r.id}`);
        for (const e of r.errors) console.log(`     ${e}`);
      } else {
        passed++;
        if (process.env.VERBOSE) console.log(`ok   ${path.basename(f)} ${r.id}`);
      }
    }
  }
  console.log(`k8s-validate: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
