/* Draws a picas report from the JSON in #picas-data with plotly.js (inlined before this script).
 * On the live dashboard (#picas-live has a url) it polls that url and redraws when the data changed.
 * When every plot is drawn, <body data-ready="N"> holds the number of renders so far; a failure sets
 * <body data-error="...">. Tests and the dashboard read these. */
(function () {
  "use strict";
  var COLORS = {
    todo: "#9e9e9e", locked: "#1f77b4", done: "#2ca02c", error: "#d62728", retried: "#ff7f0e",
    scrubbed: "#9467bd", lost: "#8c564b", released: "#7f7f7f", running: "#1f77b4", waiting: "#d0d0d0",
    "stage-in": "#17becf", "stage-out": "#bcbd22", tokens: "#1f77b4", pilots: "#ff7f0e"
  };
  var CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
  var renders = 0;

  function $(id) { return document.getElementById(id); }
  function esc(text) {
    return String(text === null || text === undefined ? "" : text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  // Epoch seconds to the milliseconds plotly's date axes take, shifted so that they read as local time.
  function ms(t) { return t * 1000 - new Date(t * 1000).getTimezoneOffset() * 60000; }
  function fmtTime(t) { return t ? new Date(t * 1000).toLocaleString() : "-"; }
  function fmtSecs(s) {
    if (s === null || s === undefined) { return "-"; }
    s = Math.round(s);
    if (s < 60) { return s + "s"; }
    if (s < 3600) { return Math.floor(s / 60) + "m " + (s % 60) + "s"; }
    if (s < 86400) { return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m"; }
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }
  function num(n) { return (n || 0).toLocaleString(); }
  function layout(extra) {
    var base = { margin: { l: 60, r: 20, t: 30, b: 40 }, legend: { orientation: "h", y: 1.12 },
                 font: { size: 12 }, hovermode: "closest", paper_bgcolor: "#fff", plot_bgcolor: "#fff" };
    for (var k in extra) { base[k] = extra[k]; }
    return base;
  }
  function emptyNote(text) {
    return [{ text: text, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { color: "#999" } }];
  }
  function plot(name, traces, lay) {
    var div = document.querySelector('[data-plot="' + name + '"]');
    var has = traces.some(function (t) { return (t.x && t.x.length) || (t.y && t.y.length) || (t.values && t.values.length); });
    if (!has) { lay.annotations = emptyNote("nothing to show yet"); }
    return Plotly.react(div, traces, lay, CONFIG).then(function () { div.setAttribute("data-drawn", renders + 1); });
  }
  function table(head, rows) {
    var out = ["<table><thead><tr>"];
    head.forEach(function (h) { out.push("<th>" + esc(h) + "</th>"); });
    out.push("</tr></thead><tbody>");
    rows.forEach(function (r) { out.push(r); });
    out.push("</tbody></table>");
    return out.join("");
  }

  function header(d) {
    var m = d.meta;
    document.title = m.title;
    $("title").textContent = m.title;
    $("subtitle").textContent = [m.source, m.scope, num(m.tokens) + " tokens", num(m.attempts) + " attempts",
      num(m.pilots) + " pilots", "made " + fmtTime(m.generated),
      "intervals of " + fmtSecs(m.step)].filter(Boolean).join(" · ");
    var cards = [];
    ["todo", "locked", "done", "error", "other"].forEach(function (s) {
      if (s in d.counts) {
        cards.push('<div class="card ' + s + '"><div class="n">' + num(d.counts[s]) + '</div><div>' + s + "</div></div>");
      }
    });
    $("counts").innerHTML = cards.join("");
    $("notes").innerHTML = d.notes.map(function (n) { return "<li>" + esc(n) + "</li>"; }).join("");
  }

  function progress(d) {
    var p = d.progress, x = p.times.map(ms);
    var traces = ["done", "error", "locked", "todo"].map(function (s) {
      return { type: "scatter", mode: "lines", name: s, x: x, y: p.series[s], stackgroup: "one",
               line: { color: COLORS[s], width: 1 } };
    });
    return plot("progress", traces, layout({ xaxis: { type: "date" }, yaxis: { title: { text: "tokens" } } }));
  }

  function throughput(d) {
    var t = d.throughput, x = t.starts.map(function (s) { return ms(s + t.step / 2); });
    var traces = Object.keys(t.series).map(function (k) {
      return { type: "bar", name: k, x: x, y: t.series[k], marker: { color: COLORS[k] }, width: t.step * 900 };
    });
    $("throughput-caption").textContent = "Attempts that ended in each " + fmtSecs(t.step) +
      " interval, by outcome (retried: failed and put back for another try).";
    return plot("throughput", traces, layout({ barmode: "stack", xaxis: { type: "date" },
                                              yaxis: { title: { text: "attempts per " + fmtSecs(t.step) } } }));
  }

  function concurrency(d) {
    var c = d.concurrency, x = c.starts.map(ms);
    function line(name, y, color, dash) {
      return { type: "scatter", mode: "lines", name: name, x: x, y: y, line: { shape: "hv", color: color, dash: dash } };
    }
    return plot("concurrency", [line("tokens held (mean)", c.tokens_mean, COLORS.tokens),
                                line("tokens held (peak)", c.tokens_peak, COLORS.tokens, "dot"),
                                line("pilots alive (mean)", c.pilots_mean, COLORS.pilots),
                                line("pilots alive (peak)", c.pilots_peak, COLORS.pilots, "dot")],
                layout({ xaxis: { type: "date" }, yaxis: { title: { text: "count" }, rangemode: "tozero" } }));
  }

  // Each attempt is a thick line segment in its pilot's lane: one SVG path per kind instead of one per bar,
  // which keeps thousands of attempts quick to draw.
  function timeline(d) {
    var tl = d.timeline, order = ["waiting", "stage-in", "stage-out", "running", "done", "error", "retried",
                                  "scrubbed", "released", "lost"];
    var kinds = Object.keys(tl.bars).sort(function (a, b) { return order.indexOf(a) - order.indexOf(b); });
    var div = document.querySelector('[data-plot="timeline"]');
    var height = Math.min(4000, Math.max(360, 90 + tl.lanes.length * 18));
    div.style.height = height + "px";
    var width = Math.max(2, Math.min(14, (height - 90) / Math.max(1, tl.lanes.length) * 0.7));
    var traces = kinds.map(function (k) {
      var b = tl.bars[k], x = [], y = [], tokens = [];
      for (var i = 0; i < b.lane.length; i++) {
        var lane = tl.lanes[b.lane[i]], end = Math.max(b.end[i], b.start[i] + 0.2);
        x.push(ms(b.start[i]), ms(end), null);
        y.push(lane, lane, null);
        tokens.push(b.token[i], b.token[i], null);
      }
      var thin = k === "waiting" || k.indexOf("stage") === 0;
      return { type: "scatter", mode: "lines", name: k, x: x, y: y, customdata: tokens, connectgaps: false,
               line: { color: COLORS[k] || "#444", width: thin ? Math.max(2, width * 0.6) : width },
               hovertemplate: "%{customdata}<br>" + k + "<br>%{y}<extra></extra>" };
    });
    var p = plot("timeline", traces, layout({ xaxis: { type: "date" }, showlegend: true,
      yaxis: { type: "category", automargin: true, autorange: "reversed", tickfont: { size: 10 },
               categoryorder: "array", categoryarray: tl.lanes },
      margin: { l: 120, r: 20, t: 30, b: 40 } }));
    return p.then(function () {
      if (div.getAttribute("data-click") !== "1") {
        div.setAttribute("data-click", "1");
        div.on("plotly_click", function (ev) {
          var id = ev.points[0].customdata;
          if (id && document.getElementById("token-" + id)) { location.hash = "token-" + id; }
        });
      }
    });
  }

  function distributions(d) {
    var ds = d.distributions, palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"];
    function hist(which, name, label) {
      var traces = ds.classes.map(function (c, i) {
        var h = ds[which][c];
        if (!h || !h.n) { return { type: "bar", name: c, x: [], y: [] }; }
        return { type: "bar", name: c + " (n=" + num(h.n) + ")", x: h.starts.map(function (s) { return s + h.width / 2; }),
                 y: h.counts, width: h.width, opacity: 0.7, marker: { color: palette[i % palette.length] } };
      });
      return plot(name, traces, layout({ barmode: "overlay", title: { text: label, font: { size: 13 } },
        xaxis: { title: { text: "seconds (last bar: the top 1% and above)" } }, yaxis: { title: { text: "count" } } }));
    }
    var rows = [];
    ds.classes.forEach(function (c) {
      ["run", "wait"].forEach(function (w) {
        var h = ds[w][c];
        if (h && h.n) {
          rows.push("<tr><td>" + esc(c) + "</td><td>" + w + "</td><td class=num>" + num(h.n) + "</td><td class=num>" +
            [h.mean, h.p50, h.p90, h.p99, h.max].map(fmtSecs).join("</td><td class=num>") + "</td></tr>");
        }
      });
    });
    $("dist-table").innerHTML = rows.length ? table(["class", "time", "n", "mean", "p50", "p90", "p99", "max"], rows) : "";
    return Promise.all([hist("run", "runtime", "run time"), hist("wait", "waittime", "wait time (push to first claim)")]);
  }

  function failures(d) {
    var f = d.failures, codes = Object.keys(f.by_exit_code);
    $("failure-summary").textContent = num(f.failed_tokens) + " tokens in error now; " + num(f.retried) +
      " failed attempts were retried; " + num(f.scrub_events) + " scrubs (expired leases) over " +
      num(f.scrubbed_tokens) + " tokens.";
    var p1 = plot("exitcodes", [{ type: "bar", x: codes.map(function (c) { return "exit " + c; }),
                                  y: codes.map(function (c) { return f.by_exit_code[c]; }), marker: { color: COLORS.error },
                                  name: "failed attempts" }],
                  layout({ title: { text: "failed attempts by exit code", font: { size: 13 } }, xaxis: { type: "category" } }));
    var h = f.by_host;
    var p2 = plot("hosts", [{ type: "bar", name: "failed", x: h.hosts, y: h.failed, marker: { color: COLORS.error } },
                            { type: "bar", name: "all ended", x: h.hosts, y: h.total, marker: { color: "#c7c7c7" } }],
                  layout({ barmode: "group", title: { text: "attempts by host", font: { size: 13 } },
                           xaxis: { type: "category" } }));
    $("messages").innerHTML = f.by_message.length ? table(["failed attempts", "message"], f.by_message.map(function (m) {
      return "<tr><td class=num>" + num(m[1]) + "</td><td>" + esc(m[0]) + "</td></tr>";
    })) : '<p class="muted">No failures.</p>';
    $("failed").innerHTML = f.rows.length ? table(["token", "exit", "host", "attempts", "scrubs", "finished", "message / log tail"],
      f.rows.map(function (r) {
        var tail = r.log_tail ? "<details><summary>log tail</summary><pre>" + esc(r.log_tail) + "</pre></details>" : "";
        return '<tr id="token-' + esc(r.id) + '"><td><a href="#token-' + esc(r.id) + '"><code>' + esc(r.id) +
          "</code></a></td><td class=num>" + esc(r.exit_code) + "</td><td>" + esc(r.host) + "</td><td class=num>" +
          num(r.attempts) + "</td><td class=num>" + num(r.scrubs) + "</td><td>" + fmtTime(r.finished) + "</td><td>" +
          esc(r.message) + tail + "</td></tr>";
      })) : '<p class="muted">No token is in error.</p>';
    return Promise.all([p1, p2]);
  }

  function pilots(d) {
    var p = d.pilots, ends = Object.keys(p.ends);
    $("pilot-summary").textContent = num(p.count) + " pilots (" + num(p.with_record) + " with a pilot record); idle " +
      fmtSecs(p.idle_seconds) + " in all.";
    var p1 = plot("pilotends", [{ type: "bar", x: ends, y: ends.map(function (e) { return p.ends[e]; }), name: "pilots",
                                  marker: { color: "#1f77b4" } }],
                  layout({ title: { text: "how pilots ended", font: { size: 13 } }, xaxis: { type: "category" } }));
    var labels = p.busy_bins.map(function (_, i) { return (i * 10) + "-" + (i * 10 + 10) + "%"; });
    var p2 = plot("busy", [{ type: "bar", x: labels, y: p.busy_bins, name: "pilots", marker: { color: "#2ca02c" } }],
                  layout({ title: { text: "pilots by busy fraction (running a payload / alive)", font: { size: 13 } },
                           xaxis: { type: "category" } }));
    $("pilot-table").innerHTML = p.rows.length ? table(["pilot", "host / job", "class", "started", "life", "done",
      "failed", "busy", "idle", "ended"], p.rows.map(function (r) {
        return "<tr><td><code>" + esc(r.pilot) + "</code></td><td>" + esc(r.host) + (r.job ? " / " + esc(r.job) : "") +
          "</td><td>" + esc(r.class) + "</td><td>" + fmtTime(r.started) + "</td><td class=num>" + fmtSecs(r.life_seconds) +
          "</td><td class=num>" + num(r.done) + "</td><td class=num>" + num(r.failed) + "</td><td class=num>" +
          (r.busy_fraction === null ? "-" : Math.round(r.busy_fraction * 100) + "%") + "</td><td class=num>" +
          fmtSecs(r.idle_seconds) + "</td><td>" + esc(r.end) + (r.reason ? " (" + esc(r.reason) + ")" : "") + "</td></tr>";
      })) : "";
    return Promise.all([p1, p2]);
  }

  function render(d) {
    header(d);
    return Promise.all([progress(d), throughput(d), concurrency(d), timeline(d), distributions(d), failures(d),
                        pilots(d)]).then(function () {
      renders += 1;
      document.body.setAttribute("data-ready", String(renders));
      document.body.setAttribute("data-generated", String(d.meta.generated));
    });
  }

  function fail(err) {
    document.body.setAttribute("data-error", String(err && err.stack || err));
    if (window.console) { console.error(err); }
  }

  function poll(live, last) {
    var status = $("live-status");
    status.hidden = false;
    setTimeout(function () {
      fetch(live.url, { cache: "no-store" }).then(function (r) {
        if (!r.ok) { throw new Error("the dashboard answered " + r.status); }
        return r.json();
      }).then(function (d) {
        status.textContent = "Live: refreshes every " + live.interval + " s; last checked " + new Date().toLocaleTimeString();
        if (d.meta.generated !== last) { return render(d).then(function () { return d.meta.generated; }); }
        return last;
      }).then(function (g) { poll(live, g); }, function (e) {
        status.textContent = "Live: cannot reach the dashboard (" + e.message + "); retrying";
        poll(live, last);
      });
    }, live.interval * 1000);
  }

  try {
    var data = JSON.parse($("picas-data").textContent);
    var live = JSON.parse($("picas-live").textContent);
    render(data).then(function () { if (live.url) { poll(live, data.meta.generated); } }, fail);
  } catch (err) {
    fail(err);
  }
})();
