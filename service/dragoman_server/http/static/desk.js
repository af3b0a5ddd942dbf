// The article desk: plain JavaScript, no framework, no build step, nothing from elsewhere.
// It calls this server's routes: GET /languages, POST /v1/translate:stream (newline-delimited
// JSON, one TranslateStreamResponse a line in the proto3 JSON mapping) and POST /v1/summarize.
"use strict";

(() => {
  const KEY_STORAGE = "dragoman.desk.apiKey";
  const TARGET_STORAGE = "dragoman.desk.target";

  const $ = (id) => document.getElementById(id);
  const els = {
    form: $("desk"),
    target: $("target"),
    source: $("source-language"),
    summarise: $("summarise"),
    key: $("api-key"),
    translate: $("translate"),
    stop: $("stop"),
    alert: $("alert"),
    article: $("article"),
    translation: $("translation"),
    detected: $("detected"),
    models: $("models"),
    progress: $("progress"),
    flags: $("flags"),
    summary: $("summary"),
    summaryNote: $("summary-note"),
    status: $("status"),
  };

  const names = new Map(); // language code -> English name (from /languages)
  let controller = null; // the running translation's AbortController

  // -- helpers -----------------------------------------------------------------------------------

  function languageName(code) {
    const name = names.get(code);
    return name ? `${name} (${code})` : code;
  }

  // The proto3 JSON mapping writes lowerCamelCase names and leaves out default values; parsers
  // also accept the proto's own names, so read both.
  function field(message, camel, snake, fallback) {
    if (message[camel] !== undefined) return message[camel];
    if (message[snake] !== undefined) return message[snake];
    return fallback;
  }

  function requestHeaders() {
    const headers = {
      "Content-Type": "application/json",
      Accept: "application/x-ndjson, application/json",
    };
    const key = els.key.value.trim();
    if (key) headers.Authorization = `Bearer ${key}`;
    return headers;
  }

  function announce(text) {
    els.status.textContent = text;
  }

  function showError(message) {
    els.alert.textContent = message;
    els.alert.hidden = false;
  }

  function clearError() {
    els.alert.textContent = "";
    els.alert.hidden = true;
  }

  // The message of an error answer: google.rpc.Status JSON ({"error": {"message": ...}}), a
  // LibreTranslate-style {"error": "..."}, or whatever else came back.
  async function errorMessage(response) {
    let text = "";
    try {
      text = await response.text();
    } catch (_) {
      // the body is gone; the status line is all there is
    }
    try {
      const data = JSON.parse(text);
      const error = Array.isArray(data) ? data[0] && data[0].error : data.error;
      if (typeof error === "string") return error;
      if (error && error.message) return error.message;
    } catch (_) {
      // not JSON
    }
    const line = `HTTP ${response.status} ${response.statusText || ""}`.trim();
    return text && text.length < 300 ? `${line}: ${text}` : line;
  }

  function streamError(payload) {
    const error = payload.error || payload;
    const message = typeof error === "string" ? error : error.message || JSON.stringify(error);
    const failure = new Error(message);
    failure.name = "StreamError";
    return failure;
  }

  // Calls onMessage for each JSON line of a newline-delimited JSON body (a grpc-gateway style
  // {"result": ...} wrapper, or server-sent events' "data: " prefix, are accepted too).
  async function readLines(response, onMessage) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const handle = (line) => {
      let text = line.trim();
      if (text.startsWith("data:")) text = text.slice(5).trim();
      if (!text || text.startsWith(":") || text.startsWith("event:")) return;
      const payload = JSON.parse(text);
      if (payload.error !== undefined) throw streamError(payload);
      onMessage(payload.result !== undefined ? payload.result : payload);
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        handle(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
      }
    }
    buffer += decoder.decode();
    if (buffer.trim()) handle(buffer);
  }

  // -- languages ---------------------------------------------------------------------------------

  function option(value, label) {
    const element = document.createElement("option");
    element.value = value;
    element.textContent = label;
    return element;
  }

  async function loadLanguages() {
    let table;
    try {
      const response = await fetch("/languages", { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(await errorMessage(response));
      table = await response.json();
    } catch (error) {
      showError(`Cannot list the languages: ${error.message || error}`);
      return;
    }
    const targets = new Set();
    for (const row of table) {
      names.set(row.code, row.name);
      for (const code of row.targets) targets.add(code);
    }
    for (const row of table) {
      if (row.targets.length) els.source.append(option(row.code, languageName(row.code)));
    }
    const sorted = [...targets].sort((a, b) => (names.get(a) || a).localeCompare(names.get(b) || b));
    for (const code of sorted) els.target.append(option(code, languageName(code)));
    const remembered = sessionStorage.getItem(TARGET_STORAGE);
    if (remembered && targets.has(remembered)) els.target.value = remembered;
    else if (targets.has("en")) els.target.value = "en";
  }

  // -- translation -------------------------------------------------------------------------------

  function resetOutput() {
    els.translation.replaceChildren();
    els.detected.textContent = "–";
    els.models.textContent = "–";
    els.progress.textContent = "–";
    els.flags.replaceChildren(document.createTextNode("–"));
    els.summary.textContent = "";
    els.summary.hidden = false;
    els.summaryNote.hidden = true;
    els.summaryNote.textContent = "";
  }

  function setBusy(busy) {
    els.translate.disabled = busy;
    els.stop.disabled = !busy;
    els.translation.setAttribute("aria-busy", String(busy));
  }

  function describeFlag(flag, paragraph) {
    const kind = field(flag, "kind", "kind", "flag");
    const segment = field(flag, "segmentIndex", "segment_index", 0);
    const detail = field(flag, "detail", "detail", "");
    const regenerated = field(flag, "regenerated", "regenerated", false);
    return (
      `${kind}: paragraph ${paragraph + 1}, segment ${segment + 1}` +
      (regenerated ? " (regenerated)" : "") +
      (detail ? ` · ${detail}` : "")
    );
  }

  function showParagraph(message, state) {
    const text = field(message, "text", "text", "");
    const index = field(message, "paragraphIndex", "paragraph_index", 0);
    const flags = field(message, "flags", "flags", []);
    const span = document.createElement("span");
    span.className = "paragraph fresh";
    span.dataset.paragraph = String(index);
    span.textContent = text;
    if (flags.length) {
      span.classList.add("flagged");
      span.title = flags.map((f) => describeFlag(f, index)).join("\n");
      if (!state.flags.length) els.flags.replaceChildren();
      for (const flag of flags) {
        const badge = document.createElement("span");
        badge.className = "flag";
        badge.textContent = describeFlag(flag, index);
        els.flags.append(badge);
        state.flags.push(flag);
      }
    }
    els.translation.append(span);
    setTimeout(() => span.classList.remove("fresh"), 1200);
    state.paragraphs += 1;

    if (state.paragraphs === 1) {
      const language = field(message, "sourceLanguage", "source_language", "");
      const detected = field(message, "sourceLanguageDetected", "source_language_detected", false);
      const confidence = field(message, "detectionConfidence", "detection_confidence", 0);
      els.detected.textContent = detected
        ? `${languageName(language)} · ${Math.round(confidence * 100)}% confidence`
        : `${languageName(language)} (given)`;
      const models = field(message, "models", "models", []);
      const pivoted = field(message, "pivoted", "pivoted", false);
      els.models.textContent = models.length
        ? models.join(" → ") + (pivoted ? " (pivoted)" : "")
        : "none: the text is already in that language";
    }
    const last = field(message, "last", "last", false);
    els.progress.textContent = `${state.paragraphs}${last ? " · done" : " · translating…"}`;
    return last;
  }

  async function summarize(request) {
    els.summary.setAttribute("aria-busy", "true");
    const body = { text: request.text, targetLanguage: request.target, mimeType: request.mimeType };
    if (request.source) body.sourceLanguage = request.source;
    try {
      const response = await fetch("/v1/summarize", {
        method: "POST",
        headers: requestHeaders(),
        body: JSON.stringify(body),
        signal: request.signal,
      });
      if (!response.ok) {
        els.summary.hidden = true; // an empty box says nothing; the note says why
        els.summaryNote.textContent = `No summary: ${await errorMessage(response)}`;
        els.summaryNote.hidden = false;
        return;
      }
      const data = await response.json();
      els.summary.textContent = field(data, "summary", "summary", "");
      const models = field(data, "models", "models", []);
      const path = field(data, "path", "path", "");
      els.summaryNote.textContent = [models.join(" → "), path].filter(Boolean).join(" · ");
      els.summaryNote.hidden = !els.summaryNote.textContent;
    } catch (error) {
      if (error.name !== "AbortError") {
        els.summaryNote.textContent = `No summary: ${error.message || error}`;
        els.summaryNote.hidden = false;
      }
    } finally {
      els.summary.setAttribute("aria-busy", "false");
    }
  }

  async function translate() {
    if (controller) return; // one at a time
    clearError();
    resetOutput();
    const format = els.form.querySelector('input[name="format"]:checked');
    const request = {
      text: els.article.value,
      target: els.target.value,
      source: els.source.value,
      mimeType: format ? format.value : "text/plain",
    };
    const body = { texts: [request.text], targetLanguage: request.target, mimeType: request.mimeType };
    if (request.source) body.sourceLanguage = request.source;
    controller = new AbortController();
    request.signal = controller.signal;
    setBusy(true);
    announce("Translating…");
    const state = { paragraphs: 0, flags: [] };
    let summary = null;
    try {
      const response = await fetch("/v1/translate:stream", {
        method: "POST",
        headers: requestHeaders(),
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      if (!response.ok) {
        showError(await errorMessage(response));
        announce("The translation failed.");
        return;
      }
      let done = false;
      await readLines(response, (message) => {
        // The request was accepted: the summary can start beside the stream.
        if (!summary && els.summarise.checked) summary = summarize(request);
        done = showParagraph(message, state) || done;
      });
      if (!state.flags.length) els.flags.textContent = "none";
      announce(`Translated: ${state.paragraphs} paragraph${state.paragraphs === 1 ? "" : "s"}.`);
      if (!done && state.paragraphs) showError("The stream ended before the last paragraph.");
    } catch (error) {
      if (error.name === "AbortError") {
        announce("Stopped.");
        els.progress.textContent = `${state.paragraphs} · stopped`;
      } else {
        showError(error.message || String(error));
        announce("The translation failed.");
      }
    } finally {
      controller = null;
      setBusy(false);
    }
    if (summary) await summary;
  }

  function stop() {
    if (controller) controller.abort();
  }

  // -- copy, drop, keys ----------------------------------------------------------------------------

  async function copy(what) {
    const text = what === "article" ? els.article.value : els[what].textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {
      // No clipboard API (plain HTTP on another host): select and copy the old way.
      const scratch = document.createElement("textarea");
      scratch.value = text;
      scratch.setAttribute("readonly", "");
      scratch.className = "visually-hidden";
      document.body.append(scratch);
      scratch.select();
      document.execCommand("copy");
      scratch.remove();
    }
    announce(`Copied the ${what}.`);
  }

  function looksLikeHtml(file) {
    return file.type === "text/html" || /\.x?html?$/i.test(file.name);
  }

  async function dropFile(event) {
    els.article.classList.remove("dragging");
    const files = event.dataTransfer && event.dataTransfer.files;
    if (!files || !files.length) return; // dropped text: the textarea takes it
    event.preventDefault();
    const file = files[0];
    els.article.value = await file.text();
    $(looksLikeHtml(file) ? "format-html" : "format-text").checked = true;
    announce(`Loaded ${file.name}.`);
    els.article.focus();
  }

  function init() {
    els.key.value = sessionStorage.getItem(KEY_STORAGE) || "";
    els.key.addEventListener("input", () => sessionStorage.setItem(KEY_STORAGE, els.key.value));
    els.target.addEventListener("change", () =>
      sessionStorage.setItem(TARGET_STORAGE, els.target.value),
    );
    els.form.addEventListener("submit", (event) => {
      event.preventDefault();
      translate();
    });
    els.stop.addEventListener("click", stop);
    document.addEventListener("keydown", (event) => {
      if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
        event.preventDefault();
        translate();
      } else if (event.key === "Escape" && controller) {
        stop();
      }
    });
    for (const button of document.querySelectorAll("button[data-copy]")) {
      button.addEventListener("click", () => copy(button.dataset.copy));
    }
    els.article.addEventListener("dragover", (event) => {
      event.preventDefault();
      els.article.classList.add("dragging");
    });
    els.article.addEventListener("dragleave", () => els.article.classList.remove("dragging"));
    els.article.addEventListener("drop", dropFile);
    loadLanguages();
  }

  init();
})();
