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

// A thumbnail the node could not make (a file that does not decode) becomes a labelled
// tile, like the kinds it does not draw.
document.querySelectorAll("#grid img").forEach(function (img) {
  img.addEventListener("error", function () {
    const tile = document.createElement("div");
    tile.className = "tile";
    tile.textContent = img.dataset.kind || "?";
    img.replaceWith(tile);
  });
});

// BLAKE3 (the default hash, 32 bytes), after the specification's reference code: the page
// is served over plain HTTP on a LAN, where browsers offer no crypto.subtle. The state lives
// in local variables and each round reads the message through a precomputed schedule (no
// permutation copies), which is what makes it fast enough for a phone's videos.
const Blake3 = (function () {
  const IV = Uint32Array.of(0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19);
  const PERM = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
  const CHUNK_START = 1, CHUNK_END = 2, PARENT = 4, ROOT = 8;
  // SCHED[16 * r + i]: the message word G reads at position i of round r.
  const SCHED = new Uint8Array(7 * 16);
  let order = PERM.map(function (_, i) { return i; });
  for (let r = 0; r < 7; r++) {
    SCHED.set(order, 16 * r);
    order = PERM.map(function (i) { return order[i]; });
  }
  const LITTLE = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

  // Compresses one block of words m; writes the 8 output words to out.
  function compress(cv, m, counter, len, flags, out) {
    let v0 = cv[0] | 0, v1 = cv[1] | 0, v2 = cv[2] | 0, v3 = cv[3] | 0;
    let v4 = cv[4] | 0, v5 = cv[5] | 0, v6 = cv[6] | 0, v7 = cv[7] | 0;
    let v8 = IV[0] | 0, v9 = IV[1] | 0, v10 = IV[2] | 0, v11 = IV[3] | 0;
    let v12 = counter % 0x100000000 | 0, v13 = Math.floor(counter / 0x100000000) | 0;
    let v14 = len | 0, v15 = flags | 0;
    for (let r = 0; r < 112; r += 16) {
      v0 = (v0 + v4 + m[SCHED[r]]) | 0; v12 ^= v0; v12 = (v12 >>> 16) | (v12 << 16);
      v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 12) | (v4 << 20);
      v0 = (v0 + v4 + m[SCHED[r + 1]]) | 0; v12 ^= v0; v12 = (v12 >>> 8) | (v12 << 24);
      v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 7) | (v4 << 25);
      v1 = (v1 + v5 + m[SCHED[r + 2]]) | 0; v13 ^= v1; v13 = (v13 >>> 16) | (v13 << 16);
      v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 12) | (v5 << 20);
      v1 = (v1 + v5 + m[SCHED[r + 3]]) | 0; v13 ^= v1; v13 = (v13 >>> 8) | (v13 << 24);
      v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 7) | (v5 << 25);
      v2 = (v2 + v6 + m[SCHED[r + 4]]) | 0; v14 ^= v2; v14 = (v14 >>> 16) | (v14 << 16);
      v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 12) | (v6 << 20);
      v2 = (v2 + v6 + m[SCHED[r + 5]]) | 0; v14 ^= v2; v14 = (v14 >>> 8) | (v14 << 24);
      v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 7) | (v6 << 25);
      v3 = (v3 + v7 + m[SCHED[r + 6]]) | 0; v15 ^= v3; v15 = (v15 >>> 16) | (v15 << 16);
      v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 12) | (v7 << 20);
      v3 = (v3 + v7 + m[SCHED[r + 7]]) | 0; v15 ^= v3; v15 = (v15 >>> 8) | (v15 << 24);
      v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 7) | (v7 << 25);
      v0 = (v0 + v5 + m[SCHED[r + 8]]) | 0; v15 ^= v0; v15 = (v15 >>> 16) | (v15 << 16);
      v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 12) | (v5 << 20);
      v0 = (v0 + v5 + m[SCHED[r + 9]]) | 0; v15 ^= v0; v15 = (v15 >>> 8) | (v15 << 24);
      v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 7) | (v5 << 25);
      v1 = (v1 + v6 + m[SCHED[r + 10]]) | 0; v12 ^= v1; v12 = (v12 >>> 16) | (v12 << 16);
      v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 12) | (v6 << 20);
      v1 = (v1 + v6 + m[SCHED[r + 11]]) | 0; v12 ^= v1; v12 = (v12 >>> 8) | (v12 << 24);
      v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 7) | (v6 << 25);
      v2 = (v2 + v7 + m[SCHED[r + 12]]) | 0; v13 ^= v2; v13 = (v13 >>> 16) | (v13 << 16);
      v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 12) | (v7 << 20);
      v2 = (v2 + v7 + m[SCHED[r + 13]]) | 0; v13 ^= v2; v13 = (v13 >>> 8) | (v13 << 24);
      v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 7) | (v7 << 25);
      v3 = (v3 + v4 + m[SCHED[r + 14]]) | 0; v14 ^= v3; v14 = (v14 >>> 16) | (v14 << 16);
      v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 12) | (v4 << 20);
      v3 = (v3 + v4 + m[SCHED[r + 15]]) | 0; v14 ^= v3; v14 = (v14 >>> 8) | (v14 << 24);
      v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 7) | (v4 << 25);
    }
    out[0] = v0 ^ v8; out[1] = v1 ^ v9; out[2] = v2 ^ v10; out[3] = v3 ^ v11;
    out[4] = v4 ^ v12; out[5] = v5 ^ v13; out[6] = v6 ^ v14; out[7] = v7 ^ v15;
  }

  function Hasher() {
    this.stack = [];          // chaining values of finished subtrees, as Uint32Array(8)
    this.chunks = 0;          // chunks finished
    this.cv = IV.slice();
    this.block = new Uint8Array(64);
    this.words = new Uint32Array(this.block.buffer);
    this.blockLen = 0;
    this.blocks = 0;          // blocks compressed in this chunk
    this.out = new Uint32Array(8);
    this.pair = new Uint32Array(16);
  }
  // The block's bytes as little-endian words (a view of them on a little-endian machine).
  Hasher.prototype.blockWords = function () {
    if (!LITTLE) {
      const b = this.block, w = new Uint32Array(16);
      for (let i = 0; i < 16; i++) {
        w[i] = b[4 * i] | (b[4 * i + 1] << 8) | (b[4 * i + 2] << 16) | (b[4 * i + 3] << 24);
      }
      return w;
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
          compress(this.cv, this.blockWords(), this.chunks, 64, start | CHUNK_END, this.out);
          this.pushChunk(this.out.slice());
        } else {
          compress(this.cv, this.blockWords(), this.chunks, 64, start, this.cv);
          this.blocks++;
        }
        this.blockLen = 0;
      }
      const take = Math.min(64 - this.blockLen, bytes.length - i);
      this.block.set(bytes.subarray(i, i + take), this.blockLen);
      this.blockLen += take;
      i += take;
    }
  };
  Hasher.prototype.parent = function (left, right, flags, out) {
    this.pair.set(left, 0);
    this.pair.set(right, 8);
    compress(IV, this.pair, 0, 64, PARENT | flags, out);
  };
  Hasher.prototype.pushChunk = function (cv) {
    this.chunks++;
    let total = this.chunks;
    while (total % 2 === 0) {
      this.parent(this.stack.pop(), cv, 0, cv);
      total /= 2;
    }
    this.stack.push(cv);
    this.cv = IV.slice();
    this.blocks = 0;
  };
  Hasher.prototype.hex = function () {
    // The last block, zero-padded.
    this.block.fill(0, this.blockLen);
    const start = this.blocks === 0 ? CHUNK_START : 0;
    const out = new Uint32Array(8);
    const flags = start | CHUNK_END;
    if (this.stack.length === 0) {
      compress(this.cv, this.blockWords(), this.chunks, this.blockLen, flags | ROOT, out);
    } else {
      compress(this.cv, this.blockWords(), this.chunks, this.blockLen, flags, out);
      for (let i = this.stack.length - 1; i >= 0; i--) {
        this.parent(this.stack[i], out, i === 0 ? ROOT : 0, out);
      }
    }
    let hex = "";
    for (let i = 0; i < 8; i++) {
      for (let b = 0; b < 4; b++) hex += ((out[i] >>> (8 * b)) & 255).toString(16).padStart(2, "0");
    }
    return hex;
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
        try {
          // The answer may have been lost after the node placed the file.
          const state = (await check([{ hash: hash, size: file.size }]))[0];
          if (state.backed_up) return "(it arrived before the connection was lost)";
          offset = state.have;
        } catch (_) { /* the node is still away: try again */ }
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
