// photomesh's page. Two jobs, no framework, no build step:
// - the parts marked data-events="NAME" are replaced by each server-sent event of that
//   name, so the overview and an open invitation stay live without a reload;
// - "Add photos": each picked file is hashed here (BLAKE3, below), the node says which it
//   has already, and the others are sent in chunks that resume where the node stands.
"use strict";

(function live() {
  const parts = document.querySelectorAll("[data-events]");
  if (parts.length === 0 || !window.EventSource) return;
  const wanted = Array.from(parts).map(function (el) { return el.dataset.events; });
  const events = new EventSource("/events?want=" + encodeURIComponent(wanted.join(",")));
  parts.forEach(function (el) {
    events.addEventListener(el.dataset.events, function (e) {
      el.innerHTML = e.data;
      document.documentElement.dataset.updated = String(Date.now());
    });
  });
})();

// BLAKE3 (the default hash, 32 bytes), after the specification's reference code: the page
// is served over plain HTTP on a LAN, where browsers offer no crypto.subtle.
const Blake3 = (function () {
  const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
  const PERM = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
  const CHUNK_START = 1, CHUNK_END = 2, PARENT = 4, ROOT = 8;
  const s = new Uint32Array(16);
  const m = new Uint32Array(16);
  const t = new Uint32Array(16);
  function g(a, b, c, d, x, y) {
    s[a] = s[a] + s[b] + x; let v = s[d] ^ s[a]; s[d] = (v >>> 16) | (v << 16);
    s[c] = s[c] + s[d]; v = s[b] ^ s[c]; s[b] = (v >>> 12) | (v << 20);
    s[a] = s[a] + s[b] + y; v = s[d] ^ s[a]; s[d] = (v >>> 8) | (v << 24);
    s[c] = s[c] + s[d]; v = s[b] ^ s[c]; s[b] = (v >>> 7) | (v << 25);
  }
  // Compresses one block; the output words are left in s.
  function compress(cv, words, counter, len, flags) {
    for (let i = 0; i < 8; i++) s[i] = cv[i];
    s[8] = IV[0]; s[9] = IV[1]; s[10] = IV[2]; s[11] = IV[3];
    s[12] = counter % 0x100000000; s[13] = Math.floor(counter / 0x100000000);
    s[14] = len; s[15] = flags;
    m.set(words);
    for (let r = 0; r < 7; r++) {
      g(0, 4, 8, 12, m[0], m[1]); g(1, 5, 9, 13, m[2], m[3]);
      g(2, 6, 10, 14, m[4], m[5]); g(3, 7, 11, 15, m[6], m[7]);
      g(0, 5, 10, 15, m[8], m[9]); g(1, 6, 11, 12, m[10], m[11]);
      g(2, 7, 8, 13, m[12], m[13]); g(3, 4, 9, 14, m[14], m[15]);
      for (let i = 0; i < 16; i++) t[i] = m[PERM[i]];
      m.set(t);
    }
    for (let i = 0; i < 8; i++) { s[i] ^= s[i + 8]; s[i + 8] ^= cv[i]; }
  }
  function Hasher() {
    this.stack = [];
    this.chunks = 0;          // chunks finished
    this.cv = IV.slice();
    this.block = new Uint8Array(64);
    this.words = new Uint32Array(16);
    this.blockLen = 0;
    this.blocks = 0;          // blocks compressed in this chunk
  }
  Hasher.prototype.blockWords = function () {
    const b = this.block;
    for (let i = 0; i < 16; i++) {
      this.words[i] = b[4 * i] | (b[4 * i + 1] << 8) | (b[4 * i + 2] << 16) | (b[4 * i + 3] << 24);
    }
    return this.words;
  };
  Hasher.prototype.update = function (bytes) {
    let i = 0;
    while (i < bytes.length) {
      if (this.blockLen === 64) {
        const start = this.blocks === 0 ? CHUNK_START : 0;
        if (this.blocks === 15) {
          // The chunk's last block: the chunk ends here, more input follows.
          compress(this.cv, this.blockWords(), this.chunks, 64, start | CHUNK_END);
          this.pushChunk(Array.from(s.subarray(0, 8)));
        } else {
          compress(this.cv, this.blockWords(), this.chunks, 64, start);
          this.cv = Array.from(s.subarray(0, 8));
          this.blocks++;
        }
        this.block.fill(0);
        this.blockLen = 0;
      }
      const take = Math.min(64 - this.blockLen, bytes.length - i);
      this.block.set(bytes.subarray(i, i + take), this.blockLen);
      this.blockLen += take;
      i += take;
    }
  };
  Hasher.prototype.pushChunk = function (cv) {
    this.chunks++;
    let total = this.chunks;
    while (total % 2 === 0) {
      const left = this.stack.pop();
      compress(IV, Uint32Array.from(left.concat(cv)), 0, 64, PARENT);
      cv = Array.from(s.subarray(0, 8));
      total /= 2;
    }
    this.stack.push(cv);
    this.cv = IV.slice();
    this.blocks = 0;
  };
  Hasher.prototype.hex = function () {
    const start = this.blocks === 0 ? CHUNK_START : 0;
    let cv = this.cv, words = Uint32Array.from(this.blockWords()), counter = this.chunks;
    let len = this.blockLen, flags = start | CHUNK_END;
    for (let i = this.stack.length - 1; i >= 0; i--) {
      compress(cv, words, counter, len, flags);
      const right = Array.from(s.subarray(0, 8));
      cv = IV; words = Uint32Array.from(this.stack[i].concat(right));
      counter = 0; len = 64; flags = PARENT;
    }
    compress(cv, words, counter, len, flags | ROOT);
    let out = "";
    for (let i = 0; i < 8; i++) {
      for (let b = 0; b < 4; b++) out += ((s[i] >>> (8 * b)) & 255).toString(16).padStart(2, "0");
    }
    return out;
  };
  return {
    hex: function (bytes) { const h = new Hasher(); h.update(bytes); return h.hex(); },
    Hasher: Hasher,
  };
})();
window.photomeshBlake3 = Blake3;

