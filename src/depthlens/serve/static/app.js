// depthlens web page: upload a photo, show its depth map, read values, download results,
// and run the effects of v1/effects on the same photo (one tab each).
// Plain browser JavaScript, no build step and no third-party code. The depth view is one
// request, POST v1/depth with format=json&include_depth=true&include_color=true; each
// effect tab resends the photo kept from the upload to POST v1/effects/{name}. For a model
// that v1/models marks needs_prompt_depth, the page shows a second file field and every
// request also carries that depth prompt (prompt_depth, and prompt_scale when given).
"use strict";

(() => {
  // Legend colours, far (first entry, smallest inverse depth) to near (last entry): evenly
  // spaced entries of depthlens.viz.colormaps.colormap_lut (17 of the 256 for OpenCV's
  // tables, ColorBrewer's 11 control points for spectral, the two ends for gray), so the
  // CSS gradient matches the server's heatmap. tests/serve/test_page.py checks them.
  const COLORMAP_STOPS = {
    inferno: [
      "#000004", "#0b0724", "#210c4a", "#3d0965", "#57106e", "#71196e", "#8a226a", "#a32c61",
      "#bc3754", "#d04545", "#e35933", "#f1711f", "#f98c0a", "#fcaa0f", "#f9c932", "#f2e865",
      "#fcffa4",
    ],
    turbo: [
      "#30123b", "#4040a2", "#466be3", "#4294ff", "#28bceb", "#18ddc2", "#32f298", "#6dfe62",
      "#a4fc3c", "#cbed34", "#ecd13a", "#fdae35", "#fb8122", "#ec530f", "#d23105", "#ac1701",
      "#7a0403",
    ],
    viridis: [
      "#440154", "#48186a", "#472d7b", "#424086", "#3b528b", "#33638d", "#2c728e", "#26828e",
      "#21918c", "#1f9f88", "#27ad81", "#3dbc74", "#5cc863", "#81d34d", "#aadc32", "#d5e21a",
      "#fde725",
    ],
    magma: [
      "#000004", "#0a0822", "#1d1147", "#36106b", "#51127c", "#6a1c81", "#832681", "#9c2e7f",
      "#b73779", "#cf4070", "#e55064", "#f4695c", "#fb8761", "#fea571", "#fec287", "#fde0a1",
      "#fcfdbf",
    ],
    spectral: [
      "#5e4fa2", "#3288bd", "#66c2a5", "#abdda4", "#e6f598", "#ffffbf", "#fee08b", "#fdae61",
      "#f46d43", "#d53e4f", "#9e0142",
    ],
    gray: ["#000000", "#ffffff"],
  };

  const NETWORK_MESSAGE =
    "Could not reach the depthlens server. Check that it is running and that you are " +
    "online, then try again.";

  const $ = (id) => document.getElementById(id);
  const ui = {
    modelSelect: $("model-select"),
    colormapSelect: $("colormap-select"),
    modelDescription: $("model-description"),
    promptFields: $("prompt-fields"),
    promptInput: $("prompt-input"),
    promptScale: $("prompt-scale"),
    dropZone: $("drop-zone"),
    fileInput: $("file-input"),
    cameraInput: $("camera-input"),
    cameraButton: $("camera-button"),
    limitsHint: $("limits-hint"),
    busy: $("busy"),
    busyText: $("busy-text"),
    timing: $("timing"),
    error: $("error"),
    results: $("results"),
    original: $("original"),
    heatmap: $("heatmap"),
    depthKind: $("depth-kind"),
    probeMark: $("probe-mark"),
    legend: $("legend"),
    hoverValue: $("hover-value"),
    downloadColor: $("download-color"),
    downloadPng16: $("download-png16"),
    downloadNpy: $("download-npy"),
    downloadNote: $("download-note"),
    tabs: Array.from(document.querySelectorAll('[role="tab"]')),
    photoHint: $("photo-hint"),
    photoFocusMark: $("photo-focus-mark"),
    bokehFocusMark: $("bokeh-focus-mark"),
    aperture: $("aperture"),
    apertureValue: $("aperture-value"),
    parallaxPath: $("parallax-path"),
    parallaxFrames: $("parallax-frames"),
    stereoLayout: $("stereo-layout"),
    threshold: $("threshold"),
    thresholdLabel: $("threshold-label"),
    thresholdHint: $("threshold-hint"),
    obstacleReport: $("obstacle-report"),
  };

  const state = {
    models: [], // [{name, kind, description, needs_prompt_depth}] from v1/models
    limits: null, // {max_upload_mb, max_megapixels}
    file: null, // the current photo (a File or Blob)
    prompt: null, // the depth prompt chosen for prompt-depth models (a File)
    promptSerial: 0, // counts prompts chosen, so an effect made with an older one is redone
    originalUrl: null,
    heatmapUrl: null,
    controller: null, // AbortController of the request in flight
    result: null, // the JSON response, without its base64 fields
    depth: null, // Float32Array, row-major (height, width)
    depthBytes: null, // the same values as little-endian bytes, for the .npy file
    colorBlob: null, // the heatmap PNG
    probe: null, // {x, y} pixel last read
    view: "depth", // the selected tab: "depth" or an effect name
    focus: null, // {x, y}: the bokeh focus the user chose, in the photo's pixels
    busy: new Map(), // what the page waits for: key -> the sentence the status line shows
    effects: {}, // per effect name: its result and request (filled below EFFECTS)
  };

  // ---- errors --------------------------------------------------------------------------

  class ApiError extends Error {}

  /** An ApiError carrying the server's sentence ({"error": {"message"}}), never raw JSON. */
  async function apiError(response) {
    let message = "";
    try {
      const body = await response.json();
      if (body && body.error && typeof body.error.message === "string") {
        message = body.error.message;
      }
    } catch {
      // Not JSON (a proxy's HTML page, say): fall back to the status line below.
    }
    if (!message) {
      const reason = response.statusText ? ` (${response.statusText})` : "";
      message = `The server could not handle the request: HTTP ${response.status}${reason}.`;
    }
    if (response.status === 503) {
      const after = response.headers.get("Retry-After");
      if (after && /^\d+$/.test(after)) message += ` Try again in ${after} s.`;
    }
    return new ApiError(message);
  }

  function messageOf(error) {
    if (error instanceof ApiError) return error.message;
    if (error instanceof TypeError) return NETWORK_MESSAGE; // what fetch throws offline
    return error && error.message ? error.message : String(error);
  }

  function showError(message) {
    ui.error.textContent = message;
  }

  function clearError() {
    ui.error.textContent = "";
  }

  // ---- API -----------------------------------------------------------------------------

  async function loadModels() {
    let info;
    try {
      const response = await fetch("v1/models", { headers: { Accept: "application/json" } });
      if (!response.ok) throw await apiError(response);
      info = await response.json();
    } catch (error) {
      showError(`Could not load the list of models. ${messageOf(error)}`);
      return;
    }
    state.models = info.models || [];
    state.limits = info.limits || null;
    fillSelect(
      ui.modelSelect,
      state.models.map((m) => m.name),
      info.default,
    );
    const colormaps = (info.colormaps || []).filter((name) => name in COLORMAP_STOPS);
    fillSelect(ui.colormapSelect, colormaps, colormaps.includes("inferno") ? "inferno" : null);
    describeModel();
    drawLegend();
    if (state.limits) {
      const parts = [];
      if (state.limits.max_upload_mb) parts.push(`up to ${state.limits.max_upload_mb} MB`);
      if (state.limits.max_megapixels) parts.push(`${state.limits.max_megapixels} megapixels`);
      if (parts.length) ui.limitsHint.textContent = ` ${parts.join(", ")}.`;
    }
  }

  function fillSelect(select, names, preferred) {
    select.replaceChildren(
      ...names.map((name) => {
        const option = document.createElement("option");
        option.value = name;
        option.textContent = name;
        return option;
      }),
    );
    if (preferred && names.includes(preferred)) select.value = preferred;
    select.disabled = names.length === 0;
  }

  /**
   * POST the current photo to v1/depth with the chosen model (or ``model``, the one a shown
   * result came from) and colormap; resolves to the Response, throws ApiError.
   */
  async function postDepth(format, extra, signal, model = null) {
    const colormap = ui.colormapSelect.disabled ? "" : ui.colormapSelect.value;
    const name = model || chosenModel();
    const form = photoForm({ model: name, colormap, format, ...extra, ...promptFields(name) });
    const response = await fetch("v1/depth", { method: "POST", body: form, signal });
    if (!response.ok) throw await apiError(response);
    return response;
  }

  /** The model picked in the list, or "" (the server's default) before the list loads. */
  function chosenModel() {
    return ui.modelSelect.disabled ? "" : ui.modelSelect.value;
  }

  /** The model named ``name`` in v1/models ("" for the one picked), or undefined. */
  function modelInfo(name = "") {
    return state.models.find((m) => m.name === (name || ui.modelSelect.value));
  }

  /**
   * The form fields of the depth prompt for model ``name``: none for a model that takes
   * no prompt; for a prompt-depth model the chosen file (prompt_depth) and the scale
   * (prompt_scale, "" for the server's default). Throws an Error with the sentence to
   * show when a prompt-depth model has no prompt yet, so no request is sent.
   */
  function promptFields(name) {
    const model = modelInfo(name);
    if (!model || !model.needs_prompt_depth) return {};
    if (!state.prompt) {
      throw new Error(
        `Model '${model.name}' needs a depth prompt: choose a 16-bit PNG (millimetres) or ` +
          "a .npy (meters) of the photo's depth under “Depth prompt” above.",
      );
    }
    return { prompt_depth: state.prompt, prompt_scale: ui.promptScale.value.trim() };
  }

  /** A form with the photo kept from the upload and the non-empty ``fields``. */
  function photoForm(fields) {
    const form = new FormData();
    form.append("image", state.file, state.file.name || "photo");
    for (const [key, value] of Object.entries(fields)) {
      if (value !== "" && value !== null && value !== undefined) form.append(key, value);
    }
    return form;
  }

  function base64Bytes(text) {
    if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(text);
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

  /** Float32Array of little-endian float32 bytes, whatever the machine's byte order. */
  function float32Of(bytes) {
    if (LITTLE_ENDIAN) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    const out = new Float32Array(bytes.length / 4);
    for (let i = 0; i < out.length; i += 1) out[i] = view.getFloat32(4 * i, true);
    return out;
  }

  // ---- the main request ----------------------------------------------------------------

  /**
   * Show (``text``) or clear (null) one reason to wait; the status line shows the latest
   * reason while any is left. "depth" is the main request: it also greys the results.
   */
  function setBusy(key, text) {
    if (text) state.busy.set(key, text);
    else state.busy.delete(key);
    const texts = Array.from(state.busy.values());
    ui.busy.hidden = texts.length === 0;
    if (texts.length) ui.busyText.textContent = texts[texts.length - 1];
    const depth = state.busy.has("depth");
    ui.results.setAttribute("aria-busy", depth ? "true" : "false");
    ui.dropZone.classList.toggle("is-busy", depth);
  }

  async function run() {
    if (!state.file) return;
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    clearError();
    setBusy("depth", "Estimating depth…");
    ui.timing.textContent = "";
    try {
      const response = await postDepth(
        "json",
        { include_depth: "true", include_color: "true" },
        controller.signal,
      );
      const result = await response.json();
      if (typeof result.depth !== "string" || typeof result.color_png !== "string") {
        throw new Error("The server's answer had no depth map in it.");
      }
      const depthBytes = base64Bytes(result.depth);
      if (depthBytes.length !== 4 * result.width * result.height) {
        throw new Error("The server's depth map does not match the image size.");
      }
      const colorBlob = new Blob([base64Bytes(result.color_png)], { type: "image/png" });
      delete result.depth;
      delete result.color_png;
      if (controller !== state.controller) return; // a newer request took over
      await show(result, depthBytes, colorBlob);
    } catch (error) {
      if (controller !== state.controller || error.name === "AbortError") return;
      showError(messageOf(error));
    } finally {
      if (controller === state.controller) {
        state.controller = null;
        setBusy("depth", null);
      }
    }
  }

  async function show(result, depthBytes, colorBlob) {
    state.result = result;
    state.depthBytes = depthBytes;
    state.depth = float32Of(depthBytes);
    state.colorBlob = colorBlob;

    if (state.heatmapUrl) URL.revokeObjectURL(state.heatmapUrl);
    state.heatmapUrl = URL.createObjectURL(colorBlob);
    ui.heatmap.src = state.heatmapUrl;
    ui.original.src = state.originalUrl;
    ui.results.hidden = false;
    try {
      await Promise.all([ui.heatmap.decode(), ui.original.decode()]);
    } catch {
      // The photo may be in a format the server reads but this browser cannot show
      // (TIFF, say); the depth map still shows.
    }
    ui.heatmap.dataset.colormap = result.colormap;
    ui.heatmap.dataset.model = result.model;

    const metric = result.units === "meters";
    ui.depthKind.textContent = metric ? "(meters)" : "(relative inverse depth)";
    drawLegend(result.colormap);
    const t = result.timings_ms || {};
    if (typeof t.total === "number") {
      ui.timing.textContent = `Processed in ${ms(t.total)} (inference ${ms(t.inference)}).`;
      ui.timing.title =
        `queue ${ms(t.queue)}, decode ${ms(t.decode)}, inference ${ms(t.inference)}, ` +
        `encode ${ms(t.encode)}`;
    }
    if (state.probe) {
      showProbe(
        Math.min(state.probe.x, result.width - 1),
        Math.min(state.probe.y, result.height - 1),
      );
    } else {
      ui.hoverValue.textContent = "Point at the depth map to read a value.";
      for (const key of ["x", "y", "value"]) delete ui.hoverValue.dataset[key];
    }
    // The effect tabs follow the photo and the model; an effect already shown for both
    // is not asked for again.
    if (state.view !== "depth") scheduleEffect(state.view);
  }

  function ms(value) {
    if (typeof value !== "number") return "–";
    return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value)} ms`;
  }

  // ---- legend --------------------------------------------------------------------------

  function drawLegend(colormap = ui.colormapSelect.value) {
    const stops = COLORMAP_STOPS[colormap];
    if (!stops) return;
    // Near (the map's last colour, large inverse depth) at the left, far at the right.
    const nearToFar = [...stops].reverse();
    ui.legend.style.backgroundImage = `linear-gradient(to right, ${nearToFar.join(", ")})`;
    ui.legend.dataset.colormap = colormap;
  }

  function describeModel() {
    const model = modelInfo();
    ui.modelDescription.textContent = model && model.description ? model.description : "";
    ui.promptFields.hidden = !(model && model.needs_prompt_depth);
    describeThreshold(model);
  }

  // ---- reading depth under the pointer -------------------------------------------------

  /**
   * The drawn box in client pixels of an image ``width`` × ``height`` pixels large shown
   * in ``img`` (object-fit: contain may letterbox it); the heatmap by default.
   */
  function drawnBox(img = ui.heatmap, width = state.result.width, height = state.result.height) {
    const rect = img.getBoundingClientRect();
    const scale = Math.min(rect.width / width, rect.height / height);
    const w = width * scale;
    const h = height * scale;
    return { left: rect.left + (rect.width - w) / 2, top: rect.top + (rect.height - h) / 2, scale };
  }

  function probeAtPointer(event) {
    if (!state.result) return;
    const box = drawnBox();
    const { width, height } = state.result;
    const x = Math.floor((event.clientX - box.left) / box.scale);
    const y = Math.floor((event.clientY - box.top) / box.scale);
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    showProbe(x, y);
  }

  function formatDepth(value) {
    if (!Number.isFinite(value)) return "no depth here";
    if (state.result.units === "meters") return `${value.toFixed(2)} m`;
    const size = Math.abs(value);
    let text;
    if (size >= 1000) text = value.toFixed(0);
    else if (size >= 100) text = value.toFixed(1);
    else if (size >= 1) text = value.toFixed(2);
    else text = value.toPrecision(3);
    return `relative inverse depth ${text}`;
  }

  function showProbe(x, y) {
    const { width } = state.result;
    const value = state.depth[y * width + x];
    state.probe = { x, y };
    ui.hoverValue.textContent = `${formatDepth(value)} at pixel (${x}, ${y})`;
    ui.hoverValue.dataset.x = String(x);
    ui.hoverValue.dataset.y = String(y);
    ui.hoverValue.dataset.value = String(value);

    const box = drawnBox();
    const frame = ui.probeMark.parentElement.getBoundingClientRect();
    ui.probeMark.style.left = `${box.left - frame.left + (x + 0.5) * box.scale}px`;
    ui.probeMark.style.top = `${box.top - frame.top + (y + 0.5) * box.scale}px`;
    ui.probeMark.hidden = false;
  }

  const ARROW_MOVES = {
    ArrowLeft: [-1, 0],
    ArrowRight: [1, 0],
    ArrowUp: [0, -1],
    ArrowDown: [0, 1],
  };

  /**
   * The pixel an arrow key moves ``from`` to in a ``width`` × ``height`` image (about 2%
   * of the image per press, 10% with Shift), or null for other keys.
   */
  function arrowStep(event, from, width, height) {
    const move = ARROW_MOVES[event.key];
    if (!move) return null;
    const step = Math.max(1, Math.round(Math.max(width, height) / (event.shiftKey ? 10 : 50)));
    return {
      x: Math.min(width - 1, Math.max(0, from.x + move[0] * step)),
      y: Math.min(height - 1, Math.max(0, from.y + move[1] * step)),
    };
  }

  function probeByKey(event) {
    if (!state.result) return;
    const { width, height } = state.result;
    const to = arrowStep(event, state.probe || { x: width >> 1, y: height >> 1 }, width, height);
    if (!to) return;
    event.preventDefault();
    showProbe(to.x, to.y);
  }

  // ---- downloads -----------------------------------------------------------------------

  function stem() {
    const name = (state.file && state.file.name) || "photo";
    const base = name.replace(/\.[^.]*$/, "").replace(/[^\w.-]+/g, "_");
    return base || "photo";
  }

  function saveBlob(blob, filename) {
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = filename;
    link.hidden = true;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 30_000);
  }

  /**
   * A NumPy .npy file (format 1.0) of an (height, width) little-endian float32 array:
   * magic, version, header length, a Python-literal dict padded with spaces to a 64-byte
   * boundary and ended by a newline, then the raw values
   * (numpy.lib.format, https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html).
   */
  function npyBlob(bytes, height, width) {
    const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${height}, ${width}), }`;
    const preamble = 10; // "\x93NUMPY", 2 version bytes, uint16 header length
    const total = Math.ceil((preamble + dict.length + 1) / 64) * 64;
    const header = `${dict.padEnd(total - preamble - 1, " ")}\n`;
    const head = new Uint8Array(total);
    head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
    const length = total - preamble;
    head[8] = length & 0xff;
    head[9] = length >> 8;
    for (let i = 0; i < header.length; i += 1) head[preamble + i] = header.charCodeAt(i);
    return new Blob([head, bytes], { type: "application/octet-stream" });
  }

  function downloadColor() {
    if (state.colorBlob) saveBlob(state.colorBlob, `${stem()}-depth.png`);
  }

  function downloadNpy() {
    if (!state.depthBytes) return;
    saveBlob(npyBlob(state.depthBytes, state.result.height, state.result.width), `${stem()}-depth.npy`);
  }

  async function downloadPng16() {
    if (!state.file || !state.result) return;
    ui.downloadPng16.disabled = true;
    clearError();
    setBusy("png16", "Preparing the 16-bit PNG…");
    try {
      const response = await postDepth("png16", {}, undefined, state.result.model);
      saveBlob(await response.blob(), `${stem()}-depth16.png`);
      // The PNG holds 65535 * (depth - min) / (max - min); give min and max in full.
      const low = response.headers.get("X-Depth-Min");
      const high = response.headers.get("X-Depth-Max");
      if (Number.isFinite(Number(low)) && Number.isFinite(Number(high))) {
        const units = state.result.units === "meters" ? "m" : "(relative inverse depth)";
        ui.downloadNote.textContent =
          `In the 16-bit PNG, 0 stands for ${low} and 65535 for ${high} ${units}.`;
      }
    } catch (error) {
      showError(messageOf(error));
    } finally {
      ui.downloadPng16.disabled = false;
      setBusy("png16", null);
    }
  }

  // ---- effects -------------------------------------------------------------------------

  /**
   * The effect tabs, one per POST v1/effects/{name}. ``fields()`` are the request's form
   * fields (every key, "" for the server's default), ``format`` what is asked for (json
   * carries the image as a base64 PNG and the effect's report), ``busy`` the status line
   * while waiting.
   */
  const EFFECTS = {
    bokeh: {
      format: "json",
      busy: "Blurring the background…",
      fields: () => ({
        focus_x: state.focus ? String(state.focus.x) : "",
        focus_y: state.focus ? String(state.focus.y) : "",
        aperture: ui.aperture.value,
      }),
    },
    parallax: {
      format: "gif",
      busy: "Rendering the 3D photo…",
      fields: () => ({ path: ui.parallaxPath.value, frames: ui.parallaxFrames.value.trim() }),
    },
    stereo: {
      format: "json",
      busy: "Making the stereo image…",
      fields: () => ({ layout: ui.stereoLayout.value }),
    },
    obstacle: {
      format: "json",
      busy: "Looking for near obstacles…",
      fields: () => ({ threshold: ui.threshold.value.trim() }),
    },
  };

  for (const name of Object.keys(EFFECTS)) {
    state.effects[name] = {
      key: null, // the fields of the result shown or on its way, as JSON
      url: null, // object URL of the result image
      report: null, // the effect's report (json format)
      controller: null, // AbortController of the request in flight
      timer: 0, // a request waiting for the settings to stop changing
      view: $(`view-${name}`),
      image: $(`${name}-image`),
      note: $(`${name}-note`),
      error: $(`${name}-error`),
      download: $(`${name}-download`),
    };
  }

  /** Ask for effect ``name`` after ``delay`` ms, unless the settings change before. */
  function scheduleEffect(name, delay = 0) {
    const entry = state.effects[name];
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => runEffect(name), delay);
  }

  async function runEffect(name) {
    const entry = state.effects[name];
    if (!state.file || state.view !== name) return;
    const fields = { model: chosenModel(), ...EFFECTS[name].fields() };
    let prompt;
    try {
      prompt = promptFields(fields.model);
    } catch (error) {
      entry.error.textContent = messageOf(error);
      return;
    }
    // The prompt file is named by its serial number: a new prompt makes a new effect.
    const promptKey = prompt.prompt_depth ? [state.promptSerial, prompt.prompt_scale] : null;
    const key = JSON.stringify([fields, promptKey]);
    if (key === entry.key) return; // shown already, or on its way
    if (entry.controller) entry.controller.abort();
    const controller = new AbortController();
    entry.controller = controller;
    entry.key = key;
    entry.error.textContent = "";
    entry.view.setAttribute("aria-busy", "true");
    setBusy(name, EFFECTS[name].busy);
    try {
      const { format } = EFFECTS[name];
      const response = await fetch("v1/effects/" + name, {
        method: "POST",
        body: photoForm({ ...fields, ...prompt, format }),
        signal: controller.signal,
      });
      if (!response.ok) throw await apiError(response);
      let blob;
      let report = null;
      let total = Number(response.headers.get("X-Processing-Ms"));
      if (format === "json") {
        const body = await response.json();
        if (typeof body.image_png !== "string") {
          throw new Error("The server's answer had no image in it.");
        }
        blob = new Blob([base64Bytes(body.image_png)], { type: "image/png" });
        report = body.report || null;
        if (body.timings_ms) total = body.timings_ms.total;
      } else {
        blob = await response.blob();
      }
      if (controller !== entry.controller) return; // newer settings took over
      await showEffect(name, fields, blob, report, total);
    } catch (error) {
      if (controller !== entry.controller || error.name === "AbortError") return;
      entry.key = null; // coming back to the tab, or any change, asks again
      entry.error.textContent = messageOf(error);
    } finally {
      if (controller === entry.controller) {
        entry.controller = null;
        entry.view.setAttribute("aria-busy", "false");
        setBusy(name, null);
      }
    }
  }

  async function showEffect(name, fields, blob, report, total) {
    const entry = state.effects[name];
    const previous = entry.url;
    entry.url = URL.createObjectURL(blob);
    entry.report = report;
    entry.image.src = entry.url;
    entry.image.hidden = false;
    // The settings the image was made with, for anyone reading the page (tests too).
    for (const [key, value] of Object.entries(fields)) {
      entry.image.setAttribute(`data-${key.replace(/_/g, "-")}`, value);
    }
    try {
      await entry.image.decode();
    } catch {
      // Shown once it loads; decode() fails for images replaced meanwhile.
    }
    if (previous) URL.revokeObjectURL(previous);
    entry.download.href = entry.url;
    entry.download.download = effectFilename(name, fields);
    entry.download.hidden = false;
    const sentences = [];
    if (name === "bokeh") {
      const point = focusPoint();
      if (point) sentences.push(`In focus: the depth at pixel (${point.x}, ${point.y}).`);
      showFocus();
    }
    if (name === "obstacle") showObstacleReport(report);
    if (Number.isFinite(total)) sentences.push(`Made in ${ms(total)}.`);
    entry.note.textContent = sentences.join(" ");
  }

  /** Forget effect ``name``'s result and stop its request (a new photo was chosen). */
  function resetEffect(name) {
    const entry = state.effects[name];
    clearTimeout(entry.timer);
    if (entry.controller) entry.controller.abort();
    entry.controller = null;
    entry.key = null;
    entry.report = null;
    if (entry.url) URL.revokeObjectURL(entry.url);
    entry.url = null;
    entry.image.removeAttribute("src");
    entry.image.hidden = true;
    entry.download.removeAttribute("href");
    entry.download.hidden = true;
    entry.note.textContent = "";
    entry.error.textContent = "";
    entry.view.setAttribute("aria-busy", "false");
    setBusy(name, null);
    if (name === "obstacle") showObstacleReport(null);
    if (name === "bokeh") showFocus();
  }

  function effectFilename(name, fields) {
    const extension = EFFECTS[name].format === "gif" ? "gif" : "png";
    const detail = name === "stereo" ? `-${fields.layout}` : "";
    return `${stem()}-${name}${detail}.${extension}`;
  }

  // ---- blur: the focus point -----------------------------------------------------------

  /** The pixel size of what ``img`` shows: its own, or the photo's as the server read it. */
  function imageSize(img) {
    // The server renders the blur of a large photo smaller (its effect_megapixels
    // limit), but focus points, asked or reported, stay in the photo's pixels.
    if (img === state.effects.bokeh.image && state.result) {
      return { width: state.result.width, height: state.result.height };
    }
    if (img.naturalWidth && img.naturalHeight) {
      return { width: img.naturalWidth, height: img.naturalHeight };
    }
    return state.result ? { width: state.result.width, height: state.result.height } : null;
  }

  /** The focus in photo pixels: the user's, or the one the server chose (the centre). */
  function focusPoint() {
    if (state.focus) return state.focus;
    const report = state.effects.bokeh.report;
    const point = report && report.focus_point;
    return point ? { x: point[0], y: point[1] } : null;
  }

  function placeMark(mark, img, point) {
    const size = imageSize(img);
    if (!point || !size || img.hidden || img.getClientRects().length === 0) {
      mark.hidden = true;
      return;
    }
    const box = drawnBox(img, size.width, size.height);
    if (!(box.scale > 0)) {
      mark.hidden = true;
      return;
    }
    const frame = mark.parentElement.getBoundingClientRect();
    mark.style.left = `${box.left - frame.left + (point.x + 0.5) * box.scale}px`;
    mark.style.top = `${box.top - frame.top + (point.y + 0.5) * box.scale}px`;
    mark.hidden = false;
  }

  /** The focus marks on the photo and on the blurred photo, in the Blur tab only. */
  function showFocus() {
    const point = state.view === "bokeh" ? focusPoint() : null;
    placeMark(ui.photoFocusMark, ui.original, point);
    placeMark(ui.bokehFocusMark, state.effects.bokeh.image, point);
  }

  function setFocus(point, delay) {
    state.focus = point;
    showFocus();
    scheduleEffect("bokeh", delay);
  }

  /**
   * A click on the photo (or on the blurred photo, the same picture) focuses the blur
   * there: the point is mapped from the displayed size to the photo's own pixels.
   */
  function focusAtPointer(event) {
    if (state.view !== "bokeh" || !state.file) return;
    const img = event.currentTarget;
    const size = imageSize(img);
    if (!size) return;
    const box = drawnBox(img, size.width, size.height);
    if (!(box.scale > 0)) return; // not drawn (a photo this browser cannot show)
    const x = Math.floor((event.clientX - box.left) / box.scale);
    const y = Math.floor((event.clientY - box.top) / box.scale);
    if (x < 0 || y < 0 || x >= size.width || y >= size.height) return;
    setFocus({ x, y }, 0);
  }

  /** The arrow keys move the focus on the focused blurred photo. */
  function focusByKey(event) {
    const size = imageSize(state.effects.bokeh.image);
    if (!size || !ARROW_MOVES[event.key]) return;
    event.preventDefault();
    const from = focusPoint() || { x: size.width >> 1, y: size.height >> 1 };
    // A burst of key presses makes one request, once the keys rest.
    setFocus(arrowStep(event, from, size.width, size.height), 400);
  }

  // ---- obstacles: the report -----------------------------------------------------------

  /** The threshold field speaks the model's units: meters, or nearness (no distance). */
  function describeThreshold(model) {
    const metric = Boolean(model && model.kind === "metric");
    ui.thresholdLabel.textContent = metric
      ? "Near means closer than (m)"
      : "Near means nearness of at least";
    ui.threshold.placeholder = metric ? "1" : "0.8";
    if (metric) ui.threshold.removeAttribute("max");
    else ui.threshold.max = "1";
    ui.thresholdHint.textContent = metric
      ? "A distance in meters; empty means 1 m."
      : "0 is the farthest part of this photo and 1 the nearest; this model gives no " +
        "distances. Empty means 0.8.";
  }

  function percent(fraction) {
    if (fraction > 0 && fraction < 0.005) return "under 1%";
    if (fraction < 1 && fraction >= 0.995) return "over 99%";
    return `${Math.round(100 * fraction)}%`;
  }

  /**
   * The report in words. A relative model's nearness is a place in this photo's own depth
   * range, not a distance, so it is never written in meters.
   */
  function obstacleSentences(report) {
    const metric = report.unit === "m";
    const near = `Near: ${percent(report.near_fraction)} of the view.`;
    if (typeof report.nearest_value !== "number") {
      return metric
        ? `${near} Nothing is closer than ${report.threshold} m.`
        : `${near} Nothing reaches nearness ${report.threshold}.`;
    }
    const value = report.nearest_value.toFixed(2);
    return metric
      ? `${near} Nearest: ${value} m away.`
      : `${near} Nearest: nearness ${value} (1 is the nearest part of this photo; not a distance).`;
  }

  function showObstacleReport(report) {
    const out = ui.obstacleReport;
    out.textContent = report ? obstacleSentences(report) : "";
    out.classList.toggle("is-warning", Boolean(report && report.warning));
    for (const key of ["warning", "nearFraction", "nearestValue", "unit"]) delete out.dataset[key];
    if (!report) return;
    out.dataset.warning = String(Boolean(report.warning));
    out.dataset.nearFraction = String(report.near_fraction);
    out.dataset.nearestValue = String(report.nearest_value);
    out.dataset.unit = report.unit;
  }

  // ---- tabs ----------------------------------------------------------------------------

  /**
   * Show view ``name`` ("depth" or an effect) and ask for its effect after ``delay`` ms;
   * ``focusTab`` moves the keyboard focus to its tab (arrow keys in the tab list).
   */
  function selectView(name, { focusTab = false, delay = 0 } = {}) {
    state.view = name;
    ui.results.dataset.view = name;
    for (const tab of ui.tabs) {
      const selected = tab.dataset.view === name;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
      $(tab.getAttribute("aria-controls")).hidden = !selected;
      if (selected && focusTab) tab.focus();
    }
    for (const [other, entry] of Object.entries(state.effects)) {
      if (other !== name) clearTimeout(entry.timer);
    }
    ui.photoHint.textContent = name === "bokeh" ? "(click it to choose what stays sharp)" : "";
    showFocus();
    // The probe mark was placed while the heatmap may have been hidden (a resize).
    if (name === "depth" && state.result && state.probe) showProbe(state.probe.x, state.probe.y);
    if (name in EFFECTS) scheduleEffect(name, delay);
  }

  /** Arrow keys, Home and End move along the tabs (WAI-ARIA Authoring Practices, Tabs). */
  function tabByKey(event) {
    const count = ui.tabs.length;
    const index = ui.tabs.indexOf(event.currentTarget);
    const next = {
      ArrowRight: (index + 1) % count,
      ArrowLeft: (index - 1 + count) % count,
      Home: 0,
      End: count - 1,
    }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    // The view follows at once; its effect is asked for once the keys rest on a tab, so
    // passing over a tab costs the server nothing.
    selectView(ui.tabs[next].dataset.view, { focusTab: true, delay: 300 });
  }

  // ---- choosing a photo ----------------------------------------------------------------

  /** The sentence to show when ``file`` is over the server's upload limit, else "". */
  function tooLarge(file) {
    const limit = state.limits && state.limits.max_upload_mb;
    // MiB here, so a borderline file is left to the server's own check.
    if (!limit || file.size <= limit * 1e6) return "";
    const size = (file.size / 1e6).toFixed(1);
    return `This file is ${size} MB; the server takes files up to ${limit} MB.`;
  }

  function choose(file) {
    if (!file) return;
    const large = tooLarge(file);
    if (large) {
      showError(large);
      return;
    }
    state.file = file;
    state.probe = null;
    state.focus = null;
    for (const name of Object.keys(EFFECTS)) resetEffect(name);
    ui.downloadNote.textContent = "";
    state.result = null;
    ui.results.hidden = true;
    ui.probeMark.hidden = true;
    if (state.originalUrl) URL.revokeObjectURL(state.originalUrl);
    state.originalUrl = URL.createObjectURL(file);
    run();
  }

  /** A depth prompt was picked (or the picker was cleared): the views follow it. */
  function choosePrompt() {
    const file = (ui.promptInput.files && ui.promptInput.files[0]) || null;
    const large = file ? tooLarge(file) : "";
    if (large) {
      ui.promptInput.value = "";
      state.prompt = null;
      showError(large);
      return;
    }
    state.prompt = file;
    state.promptSerial += 1;
    run();
  }

  function onPicked(event) {
    choose(event.target.files && event.target.files[0]);
    event.target.value = ""; // so picking the same file again still fires "change"
  }

  function hasFiles(event) {
    return event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files");
  }

  // Drops anywhere on the page load the photo (rather than the browser opening the file).
  function onDragOver(event) {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    ui.dropZone.classList.add("is-over");
  }

  function onDragLeave(event) {
    if (event.relatedTarget === null) ui.dropZone.classList.remove("is-over");
  }

  function onDrop(event) {
    if (!hasFiles(event)) return;
    event.preventDefault();
    ui.dropZone.classList.remove("is-over");
    choose(event.dataTransfer.files[0]);
  }

  function onPaste(event) {
    const items = event.clipboardData ? Array.from(event.clipboardData.files) : [];
    const image = items.find((file) => file.type.startsWith("image/"));
    if (image) {
      event.preventDefault();
      choose(image);
    }
  }

  // ---- wiring --------------------------------------------------------------------------

  ui.fileInput.addEventListener("change", onPicked);
  ui.cameraInput.addEventListener("change", onPicked);
  ui.dropZone.addEventListener("click", () => ui.fileInput.click());
  ui.cameraButton.addEventListener("click", () => ui.cameraInput.click());
  ui.dropZone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      ui.fileInput.click();
    }
  });
  document.addEventListener("dragover", onDragOver);
  document.addEventListener("dragleave", onDragLeave);
  document.addEventListener("drop", onDrop);
  document.addEventListener("paste", onPaste);

  ui.promptInput.addEventListener("change", choosePrompt);
  ui.promptScale.addEventListener("change", () => run());
  ui.modelSelect.addEventListener("change", () => {
    describeModel();
    run();
  });
  ui.colormapSelect.addEventListener("change", () => {
    if (state.file) run(); // the legend follows once the new heatmap is shown
    else drawLegend();
  });

  ui.heatmap.addEventListener("pointermove", probeAtPointer);
  ui.heatmap.addEventListener("pointerdown", probeAtPointer);
  ui.heatmap.addEventListener("keydown", probeByKey);
  ui.heatmap.addEventListener("focus", () => {
    if (state.result && !state.probe) {
      showProbe(state.result.width >> 1, state.result.height >> 1);
    }
  });
  window.addEventListener("resize", () => {
    if (state.result && state.probe) showProbe(state.probe.x, state.probe.y);
  });

  ui.downloadColor.addEventListener("click", downloadColor);
  ui.downloadPng16.addEventListener("click", downloadPng16);
  ui.downloadNpy.addEventListener("click", downloadNpy);

  for (const tab of ui.tabs) {
    tab.addEventListener("click", () => selectView(tab.dataset.view));
    tab.addEventListener("keydown", tabByKey);
  }
  ui.original.addEventListener("click", focusAtPointer);
  state.effects.bokeh.image.addEventListener("click", focusAtPointer);
  state.effects.bokeh.image.addEventListener("keydown", focusByKey);
  window.addEventListener("resize", showFocus);
  ui.aperture.addEventListener("input", () => {
    ui.apertureValue.textContent = `${ui.aperture.value} px`;
  });
  // Settings ask again once they rest: a dragged slider or typed number makes one request.
  ui.aperture.addEventListener("change", () => scheduleEffect("bokeh", 250));
  ui.parallaxPath.addEventListener("change", () => scheduleEffect("parallax"));
  ui.parallaxFrames.addEventListener("input", () => scheduleEffect("parallax", 600));
  ui.parallaxFrames.addEventListener("change", () => scheduleEffect("parallax"));
  ui.stereoLayout.addEventListener("change", () => scheduleEffect("stereo"));
  ui.threshold.addEventListener("input", () => scheduleEffect("obstacle", 600));
  ui.threshold.addEventListener("change", () => scheduleEffect("obstacle"));

  loadModels();
})();
