#!/usr/bin/env node
// k8s-policy.mjs FILE... -- engbot's deployment policy over rendered manifests (one file = one
// deployable set, e.g. one overlay). Schema validity is k8s-validate.mjs's job; this checks
// what a schema cannot: that the objects fit together and follow our rules. Every finding names
// its rule; deploy/tools/test-policy.sh proves each rule fires on a deliberately bad manifest.
//
// Rules (per Deployment unless said otherwise):
//   selector       selector.matchLabels non-empty, all in the pod template's labels, no version
//   history        revisionHistoryLimit set and > 0 (else `kubectl rollout undo` has nothing)
//   strategy       RollingUpdate with maxUnavailable 0; Recreate only with replicas 1
//   single-writer  a pod writing a ReadWriteOnce(Pod) claim: replicas 1, Recreate, no HPA
//   pod-security   runAsNonRoot, non-zero runAsUser, seccomp RuntimeDefault,
//                  automountServiceAccountToken false, a ServiceAccount that exists
//   container-security  allowPrivilegeEscalation false, readOnlyRootFilesystem true,
//                  capabilities drop ALL and add nothing, not privileged
//   resources      requests cpu+memory, limits memory
//   image          a tag or digest, never `latest`
//   probes         readiness + liveness + startup, each on a declared container port; gRPC
//                  servers (a port named grpc) use grpc probes, liveness on service "liveness"
//   grace          terminationGracePeriodSeconds above the program's DRAIN_GRACE
//   pdb            exactly one PodDisruptionBudget selects the pods, with one of
//                  minAvailable/maxUnavailable
//   netpol         a NetworkPolicy of its own (non-empty podSelector) selects the pods
//   refs           ConfigMaps, claims and Services it names exist in the render; ConfigMaps
//                  carry kustomize's content hash (configMapGenerator: a change is a rollout)
//   service        (per Service) selects pods, target ports exist, a port named grpc has
//                  appProtocol kubernetes.io/h2c and a headless twin <name>-headless
//   addr           dns:///<svc>.<ns>.svc... addresses in env name a headless Service and port
//   hpa            (per HPA) targets a Deployment that sets no replicas of its own
//   ingress        (per Ingress) backends are Services with that port
//   secret         (render-wide) no Secret objects: they are created out of band
//   namespace      (render-wide) one namespace for every namespaced object
//   canary         a *-canary Deployment equals its stable one but for image tag, names, track
//                  and the settings it declares in annotation engbot.dev/canary-overrides
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";

const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume",
  "StorageClass", "CustomResourceDefinition", "PriorityClass", "IngressClass"]);

function subset(sel, labels) {
  return Object.entries(sel || {}).every(([k, v]) => (labels || {})[k] === v);
}

function durationMs(s) {
  if (s === undefined || s === null || s === "") return null;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(String(s).trim());
  if (!m) return null;
  const mult = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000 }[m[2] || "ms"];
  return Number(m[1]) * mult;
}

function probePort(probe) {
  if (!probe) return null;
  if (probe.grpc) return { port: probe.grpc.port, kind: "grpc" };
  if (probe.httpGet) return { port: probe.httpGet.port, kind: "http" };
  if (probe.tcpSocket) return { port: probe.tcpSocket.port, kind: "tcp" };
  return { port: null, kind: "exec" };
}

function portDeclared(container, port) {
  return (container.ports || []).some((p) =>
    typeof port === "number" ? p.containerPort === port : p.name === port);
}

