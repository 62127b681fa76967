#!/usr/bin/env node
// k8s-crosscheck.mjs -- checks that tie the manifests to the programs and to the runbook.
//   settings REPO RENDER...   every setting a Deployment passes (ConfigMap keys, env names) is a
//                             setting of its program (the `{"flag-name", CONF_...}` tables in
//                             the program's sources, plus common/svc.c's where it uses them);
//                             programs with no settings table yet are reported and skipped.
//   changed OLD NEW ID...     the two renders differ in exactly the listed objects (Kind/name;
//                             a ConfigMap is named without its hash), nothing else.
//   select RENDER SELECTOR ID...   `kubectl apply -l SELECTOR` would pick exactly these objects
//                             (label selector k=v[,k=v]; the runbook's one-service commands).
//   metrics REPO RULES        every metric an alert rule uses is one a program exports.
// Prints "ok ..." / "FAIL ..." lines; exit code 1 on any failure.
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";

const load = (f) => YAML.parseAllDocuments(fs.readFileSync(f, "utf8")).map((d) => d.toJS()).filter(Boolean);
const idOf = (o) => `${o.kind}/${o.kind === "ConfigMap" ? o.metadata.name.replace(/-[a-z0-9]{10}$/, "") : o.metadata.name}`;
let failures = 0;
const ok = (m) => console.log(`ok   ${m}`);
const bad = (m) => {
  failures++;
  console.log(`FAIL ${m}`);
};

function sources(repo, dir) {
  const d = path.join(repo, dir);
  if (!fs.existsSync(d)) return "";
  return fs.readdirSync(d).filter((f) => f.endsWith(".c")).map((f) => fs.readFileSync(path.join(d, f), "utf8")).join("\n");
}

function settingsOf(repo, prog) {
  const src = sources(repo, prog);
  const names = new Set([...src.matchAll(/\{\s*"([a-z0-9-]+)",\s*CONF_[A-Z]+/g)].map((m) => m[1]));
  if (!names.size) return null;
  if (/svc_common_opts\s*\(/.test(src)) {
    const common = fs.readFileSync(path.join(repo, "common/svc.c"), "utf8");
    for (const m of common.matchAll(/\{\s*"([a-z0-9-]+)",\s*CONF_[A-Z]+/g)) names.add(m[1]);
  }
  return new Set([...names].map((n) => n.toUpperCase().replace(/-/g, "_")));
}

const HELPER_ENV = new Set(["POD_NAMESPACE"]); // used only for $(VAR) expansion

function cmdSettings(repo, files) {
  const skipped = new Set();
  for (const f of files) {
    const docs = load(f);
    for (const d of docs.filter((x) => x.kind === "Deployment")) {
      for (const c of d.spec.template.spec.containers || []) {
        const known = settingsOf(repo, c.name);
        if (!known) {
          skipped.add(c.name);
          continue;
        }
        const keys = new Map();
        for (const ef of c.envFrom || []) {
          const cm = docs.find((x) => x.kind === "ConfigMap" && x.metadata.name === ef.configMapRef?.name);
          for (const k of Object.keys(cm?.data || {})) keys.set(k, `ConfigMap ${cm.metadata.name}`);
        }
        for (const e of c.env || []) if (!HELPER_ENV.has(e.name)) keys.set(e.name, "env");
        const unknown = [...keys].filter(([k]) => !known.has(k));
        if (unknown.length) {
          bad(`${path.basename(f)} Deployment/${d.metadata.name}: not settings of ${c.name}: ${unknown.map(([k, w]) => `${k} (${w})`).join(", ")}`);
        } else ok(`${path.basename(f)} Deployment/${d.metadata.name}: ${keys.size} settings, all known to ${c.name}`);
      }
    }
  }
  for (const s of skipped) console.log(`skip ${s}: no settings table in ${s}/*.c yet`);
}

function cmdChanged(oldf, newf, expected) {
  const a = new Map(load(oldf).map((o) => [idOf(o), JSON.stringify(o)]));
  const b = new Map(load(newf).map((o) => [idOf(o), JSON.stringify(o)]));
  const changed = [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k)).sort();
  const want = [...expected].sort();
  if (JSON.stringify(changed) === JSON.stringify(want)) ok(`only ${want.join(", ")} changed`);
  else bad(`changed: ${changed.join(", ") || "(nothing)"}; expected exactly: ${want.join(", ")}`);
}

function cmdSelect(file, selector, expected) {
  const sel = Object.fromEntries(selector.split(",").map((kv) => kv.split("=")));
  const picked = load(file)
    .filter((o) => Object.entries(sel).every(([k, v]) => o.metadata?.labels?.[k] === v))
    .map(idOf)
    .sort();
  const want = [...expected].sort();
  if (JSON.stringify(picked) === JSON.stringify(want)) ok(`-l ${selector} picks ${picked.length} objects: ${picked.join(", ")}`);
  else bad(`-l ${selector} picks ${picked.join(", ")}; expected ${want.join(", ")}`);
}

function cmdMetrics(repo, rulesFile) {
  const rules = YAML.parse(fs.readFileSync(rulesFile, "utf8"));
  const groups = rules.spec?.groups || rules.groups;
  const src = ["common", "session-svc", "cache-svc", "queue-svc", "gateway"].map((d) => sources(repo, d)).join("\n");
  const exported = new Set([...src.matchAll(/"((?:engbot|grpc|process|queue)_[a-z0-9_]+)"/g)].map((m) => m[1]));
  for (const g of groups) {
    for (const r of g.rules) {
      const names = new Set([...String(r.expr).matchAll(/\b((?:engbot|grpc_server|process|queue)_[a-z0-9_]+)\b/g)]
        .map((m) => m[1].replace(/_(bucket|sum|count)$/, "")));
      const missing = [...names].filter((n) => !exported.has(n));
      if (missing.length) bad(`alert ${r.alert}: no program exports ${missing.join(", ")}`);
      else ok(`alert ${r.alert}: ${[...names].join(", ") || "(no engbot metric)"}`);
    }
  }
}

const [cmd, ...args] = process.argv.slice(2);
switch (cmd) {
  case "settings":
    cmdSettings(args[0], args.slice(1));
    break;
  case "changed":
    cmdChanged(args[0], args[1], args.slice(2));
    break;
  case "select":
    cmdSelect(args[0], args[1], args.slice(2));
    break;
  case "metrics":
    cmdMetrics(args[0], args[1]);
    break;
  default:
    console.error("usage: k8s-crosscheck.mjs settings|changed|select|metrics ...");
    process.exit(2);
}
process.exit(failures ? 1 : 0);
