// depthlens web page: upload a photo, show its depth map, read values, download results.
// Plain browser JavaScript, no build step and no third-party code. One request per view:
// POST v1/depth with format=json&include_depth=true&include_color=true.
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
  };

  const state = {
    models: [], // [{name, kind, description}] from v1/models
    limits: null, // {max_upload_mb, max_megapixels}
    file: null, // the current photo (a File or Blob)
    originalUrl: null,
    heatmapUrl: null,
    controller: null, // AbortController of the request in flight
    result: null, // the JSON response, without its base64 fields
    depth: null, // Float32Array, row-major (height, width)
    depthBytes: null, // the same values as little-endian bytes, for the .npy file
    colorBlob: null, // the heatmap PNG
    probe: null, // {x, y} pixel last read
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
    const form = new FormData();
    form.append("image", state.file, state.file.name || "photo");
    const chosen = model || (ui.modelSelect.disabled ? "" : ui.modelSelect.value);
    if (chosen) form.append("model", chosen);
    if (ui.colormapSelect.value && !ui.colormapSelect.disabled) {
      form.append("colormap", ui.colormapSelect.value);
    }
    form.append("format", format);
    for (const [key, value] of Object.entries(extra)) form.append(key, value);
    const response = await fetch("v1/depth", { method: "POST", body: form, signal });
    if (!response.ok) throw await apiError(response);
    return response;
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

  function setBusy(busy, text = "Estimating depth…") {
    ui.busy.hidden = !busy;
    ui.busyText.textContent = text;
    ui.results.setAttribute("aria-busy", busy ? "true" : "false");
    ui.dropZone.classList.toggle("is-busy", busy);
  }

  async function run() {
    if (!state.file) return;
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    clearError();
    setBusy(true);
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
        setBusy(false);
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
    const model = state.models.find((m) => m.name === ui.modelSelect.value);
    ui.modelDescription.textContent = model && model.description ? model.description : "";
  }

  // ---- reading depth under the pointer -------------------------------------------------

  /** The heatmap's drawn box in client pixels (object-fit: contain may letterbox it). */
  function drawnBox() {
    const rect = ui.heatmap.getBoundingClientRect();
    const { width, height } = state.result;
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

  function probeByKey(event) {
    if (!state.result) return;
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    const { width, height } = state.result;
    // About 2% of the image per key press, 10% with Shift.
    const step = Math.max(1, Math.round(Math.max(width, height) / (event.shiftKey ? 10 : 50)));
    const from = state.probe || { x: width >> 1, y: height >> 1 };
    const x = Math.min(width - 1, Math.max(0, from.x + move[0] * step));
    const y = Math.min(height - 1, Math.max(0, from.y + move[1] * step));
    showProbe(x, y);
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
    setBusy(true, "Preparing the 16-bit PNG…");
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
      if (!state.controller) setBusy(false);
    }
  }

  // ---- choosing a photo ----------------------------------------------------------------

  function choose(file) {
    if (!file) return;
    const limit = state.limits && state.limits.max_upload_mb;
    // MiB here, so a borderline file is left to the server's own check.
    if (limit && file.size > limit * 1e6) {
      const size = (file.size / 1e6).toFixed(1);
      showError(`This file is ${size} MB; the server takes files up to ${limit} MB.`);
      return;
    }
    state.file = file;
    state.probe = null;
    ui.downloadNote.textContent = "";
    state.result = null;
    ui.results.hidden = true;
    ui.probeMark.hidden = true;
    if (state.originalUrl) URL.revokeObjectURL(state.originalUrl);
    state.originalUrl = URL.createObjectURL(file);
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

  loadModels();
})();