export function checkPolicy(docs) {
  const findings = [];
  const fail = (rule, obj, msg) => findings.push({ rule, id: `${obj.kind}/${obj.metadata?.name}`, msg });
  const byKind = (k) => docs.filter((d) => d.kind === k);
  const named = (k, n) => docs.find((d) => d.kind === k && d.metadata?.name === n);

  const deployments = byKind("Deployment");
  const pdbs = byKind("PodDisruptionBudget");
  const netpols = byKind("NetworkPolicy");
  const hpas = byKind("HorizontalPodAutoscaler");
  const services = byKind("Service");

  // ---- render-wide
  for (const s of byKind("Secret")) fail("secret", s, "Secret in the render: create it out of band, never commit it");
  const namespaces = new Set(docs.filter((d) => !CLUSTER_SCOPED.has(d.kind)).map((d) => d.metadata?.namespace ?? "(none)"));
  if (namespaces.size > 1) findings.push({ rule: "namespace", id: "(render)", msg: `objects in several namespaces: ${[...namespaces].join(", ")}` });
  for (const ns of byKind("Namespace")) {
    if (!namespaces.has(ns.metadata.name)) fail("namespace", ns, "Namespace object differs from the objects' namespace");
  }

  // ---- per Deployment
  for (const d of deployments) {
    const spec = d.spec || {};
    const tpl = spec.template || {};
    const labels = tpl.metadata?.labels || {};
    const pod = tpl.spec || {};
    const sel = spec.selector?.matchLabels || {};
    const hpa = hpas.find((h) => h.spec?.scaleTargetRef?.kind === "Deployment" && h.spec.scaleTargetRef.name === d.metadata.name);

    if (!Object.keys(sel).length) fail("selector", d, "empty selector.matchLabels");
    if (!subset(sel, labels)) fail("selector", d, `selector ${JSON.stringify(sel)} does not match the pod template labels`);
    if (Object.keys(sel).some((k) => /version/.test(k))) fail("selector", d, "selector contains a version label (selectors are immutable)");
    if (spec.selector?.matchExpressions?.length) fail("selector", d, "matchExpressions: use matchLabels only");

    if (!(spec.revisionHistoryLimit > 0)) fail("history", d, "revisionHistoryLimit must be set and > 0 for `kubectl rollout undo`");

    const strat = spec.strategy?.type || "RollingUpdate";
    const replicas = spec.replicas ?? (hpa ? hpa.spec.minReplicas : 1);
    if (strat === "RollingUpdate") {
      const mu = spec.strategy?.rollingUpdate?.maxUnavailable;
      if (!(mu === 0 || mu === "0%")) fail("strategy", d, `RollingUpdate needs maxUnavailable 0 (has ${mu ?? "the default 25%"})`);
    } else if (strat === "Recreate" && (spec.replicas ?? 1) !== 1) {
      fail("strategy", d, "Recreate with more than one replica takes the whole service down");
    }

    // single writer
    for (const v of pod.volumes || []) {
      if (!v.persistentVolumeClaim) continue;
      const claim = named("PersistentVolumeClaim", v.persistentVolumeClaim.claimName);
      if (!claim) continue; // refs reports it
      const rw = (claim.spec?.accessModes || []).some((m) => m === "ReadWriteOnce" || m === "ReadWriteOncePod");
      const mountedRw = (pod.containers || []).some((c) => (c.volumeMounts || []).some((m) => m.name === v.name && !m.readOnly));
      if (rw && mountedRw && !v.persistentVolumeClaim.readOnly) {
        if (strat !== "Recreate" || (spec.replicas ?? 1) !== 1 || hpa) {
          fail("single-writer", d, `writes claim ${claim.metadata.name} (${claim.spec.accessModes}): needs replicas 1, strategy Recreate, no HPA`);
        }
      }
    }

    // pod security
    const psc = pod.securityContext || {};
    if (psc.runAsNonRoot !== true) fail("pod-security", d, "securityContext.runAsNonRoot is not true");
    if (psc.runAsUser === 0) fail("pod-security", d, "runAsUser 0");
    if (pod.hostNetwork || pod.hostPID || pod.hostIPC) fail("pod-security", d, "host namespaces");
    if (pod.automountServiceAccountToken !== false) fail("pod-security", d, "automountServiceAccountToken is not false");
    if (!pod.serviceAccountName) fail("pod-security", d, "no serviceAccountName (would run as `default`)");
    else if (!named("ServiceAccount", pod.serviceAccountName)) fail("pod-security", d, `ServiceAccount ${pod.serviceAccountName} not in the render`);

    const grace = pod.terminationGracePeriodSeconds ?? 30;
    for (const c of [...(pod.initContainers || []), ...(pod.containers || [])]) {
      const csc = c.securityContext || {};
      const where = `container ${c.name}`;
      const seccomp = csc.seccompProfile?.type || psc.seccompProfile?.type;
      if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost") fail("pod-security", d, `${where}: seccompProfile not RuntimeDefault`);
      if (csc.runAsUser === 0) fail("pod-security", d, `${where}: runAsUser 0`);
      if (csc.allowPrivilegeEscalation !== false) fail("container-security", d, `${where}: allowPrivilegeEscalation is not false`);
      if (csc.readOnlyRootFilesystem !== true) fail("container-security", d, `${where}: readOnlyRootFilesystem is not true`);
      if (csc.privileged) fail("container-security", d, `${where}: privileged`);
      if (!(csc.capabilities?.drop || []).includes("ALL")) fail("container-security", d, `${where}: capabilities.drop lacks ALL`);
      if ((csc.capabilities?.add || []).length) fail("container-security", d, `${where}: adds capabilities ${csc.capabilities.add}`);

      const req = c.resources?.requests || {};
      const lim = c.resources?.limits || {};
      if (!req.cpu || !req.memory) fail("resources", d, `${where}: requests.cpu and requests.memory are required`);
      if (!lim.memory) fail("resources", d, `${where}: limits.memory is required`);

      const img = String(c.image || "");
      const digest = img.includes("@sha256:");
      const lastSeg = img.split("/").pop();
      const tag = lastSeg.includes(":") ? lastSeg.split(":").pop().split("@")[0] : null;
      if (!digest && !tag) fail("image", d, `${where}: image ${img} has no tag (means latest)`);
      if (tag === "latest") fail("image", d, `${where}: image ${img} uses latest`);
      if (img.startsWith("engbot/")) fail("image", d, `${where}: image ${img} was not pinned by the overlay (images:)`);

      // probes
      const grpcServer = (c.ports || []).some((p) => p.name === "grpc");
      for (const kind of ["readinessProbe", "livenessProbe", "startupProbe"]) {
        const p = c[kind];
        if (!p) {
          fail("probes", d, `${where}: no ${kind}`);
          continue;
        }
        const pp = probePort(p);
        if (pp.kind !== "exec" && !portDeclared(c, pp.port)) fail("probes", d, `${where}: ${kind} port ${pp.port} is not a declared container port`);
        if (grpcServer && pp.kind !== "grpc") fail("probes", d, `${where}: gRPC server with a non-grpc ${kind}`);
      }
      if (grpcServer && c.livenessProbe?.grpc && c.livenessProbe.grpc.service !== "liveness") {
        fail("probes", d, `${where}: gRPC liveness must ask health service "liveness" (overall health is NOT_SERVING while loading)`);
      }
      if (grpcServer && c.readinessProbe?.grpc?.service) fail("probes", d, `${where}: gRPC readiness must ask the overall health ("")`);

      // drain grace vs terminationGracePeriodSeconds
      let drain = null;
      for (const e of c.env || []) if (e.name === "DRAIN_GRACE" && e.value !== undefined) drain = e.value;
      if (drain === null) {
        for (const ef of c.envFrom || []) {
          const cm = ef.configMapRef && named("ConfigMap", ef.configMapRef.name);
          if (cm?.data?.DRAIN_GRACE !== undefined) drain = cm.data.DRAIN_GRACE;
        }
      }
      const drainMs = drain === null ? 10000 : durationMs(drain);
      if (drainMs === null) fail("grace", d, `${where}: DRAIN_GRACE ${drain} is not a duration`);
      else if (grace * 1000 <= drainMs + 5000) fail("grace", d, `${where}: terminationGracePeriodSeconds ${grace} must exceed DRAIN_GRACE ${drain ?? "10s"} by more than 5s`);

      // references
      const cmRefs = [
        ...(c.envFrom || []).map((e) => e.configMapRef?.name),
        ...(c.env || []).map((e) => e.valueFrom?.configMapKeyRef?.name),
      ].filter(Boolean);
      for (const n of cmRefs) {
        if (!named("ConfigMap", n)) fail("refs", d, `${where}: ConfigMap ${n} not in the render`);
        else if (!/-[a-z0-9]{10}$/.test(n)) fail("refs", d, `${where}: ConfigMap ${n} has no content hash (use configMapGenerator)`);
      }
      // $(VAR) references must be defined before use
      const seen = new Set();
      for (const e of c.env || []) {
        for (const m of String(e.value ?? "").matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
          if (!seen.has(m[1])) fail("refs", d, `${where}: env ${e.name} uses $(${m[1]}) before it is defined`);
        }
        seen.add(e.name);
        // addresses of other services
        const am = /^dns:\/\/\/([a-z0-9-]+)\.([^.]+)\.svc(?:\.[a-z0-9.-]+)?:(\d+)$/.exec(String(e.value ?? ""));
        if (am) {
          const svc = named("Service", am[1]);
          const ns = am[2];
          if (!svc) fail("addr", d, `${where}: ${e.name} names Service ${am[1]}, not in the render`);
          else {
            if (svc.spec?.clusterIP !== "None") fail("addr", d, `${where}: ${e.name} should use a headless Service for round_robin (${am[1]} is not)`);
            if (!(svc.spec?.ports || []).some((p) => p.port === Number(am[3]))) fail("addr", d, `${where}: ${e.name}: Service ${am[1]} has no port ${am[3]}`);
          }
          if (ns !== "$(POD_NAMESPACE)" && !namespaces.has(ns)) fail("addr", d, `${where}: ${e.name} names namespace ${ns}, not this render's`);
        }
      }
    }
    for (const v of pod.volumes || []) {
      if (v.configMap && !named("ConfigMap", v.configMap.name)) fail("refs", d, `volume ${v.name}: ConfigMap ${v.configMap.name} not in the render`);
      if (v.persistentVolumeClaim && !named("PersistentVolumeClaim", v.persistentVolumeClaim.claimName)) {
        fail("refs", d, `volume ${v.name}: claim ${v.persistentVolumeClaim.claimName} not in the render`);
      }
    }
    if (grace < 1) fail("grace", d, "terminationGracePeriodSeconds below 1");

    // PDB
    const myPdbs = pdbs.filter((p) => Object.keys(p.spec?.selector?.matchLabels || {}).length && subset(p.spec.selector.matchLabels, labels));
    if (myPdbs.length === 0) fail("pdb", d, "no PodDisruptionBudget selects its pods");
    if (myPdbs.length > 1) fail("pdb", d, `${myPdbs.length} PodDisruptionBudgets select its pods (evictions then fail)`);

    // NetworkPolicy
    const myPols = netpols.filter((p) => Object.keys(p.spec?.podSelector?.matchLabels || {}).length && subset(p.spec.podSelector.matchLabels, labels));
    if (!myPols.length) fail("netpol", d, "no NetworkPolicy of its own selects its pods");

    // canary
    if (d.metadata.name.endsWith("-canary")) {
      const stable = named("Deployment", d.metadata.name.replace(/-canary$/, ""));
      if (!stable) fail("canary", d, "no stable Deployment beside it");
      else {
        const norm = (obj) => JSON.stringify(obj, (k, v) => {
          if (k === "replicas" || k === "strategy" || k === "engbot.dev/track") return undefined;
          if (k === "image" && typeof v === "string") return v.replace(/[:@][^/]*$/, "");
          if ((k === "volumes" || k === "volumeMounts") && Array.isArray(v)) {
            return [...v].sort((x, y) => String(x.name).localeCompare(String(y.name))); // order is not meaningful
          }
          if (typeof v === "string") return v.replace(/-canary(?=$|[-.])/g, "");
          return v;
        });
        // Settings the canary declares as its own (annotation engbot.dev/canary-overrides) are
        // left out of the comparison.
        const overrides = new Set(String(d.metadata.annotations?.["engbot.dev/canary-overrides"] || "")
          .split(",").map((x) => x.trim()).filter(Boolean));
        const spec = structuredClone(d.spec);
        for (const c of spec.template?.spec?.containers || []) {
          if (c.env) c.env = c.env.filter((e) => !overrides.has(e.name));
          if (c.env && !c.env.length) delete c.env;
        }
        if (norm(spec) !== norm(stable.spec)) fail("canary", d, "differs from its stable Deployment beyond image tag, names, track and its declared overrides");
        // A shared read-only volume (the files) is the very same claim, not a canary copy.
        for (const v of stable.spec.template.spec.volumes || []) {
          if (!v.persistentVolumeClaim?.readOnly) continue;
          const cv = (d.spec.template.spec.volumes || []).find((x) => x.name === v.name);
          if (cv?.persistentVolumeClaim?.claimName !== v.persistentVolumeClaim.claimName) {
            fail("canary", d, `volume ${v.name}: mounts ${cv?.persistentVolumeClaim?.claimName}, not the shared read-only ${v.persistentVolumeClaim.claimName}`);
          }
        }
      }
    }
  }

  for (const p of pdbs) {
    const both = p.spec?.minAvailable !== undefined && p.spec?.maxUnavailable !== undefined;
    if (both) fail("pdb", p, "sets both minAvailable and maxUnavailable");
    if (!deployments.some((d) => subset(p.spec?.selector?.matchLabels, d.spec?.template?.metadata?.labels))) fail("pdb", p, "selects no Deployment's pods");
  }

  // ---- Services
  for (const s of services) {
    const sel = s.spec?.selector || {};
    const pods = deployments.filter((d) => Object.keys(sel).length && subset(sel, d.spec?.template?.metadata?.labels));
    if (!pods.length) {
      fail("service", s, `selector ${JSON.stringify(sel)} selects no Deployment's pods`);
      continue;
    }
    for (const port of s.spec?.ports || []) {
      const tp = port.targetPort ?? port.port;
      for (const d of pods) {
        if (!(d.spec.template.spec.containers || []).some((c) => portDeclared(c, tp))) {
          fail("service", s, `port ${port.name}: targetPort ${tp} is not a container port of ${d.metadata.name}`);
        }
      }
      if (port.name === "grpc" && port.appProtocol !== "kubernetes.io/h2c") fail("service", s, "port grpc needs appProtocol kubernetes.io/h2c");
    }
    const hasGrpc = (s.spec?.ports || []).some((p) => p.name === "grpc");
    if (hasGrpc && s.spec?.clusterIP !== "None") {
      const twin = services.find((t) => t.spec?.clusterIP === "None" && JSON.stringify(t.spec?.selector) === JSON.stringify(sel) &&
        (t.spec?.ports || []).some((p) => p.name === "grpc"));
      if (!twin) fail("service", s, "gRPC Service without a headless twin (clusterIP None, same selector) for client-side round_robin");
    }
  }
  for (const d of deployments) {
    if ((d.spec.template.spec.containers || []).some((c) => (c.ports || []).some((p) => p.name === "grpc"))) {
      const sv = services.filter((s) => Object.keys(s.spec?.selector || {}).length && subset(s.spec.selector, d.spec.template.metadata.labels));
      if (!sv.some((s) => (s.spec?.ports || []).some((p) => p.name === "grpc"))) fail("service", d, "gRPC server with no Service port named grpc");
    }
  }

  // ---- HPA
  for (const h of hpas) {
    const t = h.spec?.scaleTargetRef || {};
    const d = t.kind === "Deployment" && named("Deployment", t.name);
    if (!d) fail("hpa", h, `target ${t.kind}/${t.name} not in the render`);
    else if (d.spec.replicas !== undefined) fail("hpa", h, `target ${t.name} sets spec.replicas: every apply would fight the HPA`);
  }

  // ---- Ingress
  for (const ing of byKind("Ingress")) {
    for (const r of ing.spec?.rules || []) {
      for (const p of r.http?.paths || []) {
        const b = p.backend?.service;
        const s = b && named("Service", b.name);
        if (!s) fail("ingress", ing, `backend Service ${b?.name} not in the render`);
        else if (!(s.spec.ports || []).some((sp) => (b.port?.name ? sp.name === b.port.name : sp.port === b.port?.number))) {
          fail("ingress", ing, `Service ${b.name} has no port ${b.port?.name ?? b.port?.number}`);
        }
      }
    }
  }
  return findings;
}

function loadDocs(file) {
  return YAML.parseAllDocuments(fs.readFileSync(file, "utf8")).map((d) => d.toJS()).filter(Boolean);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const files = process.argv.slice(2);
  if (!files.length) {
    console.error("usage: k8s-policy.mjs RENDERED.yaml...");
    process.exit(2);
  }
  let passed = 0;
  let failed = 0;
  for (const f of files) {
    const findings = checkPolicy(loadDocs(f));
    if (findings.length) {
      failed++;
      console.log(`FAIL ${f}`);
      for (const x of findings) console.log(`     [${x.rule}] ${x.id}: ${x.msg}`);
    } else {
      passed++;
      console.log(`ok   ${f}`);
    }
  }
  console.log(`k8s-policy: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