(function uploads() {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const csrf = form.dataset.csrf;
  const chunkSize = Math.min(Number(form.dataset.chunk) || 4194304, 4194304);
  const nameInput = document.getElementById("device-name");
  const files = document.getElementById("files");
  const list = document.getElementById("picks");
  const summary = document.getElementById("upload-summary");
  nameInput.value = localStorage.getItem("photomesh-device") ||
    (/iPhone/.test(navigator.userAgent) ? "iPhone" : /iPad/.test(navigator.userAgent) ? "iPad" :
      /Android/.test(navigator.userAgent) ? "Android phone" : "");
  nameInput.addEventListener("change", function () {
    localStorage.setItem("photomesh-device", nameInput.value.trim());
  });

  function row(file) {
    const li = document.createElement("li");
    li.dataset.name = file.name;
    li.dataset.state = "hashing";
    li.innerHTML = "<span class=\"name\"></span> · <span class=\"what\">hashing…</span><br><progress max=\"1\" value=\"0\"></progress>";
    li.querySelector(".name").textContent = file.name;
    list.appendChild(li);
    return {
      say: function (state, what, done) {
        li.dataset.state = state;
        li.querySelector(".what").textContent = what;
        if (done !== undefined) li.querySelector("progress").value = done;
      },
    };
  }

  async function hashFile(file, show) {
    const h = new Blake3.Hasher();
    for (let at = 0; at < file.size; at += 1048576) {
      const part = new Uint8Array(await file.slice(at, at + 1048576).arrayBuffer());
      h.update(part);
      show("hashing", "hashing… " + Math.round(100 * at / file.size) + "%", at / file.size);
    }
    return h.hex();
  }

  function headers(extra) {
    return Object.assign({ "X-CSRF-Token": csrf }, extra);
  }

  async function check(picks) {
    const r = await fetch("/upload/check", {
      method: "POST", headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify(picks), credentials: "same-origin",
    });
    if (!r.ok) throw new Error((await r.json()).error || r.statusText);
    return r.json();
  }

  async function send(file, hash, have, device, show) {
    let offset = have, failures = 0, restarts = 0;
    while (true) {
      const end = Math.min(offset + chunkSize, file.size);
      let r;
      try {
        r = await fetch("/upload/" + hash, {
          method: "PUT", credentials: "same-origin",
          headers: headers({
            "X-Upload-Offset": String(offset), "X-Upload-Size": String(file.size),
            "X-Upload-Name": encodeURIComponent(file.name),
            "X-Upload-Mtime": String(file.lastModified || Date.now()),
            "X-Upload-Device": encodeURIComponent(device),
          }),
          body: file.slice(offset, end),
        });
      } catch (e) {
        // The network went away: wait, then ask the node where the upload stands.
        failures++;
        show("waiting", "connection lost; trying again…");
        await new Promise(function (ok) { setTimeout(ok, Math.min(30000, 1000 * failures)); });
        try { offset = (await check([{ hash: hash, size: file.size }]))[0].have; } catch (_) { /* retry */ }
        continue;
      }
      const answer = await r.json().catch(function () { return {}; });
      if (r.status === 409 && typeof answer.have === "number") { offset = answer.have; continue; }
      if (r.status === 409) { await new Promise(function (ok) { setTimeout(ok, 1000); }); continue; }
      if (r.status === 422 && restarts < 2) { restarts++; offset = 0; continue; }
      if (!r.ok) throw new Error(answer.error || r.statusText);
      failures = 0;
      offset = answer.have;
      show("sending", "sending… " + Math.round(100 * offset / Math.max(file.size, 1)) + "%", offset / Math.max(file.size, 1));
      if (answer.placed) return answer.placed;
    }
  }

  files.addEventListener("change", async function () {
    const device = nameInput.value.trim();
    if (!device) { summary.textContent = "Give this phone a name first."; files.value = ""; return; }
    localStorage.setItem("photomesh-device", device);
    const picked = Array.from(files.files);
    const rows = picked.map(row);
    const hashes = [];
    for (let i = 0; i < picked.length; i++) {
      hashes.push(await hashFile(picked[i], rows[i].say));
    }
    let states;
    try {
      states = await check(picked.map(function (f, i) { return { hash: hashes[i], size: f.size }; }));
    } catch (e) {
      summary.textContent = "The node could not be asked: " + e.message;
      return;
    }
    let skipped = 0, sent = 0, failed = 0;
    for (let i = 0; i < picked.length; i++) {
      if (states[i].backed_up) { skipped++; rows[i].say("backed-up", "already backed up", 1); continue; }
      try {
        const placed = await send(picked[i], hashes[i], states[i].have, device, rows[i].say);
        sent++;
        rows[i].say("done", "backed up as " + placed, 1);
      } catch (e) {
        failed++;
        rows[i].say("failed", "not sent: " + e.message);
      }
    }
    summary.textContent = sent + " sent, " + skipped + " already backed up" + (failed ? ", " + failed + " failed" : "") + ".";
    summary.dataset.done = "true";
    files.value = "";
  });
})();
