// The operations console: reads the app's JSON endpoints with a function key and draws
// what they say. No framework and no build step; every value reaches the page through
// textContent or an attribute, never as HTML.
"use strict";

(function () {
  // The script is served at <api>/console/assets/console.js: the API is two levels up,
  // whatever the host's route prefix is.
  const API = new URL("../../", document.currentScript.src);
  const KEY_ITEM = "console.functionKey";
  const REFRESH_MS = 5000;
  const SVG = "http://www.w3.org/2000/svg";

  // Endpoints of capabilities an app may not have yet: probed once per page load, and
  // their section stays hidden while they answer 404.
  const optional = { batch: null, events: null };
  let refreshing = false;

  const $ = (id) => document.getElementById(id);

  // -- the function key --------------------------------------------------------------

  function storedKey() {
    return sessionStorage.getItem(KEY_ITEM) || "";
  }

  function askForKey(message) {
    sessionStorage.removeItem(KEY_ITEM);
    $("console").hidden = true;
    $("refresh").hidden = true;
    $("forget-key").hidden = true;
    $("key-form").hidden = false;
    $("key-error").textContent = message || "";
    $("key-input").focus();
  }

  class KeyRefused extends Error {}

  // -- HTTP --------------------------------------------------------------------------

  async function call(path, options) {
    const request = Object.assign({ headers: {} }, options || {});
    request.headers = Object.assign({ "x-functions-key": storedKey() }, request.headers);
    request.cache = "no-store";
    const response = await fetch(new URL(path, API), request);
    if (response.status === 401) {
      throw new KeyRefused("the function key was refused (401)");
    }
    const type = response.headers.get("Content-Type") || "";
    const body = type.includes("json") ? await response.json() : await response.blob();
    return { status: response.status, body: body, type: type };
  }

  function problemText(answer) {
    const body = answer.body || {};
    if (body.title) {
      return body.title + (body.detail ? ": " + body.detail : "") + " (" + answer.status + ")";
    }
    return "HTTP " + answer.status;
  }

  // -- small DOM helpers ---------------------------------------------------------------

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== null && value !== undefined && value !== false) {
        node.setAttribute(name, value === true ? "" : String(value));
      }
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attributes, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      node.setAttribute(name, String(value));
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function facts(pairs) {
    return el("dl", { class: "facts" },
      pairs.filter((pair) => pair[1] !== undefined).flatMap(([name, value]) => [
        el("dt", {}, name), el("dd", {}, value === null || value === "" ? "—" : value),
      ]));
  }

  function badge(text, tone) {
    return el("span", { class: "badge " + tone }, text);
  }

  function notice(text, tone) {
    const box = $("notice");
    box.hidden = !text;
    box.className = tone || "";
    box.textContent = text || "";
  }

  function when(iso) {
    if (!iso) return null;
    const date = new Date(iso);
    return isNaN(date) ? String(iso) : date.toISOString().replace("T", " ").slice(0, 19) + "Z";
  }

  function seconds(value) {
    if (value === null || value === undefined) return null;
    const s = Number(value);
    if (s < 120) return s.toFixed(1) + " s";
    if (s < 7200) return (s / 60).toFixed(1) + " min";
    if (s < 172800) return (s / 3600).toFixed(1) + " h";
    if (s < 63072000) return (s / 86400).toFixed(1) + " d";
    return (s / 31536000).toFixed(0) + " y";
  }

  function number(value) {
    return value === null || value === undefined ? "" : Number(value).toLocaleString("en");
  }

  function toneOf(state) {
    const text = String(state || "").toLowerCase();
    if (/with_failures|skipped/.test(text)) return "warn";
    if (/fail|stuck|terminat|error|dead/.test(text)) return "bad";
    if (/succe|complet|free|^ok$/.test(text)) return "good";
    if (/run|pend|progress|execut|wait|sync|held|interval|lease|cancel/.test(text)) return "busy";
    return "idle";
  }

  function replace(container, children) {
    container.replaceChildren(...children);
  }

  // -- sync jobs -----------------------------------------------------------------------

  // A timestamp cursor as a Date (the source clock is taken as UTC, as the API does).
  function cursorDate(text) {
    if (typeof text !== "string" || !/^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}/.test(text)) return null;
    const iso = text.replace(" ", "T");
    const date = new Date(/Z|[+-]\d{2}:?\d{2}$/.test(iso) ? iso : iso + "Z");
    return isNaN(date) ? null : date;
  }

  // How far the watermark was behind the run's start, for timestamp cursors.
  function lagAtStart(run) {
    const cursor = cursorDate(run.startCursor);
    const started = run.startedAt ? new Date(run.startedAt) : null;
    if (!cursor || !started || isNaN(started)) return null;
    return Math.max(0, (started - cursor) / 1000);
  }

  function runChart(runs) {
    const width = 360, height = 120, left = 34, right = 48, top = 10, bottom = 22;
    const plotWidth = width - left - right, plotHeight = height - top - bottom;
    const ordered = runs.slice().reverse(); // oldest first, left to right
    const rows = ordered.map((run) => Number(run.rows || 0));
    const lags = ordered.map(lagAtStart);
    const maxRows = Math.max(1, ...rows);
    const knownLags = lags.filter((lag) => lag !== null);
    // Log scale: the first run of a job starts from the initial watermark, years behind,
    // and would flatten every later run's lag of seconds or minutes.
    const maxLag = Math.max(1, ...knownLags);
    const lagHeight = (lag) => (Math.log10(1 + lag) / Math.log10(1 + maxLag)) * plotHeight;
    const step = plotWidth / Math.max(1, ordered.length);
    const chart = svg("svg", { class: "chart", width: width, height: height,
      viewBox: "0 0 " + width + " " + height, role: "img",
      "aria-label": "rows and watermark lag per run" });
    chart.append(svg("line", { class: "axis", x1: left, y1: top + plotHeight,
      x2: left + plotWidth, y2: top + plotHeight }));
    chart.append(svg("text", { x: left - 4, y: top + 8, "text-anchor": "end" }, number(maxRows)));
    chart.append(svg("text", { x: left - 4, y: top + plotHeight, "text-anchor": "end" }, "0"));
    if (knownLags.length) {
      chart.append(svg("text", { x: left + plotWidth + 4, y: top + 8 }, seconds(maxLag)));
      chart.append(svg("text", { x: left + plotWidth + 4, y: top + plotHeight }, "0 s"));
    }
    chart.append(svg("text", { x: left, y: height - 6 }, "older"));
    chart.append(svg("text", { x: left + plotWidth, y: height - 6, "text-anchor": "end" },
      "newest run"));
    const points = [];
    ordered.forEach((run, index) => {
      const barHeight = (rows[index] / maxRows) * plotHeight;
      const x = left + index * step + step * 0.15;
      chart.append(svg("rect", { class: "bar", x: x.toFixed(1),
        y: (top + plotHeight - barHeight).toFixed(1), width: (step * 0.7).toFixed(1),
        height: Math.max(barHeight, 0.5).toFixed(1) },
        svg("title", {}, "run " + run.runId + ": " + number(rows[index]) + " rows, " +
          (run.outcome || "?"))));
      if (lags[index] !== null) {
        const cx = left + index * step + step / 2;
        const cy = top + plotHeight - lagHeight(lags[index]);
        points.push(cx.toFixed(1) + "," + cy.toFixed(1));
        chart.append(svg("circle", { class: "lag-dot", cx: cx.toFixed(1), cy: cy.toFixed(1),
          r: 2.5 }, svg("title", {}, "lag at start: " + seconds(lags[index]))));
      }
    });
    if (points.length > 1) {
      chart.append(svg("polyline", { class: "lag", points: points.join(" ") }));
    }
    return el("figure", { class: "chart-box" }, chart,
      el("figcaption", { class: "muted" },
        el("span", { class: "legend-rows" }, "■ rows per run"), "  ",
        knownLags.length ? el("span", { class: "legend-lag" },
          "● watermark lag at run start (log scale)")
          : null));
  }

  function runsTable(runs) {
    const head = el("tr", {}, ["run", "started", "ended", "outcome", "pages", "rows",
      "delivered", "dead letters", "error"].map((name, index) =>
      el("th", { class: index >= 4 && index <= 7 ? "num" : null }, name)));
    const body = runs.map((run) => el("tr", { "data-run-id": run.runId },
      el("td", { class: "mono" }, run.runId),
      el("td", {}, when(run.startedAt)),
      el("td", {}, when(run.endedAt) || ""),
      el("td", {}, badge(run.outcome || "?", toneOf(run.outcome))),
      el("td", { class: "num" }, number(run.pages)),
      el("td", { class: "num" }, number(run.rows)),
      el("td", { class: "num" }, number(run.delivered)),
      el("td", { class: "num" }, number(run.deadLettered)),
      el("td", { class: "error" }, run.error || "")));
    return el("table", { class: "runs" }, el("thead", {}, head), el("tbody", {}, body));
  }

  function syncCard(status) {
    const lock = status.lock || {};
    const mark = status.watermark || {};
    const progress = status.progress;
    const ticks = status.ticks || {};
    const tickText = Object.entries(ticks)
      .filter(([name]) => !/^(Timestamp|etag)$/i.test(name))
      .map(([name, value]) => name + " " + value).join(", ");
    const running = lock.state === "running";
    const runButton = el("button", { type: "button", "data-action": "run-now",
      "data-job": status.job, disabled: running || !status.enabled }, "Run now");
    runButton.addEventListener("click", () => runNow(status.job, runButton));
    return el("article", { class: "card sync-job", "data-job": status.job },
      el("div", { class: "card-head" },
        el("h3", {}, status.job),
        badge(status.enabled ? "enabled" : "disabled", status.enabled ? "good" : "idle"),
        badge("lock: " + lock.state, toneOf(lock.state)),
        el("span", { class: "muted" }, status.description || ""),
        el("span", { class: "spacer" }), runButton),
      el("div", { class: "card-body" },
        facts([
          ["lag", seconds(status.lagSeconds)],
          ["watermark", mark.stored ? mark.cursor + (mark.key ? "  key " + mark.key.join(", ")
            : "") : "not stored yet (" + mark.cursor + ")"],
          ["watermark written", when(mark.updatedAt)],
          ["lock", lock.detail],
          ["instance", (status.instanceId || "") + " " + (lock.runtimeStatus || "")],
          ["progress", progress ? progress.phase + ": " + number(progress.pages) + " pages, " +
            number(progress.rows) + " rows" : null],
          ["schedule", (status.schedule && status.schedule.value) || null],
          ["ticks", tickText || null],
        ]),
        (status.lastRuns || []).length ? runChart(status.lastRuns) : null),
      (status.lastRuns || []).length ? runsTable(status.lastRuns)
        : el("p", { class: "muted" }, "no run yet"));
  }

  async function runNow(job, button) {
    button.disabled = true;
    try {
      const answer = await call("sync/" + encodeURIComponent(job) + "/run", { method: "POST" });
      if (answer.status === 202) {
        notice("sync job " + job + ": run " + answer.body.runId + " started", "good");
      } else {
        notice("sync job " + job + ": " + problemText(answer), "bad");
      }
    } catch (error) {
      failed(error);
    }
    refresh();
  }

  async function showSyncJobs(jobs) {
    const answers = await Promise.all(jobs.map((job) => call(job.statusUrl)));
    const cards = answers.map((answer, index) => answer.status === 200
      ? syncCard(answer.body)
      : el("article", { class: "card" }, el("h3", {}, jobs[index].job),
        el("p", { class: "error" }, problemText(answer))));
    replace($("sync-jobs"), cards.length ? cards : [el("p", { class: "muted" },
      "no sync job is configured")]);
  }

  // -- bulk loads: the loads API (GET bulk-loads, GET bulk-loads/{id}) --------------

  const LOADS_SHOWN = 10;
  const LOADS_DAYS = 7;

  // Built from the load id, not taken from the view's links: those are rooted at the
  // default route prefix, and these stay right under whatever prefix the host has.
  function loadPath(load, what) {
    return "bulk-loads/" + encodeURIComponent(load.loadId) + (what ? "/" + what : "");
  }

  function levelRow(level) {
    const records = Number(level.records || level.submitted || 0);
    const done = Number(level.succeeded || 0) + Number(level.failed || 0) +
      Number(level.unprocessed || 0) + Number(level.orphansSkipped || 0);
    const bar = el("progress", { max: Math.max(records, 1), value: Math.min(done, records) });
    return el("div", { class: "level", "data-level": level.level },
      el("span", {}, level.level + " ", el("span", { class: "muted" }, level.object || "")),
      bar,
      el("span", {}, badge(level.state, toneOf(level.state)), " ",
        number(level.succeeded) + " ok, " + number(level.failed) + " failed, " +
        number(level.unprocessed) + " unprocessed, " + number(level.orphansSkipped) +
        " orphans of " + number(records),
        level.error ? el("span", { class: "error" }, " — " + level.error) : null));
  }

  // A link to one of the load's CSV reports. A link cannot carry the key header, so a
  // click fetches the file with it and hands it over as a download.
  function reportLink(load, report, label) {
    const name = load.loadId + "-" + report + ".csv";
    const link = el("a", { class: "download", href: new URL(loadPath(load, report), API).href,
      download: name, "data-action": report }, label);
    link.addEventListener("click", (event) => {
      event.preventDefault();
      download(loadPath(load, report), name);
    });
    return link;
  }

  function loadCard(load) {
    const summary = load.summary || {};
    const loaded = (load.levels || []).reduce((sum, level) => sum + Number(level.succeeded || 0), 0);
    const actions = [];
    if (load.cancelUrl) {
      const cancel = el("button", { type: "button", "data-action": "cancel" }, "Cancel");
      cancel.addEventListener("click", () => cancelLoad(load, cancel));
      actions.push(cancel);
    }
    if (load.resultsUrl && loaded > 0) {
      actions.push(reportLink(load, "results", "Results CSV"));
    }
    if (load.failuresUrl && summary.failedRecords !== 0) {
      actions.push(reportLink(load, "failures", "Failures CSV"));
    }
    const state = load.outcome || load.runtimeStatus;
    const busy = Boolean(load.cancelUrl);
    return el("article", { class: "card bulk-load", "data-load-id": load.loadId },
      el("div", { class: "card-head" },
        el("h3", {}, load.loadId),
        badge(state, toneOf(state)),
        load.phase && !load.outcome ? el("span", { class: "muted" }, load.phase) : null,
        el("span", { class: "spacer" }), actions),
      facts([
        ["created", when(load.createdAt)],
        ["updated", when(load.updatedAt)],
        ["progress", busy ? Number(load.percent || 0).toFixed(1) + " %" : undefined],
        ["elapsed", seconds(summary.elapsedSeconds)],
        ["failed records", summary.failedRecords === undefined || summary.failedRecords === null
          ? null : number(summary.failedRecords)],
        ["retry of", load.retryOf || undefined],
        ["cancel reason", summary.cancelReason || undefined],
        ["error", load.error || undefined],
      ]),
      el("div", { class: "levels" }, (load.levels || []).map(levelRow)));
  }

  async function cancelLoad(load, button) {
    button.disabled = true;
    try {
      const answer = await call(loadPath(load, "cancel"), { method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ reason: "cancelled from the operations console" }) });
      notice(answer.status === 202 ? "bulk load " + load.loadId + ": cancel requested"
        : "bulk load " + load.loadId + ": " + problemText(answer),
        answer.status === 202 ? "good" : "bad");
      await showLoad(load.loadId);
    } catch (error) {
      failed(error);
    }
  }

  // One load's card redrawn from GET bulk-loads/{id}, without waiting for the next refresh.
  async function showLoad(loadId) {
    const answer = await call(loadPath({ loadId: loadId }));
    const card = [...$("bulk-loads").querySelectorAll("article.bulk-load")]
      .find((node) => node.dataset.loadId === loadId);
    if (answer.status === 200 && card) {
      card.replaceWith(loadCard(answer.body));
    }
  }

  // A link cannot carry the key header: fetch the file, then hand it over as a download.
  async function download(path, name) {
    try {
      const answer = await call(path);
      if (answer.status !== 200) {
        notice(problemText(answer), "bad");
        return;
      }
      const url = URL.createObjectURL(answer.body);
      const link = el("a", { href: url, download: name });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (error) {
      failed(error);
    }
  }

  async function showLoads() {
    const since = new Date(Date.now() - LOADS_DAYS * 86400000).toISOString();
    const answer = await call("bulk-loads?limit=" + LOADS_SHOWN + "&since=" +
      encodeURIComponent(since));
    if (answer.status !== 200) {
      replace($("bulk-loads"), [el("p", { class: "error" }, problemText(answer))]);
      return;
    }
    const loads = listOf(answer.body, "loads");
    replace($("bulk-loads"), loads.length ? loads.map(loadCard)
      : [el("p", { class: "muted" }, "no bulk load in the last " + LOADS_DAYS + " days")]);
  }

  // -- batch jobs and the event queue, where the app has them ---------------------------

  async function probe(name, path) {
    if (optional[name] === false) return null;
    const answer = await call(path);
    if (answer.status === 404 || answer.status === 405) {
      optional[name] = false;
      return null;
    }
    optional[name] = true;
    return answer;
  }

  function listOf(body, key) {
    if (Array.isArray(body)) return body;
    if (body && Array.isArray(body[key])) return body[key];
    return [];
  }

  // A batch instance in one of these has not ended: no failure report yet.
  const ACTIVE_BATCH_STATES = ["STAGING", "EXECUTABLE", "EXECUTING", "PURGING"];

  function batchInstanceRow(job, instance) {
    const total = Number(instance.totalRecords || 0);
    const processed = Number(instance.processedRecords || 0);
    const id = instance.batchJobInstanceId || instance.instanceId || "";
    const finished = instance.status && !ACTIVE_BATCH_STATES.includes(instance.status);
    const csv = finished && Number(instance.failedRecords || 0) > 0
      ? el("button", { type: "button", "data-action": "failures" }, "Failures CSV") : null;
    if (csv) {
      csv.addEventListener("click", () => download("batch-jobs/" + encodeURIComponent(job) +
        "/" + encodeURIComponent(id) + "/failures", job + "-" + id + "-failures.csv"));
    }
    return el("tr", { "data-instance-id": id },
      el("td", { class: "mono" }, id),
      el("td", {}, badge(instance.status || "?", toneOf(instance.status))),
      el("td", {}, el("progress", { max: Math.max(total, 1), value: Math.min(processed, total) })),
      el("td", { class: "num" }, number(instance.successfulRecords)),
      el("td", { class: "num" }, number(instance.failedRecords)),
      el("td", { class: "num" }, number(total)),
      el("td", { class: "num" }, typeof instance.elapsedTimeInMillis === "number"
        ? seconds(instance.elapsedTimeInMillis / 1000) : null),
      el("td", {}, csv));
  }

  async function showBatchJobs(inventoried) {
    const jobs = inventoried.map((item) => typeof item === "string" ? item : item.job)
      .filter(Boolean);
    $("batch-section").hidden = jobs.length === 0;
    if (!jobs.length) return;
    const answers = await Promise.all(jobs.map((job) =>
      call("batch-jobs/" + encodeURIComponent(job))));
    replace($("batch-jobs"), answers.map((answer, index) => {
      const job = jobs[index];
      if (answer.status !== 200) {
        return el("article", { class: "card" }, el("h3", {}, job),
          el("p", { class: "error" }, problemText(answer)));
      }
      const instances = listOf(answer.body, "instances");
      const head = el("tr", {}, ["instance", "status", "progress", "successful", "failed",
        "total", "elapsed", ""].map((name) => el("th", {}, name)));
      const more = answer.body && answer.body.next ? "the newest " + instances.length +
        " instances" : "newest first";
      return el("article", { class: "card batch-job", "data-job": job },
        el("div", { class: "card-head" }, el("h3", {}, job),
          instances.length ? el("span", { class: "muted" }, more) : null),
        instances.length ? el("table", {}, el("thead", {}, head),
          el("tbody", {}, instances.map((instance) => batchInstanceRow(job, instance))))
          : el("p", { class: "muted" }, "no instance yet"));
    }));
  }

  async function showEvents() {
    const answer = await probe("events", "events");
    $("events-section").hidden = !answer;
    if (!answer) return;
    if (answer.status !== 200) {
      replace($("events"), [el("p", { class: "error" }, problemText(answer))]);
      return;
    }
    const flat = [];
    for (const [name, value] of Object.entries(answer.body || {})) {
      if (value !== null && typeof value === "object") {
        for (const [inner, innerValue] of Object.entries(value)) {
          if (innerValue === null || typeof innerValue !== "object") {
            flat.push([name + " " + inner, String(innerValue)]);
          }
        }
      } else {
        flat.push([name, value === null ? null : String(value)]);
      }
    }
    const drain = el("button", { type: "button", "data-action": "drain" }, "Drain now");
    drain.addEventListener("click", async () => {
      drain.disabled = true;
      try {
        const started = await call("events/drain", { method: "POST" });
        notice(started.status < 300 ? "event drain requested" : problemText(started),
          started.status < 300 ? "good" : "bad");
      } catch (error) {
        failed(error);
      }
      refresh();
    });
    replace($("events"), [el("article", { class: "card" },
      el("div", { class: "card-head" }, el("h3", {}, "queue"), el("span", { class: "spacer" }),
        drain), facts(flat))]);
  }

  // -- the refresh loop -----------------------------------------------------------------

  async function showHealth() {
    // Anonymous: it also says whether the app is up before a key is given.
    try {
      const response = await fetch(new URL("health", API), { cache: "no-store" });
      const body = await response.json();
      const box = $("health");
      box.textContent = "health: " + body.status + " (storage " + body.storage + ")";
      box.className = "badge " + (response.ok ? "good" : "bad");
    } catch (error) {
      $("health").textContent = "health: unreachable";
      $("health").className = "badge bad";
    }
  }

  function failed(error) {
    if (error instanceof KeyRefused) {
      askForKey("The function key was refused. Enter a function key of this app.");
    } else {
      notice("refresh failed: " + error.message, "bad");
    }
  }

  async function refresh() {
    if (refreshing || !storedKey()) return;
    refreshing = true;
    try {
      const inventory = await call("console/inventory");
      if (inventory.status !== 200) throw new Error(problemText(inventory));
      $("key-form").hidden = true;
      $("console").hidden = false;
      $("refresh").hidden = false;
      $("forget-key").hidden = false;
      await Promise.all([
        showSyncJobs(inventory.body.syncJobs || []),
        showLoads(),
        showBatchJobs(inventory.body.batchJobs || []),
        showEvents(),
      ]);
      $("refreshed").textContent = "refreshed " + new Date().toLocaleTimeString("en-GB");
      document.body.dataset.refreshed = String(Date.now());
    } catch (error) {
      failed(error);
    } finally {
      refreshing = false;
    }
  }

  function start() {
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY_ITEM, $("key-input").value.trim());
      $("key-input").value = "";
      $("key-error").textContent = "";
      refresh();
    });
    $("refresh").addEventListener("click", refresh);
    $("forget-key").addEventListener("click", () => askForKey(""));
    showHealth();
    if (storedKey()) {
      $("key-form").hidden = true;
      refresh();
    }
    setInterval(() => {
      showHealth();
      refresh();
    }, REFRESH_MS);
  }

  start();
})();
