/* alpnet explorer: plain JavaScript, no build step, no network beyond this server. */
(function () {
  "use strict";

  const state = { fields: null, labels: {}, seq: 0, timer: null, lastDiagnosis: null, rendered: 0 };
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  const pct = (p) => {
    if (p === null || p === undefined) return "–";
    if (p >= 0.9995) return ">99.9%";
    if (p < 0.0005) return p > 0 ? "<0.1%" : "0%";
    return (100 * p).toFixed(1) + "%";
  };
  const short = (label) => String(label || "").split(" (")[0];
  const label = (name) => short(state.labels[name] || name);
  const fid = (key) => "f-" + key.replace(/\./g, "-");
  const normUnit = (u) => String(u).toLowerCase().replace(/µ|μ|mc/g, "u").replace(/\s+/g, "").replace("²", "2");

  async function api(method, path, body) {
    const opts = { method, headers: { "Accept": "application/json" } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(path, opts);
    let data = null;
    try { data = await res.json(); } catch (e) { data = { error: `${path}: the server answered ${res.status}` }; }
    if (!res.ok) {
      const err = new Error((data && data.error) || `${path}: ${res.status}`);
      err.key = data && data.key;
      throw err;
    }
    return data;
  }

  // ------------------------------------------------------------------ the form
  function fieldControl(section, f) {
    const id = fid(f.key);
    const wrap = el("div", { class: "field" + (f.required ? " required" : ""), "data-key": f.key });
    wrap.append(el("label", { for: id, text: f.label + (f.unit && f.type === "number" ? ` (${f.unit})` : "") }));
    let control;
    if (f.type === "number") {
      control = el("input", { id, type: "number", min: f.minimum, max: f.maximum, step: f.step || "any",
                              inputmode: "decimal", "data-kind": "number" });
    } else if (f.type === "boolean") {
      control = el("select", { id, "data-kind": "boolean" },
        el("option", { value: "", text: "not known" }),
        el("option", { value: "true", text: section === "symptoms" ? "present" : "yes" }),
        el("option", { value: "false", text: section === "symptoms" ? "absent" : "no" }));
    } else if (f.type === "choice") {
      control = el("select", { id, "data-kind": "choice" }, el("option", { value: "", text: "not known" }),
        ...f.options.map((o) => el("option", { value: String(o), text: String(o).replace(/_/g, " ") })));
    } else { // lab: value + unit (or the reporting lab's verdict)
      const input = el("input", { id, type: "text", inputmode: "decimal", autocomplete: "off",
                                  placeholder: "value", "data-kind": "lab" });
      const unit = el("select", { id: id + "-unit", "data-kind": "unit", "aria-label": f.label + ": unit or verdict" },
        ...f.units.map((u) => el("option", { value: u, text: u })),
        ...f.verdicts.map((w) => el("option", { value: "verdict:" + w, text: "lab says " + w })));
      unit.value = f.unit;
      unit.addEventListener("change", () => { input.disabled = unit.value.startsWith("verdict:"); });
      wrap.append(el("div", { class: "row" }, input, unit));
      return wrap;
    }
    wrap.append(control);
    return wrap;
  }

  function buildForm(fields) {
    const box = $("form-sections");
    box.textContent = "";
    for (const s of fields.sections) {
      const fs = el("fieldset", { id: "section-" + s.name }, el("legend", { text: s.title }));
      const grid = el("div", { class: "fields" });
      for (const f of s.fields) grid.append(fieldControl(s.name, f));
      fs.append(grid);
      box.append(fs);
    }
  }

  function allFields() {
    const out = [];
    for (const s of state.fields.sections) for (const f of s.fields) out.push([s.name, f]);
    return out;
  }

  function collectCase() {
    const c = {};
    const put = (section, name, value) => { (c[section] = c[section] || {})[name] = value; };
    for (const [section, f] of allFields()) {
      const node = $(fid(f.key));
      if (!node) continue;
      if (f.type === "lab") {
        const unit = $(fid(f.key) + "-unit").value;
        if (unit.startsWith("verdict:")) { put(section, f.name, unit.slice(8)); continue; }
        const v = node.value.trim();
        if (v !== "") put(section, f.name, `${v} ${unit}`);
      } else if (node.value !== "") {
        const v = node.value;
        if (f.type === "number") put(section, f.name, Number(v));
        else if (f.type === "boolean") put(section, f.name, v === "true");
        else if (f.key === "patient.trimester") put(section, f.name, Number(v));
        else put(section, f.name, v);
      }
    }
    return c;
  }

  function setField(key, value) {
    const f = allFields().find(([, x]) => x.key === key);
    if (!f) return;
    const spec = f[1];
    const node = $(fid(key));
    if (spec.type === "lab") {
      const unitSel = $(fid(key) + "-unit");
      node.disabled = false;
      if (value === null || value === undefined) { node.value = ""; unitSel.value = spec.unit; return; }
      const text = String(value).trim();
      if (["low", "normal", "high"].includes(text.toLowerCase())) {
        unitSel.value = "verdict:" + text.toLowerCase(); node.value = ""; node.disabled = true; return;
      }
      const m = text.match(/^([<>]=?\s*)?([0-9.eE+-]+)\s*(.*)$/);
      if (!m) { node.value = text; return; }
      node.value = (m[1] || "").replace(/\s+/g, "") + m[2];
      const wanted = normUnit(m[3]);
      let opt = [...unitSel.options].find((o) => normUnit(o.value) === wanted);
      if (!opt && m[3]) { opt = el("option", { value: m[3], text: m[3] }); unitSel.append(opt); }
      if (opt) unitSel.value = opt.value;
    } else if (value === null || value === undefined) {
      node.value = "";
    } else {
      node.value = String(value);
    }
  }

  function fillForm(caseData) {
    for (const [, f] of allFields()) setField(f.key, null);
    for (const [section, block] of Object.entries(caseData || {})) {
      if (!block || typeof block !== "object") continue;
      for (const [name, value] of Object.entries(block)) setField(`${section}.${name}`, value);
    }
  }

  // ------------------------------------------------------------------ answers
  function renderDiagnosis(d) {
    state.lastDiagnosis = d;
    const lead = d.leading_cause;
    $("leading").textContent = `Leading cause: ${label(lead)} (${pct(d.posterior[lead])})`;
    $("leading").dataset.cause = lead;
    const list = $("posterior");
    list.textContent = "";
    const causes = Object.keys(d.posterior).sort((a, b) => d.posterior[b] - d.posterior[a]);
    for (const c of causes) {
      const p = d.posterior[c], q = d.prior[c];
      const fill = el("div", { class: "fill" });
      fill.style.width = (100 * p).toFixed(2) + "%";
      const mark = el("div", { class: "prior", title: "prior " + pct(q) });
      mark.style.left = (100 * q).toFixed(2) + "%";
      const track = el("div", { class: "track", role: "img",
                                "aria-label": `${label(c)}: posterior ${pct(p)}, prior ${pct(q)}` }, fill, mark);
      list.append(el("li", { class: c === lead ? "lead" : "", "data-cause": c, "data-posterior": String(p) },
        el("span", { class: "name", text: label(c) }), track,
        el("span", { class: "num", text: `${pct(p)} (prior ${pct(q)})` })));
    }
    const leaks = Object.entries(d.leak || {});
    $("leak").textContent = leaks.map(([k, v]) => `${label(k)} (not a cause): ${pct(v)}`).join("; ");
    $("version").textContent = d.model.version;
    $("priors-hash").textContent = String(d.model.priors_sha256).slice(0, 12);
    $("disclaimer-text").textContent = d.disclaimer;
    renderToggles();
  }

  function renderExplanation(x) {
    const box = $("explanation");
    box.textContent = "";
    const lead = state.lastDiagnosis && state.lastDiagnosis.leading_cause;
    const cause = (x.causes || []).find((c) => c.cause === lead) || (x.causes || [])[0];
    if (!cause) { box.textContent = "No explanation for this case."; return; }
    const findings = (cause.findings || []).slice()
      .sort((a, b) => Math.abs(b.contribution_bits || 0) - Math.abs(a.contribution_bits || 0));
    box.append(el("p", { text: `${short(cause.label)}: from ${pct(cause.prior)} before the findings to ` +
      `${pct(cause.posterior)} after them. Each finding's share of that change, in bits of evidence ` +
      `(+ for, − against):` }));
    const tbody = el("tbody");
    for (const f of findings.slice(0, 8)) {
      const b = f.contribution_bits;
      const cls = b > 0 ? "up" : (b < 0 ? "down" : "");
      tbody.append(el("tr", {},
        el("td", { text: `${f.finding || f.key}: ${String(f.state).replace(/_/g, " ")}` }),
        el("td", { class: "n " + cls, text: b === null ? "decisive" : (b > 0 ? "+" : "") + b.toFixed(2) }),
        el("td", { text: f.direction || "" })));
    }
    box.append(el("div", { class: "tablewrap" }, el("table", { id: "explain-table" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "finding" }),
        el("th", { scope: "col", text: "bits" }), el("th", { scope: "col", text: "direction" }))), tbody)));
    if (x.conflict && x.conflict.bits !== null && x.conflict.bits > 0) {
      box.append(el("p", { class: "muted", text: `The findings conflict by ${x.conflict.bits.toFixed(2)} bits ` +
        `(they are less likely together than apart under the model).` }));
    }
  }

  function renderNextTests(n) {
    const box = $("next-tests");
    box.textContent = "";
    Object.assign(state.labels, n.labels || {});
    const rows = n.ranking || [];
    if (!rows.length) { box.textContent = "No test left to rank."; return; }
    const tbody = el("tbody");
    for (const r of rows) {
      const outs = Object.entries(r.outcomes || {}).map(([s, o]) => {
        const [c, p] = Object.entries(o.leading || {})[0] || ["", null];
        return `${s.replace(/_/g, " ")} (${pct(o.p)}) → ${label(c)} ${pct(p)}`;
      });
      tbody.append(el("tr", { "data-test": r.test },
        el("td", { text: label(r.test) }),
        el("td", { class: "n", text: r.expected_information_gain_bits.toFixed(3) }),
        el("td", { class: "n", text: r.cost === null ? "?" : `${r.cost.toFixed(0)} ${n.currency || ""}` }),
        el("td", { text: outs.join("; ") })));
    }
    box.append(el("div", { class: "tablewrap" }, el("table", { id: "next-table" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "test" }), el("th", { scope: "col", text: "gain" }),
        el("th", { scope: "col", text: "cost" }), el("th", { scope: "col", text: "each result would give" }))),
      tbody)));
    const qs = (n.questions || []).slice(0, 5);
    if (qs.length) {
      box.append(el("p", { class: "muted", text: "Ask first (free): " +
        qs.map((q) => `${label(q.test)} (${q.expected_information_gain_bits.toFixed(2)} bits)`).join(", ") }));
    }
  }

  // ------------------------------------------------------------------ what-if
  function toggleTargets() {
    const c = collectCase();
    const out = [];
    for (const [section, f] of allFields()) {
      if (f.type !== "boolean" || section === "patient") continue;
      const now = (c[section] || {})[f.name];
      const word = (v) => v === undefined ? "not known" : (section === "symptoms" ? (v ? "present" : "absent")
                                                                                  : (v ? "yes" : "no"));
      const next = now === undefined ? true : (now ? false : undefined);
      out.push({ key: f.key, text: `${short(f.label)}: ${word(now)} → ${word(next)}`,
                 set: next === undefined ? null : { [f.key]: next }, unset: next === undefined ? [f.key] : null });
    }
    for (const [section, f] of allFields()) {
      if ((section === "labs" || section === "tests") && f.key !== "labs.alp" && (c[section] || {})[f.name] !== undefined) {
        out.push({ key: f.key, text: `${short(f.label)}: remove`, set: null, unset: [f.key] });
      }
    }
    return out;
  }

  function renderToggles() {
    const box = $("what-if-toggles");
    box.textContent = "";
    for (const t of toggleTargets()) {
      box.append(el("button", { type: "button", "data-key": t.key, text: t.text, onclick: () => whatIf(t) }));
    }
  }

  async function whatIf(t) {
    const body = { case: collectCase() };
    if (t.set) body.set = t.set;
    if (t.unset) body.unset = t.unset;
    $("status").textContent = "Working out the what-if…";
    try {
      const w = await api("POST", "/what-if", body);
      const lb = w.before.leading_cause, la = w.after.leading_cause;
      const moved = (w.causes || []).slice().sort((a, b) => Math.abs(b.change) - Math.abs(a.change)).slice(0, 3);
      const box = $("what-if-result");
      box.textContent = "";
      box.append(el("p", {}, el("strong", { text: t.text + ": " }),
        `leading cause ${label(lb)} ${pct(w.before.posterior[lb])} → ${label(la)} ${pct(w.after.posterior[la])}.`));
      box.append(el("ul", {}, ...moved.map((m) => el("li", { class: m.change > 0 ? "up" : (m.change < 0 ? "down" : ""),
        text: `${label(m.cause)}: ${pct(m.before)} → ${pct(m.after)}` }))));
      if (w.after.next_test) box.append(el("p", { class: "muted", text: `Best test after the change: ${label(w.after.next_test.test)}` }));
      for (const ch of w.changes || []) setField(ch.key, ch.after);
      await refresh();
      const again = document.querySelector(`#what-if-toggles button[data-key="${CSS.escape(t.key)}"]`);
      if (again) again.focus();
    } catch (e) {
      showError(e);
    }
  }

  // ------------------------------------------------------------------ refresh cycle
  function showError(e) {
    const box = $("error");
    $("results").dataset.rendered = String(++state.rendered);
    box.hidden = false;
    box.textContent = e.message;
    $("status").textContent = "";
    if (e.key) {
      const node = document.getElementById(fid(e.key));
      if (node) node.setAttribute("aria-invalid", "true");
    }
  }

  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
    for (const n of document.querySelectorAll("[aria-invalid]")) n.removeAttribute("aria-invalid");
  }

  async function refresh() {
    const c = collectCase();
    const seq = ++state.seq;
    if (!c.labs || c.labs.alp === undefined) {
      $("status").textContent = "Enter the ALP (required) to see the causes.";
      return;
    }
    $("status").textContent = "Updating…";
    try {
      const d = await api("POST", "/diagnose", c);
      if (seq !== state.seq) return;
      clearError();
      renderDiagnosis(d);
      const x = await api("POST", "/explain?cause=" + encodeURIComponent(d.leading_cause), c);
      if (seq !== state.seq) return;
      renderExplanation(x);
      $("status").textContent = "Ranking the next tests…";
      const n = await api("POST", "/next-test?top=6", c);
      if (seq !== state.seq) return;
      renderNextTests(n);
      $("status").textContent = "Up to date.";
      $("results").dataset.case = JSON.stringify(c);  // the case the answers on show are about
      $("results").dataset.rendered = String(++state.rendered);
    } catch (e) {
      if (seq === state.seq) showError(e);
    }
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = setTimeout(refresh, 300);
  }

  async function loadTeachingCase() {
    const name = $("teaching-case").value;
    if (!name) { $("teaching-case").focus(); return; }
    try {
      const t = await api("GET", "/cases/" + encodeURIComponent(name));
      fillForm(t.case);
      const about = $("case-about");
      about.textContent = "";
      about.append(el("p", {}, el("strong", { text: t.about.title || name })));
      if (t.about.narrative) about.append(el("p", { text: t.about.narrative }));
      if (t.about.teaching_point) about.append(el("p", { class: "muted", text: "Teaching point: " + t.about.teaching_point }));
      about.hidden = false;
      $("what-if-result").textContent = "";
      await refresh();
    } catch (e) {
      showError(e);
    }
  }

  async function start() {
    try {
      const [fields, cases] = await Promise.all([api("GET", "/fields"), api("GET", "/cases")]);
      state.fields = fields;
      Object.assign(state.labels, fields.causes || {});
      for (const [, f] of [].concat(...fields.sections.map((s) => s.fields.map((f) => [s, f])))) state.labels[f.name] = f.label;
      $("disclaimer-text").textContent = fields.disclaimer;
      $("version").textContent = fields.model.version;
      $("priors-hash").textContent = String(fields.model.priors_sha256).slice(0, 12);
      buildForm(fields);
      const sel = $("teaching-case");
      for (const c of cases.cases) sel.append(el("option", { value: c.name, text: c.title }));
      $("case-form").addEventListener("input", schedule);
      $("case-form").addEventListener("change", schedule);
      $("case-form").addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
      $("load-case").addEventListener("click", loadTeachingCase);
      $("clear-case").addEventListener("click", () => {
        fillForm({}); $("case-about").hidden = true; $("what-if-result").textContent = ""; refresh();
      });
      document.body.dataset.ready = "true";
      $("status").textContent = "Enter the ALP (required) to see the causes, or load a teaching case.";
    } catch (e) {
      showError(e);
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
